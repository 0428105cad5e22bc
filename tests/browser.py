"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` driven by Playwright's Python package
(Playwright never downloads a browser here), pages that may only talk to one local server, and a static file
server that records what it sent."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

# WebGPU without a GPU: Chromium's software adapter (SwiftShader's Vulkan), slow but the same WebGPU code path.
WEBGPU_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + [
    "--enable-unsafe-webgpu",
    "--enable-features=Vulkan",
    "--use-vulkan=swiftshader",
    "--use-webgpu-adapter=swiftshader",
    "--use-angle=swiftshader",
]


@contextlib.contextmanager
def chromium(args: list[str] = CHROMIUM_ARGS) -> Iterator[object]:
    """A Playwright ``Browser`` on Debian's chromium; skips the test with the reason when either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def another_chromium(browser: object, args: list[str]) -> Iterator[object]:
    """A second chromium with other ``args``, from ``browser``'s Playwright (one sync Playwright at a time)."""
    other = browser.browser_type.launch(executable_path=str(CHROMIUM), args=args)
    try:
        yield other
    finally:
        other.close()


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


@dataclass
class Sent:
    """What a ``serve_site`` server answered: (path, status, body bytes) per request, in order."""

    requests: list[tuple[str, int, int]] = field(default_factory=list)

    def bytes_since(self, start: int = 0) -> dict[str, int]:
        """Body bytes sent per path from request number ``start`` on (paths without their query)."""
        sizes: dict[str, int] = {}
        for path, _, size in self.requests[start:]:
            sizes[path] = sizes.get(path, 0) + size
        return sizes


@contextlib.contextmanager
def serve_site(folder: Path) -> Iterator[tuple[str, Sent]]:
    """A plain static file server on loopback, as a static host is (no COOP/COEP headers; ``.mjs`` as JavaScript,
    ``.wasm`` as ``application/wasm``; 304 to a revalidation), recording every answer: yields (base URL, ``Sent``)."""
    sent = Sent()
    lock = threading.Lock()

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {
            **http.server.SimpleHTTPRequestHandler.extensions_map,
            ".mjs": "text/javascript",
            ".js": "text/javascript",
            ".wasm": "application/wasm",
        }

        def send_head(self) -> Any:
            body = super().send_head()
            size = 0
            if body is not None:
                body.seek(0, 2)
                size = body.tell()
                body.seek(0)
            with lock:
                sent.requests.append((self.path.split("?")[0], self._status, size))
            return body

        def send_response(self, code: int, message: str | None = None) -> None:
            self._status = code
            super().send_response(code, message)

        def log_message(self, *args: object) -> None:  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sent
    finally:
        server.shutdown()
        thread.join(timeout=20)
        server.server_close()


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
