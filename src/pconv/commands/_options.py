"""Command-line options that several ``pconv`` subcommands share."""

from __future__ import annotations

import argparse
from pathlib import Path

FLIP_AVERAGE_HELP = "skip averaging with the mirrored image (half the passes, slightly worse)"
SHIFT_AVERAGE_HELP = "skip averaging with the image moved by one pixel (half the passes, slightly worse)"
SMOOTH_HELP = (
    "the network's fill alone, without the smooth blend (pconv.smooth: where the known pixels around a hole hold "
    "no detail, a smooth fill exact on flat colours and gradients; near the hole's edge, smooth surroundings "
    "continued into it) and without the structure continuation (pconv.structure: edges, lines and stripes "
    "carried straight through the hole)"
)


def add_test_time_averages(
    parser: argparse.ArgumentParser, *, flip_help: str = FLIP_AVERAGE_HELP, shift_help: str = SHIFT_AVERAGE_HELP
) -> None:
    """``--no-flip-average`` / ``--no-shift-average`` / ``--no-smooth`` -> ``args.flip_average`` /
    ``args.shift_average`` / ``args.smooth`` = False.

    All default to True, as in ``pconv.inference.Inpainter``.
    """
    parser.add_argument("--no-flip-average", dest="flip_average", action="store_false", help=flip_help)
    parser.add_argument("--no-shift-average", dest="shift_average", action="store_false", help=shift_help)
    parser.add_argument("--no-smooth", dest="smooth", action="store_false", help=SMOOTH_HELP)


BACKEND_HELP = (
    "network backend: auto (default: torch when PyTorch is installed and a GPU is present, else onnx), "
    "torch (PyTorch, CPU or GPU; pip install 'pconv[torch]') or onnx (ONNX Runtime, no PyTorch needed)"
)


def add_backend(parser: argparse.ArgumentParser) -> None:
    """``--backend auto|torch|onnx`` -> ``args.backend`` and ``--onnx PATH`` -> ``args.onnx``, as taken by
    ``pconv.inference.Inpainter``'s ``backend`` and ``weights``."""
    parser.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto", help=BACKEND_HELP)
    parser.add_argument(
        "--onnx", type=Path, default=None, help="ONNX model from `pconv export-onnx` (default: the shipped one)"
    )


def model_file(args: argparse.Namespace) -> Path | None:
    """The model file for ``Inpainter``: ``--onnx`` or ``--weights`` (ValueError if both), or None (the default)."""
    if args.onnx is not None and args.weights is not None:
        raise ValueError("pass --weights (safetensors) or --onnx (an ONNX file), not both")
    return args.onnx if args.onnx is not None else args.weights
