"""Time of ``Inpainter`` with the shipped model: one pass, flip average (two), flip and shift average (four: default).

Run: PYTHONPATH=src python benchmarks/bench_test_time_average.py [--threads 2] [--out FILE]
A random 512x512 and 1024x1024 RGB image with a 30 % blobby hole, the default weights, CPU; median of 5 calls
after one warm-up, the three settings interleaved. Writes its section of --out (default: print only;
``benchmarks/_results.py``).
"""

from __future__ import annotations

import argparse
import platform
from functools import partial
from pathlib import Path

import torch
from _results import write_section  # benchmarks/_results.py (this script's folder is on sys.path)

from pconv.bench_networks import bench_valid_mask
from pconv.bench_timing import interleaved, print_table, summarize
from pconv.inference import Inpainter

SETTINGS = {"one": (False, False), "flip": (True, False), "flip+shift": (True, True)}  # (flip, shift)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    inpainters = {
        name: Inpainter(backend="torch", device="cpu", flip_average=f, shift_average=s)
        for name, (f, s) in SETTINGS.items()
    }
    rows = []
    for side in (512, 1024):
        rgb = torch.randint(0, 256, (side, side, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        hole = ((1 - bench_valid_mask(1, side, side, 0.3)[0, 0]) * 255).to(torch.uint8)  # 255 = hole
        rgb_np, hole_np = rgb.numpy(), hole.numpy()
        calls = {name: partial(inp.inpaint, rgb_np, hole_np) for name, inp in inpainters.items()}
        times = interleaved(calls, warmup=1, repeats=5)
        one, flip, both = (summarize(times[name])["median_s"] for name in SETTINGS)
        rows.append((f"{side}x{side}", f"{one:.3f}", f"{flip:.3f}", f"{both:.3f}", f"{both / one:.2f}x"))
    text = print_table(
        f"Shipped model, `Inpainter` on the CPU, {args.threads} threads ({platform.machine()}): test-time averages",
        (
            "size",
            "one pass (`--no-flip-average --no-shift-average`) s",
            "flip average (`--no-shift-average`) s",
            "flip + shift average (default) s",
            "default / one pass",
        ),
        rows,
        None,
        note="`PYTHONPATH=src python benchmarks/bench_test_time_average.py --out benchmarks/RESULTS.md`; "
        "median of 5 calls.",
    )
    if args.out is not None:
        write_section(args.out, "test-time-average", text)


if __name__ == "__main__":
    main()
