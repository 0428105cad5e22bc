"""Command-line options that several ``pconv`` subcommands share."""

from __future__ import annotations

import argparse

FLIP_AVERAGE_HELP = "skip averaging with the mirrored image (half the passes, slightly worse)"


def add_flip_average(parser: argparse.ArgumentParser, *, help: str = FLIP_AVERAGE_HELP) -> None:  # noqa: A002
    """``--no-flip-average`` -> ``args.flip_average = False`` (default True, as ``pconv.inference.Inpainter``)."""
    parser.add_argument("--no-flip-average", dest="flip_average", action="store_false", help=help)


SHIFT_AVERAGE_HELP = "skip averaging with the image moved by one pixel (half the passes, slightly worse)"


def add_shift_average(parser: argparse.ArgumentParser, *, help: str = SHIFT_AVERAGE_HELP) -> None:  # noqa: A002
    """``--no-shift-average`` -> ``args.shift_average = False`` (default True, as ``pconv.inference.Inpainter``)."""
    parser.add_argument("--no-shift-average", dest="shift_average", action="store_false", help=help)
