"""Random irregular hole masks (arXiv 1804.07723, section 4), drawn from an explicit ``numpy`` Generator.

The paper trains and tests on irregular masks grouped by hole ratio in the bins (0.01,0.1], (0.1,0.2], ...
(0.5,0.6] (``pconv.masks.RATIO_BINS``), with or without holes within 50 px of the border, and augments masks by
random dilation, rotation, flip and crop. Here:
- ``generate_hole_mask``: strokes of random width and curvature, blobs, ellipses and specks (presets like LaMa's
  thin / medium / thick, ``PRESETS``), drawn with OpenCV until the hole ratio lands in a requested bin.
- ``GeneratedMasks``: a ``pconv.masks.MaskSource`` of such masks for datasets (``sample(rng, size)``).
- ``augment_hole_mask``: the paper's augmentation of an existing mask (used for the NVIDIA masks,
  ``pconv.nvidia_masks``).
All of them return ``hole_mask`` arrays: (H, W) uint8 in {0, 1}, 1 = hole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pconv.masks import RATIO_BINS, require_cv2

__all__ = [
    "MaskPreset",
    "PRESETS",
    "MIXED_PRESETS",
    "preset_names",
    "generate_hole_mask",
    "GeneratedMasks",
    "augment_hole_mask",
]

# Shape sizes below are in pixels of a 512-pixel image and scale with min(H, W) / 512.
_REFERENCE_SIZE = 512


@dataclass(frozen=True)
class MaskPreset:
    """How a mask's shapes look. Lengths are in pixels at 512 × 512 and scale with the image.

    Attributes:
        stroke_width: (min, max) brush width of a stroke.
        segment_length: (min, max) length of one straight segment of a stroke.
        segments: (min, max) segments per stroke.
        turn: standard deviation (radians) of the direction change between segments: the curvature.
        blob_prob: chance that a shape is an irregular blob (a star-shaped polygon with a wobbly outline).
        ellipse_prob: chance that a shape is a filled ellipse.
        blob_radius: (min, max) mean radius of blobs and ellipses.
        speck_prob: chance that a shape is a cluster of small rectangles (like the blocky bits of the NVIDIA masks).
        shapes: (min, max) shapes per mask when no ratio bin is requested.
        fragment: break each shape into bumpy pieces (``_fragment``), like the broken strokes and ragged
            outlines of the NVIDIA test masks; False keeps the brush's smooth outline.
    """

    stroke_width: tuple[float, float]
    segment_length: tuple[float, float]
    segments: tuple[int, int]
    turn: float
    blob_prob: float
    ellipse_prob: float
    blob_radius: tuple[float, float]
    speck_prob: float
    shapes: tuple[int, int]
    fragment: bool = False


# LaMa-like presets (thin / medium / thick brush strokes) plus mostly-blob masks.
PRESETS: dict[str, MaskPreset] = {
    "thin": MaskPreset((4, 16), (15, 50), (4, 14), 0.7, 0.05, 0.05, (10, 30), 0.10, (2, 8)),
    "medium": MaskPreset((12, 40), (20, 70), (3, 10), 0.6, 0.15, 0.10, (20, 60), 0.15, (2, 6)),
    "thick": MaskPreset((30, 90), (30, 100), (2, 7), 0.5, 0.20, 0.15, (35, 100), 0.10, (1, 4)),
    "blobs": MaskPreset((20, 60), (20, 70), (2, 5), 0.6, 0.50, 0.25, (20, 90), 0.10, (2, 6)),
    "fragments": MaskPreset((4, 18), (15, 50), (4, 14), 0.6, 0.15, 0.0, (10, 40), 0.10, (3, 8), fragment=True),
}
# What ``"mixed"`` picks from (the presets it has always meant, so older training commands still reproduce).
MIXED_PRESETS: tuple[str, ...] = ("blobs", "medium", "thick", "thin")


def _stroke_steps(
    cv2: Any, rng: np.random.Generator, p: MaskPreset, scale: float, h: int, w: int
) -> Iterator[Callable[[np.ndarray], None]]:
    """One brush stroke as a sequence of segments; each step draws one segment onto a canvas."""
    width = max(1, int(round(rng.uniform(*p.stroke_width) * scale)))
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    angle = rng.uniform(0, 2 * math.pi)
    for _ in range(int(rng.integers(p.segments[0], p.segments[1], endpoint=True))):
        angle += rng.normal(0, p.turn)
        length = rng.uniform(*p.segment_length) * scale
        nx, ny = x + length * math.cos(angle), y + length * math.sin(angle)
        if not (0 <= nx < w and 0 <= ny < h):  # bounce off the edge instead of running along it
            angle += math.pi
            nx, ny = x + length * math.cos(angle), y + length * math.sin(angle)
        nx, ny = min(max(nx, 0.0), w - 1.0), min(max(ny, 0.0), h - 1.0)
        seg_width = max(1, int(round(width * rng.uniform(0.85, 1.15))))  # a brush's pressure varies a little
        start, end = (int(round(x)), int(round(y))), (int(round(nx)), int(round(ny)))

        def draw(canvas: np.ndarray, start=start, end=end, seg_width=seg_width) -> None:
            cv2.line(canvas, start, end, 1, seg_width, cv2.LINE_8)
            cv2.circle(canvas, end, seg_width // 2, 1, -1, cv2.LINE_8)  # round joint

        yield draw
        x, y = nx, ny


def _blob_step(
    cv2: Any, rng: np.random.Generator, p: MaskPreset, scale: float, h: int, w: int
) -> Callable[[np.ndarray], None]:
    """An irregular blob: a star-shaped polygon whose radius is a sum of a few random harmonics."""
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    radius = rng.uniform(*p.blob_radius) * scale
    theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = np.ones_like(theta)
    for k in range(2, 6):
        wobble += rng.uniform(0, 0.35 / (k - 1)) * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(wobble, 0.25, None) * rng.uniform(0.6, 1.0, size=1)
    stretch = rng.uniform(0.6, 1.4)
    pts = np.stack([cx + r * np.cos(theta) * stretch, cy + r * np.sin(theta) / stretch], axis=1)
    poly = np.round(pts).astype(np.int32)[None]

    def draw(canvas: np.ndarray) -> None:
        cv2.fillPoly(canvas, poly, 1, cv2.LINE_8)

    return draw


def _ellipse_step(
    cv2: Any, rng: np.random.Generator, p: MaskPreset, scale: float, h: int, w: int
) -> Callable[[np.ndarray], None]:
    centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
    a = max(1, int(rng.uniform(*p.blob_radius) * scale))
    b = max(1, int(a * rng.uniform(0.25, 1.0)))
    angle = float(rng.uniform(0, 180))

    def draw(canvas: np.ndarray) -> None:
        cv2.ellipse(canvas, centre, (a, b), angle, 0, 360, 1, -1, cv2.LINE_8)

    return draw


def _specks_step(
    cv2: Any, rng: np.random.Generator, p: MaskPreset, scale: float, h: int, w: int
) -> Callable[[np.ndarray], None]:
    """A cluster of small axis-aligned rectangles scattered around a point."""
    n = int(rng.integers(4, 16))
    spread = p.blob_radius[1] * scale
    xs = rng.normal(rng.uniform(0, w), spread, n)
    ys = rng.normal(rng.uniform(0, h), spread, n)
    sides = rng.uniform(4, 8 + p.stroke_width[0], (n, 2)) * scale
    boxes = [(int(x), int(y), int(x + max(1.0, a)), int(y + max(1.0, b))) for x, y, (a, b) in zip(xs, ys, sides)]

    def draw(canvas: np.ndarray) -> None:
        for x0, y0, x1, y1 in boxes:
            cv2.rectangle(canvas, (x0, y0), (x1, y1), 1, -1)

    return draw


def _fragment(cv2: Any, shape: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Break a drawn (h, w) {0, 1} shape into bumpy pieces: keep it where smooth random noise is high, then grow
    each piece by a small disc or square, so strokes turn into chains of blobs with ragged outlines."""
    ys, xs = np.nonzero(shape)
    out = np.zeros_like(shape)
    if ys.size == 0:
        return out
    k = 2 * max(1, int(round(rng.integers(2, 7) * scale))) + 1  # growth kernel side, odd
    y0, y1 = max(ys.min() - k, 0), min(ys.max() + k + 1, shape.shape[0])  # work in the shape's bounding box
    x0, x1 = max(xs.min() - k, 0), min(xs.max() + k + 1, shape.shape[1])
    noise = rng.standard_normal((y1 - y0, x1 - x0)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), rng.uniform(3, 8) * max(scale, 0.25))
    kept = (shape[y0:y1, x0:x1] > 0) & (noise > np.quantile(noise[::3, ::3], rng.uniform(0.2, 0.55)))
    kind = cv2.MORPH_ELLIPSE if rng.uniform() < 0.6 else cv2.MORPH_RECT
    out[y0:y1, x0:x1] = cv2.dilate(kept.astype(np.uint8), cv2.getStructuringElement(kind, (k, k)))
    return out


