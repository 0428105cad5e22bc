"""The whole fill as one module: uint8 image and hole mask in, filled uint8 image out (arXiv 1804.07723).

``FillGraph`` wraps a ``PConvUNet`` with everything between a photo's bytes and the network that a graph does well,
so that ``pconv export-onnx`` writes it as **one ONNX graph** every runtime runs the same way (ONNX Runtime in
Python, ONNX Runtime Web in the browser, any other ONNX runtime):

- the mask polarity: ``hole_mask`` is white = hole (grey > 127 is hole, ``pconv.masks.HOLE_THRESHOLD``), flipped
  once, here, into the paper's ``valid_mask`` (1 = known);
- the scaling of 0..255 to [0, 1];
- the test-time flip and one-pixel shift averages (``pconv.inference.flip_averaged`` and ``shift_averaged``: the
  same arithmetic, so the same floats), chosen per call by the scalar inputs ``flip`` and ``shift``. The variants
  run in two network calls (as is with mirrored, moved with moved-and-mirrored); a variant that is off joins its
  call as an empty batch, so it costs nothing;
- the smooth blend (``pconv.smooth``, beyond the paper): where the known pixels around the hole hold no detail, the
  fill is a smooth fill exact on constant colours and linear ramps, and near the hole's edge smooth surroundings
  are continued into it (``pconv.smooth.continue_edge``); then edges, lines and stripes of the known pixels are
  carried straight through the hole (``pconv.structure``); both chosen per call by the scalar input ``smooth``;
- clamping, rounding half to even (numpy's ``rint``, ONNX ``Round``) and putting the known pixels back: every known
  pixel of the output is the input's byte.

What stays outside (``pconv.inference``): windows and resizing for large photos, dilation, mask reading and
thresholds other than 127, file handling.

Inputs and outputs (names as in the ONNX graph):
- ``image``: (N, H, W, 3) uint8 RGB, any H and W (the network pads to its multiple internally);
- ``hole_mask``: (N, H, W) uint8, > 127 = hole (white = hole, as everywhere in pconv);
- ``flip``, ``shift``, ``smooth``: () float32, 1 = on, 0 = off (the ONNX file gives each the default 1);
- ``filled``: (N, H, W, 3) uint8 RGB.

The same fill also exports as two graphs run in turn (``FillPart``, ``PARTS``): ``passes`` (the network's passes
and their average: ``prediction``, (N, 3, H, W) float32; its four variants in one network call, ``one_call``) and
``finish`` (the rest). Their output is the whole graph's, byte for byte; the docs' Try it page runs them, since
ONNX Runtime Web sets up two smaller sessions in well under the time of one (docs/browser.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv.model import PConvUNet
from pconv.structure import finish_fill

__all__ = ["FILL_INPUTS", "FILL_OUTPUTS", "PARTS", "FillGraph", "FillPart"]

FILL_INPUTS = ("image", "hole_mask", "flip", "shift", "smooth")
FILL_OUTPUTS = ("filled",)
# The fill in two graphs (``FillPart``): part -> (input names, output names); ``finish(passes(...))`` is the fill.
PARTS = {
    "passes": (("image", "hole_mask", "flip", "shift"), ("prediction",)),
    "finish": (("prediction", "image", "hole_mask", "smooth"), FILL_OUTPUTS),
}
_HOLE_ABOVE = 127.0  # pconv.masks.HOLE_THRESHOLD: grey above it is hole


class FillGraph(nn.Module):
    """uint8 RGB + hole mask -> filled uint8 RGB, with the flip and shift averages inside (module docstring).

    Args:
        network: the U-Net; used as given (pass ``fuse_for_inference(model)`` for a faster graph).
        one_call: run the four variants as one batch of up to 4N through the network instead of two of up to 2N:
            the same floats, one copy of the network's nodes in an exported graph instead of two (ONNX Runtime Web
            sets the passes up in about a third of the time: the page's ``passes`` graph), at about 1.6 times the
            peak memory (a 1024² photo's passes 354 -> 576 MiB in ONNX Runtime), so the whole graph keeps two.
    """

    def __init__(self, network: PConvUNet, *, one_call: bool = False) -> None:
        super().__init__()
        self.network, self.one_call = network, one_call

    def forward(self, image: Tensor, hole_mask: Tensor, flip: Tensor, shift: Tensor, smooth: Tensor) -> Tensor:
        """Fill the hole pixels of ``image``: ``finish(passes(...))``.

        Args:
            image: (N, H, W, 3) uint8 RGB.
            hole_mask: (N, H, W) uint8, > 127 = hole.
            flip: () float, 1 = average with the mirrored image's fill, 0 = not.
            shift: () float, 1 = average with the fill of the image moved one pixel down and right, 0 = not.
            smooth: () float, 1 = the smooth blend and the structure continuation (``pconv.structure.finish_fill``),
                0 = the network's fill alone.
        Returns:
            (N, H, W, 3) uint8: the network's fill in the hole, the input's bytes elsewhere.
        """
        return self.finish(self.passes(image, hole_mask, flip, shift), image, hole_mask, smooth)

    def passes(self, image: Tensor, hole_mask: Tensor, flip: Tensor, shift: Tensor) -> Tensor:
        """The network's passes and their flip and shift average: (N, 3, H, W) float, the averaged prediction
        (arguments as ``forward``)."""
        n, h, w = hole_mask.shape
        pixels, hole = _planes(image, hole_mask)
        x, valid_mask = pixels / 255, (~hole).float()  # the one polarity flip on this path: 1 = known
        # The four variants: as is, mirrored, moved, moved and mirrored, in two network calls: (as is + mirrored) and
        # (moved + moved mirrored), or in one (``one_call``). A variant that is off joins its call as an empty batch,
        # so it costs nothing; two calls keep peak memory at two passes', one keeps the graph small (each call is a
        # copy of the network's nodes).
        moved, moved_mask = _moved_down_right(x), _moved_down_right(valid_mask)
        take_flip = torch.nonzero((flip > 0.5).expand(n)).flatten()  # (N,) all images, or (0,) none
        take_shift = torch.nonzero((shift > 0.5).expand(n)).flatten()
        take_both = torch.nonzero((flip * shift > 0.5).expand(n)).flatten()
        images = [x, x.flip(-1).index_select(0, take_flip)]
        images += [moved.index_select(0, take_shift), moved.flip(-1).index_select(0, take_both)]
        masks = [valid_mask, valid_mask.flip(-1).index_select(0, take_flip)]
        masks += [moved_mask.index_select(0, take_shift), moved_mask.flip(-1).index_select(0, take_both)]
        zeros = torch.zeros_like(x)
        # preds: (N, 3, H, W) each, zeros for a variant that did not run (weighted 0 below)
        if self.one_call:
            out = self.network(torch.cat(images), torch.cat(masks), holes_only=True)[0]  # (N to 4N, 3, H, W)
            preds = []
            for variant in images:  # each variant's rows in turn
                size = variant.shape[0]
                preds.append(torch.cat([out[:size], zeros])[:n])
                out = out[size:]
        else:
            first = self.network(torch.cat(images[:2]), torch.cat(masks[:2]), holes_only=True)[0]  # (N or 2N, 3, H, W)
            second = self.network(torch.cat(images[2:]), torch.cat(masks[2:]), holes_only=True)[0]  # (0, N or 2N, ...)
            preds = [first[:n], torch.cat([first[n:], zeros])[:n]]
            preds += [torch.cat([second, zeros])[:n], torch.cat([second[n:], zeros])[:n]]
        half_flip = 0.5 * flip
        # flip_averaged: (a + b) / 2, written as a * 0.5 + b * 0.5, which is the same float (halving is exact).
        plain = preds[0] * (1 - half_flip) + preds[1].flip(-1) * half_flip
        shifted = preds[2] * (1 - half_flip) + preds[3].flip(-1) * half_flip
        shifted = F.pad(shifted[..., 1:, 1:], (0, 1, 0, 1))  # moved back; the last row and column are not used
        # shift_averaged: the last row and column take the unmoved prediction alone.
        inner = F.pad(torch.ones_like(x[:1, :1, 1:, 1:]), (0, 1, 0, 1))  # (1, 1, H, W), 0 on the last row/column
        half_shift = 0.5 * shift * inner
        return plain * (1 - half_shift) + shifted * half_shift

    def finish(self, prediction: Tensor, image: Tensor, hole_mask: Tensor, smooth: Tensor) -> Tensor:
        """Everything after the passes: the smooth blend, the structure continuation, rounding and the known pixels
        put back. ``prediction`` (N, 3, H, W) float from ``passes``; the rest as ``forward``. Returns (N, H, W, 3)
        uint8."""
        pixels, hole = _planes(image, hole_mask)
        pred = finish_fill(prediction, pixels / 255, (~hole).float(), smooth=smooth)
        levels = torch.round(pred.clamp(0, 1) * 255)  # half to even, as numpy's rint
        filled = torch.where(hole, levels, pixels)
        return filled.to(torch.uint8).permute(0, 2, 3, 1)


class FillPart(nn.Module):
    """One of ``FillGraph``'s two parts as a module of its own, to export as a graph of its own (``PARTS``): the
    page runs the fill as two ONNX Runtime Web sessions, which set up in about half the time of one (docs/browser.md).

    Args:
        fill: the whole fill.
        part: ``"passes"`` or ``"finish"``.
    """

    def __init__(self, fill: FillGraph, part: str) -> None:
        super().__init__()
        if part not in PARTS:
            raise ValueError(f"part must be one of {tuple(PARTS)}, got {part!r}")
        self.fill, self.part = fill, part

    def forward(self, *inputs: Tensor) -> Tensor:
        """The part's inputs (``PARTS[part][0]``, in that order) -> its one output."""
        return getattr(self.fill, self.part)(*inputs)


def _planes(image: Tensor, hole_mask: Tensor) -> tuple[Tensor, Tensor]:
    """(N, H, W, 3) uint8 and (N, H, W) uint8 -> pixels (N, 3, H, W) float in 0..255 and hole (N, 1, H, W) bool,
    True = hole (grey above ``_HOLE_ABOVE``)."""
    pixels = image.permute(0, 3, 1, 2).float().contiguous()
    return pixels, (hole_mask.float() > _HOLE_ABOVE).unsqueeze(1)


def _moved_down_right(x: Tensor) -> Tensor:
    """(N, C, H, W) moved one pixel down and right, the first row and column repeated (any H, W >= 1)."""
    x = torch.cat([x[..., :1, :], x[..., :-1, :]], dim=-2)
    return torch.cat([x[..., :1], x[..., :-1]], dim=-1)
