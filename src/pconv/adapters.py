"""The input kinds ``Inpainter`` takes, in and back: PIL images, numpy arrays and torch tensors.

Everything between runs on numpy: an image becomes an ``Item`` (``to_item``) that hands out float RGB
``(3, H, W)`` in [0, 1], whole or one window at a time, and a hole ``(1, H, W)``, and the filled result goes back
as the caller's kind (``Item.finish``): a PIL image with its alpha, a uint8 array of the input's shape, or a tensor
of the input's dtype and device. Known pixels come back bit-identical: the result is ``where(hole, fill, input)``
in the input's own number type, and for 8-bit inputs only the boxes around the holes are converted back
(``paste_fill``). Torch is never imported here unless the caller passed a tensor (a tensor exists only once torch
is imported).

Polarity: ``white_array`` reads a mask of any kind as white = 1; ``Inpainter`` applies ``mask_polarity`` to it, so
``to_item`` takes a ``hole_mask`` (1 = hole).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from pconv.imageio import to_8bit
from pconv.masks import binarize_hole, pil_to_hole_mask

if TYPE_CHECKING:
    import torch

__all__ = ["Item", "hole_boxes", "is_tensor", "paste_fill", "to_item", "white_array"]


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch (a tensor exists only once torch is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def white_array(hole_mask: Any, threshold: int) -> np.ndarray:
    """A mask of any supported kind -> uint8 {0, 1}, 1 = white, (H, W) or (N, H, W)."""
    from PIL import Image

    if isinstance(hole_mask, Image.Image):
        return pil_to_hole_mask(hole_mask, threshold=threshold)
    if isinstance(hole_mask, np.ndarray):
        return _white_numpy(hole_mask, threshold)
    if is_tensor(hole_mask):
        return _white_tensor(hole_mask, threshold)
    raise ValueError(f"hole_mask must be a PIL image, a numpy array or a tensor, got {type(hole_mask).__name__}")


def _white_tensor(hole_mask: torch.Tensor, threshold: int) -> np.ndarray:
    import torch

    arr = hole_mask.detach().cpu()
    if arr.dim() == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.dim() == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.dim() not in (2, 3):
        raise ValueError(f"hole_mask tensor must be (H, W), (1, H, W) or (N, 1, H, W), got {tuple(arr.shape)}")
    if arr.is_floating_point() and not bool(torch.isfinite(arr).all()):
        raise ValueError("the hole_mask tensor holds NaN or infinite values; pass 0/1 or grey in [0, 1]")
    if arr.dtype == torch.uint8 and int(arr.max()) > 1:
        return (arr > threshold).to(torch.uint8).numpy()
    return (arr.float() > threshold / 255).to(torch.uint8).numpy()


def _white_numpy(arr: np.ndarray, threshold: int) -> np.ndarray:
    from PIL import Image

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype != np.uint8:
        raise ValueError(f"a numpy hole_mask must be uint8 or bool, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return pil_to_hole_mask(Image.fromarray(arr), threshold=threshold)
    if arr.ndim != 2:
        raise ValueError(f"a numpy hole_mask must be (H, W), got shape {arr.shape}")
    return arr.copy() if arr.max(initial=0) <= 1 else binarize_hole(np.ascontiguousarray(arr), threshold=threshold)


@dataclass
class Item:
    """One image as the network sees it, and how to turn the result back into the caller's kind.

    The image is kept as it came and made the network's float ``(3, H, W)`` in [0, 1] on demand: whole (``rgb``)
    or one window (``crop``), so that a large photo filled window by window is never converted whole.
    """

    pixels: np.ndarray  # (H, W, 3) uint8 (PIL, numpy), or (3, H, W) float32 in [0, 1] (a tensor's values)
    hole: np.ndarray  # (1, H, W) in {0, 1}, 1 = hole: uint8 as given (``Inpainter`` may put the dilated float32 one)
    restore: Callable[[np.ndarray, np.ndarray], Any]  # (filled (3, H, W), hole (1, H, W)) -> the caller's kind

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return tuple(self.hole.shape[1:])  # type: ignore[return-value]

    @cached_property
    def rgb(self) -> np.ndarray:
        """The whole image, (3, H, W) float32 in [0, 1]."""
        return self.crop(slice(None), slice(None))

    def crop(self, rows: slice, cols: slice) -> np.ndarray:
        """A window, (3, h, w) float32 in [0, 1]: the same floats as ``rgb[:, rows, cols]``."""
        if self.pixels.dtype == np.uint8:
            return _unit_float(self.pixels[rows, cols])
        return self.pixels[:, rows, cols]

    def finish(self, filled: np.ndarray) -> Any:
        """``filled`` (3, H, W) float, read at the hole pixels only -> the caller's kind, known pixels as given."""
        return self.restore(filled, self.hole)


