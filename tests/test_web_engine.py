"""What the in-browser fill loads (``pconv.web_engine``) and how ``pconv serve`` serves it: ONNX Runtime Web's files
and the graph under ``/static/``, ``engine.json`` with their sizes and SHA-256, COOP/COEP on every response, and
the choice left out when the runtime is not there. The files here are stand-ins: the browser tests
(``test_web_e2e.py``, ``test_try_page.py``) run the real ones."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from live_server import serve  # noqa: E402

from pconv import web_engine  # noqa: E402
from pconv.commands import serve as serve_command  # noqa: E402
from pconv.inference import default_onnx_path  # noqa: E402
from pconv.server import create_app  # noqa: E402


class Unused:
    """An inpainter these tests never call."""

    def inpaint(self, image: Image.Image, hole_mask: Image.Image, *, dilate: int | None = None) -> Image.Image:
        raise AssertionError("not called")


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A stand-in for onnxruntime-web's dist folder, WebAssembly and WebGPU builds."""
    folder = tmp_path / "dist"
    folder.mkdir()
    for name in web_engine.WASM_FILES + web_engine.WEBGPU_FILES:
        (folder / name).write_bytes(name.encode() * 10)
    return folder


@pytest.fixture
def files(dist: Path, tmp_path: Path) -> dict[str, Path]:
    graph = tmp_path / "fill.onnx"
    graph.write_bytes(b"a graph with no float64")
    return {**web_engine.runtime_files(dist), graph.name: graph}


@pytest.fixture
def url(files: dict[str, Path]) -> Iterator[str]:
    with serve(create_app(Unused(), browser_files=files)) as base:
        yield base


def test_runtime_files_need_the_webassembly_build(dist: Path) -> None:
    assert set(web_engine.runtime_files(dist)) == set(web_engine.WASM_FILES + web_engine.WEBGPU_FILES)
    (dist / web_engine.WEBGPU_FILES[1]).unlink()
    assert set(web_engine.runtime_files(dist)) == set(web_engine.WASM_FILES)  # WebGPU only when complete
    (dist / web_engine.WASM_FILES[1]).unlink()
    with pytest.raises(FileNotFoundError, match="ort-wasm-simd-threaded.wasm.*onnxruntime-web"):
        web_engine.runtime_files(dist)


def test_manifest_lists_sizes_hashes_and_where_the_graph_runs(files: dict[str, Path]) -> None:
    listing = web_engine.manifest(files)
    assert listing["models"] == ["fill.onnx"]
    assert listing["engines"] == {"wasm": list(web_engine.WASM_FILES), "webgpu": list(web_engine.WEBGPU_FILES)}
    for name, path in files.items():
        data = path.read_bytes()
        assert listing["files"][name] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert listing["graph_runs_on_webgpu"]
    with pytest.raises(ValueError, match="one .onnx graph"):
        web_engine.manifest({name: path for name, path in files.items() if name != "fill.onnx"})


def test_manifest_lists_the_fills_two_parts_in_the_order_they_run(files: dict[str, Path], tmp_path: Path) -> None:
    runtime = {name: path for name, path in files.items() if not name.endswith(".onnx")}
    parts = {}
    for name in ("pconv_default.finish.onnx", "pconv_default.passes.onnx"):
        parts[name] = tmp_path / name
        parts[name].write_bytes(name.encode())
    listing = web_engine.manifest({**runtime, **parts})
    assert listing["models"] == ["pconv_default.passes.onnx", "pconv_default.finish.onnx"]
    assert set(listing["files"]) == set(runtime) | set(parts)
    for wrong in (
        {**runtime, **parts, **{"fill.onnx": files["fill.onnx"]}},
        {**runtime, "a.onnx": parts["pconv_default.passes.onnx"], "b.onnx": parts["pconv_default.finish.onnx"]},
    ):
        with pytest.raises(ValueError, match="one .onnx graph"):
            web_engine.manifest(wrong)


