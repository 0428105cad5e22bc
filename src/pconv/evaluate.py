"""Evaluation as in the paper (arXiv 1804.07723, §5): deterministic 512x512 cases, every method, scores by
hole-ratio bin x border rule.

Cases. Photos are found recursively under a folder and sorted by relative path. Each photo is decoded (EXIF
orientation applied, RGB), resized with PIL **Lanczos** so its short side is 512 px (up or down), and centre
cropped to 512x512. Each photo is evaluated in all 12 cells: 6 hole-ratio bins (0.01,0.1], (0.1,0.2], ...,
(0.5,0.6] x the paper's two mask kinds, "N" (no hole within 50 px of the border) and "B" (holes may touch it).

Masks per cell, by a fixed rule that depends only on (seed, photo index, cell), so ``limit=K`` gives exactly the
first K photos' cases of the full run:

- NVIDIA test masks (``NvidiaCellMasks``): file ``i`` lies in bin ``i // 2000``; in each bin the first 1000 are N,
  the next 1000 B. Cell (b, kind) uses file ``2000 b + 1000 [kind == B] + perm[p % 1000]``, where ``perm`` is
  ``numpy.random.default_rng([seed, b, kind]).permutation(1000)`` and ``p`` the photo index: different photos
  get different masks (up to 1000 photos) and the choice never depends on how many photos there are.
- Generated masks (``GeneratedCellMasks``): ``pconv.mask_generation.generate_hole_mask`` with a generator seeded by
  ``[seed, p, b, kind]`` and ``border=50`` for N, 0 for B.

(These are case-selection rules for evaluation; the training-side mask sources with augmentation are
``pconv.nvidia_masks.NvidiaMasks`` and ``pconv.mask_generation.GeneratedMasks``.)

Scoring. Every method's output is composited (its prediction in the hole, the truth elsewhere; the paper scores
I_comp), checked (a missing or wrongly shaped output is an error, never skipped) and scored with
``pconv.scores`` on uint8: all methods are quantised alike. Times are wall seconds per image of the method's
fill call (for the batched network: the batch time divided by the batch size).

Several processes (``torchrun``, ``run_evaluation(..., group=...)``): each rank scores a fixed share of the photos
and all results are gathered, so the tables are those of one process (docs/scale_out.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from pconv import scores

if TYPE_CHECKING:
    from pconv.distributed import Group, SharedCount

__all__ = [
    "CASE_SIZE",
    "BINS",
    "KINDS",
    "BORDER",
    "Case",
    "CaseResult",
    "NvidiaCellMasks",
    "GeneratedCellMasks",
    "find_photos",
    "load_photo",
    "build_cases",
    "sample_case_indices",
    "BaselineMethod",
    "PConvMethod",
    "run_evaluation",
    "summarize",
]

log = logging.getLogger(__name__)

CASE_SIZE = 512
BINS: tuple[tuple[float, float], ...] = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))
KINDS: tuple[str, ...] = ("N", "B")  # N: no hole within BORDER px of the edge; B: unconstrained
BORDER = 50
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
NVIDIA_PER_KIND = 1000
NVIDIA_TOTAL = len(BINS) * len(KINDS) * NVIDIA_PER_KIND
# A mask's measured hole ratio may stray this far out of its bin (NVIDIA's own files do, by rounding).
BIN_TOLERANCE = 0.02


def bin_label(bin_index: int) -> str:
    """``(0.01,0.1]``-style label of a hole-ratio bin."""
    lo, hi = BINS[bin_index]
    return f"({lo:g},{hi:g}]"


@dataclass(frozen=True)
class Case:
    """One evaluation case: a photo in one bin x kind cell, with the id of its mask."""

    index: int
    photo_index: int
    photo: Path
    bin_index: int
    kind: str
    mask_id: str


def find_photos(root: str | Path) -> list[Path]:
    """Image files under ``root`` (recursive), sorted by their path relative to ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"photo folder not found: {root}")
    photos = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES]
    if not photos:
        raise ValueError(f"no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) under {root}")
    return sorted(photos, key=lambda p: p.relative_to(root).as_posix())


