"""The files the web editor's in-browser fill loads, and ``engine.json``, the list its worker reads first.

The editor's worker (``pconv/web/worker.js``) fills with the ONNX fill graph in ONNX Runtime Web, loading
everything from its own folder: ``engine.json`` (``manifest``), one ONNX Runtime Web build (a JavaScript bundle and
its WebAssembly: ``WASM_FILES``, or ``WEBGPU_FILES`` where the browser has a GPU) and the graph (one file, or the
fill's parts, run one after the other). The manifest gives
each file's size (the progress bar's total) and SHA-256 (the key under which the browser keeps it in Cache
Storage, so a later visit downloads nothing until the file changes).

Two places serve them: the docs' Try it page (``tools/build_try.py`` copies them next to the page at build time)
and ``pconv serve`` (``pconv.server.create_app(..., browser_files=...)``), which serves ONNX Runtime Web from its
npm ``dist`` folder: ONNX Runtime Web is not in pconv's wheel (about 15 MB, 44 MB with WebGPU), so the editor offers
"fill on this computer" only where that folder is found (``pconv serve --browser-runtime``, or a checkout's
``web/node_modules`` after ``npm ci``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from pconv.export import PART_GRAPHS

__all__ = [
    "MANIFEST",
    "WASM_FILES",
    "WEBGPU_FILES",
    "checkout_runtime",
    "graph_runs_on_webgpu",
    "manifest",
    "runtime_files",
]

MANIFEST = "engine.json"
# ONNX Runtime Web's builds, as (bundle, WebAssembly): the CPU one (SIMD, threads), and the one with the WebGPU
# execution provider (it runs the CPU provider too, for what WebGPU does not).
WASM_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
WEBGPU_FILES = ("ort.webgpu.bundle.min.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
ENGINES = {"wasm": WASM_FILES, "webgpu": WEBGPU_FILES}
# A Cast to float64 as ONNX serialises it: the attribute {name: "to" (field 1), i: 11 = DOUBLE (field 3)}.
_CAST_TO_DOUBLE = b"\n\x02to\x18\x0b"


def runtime_files(dist: Path) -> dict[str, Path]:
    """Name -> path of ONNX Runtime Web's files in its npm ``dist`` folder: the WebAssembly build (required) and the
    WebGPU build (when the folder has it).

    Raises:
        FileNotFoundError: the folder lacks the WebAssembly build.
    """
    missing = [name for name in WASM_FILES if not (dist / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{dist} has no {', '.join(missing)}: pass onnxruntime-web's dist folder "
            "(npm install onnxruntime-web, then node_modules/onnxruntime-web/dist)"
        )
    names = WASM_FILES + (WEBGPU_FILES if all((dist / name).is_file() for name in WEBGPU_FILES) else ())
    return {name: dist / name for name in names}


def checkout_runtime() -> Path | None:
    """``web/node_modules/onnxruntime-web/dist`` of the pconv checkout this package runs from (an editable
    install after ``npm ci`` in ``web/``, or ``make docs``), or None when there is none."""
    dist = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "onnxruntime-web" / "dist"
    return dist if all((dist / name).is_file() for name in WASM_FILES) else None


def graph_runs_on_webgpu(graph: Path) -> bool:
    """Whether ONNX Runtime Web's WebGPU build can load the ``.onnx`` graph: that build has no float64 kernels
    (WebGPU has no float64), so a graph holding a Cast to float64 fails to load there."""
    return _CAST_TO_DOUBLE not in graph.read_bytes()


def manifest(files: Mapping[str, Path]) -> dict:
    """``engine.json`` for the worker: the graphs' names in the order they run, the builds present, whether the
    WebGPU build can run the graphs (``graph_runs_on_webgpu``: the worker tries WebGPU by itself only then), and each
    file's bytes and SHA-256.

    Args:
        files: name -> path of what the worker may load: ONNX Runtime Web's files (``runtime_files``) and either one
            ``.onnx`` fill graph (``pconv export-onnx``) or the fill's parts, ``<stem>.<part>.onnx`` for each of
            ``pconv.export.PART_GRAPHS``, a part perhaps cut into ``<stem>.<part>.0.onnx``, ``.1.onnx``, ...
            (``pconv.graph_split``; smaller sessions set up faster than one, docs/browser.md).
    Raises:
        ValueError: neither one ``.onnx`` file nor every part once, or no WebAssembly build among ``files``.
    """
    found = [name for name in files if name.endswith(".onnx")]
    graphs = found if len(found) == 1 else _parts_in_order(found)
    if not graphs or not all(name in files for name in WASM_FILES):
        raise ValueError(
            f"need one .onnx graph (or one .{'/.'.join(PART_GRAPHS)}.onnx each, or a part as .<part>.0.onnx, "
            f".1.onnx, ...) and {', '.join(WASM_FILES)}; got {', '.join(sorted(files))}"
        )
    return {
        "models": graphs,
        "engines": {kind: list(names) for kind, names in ENGINES.items() if all(name in files for name in names)},
        "graph_runs_on_webgpu": all(graph_runs_on_webgpu(files[name]) for name in graphs),
        "files": {name: {"bytes": path.stat().st_size, "sha256": _sha256(path)} for name, path in files.items()},
    }


def _parts_in_order(found: list[str]) -> list[str]:
    """The fill's parts among the ``.onnx`` names ``found``, in the order they run: for each of ``PART_GRAPHS``,
    ``<stem>.<part>.onnx``, or its pieces ``<stem>.<part>.0.onnx``, ``.1.onnx``, ... (``pconv.graph_split``); [] when
    ``found`` is not exactly that."""
    stem = found[0].partition(".")[0] if found else ""
    order: list[str] = []
    for part in PART_GRAPHS:
        whole, prefix = f"{stem}.{part}.onnx", f"{stem}.{part}."
        pieces = [name for name in found if name.startswith(prefix) and name[len(prefix) : -len(".onnx")].isdigit()]
        numbered = [f"{prefix}{k}.onnx" for k in range(len(pieces))]
        if whole in found and not pieces:
            order.append(whole)
        elif pieces and whole not in found and set(pieces) == set(numbered):
            order += numbered
        else:
            return []
    return order if sorted(order) == sorted(found) else []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
