"""Classical inpainting baselines behind one interface, to compare with the network (arXiv 1804.07723, §5).

Every baseline is a function ``fill(image, hole_mask) -> filled``:

- ``image``: (H, W, 3) uint8 RGB.
- ``hole_mask``: (H, W) uint8 in {0, 1}, **1 = hole** (missing pixel).
- returns (H, W, 3) uint8 RGB; pixels outside the hole are the input's (the evaluation composites anyway).

Methods:

- ``telea``: OpenCV ``cv2.inpaint`` with ``INPAINT_TELEA`` (fast marching, Telea 2004), radius ``CV_RADIUS`` = 5 px.
- ``ns``: OpenCV ``cv2.inpaint`` with ``INPAINT_NS`` (Navier-Stokes, Bertalmio et al. 2001), radius 5 px.
- ``patchmatch``: the ``pypatchmatch`` package (Barnes et al. 2009, the paper's "PM" baseline, as in Photoshop's
  content-aware fill), patch radius ``PATCHMATCH_RADIUS`` = 3 (7x7 patches, as in Barnes et al.), fixed seed 0.
- ``mean``: every hole pixel gets the mean colour of the known pixels (mid grey 128 if nothing is known).

OpenCV's inpainting treats the three channels alike, so RGB goes in and comes out without a BGR swap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "BASELINES",
    "CV_RADIUS",
    "PATCHMATCH_RADIUS",
    "get_baseline",
    "fill_telea",
    "fill_ns",
    "fill_patchmatch",
    "fill_mean",
    "check_fill_inputs",
]

CV_RADIUS = 5
PATCHMATCH_RADIUS = 3
PATCHMATCH_SEED = 0

FillFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def check_fill_inputs(image: np.ndarray, hole_mask: np.ndarray) -> None:
    """Raise ``ValueError`` unless image is (H, W, 3) uint8 and hole_mask is (H, W) uint8 in {0, 1}."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be a (H, W, 3) uint8 array, got {getattr(image, 'shape', type(image))}")
    if not isinstance(hole_mask, np.ndarray) or hole_mask.dtype != np.uint8 or hole_mask.shape != image.shape[:2]:
        raise ValueError(
            f"hole_mask must be a (H, W) uint8 array matching the image {image.shape[:2]}, "
            f"got {getattr(hole_mask, 'shape', type(hole_mask))} {getattr(hole_mask, 'dtype', '')}"
        )
    if hole_mask.max(initial=0) > 1:
        raise ValueError("hole_mask must hold only 0 and 1 (1 = hole); binarise it with pconv.masks.binarize_hole")


def _fill_opencv(image: np.ndarray, hole_mask: np.ndarray, flag_name: str) -> np.ndarray:
    import cv2

    check_fill_inputs(image, hole_mask)
    return cv2.inpaint(np.ascontiguousarray(image), hole_mask, CV_RADIUS, getattr(cv2, flag_name))


def fill_telea(image: np.ndarray, hole_mask: np.ndarray) -> np.ndarray:
    """OpenCV Telea fast-marching inpainting, radius ``CV_RADIUS``. Shapes: see the module docstring."""
    return _fill_opencv(image, hole_mask, "INPAINT_TELEA")


def fill_ns(image: np.ndarray, hole_mask: np.ndarray) -> np.ndarray:
    """OpenCV Navier-Stokes inpainting, radius ``CV_RADIUS``. Shapes: see the module docstring."""
    return _fill_opencv(image, hole_mask, "INPAINT_NS")


def _patchmatch_module():  # noqa: ANN202 - the module type of an optional package
    try:
        from patchmatch import patch_match
    except ImportError:
        raise RuntimeError(
            "patchmatch needs the pypatchmatch package: pip install pypatchmatch (or pip install 'pconv[eval]')"
        ) from None
    if not patch_match.patchmatch_available:
        raise RuntimeError(
            "pypatchmatch is installed but its native library failed to load on this machine; "
            "reinstall pypatchmatch or pick another method"
        )
    return patch_match


def fill_patchmatch(image: np.ndarray, hole_mask: np.ndarray) -> np.ndarray:
    """PatchMatch (pypatchmatch) with 7x7 patches and seed 0, deterministic. Shapes: see the module docstring."""
    check_fill_inputs(image, hole_mask)
    patch_match = _patchmatch_module()
    patch_match.set_random_seed(PATCHMATCH_SEED)  # every call starts from the same seed: reproducible fills
    return patch_match.inpaint(np.ascontiguousarray(image), hole_mask, patch_size=PATCHMATCH_RADIUS)


def fill_mean(image: np.ndarray, hole_mask: np.ndarray) -> np.ndarray:
    """Hole pixels get the rounded mean colour of the known pixels (128 if none). Shapes: see the module docstring."""
    check_fill_inputs(image, hole_mask)
    hole = hole_mask.astype(bool)
    known = image[~hole]  # (K, 3)
    colour = np.rint(known.mean(axis=0)) if len(known) else np.full(3, 128.0)
    out = image.copy()
    out[hole] = colour.astype(np.uint8)
    return out


BASELINES: dict[str, FillFn] = {
    "mean": fill_mean,
    "ns": fill_ns,
    "patchmatch": fill_patchmatch,
    "telea": fill_telea,
}


def get_baseline(name: str) -> FillFn:
    """The fill function of a baseline by name; ``ValueError`` naming the known ones otherwise.

    For ``patchmatch`` this also checks that the package and its native library work here (``RuntimeError``).
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(sorted(BASELINES))}")
    if name == "patchmatch":
        _patchmatch_module()
    return BASELINES[name]
