"""The shipped model's two visible faults, measured for pconv and classical fills on the evaluation's cases.

Run: PYTHONPATH=src python tools/faults.py --photos ../shared/data/val_photos \
         --masks ../shared/data/masks/nvidia_irregular_test [--method ns telea patchmatch] [--weights W] \
         [--no-flip-average] [--no-shift-average] [--bins all] [--every 1] [--limit K] [--per-bin] [--json OUT]

The cases are ``pconv evaluate``'s (every photo in the 12 cells of hole ratio x N/B, NVIDIA masks; see
tools/eval_cases.py). Every fill is composited (its values in the hole, the truth elsewhere) and compared with the
truth in uint8 levels (0..255). A case's pixel sets come from the truth and the hole mask only, so every method
is scored on the same pixels.

1. Colour offset on smooth areas. A **smooth hole pixel** is a hole pixel where the truth's standard deviation
   over the 9x9 window around it is below 3 levels in each of R, G and B (sky, bokeh, pale walls). On those:

   - ``smooth_mae``: mean over the pixels of |fill - truth|, averaged over R, G, B;
   - ``bias``: mean of fill - truth per channel (R, G, B); positive = brighter than the truth;
   - ``outline``: the step the fill makes at the hole's edge beyond the truth's own. Over every pair of
     4-neighbours (p, q) with p a smooth hole pixel and q a known pixel: mean |fill(p) - truth(q)| minus mean
     |truth(p) - truth(q)| (each averaged over R, G, B). 0: the fill joins its surroundings as the truth does;
     a colour offset of d levels in one channel adds about d / 3. It can fall below 0 for a fill smoother than
     the truth's grain (classical diffusion);
   - ``edge_bias``: mean of fill(p) - truth(p) per channel over the same pairs (signed: offsets of opposite
     sign in two cases cancel);
   - ``edge_offset``: the size of each case's offset there, |mean over the case's pairs of fill(p) - truth(p)|
     averaged over R, G, B, then averaged over cases weighted by their pairs: how much of the outline is a
     colour offset along the hole's edge (the rest is grain, pixel-to-pixel error that averages out along it).

2. Broken straight structures (a rail, a pole, a horizon: thin lines and sharp edges crossing a hole). From the
   truth's grey level (mean of R, G, B), smoothed by a Gaussian of sigma 1 px, with gradient g = (gx, gy):
   the structure tensor J = G_3 * (g g^T) (Gaussian of sigma 3 px) has eigenvalues l1 >= l2; its strength is
   sqrt(l1) (levels per px across the structure), its coherence ((l1 - l2) / (l1 + l2))^2 (1 = one orientation
   only), its normal n the eigenvector of l1 and its tangent t the other one. A pixel is **on a straight
   structure** where strength >= 6 and coherence >= 0.7. A **crossing structure pixel** is a hole pixel on a
   straight structure that the structure carries straight through the hole: walking from it along +t and
   along -t, pixel by pixel (rounded positions), every pixel passed is on a straight structure with a tangent
   within 20 degrees of its own, known pixels are reached within 64 px, and the structure goes on for 3 known
   pixels. A structure that enters the hole and ends there, or bends, has no crossing pixels: only what
   enters and leaves the hole through known pixels can be continued. On the crossing pixels:

   - ``structure_mae``: mean |fill - truth| over the pixels, averaged over R, G, B;
   - ``contrast_kept``: sqrt(sum (d_n fill)^2 / sum (d_n truth)^2), with d_n the derivative of the smoothed grey
     level along the truth's normal n at each pixel: how much of the structure's contrast across it the fill
     keeps. 1: as sharp as the truth (a fill that continues the structure); near 0: blurred or diffused away.
     (Derivatives use 2-3 px around a pixel, so hole pixels next to the edge see some known pixels.)

Means pool the pixels of every case of a group (bin or all). ``pconv worse`` counts the cases where pconv's mean
error on the pixel set (smooth_mae, structure_mae) exceeds the method's, among the cases with at least 16 such pixels.
Prints one table (``--per-bin``: one per hole-ratio bin too); ``--json OUT`` writes the same figures as
``{"groups": {"all" or bin label: {fill: {"smooth_mae", "bias_rgb", "outline", "edge_bias_rgb", "edge_offset",
"structure_mae", "contrast_kept", pixel counts, "pconv_worse_smooth" / "_structure": [worse, counted]}}},
"pconv", "settings"}``.
A candidate is measured with ``--weights`` and the averaging flags; a bare ``--method`` scores pconv alone (the
classical rows do not change between runs on the same cases, and PatchMatch takes most of the time).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from eval_cases import SETUP_ERRORS, CaseSetup, add_case_arguments, composite, load_cases, pconv_method

from pconv.baselines import get_baseline
from pconv.commands._options import add_test_time_averages
from pconv.evaluate import Case, bin_label, load_photo
from pconv.imageio import atomic_write

SMOOTH_WINDOW = 9  # px, side of the window of the truth's local standard deviation
SMOOTH_STD = 3.0  # levels: below this in every channel a pixel is smooth
GRADIENT_SIGMA = 1.0  # px, smoothing before the grey level's derivatives
TENSOR_SIGMA = 3.0  # px, the structure tensor's window
MIN_STRENGTH = 6.0  # levels per px across a structure
MIN_COHERENCE = 0.7
MAX_ANGLE = 20.0  # degrees between the tangents along a straight structure
MAX_REACH = 64  # px from a hole pixel to the known pixels a structure must reach, each way
KNOWN_RUN = 3  # known pixels the structure must go on for beyond the hole, each way
MIN_CASE_PIXELS = 16  # a case takes part in the "pconv worse" count with at least this many pixels of a set
CLASSICAL = ("ns", "telea", "patchmatch", "mean")


def smooth_pixels(truth: np.ndarray, hole_mask: np.ndarray) -> np.ndarray:
    """Hole pixels where the truth's 9x9 standard deviation is below SMOOTH_STD in each channel.

    Args:
        truth: (H, W, 3) uint8 RGB.
        hole_mask: (H, W) {0, 1}, 1 = hole.
    Returns:
        (H, W) bool.
    """
    x = truth.astype(np.float64)
    box = (SMOOTH_WINDOW, SMOOTH_WINDOW)
    variance = cv2.blur(x * x, box) - cv2.blur(x, box) ** 2  # (H, W, 3); reflected at the border
    return (hole_mask > 0) & (np.sqrt(np.maximum(variance, 0)).max(axis=2) < SMOOTH_STD)


def grey_gradient(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 -> (gx, gy), each (H, W) float64 in levels per px, of the smoothed mean of R, G, B."""
    grey = cv2.GaussianBlur(image.astype(np.float64).mean(axis=2), (0, 0), GRADIENT_SIGMA)
    gy, gx = np.gradient(grey)
    return gx, gy


