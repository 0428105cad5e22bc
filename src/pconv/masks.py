"""Mask polarity, mask files and hole ratios: the bottom of every mask path.

Two polarities exist and never share a name:
- ``hole_mask``: 1 (or 255 in files) where pixels are missing. People, editors, mask files, the CLI and the
  HTTP API use it: **white = hole**.
- ``valid_mask``: the paper's ``M`` (arXiv 1804.07723, section 3.1), 1 where pixels are known. Only the layer,
  the network and the losses use it.
The conversion between them lives here and nowhere else.

Also here: reading mask files (``load_hole_mask``, ``pil_to_hole_mask``), the paper's hole-ratio bins
(``RATIO_BINS``, section 4) and ``hole_ratio``, growing a hole (``dilate_hole``), nearest-neighbour resizing, and
``MaskSource``, what a dataset draws random masks from. The sources themselves live in ``pconv.mask_generation``
(procedural masks) and ``pconv.nvidia_masks`` (the NVIDIA irregular mask test set). All of them return
``hole_mask`` arrays: (H, W) uint8 in {0, 1}, 1 = hole. Nothing here imports torch at module level.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from pconv.resize import prefix_sums

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor

# A numpy array or a torch tensor: the polarity flips work on both (torch is never imported here).
ArrayT = TypeVar("ArrayT")

__all__ = [
    "HOLE_THRESHOLD",
    "hole_to_valid",
    "valid_to_hole",
    "hole_to_valid_array",
    "binarize_hole",
    "load_hole_mask",
    "pil_to_hole_mask",
    "hole_array_to_valid_tensor",
    "RATIO_BINS",
    "hole_ratio",
    "ratio_bin_index",
    "resize_hole_nearest",
    "dilate_hole",
    "require_cv2",
    "MaskSource",
]

# A grey level above this (on 0..255) counts as hole: anti-aliased brush edges at half grey or more are hole.
HOLE_THRESHOLD = 127


def _check_binary(mask: Any, name: str) -> None:
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} must hold only 0 and 1; binarise it first (see pconv.masks.binarize_hole)")


def hole_to_valid(hole_mask: ArrayT) -> ArrayT:
    """Flip a hole mask (1 = missing) into the paper's valid mask (1 = known): a tensor or a numpy array of the
    same shape and dtype."""
    _check_binary(hole_mask, "hole_mask")
    return 1 - hole_mask


def valid_to_hole(valid_mask: ArrayT) -> ArrayT:
    """Flip the paper's valid mask (1 = known) into a hole mask (1 = missing): a tensor or a numpy array of the
    same shape and dtype."""
    _check_binary(valid_mask, "valid_mask")
    return 1 - valid_mask


def hole_to_valid_array(hole_mask: np.ndarray) -> np.ndarray:
    """NumPy twin of ``hole_to_valid`` for data loading: a hole array (1 = missing) -> float32 valid array (1 = known).

    Data pipelines use it because tiny multi-threaded torch ops cost milliseconds each on a busy CPU.
    """
    if not np.isin(hole_mask, (0, 1)).all():
        raise ValueError("hole_mask must hold only 0 and 1; binarise it first (see pconv.masks.binarize_hole)")
    return 1 - hole_mask.astype(np.float32)


def binarize_hole(grey: np.ndarray, *, threshold: int = HOLE_THRESHOLD) -> np.ndarray:
    """Binarise a uint8 grey hole image (white = hole): returns (H, W) uint8 in {0, 1}, 1 = hole."""
    if grey.dtype != np.uint8 or grey.ndim != 2:
        raise ValueError(f"expected a (H, W) uint8 image, got {grey.shape} {grey.dtype}")
    return (grey > threshold).astype(np.uint8)


def load_hole_mask(path: str | Path, *, threshold: int = HOLE_THRESHOLD) -> np.ndarray:
    """Read a mask file, white = hole; returns (H, W) uint8 in {0, 1}, 1 = hole.

    Colour masks are converted to grey; a mask whose only content is its alpha channel (transparent = known,
    opaque = hole, as painted on a layer) uses the alpha.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return pil_to_hole_mask(img, threshold=threshold)
    except FileNotFoundError:
        raise FileNotFoundError(f"mask file not found: {path}") from None
    except Image.DecompressionBombError:
        raise ValueError(f"cannot read mask {path}: it declares too many pixels to decode safely") from None
    except Exception as exc:  # Pillow reports damaged files as OSError, SyntaxError, TypeError, struct.error...
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"cannot read mask {path}: not a readable image ({reason})") from None


