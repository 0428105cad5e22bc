"""Inference for people: ``Inpainter`` fills the holes of photos of any size with a partial-convolution U-Net
(arXiv 1804.07723).

One pipeline, two network backends (``pconv.backends``): everything around the network works on numpy arrays. On
ONNX Runtime (``OnnxNetwork``, which never imports torch) the shipped ``pconv_default.onnx`` is the **whole fill as
one graph** (``pconv.fill_graph``: 8-bit image and hole mask in, the test-time averages, the smooth blend and the
compositing inside, 8-bit image out), the same graph the browser runs; on PyTorch (``TorchNetwork``, CPU or GPU)
the network is one call ``(image, valid_mask) -> prediction`` and the averages (``pconv.averages``), the blend
(``pconv.smooth``) and the compositing run here, with the same arithmetic. ``backend="auto"`` (the default) takes
PyTorch when it is installed and a GPU is present, ONNX Runtime otherwise; the default model ships in both forms
(``pconv/weights/pconv_default.safetensors`` and its export ``pconv_default.onnx``).

A photo's way through ``Inpainter.inpaint``: the mask of any kind is read as white = 1 and ``mask_polarity`` applied
(``pconv.adapters.white_array``, ``_hole_array``); image and hole become numpy (``pconv.adapters.to_item``); a mask
that leaves no known pixel is refused; the hole is dilated; same-size images are batched; an image longer than
``max_side`` is filled window by window around its holes (``pconv.windows``), a window still too long resized down
and its fill back up (``pconv.resize``); the result goes back as the caller's kind (``Item.finish``).

Polarity: everything public here takes a ``hole_mask`` (white / 255 / 1 = missing pixel), as mask files, the CLI
and the HTTP API do. Grey masks are binarised at ``pconv.masks.HOLE_THRESHOLD`` (grey > 127 is hole); the
``mask_polarity="black-hole"`` option reads black as hole instead. The flip to the paper's ``valid_mask`` (1 = known,
section 3.1) happens once per path: in ``Inpainter._fill_holes`` with ``pconv.masks.hole_to_valid``, or inside the
fill graph (``pconv.fill_graph``).

Known pixels are never touched: the result is ``where(hole, prediction, image)`` computed in the caller's own
number type (uint8 for PIL images and numpy arrays, the input's float dtype for tensors), so every known pixel is
bit-identical to the input.

Any resolution: an image whose longer side is at most ``max_side`` (default 1024) runs whole; the network pads it
to its multiple ``2**depth`` internally. A larger image is filled window by window (``pconv.windows.plan_windows``:
``margin`` pixels of context, default 128, and at least ``max_side // 2`` px a side where the image allows); a
window still longer than ``max_side`` is resized down for the network (area average; a cell with any hole pixel is
hole), filled, and that fill (known pixels kept) resized back up (bicubic), and only hole pixels are pasted back.
A hole spread over the whole image thus degrades gracefully into "resize the image down, fill, resize the fill back
up".
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pconv.adapters import Item, is_tensor, to_item, white_array
from pconv.averages import Predictor, averaged_predictor, flip_averaged, shift_averaged
from pconv.backends import Network, OnnxNetwork, TorchNetwork, choose_backend, resolve_device
from pconv.masks import HOLE_THRESHOLD, dilate_hole, hole_to_valid, valid_to_hole
from pconv.resize import resize_area, resize_bicubic, resize_hole_mask
from pconv.windows import DEFAULT_MARGIN, Window, plan_windows

if TYPE_CHECKING:
    import torch

    from pconv.model import PConvUNet

__all__ = [
    "SETTING_RANGES",
    "DEFAULT_BATCH",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_SIDE",
    "DEFAULT_ONNX_NAME",
    "DEFAULT_WEIGHTS_NAME",
    "MASK_POLARITIES",
    "Inpainter",
    "NoKnownPixelError",
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
MASK_POLARITIES = ("white-hole", "black-hole")


class NoKnownPixelError(ValueError):
    """The hole covers the whole image: no known pixel is left to fill from (usually a mask of the other polarity)."""


def default_weights_path() -> Path:
    """Where the shipped default model lives: ``pconv/weights/pconv_default.safetensors`` inside the package."""
    return Path(str(resources.files("pconv").joinpath("weights").joinpath(DEFAULT_WEIGHTS_NAME)))


def default_onnx_path() -> Path:
    """The shipped default model as ONNX: ``pconv/weights/pconv_default.onnx`` inside the package."""
    return Path(str(resources.files("pconv").joinpath("weights").joinpath(DEFAULT_ONNX_NAME)))


# The integer settings of ``Inpainter``: name -> (least, most or None), checked there and named by the CLI's flags.
SETTING_RANGES: dict[str, tuple[int, int | None]] = {
    "max_side": (16, None),
    "margin": (0, None),
    "dilate": (0, None),
    "batch_size": (1, None),
    "threshold": (0, 254),
}

# ``Inpainter``'s batch size by device type when none is given: a GPU needs many images at once to be busy; on the
# CPU one at a time is fastest with the default settings (a folder of 512² photos on 2 CPUs: 2.44 images/s with 1
# against 1.89 with 4 on ONNX Runtime, 1.20 against 0.97 on PyTorch; benchmarks/bench_batch_size.py,
# docs/scale_out.md), and holds the least memory.
DEFAULT_BATCH = {"cpu": 1, "cuda": 16}


def _nothing(item: Item) -> np.ndarray:
    """The "fill" of an image without a hole: zeros of its shape (``Item.finish`` reads no pixel of it)."""
    return np.zeros((3, *item.size), np.float32)


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
        batch_size: how many same-size images run through the network at once; ``None`` (default): by the
            device the network runs on (``DEFAULT_BATCH``: 1 on the CPU, 16 on a GPU).
        flip_average: average the prediction with that of the mirrored image (module docstring): better fills
            for twice the time. ``False`` skips it.
        shift_average: average the prediction with that of the image moved by one pixel (module docstring):
            better fills for twice the time again. Both ``False`` runs the network once.
        smooth: the smooth blend (``pconv.smooth``, beyond the paper): where the known pixels around a hole hold no
            detail, the fill is a smooth fill that is exact on flat colours and linear gradients, and near the
            hole's edge smooth surroundings are continued into it (no outline); then edges, lines and stripes of
            the known pixels are carried straight through the hole (``pconv.structure``); ``False`` keeps the
            network's fill alone. On PyTorch (and with a ``predictor``) it needs torch.
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
        batch_size: int | None = None,
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
        given = dict(max_side=max_side, margin=margin, dilate=dilate, threshold=threshold)
        if batch_size is not None:
            given["batch_size"] = batch_size
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
            self.network = TorchNetwork(model, device=device, fast=fast, threads=threads, holes_only=True)
        else:
            self.network = _load_network(weights, backend=backend, device=device, fast=fast, threads=threads)
        self.backend: str = getattr(self.network, "name", "custom")
        if self.batch_size is None:
            kind = str(self.device).split(":")[0]
            self.batch_size = DEFAULT_BATCH.get(kind, DEFAULT_BATCH["cpu"])
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
            NoKnownPixelError: a mask (after ``dilate``) that leaves no known pixel: nothing to fill from. Usually
                a mask of the other polarity; the message names ``mask_polarity``.
        """
        grow = self.dilate if dilate is None else dilate
        if isinstance(image, (list, tuple)):
            masks = hole_mask if isinstance(hole_mask, (list, tuple)) else [hole_mask] * len(image)
            if len(masks) != len(image):
                raise ValueError(f"{len(image)} images but {len(masks)} hole masks")
            items = [self._item(img, self._hole_array(m), grow) for img, m in zip(image, masks)]
            return [item.finish(out) for item, out in zip(items, self._fill_items(items))]
        if is_tensor(image) and image.dim() == 4:
            import torch

            holes = self._hole_array(hole_mask)
            holes = holes if holes.ndim == 3 else np.broadcast_to(holes, (image.shape[0], *holes.shape))
            if holes.shape[0] != image.shape[0]:
                raise ValueError(f"{image.shape[0]} images but {holes.shape[0]} hole masks")
            items = [self._item(img, hole, grow) for img, hole in zip(image, holes)]
            return torch.stack([item.finish(out) for item, out in zip(items, self._fill_items(items))])
        item = self._item(image, self._hole_array(hole_mask), grow)
        return item.finish(self._fill_items([item])[0])

    @staticmethod
    def _item(image: Any, hole: np.ndarray, grow: int) -> Item:
        """``to_item`` with the hole dilated by ``grow`` pixels; ``NoKnownPixelError`` if no known pixel is left."""
        item = to_item(image, hole)
        if item.hole.size and item.hole.all():
            raise NoKnownPixelError(
                "the mask covers the whole image, so no known pixel is left to fill from; if black marks the hole "
                'in this mask, pass --mask-polarity black-hole (mask_polarity="black-hole" in Python)'
            )
        item.hole = dilate_hole(item.hole, grow)
        if item.hole.size and item.hole.all():
            raise NoKnownPixelError(
                f"dilating the hole by {grow} pixels leaves no known pixel to fill from; pass a smaller --dilate "
                "(dilate= in Python)"
            )
        return item

    def _hole_array(self, hole_mask: Any) -> np.ndarray:
        """Any supported mask -> (H, W) or (N, H, W) uint8 in {0, 1}, 1 = hole, with the polarity applied."""
        white = white_array(hole_mask, self.threshold)
        if self.mask_polarity == "white-hole":
            return white
        return valid_to_hole(white)  # black-hole: the white pixels are the known ones

    def _fill_items(self, items: list[Item]) -> list[np.ndarray]:
        """Filled (3, H, W) float32 images: the fill at every hole pixel; the rest is not read (``Item.finish``
        takes the known pixels from the input), and is 0 where nothing was computed."""
        outs: list[np.ndarray | None] = [None if item.hole.any() else _nothing(item) for item in items]
        small = [i for i, item in enumerate(items) if outs[i] is None and max(item.size) <= self.max_side]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i in small:
            by_size.setdefault(items[i].size, []).append(i)
        for group in by_size.values():
            for k in range(0, len(group), self.batch_size):
                chunk = group[k : k + self.batch_size]
                images = np.stack([items[i].rgb for i in chunk])  # (n, 3, H, W)
                holes = np.stack([items[i].hole for i in chunk]).astype(np.float32)  # (n, 1, H, W)
                filled = self._fill(images, holes)
                for i, out in zip(chunk, filled):
                    outs[i] = out
        for i, item in enumerate(items):
            if outs[i] is None:
                outs[i] = self._fill_large(item)
        return outs  # type: ignore[return-value]

    def _fill_large(self, item: Item) -> np.ndarray:
        """An image longer than ``max_side``, window by window -> (3, H, W) float32, each window's fill at its hole
        pixels and 0 elsewhere: only the windows are converted from the image and written (the untouched pages of
        the zeros cost no memory)."""
        height, width = item.size
        out = np.zeros((1, 3, height, width), np.float32)
        windows = plan_windows(item.hole[0] > 0, margin=self.margin, min_side=self.max_side // 2)
        log.info("image %dx%d: filling %d window(s)", width, height, len(windows))
        for win in windows:
            rows, cols = slice(win.top, win.bottom), slice(win.left, win.right)
            crop_hole = item.hole[None, :, rows, cols].astype(np.float32)
            filled = self._fill(item.crop(rows, cols)[None], crop_hole)
            np.copyto(out[:, :, rows, cols], filled, where=crop_hole > 0)  # its hole pixels only
        return out[0]

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
    """``pconv.structure.finish_fill`` (the smooth blend, then the structure continued) on numpy arrays, through
    torch on the CPU: (N, 3, H, W) float32 in and out.

    Without torch (the light install running an ONNX network graph, not a fill graph) the prediction is kept, with
    a warning: the shipped fill graph blends inside.
    """
    try:
        import torch
    except ImportError:
        log.warning("the smooth blend needs torch or a fill graph (pconv export-onnx); using the network's fill alone")
        return pred

    from pconv.structure import finish_fill

    with torch.inference_mode():
        tensors = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (pred, image, valid_mask))
        return finish_fill(*tensors).numpy()


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
    # only the hole pixels are kept (_fill_holes), so the network predicts only what they need
    return TorchNetwork(_load_model(path), device=device, fast=fast, threads=threads, holes_only=True)


def _load_model(weights: Path) -> PConvUNet:
    from pconv.model import WeightsError, load_weights

    try:
        return load_weights(weights)
    except WeightsError:
        raise
    except ValueError as exc:  # e.g. metadata that is not JSON: say which file is at fault
        raise WeightsError(f"{weights} holds an unreadable pconv model config ({exc})") from None
