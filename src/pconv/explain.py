"""The mask update made visible: the hole after each encoder layer of ``PConvUNet`` (arXiv 1804.07723, eq. 2).

Each partial convolution marks an output location valid as soon as its window holds one known pixel, so the hole
shrinks by about the kernel's reach at every layer and is gone after a few layers for any hole that is not huge.
``encoder_hole_masks`` records the masks the network really computes (forward hooks on the encoder), and
``render_explanation`` draws them, each upscaled to the image's size with nearest neighbour, beside the input
and the result.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from pconv.masks import hole_to_valid, valid_to_hole
from pconv.model import PConvUNet, composite

__all__ = ["encoder_hole_masks", "render_explanation"]

_PANEL = 256  # longer side of each panel, pixels
_LABEL = 16  # height of the label strip above each panel
_COLUMNS = 4


def encoder_hole_masks(model: PConvUNet, image: Tensor, hole_mask: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Run the network once; return its filled image and the hole after each encoder layer.

    Args:
        image: (1, 3, H, W) in [0, 1].
        hole_mask: (1, 1, H, W) in {0, 1}, 1 = hole.
    Returns:
        filled: (1, 3, H, W) in [0, 1], known pixels from ``image``.
        holes: ``depth`` tensors (1, 1, H, W) in {0, 1}, 1 = hole, the mask after encoder layer 1, 2, ...
            upscaled with nearest neighbour to the (padded) input size and cropped to H x W.
    """
    h, w = image.shape[2:]
    m = model.config.multiple
    padded = (h + (-h) % m, w + (-w) % m)
    masks: list[Tensor] = []
    hooks = [block.register_forward_hook(lambda _mod, _inp, out: masks.append(out[1])) for block in model.encoder]
    valid_mask = hole_to_valid(hole_mask)
    try:
        with torch.inference_mode():
            pred, _ = model(image, valid_mask)
    finally:
        for hook in hooks:
            hook.remove()
    filled = composite(image, pred.clamp(0, 1), valid_mask)
    holes = [valid_to_hole(F.interpolate(mask, size=padded, mode="nearest")[:, :, :h, :w]) for mask in masks]
    return filled, holes


def render_explanation(image: Tensor, hole_mask: Tensor, holes: list[Tensor], filled: Tensor) -> Image.Image:
    """A labelled grid: the input with its hole in white, the hole fed in, the hole after each layer, the result.

    Args:
        image: (1, 3, H, W) in [0, 1].
        filled: (1, 3, H, W) in [0, 1].
        hole_mask: (1, 1, H, W) in {0, 1}, 1 = hole.
        holes: the per-layer holes from ``encoder_hole_masks``.
    Returns:
        An RGB picture.
    """
    shown = composite(image, torch.ones_like(image), hole_to_valid(hole_mask))  # hole painted white
    panels = [("input (hole in white)", shown), (f"hole fed in: {_percent(hole_mask)}", hole_mask)]
    panels += [(f"after layer {i} (1/{2**i}): {_percent(hole)}", hole) for i, hole in enumerate(holes, 1)]
    panels.append(("result", filled))
    return _grid([(label, _to_pil(t)) for label, t in panels])


def _percent(hole: Tensor) -> str:
    return f"{100 * float(hole.mean()):.1f}% hole"


def _to_pil(t: Tensor) -> Image.Image:
    """(1, C, H, W) in [0, 1], C = 1 or 3 -> RGB image with the longer side ``_PANEL`` (nearest, masks stay sharp)."""
    arr = (t[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr, "RGB")
    scale = _PANEL / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.NEAREST)


def _grid(panels: list[tuple[str, Image.Image]]) -> Image.Image:
    cell_w = max(p.width for _, p in panels) + 8
    cell_h = max(p.height for _, p in panels) + _LABEL + 8
    cols = min(_COLUMNS, len(panels))
    rows = -(-len(panels) // cols)
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for k, (label, panel) in enumerate(panels):
        x, y = (k % cols) * cell_w + 4, (k // cols) * cell_h + 4
        draw.text((x, y + 2), label, fill=(255, 255, 255))
        sheet.paste(panel, (x, y + _LABEL))
    return sheet
