"""HTTP API and web editor for inpainting: ``create_app(inpainter) -> FastAPI``.

Endpoints:
- ``POST /api/v1/inpaint`` (multipart ``image``, ``mask``, optional ``dilate`` and ``mask_polarity``) ->
  ``image/png`` of the image's size. The mask is a ``hole_mask``: **white = hole** (grey above 127, or the alpha of
  a mask painted on a transparent layer; ``mask_polarity=black-hole`` reads black as hole). Known pixels come back
  bit-identical. A mask of another size but the image's aspect ratio is resized (nearest neighbour) like the CLI
  does; another aspect ratio is a 400 naming both sizes; a mask that leaves no known pixel is a 422 that names
  ``mask_polarity``.
- ``GET /health``: status, load and limits as JSON.
- ``GET /``: the web editor (``pconv/web``); ``GET /docs`` and ``/redoc``: API docs served from local files,
  never from a CDN; ``GET /openapi.json``.

Limits: request bodies over ``max_upload_bytes`` get 413 (checked on ``Content-Length`` and while reading);
images over ``max_pixels`` get 413; uploads that are not images get 415, broken ones 422. At most
``max_concurrency`` inferences run at once (in a thread pool, so the event loop stays responsive); up to
``max_queue`` more wait, and the rest get 503 with ``Retry-After``: the seconds until a place is likely free (the
mean service time times the requests ahead, per slot; at least 1). Nothing a client sends is used as a file-system
path. CORS is off, and a POST from another origin is refused (403).

All state lives in the app the factory returns; there are no module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool

from pconv import __version__
from pconv.imageio import to_8bit
from pconv.inference import NoKnownPixelError
from pconv.masks import pil_to_hole_mask, valid_to_hole
from pconv.resize import resize_hole_mask
from pconv.web_engine import MANIFEST, manifest

__all__ = ["Busy", "InferenceGate", "SupportsInpaint", "create_app"]

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 40 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000  # about 7700 x 5200
MAX_DILATE = 64
MASK_HELP = (
    "hole mask, white = hole (or opaque paint on a transparent layer); the image's size, or a smaller or "
    "larger one of the same aspect ratio (resized with nearest neighbour)"
)
POLARITY_HELP = "which colour of the mask marks the hole: white-hole (default) or black-hole"
NO_KNOWN_PIXEL = (
    "the mask covers the whole image, so no known pixel is left to fill from; if black marks the hole in this mask, "
    "send mask_polarity=black-hole"
)
# Decoders a client may reach: common raster formats only (no EPS/PS, which would run Ghostscript).
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
_FORMAT_LIST = ", ".join(IMAGE_FORMATS[:-1]) + " or " + IMAGE_FORMATS[-1]
_INDEX_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# On every response, so the editor's page is cross-origin isolated: its in-browser fill may then run several
# WebAssembly threads (SharedArrayBuffer). Everything the pages load comes from this server, so nothing breaks.
_ISOLATION_HEADERS = [
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
]
# Swagger UI and ReDoc pages carry one inline script; everything else still comes from this server.
_DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; object-src 'none'"
)


class SupportsInpaint(Protocol):
    """What the server needs from an inpainter (``pconv.inference.Inpainter`` is one)."""

    def inpaint(self, image: Image.Image, hole_mask: Image.Image, *, dilate: int | None = None) -> Image.Image:
        """``image``: PIL RGB(A); ``hole_mask``: PIL ``L`` of the same size, 255 = hole. Returns PIL RGB(A)."""
        ...


class Busy(Exception):
    """Every inference slot and every queue place is taken."""


class InferenceGate:
    """At most ``max_concurrency`` holders at once; up to ``max_queue`` more wait; anyone beyond is refused.

    Used from one event loop only (the counters need no lock there). The semaphore is created on first use,
    inside the running loop.
    """

    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        if max_concurrency < 1 or max_queue < 0:
            raise ValueError(f"need max_concurrency >= 1 and max_queue >= 0, got {max_concurrency}, {max_queue}")
        self.max_concurrency, self.max_queue = max_concurrency, max_queue
        self.running = 0
        self.waiting = 0
        self.service_seconds = 0.0  # moving average of how long a slot is held (0 before the first)
        self._semaphore: asyncio.Semaphore | None = None

    def retry_after(self) -> int:
        """Whole seconds (at least 1, as ``Retry-After`` counts) until the queue has likely moved on by one place:
        the mean service time times the holders and waiters ahead, shared by the slots."""
        ahead = self.running + self.waiting
        return max(1, math.ceil(self.service_seconds * ahead / self.max_concurrency))

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one inference slot; raises ``Busy`` at once when the queue is full."""
        if self.running + self.waiting >= self.max_concurrency + self.max_queue:
            raise Busy(
                f"server busy: {self.running} inference(s) running and {self.waiting} waiting "
                f"(limit {self.max_concurrency} + {self.max_queue} queued); try again shortly"
            )
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        start = time.monotonic()
        try:
            yield
        finally:
            self.running -= 1
            self._semaphore.release()
            held = time.monotonic() - start
            self.service_seconds = held if self.service_seconds == 0 else 0.8 * self.service_seconds + 0.2 * held