@dataclass(frozen=True)
class Structure:
    """The truth's straight structures: ``on`` (H, W) bool; ``normal`` (H, W, 2) unit (nx, ny) across them."""

    on: np.ndarray
    normal: np.ndarray


def straight_structure(truth: np.ndarray) -> Structure:
    """Pixels of (H, W, 3) uint8 ``truth`` on a strong, coherent structure, and the structure's normal there."""
    gx, gy = grey_gradient(truth)
    jxx, jxy, jyy = (cv2.GaussianBlur(a, (0, 0), TENSOR_SIGMA) for a in (gx * gx, gx * gy, gy * gy))
    half_diff = np.hypot((jxx - jyy) / 2, jxy)
    l1, l2 = (jxx + jyy) / 2 + half_diff, (jxx + jyy) / 2 - half_diff
    coherence = ((l1 - l2) / np.maximum(l1 + l2, 1e-12)) ** 2
    angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # direction of the eigenvector of l1
    normal = np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    on = (np.sqrt(np.maximum(l1, 0)) >= MIN_STRENGTH) & (coherence >= MIN_COHERENCE)
    return Structure(on, normal)


def crossing_pixels(structure: Structure, hole_mask: np.ndarray) -> np.ndarray:
    """Hole pixels on a straight structure that crosses the hole (module docstring, 2.).

    Args:
        structure: the truth's, from ``straight_structure``.
        hole_mask: (H, W) {0, 1}, 1 = hole.
    Returns:
        (H, W) bool.
    """
    hole = hole_mask > 0
    ys, xs = np.nonzero(structure.on & hole)
    normal = structure.normal[ys, xs]  # (N, 2)
    tangent = np.stack([-normal[:, 1], normal[:, 0]], axis=1)  # (N, 2) as (tx, ty)
    steps = np.arange(1, MAX_REACH + KNOWN_RUN + 1)  # (K,)
    crossing = np.ones(len(ys), dtype=bool)
    for sign in (1, -1):
        px = np.rint(xs[:, None] + sign * steps * tangent[:, :1]).astype(np.int64)  # (N, K)
        py = np.rint(ys[:, None] + sign * steps * tangent[:, 1:]).astype(np.int64)
        inside = (px >= 0) & (py >= 0) & (px < hole.shape[1]) & (py < hole.shape[0])
        px, py = np.clip(px, 0, hole.shape[1] - 1), np.clip(py, 0, hole.shape[0] - 1)
        # |cos| of the angle between tangents is that between normals
        aligned = np.abs((structure.normal[py, px] * normal[:, None, :]).sum(-1)) >= math.cos(math.radians(MAX_ANGLE))
        on = inside & structure.on[py, px] & aligned
        known = inside & ~hole[py, px]
        first_known = np.where(known.any(axis=1), known.argmax(axis=1), len(steps))  # (N,)
        needed = steps[None, :] <= (first_known + KNOWN_RUN)[:, None]  # the walk up to KNOWN_RUN known pixels
        crossing &= (first_known < MAX_REACH) & ~(needed & ~on).any(axis=1)
    out = np.zeros(hole.shape, dtype=bool)
    out[ys[crossing], xs[crossing]] = True
    return out


