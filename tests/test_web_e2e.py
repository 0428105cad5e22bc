"""The web editor end to end in headless Chromium (Debian's ``chromium`` driven by Playwright, no browser download).

Opens the bundled photo, paints a stroke with the mouse, runs inpainting, downloads the PNG and checks that it
differs from the photo only inside the painted stroke, which was sent as the hole (white). Set
``PCONV_UPDATE_SCREENSHOT=1`` to also write the README's screenshot ``docs/web_editor.png``.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from browser import chromium, local_only_page  # noqa: E402
from live_server import serve  # noqa: E402

from pconv.config import ModelConfig  # noqa: E402
from pconv.inference import Inpainter  # noqa: E402
from pconv.model import PConvUNet  # noqa: E402
from pconv.server import create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "src" / "pconv" / "assets" / "kodim23.png"
SCREENSHOT = REPO / "docs" / "web_editor.png"


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