class _BodyLimit:
    """ASGI middleware: 413 for bodies over ``limit`` bytes, by ``Content-Length`` and by counting while reading."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _send_json(send, 413, self._message(int(declared)))
            return
        seen = 0

        async def counting_receive() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(status_code=413, detail=self._message(seen))
            return message

        await self.app(scope, counting_receive, send)

    def _message(self, size: int) -> str:
        return (
            f"upload too large: {size} bytes or more, the limit is {self.limit} bytes "
            f"({self.limit / 2**20:.1f} MiB); send a smaller image (or start the server with a higher limit)"
        )


class _SameOrigin:
    """ASGI middleware: refuse (403) a non-GET request whose ``Origin`` is not this server (CORS is off)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(scope["headers"])
            origin = headers.get(b"origin", b"").decode("latin-1")
            host = headers.get(b"host", b"").decode("latin-1")
            if origin and origin.split("://", 1)[-1] != host:
                await _send_json(send, 403, f"cross-origin request from {origin} refused; CORS is off")
                return
        await self.app(scope, receive, send)


class _CrossOriginIsolated:
    """ASGI middleware: the COOP/COEP headers (``_ISOLATION_HEADERS``) on every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_isolated(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_ISOLATION_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_isolated)


async def _send_json(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _http_error(status: int, detail: str, **headers: str) -> Exception:
    return HTTPException(status_code=status, detail=detail, headers=headers or None)


def open_upload(data: bytes, field: str, *, max_pixels: int) -> Image.Image:
    """Decode an uploaded image (EXIF orientation applied, as browsers show it) or raise an HTTP error.

    Raises:
        HTTPException: 422 empty or undecodable (truncated, corrupt), 415 not an image, 413 too many pixels.
    """
    if not data:
        raise _http_error(422, f"the {field} upload is empty; send an image file")
    try:
        img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:
        raise _http_error(413, f"the {field} upload has too many pixels to decode safely") from None
    except (UnidentifiedImageError, OSError):
        raise _http_error(
            415,
            f"the {field} upload is not an image this server reads; send {_FORMAT_LIST}",
        ) from None
    width, height = img.size
    if width * height > max_pixels:
        raise _http_error(
            413, f"the {field} upload is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
        )
    try:
        img.load()
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # Pillow reports damaged files as OSError, SyntaxError, TypeError, struct.error...
        raise _http_error(
            422, f"the {field} upload could not be decoded: truncated or corrupt {img.format} ({exc})"
        ) from None


def prepare_pair(
    image: Image.Image, mask: Image.Image, *, mask_polarity: str = "white-hole"
) -> tuple[Image.Image, Image.Image]:
    """Image -> RGB or RGBA; mask -> ``L`` hole mask (255 = hole) of the image's size.

    A mask with the image's aspect ratio but another size is resized with nearest neighbour (as the CLI does);
    another aspect ratio raises a 400 naming both sizes (width x height). ``mask_polarity="black-hole"`` reads the
    mask's black as hole. A mask that leaves no known pixel raises a 422 (nothing to fill from).
    """
    has_alpha = "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info)
    photo = to_8bit(image).convert("RGBA" if has_alpha else "RGB")  # 16-bit grey scaled, not clipped to white
    white = pil_to_hole_mask(mask)  # (h, w) uint8 {0, 1}, 1 = white (or painted)
    hole = white if mask_polarity == "white-hole" else valid_to_hole(white)  # 1 = hole
    try:
        hole = resize_hole_mask(hole, photo.size)
    except ValueError as exc:
        raise _http_error(400, str(exc)) from None
    if hole.size and hole.all():
        raise _http_error(422, NO_KNOWN_PIXEL)
    return photo, Image.fromarray(hole * 255, "L")


def encode_png(image: Image.Image, *, icc_profile: bytes | None = None) -> bytes:
    """PNG bytes of ``image``, carrying the input's ICC profile so colours stay as they were."""
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=4, icc_profile=icc_profile)
    return buf.getvalue()