def across(image: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """(H, W) float64: the derivative of the smoothed grey level of (H, W, 3) ``image`` along ``normal`` (H, W, 2)."""
    gx, gy = grey_gradient(image)
    return gx * normal[..., 0] + gy * normal[..., 1]


@dataclass(frozen=True)
class CasePixels:
    """What one case's truth decides, all (H, W): its pixel sets and its derivative across its structures."""

    hole: np.ndarray  # bool, True = hole
    smooth: np.ndarray  # bool, smooth hole pixels
    crossing: np.ndarray  # bool, crossing structure pixels
    normal: np.ndarray  # (H, W, 2) unit (nx, ny) across the truth's structures
    truth_across: np.ndarray  # float64, ``across(truth, normal)``


def case_pixels(truth: np.ndarray, hole_mask: np.ndarray) -> CasePixels:
    """The pixel sets of a case: truth (H, W, 3) uint8, hole_mask (H, W) {0, 1}, 1 = hole."""
    structure = straight_structure(truth)
    crossing = crossing_pixels(structure, hole_mask)
    smooth = smooth_pixels(truth, hole_mask)
    return CasePixels(hole_mask > 0, smooth, crossing, structure.normal, across(truth, structure.normal))


@dataclass
class FaultSums:
    """Sums over pixels (and pairs) that add up over cases; ``FaultSums.of`` measures one fill, ``+`` pools."""

    smooth_pixels: int = 0
    smooth_abs: float = 0.0  # sum over smooth hole pixels of the mean over RGB of |fill - truth|
    smooth_signed: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) sum of fill - truth
    edge_pairs: int = 0
    edge_step_fill: float = 0.0  # sum over pairs of the mean over RGB of |fill(p) - truth(q)|
    edge_step_truth: float = 0.0  # the same with truth(p)
    edge_signed: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) sum over pairs of fill(p) - truth(p)
    edge_offset: float = 0.0  # per case: mean over RGB of |its edge_signed|; summed over cases
    structure_pixels: int = 0
    structure_abs: float = 0.0
    structure_energy_fill: float = 0.0  # sum of (d_n fill)^2
    structure_energy_truth: float = 0.0

    @classmethod
    def of(cls, fill: np.ndarray, truth: np.ndarray, pixels: CasePixels) -> FaultSums:
        """Measure a composited fill (H, W, 3) uint8 against the truth on the case's pixel sets."""
        error = fill.astype(np.float64) - truth  # (H, W, 3)
        step_fill, step_truth, offset = edge_steps(fill, truth, pixels.hole, pixels.smooth)
        on = pixels.crossing
        return cls(
            smooth_pixels=int(pixels.smooth.sum()),
            smooth_abs=float(np.abs(error[pixels.smooth]).mean(axis=1).sum()),
            smooth_signed=error[pixels.smooth].sum(axis=0),
            edge_pairs=len(step_fill),
            edge_step_fill=float(step_fill.sum()),
            edge_step_truth=float(step_truth.sum()),
            edge_signed=offset.sum(axis=0),
            edge_offset=float(np.abs(offset.sum(axis=0)).mean()),
            structure_pixels=int(on.sum()),
            structure_abs=float(np.abs(error[on]).mean(axis=1).sum()),
            structure_energy_fill=float((across(fill, pixels.normal)[on] ** 2).sum()),
            structure_energy_truth=float((pixels.truth_across[on] ** 2).sum()),
        )

    def __add__(self, other: FaultSums) -> FaultSums:
        return FaultSums(**{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__})

    def figures(self) -> dict[str, float | int | list[float]]:
        """The module docstring's measures (NaN where a set is empty) and the pixel counts behind them."""
        nan = math.nan
        return {
            "smooth_pixels": self.smooth_pixels,
            "smooth_mae": self.smooth_abs / self.smooth_pixels if self.smooth_pixels else nan,
            "bias_rgb": [float(b) for b in self.smooth_signed / self.smooth_pixels]
            if self.smooth_pixels
            else [nan] * 3,
            "edge_pairs": self.edge_pairs,
            "outline": (self.edge_step_fill - self.edge_step_truth) / self.edge_pairs if self.edge_pairs else nan,
            "edge_bias_rgb": [float(b) for b in self.edge_signed / self.edge_pairs] if self.edge_pairs else [nan] * 3,
            "edge_offset": self.edge_offset / self.edge_pairs if self.edge_pairs else nan,
            "structure_pixels": self.structure_pixels,
            "structure_mae": self.structure_abs / self.structure_pixels if self.structure_pixels else nan,
            "contrast_kept": math.sqrt(self.structure_energy_fill / self.structure_energy_truth)
            if self.structure_energy_truth > 0
            else nan,
        }


