"""`pconv.server` over real HTTP on loopback: a good request, each bad one, limits, docs, and `pconv serve`."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from live_server import serve  # noqa: E402

from pconv.config import ModelConfig  # noqa: E402
from pconv.inference import Inpainter, default_weights_path  # noqa: E402
from pconv.model import PConvUNet, save_weights  # noqa: E402
from pconv.server import create_app  # noqa: E402

UPLOAD_LIMIT = 256 * 1024
INPAINT = "/api/v1/inpaint"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    return save_weights(PConvUNet(ModelConfig(depth=4, width=0.125)), tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="module")
def base_url(weights: Path) -> Iterator[str]:
    app = create_app(Inpainter(weights, device="cpu"), max_upload_bytes=UPLOAD_LIMIT)
    with serve(app) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as c:
        yield c


def png_bytes(array: np.ndarray, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG", **save)
    return buf.getvalue()


def photo(h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus a little noise: compresses well, so it stays under the upload limit."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=-1)
    noise = np.random.default_rng(seed).integers(0, 8, (h, w, 3))
    return (base + noise).clip(0, 255).astype(np.uint8)


def box_hole(h: int = 64, w: int = 96) -> np.ndarray:
    hole = np.zeros((h, w), np.uint8)
    hole[20:40, 30:60] = 255
    return hole


def post(client: httpx.Client, image: bytes | None, mask: bytes | None, **data: str) -> httpx.Response:
    files = {}
    if image is not None:
        files["image"] = ("photo.png", image, "image/png")
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    return client.post(INPAINT, files=files, data=data)


def decode(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(response.content))
    img.load()
    return img


def test_inpaint_returns_png_same_size_known_pixels_unchanged(client: httpx.Client) -> None:
    img, hole = photo(), box_hole()
    response = post(client, png_bytes(img, icc_profile=b"fake-icc-profile"), png_bytes(hole))
    out = decode(response)
    assert out.size == (96, 64) and out.mode == "RGB"
    assert out.info.get("icc_profile") == b"fake-icc-profile"  # colours stay tagged as the input's
    arr = np.asarray(out)
    known = hole == 0
    assert np.array_equal(arr[known], img[known])
    assert (arr[~known] != img[~known]).any(axis=-1).mean() > 0.5  # the hole was filled with something new


def test_jpeg_photo_and_mask_of_same_aspect_but_half_size(client: httpx.Client) -> None:
    buf = io.BytesIO()
    Image.fromarray(photo()).save(buf, "JPEG", quality=90)
    small_hole = box_hole()[::2, ::2]  # 48x32, resized to 96x64 by the server
    out = decode(post(client, buf.getvalue(), png_bytes(small_hole)))
    assert out.size == (96, 64)
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    known = box_hole() == 0
    assert np.array_equal(np.asarray(out)[known], decoded[known])


def test_dilate_grows_the_hole(client: httpx.Client) -> None:
    img, hole = photo(), box_hole()
    arr = np.asarray(decode(post(client, png_bytes(img), png_bytes(hole), dilate="3")))
    changed = (arr != img).any(axis=-1)
    grown = np.zeros_like(hole, dtype=bool)
    grown[17:43, 27:63] = True
    assert not changed[~grown].any()  # nothing outside the grown hole moved
    assert changed[grown & (hole == 0)].any()  # but the 3 px ring did


def test_exif_orientation_is_applied_like_a_browser(client: httpx.Client) -> None:
    raw = Image.fromarray(photo(h=40, w=60))  # stored landscape 60x40
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a browser shows it 40x60
    buf = io.BytesIO()
    raw.save(buf, "JPEG", exif=exif.tobytes())
    hole = np.zeros((60, 40), np.uint8)
    hole[10:20, 10:30] = 255
    assert decode(post(client, buf.getvalue(), png_bytes(hole))).size == (40, 60)


def test_missing_mask_is_422_naming_the_field(client: httpx.Client) -> None:
    response = post(client, png_bytes(photo()), None)
    assert response.status_code == 422
    assert "mask" in response.text


def test_non_image_upload_is_415_with_message(client: httpx.Client) -> None:
    files = {"image": ("notes.txt", b"just some text\n" * 20, "text/plain"), "mask": ("m.png", png_bytes(box_hole()))}
    response = client.post(INPAINT, files=files)
    assert response.status_code == 415
    assert "image upload is not an image" in response.json()["detail"]


def test_text_file_named_png_is_415(client: httpx.Client) -> None:
    response = post(client, png_bytes(photo()), b"I am not a PNG, whatever my name says")
    assert response.status_code == 415
    assert "mask upload is not an image" in response.json()["detail"]


def test_truncated_image_is_422_with_message(client: httpx.Client) -> None:
    data = png_bytes(photo())
    response = post(client, data[: len(data) // 2], png_bytes(box_hole()))
    assert response.status_code == 422
    assert "truncated or corrupt" in response.json()["detail"]


def test_empty_upload_is_422(client: httpx.Client) -> None:
    response = post(client, b"", png_bytes(box_hole()))
    assert response.status_code == 422


def test_size_mismatch_is_400_naming_both_sizes(client: httpx.Client) -> None:
    response = post(client, png_bytes(photo()), png_bytes(np.zeros((64, 64), np.uint8)))
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "64x64" in detail and "96x64" in detail


def test_too_large_upload_is_413_by_content_length(client: httpx.Client) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)  # ~120 KB x 3 as PNG
    big = png_bytes(np.concatenate([noise, noise[::-1], noise[:, ::-1]], axis=0))
    assert len(big) > UPLOAD_LIMIT
    response = post(client, big, png_bytes(box_hole()))
    assert response.status_code == 413
    assert f"the limit is {UPLOAD_LIMIT} bytes" in response.json()["detail"]


def test_too_large_chunked_upload_is_413_while_reading(client: httpx.Client) -> None:
    boundary = "pconvtestboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:  # no Content-Length: only counting while reading can stop it
        yield head
        for _ in range(40):
            yield b"\0" * 16384

    response = client.post(
        INPAINT, content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413
    assert "upload too large" in response.json()["detail"]


def test_too_many_pixels_is_413(weights: Path) -> None:
    app = create_app(Inpainter(weights, device="cpu"), max_pixels=5000)
    with serve(app) as url, httpx.Client(base_url=url, trust_env=False, timeout=30) as c:
        response = post(c, png_bytes(photo()), png_bytes(box_hole()))
    assert response.status_code == 413
    assert "96x64" in response.json()["detail"]


def test_cross_origin_post_is_refused(client: httpx.Client) -> None:
    response = client.post(
        INPAINT,
        files={"image": ("a.png", png_bytes(photo())), "mask": ("m.png", png_bytes(box_hole()))},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


def test_no_path_traversal_through_static_files(client: httpx.Client) -> None:
    for path in (
        "/static/../server.py",
        "/static/..%2fserver.py",
        "/static/%2e%2e/server.py",
        "/static/%2e%2e%2f__init__.py",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"create_app" not in response.content


def test_health_reports_ok_and_limits(client: httpx.Client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["max_upload_bytes"] == UPLOAD_LIMIT and body["running"] == 0 and body["waiting"] == 0


EXTERNAL_URL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)


def test_docs_page_loads_and_references_nothing_external(client: httpx.Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert not EXTERNAL_URL.findall(response.text), EXTERNAL_URL.findall(response.text)
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        if not asset.startswith("data:"):
            assert client.get(asset).status_code == 200, asset
    spec = client.get("/openapi.json").json()
    assert INPAINT in spec["paths"] and "/health" in spec["paths"]


def test_docs_without_swagger_files_is_a_local_list_of_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    import pconv.server

    monkeypatch.setattr(pconv.server, "_offline_docs_assets", lambda: None)  # as if fastapi-offline were absent
    with serve(create_app(SlowInpainter(0))) as url, httpx.Client(base_url=url, trust_env=False) as c:
        page = c.get("/docs")
    assert page.status_code == 200
    assert "POST /api/v1/inpaint" in page.text and "GET /health" in page.text
    assert not EXTERNAL_URL.findall(page.text)


def test_editor_page_and_assets_are_local(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert len(text) > 500
        assert not EXTERNAL_URL.findall(text), EXTERNAL_URL.findall(text)


class SlowInpainter:
    """Test double with a real sleep: paints the hole grey and records how many calls overlapped."""

    def __init__(self, delay: float) -> None:
        self.delay, self.active, self.peak = delay, 0, 0
        self.lock = threading.Lock()

    def inpaint(self, image: Image.Image, hole_mask: Image.Image, *, dilate: int | None = None) -> Image.Image:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            out = image.copy()
            out.paste((128, 128, 128), mask=hole_mask)
            return out
        finally:
            with self.lock:
                self.active -= 1


def wait_for(client: httpx.Client, key: str, value: int) -> None:
    deadline = time.monotonic() + 10
    while client.get("/health").json()[key] != value:
        assert time.monotonic() < deadline, f"/health never showed {key}={value}"
        time.sleep(0.02)


def test_overload_gets_503_when_queue_full_and_loop_stays_responsive() -> None:
    slow = SlowInpainter(delay=1.5)
    app = create_app(slow, max_concurrency=1, max_queue=1)
    image, mask = png_bytes(photo()), png_bytes(box_hole())
    with serve(app) as url, httpx.Client(base_url=url, trust_env=False, timeout=30) as c:
        results: dict[str, int] = {}

        def send(name: str) -> None:
            with httpx.Client(base_url=url, trust_env=False, timeout=30) as own:
                results[name] = post(own, image, mask).status_code

        first = threading.Thread(target=send, args=("first",))
        first.start()
        wait_for(c, "running", 1)
        second = threading.Thread(target=send, args=("second",))
        second.start()
        wait_for(c, "waiting", 1)
        started = time.monotonic()
        third = post(c, image, mask)  # one running, one queued: no room left
        health = c.get("/health")
        elapsed = time.monotonic() - started
        first.join()
        second.join()
    assert third.status_code == 503
    assert "busy" in third.json()["detail"] and int(third.headers["retry-after"]) >= 1
    assert health.json()["running"] == 1 and elapsed < 1.0  # answered while an inference runs
    assert results == {"first": 200, "second": 200}
    assert slow.peak == 1  # the semaphore really serialised the inferences


def test_retry_after_grows_with_the_requests_ahead_and_the_service_time() -> None:
    import asyncio

    from pconv.server import InferenceGate

    gate = InferenceGate(max_concurrency=2, max_queue=4)
    assert gate.retry_after() == 1  # nothing measured yet: the least a Retry-After can say

    async def hold(seconds: float) -> None:
        async with gate.slot():
            await asyncio.sleep(seconds)

    asyncio.run(hold(0.3))
    assert 0.25 < gate.service_seconds < 1.0
    gate.service_seconds, gate.running, gate.waiting = 1.5, 2, 4
    assert gate.retry_after() == 5  # ceil(1.5 s x 6 ahead / 2 slots)


def test_create_app_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        create_app(SlowInpainter(0), max_concurrency=0)


def test_serve_command_binds_loopback_and_answers(weights: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pconv", "serve", "--weights", str(weights), "--port", "0", "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/health", trust_env=False, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read()
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


@pytest.mark.skipif(default_weights_path().is_file(), reason="this install ships a default model")
def test_serve_without_weights_and_no_default_model_says_so() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pconv", "serve", "--port", "0"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "no default model" in result.stderr and "--weights" in result.stderr
    assert "Traceback" not in result.stderr