def web_dir() -> Path:
    """The static editor's folder inside the package (``pconv/web``)."""
    return Path(str(resources.files("pconv").joinpath("web")))


def create_app(
    inpainter: SupportsInpaint,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_concurrency: int = 1,
    max_queue: int = 8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    browser_files: Mapping[str, Path] | None = None,
) -> FastAPI:
    """Build the FastAPI app around one inpainter.

    Args:
        inpainter: anything with ``inpaint(image, hole_mask, *, dilate=None)`` on PIL images (``SupportsInpaint``).
        max_upload_bytes: largest request body accepted; larger ones get 413.
        max_concurrency: inferences running at once (each in a worker thread).
        max_queue: requests allowed to wait for a slot; beyond that, 503.
        max_pixels: largest image (width x height) accepted; larger ones get 413.
        browser_files: name -> path of what the editor's "fill on this computer" loads (ONNX Runtime Web's files,
            ``pconv.web_engine.runtime_files``, and one ``.onnx`` fill graph), served under ``/static/`` with
            ``/static/engine.json``; None (the default): the editor fills on the server only.
    Returns:
        The app; serve it with uvicorn (``pconv serve`` does).
    """
    if max_upload_bytes < 1 or max_pixels < 1:
        raise ValueError(f"limits must be positive, got max_upload_bytes={max_upload_bytes}, max_pixels={max_pixels}")
    gate = InferenceGate(max_concurrency, max_queue)
    app = FastAPI(
        title="pconv",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        description="Image inpainting with partial convolutions (arXiv 1804.07723). "
        "Masks are white = hole. The web editor is at `/`.",
    )
    app.state.gate = gate
    app.state.limits = {
        "max_upload_bytes": max_upload_bytes,
        "max_pixels": max_pixels,
        "max_concurrency": max_concurrency,
        "max_queue": max_queue,
        "max_dilate": MAX_DILATE,
    }
    app.state.browser_fill = bool(browser_files)
    _add_api_routes(app, inpainter, gate, max_pixels=max_pixels)
    if browser_files:
        _add_browser_fill_routes(app, dict(browser_files))
    _add_page_routes(app)
    app.add_middleware(_BodyLimit, limit=max_upload_bytes)
    app.add_middleware(_SameOrigin)
    app.add_middleware(_CrossOriginIsolated)
    return app


def _add_api_routes(app: FastAPI, inpainter: SupportsInpaint, gate: InferenceGate, *, max_pixels: int) -> None:
    errors = {
        code: {"description": text}
        for code, text in [
            (400, "mask and image differ in aspect ratio (the message names both sizes)"),
            (403, "POST from another origin"),
            (413, "upload or image too large"),
            (415, "not an image"),
            (422, "missing field, bad dilate, a truncated/corrupt image, or a mask that leaves no known pixel"),
            (503, "all inference slots and queue places are taken; retry later"),
        ]
    }

    @app.post(
        "/api/v1/inpaint",
        response_class=Response,
        summary="Fill the white area of the mask",
        responses={200: {"content": {"image/png": {}}, "description": "the filled image, same size"}, **errors},
    )
    async def inpaint(
        image: Annotated[UploadFile, File(description="the photo: PNG, JPEG, WebP, BMP, TIFF or GIF")],
        mask: Annotated[UploadFile, File(description=MASK_HELP)],
        dilate: Annotated[int, Form(ge=0, le=MAX_DILATE, description="grow the hole by this many pixels first")] = 0,
        mask_polarity: Annotated[Literal["white-hole", "black-hole"], Form(description=POLARITY_HELP)] = "white-hole",
    ) -> Response:
        photo = await run_in_threadpool(open_upload, await image.read(), "image", max_pixels=max_pixels)
        hole = await run_in_threadpool(open_upload, await mask.read(), "mask", max_pixels=max_pixels)
        photo, hole = await run_in_threadpool(prepare_pair, photo, hole, mask_polarity=mask_polarity)
        try:
            async with gate.slot():
                result = await run_in_threadpool(inpainter.inpaint, photo, hole, dilate=dilate)
        except Busy as exc:
            raise _http_error(503, str(exc), **{"Retry-After": str(gate.retry_after())}) from None
        except NoKnownPixelError as exc:  # the dilation left no known pixel
            raise _http_error(422, str(exc)) from None
        except ValueError as exc:
            raise _http_error(400, str(exc)) from None
        png = await run_in_threadpool(encode_png, result, icc_profile=photo.info.get("icc_profile"))
        return Response(
            png, media_type="image/png", headers={"Content-Disposition": 'inline; filename="inpainted.png"'}
        )

    @app.get("/health", summary="Liveness, load and limits")
    async def health() -> dict:
        return {
            "status": "ok",
            "version": __version__,
            "running": gate.running,
            "waiting": gate.waiting,
            **app.state.limits,
            "browser_fill": app.state.browser_fill,
        }


