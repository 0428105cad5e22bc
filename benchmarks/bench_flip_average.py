"""Time of ``Inpainter`` with the shipped model: one network pass vs the default flip average (two passes).

Run: PYTHONPATH=src python benchmarks/bench_flip_average.py [--threads 2] [--out FILE]
A random 512x512 and 1024x1024 RGB image with a 30 % blobby hole, the default weights, CPU; median of 5 calls
after one warm-up, the two settings interleaved. Appends a Markdown table to --out (default: print only).
"""

from __future__ import annotations

import argparse
import platform
from functools import partial
from pathlib import Path

import torch

from pconv.bench import bench_valid_mask, interleaved, print_table, summarize
from pconv.inference import Inpainter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    inpainters = {flip: Inpainter(device="cpu", flip_average=flip) for flip in (False, True)}
    rows = []
    for side in (512, 1024):
        rgb = torch.randint(0, 256, (side, side, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        hole = ((1 - bench_valid_mask(1, side, side, 0.3)[0, 0]) * 255).to(torch.uint8)  # 255 = hole
        rgb_np, hole_np = rgb.numpy(), hole.numpy()
        calls = {str(flip): partial(inp.inpaint, rgb_np, hole_np) for flip, inp in inpainters.items()}
        times = interleaved(calls, warmup=1, repeats=5)
        one, two = (summarize(times[str(flip)])["median_s"] for flip in (False, True))
        rows.append((f"{side}x{side}", f"{one:.3f}", f"{two:.3f}", f"{two / one:.2f}x"))
    print_table(
        f"Shipped model, `Inpainter` on the CPU, {args.threads} threads ({platform.machine()})",
        ("size", "one pass (`--no-flip-average`) s", "flip average (default) s", "ratio"),
        rows,
        args.out,
        note="`PYTHONPATH=src python benchmarks/bench_flip_average.py --out benchmarks/RESULTS.md`; median of 5 calls.",
    )


if __name__ == "__main__":
    main()
