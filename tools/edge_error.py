"""Fill error by distance into the hole, pconv against a classical method, on the evaluation's cases.

Run: PYTHONPATH=src python tools/edge_error.py --photos ../shared/data/eval_photos \
         --masks ../shared/data/masks/nvidia_irregular_test [--weights W] [--bins 0] [--every 1] [--limit K] \
         [--method ns]
For every case of the chosen hole-ratio bins (both N and B, as ``pconv evaluate`` builds them, default inference)
it prints the mean absolute error of each fill (uint8 levels, mean over RGB) of the hole pixels at distance
1, 2, ... 7 and 8 or more pixels from the nearest known pixel (Euclidean distance, rounded up), and the mean SSIM
of pconv, of the classical method, and of pconv with its first one or two pixels of hole edge taken from the
classical fill: how much of an SSIM gap lies at the hole's edge (docs/model_history.md, "What would close the gap").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from eval_cases import SETUP_ERRORS, add_case_arguments, composite, load_cases, pconv_method

from pconv import scores
from pconv.baselines import BASELINES, get_baseline
from pconv.evaluate import BINS, load_photo

FAR = 8  # distances of FAR pixels or more share one row


def hole_distance(hole_mask: np.ndarray) -> np.ndarray:
    """(H, W) {0, 1} hole mask, 1 = hole -> (H, W) int: pixels to the nearest known pixel, rounded up; 0 if known."""
    dist = cv2.distanceTransform(hole_mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.ceil(dist).astype(np.int64)


@dataclass
class EdgeTally:
    """Sums over cases: absolute error per distance row for each fill, SSIMs, and the case count."""

    error: dict[str, np.ndarray] = field(default_factory=dict)  # fill -> (FAR,) summed errors
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(FAR))  # (FAR,) hole pixels per row
    ssim: dict[str, float] = field(default_factory=dict)
    cases: int = 0

    def add(self, truth: np.ndarray, hole_mask: np.ndarray, fills: dict[str, np.ndarray]) -> None:
        """truth and fills (H, W, 3) uint8 composites (known pixels equal to truth), hole_mask (H, W), 1 = hole."""
        row = np.minimum(hole_distance(hole_mask), FAR) - 1  # -1 for known pixels
        in_hole = row >= 0
        self.pixels += np.bincount(row[in_hole], minlength=FAR)
        for name, fill in fills.items():
            err = np.abs(fill.astype(np.float64) - truth).mean(axis=2)
            self.error[name] = self.error.get(name, np.zeros(FAR)) + np.bincount(
                row[in_hole], weights=err[in_hole], minlength=FAR
            )
            self.ssim[name] = self.ssim.get(name, 0.0) + scores.ssim(fill, truth)
        self.cases += 1

    def report(self) -> str:
        names = list(self.error)
        lines = [
            "| distance into the hole (px) | pixels per case | " + " | ".join(f"{n} error" for n in names) + " |",
            "|---" * (2 + len(names)) + "|",
        ]
        for d in range(FAR):
            label = f"{d + 1}" if d + 1 < FAR else f"{FAR}+"
            errs = " | ".join(f"{self.error[n][d] / max(self.pixels[d], 1):.2f}" for n in names)
            lines.append(f"| {label} | {self.pixels[d] / self.cases:.0f} | {errs} |")
        lines.append("")
        lines.append("mean SSIM: " + ", ".join(f"{n} {self.ssim[n] / self.cases:.5f}" for n in self.ssim))
        return "\n".join(lines)


def edge_fills(pconv: np.ndarray, classical: np.ndarray, hole_mask: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """pconv's fill with its first 1 and 2 pixels of hole edge taken from the classical fill, keyed by a label."""
    dist = hole_distance(hole_mask)[..., None]
    return {f"pconv, edge {k} px from {name}": np.where((dist >= 1) & (dist <= k), classical, pconv) for k in (1, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_case_arguments(parser, bins_default="0")
    parser.add_argument("--method", default="ns", choices=sorted(set(BASELINES) - {"patchmatch"}))
    args = parser.parse_args(argv)
    try:
        setup = load_cases(args)
    except SETUP_ERRORS as err:
        print(f"edge_error: {err}", file=sys.stderr)
        return 2
    pconv, classical = pconv_method(setup, args), get_baseline(args.method)
    tally = EdgeTally()
    for case in setup.cases:
        truth, hole = load_photo(case.photo), setup.masks.load(case)
        ours = pconv.fill_batch(truth[None], hole[None])[0]
        theirs = composite(truth, hole, classical(truth, hole))
        tally.add(truth, hole, {"pconv": ours, args.method: theirs, **edge_fills(ours, theirs, hole, args.method)})
    print(f"{len(setup.cases)} cases, bins {', '.join(str(BINS[b]) for b in setup.bins)}")
    print(tally.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
