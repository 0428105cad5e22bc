"""Command-line options that several ``pconv`` subcommands share."""

from __future__ import annotations

import argparse

FLIP_AVERAGE_HELP = "skip averaging with the mirrored image (half the passes, slightly worse)"
SHIFT_AVERAGE_HELP = "skip averaging with the image moved by one pixel (half the passes, slightly worse)"


def add_test_time_averages(
    parser: argparse.ArgumentParser, *, flip_help: str = FLIP_AVERAGE_HELP, shift_help: str = SHIFT_AVERAGE_HELP
) -> None:
    """``--no-flip-average`` / ``--no-shift-average`` -> ``args.flip_average`` / ``args.shift_average`` = False.

    Both default to True, as in ``pconv.inference.Inpainter``.
    """
    parser.add_argument("--no-flip-average", dest="flip_average", action="store_false", help=flip_help)
    parser.add_argument("--no-shift-average", dest="shift_average", action="store_false", help=shift_help)
