"""Command-line options that several ``pconv`` subcommands share."""

from __future__ import annotations

import argparse

FLIP_AVERAGE_HELP = "run the network once instead of averaging with the mirrored image (twice as fast, slightly worse)"


def add_flip_average(parser: argparse.ArgumentParser, *, help: str = FLIP_AVERAGE_HELP) -> None:  # noqa: A002
    """``--no-flip-average`` -> ``args.flip_average = False`` (default True, as ``pconv.inference.Inpainter``)."""
    parser.add_argument("--no-flip-average", dest="flip_average", action="store_false", help=help)
