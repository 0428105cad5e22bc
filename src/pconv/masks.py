"""Mask polarity and mask files.

Two polarities exist and never share a name:
- ``hole_mask``: 1 (or 255 in files) where pixels are missing. People, editors, mask files, the CLI and the
  HTTP API use it: **white = hole**.
- ``valid_mask``: the paper's ``M`` (arXiv 1804.07723, section 3.1), 1 where pixels are known. Only the layer,
  the network and the losses use it.
The conversion between them lives here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["HOLE_THRESHOLD", "hole_to_valid", "valid_to_hole", "binarize_hole", "load_hole_mask", "pil_to_hole_mask"]

# A grey level above this (on 0..255) counts as hole: anti-aliased brush edges at half grey or more are hole.
HOLE_THRESHOLD = 127


def _check_binary(mask: Tensor, name: str) -> None:
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} must hold only 0 and 1; binarise it first (see pconv.masks.binarize_hole)")


def hole_to_valid(hole_mask: Tensor) -> Tensor:
    """Flip a hole mask (1 = missing) into the paper's valid mask (1 = known). Same shape and dtype."""
    _check_binary(hole_mask, "hole_mask")
    return 1 - hole_mask


def valid_to_hole(valid_mask: Tensor) -> Tensor:
    """Flip the paper's valid mask (1 = known) into a hole mask (1 = missing). Same shape and dtype."""
    _check_binary(valid_mask, "valid_mask")
    return 1 - valid_mask


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
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return pil_to_hole_mask(img, threshold=threshold)
    except FileNotFoundError:
        raise FileNotFoundError(f"mask file not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read mask {path}: not a readable image ({exc})") from None


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
    return hole_to_valid(torch.from_numpy(hole.astype(np.float32))[None, None])
