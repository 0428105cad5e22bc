"""Inference for people: ``Inpainter`` fills the holes of photos of any size with a partial-convolution U-Net
(arXiv 1804.07723).

One pipeline, two network backends: everything around the network (mask reading and polarity, dilation, windows
for large images, resizing) works here on numpy arrays. On ONNX Runtime (``OnnxNetwork``, which never imports torch)
the shipped ``pconv_default.onnx`` is the **whole fill as one graph** (``pconv.fill_graph``: 8-bit image and hole
mask in, the flip and shift averages and the compositing inside, 8-bit image out), the same graph the browser runs;
on PyTorch (``TorchNetwork``, CPU or GPU) the network is one call ``(image, valid_mask) -> prediction`` and the
averages and compositing run here, with the same arithmetic. ``backend="auto"`` (the default) takes PyTorch when it
is installed and a GPU is present, ONNX Runtime otherwise; the default model ships in both forms
(``pconv/weights/pconv_default.safetensors`` and its export ``pconv_default.onnx``). Tensor images and masks are
accepted too; they exist only where torch is already imported, and come back as tensors (on ONNX Runtime their
values are rounded to 8 bits for the network).

Polarity: everything public here takes a ``hole_mask`` (white / 255 / 1 = missing pixel), as mask files, the CLI
and the HTTP API do. Grey masks are binarised at ``pconv.masks.HOLE_THRESHOLD`` (grey > 127 is hole); the
``mask_polarity="black-hole"`` option reads black as hole instead. The flip to the paper's ``valid_mask`` (1 = known,
section 3.1) happens once per path: in ``Inpainter._fill_holes`` with ``pconv.masks.hole_to_valid``, or inside the
fill graph (``pconv.fill_graph``).

Known pixels are never touched: the result is ``where(hole, prediction, image)`` computed in the caller's own
number type (uint8 for PIL images and numpy arrays, the input's float dtype for tensors), so every known pixel is
bit-identical to the input.

Any resolution: an image whose longer side is at most ``max_side`` (default 1024) runs whole; the network pads it
to its multiple ``2**depth`` internally. A larger image is filled window by window, like IOPaint's crop strategy:
the hole's connected regions (found on a grid of 32 px cells) each get a window with ``margin`` pixels of context
(default 128, and at least ``max_side // 2`` px a side where the image allows), overlapping windows are merged,
a window still longer than ``max_side`` is resized down for the network (area average; a cell with any hole pixel
is hole), filled, and that fill (known pixels kept) resized back up (bicubic, as PyTorch's ``interpolate``), and
only hole pixels are pasted back. A hole spread over the whole image thus degrades gracefully into "resize the
image down, fill, resize the fill back up".

Test-time averaging (both default on, ``averaged_predictor``): flip averaging also fills the left-right mirror
image, and shift averaging also fills the image moved one pixel down and right; the predictions (each moved or
mirrored back) are averaged. Every encoder layer halves the resolution with stride 2, so a one-pixel move
changes which pixels share a cell at every level, and averaging the two evens out that grid's imprint on the fill.
Each doubles the passes, run one after the other (flip and shift: four, four times the time, about the same
peak memory); the model card gives their effect on the evaluation.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from pconv.backends import Network, OnnxNetwork, TorchNetwork, choose_backend, resolve_device
from pconv.imageio import to_8bit
from pconv.masks import HOLE_THRESHOLD, binarize_hole, hole_to_valid, pil_to_hole_mask, valid_to_hole

if TYPE_CHECKING:
    import torch

    from pconv.model import PConvUNet

__all__ = [
    "SETTING_RANGES",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_SIDE",
    "DEFAULT_ONNX_NAME",
    "DEFAULT_WEIGHTS_NAME",
    "MASK_POLARITIES",
    "Inpainter",
    "Window",
    "averaged_predictor",
    "default_onnx_path",
    "default_weights_path",
    "dilate_hole",
    "flip_averaged",
    "plan_windows",
    "resize_area",
    "resize_bicubic",
    "resize_hole_mask",
    "resolve_device",
    "shift_averaged",
]

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS_NAME = "pconv_default.safetensors"
DEFAULT_ONNX_NAME = "pconv_default.onnx"  # the export of DEFAULT_WEIGHTS_NAME (`pconv export-onnx`)
DEFAULT_MAX_SIDE = 1024  # longer side up to which an image runs whole (about 1.5 GB peak on CPU, paper network)
DEFAULT_MARGIN = 128  # context pixels around each hole region in the windowed path
MASK_POLARITIES = ("white-hole", "black-hole")
_CELL = 32  # side of the grid cells on which hole regions are found
_CUBIC_A = -0.75  # the cubic convolution kernel's parameter in PyTorch's (and OpenCV's) bicubic resize

# A numpy array, or a torch tensor where torch is in use (the averages below work on both).
ArrayT = TypeVar("ArrayT")
# (image (N, 3, H, W) in [0, 1], valid_mask (N, 1, H, W) 1 = known) -> prediction (N, 3, H, W) about [0, 1]
Predictor = Callable[[Any, Any], Any]


def default_weights_path() -> Path:
    """Where the shipped default model lives: ``pconv/weights/pconv_default.safetensors`` inside the package."""
    return Path(str(resources.files("pconv").joinpath("weights").joinpath(DEFAULT_WEIGHTS_NAME)))


def default_onnx_path() -> Path:
    """The shipped default model as ONNX: ``pconv/weights/pconv_default.onnx`` inside the package."""
    return Path(str(resources.files("pconv").joinpath("weights").joinpath(DEFAULT_ONNX_NAME)))


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
        counts = _prefix_sums(grown, axis, np.int64)
        idx = np.arange(n)
        hi, lo = np.minimum(idx + pixels + 1, n), np.maximum(idx - pixels, 0)
        grown = np.take(counts, hi, axis=axis) > np.take(counts, lo, axis=axis)  # any hole in [i - p, i + p]
    return grown.astype(np.float32)


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
        sums = _prefix_sums(out, axis, np.float64)
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


def _prefix_sums(x: np.ndarray, axis: int, dtype: type) -> np.ndarray:
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


@dataclass(frozen=True)
class Window:
    """A crop ``[top:bottom, left:right]`` of the image, in pixels."""

    top: int
    left: int
    bottom: int
    right: int

    def overlaps(self, other: Window) -> bool:
        rows = self.top < other.bottom and other.top < self.bottom
        return rows and self.left < other.right and other.left < self.right

    def union(self, other: Window) -> Window:
        return Window(
            min(self.top, other.top),
            min(self.left, other.left),
            max(self.bottom, other.bottom),
            max(self.right, other.right),
        )


def plan_windows(hole: np.ndarray, *, margin: int = DEFAULT_MARGIN, min_side: int = 0) -> list[Window]:
    """Non-overlapping windows that together hold every hole pixel, each with ``margin`` pixels of context.

    Hole regions are the 8-connected components of a grid of 32 px cells that hold any hole pixel; each region's
    box grows by ``margin`` and to at least ``min_side`` a side (clamped to the image), and overlapping boxes are
    merged until none overlap.

    Args:
        hole: (H, W) bool or {0, 1}, 1 = hole.
    Returns:
        Windows in no particular order; empty if there is no hole.
    """
    h, w = hole.shape
    hc, wc = -(-h // _CELL), -(-w // _CELL)
    padded = np.zeros((hc * _CELL, wc * _CELL), dtype=bool)
    padded[:h, :w] = hole
    grid = padded.reshape(hc, _CELL, wc, _CELL).any(axis=(1, 3))  # (H/32, W/32) cells holding hole
    windows = []
    for top, left, bottom, right in _component_boxes(grid):
        y0, y1 = _expand(top * _CELL, min(bottom * _CELL, h), margin, min_side, h)
        x0, x1 = _expand(left * _CELL, min(right * _CELL, w), margin, min_side, w)
        windows.append(Window(y0, x0, y1, x1))
    return _merge_overlapping(windows)


def _component_boxes(grid: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (top, left, bottom, right), end exclusive, of the 8-connected True regions of ``grid``."""
    seen = np.zeros_like(grid)
    boxes = []
    for start in zip(*np.nonzero(grid)):
        if seen[start]:
            continue
        seen[start] = True
        stack, box = [start], [start[0], start[1], start[0] + 1, start[1] + 1]
        while stack:
            y, x = stack.pop()
            box = [min(box[0], y), min(box[1], x), max(box[2], y + 1), max(box[3], x + 1)]
            for ny in range(max(y - 1, 0), min(y + 2, grid.shape[0])):
                for nx in range(max(x - 1, 0), min(x + 2, grid.shape[1])):
                    if grid[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        boxes.append(tuple(int(v) for v in box))
    return boxes


def _expand(start: int, end: int, margin: int, min_len: int, limit: int) -> tuple[int, int]:
    """Grow ``[start, end)`` by ``margin`` each side and to ``min_len``, shifted and clamped into ``[0, limit)``."""
    start, end = start - margin, end + margin
    short = min_len - (end - start)
    if short > 0:
        start, end = start - short // 2, end + short - short // 2
    if start < 0:
        start, end = 0, end - start
    if end > limit:
        start, end = start - (end - limit), limit
    return max(start, 0), end


def _merge_overlapping(windows: list[Window]) -> list[Window]:
    merged = list(windows)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                if merged[i].overlaps(merged[j]):
                    merged[i] = merged[i].union(merged.pop(j))
                    changed = True
                    break
            if changed:
                break
    return merged


# The integer settings of ``Inpainter``: name -> (least, most or None), checked there and named by the CLI's flags.
SETTING_RANGES: dict[str, tuple[int, int | None]] = {
    "max_side": (16, None),
    "margin": (0, None),
    "dilate": (0, None),
    "batch_size": (1, None),
    "threshold": (0, 254),
}


class Inpainter:
    """Fill the holes of images with a partial-convolution U-Net.

    Args:
        weights: the model: a safetensors file written by ``pconv.model.save_weights`` (PyTorch backend) or an
            ONNX file written by ``pconv export-onnx`` (``.onnx``, ONNX Runtime backend); ``None`` loads the
            default model shipped with the package in the chosen backend's form (``FileNotFoundError`` if this
            install has none).
        backend: ``"auto"`` (PyTorch when installed and a GPU is present, else ONNX Runtime; a ``weights`` file or a
            GPU ``device`` decides it too), ``"torch"`` or ``"onnx"``; ``pconv.backends.BackendError`` names the
            package to install when the chosen one is missing.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks CUDA if available, else CPU.
        model: an already built ``PConvUNet`` to run on the PyTorch backend instead of ``weights``.
        predictor: the network as any callable ``(image (N,3,H,W) in [0,1], valid_mask (N,1,H,W) 1 = known) ->
            (N,3,H,W)`` on float32 numpy arrays, instead of ``weights`` (e.g. a ``pconv.backends.OnnxNetwork``).
        max_side: images with a longer side up to this run whole; larger ones window by window (module docstring).
        margin: context pixels around each hole region in the windowed path.
        threshold: grey level (0..255) above which a mask pixel is white.
        dilate: grow every hole by this many pixels before filling.
        mask_polarity: ``"white-hole"`` (default: white = hole) or ``"black-hole"`` (black = hole).
        batch_size: how many same-size images run through the network at once.
        flip_average: average the prediction with that of the mirrored image (module docstring): better fills
            for twice the time. ``False`` skips it.
        shift_average: average the prediction with that of the image moved by one pixel (module docstring):
            better fills for twice the time again. Both ``False`` runs the network once.
        smooth: the smooth blend (``pconv.smooth``, beyond the paper): where the known pixels around a hole hold no
            detail, the fill is a smooth fill that is exact on flat colours and linear gradients, and near the
            hole's edge smooth surroundings are continued into it (no outline); ``False`` keeps the network's fill
            alone. On PyTorch (and with a ``predictor``) it needs torch.
        fast: on the PyTorch backend, run a copy of the network with BatchNorm folded into the convolutions and
            channels-last layout (``pconv.model.fuse_for_inference``): the same output to float rounding, faster
            (benchmarks/RESULTS.md). ``self.model`` stays the unfused network. (An exported ONNX graph is fused.)
        threads: CPU threads for the network (ONNX Runtime: this session's; PyTorch: ``torch.set_num_threads``,
            which is per process); ``None`` keeps the backend's default.

    Attributes:
        network: the backend, a ``pconv.backends.TorchNetwork`` or ``OnnxNetwork`` (or the ``predictor``).
        backend: ``"torch"``, ``"onnx"`` or ``"custom"`` (a ``predictor``).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        backend: str = "auto",
        device: str | torch.device | None = None,
        model: PConvUNet | None = None,
        predictor: Predictor | None = None,
        max_side: int = DEFAULT_MAX_SIDE,
        margin: int = DEFAULT_MARGIN,
        threshold: int = HOLE_THRESHOLD,
        dilate: int = 0,
        mask_polarity: str = "white-hole",
        batch_size: int = 4,
        flip_average: bool = True,
        shift_average: bool = True,
        smooth: bool = True,
        fast: bool = True,
        threads: int | None = None,
    ) -> None:
        if sum(x is not None for x in (weights, model, predictor)) > 1:
            raise ValueError("pass at most one of weights, model and predictor")
        if mask_polarity not in MASK_POLARITIES:
            raise ValueError(f"mask_polarity must be one of {MASK_POLARITIES}, got {mask_polarity!r}")
        given = dict(max_side=max_side, margin=margin, dilate=dilate, batch_size=batch_size, threshold=threshold)
        wrong = [
            f"{name}={value} (must be {f'>= {least}' if most is None else f'{least}..{most}'})"
            for name, value in given.items()
            for least, most in [SETTING_RANGES[name]]
            if value < least or (most is not None and value > most)
        ]
        if wrong:
            raise ValueError(f"bad settings: {', '.join(wrong)}")
        self.max_side, self.margin, self.threshold, self.dilate = max_side, margin, threshold, dilate
        self.mask_polarity, self.batch_size = mask_polarity, batch_size
        self.flip_average, self.shift_average, self.smooth = flip_average, shift_average, smooth
        if predictor is not None:
            self.network: Network = predictor
        elif model is not None:
            if backend == "onnx":
                raise ValueError(
                    "a PConvUNet runs on the torch backend; export it for ONNX Runtime first (pconv.export)"
                )
            self.network = TorchNetwork(model, device=device, fast=fast, threads=threads)
        else:
            self.network = _load_network(weights, backend=backend, device=device, fast=fast, threads=threads)
        self.backend: str = getattr(self.network, "name", "custom")
        self._predict = averaged_predictor(self.network, flip=flip_average, shift=shift_average)

    @property
    def model(self) -> PConvUNet | None:
        """The (unfused) ``PConvUNet`` of the PyTorch backend; ``None`` on ONNX Runtime or with a ``predictor``."""
        return getattr(self.network, "model", None)

    @property
    def device(self) -> Any:
        """Where the network runs: a ``torch.device`` on PyTorch, ``"cpu"`` or ``"cuda[:N]"`` on ONNX Runtime."""
        return getattr(self.network, "device", "cpu")

    def __call__(self, image: Any, hole_mask: Any, *, dilate: int | None = None) -> Any:
        return self.inpaint(image, hole_mask, dilate=dilate)

    def inpaint(self, image: Any, hole_mask: Any, *, dilate: int | None = None) -> Any:
        """Fill the hole pixels of ``image``; every known pixel of the result is bit-identical to the input.

        Args:
            image: one of
                - ``PIL.Image`` (any mode; an alpha channel is kept),
                - uint8 numpy array (H, W, 3) RGB or (H, W, 4) RGBA (alpha kept),
                - float tensor (3, H, W) or (N, 3, H, W) in [0, 1], on any device,
                - a list or tuple of those (each with its own mask, or one mask for all).
            hole_mask: white / 1 = hole (black with ``mask_polarity="black-hole"``): a PIL image (modes L, 1, RGB,
                or RGBA/LA whose alpha is the paint), a uint8 or bool numpy array (H, W) holding 0/1 or 0..255,
                or a tensor (H, W), (1, H, W) or (N, 1, H, W) holding {0, 1} or grey in [0, 1]. Grey is binarised
                at ``threshold`` (127 of 255). Its size must equal the image's (see ``resize_hole_mask``).
            dilate: overrides the instance's ``dilate`` for this call.
        Returns:
            The same kind as ``image``: a PIL image (RGB, or RGBA with the input's alpha), a uint8 array of the
            input's shape, a tensor of the input's shape, dtype and device, or a list.
        Raises:
            ValueError: an unsupported kind or shape, a mask of another size, or a float tensor image with values
                that are not finite or not in [0, 1] (the message says which).
        """
        grow = self.dilate if dilate is None else dilate
        if isinstance(image, (list, tuple)):
            masks = hole_mask if isinstance(hole_mask, (list, tuple)) else [hole_mask] * len(image)
            if len(masks) != len(image):
                raise ValueError(f"{len(image)} images but {len(masks)} hole masks")
            items = [_to_item(img, self._hole_array(m), grow) for img, m in zip(image, masks)]
            return [item.finish(out) for item, out in zip(items, self._fill_items(items))]
        if _is_tensor(image) and image.dim() == 4:
            import torch

            holes = self._hole_array(hole_mask)
            holes = holes if holes.ndim == 3 else np.broadcast_to(holes, (image.shape[0], *holes.shape))
            if holes.shape[0] != image.shape[0]:
                raise ValueError(f"{image.shape[0]} images but {holes.shape[0]} hole masks")
            items = [_to_item(img, hole, grow) for img, hole in zip(image, holes)]
            return torch.stack([item.finish(out) for item, out in zip(items, self._fill_items(items))])
        item = _to_item(image, self._hole_array(hole_mask), grow)
        return item.finish(self._fill_items([item])[0])

    def _hole_array(self, hole_mask: Any) -> np.ndarray:
        """Any supported mask -> (H, W) or (N, H, W) uint8 in {0, 1}, 1 = hole, with the polarity applied."""
        white = _white_array(hole_mask, self.threshold)
        if self.mask_polarity == "white-hole":
            return white
        return valid_to_hole(white)  # black-hole: the white pixels are the known ones

    def _fill_items(self, items: list[_Item]) -> list[np.ndarray]:
        """Filled (3, H, W) float32 images, known pixels copied from the input."""
        outs: list[np.ndarray | None] = [item.rgb if not item.hole.any() else None for item in items]
        small = [i for i, item in enumerate(items) if outs[i] is None and max(item.rgb.shape[1:]) <= self.max_side]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i in small:
            by_size.setdefault(tuple(items[i].rgb.shape), []).append(i)
        for group in by_size.values():
            for k in range(0, len(group), self.batch_size):
                chunk = group[k : k + self.batch_size]
                images = np.stack([items[i].rgb for i in chunk])  # (n, 3, H, W)
                filled = self._fill(images, np.stack([items[i].hole for i in chunk]))
                for i, out in zip(chunk, filled):
                    outs[i] = out
        for i, item in enumerate(items):
            if outs[i] is None:
                outs[i] = self._fill_large(item.rgb[None], item.hole[None])[0]
        return outs  # type: ignore[return-value]

    def _fill_large(self, image: np.ndarray, hole_mask: np.ndarray) -> np.ndarray:
        """(1, 3, H, W), (1, 1, H, W) -> (1, 3, H, W): window by window, only hole pixels pasted back."""
        out = image.copy()
        windows = plan_windows(hole_mask[0, 0] > 0, margin=self.margin, min_side=self.max_side // 2)
        log.info("image %dx%d: filling %d window(s)", image.shape[3], image.shape[2], len(windows))
        for win in windows:
            rows, cols = slice(win.top, win.bottom), slice(win.left, win.right)
            crop_hole = hole_mask[:, :, rows, cols]
            filled = self._fill(image[:, :, rows, cols], crop_hole)
            out[:, :, rows, cols] = np.where(crop_hole > 0, filled, out[:, :, rows, cols])
        return out

    def _fill(self, image: np.ndarray, hole_mask: np.ndarray) -> np.ndarray:
        """Run the network, resizing down first if the image is longer than ``max_side``.

        A resized image is filled small, known pixels kept, and that fill resized back up; only its hole pixels
        are used.

        Args:
            image: (N, 3, H, W) float32 in [0, 1].
            hole_mask: (N, 1, H, W) float32 in {0, 1}, 1 = hole.
        Returns:
            (N, 3, H, W) float32 in [0, 1]: the prediction in the hole, ``image`` elsewhere.
        """
        h, w = image.shape[2:]
        scale = self.max_side / max(h, w)
        if scale >= 1:
            pred = self._fill_holes(image, hole_mask)
        else:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            small_hole = (resize_area(hole_mask, size) > 0).astype(np.float32)  # any hole pixel -> hole
            pred = resize_bicubic(self._fill_holes(resize_area(image, size), small_hole), (h, w))
        return np.where(hole_mask > 0, np.clip(pred, 0, 1), image)

    def _fill_holes(self, image: np.ndarray, hole_mask: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) in [0, 1], (N, 1, H, W) 1 = hole -> (N, 3, H, W) float32 in [0, 1], known pixels kept.

        A fill graph (``OnnxNetwork.graph == "fill"``) does it all in one call, on 8-bit pixels; otherwise the
        averaged network runs here (the same arithmetic as the graph).
        """
        if getattr(self.network, "graph", None) == "fill":
            pixels = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)  # (N, H, W, 3)
            hole_bytes = (hole_mask[:, 0] > 0).astype(np.uint8) * 255  # (N, H, W), white = hole
            filled = self.network.fill(
                pixels, hole_bytes, flip=self.flip_average, shift=self.shift_average, smooth=self.smooth
            )
            return filled.transpose(0, 3, 1, 2).astype(np.float32) / 255
        valid_mask = hole_to_valid(hole_mask)  # the one polarity flip on this path
        pred = np.asarray(self._predict(image, valid_mask), dtype=np.float32)
        if self.smooth:
            pred = _smooth_blend(pred, image, valid_mask)
        return np.where(hole_mask > 0, np.clip(pred, 0, 1), image)


def _smooth_blend(pred: np.ndarray, image: np.ndarray, valid_mask: np.ndarray) -> np.ndarray:
    """``pconv.smooth.blend`` on numpy arrays (through torch, on the CPU): (N, 3, H, W) float32 in and out.

    Without torch (the light install running an ONNX network graph, not a fill graph) the prediction is kept, with
    a warning: the shipped fill graph blends inside.
    """
    try:
        import torch
    except ImportError:
        log.warning("the smooth blend needs torch or a fill graph (pconv export-onnx); using the network's fill alone")
        return pred

    from pconv.smooth import blend

    with torch.inference_mode():
        tensors = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (pred, image, valid_mask))
        return blend(*tensors).numpy()


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


