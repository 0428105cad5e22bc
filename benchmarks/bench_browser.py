"""The Try it page's fill in headless Chromium (ONNX Runtime Web) against Python's in-process fill, in one run.

Run (from the repository root, with the full venv; needs /usr/bin/chromium and npm or web/node_modules):
    python benchmarks/bench_browser.py [--rounds 5] [--out benchmarks/RESULTS.md]

Builds the page as `make docs` does (tools/build_try.py) into a temporary folder, serves it on loopback with a
plain static file server (as a static host: no COOP/COEP headers; the page's service worker adds them) and opens
it in Debian's chromium (Playwright). The photo and hole are those of benchmarks/bench_light_inference.py (kodim23
cropped to 512x512, the demo's hole). Measured, on a first visit (empty browser profile): from opening the page
to the engine being ready (download, the service worker's one reload, WebAssembly and session set-up) and the
first fill after it, whose sum is "page open to first result"; then ``--rounds`` fills
(``window.pconv.inpaint``, default settings: four passes and the smooth blend), each paired with the same fill
in Python (`Inpainter(backend="onnx")`, ONNX Runtime, default threads, warm) right after it, for the ratio of
each pair; a second visit in the same profile (open to first result, and what it downloads). Bytes downloaded
are counted by the server (response bodies). The outputs are compared byte for byte. Its section of ``--out``
(key ``browser``, ``benchmarks/_results.py``) is replaced or added.
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
from browser import CHROMIUM, CHROMIUM_ARGS, PAGE_FILLS, serve_site  # noqa: E402

HEADING = "## Browser: the Try it page's fill of one 512² photo (ONNX Runtime Web)"


READY = "window.pconv && typeof window.pconv.ready === 'function'"


class PythonFill:
    """``Inpainter(backend="onnx")`` on the photo, built and warmed once; ``seconds()`` times one fill."""

    def __init__(self, photo: Path, mask: Path, threads: int | None) -> None:
        from pconv import Inpainter

        start = time.perf_counter()
        self.inpainter = Inpainter(backend="onnx", threads=threads)
        self.image, self.hole = Image.open(photo), Image.open(mask)
        self.out = np.asarray(self.inpainter.inpaint(self.image, self.hole))
        self.first = time.perf_counter() - start  # construction (session) and the first fill

    def seconds(self) -> float:
        start = time.perf_counter()
        self.out = np.asarray(self.inpainter.inpaint(self.image, self.hole))
        return time.perf_counter() - start


def visit(context: object, base: str) -> dict:
    """Open the page in ``context``; seconds to the engine being ready and of the first fill; the engine's info."""
    page = context.new_page()
    page.set_default_timeout(600_000)
    start = time.perf_counter()
    page.goto(f"{base}/try/")
    page.wait_for_function(READY)
    info = page.evaluate("window.pconv.ready()")
    ready = time.perf_counter() - start
    fill = page.evaluate(PAGE_FILLS, [f"{base}/fixtures/photo.png", f"{base}/fixtures/mask.png", 1])
    return {"page": page, "ready": ready, "first": fill["seconds"][0], "info": info, "png": fill["png"]}


def browser_run(site: Path, rounds: int, python: PythonFill) -> dict:
    """Two visits to the page and ``rounds`` later fills paired with Python's, with the bytes each visit got."""
    from playwright.sync_api import sync_playwright

    with serve_site(site) as (base, sent), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context()
        one = visit(context, base)
        one["bytes"] = page_bytes(sent.bytes_since(0))
        pairs = []
        for _ in range(rounds):
            fill = one["page"].evaluate(PAGE_FILLS, [f"{base}/fixtures/photo.png", f"{base}/fixtures/mask.png", 1])
            pairs.append((fill["seconds"][0], python.seconds()))
        one["png"] = fill["png"]
        one["page"].close()
        mark = len(sent.requests)
        two = visit(context, base)
        two["bytes"] = page_bytes(sent.bytes_since(mark))
        browser.close()
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(one["png"]))).convert("RGB"))
    return {"one": one, "two": two, "pairs": pairs, "image": image}


