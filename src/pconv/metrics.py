"""Image quality metrics on batches: mean absolute error, PSNR and SSIM, one value per image.

The paper (Liu et al. 2018, arXiv 1804.07723, section 5) reports l1, PSNR and SSIM of the composited output.
SSIM here is what ``skimage.metrics.structural_similarity(a, b, data_range=1, channel_axis=...)`` computes
(Wang et al. 2004 with a uniform 7x7 window, sample covariance, K1 = 0.01, K2 = 0.03, mean over the windows that
fit inside the image, averaged over channels) and is differentiable, so the loss can use it too.
All functions take ``pred`` and ``target`` of shape (N, C, H, W) with values in [0, 1] and return (N,) tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["l1", "psnr", "ssim", "ssim_map"]


def _check(pred: Tensor, target: Tensor) -> None:
    if pred.dim() != 4 or pred.shape != target.shape:
        raise ValueError(
            f"expected pred and target of the same (N, C, H, W) shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per image: (N,), in [0, 1] for inputs in [0, 1]."""
    _check(pred, target)
    return (pred.float() - target.float()).abs().flatten(1).mean(1)


def psnr(pred: Tensor, target: Tensor, *, data_range: float = 1.0, max_db: float = 100.0) -> Tensor:
    """Peak signal-to-noise ratio per image in dB: (N,). Identical images give ``max_db`` instead of inf."""
    _check(pred, target)
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    floor = data_range**2 * 10 ** (-max_db / 10)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(floor))


def ssim_map(pred: Tensor, target: Tensor, *, data_range: float = 1.0, win_size: int = 7) -> Tensor:
    """Local SSIM, per channel, at every window that fits inside the image.

    Returns:
        (N, C, H - win_size + 1, W - win_size + 1): SSIM of each uniform ``win_size`` x ``win_size`` window.
    """
    _check(pred, target)
    if min(pred.shape[2:]) < win_size:
        raise ValueError(f"images of {tuple(pred.shape[2:])} are smaller than the {win_size}x{win_size} SSIM window")
    x, y = pred.float(), target.float()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = win_size * win_size
    cov_norm = n / (n - 1)  # sample covariance, as scikit-image

    def mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t, win_size, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim(pred: Tensor, target: Tensor, *, data_range: float = 1.0, win_size: int = 7) -> Tensor:
    """Structural similarity per image: (N,), 1 for identical images; differentiable."""
    return ssim_map(pred, target, data_range=data_range, win_size=win_size).flatten(1).mean(1)
