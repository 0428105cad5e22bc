"""The web editor end to end in headless Chromium (Debian's ``chromium`` driven by Playwright, no browser download).

Opens the bundled photo, paints a stroke with the mouse, runs inpainting, downloads the PNG and checks that it
differs from the photo only inside the painted stroke, which was sent as the hole (white). With ONNX Runtime Web's
files on the server (``create_app(..., browser_files=...)``), the page offers "fill on this computer": that fill
uploads nothing and gives Python's bytes. A mask that leaves no known pixel shows the server's 422 message in the
status line. Set ``PCONV_UPDATE_SCREENSHOT=1`` to also write the README's screenshot ``docs/web_editor.png``.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from browser import chromium, local_only_page  # noqa: E402
from live_server import serve  # noqa: E402

from pconv.config import ModelConfig  # noqa: E402
from pconv.inference import Inpainter  # noqa: E402
from pconv.model import PConvUNet  # noqa: E402
from pconv.server import create_app  # noqa: E402
from pconv.web_engine import runtime_files  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "src" / "pconv" / "assets" / "kodim23.png"
SCREENSHOT = REPO / "docs" / "web_editor.png"
MODEL = REPO / "src" / "pconv" / "weights" / "pconv_default.onnx"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as browser:
        yield browser


class RecordingInpainter:
    """The real tiny-model ``Inpainter``, keeping what the server passed to it (to see the mask the page sent)."""

    def __init__(self) -> None:
        import torch

        torch.manual_seed(0)
        self.inner = Inpainter(model=PConvUNet(ModelConfig(depth=4, width=0.125)), device="cpu")
        self.calls: list[tuple[Image.Image, Image.Image]] = []

    def inpaint(self, image: Image.Image, hole_mask: Image.Image, *, dilate: int | None = None) -> Image.Image:
        self.calls.append((image.copy(), hole_mask.copy()))
        return self.inner.inpaint(image, hole_mask, dilate=dilate)


@pytest.fixture(scope="module")
def recorder() -> RecordingInpainter:
    return RecordingInpainter()


@pytest.fixture(scope="module")
def base_url(recorder: RecordingInpainter) -> Iterator[str]:
    with serve(create_app(recorder)) as url:
        yield url


@pytest.fixture
def page(browser: object, base_url: str) -> Iterator[object]:
    """A page that may only talk to the test server: every other request is aborted, and the test fails."""
    with local_only_page(browser, base_url, accept_downloads=True) as page:
        yield page


@pytest.fixture(scope="module")
def browser_fill_url(recorder: RecordingInpainter) -> Iterator[str]:
    """The same server, also serving ONNX Runtime Web (``web/node_modules``, installed by ``npm ci`` if needed) and
    the shipped graph for the page's in-browser fill."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import build_try
    finally:
        sys.path.remove(str(REPO / "tools"))
    if not (build_try.ORT_DIST / build_try.ORT_FILES[0]).is_file() and shutil.which("npm") is None:
        pytest.skip("npm is not installed and web/node_modules has no onnxruntime-web")
    files = {**runtime_files(build_try.ensure_ort()), MODEL.name: MODEL}
    with serve(create_app(recorder, browser_files=files)) as url:
        yield url


def painted_pixels(page: object) -> int:
    return page.evaluate(
        """() => { const c = document.getElementById('mask-canvas');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] >= 128; return n; }"""
    )