def pil_to_hole_mask(img: Image.Image, *, threshold: int = HOLE_THRESHOLD) -> np.ndarray:
    """A PIL mask image (any mode), white = hole -> (H, W) uint8 in {0, 1}, 1 = hole.

    Colour masks are converted to grey; a mask whose only content is its alpha channel (transparent = known,
    opaque = hole, as painted on a layer) uses the alpha. Grey levels above ``threshold`` are hole.
    """
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        grey = np.asarray(rgba.convert("L"))
        # A fully opaque image carries its hole in the grey values; otherwise the alpha is the paint.
        arr = grey if alpha.min() == 255 else alpha
    else:
        arr = np.asarray(img.convert("L"))
    return binarize_hole(np.ascontiguousarray(arr, dtype=np.uint8), threshold=threshold)


def hole_array_to_valid_tensor(hole: np.ndarray) -> Tensor:
    """(H, W) uint8 {0, 1} hole array -> (1, 1, H, W) float32 valid mask, 1 = known."""
    import torch

    return hole_to_valid(torch.from_numpy(hole.astype(np.float32))[None, None])


# ---------------------------------------------------------------------------------------------------------------
# Hole ratios
# ---------------------------------------------------------------------------------------------------------------

RATIO_BINS: tuple[tuple[float, float], ...] = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))
"""The paper's hole-ratio bins, half-open (lo, hi] (arXiv 1804.07723, section 4)."""


def hole_ratio(hole_mask: np.ndarray) -> float:
    """Fraction of hole pixels of a (H, W) {0, 1} hole mask: the number the bins are defined on."""
    return float(np.count_nonzero(hole_mask)) / hole_mask.size


def ratio_bin_index(ratio: float, bins: Sequence[tuple[float, float]] = RATIO_BINS) -> int | None:
    """Index of the half-open bin (lo, hi] that holds ``ratio``, or None."""
    for k, (lo, hi) in enumerate(bins):
        if lo < ratio <= hi:
            return k
    return None


# ---------------------------------------------------------------------------------------------------------------
# Resizing and mask sources
# ---------------------------------------------------------------------------------------------------------------


def require_cv2() -> Any:
    """The ``cv2`` module (OpenCV), imported on first use; a RuntimeError naming the extra to install without it."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv is in the train/eval extras
        raise RuntimeError("random masks need OpenCV: pip install 'pconv[train]'") from None
    return cv2


def dilate_hole(hole_mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow the hole by ``pixels`` in every direction (square structuring element, as a max-pool would).

    A pixel becomes hole when its (2 * pixels + 1)² window holds any hole pixel, counted with running sums along
    each axis, so the cost does not grow with ``pixels``.

    Args:
        hole_mask: (..., H, W) float in {0, 1}, 1 = hole.
        pixels: dilation radius, >= 0.
    Returns:
        (..., H, W) float32 in {0, 1}, 1 = hole.
    """
    if pixels < 0:
        raise ValueError(f"dilation must be >= 0 pixels, got {pixels}")
    if pixels == 0:
        return hole_mask
    grown = hole_mask > 0
    for axis in (-2, -1):
        n = grown.shape[axis]
        counts = prefix_sums(grown, axis, np.int64)
        idx = np.arange(n)
        hi, lo = np.minimum(idx + pixels + 1, n), np.maximum(idx - pixels, 0)
        grown = np.take(counts, hi, axis=axis) > np.take(counts, lo, axis=axis)  # any hole in [i - p, i + p]
    return grown.astype(np.float32)


def resize_hole_nearest(hole_mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a (H, W) {0, 1} hole mask with nearest neighbour and re-binarise; ``size`` is S or (H, W)."""
    out_h, out_w = (size, size) if isinstance(size, int) else size
    if hole_mask.shape == (out_h, out_w):
        return (hole_mask > 0).astype(np.uint8)
    cv2 = require_cv2()
    resized = cv2.resize(hole_mask.astype(np.uint8), (out_w, out_h), interpolation=cv2.INTER_NEAREST)
    return (resized > 0).astype(np.uint8)


@runtime_checkable
class MaskSource(Protocol):
    """Anything that gives random hole masks to a dataset."""

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A random hole mask: (size, size) uint8 in {0, 1}, 1 = hole, drawn only from ``rng``."""
        ...