def _load_network(
    weights: str | Path | None, *, backend: str, device: Any, fast: bool, threads: int | None = None
) -> Network:
    """The backend for a weights file (or the shipped model's form for the chosen backend, ``weights=None``)."""
    path = None if weights is None else Path(weights)
    chosen = choose_backend(backend, weights=path, device=None if device is None else str(device))
    if path is None:
        path = default_onnx_path() if chosen == "onnx" else default_weights_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"no default model is bundled with this pconv install (looked for {path}); "
                "pass a weights file: Inpainter(weights=PATH) or --weights PATH (written by pconv.model.save_weights)"
            )
    is_onnx = path.suffix.lower() == ".onnx"
    if chosen == "onnx":
        if path.suffix.lower() == ".safetensors":
            raise ValueError(
                f"{path} is a safetensors weights file, which the onnx backend cannot run; use the torch backend, "
                f"or export it first: pconv export-onnx --weights {path} --output MODEL.onnx"
            )
        return OnnxNetwork(path, device=None if device is None else str(device), threads=threads)
    if is_onnx:
        raise ValueError(f"{path} is an ONNX file, which runs on the onnx backend, not torch")
    return TorchNetwork(_load_model(path), device=device, fast=fast, threads=threads)


def _load_model(weights: Path) -> PConvUNet:
    from pconv.model import WeightsError, load_weights

    try:
        return load_weights(weights)
    except WeightsError:
        raise
    except ValueError as exc:  # e.g. metadata that is not JSON: say which file is at fault
        raise WeightsError(f"{weights} holds an unreadable pconv model config ({exc})") from None