def test_paint_inpaint_download_changes_only_the_stroke(
    page: object, base_url: str, recorder: RecordingInpainter, tmp_path: Path
) -> None:
    page.goto(base_url + "/")
    page.set_input_files("#file-input", str(PHOTO))
    page.wait_for_selector("#canvas-wrap:not([hidden])")
    box = page.locator("#mask-canvas").bounding_box()
    scale = box["width"] / 768
    # A stroke across the parrots, in page pixels; then its points in image pixels.
    path = [(0.30, 0.30), (0.45, 0.50), (0.60, 0.55), (0.72, 0.40)]
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in path]
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=8)
    page.mouse.up()
    painted = painted_pixels(page)
    assert painted > 2000

    page.keyboard.press("Control+z")
    assert painted_pixels(page) == 0
    page.keyboard.press("Control+Shift+z")
    assert painted_pixels(page) == painted

    page.mouse.move(box["x"] + 0.85 * box["width"], box["y"] + 0.8 * box["height"])  # brush cursor off the stroke
    page.screenshot(path=str(tmp_path / "web_editor.png"))
    if os.environ.get("PCONV_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "web_editor.png", SCREENSHOT)

    calls_before = len(recorder.calls)
    page.click("#run")
    page.wait_for_selector("#status.ok", timeout=60_000)
    assert len(recorder.calls) == calls_before + 1
    sent_image, sent_mask = recorder.calls[-1]
    original = np.asarray(Image.open(PHOTO).convert("RGB"))
    assert np.array_equal(np.asarray(sent_image), original)  # the photo went up unchanged
    hole = np.asarray(sent_mask)
    assert hole.shape == (512, 768) and set(np.unique(hole)) <= {0, 255}  # full resolution, white = hole
    assert abs(int((hole == 255).sum()) - painted) <= painted * 0.02  # what was painted is what was sent
    for px, py in points:  # the stroke's corners are hole, a far corner of the photo is not
        assert hole[int((py - box["y"]) / scale), int((px - box["x"]) / scale)] == 255
    assert (hole[:60, :60] == 0).all() and (hole[-60:, -60:] == 0).all()

    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "kodim23-inpainted.png"
    result = np.asarray(Image.open(download.value.path()).convert("RGB"))
    assert result.shape == original.shape
    changed = (result != original).any(axis=-1)
    in_hole = hole == 255
    assert not changed[~in_hole].any(), "pixels outside the painted stroke changed"
    assert changed[in_hole].mean() > 0.5, "the painted stroke was not filled"
    assert page.locator("#result-section").is_visible()
    clip = "document.getElementById('before-canvas').style.clipPath"
    page.fill("#compare", "30")  # the original left of 30 %, the result right of it
    assert page.evaluate(clip).replace("0px", "0") == "inset(0 70% 0 0)"
    page.keyboard.down("o")  # hold O: the original everywhere
    assert page.evaluate(clip).replace("0px", "0") == "inset(0 0% 0 0)"
    page.keyboard.up("o")
    assert page.evaluate(clip).replace("0px", "0") == "inset(0 70% 0 0)"
    assert painted_pixels(page) == 0  # the filled hole's paint is cleared, ready for the next stroke


def test_mistakes_are_explained_on_the_page(page: object, base_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page.goto(base_url + "/")
    page.set_input_files("#file-input", str(PHOTO))
    page.wait_for_selector("#canvas-wrap:not([hidden])")
    page.click("#run")  # nothing painted yet: the mask is encoded first (canvas.toBlob), slow on a busy CPU
    expect(page.locator("#status.error")).to_contain_text("Paint over the area", timeout=20_000)
    mask = tmp_path / "square.png"
    Image.new("L", (100, 100), 255).save(mask)  # another aspect ratio than the 768x512 photo
    page.set_input_files("#mask-input", str(mask))
    expect(page.locator("#status")).to_contain_text("another aspect ratio")


def test_docs_render_offline_in_the_browser(page: object, base_url: str) -> None:
    page.goto(base_url + "/docs")
    page.wait_for_selector(".opblock-post", timeout=30_000)
    assert "/api/v1/inpaint" in page.text_content(".opblock-post")


def test_dropping_a_photo_opens_it(page: object, base_url: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buf, "PNG")
    page.goto(base_url + "/")
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
            document.getElementById('stage').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true }));
        }""",
        base64.b64encode(buf.getvalue()).decode(),
    )
    page.wait_for_selector("#canvas-wrap:not([hidden])")
    assert page.evaluate("document.getElementById('photo-canvas').width") == 64
    assert "dropped.png" in page.text_content("#status")


def test_fill_on_this_computer_uploads_nothing_and_gives_python_bytes(
    browser: object, browser_fill_url: str, recorder: RecordingInpainter, tmp_path: Path
) -> None:
    hole = Image.new("L", (768, 512), 0)
    ImageDraw.Draw(hole).ellipse([300, 200, 420, 300], fill=255)
    hole.save(tmp_path / "hole.png")
    with local_only_page(browser, browser_fill_url, accept_downloads=True) as page:
        page.set_default_timeout(180_000)
        page.goto(browser_fill_url + "/")
        page.wait_for_selector("#engine-choice:not([hidden])")
        assert page.is_checked("#engine-server")  # the server's fill stays the default
        assert page.evaluate("crossOriginIsolated")  # the server sends COOP/COEP: WebAssembly threads
        page.check("#engine-browser")
        assert "never leaves" in page.inner_text("#local-note")
        page.set_input_files("#file-input", str(PHOTO))
        page.wait_for_selector("#canvas-wrap:not([hidden])")
        page.set_input_files("#mask-input", str(tmp_path / "hole.png"))
        calls = len(recorder.calls)
        page.click("#run")
        page.wait_for_selector("#status.ok")
        info = page.evaluate("window.pconv.ready()")
        cores = page.evaluate("navigator.hardwareConcurrency")
        with page.expect_download() as download:
            page.click("#download")
        got = np.asarray(Image.open(download.value.path()).convert("RGB")).astype(int)
    assert len(recorder.calls) == calls  # nothing went to the server's fill
    assert info["provider"] == "wasm" and info["threads"] == min(4, cores) and info["isolated"]
    want = np.asarray(Inpainter(backend="onnx").inpaint(Image.open(PHOTO), hole)).astype(int)
    in_hole = np.asarray(hole) > 127
    photo = np.asarray(Image.open(PHOTO).convert("RGB")).astype(int)
    assert np.array_equal(got[~in_hole], photo[~in_hole])
    assert np.abs(got - want).max() <= 2


def test_page_offers_only_the_server_fill_without_the_runtime(page: object, base_url: str) -> None:
    page.goto(base_url + "/")
    page.wait_for_selector("body[data-server=ready]")
    assert page.evaluate("fetch('/health').then((r) => r.json()).then((h) => h.browser_fill)") is False
    assert page.locator("#engine-choice").is_hidden()


def test_the_servers_refusal_of_a_whole_image_mask_shows_in_the_status_line(
    page: object, base_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    Image.new("L", (768, 512), 255).save(tmp_path / "all.png")
    page.goto(base_url + "/")
    page.set_input_files("#file-input", str(PHOTO))
    page.wait_for_selector("#canvas-wrap:not([hidden])")
    page.set_input_files("#mask-input", str(tmp_path / "all.png"))
    with page.expect_response("**/api/v1/inpaint") as response:
        page.click("#run")
    assert response.value.status == 422
    detail = response.value.json()["detail"]
    expect(page.locator("#status.error")).to_contain_text(detail, timeout=60_000)
    assert "covers the whole image" in detail
