"""Build the docs' **Try it** page: pconv's web editor with the model running in the browser, into ``SITE/try/``.

The page is the package's editor (``src/pconv/web``) in its browser engine (``<body data-engine="browser">``): the
fill graph runs in ONNX Runtime Web (WebGPU where the browser has a GPU, else WebAssembly) in a Web Worker, as
sessions one after the other: the shipped fill graph's two parts (``pconv.export.PART_GRAPHS``: the network's
passes, then the rest, the rest cut into graphs of at most ``MAX_NODES`` nodes by ``pconv.graph_split``), exported
here from the shipped weights, which ONNX Runtime Web sets up in a fraction of the time of the one graph
(docs/browser.md); their output is the shipped graph's, byte for byte. Everything it loads
is copied next to it, so any static file server can serve it and it makes no request outside its own origin:

    SITE/try/index.html
    SITE/try/sw.js                                                   the service worker: cross-origin isolation
    SITE/try/static/{app.js, fill.js, worker.js, style.css}          the editor (src/pconv/web)
    SITE/try/static/pconv_default.passes.onnx, pconv_default.finish.{0,1,2}.onnx   the fill graph in parts
    SITE/try/static/ort.*.bundle.min.mjs, ort-wasm-simd-threaded*.wasm   ONNX Runtime Web (pconv.web_engine)
    SITE/try/static/engine.json                                      their sizes and SHA-256 (pconv.web_engine)

A static host sends no ``Cross-Origin-Opener-Policy`` / ``Cross-Origin-Embedder-Policy`` headers, and without them
WebAssembly runs one thread; ``sw.js`` adds them to the page's own responses (the page registers it and reloads
once on the first visit).

ONNX Runtime Web comes from the npm registry at build time only, at the version pinned in ``web/package.json`` and
``web/package-lock.json`` (``npm ci`` runs when ``web/node_modules`` lacks it). ``mkdocs build`` runs this through
``tools/docs_hooks.py`` (``on_post_build``); by hand: ``python tools/build_try.py --site site``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))  # this checkout's pconv
from pconv import web_engine  # noqa: E402
from pconv.export import PART_GRAPHS  # noqa: E402

WEB_SRC = REPO / "src" / "pconv" / "web"
NPM_DIR = REPO / "web"
ORT_DIST = NPM_DIR / "node_modules" / "onnxruntime-web" / "dist"
ORT_FILES = web_engine.WASM_FILES + web_engine.WEBGPU_FILES
EDITOR_FILES = ("app.js", "fill.js", "worker.js", "style.css")
SERVICE_WORKER = "sw.js"  # at the page's level: its scope is the page's folder
MODEL = REPO / "src" / "pconv" / "weights" / "pconv_default.onnx"  # the shipped fill graph, whole
WEIGHTS = MODEL.with_suffix(".safetensors")  # what the page's two parts are exported from
# The finish part is cut into graphs of at most this many nodes (pconv.graph_split: ONNX Runtime Web's set-up grows
# much faster than a graph's node count; 1,477 nodes in three graphs set up 1.2 s sooner on a first visit, the same
# bytes); the passes stay one graph (a cut there would carry the U-Net's skip features; 606 nodes set up in 0.3 s).
MAX_NODES = {"finish": 600}


def pinned_ort_version() -> str:
    """The onnxruntime-web version ``web/package.json`` pins."""
    return json.loads((NPM_DIR / "package.json").read_text())["dependencies"]["onnxruntime-web"]


def ensure_ort() -> Path:
    """``web/node_modules/onnxruntime-web/dist`` at the pinned version, installed with ``npm ci`` if needed."""
    installed = NPM_DIR / "node_modules" / "onnxruntime-web" / "package.json"
    want = pinned_ort_version()
    if not installed.is_file() or json.loads(installed.read_text())["version"] != want:
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("build_try: npm is not installed; install Node.js and npm to build the Try it page")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=NPM_DIR, check=True)
    missing = [name for name in ORT_FILES if not (ORT_DIST / name).is_file()]
    if missing:
        raise SystemExit(f"build_try: onnxruntime-web {want} has no {', '.join(missing)} in {ORT_DIST}")
    return ORT_DIST


def page_html() -> str:
    """The editor's index.html in its browser engine, titled for the docs."""
    html = (WEB_SRC / "index.html").read_text(encoding="utf-8")
    for old, new in (
        ("<body>", '<body data-engine="browser">'),
        ("<title>pconv · inpainting editor</title>", "<title>pconv · try it in your browser</title>"),
    ):
        if old not in html:
            raise SystemExit(f"build_try: {WEB_SRC / 'index.html'} has no {old!r}; update tools/build_try.py")
        html = html.replace(old, new)
    return html


def build(site: Path) -> Path:
    """Write the Try it page into ``site/try`` (replacing an earlier build); returns that folder."""
    dist = ensure_ort()
    if not WEIGHTS.is_file():
        raise SystemExit(f"build_try: {WEIGHTS} is missing")
    out = site / "try"
    if out.exists():
        shutil.rmtree(out)
    static = out / "static"
    static.mkdir(parents=True)
    (out / "index.html").write_text(page_html(), encoding="utf-8")
    shutil.copy2(WEB_SRC / SERVICE_WORKER, out / SERVICE_WORKER)
    for name in EDITOR_FILES:
        shutil.copy2(WEB_SRC / name, static / name)
    engine = web_engine.runtime_files(dist)
    for name, path in engine.items():
        shutil.copy2(path, static / name)
    models = export_parts(static)
    manifest = web_engine.manifest({name: static / name for name in (*engine, *models)})
    (static / web_engine.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return out


def export_parts(folder: Path) -> list[str]:
    """Write the shipped fill graph's two parts into ``folder``, exported from ``WEIGHTS`` (PyTorch), each cut into
    graphs of at most ``MAX_NODES`` nodes where it has a limit (``<stem>.<part>.<k>.onnx``, else
    ``<stem>.<part>.onnx``). Returns their names in the order they run."""
    import numpy as np
    import onnx

    from pconv.export import export_onnx
    from pconv.graph_split import split_graph
    from pconv.inference import Inpainter

    model = Inpainter(WEIGHTS, backend="torch", device="cpu").model
    rng = np.random.default_rng(0)
    hole = np.zeros((1, 64, 96), np.uint8)
    hole[:, 20:40, 30:70] = 255
    example = {  # one small run, for what crosses each cut (split_graph)
        "image": rng.integers(0, 256, (1, 64, 96, 3), dtype=np.uint8),
        "hole_mask": hole,
        "prediction": rng.random((1, 3, 64, 96), dtype=np.float32),
    }
    names = []
    for part in PART_GRAPHS:
        path = export_onnx(model, folder / f"{MODEL.stem}.{part}.onnx", graph=part, weights_file=WEIGHTS)
        if part not in MAX_NODES:
            names.append(path.name)
            continue
        proto = onnx.load(str(path))
        feeds = {v.name: example[v.name] for v in proto.graph.input if v.name in example}
        pieces = split_graph(proto, MAX_NODES[part], feeds)
        path.unlink()
        for k, piece in enumerate(pieces):
            name = f"{MODEL.stem}.{part}.{k}.onnx"
            onnx.save(piece, str(folder / name))
            names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=REPO / "site", help="the built docs site (default: site/)")
    args = parser.parse_args()
    out = build(args.site)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"build_try: wrote {out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
