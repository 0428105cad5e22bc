"""The docs' Try it page in headless Chromium: the editor with the model running in the browser (ONNX Runtime Web).

The page is built as ``make docs`` builds it (``tools/build_try.py``), served by a plain static file server on
loopback, and driven by Playwright in Debian's chromium with every request outside that server refused (and
counted as a failure). ``window.pconv.inpaint(image, hole)`` must give what ``pconv inpaint --backend onnx`` gives
on the same pair (the same fill graph, in WebAssembly instead of native code), keep every known pixel, and finish
on a 12-megapixel photo, where the window plan and the resizing run in JavaScript. Set
``PCONV_UPDATE_SCREENSHOT=1`` to also write ``docs/screenshots/try_page.png``.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser import PAGE_FILLS, chromium, local_only_page
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


def test_browser_fill_equals_python_onnx_fill(browser: object, site: Path, tmp_path: Path) -> None:
    photo = np.asarray(Image.open(site / "fixtures" / "photo.png")).astype(int)
    hole = np.asarray(Image.open(site / "fixtures" / "mask.png")) > 127
    with serve_folder(site) as base, local_only_page(browser, base) as page:
        open_page(page, base)
        got, _ = browser_fill(page, base, "photo.png", "mask.png")
        assert "never leaves" in page.inner_text("#local-note")
    want = python_fill(tmp_path, site / "fixtures" / "photo.png", site / "fixtures" / "mask.png")
    assert np.array_equal(got[~hole], photo[~hole])  # known pixels: the photo's own bytes
    assert np.abs(got - want).max() <= 2
    assert np.abs(got[hole] - photo[hole]).mean() > 1  # the hole was filled, not copied
    assert np.mean(got[hole] != want[hole]) < 0.01  # the same graph: (almost) the same bytes


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


PIXELS_OF_PHOTO_CANVAS = """() => {
  const c = document.getElementById("photo-canvas");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 7) sum = (sum * 31 + d[i]) % 1000000007;
  return sum;
}"""
