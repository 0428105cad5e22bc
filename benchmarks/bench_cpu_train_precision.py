"""CPU training step time: fp32 vs bf16 autocast (``train.precision=bf16``), 1 and 2 threads.

Run: PYTHONPATH=src python benchmarks/bench_cpu_train_precision.py [--width 0.25] [--threads 1 2]
         [--precision fp32 bf16] [--out FILE]
One Adam step of the shipped model's network (depth 8) on random 256x256 images, batch 8, with the shipped
model's loss (valid + 6 hole + 0.1 tv + 4 (1 - SSIM)); median of 5 steps after one warm-up. Writes its section
of --out (default: print only; ``benchmarks/_results.py``).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch
from _results import write_section  # benchmarks/_results.py (this script's folder is on sys.path)

from pconv.bench_networks import bench_valid_mask
from pconv.bench_timing import interleaved, print_table, summarize
from pconv.config import LossConfig, ModelConfig
from pconv.losses import InpaintingLoss
from pconv.model import PConvUNet


def step_seconds(threads: int, bf16: bool, width: float, steps: int = 5) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = PConvUNet(ModelConfig(depth=8, width=width))
    loss_fn = InpaintingLoss(LossConfig(valid=1, hole=6, perceptual=0, style=0, tv=0.1, ssim=4))
    optimizer = torch.optim.Adam(net.parameters(), 1e-4)
    image = torch.rand(8, 3, 256, 256)
    valid_mask = bench_valid_mask(8, 256, 256, 0.3)  # 1 = known

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output, _ = net(image * valid_mask, valid_mask)
            total = loss_fn(output, image, valid_mask)["total"]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    return summarize(interleaved({"step": step}, warmup=1, repeats=steps)["step"])["median_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = [(t, p, f"{step_seconds(t, p == 'bf16', args.width):.2f}") for t in args.threads for p in args.precision]
    title = f"CPU training step, width {args.width}, 256x256, batch 8 ({platform.machine()})"
    text = print_table(title, ("threads", "precision", "seconds per step (median of 5)"), rows, None)
    if args.out is not None:
        write_section(args.out, f"cpu-train-precision {args.width}", text)


if __name__ == "__main__":
    main()
