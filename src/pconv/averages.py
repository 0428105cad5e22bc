"""Test-time averages around a network: the left-right flip and the one-pixel shift (beyond the paper).

Flip averaging also fills the left-right mirror image, and shift averaging also fills the image moved one pixel down
and right; the predictions (each moved or mirrored back) are averaged. Every encoder layer halves the resolution with
stride 2, so a one-pixel move changes which pixels share a cell at every level, and averaging the two evens out that
grid's imprint on the fill. Each doubles the passes, run one after the other (flip and shift: four, four times the
time, about the same peak memory); the model card gives their effect on the evaluation. The fill graph
(``pconv.fill_graph``) does the same arithmetic inside ONNX, so both give the same floats.

The functions work on numpy arrays and on torch tensors alike; torch is imported only for a tensor.
Polarity: every predictor takes a ``valid_mask`` (1 = known pixel, the paper's M).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import numpy as np

__all__ = ["Predictor", "averaged_predictor", "flip_averaged", "shift_averaged"]

# A numpy array, or a torch tensor where torch is in use.
ArrayT = TypeVar("ArrayT")
# (image (N, 3, H, W) in [0, 1], valid_mask (N, 1, H, W) 1 = known) -> prediction (N, 3, H, W) about [0, 1]
Predictor = Callable[[Any, Any], Any]


def averaged_predictor(predict: Predictor, *, flip: bool = True, shift: bool = True) -> Predictor:
    """``predict`` with test-time flip and / or one-pixel shift averaging (``flip_averaged``, ``shift_averaged``).

    Args:
        predict: ``(image (N, 3, H, W) in [0, 1], valid_mask (N, 1, H, W) 1 = known) -> (N, 3, H, W)``, on numpy
            arrays or on torch tensors.
        flip: apply the left-right flip average.
        shift: apply the one-pixel shift average; with both the network runs four times, with neither once.
    Returns:
        A predictor of the same signature.
    """
    if flip:
        predict = partial(flip_averaged, predict)
    if shift:
        predict = partial(shift_averaged, predict)
    return predict


def flip_averaged(predict: Callable[[ArrayT, ArrayT], ArrayT], image: ArrayT, valid_mask: ArrayT) -> ArrayT:
    """The mean of ``predict`` on the image and, mirrored back, on its left-right mirror (test-time flip).

    Args:
        predict: ``(image (N, 3, H, W) in [0, 1], valid_mask (N, 1, H, W) 1 = known) -> (N, 3, H, W)``.
        image: (N, 3, H, W) in [0, 1], a numpy array or a torch tensor.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known pixel, of the same kind.
    Returns:
        (N, 3, H, W): ``(predict(x, m) + flip(predict(flip(x), flip(m)))) / 2``, flip along the width.
    """
    mirrored = _mirror(predict(_mirror(image), _mirror(valid_mask)))
    return (predict(image, valid_mask) + mirrored) / 2  # type: ignore[operator]


def shift_averaged(predict: Callable[[ArrayT, ArrayT], ArrayT], image: ArrayT, valid_mask: ArrayT) -> ArrayT:
    """The mean of ``predict`` on the image and, moved back, on the image moved one pixel down and right.

    The moved copy repeats the first row and column and drops the last ones; its prediction, moved back, lacks
    the last row and column, which take the unmoved prediction alone.

    Args:
        predict: ``(image (N, 3, H, W) in [0, 1], valid_mask (N, 1, H, W) 1 = known) -> (N, 3, H, W)``.
        image: (N, 3, H, W) in [0, 1], a numpy array or a torch tensor.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known pixel, of the same kind.
    Returns:
        (N, 3, H, W) prediction.
    """
    pred = predict(image, valid_mask)
    if min(image.shape[-2:]) < 2:  # type: ignore[attr-defined]
        return pred
    moved = predict(_moved_down_right(image), _moved_down_right(valid_mask))
    out = pred.copy() if isinstance(pred, np.ndarray) else pred.clone()  # type: ignore[attr-defined]
    out[..., :-1, :-1] = (pred[..., :-1, :-1] + moved[..., 1:, 1:]) / 2  # type: ignore[index]
    return out


def _mirror(x: ArrayT) -> ArrayT:
    """Flip along the width (the last axis) a numpy array or a tensor."""
    return np.flip(x, -1) if isinstance(x, np.ndarray) else x.flip(-1)  # type: ignore[attr-defined]


def _moved_down_right(x: ArrayT) -> ArrayT:
    """(..., H, W) -> (..., H, W) moved one pixel down and right, the first row and column repeated."""
    if isinstance(x, np.ndarray):
        return np.pad(x[..., :-1, :-1], [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)], mode="edge")
    import torch.nn.functional as F

    return F.pad(x[..., :-1, :-1], (1, 0, 1, 0), mode="replicate")  # type: ignore[index]