def _shape_steps(
    cv2: Any, rng: np.random.Generator, p: MaskPreset, scale: float, h: int, w: int
) -> Iterator[Callable[[np.ndarray], None]]:
    """One random shape (stroke, blob, ellipse or specks) as drawing steps, so a caller can stop between them.

    With ``p.fragment`` the whole shape is one step: drawn on its own canvas, fragmented, then added.
    """
    if p.fragment:
        steps = list(_plain_shape_steps(cv2, rng, p, scale, h, w))
        shape = np.zeros((h, w), np.uint8)
        for step in steps:
            step(shape)
        pieces = _fragment(cv2, shape, rng, scale)

        def draw(canvas: np.ndarray) -> None:
            np.bitwise_or(canvas, pieces, out=canvas)

        yield draw
    else:
        yield from _plain_shape_steps(cv2, rng, p, scale, h, w)


def _plain_shape_steps(
    cv2: Any, rng: np.random.Generator, p: MaskPreset, scale: float, h: int, w: int
) -> Iterator[Callable[[np.ndarray], None]]:
    u = rng.uniform()
    if u < p.blob_prob:
        yield _blob_step(cv2, rng, p, scale, h, w)
    elif u < p.blob_prob + p.ellipse_prob:
        yield _ellipse_step(cv2, rng, p, scale, h, w)
    elif u < p.blob_prob + p.ellipse_prob + p.speck_prob:
        yield _specks_step(cv2, rng, p, scale, h, w)
    else:
        yield from _stroke_steps(cv2, rng, p, scale, h, w)


