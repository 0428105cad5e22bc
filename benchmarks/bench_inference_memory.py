"""Peak memory and time of ``Inpainter`` on a large photo, with the paper-size network on random weights.

Each case runs in a fresh subprocess and reports its peak resident set size (``ru_maxrss``; tracemalloc cannot
see torch's allocations). Usage:

    PYTHONPATH=src python benchmarks/bench_inference_memory.py --size 4000x3000 --max-side 1024

Cases: ``scattered`` (three separate holes: a stroke, a blob, a scratch: windows around each), ``spread`` (strokes
from corner to corner: one window, the whole image, resized to ``max_side`` and back), and ``baseline`` (the
process with torch, the network and the image loaded, no inference).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def run_case(case: str, width: int, height: int, max_side: int, device: str) -> dict[str, object]:
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from pconv.inference import Inpainter
    from pconv.model import PConvUNet

    torch.manual_seed(0)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    hole_img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(hole_img)
    if case == "scattered":
        draw.line([(300, 400), (900, 700)], fill=255, width=40)
        draw.ellipse([2500, 1500, 2800, 1900], fill=255)
        draw.line([(3500, 200), (3600, 2600)], fill=255, width=12)
    elif case == "spread":
        draw.line([(0, 0), (width, height)], fill=255, width=30)
        draw.line([(0, height), (width, 0)], fill=255, width=30)
    hole = (np.asarray(hole_img) > 127).astype(np.uint8)
    # One network pass; the default flip and shift averages run four in turn (4x the time, about the same peak).
    inpainter = Inpainter(
        model=PConvUNet().eval(), device=device, max_side=max_side, flip_average=False, shift_average=False
    )
    start = time.perf_counter()
    if case != "baseline":
        out = inpainter.inpaint(image, hole)
        assert np.array_equal(out[hole == 0], image[hole == 0])
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "case": case,
        "size": f"{width}x{height}",
        "max_side": max_side,
        "device": device,
        "hole_pct": round(100 * float(hole.mean()), 2),
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_mib),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT (default: %(default)s)")
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", default="baseline,scattered,spread")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.case:
        print(json.dumps(run_case(args.case, width, height, args.max_side, args.device)))
        return
    for case in args.cases.split(","):
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--size",
                args.size,
                "--max-side",
                str(args.max_side),
                "--device",
                args.device,
                "--case",
                case,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print(child.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
