"""The docs' Try it page in headless Chromium: the editor with the model running in the browser (ONNX Runtime Web).

The page is built as ``make docs`` builds it (``tools/build_try.py``), served by a plain static file server on
loopback, and driven by Playwright in Debian's chromium with every request outside that server refused (and
counted as a failure). ``window.pconv.inpaint(image, hole)`` must give what ``pconv inpaint --backend onnx`` gives
on the same pair (the same fill graph, in WebAssembly instead of native code), keep every known pixel, and finish
on a 12-megapixel photo, where the window plan and the resizing run in JavaScript. Each engine path is checked
against Python's bytes: WebAssembly with threads (the page's service worker makes the static page cross-origin
isolated), and WebGPU falling back to WebAssembly by itself (Chromium's software WebGPU adapter; the shipped graph
does not load in ONNX Runtime Web's WebGPU build). A second visit downloads neither the model nor the
WebAssembly (Cache Storage), the first shows its download in bytes, and a mask over the whole image is refused
in the status line. Set ``PCONV_UPDATE_SCREENSHOT=1`` to also write ``docs/screenshots/try_page.png``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser import PAGE_FILLS, WEBGPU_ARGS, another_chromium, chromium, local_only_page, serve_site
from cli_runner import env
from live_server import serve_folder
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "src" / "pconv" / "assets" / "kodim23.png"
SCREENSHOT = REPO / "docs" / "screenshots" / "try_page.png"
sys.path.insert(0, str(REPO / "tools"))
import build_try  # noqa: E402

sys.path.remove(str(REPO / "tools"))


def have_build_tools() -> bool:
    return (build_try.ORT_DIST / build_try.ORT_FILES[0]).is_file() or shutil.which("npm") is not None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Try it page built into a fresh folder, with the test's photos and masks beside it in ``fixtures/``."""
    if not have_build_tools():
        pytest.skip("npm is not installed and web/node_modules has no onnxruntime-web: the page cannot be built")
    root = tmp_path_factory.mktemp("site")
    build_try.build(root)
    fixtures = root / "fixtures"
    fixtures.mkdir()
    photo = Image.open(PHOTO).convert("RGB")
    photo.save(fixtures / "photo.png")
    hole = Image.new("L", photo.size, 0)
    draw = ImageDraw.Draw(hole)
    draw.line([(120, 140), (380, 330), (640, 180)], fill=255, width=24)
    draw.ellipse([500, 360, 600, 470], fill=255)
    hole.save(fixtures / "mask.png")
    # 12 megapixels: one long stroke (its window is longer than 1024 px, so it is filled resized) and a dot.
    big = photo.resize((4000, 3000), Image.BICUBIC)
    big.save(fixtures / "big.png")
    big_hole = Image.new("L", big.size, 0)
    draw = ImageDraw.Draw(big_hole)
    draw.line([(500, 600), (1400, 1000), (2300, 800)], fill=255, width=70)
    draw.ellipse([3500, 2500, 3600, 2620], fill=255)
    big_hole.save(fixtures / "big_mask.png")
    small = photo.crop((200, 100, 328, 196))  # 128x96: quick on Chromium's software WebGPU
    small.save(fixtures / "small.png")
    small_hole = Image.new("L", small.size, 0)
    ImageDraw.Draw(small_hole).ellipse([40, 30, 80, 60], fill=255)
    small_hole.save(fixtures / "small_mask.png")
    Image.new("L", photo.size, 255).save(fixtures / "all_hole.png")  # no known pixel
    return root


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as browser:
        yield browser


def python_fill(tmp_path: Path, photo: Path, mask: Path) -> np.ndarray:
    """``pconv inpaint --backend onnx`` on the pair, as a user runs it."""
    out = tmp_path / f"{photo.stem}_python.png"
    args = ["--image", str(photo), "--mask", str(mask), "--output", str(out), "--backend", "onnx"]
    subprocess.run([sys.executable, "-m", "pconv", "inpaint", *args], env=env(), check=True, capture_output=True)
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def browser_fill(page: object, base: str, photo: str, mask: str) -> tuple[np.ndarray, float]:
    """``window.pconv.inpaint`` on two files of ``fixtures/``: (H, W, 3) ints and the seconds it took."""
    result = page.evaluate(PAGE_FILLS, [f"{base}/fixtures/{photo}", f"{base}/fixtures/{mask}", 1])
    image = Image.open(io.BytesIO(base64.b64decode(result["png"])))
    return np.asarray(image.convert("RGB")).astype(int), result["seconds"][0]


