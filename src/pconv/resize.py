"""Resizing on numpy arrays, the same arithmetic as PyTorch's ``interpolate`` (so the light install, which has no
torch, fills exactly as the PyTorch path does).

- ``resize_area``: each output pixel the mean of the input cells it covers (``mode="area"``); a hole mask resized this
  way is > 0 wherever its cell holds any hole pixel.
- ``resize_bicubic``: Keys' cubic convolution with half-pixel centres (``mode="bicubic", align_corners=False``).
- ``resize_hole_mask``: a mask painted at another size of the image's aspect ratio, fitted with nearest neighbour.

Polarity: ``resize_hole_mask`` takes and returns a ``hole_mask`` (1 = hole); the others do not care.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["prefix_sums", "resize_area", "resize_bicubic", "resize_hole_mask"]

log = logging.getLogger(__name__)

_CUBIC_A = -0.75  # the cubic convolution kernel's parameter in PyTorch's (and OpenCV's) bicubic resize


def resize_area(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize by averaging the input cells each output pixel covers (PyTorch's ``interpolate(mode="area")``).

    Args:
        image: (..., H, W) float.
        size: (height, width) of the result.
    Returns:
        (..., height, width) float32; a mask resized this way is > 0 wherever its cell holds any nonzero pixel.
    """
    out = np.asarray(image, dtype=np.float64)
    for axis, n_out in zip((-2, -1), size):
        n_in = out.shape[axis]
        idx = np.arange(n_out)
        lo, hi = (idx * n_in) // n_out, ((idx + 1) * n_in + n_out - 1) // n_out  # cell i covers [lo, hi)
        sums = prefix_sums(out, axis, np.float64)
        span = _along(hi - lo, axis, out.ndim)
        out = (np.take(sums, hi, axis=axis) - np.take(sums, lo, axis=axis)) / span
    return out.astype(np.float32)


def resize_bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize with half-pixel centres and edge pixels repeated (PyTorch's ``interpolate(mode="bicubic",
    align_corners=False)``, kernel parameter -0.75).

    Args:
        image: (..., H, W) float.
        size: (height, width) of the result.
    Returns:
        (..., height, width) float32, not clamped (bicubic overshoots a little at edges).
    """
    out = np.asarray(image, dtype=np.float32)
    for axis, n_out in zip((-2, -1), size):
        n_in = out.shape[axis]
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        first = np.floor(src).astype(np.int64)
        t = (src - first).astype(np.float32)
        acc = np.zeros((*out.shape[:axis], n_out, *out.shape[axis:][1:]), np.float32)
        for k, dist in zip(range(-1, 3), (t + 1, t, 1 - t, 2 - t)):
            taps = np.take(out, np.clip(first + k, 0, n_in - 1), axis=axis)
            acc += taps * _along(_cubic(dist), axis, out.ndim)
        out = acc
    return out


def prefix_sums(x: np.ndarray, axis: int, dtype: type) -> np.ndarray:
    """Sums of ``x`` over ``[0, i)`` along ``axis`` for i = 0..n (one longer than ``x`` there): the sum over
    ``[lo, hi)`` is ``sums[hi] - sums[lo]``."""
    sums = np.cumsum(x, axis=axis, dtype=dtype)
    return np.concatenate([np.zeros_like(np.take(sums, [0], axis=axis)), sums], axis=axis)


def _cubic(dist: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel at distances ``dist`` in [0, 2]."""
    a = _CUBIC_A
    near = ((a + 2) * dist - (a + 3)) * dist * dist + 1
    far = ((a * dist - 5 * a) * dist + 8 * a) * dist - 4 * a
    return np.where(dist <= 1, near, far).astype(np.float32)


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """A 1-D array shaped to broadcast along ``axis`` of an ``ndim``-dimensional array."""
    shape = [1] * ndim
    shape[axis] = len(values)
    return values.reshape(shape)


def resize_hole_mask(hole_mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a hole mask of the image's aspect to the image's size with nearest neighbour (logs a warning).

    Args:
        hole_mask: (h, w) uint8 in {0, 1}, 1 = hole.
        size: the image's (width, height), PIL order.
    Returns:
        (height, width) uint8 in {0, 1}, 1 = hole.
    Raises:
        ValueError: the aspect ratios differ by more than one pixel of rounding; the message names both sizes.
    """
    from PIL import Image

    width, height = size
    mh, mw = hole_mask.shape
    if (mw, mh) == (width, height):
        return hole_mask
    if not _same_aspect((mw, mh), (width, height)):
        raise ValueError(
            f"mask is {mw}x{mh} but the image is {width}x{height} (width x height), another aspect "
            "ratio; paint the mask on the image's size"
        )
    log.warning("mask is %dx%d, image is %dx%d: resizing the mask with nearest neighbour", mw, mh, width, height)
    return np.asarray(Image.fromarray(hole_mask).resize((width, height), Image.NEAREST))


def _same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Same aspect up to one pixel of rounding on the smaller of the two sizes."""
    (sw, sh), (lw, lh) = sorted([a, b], key=lambda s: s[0] * s[1])
    return abs(sh - lh * sw / lw) <= 1 and abs(sw - lw * sh / lh) <= 1