def page_bytes(sizes: dict[str, int]) -> dict[str, int]:
    """What the page itself got (the benchmark's own fixtures left out)."""
    return {path: size for path, size in sizes.items() if not path.startswith("/fixtures/")}


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
        python = PythonFill(photo, mask, None)
        run = browser_run(site, args.rounds, python)
        python_one = PythonFill(photo, mask, 1)
        one_thread = statistics.median(python_one.seconds() for _ in range(args.rounds))
        hole = np.asarray(Image.open(mask)) > 127
        web, py = run["image"].astype(int), python.out.astype(int)
        differ = int((web != py).any(axis=-1)[hole].sum())
        max_diff = int(np.abs(web - py).max())
        end_load = os.getloadavg()
    text = section(args, run, python, one_thread, (load, end_load), (differ, int(hole.sum()), max_diff))
    print(text)
    if args.out is not None:
        write_section(args.out, "browser", text)


def section(
    args: argparse.Namespace, run: dict, python: PythonFill, one_thread: float, loads: tuple, diff: tuple
) -> str:
    """The Markdown section: machine and command, the table of times, ratios and bytes."""
    one, two, pairs = run["one"], run["two"], run["pairs"]
    web_later = statistics.median(w for w, _ in pairs)
    py_later = statistics.median(p for _, p in pairs)
    later_ratio = statistics.median(w / p for w, p in pairs)
    open_to_first = one["ready"] + one["first"]
    info = one["info"]
    engine = "WebGPU" if info["provider"] == "webgpu" else f"WebAssembly (SIMD), {info['threads']} thread(s)"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (l0, l1), (differ, holes, max_diff) = loads, diff
    mib = lambda sizes: sum(sizes.values()) / 2**20  # noqa: E731
    lines = [
        HEADING,
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} logical CPUs; {when}; load average (1, 5, 15 min) "
        f"{l0[0]:.1f} {l0[1]:.1f} {l0[2]:.1f} at the start, {l1[0]:.1f} {l1[1]:.1f} {l1[2]:.1f} at the end; "
        f"Chromium headless (Debian, no GPU), ONNX Runtime Web {build_try.pinned_ort_version()}: {engine}, "
        f"cross-origin isolated: {info['isolated']} (the page's service worker on a plain static server).",
        f"- Command: `python benchmarks/bench_browser.py --rounds {args.rounds} --out benchmarks/RESULTS.md`; "
        'default settings (four passes, smooth blend). Python: `Inpainter(backend="onnx")` in the same process '
        "as the benchmark, ONNX Runtime's default threads, warm; each later browser fill is followed by one Python "
        "fill, and the ratio is the median of the pairs' ratios.",
        f"- Browser vs Python: {differ} of {holes} hole pixels differ, by at most {max_diff}/255; known pixels "
        "identical in both.",
        "",
        "| what | value |",
        "|---|---:|",
        f"| first visit: page open to the engine ready (download, one reload, WebAssembly, session), s | "
        f"{one['ready']:.2f} |",
        f"| first visit: the first fill after that, s | {one['first']:.2f} |",
        f"| **first visit: page open to first result**, s | **{open_to_first:.2f}** |",
        f"| **later fills**, median of {args.rounds}, s | **{web_later:.2f}** |",
        f'| Python in-process fill (`Inpainter(backend="onnx")`, default threads), median of the pairs, s | '
        f"{py_later:.2f} |",
        f"| **ratio, later fills** (browser / Python, median of {args.rounds} pairs) | **{later_ratio:.2f}** |",
        f"| **ratio, first result** (page open to first result / Python's fill) | **{open_to_first / py_later:.2f}** |",
        f"| Python, its own first: session and first fill, s | {python.first:.2f} |",
        f"| Python, one thread (`threads=1`), median, s | {one_thread:.2f} |",
        f"| second visit: page open to first result, s | {two['ready'] + two['first']:.2f} |",
        f"| session set-up in the page, first / second visit, s | {info['seconds']['session']:.2f} / "
        f"{two['info']['seconds']['session']:.2f} |",
        f"| downloaded, first visit, MiB | {mib(one['bytes']):.1f} |",
        f"| downloaded, second visit, MiB (model and runtime from Cache Storage) | {mib(two['bytes']):.2f} |",
    ]
    for name, size in sorted(one["bytes"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| &nbsp;&nbsp;first visit: `{name}`, KiB | {size / 1024:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
