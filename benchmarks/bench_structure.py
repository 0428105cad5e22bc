"""Straight structures through a hole: how much of their contrast each fill keeps (issue 36's measure).

Synthetic images of our own, two colours ``C0`` and ``C1`` (anti-aliased): a step edge, stripes of two periods and
duty cycles, thin lines of 3 and 6 px, at five angles, without and with grain (Gaussian, 4 levels); each with the
holes that cross the structure: a brush stroke across it (22 px wide, 15 degrees off its normal), a disk (radius
26 px) and an NVIDIA test mask of 10-20 % holes resized to the image (``--masks``; kept where its hole covers both
colours). For every hole pixel the fill is projected on the axis from ``C0`` to ``C1``; the **contrast
kept** is the slope of that projection against the truth's (1: the structure runs on through the hole; 0: the hole
is one flat colour), and the **error** the mean absolute difference to the truth in 8-bit levels.

    PYTHONPATH=src python benchmarks/bench_structure.py [--methods pconv ns telea patchmatch] \
        [--out benchmarks/RESULTS.md]

``pconv`` is the shipped model through ``Inpainter`` (the fill graph on ONNX Runtime, default settings).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

SIZE = 192
C0 = np.array([40.0, 70.0, 120.0])
C1 = np.array([220.0, 190.0, 90.0])
ANGLES = (0, 30, 60, 100, 135)
NVIDIA_FIRST = 2000  # the NVIDIA test masks of the (0.1, 0.2] bin without border: 02000.png to 02999.png
KINDS = {  # name -> (structure, its parameters)
    "edge": ("edge", {}),
    "stripes 12 px, duty 0.5": ("stripes", {"period": 12, "duty": 0.5}),
    "stripes 20 px, duty 0.3": ("stripes", {"period": 20, "duty": 0.3}),
    "line 3 px": ("line", {"width": 3}),
    "line 6 px": ("line", {"width": 6}),
}


@dataclass(frozen=True)
class Case:
    kind: str
    angle: int
    grain: float
    hole_name: str
    image: np.ndarray  # (H, W, 3) uint8
    hole: np.ndarray  # (H, W) uint8 {0, 1}, 1 = hole
    truth_t: np.ndarray  # (H, W) float64 in [0, 1]: 0 = C0, 1 = C1


def structure(shape: str, angle: float, *, period: int = 16, duty: float = 0.5, width: int = 3) -> np.ndarray:
    """(SIZE, SIZE) float64 in [0, 1], anti-aliased over one pixel: 0 = colour C0, 1 = C1."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) - SIZE / 2 + 0.5
    a = math.radians(angle)
    across = x * math.cos(a) + y * math.sin(a)  # signed distance along the structure's normal
    if shape == "edge":
        return np.clip(across + 0.5, 0, 1)
    if shape == "stripes":
        phase, on = np.mod(across, period), duty * period
        return np.clip(np.minimum(phase + 0.5, on - phase + 0.5), 0, 1) * (phase < on + 0.5)
    if shape == "line":
        return np.clip(width / 2 + 0.5 - np.abs(across), 0, 1)
    raise ValueError(f"unknown structure {shape!r}")