def to_item(image: Any, hole: np.ndarray) -> Item:
    """One image of a supported kind and its hole -> an ``Item``.

    Args:
        image: a PIL image, a uint8 numpy array (H, W, 3) or (H, W, 4), or a float tensor (3, H, W) in [0, 1].
        hole: (H, W) uint8 in {0, 1}, 1 = hole, the image's size (kept as it is, not copied).
    Raises:
        ValueError: an unsupported kind or shape, a mask of another size, or tensor values not finite or not in
            [0, 1] (the message says which).
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        eight_bit = to_8bit(image)  # 16-bit grey scaled, not clipped to white
        pixels = np.asarray(eight_bit if eight_bit.mode == "RGB" else eight_bit.convert("RGB"))
        restore = _restore_pil(pixels, image.getchannel("A") if "A" in image.getbands() else None)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"a numpy image must be uint8 (H, W, 3) or (H, W, 4), got {image.shape} {image.dtype}")
        pixels = image[:, :, :3]
        restore = _restore_numpy(image)
    elif is_tensor(image):
        if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise ValueError(
                f"an image tensor must be float (3, H, W) or (N, 3, H, W) in [0, 1], got "
                f"{tuple(image.shape)} {image.dtype}"
            )
        pixels = image.detach().float().cpu().numpy()
        _check_unit_range(pixels)
        restore = _restore_tensor(image)
    else:
        raise ValueError(f"image must be a PIL image, a uint8 numpy array or a tensor, got {type(image).__name__}")
    height, width = pixels.shape[:2] if pixels.dtype == np.uint8 else pixels.shape[1:]
    if tuple(hole.shape) != (height, width):
        raise ValueError(
            f"hole_mask is {hole.shape[-1]}x{hole.shape[-2]} but the image is {width}x{height} (width x height); "
            "resize the mask to the image (pconv.resize.resize_hole_mask)"
        )
    return Item(pixels, np.asarray(hole)[None], restore)  # kept 8-bit: made float per window (Inpainter)


def _unit_float(rgb_u8: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return np.ascontiguousarray(rgb_u8.transpose(2, 0, 1), dtype=np.float32) / 255


def _check_unit_range(rgb: np.ndarray) -> None:
    """ValueError unless every value of a float image is finite and in [0, 1] (0..255 floats are a common slip)."""
    if rgb.size == 0:
        return
    if not np.isfinite(rgb).all():
        raise ValueError("the image tensor holds NaN or infinite values; pass finite values in [0, 1]")
    low, high = float(rgb.min()), float(rgb.max())
    if low < 0 or high > 1:
        hint = "; divide 0..255 values by 255" if high > 1.5 else "; clamp it to [0, 1]"
        raise ValueError(f"the image tensor holds values in [{low:g}, {high:g}], not [0, 1]{hint}")


def _to_uint8(filled: np.ndarray) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded half to even."""
    return np.rint(np.clip(filled, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)


def hole_boxes(hole: np.ndarray) -> list[tuple[slice, slice]]:
    """(H, W) hole mask -> (rows, cols) slices, one per run of consecutive rows holding hole pixels, each cut to
    the columns between that run's first and last hole pixel; every hole pixel lies in exactly one box."""
    rows = np.flatnonzero(hole.any(axis=1))
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) > 1)
    boxes = []
    for top, bottom in zip(rows[np.r_[0, breaks + 1]], rows[np.r_[breaks, rows.size - 1]] + 1):
        cols = np.flatnonzero(hole[top:bottom].any(axis=0))
        boxes.append((slice(int(top), int(bottom)), slice(int(cols[0]), int(cols[-1]) + 1)))
    return boxes


def paste_fill(out: np.ndarray, filled: np.ndarray, hole: np.ndarray) -> None:
    """Write ``filled``'s hole pixels into ``out`` in place, rounded as ``_to_uint8`` does.

    Args:
        out: (H, W, 3) uint8 (a view is fine), holding the known pixels; its hole pixels are replaced.
        filled: (3, H, W) float in [0, 1].
        hole: (1, H, W), > 0 = hole.
    Only the boxes around the hole pixels (``hole_boxes``) are converted from float, so a few holes in a large
    photo cost their own size, not the photo's; every pixel comes out as ``where(hole, _to_uint8(filled), out)``.
    """
    for rows, cols in hole_boxes(hole[0] > 0):
        box = out[rows, cols]
        box[...] = np.where(hole[0, rows, cols, None] > 0, _to_uint8(filled[:, rows, cols]), box)


def _restore_pil(rgb_u8: np.ndarray, alpha: Any) -> Callable[[np.ndarray, np.ndarray], Any]:
    from PIL import Image

    def restore(filled: np.ndarray, hole: np.ndarray) -> Image.Image:
        rgb = rgb_u8.copy()
        paste_fill(rgb, filled, hole)
        out = Image.fromarray(rgb)
        if alpha is not None:
            out.putalpha(alpha)
        return out

    return restore


def _restore_numpy(image: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def restore(filled: np.ndarray, hole: np.ndarray) -> np.ndarray:
        out = image.copy()
        paste_fill(out[:, :, :3], filled, hole)
        return out

    return restore


def _restore_tensor(image: torch.Tensor) -> Callable[[np.ndarray, np.ndarray], torch.Tensor]:
    import torch

    def restore(filled: np.ndarray, hole: np.ndarray) -> torch.Tensor:
        in_hole = torch.from_numpy(hole > 0).to(image.device)  # (1, H, W), broadcast over the channels
        return torch.where(in_hole, torch.from_numpy(filled).to(device=image.device, dtype=image.dtype), image)

    return restore
