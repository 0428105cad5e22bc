"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` driven by Playwright's Python package
(Playwright never downloads a browser here), and pages that may only talk to one local server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-proxy-server",
]


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A Playwright ``Browser`` on Debian's chromium; skips the test with the reason when either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def local_only_page(browser: object, base_url: str, **context_options: object) -> Iterator[object]:
    """A page that may only reach ``base_url`` (and blob:/data: URLs): every other request is aborted, and the
    block fails after the ``with`` if there was any, naming them."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, **context_options)
    outside: list[str] = []

    def gate(route: object) -> None:
        url = route.request.url
        if url.startswith(base_url) or url.startswith(("blob:", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", gate)
    try:
        yield context.new_page()
    finally:
        context.close()
    assert not outside, f"the page tried to reach the outside: {outside}"


# For a page that exposes ``window.pconv.inpaint`` (the Try it page), evaluated with ``[photo_url, mask_url, rounds]``:
# the two PNGs as ImageData, ``rounds`` fills, the seconds of each and the last fill as a base64 PNG.
PAGE_FILLS = """async ([photoUrl, maskUrl, rounds]) => {
  const load = async (url) => {
    const blob = await (await fetch(url)).blob();
    const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const ctx = new OffscreenCanvas(bitmap.width, bitmap.height).getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    return ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  };
  const [image, hole] = [await load(photoUrl), await load(maskUrl)];
  const seconds = [];
  let out = null;
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    out = await window.pconv.inpaint(image, hole);
    seconds.push((performance.now() - started) / 1000);
  }
  const canvas = new OffscreenCanvas(out.width, out.height);
  canvas.getContext("2d").putImageData(out, 0, 0);
  const bytes = new Uint8Array(await (await canvas.convertToBlob({ type: "image/png" })).arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return { seconds, png: btoa(text) };
}"""