def open_page(page: object, base: str) -> None:
    page.goto(f"{base}/try/")
    page.wait_for_function("window.pconv && typeof window.pconv.inpaint === 'function'")


def test_the_page_runs_the_passes_then_the_finish_in_pieces(site: Path) -> None:
    """engine.json lists the passes whole, then the finish cut into graphs of at most MAX_NODES nodes (which
    ONNX Runtime Web sets up in a fraction of the time of one), each a graph the runtime can load."""
    onnx = pytest.importorskip("onnx")
    static = site / "try" / "static"
    models = json.loads((static / "engine.json").read_text())["models"]
    assert models[0] == "pconv_default.passes.onnx" and len(models) >= 3
    assert models[1:] == [f"pconv_default.finish.{k}.onnx" for k in range(len(models) - 1)]
    sizes = [len(onnx.load(str(static / name)).graph.node) for name in models[1:]]
    assert max(sizes) <= build_try.MAX_NODES["finish"] and sum(sizes) > build_try.MAX_NODES["finish"], sizes


def test_browser_fill_equals_python_onnx_fill(browser: object, site: Path, tmp_path: Path) -> None:
    photo = np.asarray(Image.open(site / "fixtures" / "photo.png")).astype(int)
    hole = np.asarray(Image.open(site / "fixtures" / "mask.png")) > 127
    with serve_folder(site) as base, local_only_page(browser, base) as page:
        open_page(page, base)
        got, _ = browser_fill(page, base, "photo.png", "mask.png")
        assert "never leaves" in page.inner_text("#local-note")
    want = python_fill(tmp_path, site / "fixtures" / "photo.png", site / "fixtures" / "mask.png")
    assert np.array_equal(got[~hole], photo[~hole])  # known pixels: the photo's own bytes
    off = np.abs(got - want).max(axis=-1)[hole]
    # Within 2 levels, but where WebAssembly's float round-off moves a structure ray's sample across a pixel boundary
    # (pconv.structure) the ray ends a step further: a few pixels in 10,000 may differ by more.
    assert np.mean(off > 2) < 1e-3, f"{int((off > 2).sum())} of {off.size} hole pixels differ by more than 2 levels"
    assert np.abs(got[hole] - photo[hole]).mean() > 1  # the hole was filled, not copied
    assert np.mean(got[hole] != want[hole]) < 0.01  # the same graph: (almost) the same bytes


def test_static_page_is_isolated_and_fills_with_webassembly_threads(browser: object, site: Path) -> None:
    """No GPU here: WebAssembly, with as many threads as the CPU offers (up to 4), thanks to the service worker."""
    with serve_folder(site) as base, local_only_page(browser, base) as page:
        open_page(page, base)
        info = page.evaluate("window.pconv.ready()")
        cores = page.evaluate("navigator.hardwareConcurrency")
        assert page.evaluate("crossOriginIsolated") and info["isolated"]
        assert page.evaluate("navigator.serviceWorker.controller.scriptURL").endswith("/try/sw.js")
    assert info["provider"] == "wasm" and info["webgpuError"] is None  # no adapter: WebGPU is not tried
    assert info["threads"] == min(4, cores)


def fill_asking_for_webgpu(browser: object, root: Path, *, timeout_ms: int) -> tuple[dict, np.ndarray]:
    """The small pair filled by the page of ``root`` opened with ``?ep=webgpu`` in a chromium with a (software)
    WebGPU adapter: the engine's info and the fill."""
    with (
        another_chromium(browser, WEBGPU_ARGS) as gpu_browser,
        serve_folder(root) as base,
        local_only_page(gpu_browser, base) as page,
    ):
        page.set_default_timeout(timeout_ms)
        page.goto(f"{base}/try/?ep=webgpu")
        page.wait_for_function("window.pconv && typeof window.pconv.ready === 'function'")
        assert page.evaluate("navigator.gpu.requestAdapter().then((a) => a !== null)")  # WebGPU is there
        info = page.evaluate("window.pconv.ready()")
        got, _ = browser_fill(page, base, "small.png", "small_mask.png")
    return info, got