def edge_steps(
    fill: np.ndarray, truth: np.ndarray, hole: np.ndarray, smooth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per 4-neighbour pair (p smooth hole pixel, q known): the steps |fill(p) - truth(q)| and |truth(p) - truth(q)|,
    each averaged over RGB, and the offset fill(p) - truth(p) per channel.

    Args:
        fill, truth: (H, W, 3) uint8.
        hole, smooth: (H, W) bool (True = hole; True = smooth hole pixel).
    Returns:
        (P,), (P,) and (P, 3) float64 arrays, a row per pair.
    """
    f, t = fill.astype(np.float64), truth.astype(np.float64)
    steps_fill, steps_truth, offsets = [], [], []
    vertical = ((slice(None, -1),), (slice(1, None),))  # (rows but the last, rows but the first)
    horizontal = ((slice(None), slice(None, -1)), (slice(None), slice(1, None)))
    for lo, hi in (vertical, horizontal):
        for p, q in ((lo, hi), (hi, lo)):  # p the hole side, q its known neighbour
            pairs = smooth[p] & ~hole[q]
            steps_fill.append(np.abs(f[p][pairs] - t[q][pairs]).mean(axis=1))
            steps_truth.append(np.abs(t[p][pairs] - t[q][pairs]).mean(axis=1))
            offsets.append(f[p][pairs] - t[p][pairs])
    return np.concatenate(steps_fill), np.concatenate(steps_truth), np.concatenate(offsets)


@dataclass(frozen=True)
class CaseRecord:
    """One case's sums per fill (``"pconv"`` and each classical method), with its cell."""

    bin_index: int
    kind: str
    sums: dict[str, FaultSums]


def measure_case(truth: np.ndarray, hole_mask: np.ndarray, fills: dict[str, np.ndarray]) -> dict[str, FaultSums]:
    """Every fill's sums on one case: truth (H, W, 3) uint8, hole_mask (H, W) {0, 1} (1 = hole), fills composited."""
    pixels = case_pixels(truth, hole_mask)
    return {name: FaultSums.of(fill, truth, pixels) for name, fill in fills.items()}


def pconv_worse(records: Sequence[CaseRecord], method: str, pixels: str, error: str) -> tuple[int, int]:
    """(cases where pconv's mean error on a pixel set exceeds ``method``'s, cases with >= MIN_CASE_PIXELS)."""
    worse = counted = 0
    for record in records:
        ours, theirs = record.sums["pconv"], record.sums[method]
        if getattr(ours, pixels) >= MIN_CASE_PIXELS:
            counted += 1
            worse += getattr(ours, error) > getattr(theirs, error)  # same pixels: the sums compare as the means
    return worse, counted


def summarize(records: Sequence[CaseRecord], methods: Sequence[str]) -> dict[str, dict]:
    """Per fill: the pooled figures of ``FaultSums.figures`` and, for classical methods, the "pconv worse" counts."""
    out: dict[str, dict] = {}
    for name in ("pconv", *methods):
        total = sum((r.sums[name] for r in records), FaultSums())
        out[name] = {"cases": len(records), **total.figures()}
        if name != "pconv":
            out[name]["pconv_worse_smooth"] = pconv_worse(records, name, "smooth_pixels", "smooth_abs")
            out[name]["pconv_worse_structure"] = pconv_worse(records, name, "structure_pixels", "structure_abs")
    return out


WORSE_KEYS = ("pconv_worse_smooth", "pconv_worse_structure")


def table(summary: dict[str, dict]) -> str:
    """A Markdown table of ``summarize``'s figures, one row per fill."""
    lines = [
        "| fill | smooth px/case | smooth MAE | bias R | bias G | bias B | outline | edge bias R/G/B | edge offset "
        "| pconv worse (smooth) | structure px/case | structure MAE | contrast kept | pconv worse (structure) |",
        "|---" * 14 + "|",
    ]
    for name, f in summary.items():
        worse = [f"{f[k][0]} of {f[k][1]}" if k in f else "-" for k in WORSE_KEYS]
        bias = " | ".join(f"{b:+.2f}" for b in f["bias_rgb"])
        edge_bias = "/".join(f"{b:+.1f}" for b in f["edge_bias_rgb"])
        lines.append(
            f"| {name} | {f['smooth_pixels'] / f['cases']:.0f} | {f['smooth_mae']:.2f} | {bias} | {f['outline']:+.2f} "
            f"| {edge_bias} | {f['edge_offset']:.2f} | {worse[0]} | {f['structure_pixels'] / f['cases']:.0f} "
            f"| {f['structure_mae']:.2f} | {f['contrast_kept']:.3f} | {worse[1]} |"
        )
    return "\n".join(lines)


def groups(records: Sequence[CaseRecord], bins: Sequence[int], per_bin: bool) -> dict[str, list[CaseRecord]]:
    """``{"all": every record}``, and with ``per_bin`` one entry per hole-ratio bin label."""
    out = {"all": list(records)}
    if per_bin:
        out.update({bin_label(b): [r for r in records if r.bin_index == b] for b in bins})
    return out


def _json_ready(value: object) -> object:
    """NaN -> None and tuples -> lists, so that the JSON is standard."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


SETTINGS = {
    "smooth_window": SMOOTH_WINDOW,
    "smooth_std": SMOOTH_STD,
    "gradient_sigma": GRADIENT_SIGMA,
    "tensor_sigma": TENSOR_SIGMA,
    "min_strength": MIN_STRENGTH,
    "min_coherence": MIN_COHERENCE,
    "max_angle": MAX_ANGLE,
    "max_reach": MAX_REACH,
    "known_run": KNOWN_RUN,
    "min_case_pixels": MIN_CASE_PIXELS,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_case_arguments(parser, bins_default="all")
    parser.add_argument(
        "--method",
        nargs="*",
        default=["ns"],
        choices=CLASSICAL,
        help="classical fills beside pconv (default: ns; none after a bare --method: pconv alone, fast)",
    )
    add_test_time_averages(parser)
    parser.add_argument("--per-bin", action="store_true", help="a table per hole-ratio bin too")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--progress", action="store_true", help="a progress bar on stderr")
    return parser.parse_args(argv)


def check_json_path(path: Path | None, overwrite: bool) -> None:
    """Refuse a --json the run could not write at its end (``FileExistsError``, ``FileNotFoundError``)."""
    if path is None:
        return
    if path.is_dir():
        raise FileExistsError(f"--json {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(f"--json {path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder of --json {path} does not exist")


def run(setup: CaseSetup, args: argparse.Namespace) -> list[CaseRecord]:
    """Fill every case with pconv (one batch per photo) and the classical methods; measure the fills."""
    from tqdm import tqdm

    pconv = pconv_method(setup, args)
    classical = {name: get_baseline(name) for name in args.method}
    by_photo: dict[Path, list[Case]] = {}
    for case in setup.cases:
        by_photo.setdefault(case.photo, []).append(case)
    records = []
    for photo, cases in tqdm(by_photo.items(), unit="photo", disable=not args.progress):
        truth = load_photo(photo)
        holes = np.stack([setup.masks.load(case) for case in cases])  # (n, H, W), 1 = hole
        ours = pconv.fill_batch(np.broadcast_to(truth, (len(cases), *truth.shape)), holes)
        for case, hole, filled in zip(cases, holes, ours):
            fills = {"pconv": filled, **{n: composite(truth, hole, fill(truth, hole)) for n, fill in classical.items()}}
            records.append(CaseRecord(case.bin_index, case.kind, measure_case(truth, hole, fills)))
    return records


def report(records: list[CaseRecord], setup: CaseSetup, args: argparse.Namespace) -> dict[str, object]:
    """The figures of every group, with what produced them (the --json document)."""
    return {
        "cases": len(records),
        "bins": [bin_label(b) for b in setup.bins],
        "pconv": {
            "weights": str(args.weights or "shipped"),
            "flip_average": args.flip_average,
            "shift_average": args.shift_average,
            "smooth": getattr(args, "smooth", True),
        },
        "settings": SETTINGS,
        "groups": {
            label: summarize(group, args.method) for label, group in groups(records, setup.bins, args.per_bin).items()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_json_path(args.json, args.overwrite)
        setup = load_cases(args)
        for name in args.method:
            get_baseline(name)  # patchmatch: is its package usable here?
        records = run(setup, args)  # a mask outside its bin raises ValueError here
    except (*SETUP_ERRORS, FileExistsError, RuntimeError) as err:
        print(f"faults: {err}", file=sys.stderr)
        return 2
    figures = report(records, setup, args)
    averages = [k.replace("_", " ") for k in ("flip_average", "shift_average") if getattr(args, k, False)]
    blend = ", smooth blend" if getattr(args, "smooth", False) else ""
    print(f"{len(records)} cases; pconv {figures['pconv']['weights']}, {', '.join(averages) or 'one pass'}{blend}")
    for label, summary in figures["groups"].items():
        print(f"\n## {label} ({summary['pconv']['cases']} cases)\n\n{table(summary)}")
    if args.json is not None:
        text = json.dumps(_json_ready(figures), indent=2) + "\n"
        atomic_write(args.json, lambda f: f.write(text.encode()), overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
