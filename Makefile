# One command for the main job, one for the tests; each creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The base install without PyTorch (numpy, Pillow, ONNX Runtime: about 200 MB), the light inference path
# (docs/light.md): all `make demo` needs. `make test-light` adds the web server and the test tools to it.
LIGHT_VENV := .venv-light
LIGHT_BIN := $(LIGHT_VENV)/bin
# torch/torchvision pinned here only because these builds lie on the project machines' disk;
# pyproject.toml keeps the bounds loose (torch>=2.4).
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-light onnx lint docs model clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[torch,train,eval,serve,export,dev]"
	touch $@

$(LIGHT_BIN)/.installed: pyproject.toml
	test -x $(LIGHT_BIN)/python || $(PY) -m venv $(LIGHT_VENV)
	$(LIGHT_BIN)/pip install -q --disable-pip-version-check -e .
	touch $@

$(LIGHT_BIN)/.test-installed: $(LIGHT_BIN)/.installed
	$(LIGHT_BIN)/pip install -q --disable-pip-version-check -e ".[serve]" pytest httpx
	touch $@

# The first command: the light install only (seconds, no PyTorch), then the shipped model on ONNX Runtime.
demo: $(LIGHT_BIN)/.installed
	$(LIGHT_BIN)/pconv demo --output out/demo.png --overwrite

test: $(BIN)/.installed test-light
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(DOCS_BUILD)
	$(BIN)/python -m pytest -q

# Reproduce the shipped weights from the photos (about 8.2 h on a 2-core CPU; resumable: run it again).
# Runs go to $$PCONV_RUNS or ~/pconv_runs. Options: make model ARGS="--dry-run" (the plan), "--until v3", "--tiny".
model: $(BIN)/.installed
	$(BIN)/python tools/make_model.py $(ARGS)

# The inference tests in a venv that has no torch at all (CLI, Python API and pconv serve on ONNX Runtime).
test-light: $(LIGHT_BIN)/.test-installed
	@$(LIGHT_BIN)/python -c "import importlib.util as u, sys; sys.exit('torch is installed in $(LIGHT_VENV)' if u.find_spec('torch') else 0)"
	$(LIGHT_BIN)/python -m pytest -q tests/light

# Re-export the shipped ONNX model from the shipped safetensors (after changing the weights; tests check they agree).
onnx: $(BIN)/.installed
	$(BIN)/pconv export-onnx --output src/pconv/weights/pconv_default.onnx --overwrite

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

# The documentation site (mkdocs.yml) -> site/, offline: a broken link or API reference is an error (--strict).
DOCS_BUILD = NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
docs: $(BIN)/.installed
	$(DOCS_BUILD)
	@echo "docs: open site/index.html"

clean:
	rm -rf $(VENV) $(LIGHT_VENV) out site
