"""Image-quality scores of a filled image against the truth, as in the paper's evaluation (arXiv 1804.07723, §5).

All scores take two uint8 RGB arrays of the same (H, W, 3) shape, the *composited* result (prediction in the
hole, truth elsewhere) and the ground truth, and work on the [0, 1] scale (uint8 / 255):

- ``l1_percent``: mean absolute error over the whole image (all pixels, all channels) on [0, 1], times 100,
  the paper's "l1 (%)".
- ``psnr``: ``10 * log10(1 / MSE)`` in dB with data range 1 over the whole image; ``inf`` when the images are
  identical (the aggregation in ``pconv.evaluate`` averages the finite values and counts the infinite ones).
- ``ssim``: scikit-image ``structural_similarity`` with ``channel_axis=2``, ``data_range=255`` on the uint8
  values (the same as data range 1 on [0, 1]), a uniform 7x7 window (``gaussian_weights=False``, ``win_size=7``),
  sample covariance, K1 = 0.01, K2 = 0.03: the mean over the image of the per-channel SSIM maps.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["l1_percent", "psnr", "ssim", "check_pair", "SSIM_WINDOW"]

SSIM_WINDOW = 7


def check_pair(result: np.ndarray, truth: np.ndarray) -> None:
    """Raise ``ValueError`` unless both are uint8 (H, W, 3) arrays of the same shape."""
    for name, arr in (("result", result), ("truth", truth)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            got = f"{arr.shape} {arr.dtype}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise ValueError(f"{name} must be a (H, W, 3) uint8 array, got {got}")
    if result.shape != truth.shape:
        raise ValueError(f"result {result.shape} and truth {truth.shape} differ in size")


def _diff(result: np.ndarray, truth: np.ndarray) -> np.ndarray:
    check_pair(result, truth)
    return (result.astype(np.float64) - truth.astype(np.float64)) / 255.0


def l1_percent(result: np.ndarray, truth: np.ndarray) -> float:
    """Mean |result - truth| on [0, 1] over every pixel and channel, in percent (0..100)."""
    return float(np.abs(_diff(result, truth)).mean() * 100.0)


def psnr(result: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, data range 1; ``math.inf`` when the images are identical."""
    mse = float(np.square(_diff(result, truth)).mean())
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(1.0 / mse)


def ssim(result: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM (scikit-image, uniform 7x7 window, data range 255 on uint8), in [-1, 1]; 1 when identical."""
    from skimage.metrics import structural_similarity

    check_pair(result, truth)
    if min(result.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {result.shape[:2]}")
    return float(
        structural_similarity(
            truth, result, channel_axis=2, data_range=255, win_size=SSIM_WINDOW, gaussian_weights=False
        )
    )
