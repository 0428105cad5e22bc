"""Time to generate one training mask, per preset and hole-ratio bin (what the data loader pays per crop).

Run: PYTHONPATH=src python benchmarks/bench_masks.py [--size 384] [--count 10] [--out FILE]
Mean seconds per ``generate_hole_mask`` call at ``--size``² with ``scale=1.0`` (as configs/finetune_cpu_384.yaml),
one process, fixed seeds. Writes its section of --out (``benchmarks/_results.py``; default: print only).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from _results import write_section  # benchmarks/_results.py (this script's folder is on sys.path)

from pconv.bench_timing import print_table
from pconv.mask_generation import generate_hole_mask
from pconv.masks import RATIO_BINS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for preset in ("medium", "thin", "fragments"):
        cells = []
        for ratio_bin in RATIO_BINS:
            rng = np.random.default_rng(0)
            start = time.perf_counter()
            for _ in range(args.count):
                generate_hole_mask(args.size, args.size, rng=rng, ratio_bin=ratio_bin, preset=preset, scale=1.0)
            cells.append(f"{(time.perf_counter() - start) / args.count:.3f}")
        rows.append((preset, *cells))
    text = print_table(
        f"Mask generation, {args.size}x{args.size}, s per mask ({platform.machine()})",
        ("preset", *(f"({lo},{hi}]" for lo, hi in RATIO_BINS)),
        rows,
        None,
        note=f"`PYTHONPATH=src python benchmarks/bench_masks.py --out benchmarks/RESULTS.md`; mean of {args.count}.",
    )
    if args.out is not None:
        write_section(args.out, "masks", text)


if __name__ == "__main__":
    main()