def render(t: np.ndarray, grain: float, seed: int) -> np.ndarray:
    image = C0 + t[..., None] * (C1 - C0)
    if grain:
        image = image + np.random.default_rng(seed).normal(0, grain, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def stroke_hole(angle: float, *, width: int = 22) -> np.ndarray:
    """A straight brush stroke through the centre along ``angle`` (degrees): (SIZE, SIZE) uint8, 1 = hole."""
    import cv2

    hole = np.zeros((SIZE, SIZE), np.uint8)
    a, c = math.radians(angle), SIZE / 2
    ends = [(int(c + s * SIZE * math.cos(a)), int(c + s * SIZE * math.sin(a))) for s in (-1, 1)]
    cv2.line(hole, ends[0], ends[1], 1, width)
    return hole


def disk_hole(*, radius: int = 26) -> np.ndarray:
    import cv2

    hole = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(hole, (SIZE // 2, SIZE // 2), radius, 1, -1)
    return hole


def nvidia_hole(index: int, masks: Path) -> np.ndarray:
    """NVIDIA test mask ``index`` (512², white = hole) resized to (SIZE, SIZE) by nearest neighbour: uint8, 1 = hole."""
    from PIL import Image

    mask = Image.open(masks / f"{index:05d}.png").convert("L").resize((SIZE, SIZE), Image.Resampling.NEAREST)
    return (np.asarray(mask) > 127).astype(np.uint8)


def cases(masks: Path | None = None) -> Iterator[Case]:
    """The synthetic cases: every structure x angle x grain with a stroke across and a disk on it, and, given the
    NVIDIA test mask folder, one of its (0.1, 0.2] masks (no border) too, where its hole covers both colours."""
    for i, (kind, (shape, params)) in enumerate(KINDS.items()):
        for j, angle in enumerate(ANGLES):
            t = structure(shape, angle, **params)
            for grain in (0.0, 4.0):
                image = render(t, grain, seed=angle)
                holes = [("stroke", stroke_hole(angle + 15)), ("disk", disk_hole())]
                if masks is not None:
                    holes.append(("nvidia", nvidia_hole(NVIDIA_FIRST + 37 * (5 * i + j) + int(grain), masks)))
                for hole_name, hole in holes:
                    if t[hole > 0].std() > 0.1:  # the hole crosses the structure
                        yield Case(kind, angle, grain, hole_name, image, hole, t)


def contrast_kept(fill: np.ndarray, case: Case) -> float:
    """Slope of the fill's projection on the C0 -> C1 axis against the truth's, over the hole pixels."""
    axis = C1 - C0
    projected = ((fill.astype(np.float64) - C0) @ axis) / (axis @ axis)
    hole = case.hole > 0
    truth, got = case.truth_t[hole], projected[hole]
    return float(((got - got.mean()) * (truth - truth.mean())).mean() / truth.var())


def mean_error(fill: np.ndarray, case: Case) -> float:
    hole = case.hole > 0
    return float(np.abs(fill.astype(np.float64) - case.image.astype(np.float64))[hole].mean())


def fills(methods: list[str]) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    from pconv.baselines import get_baseline

    out: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
    for name in methods:
        if name == "pconv":
            from pconv.inference import Inpainter

            out[name] = Inpainter(backend="onnx").inpaint
        else:
            out[name] = get_baseline(name)
    return out


def measure(methods: list[str], masks: Path | None = None) -> dict[tuple[str, str], tuple[float, float]]:
    """(kind, method) -> (mean contrast kept, mean error in levels) over the kind's cases; kind "all" too."""
    sums: dict[tuple[str, str], list[tuple[float, float]]] = {}
    by_method = fills(methods)
    for case in cases(masks):
        for name, fill in by_method.items():
            out = fill(case.image, case.hole)
            for kind in (case.kind, "all"):
                sums.setdefault((kind, name), []).append((contrast_kept(out, case), mean_error(out, case)))
    return {key: tuple(np.mean(np.array(values), axis=0)) for key, values in sums.items()}  # type: ignore[misc]


def table(results: dict[tuple[str, str], tuple[float, float]], methods: list[str]) -> str:
    head = "| structure | " + " | ".join(f"{m} contrast kept / error" for m in methods) + " |"
    rows = [head, "|---|" + "---:|" * len(methods)]
    for kind in [*KINDS, "all"]:
        cells = [f"{results[kind, m][0]:.2f} / {results[kind, m][1]:.1f}" for m in methods]
        rows.append(f"| {'**all**' if kind == 'all' else kind} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["pconv", "ns", "telea", "patchmatch"])
    parser.add_argument("--out", type=Path, default=None, help="RESULTS.md to write the section into")
    parser.add_argument(
        "--masks", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/masks/nvidia_irregular_test"
    )
    args = parser.parse_args(argv)
    masks = args.masks if args.masks.is_dir() else None
    results = measure(args.methods, masks)
    n = sum(1 for _ in cases(masks))
    text = "\n".join(
        [
            "## Straight structures through a hole",
            "",
            f"- Command: `PYTHONPATH=src python benchmarks/bench_structure.py --methods {' '.join(args.methods)} "
            "--out benchmarks/RESULTS.md`",
            f"- {n} synthetic cases ({SIZE}x{SIZE}): 5 structures x 5 angles x grain 0 / 4 levels x a stroke across, "
            "a disk and an NVIDIA test mask of 10-20 % holes (resized; where the hole crosses the structure); "
            "contrast kept = slope of the fill's projection on the two colours' axis against the "
            "truth's (1 = the structure runs on), error = mean |fill - truth| in levels, over hole pixels.",
            "",
            table(results, args.methods),
        ]
    )
    print(text)
    if args.out is not None:
        write_section(args.out, "structure", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