def _fill_pixels(cv2: Any, canvas: np.ndarray, rng: np.random.Generator, n: int) -> None:
    """Turn ``n`` known pixels into hole, preferring those that touch the hole (so no stray specks appear)."""
    if n <= 0:
        return
    grown = cv2.dilate(canvas, np.ones((3, 3), np.uint8))
    ring = np.flatnonzero((grown > 0) & (canvas == 0))
    known = ring if ring.size >= n else np.flatnonzero(canvas == 0)
    chosen = rng.choice(known, size=min(n, known.size), replace=False)
    canvas.reshape(-1)[chosen] = 1


def _fill_to_count(
    cv2: Any, canvas: np.ndarray, rng: np.random.Generator, p: MaskPreset, scale: float, lo_px: float, hi_px: float
) -> None:
    """Draw shapes until the hole count lies in (lo_px, hi_px], aiming at a count drawn uniformly in that range.

    A step that would overshoot ``hi_px`` is undone and the shapes shrink, so the count always lands in range.
    """
    h, w = canvas.shape
    target = max(rng.uniform(lo_px, hi_px), math.floor(lo_px) + 1)
    count, shrink, overshoots = 0, 1.0, 0
    backup = np.empty_like(canvas)
    while count < target:
        for step in _shape_steps(cv2, rng, p, scale * shrink, h, w):
            np.copyto(backup, canvas)
            step(canvas)
            new = cv2.countNonZero(canvas)
            if new > hi_px:
                np.copyto(canvas, backup)
                overshoots += 1
                shrink *= 0.7
                if overshoots > 200:
                    # Every shape overshoots the narrow gap left: finish with single pixels next to the hole.
                    _fill_pixels(cv2, canvas, rng, int(target) - count)
                    return
                break
            count = new
            if count >= target:
                break


def _check_bin(ratio_bin: tuple[float, float], h: int, w: int, border: int) -> None:
    lo, hi = ratio_bin
    if not (0 <= lo < hi <= 1):
        raise ValueError(f"ratio_bin must satisfy 0 <= lo < hi <= 1, got {ratio_bin}")
    reachable = (h - 2 * border) * (w - 2 * border) / (h * w)
    if lo >= 0.95 * reachable:
        raise ValueError(
            f"hole ratio bin {ratio_bin} is out of reach with a {border} px border on {h}x{w}: "
            f"at most {reachable:.2f} of the image can be hole; use a smaller border or bin"
        )


