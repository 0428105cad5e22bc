"""``pconv export-weights``: a training checkpoint -> the safetensors weights file the inference code loads."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = (
    "Write the network of a training checkpoint (or a run directory's newest one) as safetensors weights: its "
    "weight average (train.ema) when it has one, else the trained weights."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="a ckpt_*.pt file, or a run directory")
    parser.add_argument("--output", type=Path, required=True, help="the .safetensors file to write")
    parser.add_argument("--fp16", action="store_true", help="store float16 tensors (half the size)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument(
        "--raw", action="store_true", help="write the trained weights even when the checkpoint holds an EMA average"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from pconv.checkpoint import checkpoint_model, write_weights

    dtype = torch.float16 if args.fp16 else torch.float32
    model, config, weights = checkpoint_model(args.checkpoint, raw=args.raw)  # read once
    path = write_weights(model, args.output, dtype=dtype, overwrite=args.overwrite)
    params = sum(p.numel() for p in model.parameters())
    kind = "the EMA weight average" if weights == "ema" else "the trained weights"
    print(
        f"pconv export-weights: wrote {path} ({kind}; {path.stat().st_size / 1e6:.1f} MB, {params / 1e6:.2f} M "
        f"parameters, model {config['model']}); load it with pconv.load_weights or --weights"
    )
    return 0
