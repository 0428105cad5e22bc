"""The Try it page's fill in headless Chromium (ONNX Runtime Web, WebAssembly) against `pconv inpaint`'s in Python.

Run (from the repository root, with the full venv; needs /usr/bin/chromium and npm or web/node_modules):
    python benchmarks/bench_browser.py [--rounds 5] [--out benchmarks/RESULTS.md]

Builds the page as `make docs` does (tools/build_try.py) into a temporary folder, serves it on loopback with a
plain static file server and opens it in Debian's chromium (Playwright). The photo and hole are those of
benchmarks/bench_light_inference.py (kodim23 cropped to 512x512, the demo's hole). Measured: what the page
downloads (bytes of every response, by file), the first fill (fetching and compiling the model and the
WebAssembly, then filling), the median of ``--rounds`` fills after it (``window.pconv.inpaint``, default settings:
four passes and the smooth blend), and the same fill in Python on ONNX Runtime (`Inpainter(backend="onnx")`, one
thread and the machine's default). The outputs are compared byte for byte. Its section of ``--out`` (key ``browser``,
``benchmarks/_results.py``) is replaced or added.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tools"), str(ROOT / "tests")]
import build_try  # noqa: E402
from _results import write_section  # noqa: E402
from bench_light_inference import make_inputs  # noqa: E402
from browser import CHROMIUM, CHROMIUM_ARGS, PAGE_FILLS  # noqa: E402
from live_server import serve_folder  # noqa: E402

HEADING = "## Browser: the Try it page's fill of one 512² photo (ONNX Runtime Web)"


def browser_run(site: Path, rounds: int) -> tuple[list[float], np.ndarray, dict[str, int]]:
    """Fill seconds (first, then the rest), the last fill, and the bytes the page downloaded, by file."""
    from playwright.sync_api import sync_playwright

    downloaded: dict[str, int] = {}
    with serve_folder(site) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(300_000)

        def count(response: object) -> None:
            name = response.url.removeprefix(base)
            if not name.startswith("/fixtures/"):
                downloaded[name] = downloaded.get(name, 0) + len(response.body())

        page.on("response", count)
        page.goto(f"{base}/try/")
        page.wait_for_function("window.pconv && typeof window.pconv.inpaint === 'function'")
        result = page.evaluate(PAGE_FILLS, [f"{base}/fixtures/photo.png", f"{base}/fixtures/mask.png", rounds + 1])
        browser.close()
    # The worker's own fetches (model, .wasm) are not page responses: count those files from disk.
    for path in (site / "try" / "static").iterdir():
        downloaded.setdefault(f"/try/static/{path.name}", path.stat().st_size)
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["png"]))).convert("RGB"))
    return result["seconds"], image, downloaded


def python_run(photo: Path, mask: Path, rounds: int, threads: int | None) -> tuple[float, np.ndarray]:
    from pconv import Inpainter

    inpainter = Inpainter(backend="onnx", threads=threads)
    image, hole = Image.open(photo), Image.open(mask)
    inpainter.inpaint(image, hole)  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        out = inpainter.inpaint(image, hole)
        times.append(time.perf_counter() - start)
    return statistics.median(times), np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write the section into")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        build_try.build(site)
        (site / "fixtures").mkdir()
        photo, mask = make_inputs(site / "fixtures")
        load = os.getloadavg()
        seconds, web, downloaded = browser_run(site, args.rounds)
        py_one, py = python_run(photo, mask, args.rounds, 1)
        py_default, _ = python_run(photo, mask, args.rounds, None)
        hole = np.asarray(Image.open(mask)) > 127
        differ = int((web != py).any(axis=-1)[hole].sum())
        max_diff = int(np.abs(web.astype(int) - py.astype(int)).max())
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    total = sum(downloaded.values())
    lines = [
        HEADING,
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} logical CPUs; {when}; load average at the start "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; Chromium headless (Debian), ONNX Runtime Web "
        f"{build_try.pinned_ort_version()} (WebAssembly, SIMD, one thread: a static server gives no "
        "cross-origin isolation).",
        f"- Command: `python benchmarks/bench_browser.py --rounds {args.rounds} --out benchmarks/RESULTS.md`; "
        "default settings (four passes, smooth blend).",
        f"- Browser vs `pconv inpaint --backend onnx` (Python, ONNX Runtime): {differ} of {int(hole.sum())} hole "
        f"pixels differ, by at most {max_diff}/255; known pixels identical in both.",
        "",
        "| what | value |",
        "|---|---:|",
        f"| first fill in the page (fetch, compile the model and the WebAssembly, fill), s | {seconds[0]:.2f} |",
        f"| later fills, median of {args.rounds}, s | {statistics.median(seconds[1:]):.2f} |",
        f'| Python, ONNX Runtime, one thread (`Inpainter(backend="onnx", threads=1)`), median, s | {py_one:.2f} |',
        f"| Python, ONNX Runtime, default threads, median, s | {py_default:.2f} |",
        f"| what the page downloads, MiB | {total / 2**20:.1f} |",
    ]
    for name, size in sorted(downloaded.items(), key=lambda kv: -kv[1]):
        lines.append(f"| &nbsp;&nbsp;`{name}`, KiB | {size / 1024:.0f} |")
    section = "\n".join(lines) + "\n"
    print(section)
    if args.out is not None:
        write_section(args.out, "browser", section)


if __name__ == "__main__":
    main()