def generate_hole_mask(
    height: int,
    width: int,
    *,
    rng: np.random.Generator,
    ratio_bin: tuple[float, float] | None = None,
    preset: str | MaskPreset = "medium",
    border: int = 0,
    scale: float | None = None,
) -> np.ndarray:
    """A random irregular hole mask of strokes, blobs, ellipses and specks.

    Args:
        height: mask size in pixels.
        width: mask size in pixels.
        rng: the only source of randomness; the same generator state gives the same mask.
        ratio_bin: (lo, hi): the hole ratio lands in the half-open interval (lo, hi], roughly uniformly.
            None: a random number of shapes (``preset.shapes``), hole ratio uncontrolled.
        preset: a name in ``PRESETS`` ("thin", "medium", "thick", "blobs") or a ``MaskPreset``.
        border: no hole pixel lies within this many pixels of the edge (the paper: 50 at 512 × 512).
        scale: size of the shapes relative to their size at 512 × 512; None scales them with the image
            (``min(height, width) / 512``). 1.0 on a 256 × 256 crop gives strokes as wide in pixels as at 512.

    Returns:
        hole_mask: (height, width) uint8 in {0, 1}, 1 = hole.
    """
    cv2 = require_cv2()
    p = PRESETS[preset] if isinstance(preset, str) and preset in PRESETS else preset
    if not isinstance(p, MaskPreset):
        raise ValueError(f"unknown mask preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if height < 1 or width < 1 or border < 0 or 2 * border >= min(height, width):
        raise ValueError(f"bad mask size {height}x{width} with border {border}")
    if ratio_bin is not None:
        _check_bin(ratio_bin, height, width, border)
    canvas = np.zeros((height - 2 * border, width - 2 * border), np.uint8)  # holes are drawn inside the border
    if scale is None:
        scale = min(height, width) / _REFERENCE_SIZE
    elif not scale > 0:
        raise ValueError(f"mask shape scale must be positive, got {scale}")
    if ratio_bin is None:
        for _ in range(int(rng.integers(p.shapes[0], p.shapes[1], endpoint=True))):
            for step in _shape_steps(cv2, rng, p, scale, *canvas.shape):
                step(canvas)
    else:
        total = height * width
        _fill_to_count(cv2, canvas, rng, p, scale, ratio_bin[0] * total, ratio_bin[1] * total)
    if border == 0:
        return canvas
    hole_mask = np.zeros((height, width), np.uint8)
    hole_mask[border : height - border, border : width - border] = canvas
    return hole_mask


def preset_names(preset: str) -> tuple[str, ...]:
    """The preset names a ``GeneratedMasks`` preset string stands for: one name, or ``"a,b,..."`` where
    ``"mixed"`` stands for ``MIXED_PRESETS`` and a name given twice is picked twice as often."""
    names: tuple[str, ...] = ()
    for name in (n.strip() for n in preset.split(",")):
        names += MIXED_PRESETS if name == "mixed" else (name,)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise ValueError(
            f"unknown mask preset {unknown[0]!r}; choose from {', '.join(PRESETS)}, 'mixed', or a comma list"
        )
    return names


@dataclass(frozen=True)
class GeneratedMasks:
    """Procedural masks: each sample picks one of ``bins`` uniformly, then generates a mask in it.

    Attributes:
        preset: a name in ``PRESETS``, several names joined by commas (one picked at random for each mask),
            ``"mixed"`` (= ``MIXED_PRESETS``, the four smooth ones), or a ``MaskPreset``.
        bins: hole-ratio bins (lo, hi] to pick from; empty means no ratio control.
        border: hole-free margin in pixels of the sampled size.
        scale: shape size relative to 512 × 512 (see ``generate_hole_mask``); None scales with the sampled size.
    """

    preset: str | MaskPreset = "medium"
    bins: tuple[tuple[float, float], ...] = RATIO_BINS
    border: int = 0
    scale: float | None = None

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, size) uint8 in {0, 1}, 1 = hole."""
        ratio_bin = self.bins[int(rng.integers(len(self.bins)))] if self.bins else None
        preset = self.preset
        if isinstance(preset, str):
            names = preset_names(preset)  # one name: no draw, so single-preset masks are what they always were
            preset = names[int(rng.integers(len(names)))] if len(names) > 1 else names[0]
        return generate_hole_mask(
            size, size, rng=rng, ratio_bin=ratio_bin, preset=preset, border=self.border, scale=self.scale
        )


def augment_hole_mask(hole_mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The paper's mask augmentation: random dilation, rotation, flip and square crop (section 4).

    Args:
        hole_mask: (H, W) uint8 in {0, 1}, 1 = hole.
        rng: the only source of randomness.

    Returns:
        (S, S) uint8 in {0, 1}, 1 = hole, with S between 0.6 and 1.0 of min(H, W) (resize it afterwards).
    """
    cv2 = require_cv2()
    h, w = hole_mask.shape
    out = hole_mask.astype(np.uint8)
    radius = int(rng.integers(0, 4)) * max(1, min(h, w) // 256)  # 0 = no dilation
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        out = cv2.dilate(out, kernel)
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(0, 360)), 1.0)
    # Corners rotated in from outside are known pixels (0), as if the occluder ended there.
    out = cv2.warpAffine(out, rotation, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    if rng.uniform() < 0.5:
        out = out[:, ::-1]
    if rng.uniform() < 0.5:
        out = out[::-1, :]
    side = int(round(min(h, w) * rng.uniform(0.6, 1.0)))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return np.ascontiguousarray(out[top : top + side, left : left + side] > 0).astype(np.uint8)