def test_manifest_lists_a_part_cut_into_pieces_in_their_order(files: dict[str, Path], tmp_path: Path) -> None:
    """A part cut by ``pconv.graph_split`` (``<stem>.<part>.<k>.onnx``) runs piece by piece, in k's order."""
    runtime = {name: path for name, path in files.items() if not name.endswith(".onnx")}
    names = ["m.finish.2.onnx", "m.passes.onnx", "m.finish.10.onnx", "m.finish.0.onnx", "m.finish.1.onnx"]
    names += [f"m.finish.{k}.onnx" for k in range(3, 10)]
    graphs = {}
    for name in names:
        graphs[name] = tmp_path / name
        graphs[name].write_bytes(name.encode())
    listing = web_engine.manifest({**runtime, **graphs})
    assert listing["models"] == ["m.passes.onnx", *(f"m.finish.{k}.onnx" for k in range(11))]
    gap = {name: path for name, path in graphs.items() if name != "m.finish.1.onnx"}
    both = {**graphs, "m.finish.onnx": graphs["m.passes.onnx"]}  # the part whole and in pieces
    no_passes = {name: path for name, path in graphs.items() if name != "m.passes.onnx"}
    for wrong in (gap, both, no_passes):
        with pytest.raises(ValueError, match="one .onnx graph"):
            web_engine.manifest({**runtime, **wrong})


def test_the_shipped_graph_runs_on_webgpu_and_a_float64_one_is_told_apart(tmp_path: Path) -> None:
    """ONNX Runtime Web's WebGPU build has no float64 kernels: the shipped graph holds no float64 cast (the layer
    exports its all-hole ratio as a select), so the worker may take WebGPU by itself; a graph that does is told."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    assert web_engine.graph_runs_on_webgpu(default_onnx_path())
    cast = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE)
    graph = helper.make_graph([cast], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1])])  # fmt: skip
    onnx.save(helper.make_model(graph), str(tmp_path / "double.onnx"))
    assert not web_engine.graph_runs_on_webgpu(tmp_path / "double.onnx")


def test_server_serves_the_files_and_their_manifest_next_to_the_worker(url: str, files: dict[str, Path]) -> None:
    listing = httpx.get(f"{url}/static/engine.json").json()
    assert listing == web_engine.manifest(files)
    wasm = httpx.get(f"{url}/static/ort-wasm-simd-threaded.wasm")
    assert wasm.headers["content-type"] == "application/wasm"  # streaming compilation needs it
    assert wasm.content == files["ort-wasm-simd-threaded.wasm"].read_bytes()
    assert httpx.get(f"{url}/static/ort.wasm.bundle.min.mjs").headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{url}/static/fill.onnx").content == files["fill.onnx"].read_bytes()
    assert httpx.get(f"{url}/static/worker.js").status_code == 200  # the package's files are still there
    assert httpx.get(f"{url}/health").json()["browser_fill"] is True


def test_every_response_is_cross_origin_isolated(url: str) -> None:
    for path in ("/", "/static/app.js", "/static/engine.json", "/health", "/nowhere"):
        headers = httpx.get(url + path).headers
        assert headers["cross-origin-opener-policy"] == "same-origin", path
        assert headers["cross-origin-embedder-policy"] == "require-corp", path


def test_without_the_runtime_the_server_offers_its_own_fill_only() -> None:
    with serve(create_app(Unused())) as base:
        assert httpx.get(f"{base}/health").json()["browser_fill"] is False
        assert httpx.get(f"{base}/static/engine.json").status_code == 404


def serve_args(**options: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_command.add_arguments(parser)
    args = parser.parse_args([])
    for name, value in options.items():
        setattr(args, name, value)
    return args


def test_pconv_serve_pairs_the_runtime_with_its_fill_graph(dist: Path, tmp_path: Path) -> None:
    shipped = serve_command._browser_files(serve_args(browser_runtime=dist))
    assert shipped is not None and shipped[default_onnx_path().name] == default_onnx_path()
    graph = tmp_path / "mine.onnx"
    graph.write_bytes(b"graph")
    assert serve_command._browser_files(serve_args(browser_runtime=dist, onnx=graph))["mine.onnx"] == graph
    # safetensors weights have no graph for the browser: the page fills on the server only
    assert serve_command._browser_files(serve_args(browser_runtime=dist, weights=tmp_path / "w.safetensors")) is None
    with pytest.raises(ValueError, match="--browser-runtime .* is not a folder"):
        serve_command._browser_files(serve_args(browser_runtime=tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="onnxruntime-web"):
        serve_command._browser_files(serve_args(browser_runtime=tmp_path))
