"""``pconv train``: train the network from a YAML preset plus ``--section.key=value`` overrides.

Run it under ``torchrun`` for several GPUs or nodes (``torchrun --nproc_per_node=N -m pconv train ...``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Train the partial-convolution U-Net (the paper's two phases) from a YAML config; resumable."

_OVERRIDE = "override:"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pconv.config import override_keys, type_name

    parser.add_argument(
        "--config", type=Path, default=None, help="YAML preset (e.g. configs/tiny.yaml); default: the paper's recipe"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="RUN_DIR",
        help="continue a run from its newest good checkpoint: RUN_DIR (its config.yaml is the "
        "preset unless --config is given), or train.out_dir when no RUN_DIR is given",
    )
    group = parser.add_argument_group("config overrides (--section.key=value, checked against the field type)")
    for key, tp in override_keys().items():
        group.add_argument(f"--{key}", dest=f"{_OVERRIDE}{key}", default=None, metavar=type_name(tp).upper())


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    from pconv.config import load_config
    from pconv.train import train

    given = {k[len(_OVERRIDE) :]: v for k, v in vars(args).items() if k.startswith(_OVERRIDE) and v is not None}
    overrides = [f"{key}={value}" for key, value in given.items()]
    preset = args.config
    if args.resume:  # a run directory: its saved config, and it is the output folder
        run_dir = Path(args.resume)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"run directory not found: {run_dir}")
        preset = preset or run_dir / "config.yaml"
        overrides.append(f"train.out_dir={run_dir}")
    cfg = load_config(preset, overrides)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="pconv train: %(message)s" if rank == 0 else f"pconv train [rank {rank}]: %(message)s",
    )
    run_dir = train(cfg, resume=args.resume is not None)
    if rank == 0:
        print(
            f"pconv train: done; run directory {run_dir} (config.yaml, ckpt_*.pt, metrics.jsonl). "
            f"Export the weights with: pconv export-weights {run_dir} --output model.safetensors"
        )
    return 0
