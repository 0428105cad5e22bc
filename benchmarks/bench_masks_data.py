"""Speed of the mask generator and of the image-folder dataset (CPU, one thread).

Run: PYTHONPATH=src python benchmarks/bench_masks_data.py [--data ../shared/data]
Prints milliseconds per mask for each preset and ratio bin, and per dataset item.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pconv.data import InpaintingDataset
from pconv.mask_generation import PRESETS, generate_hole_mask
from pconv.masks import RATIO_BINS
from pconv.nvidia_masks import NvidiaMasks


def per_call_ms(fn, n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("-n", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"generate_hole_mask, {args.size}x{args.size}, ms per mask")
    print("preset  " + " ".join(f"{lo:.2f}-{hi:.1f}" for lo, hi in RATIO_BINS))
    for preset in PRESETS:
        row = [
            per_call_ms(
                lambda b=b, p=preset: generate_hole_mask(args.size, args.size, rng=rng, ratio_bin=b, preset=p), args.n
            )
            for b in RATIO_BINS
        ]
        print(f"{preset:7s} " + " ".join(f"{ms:9.2f}" for ms in row))
    if args.data.is_dir():
        nvidia = NvidiaMasks(args.data / "masks" / "nvidia_irregular_test")
        print(f"NvidiaMasks.sample (augmented): {per_call_ms(lambda: nvidia.sample(rng, args.size), args.n):.2f} ms")
        train = InpaintingDataset(args.data / "train_photos", crop_size=args.size)
        idx = iter(range(10**9))
        print(f"InpaintingDataset train item: {per_call_ms(lambda: train[next(idx) % len(train)], args.n):.2f} ms")
        ev = InpaintingDataset(args.data / "eval_photos", crop_size=args.size, train=False)
        idx = iter(range(10**9))
        print(f"InpaintingDataset eval item: {per_call_ms(lambda: ev[next(idx) % len(ev)], args.n):.2f} ms")


if __name__ == "__main__":
    main()