def load_photo(path: str | Path, *, size: int = CASE_SIZE) -> np.ndarray:
    """Decode a photo (EXIF orientation, RGB), resize its short side to ``size`` (Lanczos), centre crop.

    Returns:
        (size, size, 3) uint8 RGB.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except UnidentifiedImageError as exc:
        raise ValueError(f"cannot read photo {path}: {exc}") from None
    w, h = rgb.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        rgb = rgb.resize((new_w, new_h), Image.Resampling.LANCZOS)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(rgb.crop((left, top, left + size, top + size)), dtype=np.uint8)


class MaskSource(Protocol):
    """Where the hole masks of the cases come from."""

    def mask_id(self, photo_index: int, bin_index: int, kind: str) -> str: ...

    def load(self, case: Case) -> np.ndarray: ...


def _check_in_bin(hole_mask: np.ndarray, case: Case, what: str) -> None:
    if hole_mask.shape != (CASE_SIZE, CASE_SIZE):
        raise ValueError(f"{what} is {hole_mask.shape[1]}x{hole_mask.shape[0]}, expected {CASE_SIZE}x{CASE_SIZE}")
    ratio = float(hole_mask.mean())
    lo, hi = BINS[case.bin_index]
    if not lo - BIN_TOLERANCE < ratio <= hi + BIN_TOLERANCE:
        raise ValueError(
            f"{what} has hole ratio {ratio:.3f}, outside its bin {bin_label(case.bin_index)}; "
            "is --masks the NVIDIA test set (12,000 files, bin = index // 2000)?"
        )


@dataclass(frozen=True)
class NvidiaCellMasks:
    """The NVIDIA irregular test masks (``NNNNN.png``, 255 = hole); see the module docstring for the rule."""

    root: Path
    seed: int = 0
    _perms: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        root = Path(self.root)
        object.__setattr__(self, "root", root)
        if not root.is_dir():
            raise FileNotFoundError(f"mask folder not found: {root}")
        for i in (0, NVIDIA_TOTAL - 1):
            if not (root / f"{i:05d}.png").is_file():
                raise ValueError(
                    f"{root} is not the NVIDIA test mask set: {i:05d}.png is missing "
                    f"(expected 00000.png .. {NVIDIA_TOTAL - 1:05d}.png)"
                )
        perms = tuple(
            tuple(int(x) for x in np.random.default_rng([self.seed, b, k]).permutation(NVIDIA_PER_KIND))
            for b in range(len(BINS))
            for k in range(len(KINDS))
        )
        object.__setattr__(self, "_perms", perms)

    def file_index(self, photo_index: int, bin_index: int, kind: str) -> int:
        k = KINDS.index(kind)
        pick = self._perms[bin_index * len(KINDS) + k][photo_index % NVIDIA_PER_KIND]
        return bin_index * len(KINDS) * NVIDIA_PER_KIND + k * NVIDIA_PER_KIND + pick

    def mask_id(self, photo_index: int, bin_index: int, kind: str) -> str:
        return f"{self.file_index(photo_index, bin_index, kind):05d}.png"

    def load(self, case: Case) -> np.ndarray:
        """(512, 512) uint8 hole mask, 1 = hole."""
        from pconv.masks import load_hole_mask

        hole_mask = load_hole_mask(self.root / case.mask_id)
        _check_in_bin(hole_mask, case, f"mask {self.root / case.mask_id}")
        return hole_mask


@dataclass(frozen=True)
class GeneratedCellMasks:
    """Masks from ``pconv.mask_generation.generate_hole_mask``, seeded by (seed, photo index, bin, kind)."""

    seed: int = 0

    def __post_init__(self) -> None:
        from pconv import mask_generation

        if not hasattr(mask_generation, "generate_hole_mask"):
            raise RuntimeError(
                "--masks generated needs pconv.mask_generation.generate_hole_mask, which this version of "
                "pconv lacks; pass the NVIDIA test mask folder instead"
            )

    def mask_id(self, photo_index: int, bin_index: int, kind: str) -> str:
        return f"generated:{self.seed}/{photo_index}/{bin_index}{kind}"

    def load(self, case: Case) -> np.ndarray:
        """(512, 512) uint8 hole mask, 1 = hole."""
        from pconv.mask_generation import generate_hole_mask

        rng = np.random.default_rng([self.seed, case.photo_index, case.bin_index, KINDS.index(case.kind)])
        hole_mask = generate_hole_mask(
            CASE_SIZE, CASE_SIZE, rng=rng, ratio_bin=BINS[case.bin_index], border=BORDER if case.kind == "N" else 0
        )
        hole_mask = np.asarray(hole_mask, dtype=np.uint8)
        _check_in_bin(hole_mask, case, f"generated mask {case.mask_id}")
        return hole_mask


def build_cases(photos: Sequence[Path], source: MaskSource, *, limit: int | None = None) -> list[Case]:
    """All cases of the first ``limit`` photos (all if None), photo-major, then bin, then N before B."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    cases: list[Case] = []
    for p, photo in enumerate(photos[:limit]):
        for b in range(len(BINS)):
            for kind in KINDS:
                cases.append(Case(len(cases), p, Path(photo), b, kind, source.mask_id(p, b, kind)))
    return cases