def _site_with_a_broken_webgpu_build(site: Path, root: Path) -> Path:
    """A copy of the site whose WebGPU build cannot start (its WebAssembly binary is not one), listed as usual."""
    from pconv import web_engine

    shutil.copytree(site, root)
    static = root / "try" / "static"
    wasm = next(name for name in web_engine.WEBGPU_FILES if name.endswith(".wasm"))
    (static / wasm).write_bytes(b"not WebAssembly")
    models = json.loads((static / web_engine.MANIFEST).read_text())["models"]
    files = {name: static / name for name in (*build_try.ORT_FILES, *models)}
    (static / web_engine.MANIFEST).write_text(json.dumps(web_engine.manifest(files)))
    return root


def test_webgpu_falls_back_to_webassembly_with_python_bytes(browser: object, site: Path, tmp_path: Path) -> None:
    """Asked for WebGPU on Chromium's software adapter with a WebGPU build that fails to start: the worker goes on
    in WebAssembly by itself and fills as Python does."""
    root = _site_with_a_broken_webgpu_build(site, tmp_path / "site")
    photo = np.asarray(Image.open(root / "fixtures" / "small.png")).astype(int)
    hole = np.asarray(Image.open(root / "fixtures" / "small_mask.png")) > 127
    info, got = fill_asking_for_webgpu(browser, root, timeout_ms=240_000)
    assert info["provider"] == "wasm" and info["webgpuError"]
    want = python_fill(tmp_path, site / "fixtures" / "small.png", site / "fixtures" / "small_mask.png")
    assert np.array_equal(got[~hole], photo[~hole])
    assert np.abs(got - want).max() <= 2


@pytest.mark.slow
def test_webgpu_engine_fills_as_python(browser: object, site: Path, tmp_path: Path) -> None:
    """The WebGPU path itself, on Chromium's software adapter (minutes: SwiftShader): the shipped graph (no float64
    cast) runs on WebGPU with Python's bytes."""
    ort = pytest.importorskip("onnxruntime")
    from pconv import web_engine

    static = site / "try" / "static"
    assert json.loads((static / web_engine.MANIFEST).read_text())["graph_runs_on_webgpu"]
    rgb = np.asarray(Image.open(site / "fixtures" / "small.png"))
    hole = np.asarray(Image.open(site / "fixtures" / "small_mask.png"))
    session = ort.InferenceSession(str(build_try.MODEL), providers=["CPUExecutionProvider"])  # the shipped graph
    want = session.run(["filled"], {"image": rgb[None], "hole_mask": hole[None]})[0][0].astype(int)
    info, got = fill_asking_for_webgpu(browser, site, timeout_ms=900_000)
    assert info["provider"] == "webgpu" and info["webgpuError"] is None
    assert np.abs(got - want).max() <= 2


def test_second_visit_downloads_neither_model_nor_webassembly(browser: object, site: Path) -> None:
    """The first visit shows its download in bytes; the second takes the model and the runtime from Cache Storage."""
    manifest = site / "try" / "static" / "engine.json"
    context = browser.new_context()
    context.add_init_script(RECORD_PROGRESS)
    try:
        with serve_site(site) as (base, sent):
            for number in (1, 2):
                start = len(sent.requests)
                page = context.new_page()
                page.goto(f"{base}/try/")
                page.wait_for_function("window.pconv && typeof window.pconv.ready === 'function'")
                info = page.evaluate("window.pconv.ready()")
                shown = page.evaluate("window.__progress")
                hidden = page.locator("#progress").is_hidden()
                page.close()
                got = sent.requests[start:]
                if number == 1:
                    graphs = {f"/try/static/{name}" for name in json.loads(manifest.read_text())["models"]}
                    assert graphs | {"/try/static/ort-wasm-simd-threaded.wasm"} <= {path for path, _, _ in got}
                    assert info["downloaded"] > 20 * 2**20
                    assert any(re.fullmatch(r"Model \d+\.\d / 2\d\.\d MiB", text) for text in shown), shown
                    assert hidden  # the bar goes once the download is done
                else:
                    assert not [path for path, _, _ in got if path.endswith((".onnx", ".wasm"))], got
                    assert info["downloaded"] == 0 and shown == []
                    assert sum(size for _, _, size in got) < 64 * 1024  # the page's own files, revalidated
    finally:
        context.close()


