"""The documentation: the README is a short front page whose links resolve, the site (mkdocs.yml) builds with
``--strict``, its CLI and API references cover every command, option and public module, and its pages load
nothing from the internet in headless Chromium.

Set ``PCONV_DOCS_SCREENSHOTS=DIR`` to also save two rendered pages as ``DIR/docs_page1.png`` and ``docs_page2.png``.
"""

from __future__ import annotations

import argparse
import os
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pconv.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README_LIMIT = 8 * 1024  # bytes: the README is the front page, the rest lives in docs/
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SCREENSHOTS = {"/inpainting/": "docs_page1.png", "/design/": "docs_page2.png"}
NOT_API = {"__main__", "commands"}  # the commands are documented by the CLI reference


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as ``make docs`` and ``make test`` build it (strict: any warning is an error)."""
    pytest.importorskip("mkdocstrings", reason="the docs tools are in the dev extra: pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def _html_text(path: Path) -> str:
    """The page's text without tags (entities for < > & decoded), for looking up what a reader sees."""
    text = re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8"))
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&quot;", '"')


def test_readme_is_a_short_front_page_whose_links_resolve() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= README_LIMIT, "README.md grew past 8 KB: move the detail to a page in docs/"
    for target in LINK.findall(readme):
        if re.match(r"[a-z]+:|#", target):
            continue
        assert (REPO / target.partition("#")[0]).exists(), f"README.md links to a missing file: {target}"
    for command in ("make demo", "make test", "pconv inpaint", "from pconv import Inpainter", "pconv serve"):
        assert command in readme


# What a reader sees of a Markdown page: no code, code spans, link targets or reference-link names.
_NOT_PROSE = re.compile(r"```.*?```|`[^`\n]*`|\]\([^)]*\)|\]\[[^\]]*\]", re.S)
# An unfilled placeholder: a name in capitals with underscores (FILL_TIME) or a to-do mark, outside code.
_PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+\b|\b(?:TODO|TBD|FIXME|XXX)\b")


def test_pages_hold_no_unfilled_placeholder() -> None:
    pages = [REPO / "README.md", REPO / "CHANGELOG.md", REPO / "src/pconv/weights/MODEL_CARD.md"]
    pages += sorted((REPO / "docs").rglob("*.md"))
    found = [
        f"{page.relative_to(REPO)}: {match}"
        for page in pages
        for match in _PLACEHOLDER.findall(_NOT_PROSE.sub(" ", page.read_text(encoding="utf-8")))
    ]
    assert not found, f"placeholders left in the prose (fill them or quote the name as code): {found}"


def test_readme_python_quick_start_runs_and_fills_only_the_hole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's Python block, run as written on the bundled photo with a hole mask (the shipped model)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from pconv.inference import default_weights_path

    if not default_weights_path().is_file():
        pytest.skip("this install bundles no default weights")
    code = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    photo = Image.open(REPO / "src/pconv/assets/kodim23.png").convert("RGB")
    photo.save(tmp_path / "photo.jpg", quality=95)
    hole = Image.new("L", photo.size, 0)
    ImageDraw.Draw(hole).ellipse((300, 200, 380, 260), fill=255)
    hole.save(tmp_path / "mask.png")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    before = np.asarray(Image.open("photo.jpg").convert("RGB"))
    after = np.asarray(Image.open("filled.png"))
    in_hole = np.asarray(hole) > 0
    changed = (after != before).any(axis=-1)
    assert after.shape == before.shape and not changed[~in_hole].any() and changed[in_hole].mean() > 0.5


def test_cli_reference_shows_every_command_and_option(site: Path) -> None:
    page = _html_text(site / "reference" / "cli" / "index.html")
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert len(commands) >= 10
    for name, sub in commands.items():
        assert f"pconv {name}" in page
        for action in sub._actions:
            for option in action.option_strings:
                assert option in page, f"pconv {name} {option} is missing from the CLI reference"


def test_api_reference_covers_every_public_module_and_name(site: Path) -> None:
    import griffe

    import pconv

    listed = set(re.findall(r"^::: pconv\.(\w+)$", (REPO / "docs/reference/api.md").read_text(), re.M))
    modules = {m.name for m in pkgutil.iter_modules(pconv.__path__)} - NOT_API
    assert modules - listed == set(), "add a line '::: pconv.<module>' to docs/reference/api.md"
    html = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    package = griffe.load("pconv", search_paths=[str(REPO / "src")])
    for name in sorted(listed):
        module = package.modules[name]
        defined = [n for n, m in module.members.items() if n[0] != "_" and not m.is_alias]  # not imports
        public = module.exports if module.exports is not None else defined
        for member in public:
            anchor = f"pconv.{name}.{member}"
            assert f'id="{anchor}"' in html, f"{anchor} has no entry in the API reference"
    for name, module in pconv._EXPORTS.items():  # what `from pconv import ...` offers, with its defining module
        assert f'id="{module}.{name}"' in html, f"{module}.{name} has no entry in the API reference"


def test_included_pages_keep_their_source_and_working_links(site: Path) -> None:
    """README, the model card and the benchmark results appear on the site with links that stay on the site."""
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="model_card/"' in home and 'src="before_after.jpg"' in home
    card = _html_text(site / "model_card" / "index.html")
    first_line = (REPO / "src/pconv/weights/MODEL_CARD.md").read_text(encoding="utf-8").splitlines()[0]
    assert first_line.lstrip("# ").replace("`", "") in card
    assert (site / "performance" / "results.png").is_file()


@pytest.fixture(scope="module")
def site_url(site: Path) -> Iterator[str]:
    pytest.importorskip("uvicorn")
    from live_server import serve
    from starlette.staticfiles import StaticFiles

    with serve(StaticFiles(directory=site, html=True)) as url:
        yield url


def test_site_loads_nothing_from_the_internet_and_searches_offline(site_url: str) -> None:
    from browser import chromium, local_only_page

    shots = os.environ.get("PCONV_DOCS_SCREENSHOTS")
    with chromium() as browser, local_only_page(browser, site_url) as page:
        for path in ["/", "/inpainting/", "/design/", "/reference/api/", "/model_card/"]:
            response = page.goto(site_url + path, wait_until="networkidle")
            assert response.status == 200, path
            assert page.locator("nav.md-nav--primary").count() == 1  # the theme's navigation rendered
            fonts = page.evaluate("getComputedStyle(document.body).fontFamily")
            assert "Roboto" not in fonts, "the theme still asks for its web font"
            if shots and path in SCREENSHOTS:
                page.screenshot(path=str(Path(shots) / SCREENSHOTS[path]))
        page.goto(site_url + "/", wait_until="networkidle")
        page.click("input[data-md-component='search-query']")  # the search worker and index are local files too
        page.keyboard.type("Inpainter")
        page.wait_for_selector(".md-search-result__item", timeout=20_000)
        assert "Inpainter" in page.text_content(".md-search-result__list")