def _add_browser_fill_routes(app: FastAPI, files: dict[str, Path]) -> None:
    """``/static/<name>`` for each of ``files`` and ``/static/engine.json`` (their sizes and SHA-256), next to the
    worker that loads them; added before the ``/static`` folder's mount, so these routes win."""
    listing = json.dumps(manifest(files))  # about 0.1 s for ONNX Runtime Web's 44 MB and the graph

    @app.get(f"/static/{MANIFEST}", include_in_schema=False)
    async def engine_manifest() -> Response:
        return Response(listing, media_type="application/json", headers={"Cache-Control": "no-cache"})

    types = {".mjs": "text/javascript", ".wasm": "application/wasm"}  # a module and streaming compilation need these

    def route(path: Path) -> Any:
        async def send_file() -> FileResponse:
            media_type = types.get(path.suffix, "application/octet-stream")
            return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})

        return send_file

    for name, path in files.items():
        app.add_api_route(f"/static/{name}", route(path), methods=["GET"], include_in_schema=False)


def _add_page_routes(app: FastAPI) -> None:
    static = web_dir()
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(
            static / "index.html",
            media_type="text/html",
            headers={"Content-Security-Policy": _INDEX_CSP, "Cache-Control": "no-cache"},
        )

    docs = _offline_docs_assets()
    if docs is None:
        log.info("fastapi-offline is not installed: /docs is a plain list of endpoints")

        @app.get("/docs", include_in_schema=False)
        async def plain_docs() -> HTMLResponse:
            return HTMLResponse(_plain_docs_html(app.openapi()), headers={"Content-Security-Policy": _INDEX_CSP})

        return
    _add_docs_routes(app, docs)


def _offline_docs_assets() -> Path | None:
    """Swagger UI and ReDoc files shipped by the ``fastapi-offline`` package, or ``None`` if it is absent."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    static = Path(fastapi_offline.__file__).parent / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


def _add_docs_routes(app: FastAPI, assets: Path) -> None:
    app.mount("/docs-static", StaticFiles(directory=str(assets)), name="docs-static")
    icon = "/docs-static/favicon.png" if (assets / "favicon.png").is_file() else "data:,"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="pconv API",
            swagger_favicon_url=icon,
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = _DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url="/openapi.json",
            title="pconv API",
            redoc_favicon_url=icon,
            redoc_js_url="/docs-static/redoc.standalone.js",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = _DOCS_CSP
        return page


def _plain_docs_html(spec: dict) -> str:
    """A local page listing the endpoints of ``spec`` (used when Swagger UI's files are not installed)."""
    rows = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            rows.append(
                f"<li><code>{method.upper()} {html.escape(path)}</code>: {html.escape(op.get('summary', ''))}</li>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>pconv API</title></head><body>"
        "<h1>pconv API</h1><p>Machine-readable schema: <a href='/openapi.json'>/openapi.json</a>. "
        "Install <code>fastapi-offline</code> for the interactive docs.</p><ul>" + "".join(rows) + "</ul></body></html>"
    )