def test_a_mask_over_the_whole_image_is_refused(browser: object, site: Path) -> None:
    with serve_folder(site) as base, local_only_page(browser, base) as page:
        page.set_default_timeout(120_000)
        open_page(page, base)
        message = page.evaluate(
            """async ([photoUrl, maskUrl]) => {
              const load = async (url) => {
                const bitmap = await createImageBitmap(await (await fetch(url)).blob());
                const ctx = new OffscreenCanvas(bitmap.width, bitmap.height).getContext("2d");
                ctx.drawImage(bitmap, 0, 0);
                return ctx.getImageData(0, 0, bitmap.width, bitmap.height);
              };
              try { await window.pconv.inpaint(await load(photoUrl), await load(maskUrl)); return "filled"; }
              catch (err) { return err.message; }
            }""",
            [f"{base}/fixtures/photo.png", f"{base}/fixtures/all_hole.png"],
        )
        assert message.startswith("the mask covers the whole image: nothing is left to fill from")
        page.set_input_files("#file-input", str(site / "fixtures" / "photo.png"))
        page.wait_for_selector("#canvas-wrap:not([hidden])")
        page.set_input_files("#mask-input", str(site / "fixtures" / "all_hole.png"))
        page.click("#run")
        page.wait_for_selector("#status.error")
        status = page.inner_text("#status")
    assert "the mask covers the whole image: nothing is left to fill from" in status
    assert "white = hole" in status


def test_large_photo_fills_by_windows_in_the_browser(browser: object, site: Path, tmp_path: Path) -> None:
    photo = np.asarray(Image.open(site / "fixtures" / "big.png")).astype(int)
    hole = np.asarray(Image.open(site / "fixtures" / "big_mask.png")) > 127
    with serve_folder(site) as base, local_only_page(browser, base) as page:
        page.set_default_timeout(240_000)
        open_page(page, base)
        got, _ = browser_fill(page, base, "big.png", "big_mask.png")
    assert got.shape == photo.shape
    assert np.array_equal(got[~hole], photo[~hole])
    want = python_fill(tmp_path, site / "fixtures" / "big.png", site / "fixtures" / "big_mask.png")
    assert np.abs(got - want).max() <= 2


def test_editor_paints_fills_and_offers_the_download(browser: object, site: Path) -> None:
    with serve_folder(site) as base, local_only_page(browser, base) as page:
        page.set_default_timeout(120_000)
        page.goto(f"{base}/try/")
        # the first visit reloads once for the service worker's isolation: a file chosen before that is lost
        page.wait_for_function("crossOriginIsolated && window.pconv && typeof window.pconv.inpaint === 'function'")
        page.set_input_files("#file-input", str(site / "fixtures" / "photo.png"))
        page.wait_for_selector("#canvas-wrap:not([hidden])")
        box = page.locator("#mask-canvas").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=8)
        page.mouse.up()
        before = page.evaluate(PIXELS_OF_PHOTO_CANVAS)
        page.click("#run")
        page.wait_for_selector("#status.ok")
        assert "Done" in page.inner_text("#status")
        after = page.evaluate(PIXELS_OF_PHOTO_CANVAS)
        assert before != after  # the photo on screen is the filled one
        assert page.get_attribute("#download", "href").startswith("blob:")
        assert page.get_attribute("#docs-link", "href") == "../"
        if os.environ.get("PCONV_UPDATE_SCREENSHOT"):
            page.locator("#compare").fill("35")
            page.dispatch_event("#compare", "input")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))


# Before the page's scripts: every text the download progress shows, in window.__progress.
RECORD_PROGRESS = """
window.__progress = [];
document.addEventListener("DOMContentLoaded", () => {
  const text = document.getElementById("progress-text");
  new MutationObserver(() => window.__progress.push(text.textContent)).observe(text, { childList: true });
});
"""

PIXELS_OF_PHOTO_CANVAS = """() => {
  const c = document.getElementById("photo-canvas");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 7) sum = (sum * 31 + d[i]) % 1000000007;
  return sum;
}"""
