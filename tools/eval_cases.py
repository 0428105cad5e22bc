"""Options and set-up shared by the tools that compare fills on the evaluation's cases (edge_error, faults).

The cases are those ``pconv evaluate`` builds (``pconv.evaluate.build_cases``) with the NVIDIA test masks: every
photo under ``--photos`` in all 12 cells (6 hole-ratio bins x N/B), of which the tools keep the ``--bins`` chosen,
every ``--every``-th photo and at most the first ``--limit`` of those.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pconv.evaluate import BINS, Case, NvidiaCellMasks, PConvMethod, build_cases, find_photos
from pconv.inference import default_weights_path
from pconv.model import WeightsError, load_weights

# What a bad input raises while the set-up runs; the tools print it as one line and exit 2.
SETUP_ERRORS = (ValueError, FileNotFoundError, WeightsError)


def add_case_arguments(parser: argparse.ArgumentParser, *, bins_default: str) -> None:
    """--photos, --masks, --weights, --bins, --every and --limit, read back by ``load_cases``."""
    parser.add_argument("--photos", type=Path, required=True, help="evaluation photos (as pconv evaluate)")
    parser.add_argument("--masks", type=Path, required=True, help="the NVIDIA irregular test masks")
    parser.add_argument("--weights", type=Path, help="pconv weights (default: the shipped model)")
    parser.add_argument(
        "--bins", default=bins_default, help=f"comma-separated hole-ratio bin indices 0..5 (default {bins_default})"
    )
    parser.add_argument("--every", type=int, default=1, help="use every n-th photo (default 1: all)")
    parser.add_argument("--limit", type=int, default=None, help="use at most the first K of those photos")


def parse_bins(text: str) -> list[int]:
    """``"0,2"`` -> [0, 2]; ``"all"`` -> every bin; ``ValueError`` naming the valid indices otherwise."""
    if text.strip() == "all":
        return list(range(len(BINS)))
    try:
        bins = [int(b) for b in text.split(",")]
    except ValueError:
        bins = []
    if not bins or any(not 0 <= b < len(BINS) for b in bins) or len(set(bins)) != len(bins):
        raise ValueError(
            f"--bins takes distinct indices 0..{len(BINS) - 1} separated by commas (or 'all'), got {text!r}"
        )
    return sorted(bins)


@dataclass(frozen=True)
class CaseSetup:
    """The network to score, the mask source and the chosen cases (photo-major, as ``build_cases``)."""

    model: object
    masks: NvidiaCellMasks
    cases: list[Case]
    bins: list[int]


def load_cases(args: argparse.Namespace) -> CaseSetup:
    """The set-up the options of ``add_case_arguments`` describe; raises one of ``SETUP_ERRORS`` on bad input."""
    bins = parse_bins(args.bins)
    if args.every < 1 or (args.limit is not None and args.limit < 1):
        raise ValueError(f"--every and --limit take a count >= 1, got {args.every} and {args.limit}")
    model = load_weights(args.weights or default_weights_path()).eval()
    masks = NvidiaCellMasks(args.masks)
    photos = find_photos(args.photos)[:: args.every]
    cases = [c for c in build_cases(photos, masks, limit=args.limit) if c.bin_index in bins]
    return CaseSetup(model, masks, cases, bins)


def pconv_method(setup: CaseSetup, args: argparse.Namespace) -> PConvMethod:
    """The network with the test-time averages and smooth blend the options chose (all on unless --no-...)."""
    flip, shift = getattr(args, "flip_average", True), getattr(args, "shift_average", True)
    return PConvMethod(setup.model, flip_average=flip, shift_average=shift, smooth=getattr(args, "smooth", True))


def composite(truth: np.ndarray, hole_mask: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: ``fill`` in the hole (hole_mask (H, W), 1 = hole), ``truth`` elsewhere."""
    return np.where(hole_mask[..., None] > 0, fill, truth)