def sample_case_indices(cases: Sequence[Case], count: int = 6) -> list[int]:
    """Case indices of the sample grid: row i shows bin i % 6, N/B alternating, photos spread evenly."""
    n_photos = len({c.photo_index for c in cases})
    by_key = {(c.photo_index, c.bin_index, c.kind): c.index for c in cases}
    picks = [((i * n_photos) // count, i % len(BINS), KINDS[i % 2]) for i in range(count)]
    return [by_key[k] for k in picks if k in by_key]


class Method(Protocol):
    """A way to fill holes: ``fill_batch(images (N,H,W,3) uint8, hole_masks (N,H,W) uint8 1=hole) -> list``."""

    name: str

    def fill_batch(self, images: np.ndarray, hole_masks: np.ndarray) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class BaselineMethod:
    """A ``pconv.baselines`` fill function by name (picklable, so it runs in worker processes)."""

    name: str

    def fill_batch(self, images: np.ndarray, hole_masks: np.ndarray) -> list[np.ndarray]:
        from pconv.baselines import get_baseline

        fill = get_baseline(self.name)
        return [fill(image, hole_mask) for image, hole_mask in zip(images, hole_masks)]


@dataclass
class PConvMethod:
    """The partial-convolution network, batched, in ``torch.inference_mode``, on ``device``.

    ``flip_average`` and ``shift_average`` average with the predictions on the mirrored and on the one-pixel
    moved image, as ``pconv.inference.Inpainter`` does by default (``pconv.averages.averaged_predictor``); both
    ``False`` scores one pass of the network. ``smooth`` applies the smooth blend (``pconv.smooth.blend``), as
    ``Inpainter`` does by default.
    """

    model: object
    batch_size: int = 4
    device: str = "cpu"
    name: str = "pconv"
    flip_average: bool = True
    shift_average: bool = True
    smooth: bool = True

    def fill_batch(self, images: np.ndarray, hole_masks: np.ndarray) -> list[np.ndarray]:
        import torch

        from pconv.averages import averaged_predictor
        from pconv.masks import hole_to_valid
        from pconv.model import composite
        from pconv.structure import finish_fill

        predict = averaged_predictor(lambda x, m: self.model(x, m)[0], flip=self.flip_average, shift=self.shift_average)
        outputs: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.from_numpy(np.array(images[start : start + self.batch_size]))  # a writable copy
            image = batch.to(self.device).permute(0, 3, 1, 2).float() / 255  # (n, 3, H, W) in [0, 1]
            hole = torch.from_numpy(np.array(hole_masks[start : start + self.batch_size]))
            valid_mask = hole_to_valid(hole.to(self.device).float()[:, None])  # (n, 1, H, W), 1 = known
            with torch.inference_mode():
                prediction = predict(image, valid_mask)
                if self.smooth:
                    prediction = finish_fill(prediction, image, valid_mask)
                filled = composite(image, prediction, valid_mask).clamp(0, 1)
            outputs.extend(to_uint8(filled.permute(0, 2, 3, 1).cpu().numpy()))
        return outputs


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 by rounding (``x * 255 + 0.5`` truncated), the quantisation of every output."""
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


@dataclass
class CaseResult:
    """Scores of one method on one case.

    For sample-grid cases only, ``sample`` is the composite, (H, W, 3) uint8, and ``sample_hole`` the hole mask,
    (H, W) uint8, 1 = hole; both are None otherwise.
    """

    case: Case
    method: str
    hole_ratio: float
    l1: float
    psnr: float
    ssim: float
    seconds: float
    sample: np.ndarray | None = None
    sample_hole: np.ndarray | None = None


def check_outputs(outputs: object, images: np.ndarray, method: str, cases: Sequence[Case]) -> list[np.ndarray]:
    """Raise ``RuntimeError`` unless ``outputs`` is one (H, W, 3) uint8 array per input image."""
    if outputs is None or len(outputs) != len(images):  # type: ignore[arg-type]
        got = "nothing" if outputs is None else f"{len(outputs)} outputs"  # type: ignore[arg-type]
        raise RuntimeError(f"method {method} returned {got} for {len(images)} images (photo {cases[0].photo})")
    for out, image, case in zip(outputs, images, cases):  # type: ignore[call-overload]
        if not isinstance(out, np.ndarray) or out.shape != image.shape or out.dtype != np.uint8:
            got = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
            raise RuntimeError(
                f"method {method} returned {got} instead of {image.shape} uint8 for case "
                f"{case.index} ({case.photo.name}, mask {case.mask_id})"
            )
    return list(outputs)  # type: ignore[call-overload]


def evaluate_photo(
    cases: Sequence[Case], methods: Sequence[Method], source: MaskSource, sample_indices: frozenset[int] = frozenset()
) -> list[CaseResult]:
    """Run every method on the cases of one photo (one batch per method) and score the composites."""
    image = load_photo(cases[0].photo)
    hole_masks = np.stack([source.load(case) for case in cases])  # (n, H, W), 1 = hole
    images = np.broadcast_to(image, (len(cases), *image.shape))  # (n, H, W, 3) uint8, read-only
    results: list[CaseResult] = []
    for method in methods:
        start = time.perf_counter()
        outputs = method.fill_batch(images, hole_masks)
        seconds = (time.perf_counter() - start) / len(cases)
        outputs = check_outputs(outputs, images, method.name, cases)
        for case, out, hole_mask in zip(cases, outputs, hole_masks):
            filled = np.where(hole_mask[..., None].astype(bool), out, image)  # I_comp: truth outside the hole
            sample = case.index in sample_indices
            results.append(
                CaseResult(
                    case,
                    method.name,
                    float(hole_mask.mean()),
                    scores.l1_percent(filled, image),
                    scores.psnr(filled, image),
                    scores.ssim(filled, image),
                    seconds,
                    filled if sample else None,
                    hole_mask if sample else None,
                )
            )
    return results


def _group_by_photo(cases: Sequence[Case]) -> list[list[Case]]:
    groups: dict[int, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.photo_index, []).append(case)
    return list(groups.values())


def run_evaluation(
    cases: Sequence[Case],
    methods: Sequence[Method],
    source: MaskSource,
    *,
    workers: int = 1,
    progress: bool = True,
    group: Group | None = None,
) -> list[CaseResult]:
    """Run all methods on all cases; baselines in ``workers`` processes, the network in this one.

    Under ``torchrun`` (``group`` of several ranks, ``pconv.distributed``) each rank scores a fixed share of the
    photos (photo groups ``rank``, ``rank + world_size``, ...), rank 0 shows the progress of all, and every rank
    returns all results: each case is computed exactly as by one process, so the scores are the same.

    Returns:
        One ``CaseResult`` per (case, method), ordered by method (as given), then case index.
    """
    from pconv.distributed import Group, Ranks, SharedCount

    group = group if group is not None else Group(Ranks())
    mine = group.ranks.share(_group_by_photo(cases))
    samples = frozenset(sample_case_indices(cases))
    pooled = [m for m in methods if workers > 1 and isinstance(m, BaselineMethod)]
    inline = [m for m in methods if not (workers > 1 and isinstance(m, BaselineMethod))]
    results: list[CaseResult] = []
    with _progress(len(cases) * len(methods), progress and group.ranks.is_main) as bar:
        done = SharedCount(group, "evaluate/cases", bar)
        if pooled:
            results += _run_pooled(mine, pooled, source, samples, workers, done)
        for photo_cases in mine:
            if inline:
                results += evaluate_photo(photo_cases, inline, source, samples)
                done.update(len(photo_cases) * len(inline))
        done.wait_all()
    results = [result for part in group.all_gather(results) for result in part]
    order = {m.name: i for i, m in enumerate(methods)}
    return sorted(results, key=lambda r: (order[r.method], r.case.index))


def _run_pooled(
    groups: list[list[Case]],
    methods: list[Method],
    source: MaskSource,
    samples: frozenset[int],
    workers: int,
    done: SharedCount,
) -> list[CaseResult]:
    import multiprocessing

    # spawn: the parent may hold torch's thread pools, which do not survive fork
    ctx = multiprocessing.get_context("spawn")
    jobs = [(group, methods, source, samples) for group in groups]
    results: list[CaseResult] = []
    with ctx.Pool(workers) as pool:
        for part in pool.imap(_evaluate_photo_job, jobs):
            results += part
            done.update(len(part))
    return results


def _evaluate_photo_job(job: tuple) -> list[CaseResult]:
    return evaluate_photo(*job)


def _progress(total: int, enabled: bool):  # noqa: ANN202 - a tqdm bar
    from tqdm import tqdm

    return tqdm(total=total, unit="case", disable=not enabled, desc="evaluate", dynamic_ncols=True)


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan


def _aggregate(results: Sequence[CaseResult]) -> dict[str, float | int]:
    """Means of one group of cases; PSNR is the mean of its finite values, the infinite ones are counted."""
    finite = [r.psnr for r in results if math.isfinite(r.psnr)]
    return {
        "n": len(results),
        "hole_ratio": _mean(r.hole_ratio for r in results),
        "l1": _mean(r.l1 for r in results),
        "psnr": _mean(finite),
        "psnr_infinite": len(results) - len(finite),
        "ssim": _mean(r.ssim for r in results),
        "seconds": _mean(r.seconds for r in results),
    }


def summarize(results: Sequence[CaseResult]) -> dict[str, dict]:
    """Per method: each bin x kind cell, each kind over all bins, and overall.

    Returns:
        ``{method: {"cells": {"<bin label>": {"N": agg, "B": agg}}, "all": {"N": agg, "B": agg},
        "overall": agg}}`` where ``agg`` has n, hole_ratio, l1 (%), psnr (dB, finite mean), psnr_infinite,
        ssim and seconds (per image).
    """
    summary: dict[str, dict] = {}
    for method in dict.fromkeys(r.method for r in results):
        mine = [r for r in results if r.method == method]
        cells = {
            bin_label(b): {
                k: _aggregate([r for r in mine if r.case.bin_index == b and r.case.kind == k]) for k in KINDS
            }
            for b in range(len(BINS))
        }
        summary[method] = {
            "cells": cells,
            "all": {k: _aggregate([r for r in mine if r.case.kind == k]) for k in KINDS},
            "overall": _aggregate(mine),
        }
    return summary


def load_case_results(path: str | Path, cases: Sequence[Case], *, skip: Iterable[str] = ()) -> list[CaseResult]:
    """Scores of an earlier run (its ``cases.csv``) for the same cases, to report beside new ones.

    Every row must describe the same case as ``cases`` (photo file name, bin, N/B and mask), so scores from
    another photo set, mask rule or seed are refused rather than mixed. Methods in ``skip`` are left out.

    Raises:
        ValueError: the file is missing or unreadable, or a row does not match its case.
    """
    import csv

    path = Path(path)
    if path.is_dir():
        path = path / "cases.csv"
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read earlier results {path}: {exc}") from None
    by_index = {c.index: c for c in cases}
    skip = set(skip)
    results = []
    for row in rows:
        try:
            case = by_index.get(int(row["case"]))
            method = row["method"]
            if case is None or method in skip:
                continue
            same = (Path(row["photo"]).name, row["bin"], row["kind"], row["mask"]) == (
                case.photo.name,
                bin_label(case.bin_index),
                case.kind,
                case.mask_id,
            )
            if not same:
                raise ValueError(
                    f"case {case.index} of {path} is {row['photo']} / {row['mask']}, not this run's "
                    f"{case.photo.name} / {case.mask_id}; use the same photos, masks and --seed"
                )
            psnr = math.inf if row["psnr_db"] == "inf" else float(row["psnr_db"])
            results.append(
                CaseResult(
                    case,
                    method,
                    float(row["hole_ratio"]),
                    float(row["l1_percent"]),
                    psnr,
                    float(row["ssim"]),
                    float(row["seconds"]),
                )
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a cases.csv written by pconv evaluate (bad row: {exc})") from None
    return results


def case_rows(results: Sequence[CaseResult]) -> list[dict[str, object]]:
    """One flat dict per (case, method), the rows of cases.csv."""
    rows = []
    for r in results:
        case = dataclasses.asdict(r.case)
        rows.append(
            {
                "case": case["index"],
                "photo_index": case["photo_index"],
                "photo": r.case.photo.as_posix(),
                "bin": bin_label(r.case.bin_index),
                "kind": r.case.kind,
                "mask": r.case.mask_id,
                "hole_ratio": round(r.hole_ratio, 5),
                "method": r.method,
                "l1_percent": round(r.l1, 5),
                "psnr_db": round(r.psnr, 5) if math.isfinite(r.psnr) else "inf",
                "ssim": round(r.ssim, 6),
                "seconds": round(r.seconds, 5),
            }
        )
    return rows