def _is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch (a tensor exists only once torch is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _white_array(hole_mask: Any, threshold: int) -> np.ndarray:
    """A mask of any supported kind -> uint8 {0, 1}, 1 = white, (H, W) or (N, H, W)."""
    from PIL import Image

    if isinstance(hole_mask, Image.Image):
        return pil_to_hole_mask(hole_mask, threshold=threshold)
    if isinstance(hole_mask, np.ndarray):
        return _white_numpy(hole_mask, threshold)
    if _is_tensor(hole_mask):
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
class _Item:
    """One image as the network sees it, and how to turn the result back into the caller's kind."""

    rgb: np.ndarray  # (3, H, W) float32 in [0, 1]
    hole: np.ndarray  # (1, H, W) float32 in {0, 1}, 1 = hole (after dilation)
    restore: Callable[[np.ndarray, np.ndarray], Any]  # (filled (3, H, W), hole (1, H, W)) -> the caller's kind

    def finish(self, filled: np.ndarray) -> Any:
        return self.restore(filled, self.hole)


def _to_item(image: Any, hole: np.ndarray, dilate: int) -> _Item:
    from PIL import Image

    if isinstance(image, Image.Image):
        rgb_u8 = np.asarray(to_8bit(image).convert("RGB"))  # 16-bit grey scaled, not clipped to white
        rgb = _unit_float(rgb_u8)
        restore = _restore_pil(rgb_u8, image.getchannel("A") if "A" in image.getbands() else None)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"a numpy image must be uint8 (H, W, 3) or (H, W, 4), got {image.shape} {image.dtype}")
        rgb = _unit_float(image[:, :, :3])
        restore = _restore_numpy(image)
    elif _is_tensor(image):
        if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise ValueError(
                f"an image tensor must be float (3, H, W) or (N, 3, H, W) in [0, 1], got "
                f"{tuple(image.shape)} {image.dtype}"
            )
        rgb = image.detach().float().cpu().numpy()
        _check_unit_range(rgb)
        restore = _restore_tensor(image)
    else:
        raise ValueError(f"image must be a PIL image, a uint8 numpy array or a tensor, got {type(image).__name__}")
    if tuple(hole.shape) != tuple(rgb.shape[1:]):
        raise ValueError(
            f"hole_mask is {hole.shape[-1]}x{hole.shape[-2]} but the image is {rgb.shape[2]}x"
            f"{rgb.shape[1]} (width x height); resize the mask to the image (pconv.inference."
            "resize_hole_mask)"
        )
    return _Item(rgb, dilate_hole(np.asarray(hole, dtype=np.float32)[None], dilate), restore)


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


def _restore_pil(rgb_u8: np.ndarray, alpha: Any) -> Callable[[np.ndarray, np.ndarray], Any]:
    from PIL import Image

    def restore(filled: np.ndarray, hole: np.ndarray) -> Image.Image:
        out = Image.fromarray(np.where(hole[0, :, :, None] > 0, _to_uint8(filled), rgb_u8))
        if alpha is not None:
            out.putalpha(alpha)
        return out

    return restore


def _restore_numpy(image: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def restore(filled: np.ndarray, hole: np.ndarray) -> np.ndarray:
        out = image.copy()
        out[:, :, :3] = np.where(hole[0, :, :, None] > 0, _to_uint8(filled), image[:, :, :3])
        return out

    return restore


def _restore_tensor(image: torch.Tensor) -> Callable[[np.ndarray, np.ndarray], torch.Tensor]:
    import torch

    def restore(filled: np.ndarray, hole: np.ndarray) -> torch.Tensor:
        in_hole = torch.from_numpy(hole > 0).to(image.device)  # (1, H, W), broadcast over the channels
        return torch.where(in_hole, torch.from_numpy(filled).to(device=image.device, dtype=image.dtype), image)

    return restore
