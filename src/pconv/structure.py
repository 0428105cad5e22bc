"""Straight structures carried through the hole: edges, lines and stripes continued along their direction (beyond
the paper, arXiv 1804.07723; off with ``smooth=0`` in the fill graph, ``Inpainter(smooth=False)``).

A learned fill blurs a line that crosses a hole, and diffusion (Navier-Stokes, Telea) bends it; but where the
known pixels around a hole are oriented (one direction dominates their gradients), the structure most likely runs
straight on. So each hole pixel looks along that direction, both ways, for the first known pixels, and takes the
mean of the two, weighted by nearness (linear interpolation along the ray)::

    out = (1 - gate) * prediction + gate * (t_b * I(p + t_a u) + t_a * I(p - t_b u)) / (t_a + t_b)

- ``u`` is the isophote direction (across the gradient) of the **structure tensor** of the known pixels (the sum
  over the channels of the outer products of their gradients, the gradients of 3x3 means where every pixel read is
  known, averaged over ``TENSOR_WINDOW`` px), spread into the hole by pull-push (``pconv.smooth.pull_push``);
  ``coherence = (l1 - l2) / (l1 + l2)`` of its eigenvalues says how much one direction dominates.
- ``t_a``, ``t_b``: the first steps of one pixel along ``+u`` and ``-u`` whose 2x2 neighbourhood is all known, up
  to ``RAY_STEPS``; the values there are read bilinearly (from known pixels only).
- ``gate`` is 1 where the surroundings are coherent (from ``COHERENCE_LOW`` to ``COHERENCE_HIGH``), oriented
  strongly enough (gradient energy from ``ENERGY_LOW`` to ``ENERGY_HIGH`` levels per pixel) and the two ends agree
  (0 from ``AGREE_HIGH`` levels apart: the rays then cross different structures); 0 elsewhere, where the
  prediction stays as it is. Where only one ray ends on known pixels (the other leaves the image or runs out of
  steps, as in large holes) that end's value is taken, with the weight ``ONE_SIDED`` falling by 1/e every
  ``ONE_SIDED_REACH`` px from it. Flat colours and linear ramps are unchanged (both ends of a ray along a ramp's
  isophote hold the same value).

Only the hole pixels are looked at (their indices gathered once), so the cost follows the hole's size. Every
operation traces into ONNX with dynamic sizes (``pconv.fill_graph``). Images are (N, C, H, W) in [0, 1];
``valid_mask`` is (N, 1, H, W) in {0, 1}, 1 = known pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pconv.smooth import blend_spreading, hole_box, pull_push

__all__ = [
    "AGREE_HIGH",
    "AGREE_LOW",
    "COHERENCE_HIGH",
    "COHERENCE_LOW",
    "ENERGY_HIGH",
    "ENERGY_LOW",
    "ONE_SIDED",
    "ONE_SIDED_REACH",
    "RAY_STEPS",
    "TENSOR_WINDOW",
    "continue_structure",
    "finish_fill",
    "orientation",
    "structure_tensor",
]

TENSOR_WINDOW = 9  # px, the window the structure tensor is averaged over
RAY_STEPS = 48  # px: how far each ray looks for known pixels
RAY_CHUNK = 16  # steps looked at together (memory: hole pixels x RAY_CHUNK per tensor)
COHERENCE_LOW = 0.4  # coherence at and below which the structure is not continued
COHERENCE_HIGH = 0.7  # ... at and above which it is continued fully
ENERGY_LOW = 1.0  # levels per pixel: gradients this weak or weaker are not a structure
ENERGY_HIGH = 3.0
AGREE_LOW = 40.0  # levels: ray ends closer than this are trusted fully
AGREE_HIGH = 120.0  # ... this far apart or more not at all
ONE_SIDED = 1.0  # the weight of a ray's end where the other way finds no known pixel
ONE_SIDED_REACH = 24.0  # px: ... falling by 1/e every ONE_SIDED_REACH px from the hole's edge
# (all chosen on every 4th validation photo, 324 cases: docs/model_history.md, version 10)
_EPS = 1e-6
_RAY_PAD = RAY_STEPS + 2  # px of zeros around the known-corner map: a ray's step (|u| <= 1, a float's width more)


def structure_tensor(image: Tensor, valid_mask: Tensor, *, window: int = TENSOR_WINDOW) -> tuple[Tensor, Tensor]:
    """The structure tensor of the known pixels, where it can be measured, before it is spread into the hole.

    Args:
        image: (N, C, H, W) in [0, 1]; values under the hole are never read.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known.
    Returns:
        ``(tensor, seen)``: tensor (N, 3, H, W), ``Jxx, Jxy, Jyy`` in levels² (the gradients of the 3x3 means where
        every pixel they read is known, summed over the channels, averaged over ``window`` px); seen (N, 1, H, W),
        1 where more than a fifth of the window was measured (0 elsewhere).
    """
    known = image * valid_mask * 255
    count = F.avg_pool2d(valid_mask, 3, stride=1, padding=1, count_include_pad=False)
    means = F.avg_pool2d(known, 3, stride=1, padding=1, count_include_pad=False) / count.clamp(min=_EPS)
    # the central differences of the 3x3 means read a 5x5 window: counted only where all of it is known
    whole = (F.avg_pool2d(F.pad(valid_mask, (2, 2, 2, 2)), 5, stride=1) > 1 - 1e-3).to(image.dtype)
    padded = F.pad(means, (1, 1, 1, 1), mode="replicate")
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    tensor = torch.cat([(gx * gx).sum(1, True), (gx * gy).sum(1, True), (gy * gy).sum(1, True)], 1) * whole
    pad = window // 2
    box = F.avg_pool2d(tensor, window, stride=1, padding=pad)
    mass = F.avg_pool2d(whole, window, stride=1, padding=pad)
    seen = (mass > 0.2).to(image.dtype)
    return box / mass.clamp(min=_EPS) * seen, seen


def orientation(spread: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The dominant direction of a structure tensor (``structure_tensor``, spread into the hole by pull-push).

    Args:
        spread: (N, 3, H, W), ``Jxx, Jxy, Jyy``; or (P, 3), at P pixels (``continue_structure``: the hole's).
    Returns:
        ``(direction, coherence, energy)``: direction (N, 2, H, W), the unit isophote vector (x, y) (along the
        structure, across its gradient); coherence (N, 1, H, W) in [0, 1], ``(l1 - l2) / (l1 + l2)``; energy
        (N, 1, H, W), the root of the trace, in 8-bit levels per pixel (with (P, 3): (P, 2), (P, 1), (P, 1)).
    """
    jxx, jxy, jyy = spread[:, :1], spread[:, 1:2], spread[:, 2:]
    root = ((jxx - jyy) ** 2 + 4 * jxy * jxy).sqrt()
    trace = jxx + jyy
    cos2 = (jxx - jyy) / root.clamp(min=_EPS)  # the gradient's doubled angle; the isophote is at a right angle
    cos_g = ((1 + cos2) / 2).clamp(min=0).sqrt()
    sin_g = ((1 - cos2) / 2).clamp(min=0).sqrt() * torch.where(jxy < 0, -1.0, 1.0)
    direction = torch.cat([-sin_g, cos_g], 1)
    return direction, root / trace.clamp(min=_EPS), trace.clamp(min=0).sqrt()


def continue_structure(
    prediction: Tensor,
    image: Tensor,
    valid_mask: Tensor,
    *,
    strength: Tensor | float = 1.0,
    spread: Tensor | None = None,
) -> Tensor:
    """Continue oriented structure of the known pixels straight through the hole (module docstring).

    Args:
        prediction: (N, C, H, W), the fill so far.
        image: (N, C, H, W) in [0, 1]; values under the hole are never read.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known.
        strength: 1 = continue, 0 = return ``prediction`` unchanged (a float, or a () tensor in a traced graph).
        spread: (N, 3, H, W), the structure tensor spread into the hole, if the caller has it (``finish_fill``
            spreads it with the smooth blend's pull-push); None computes it here.
    Returns:
        (N, C, H, W): ``prediction`` with the continued structure blended in where the gate opens.
    """
    n, c, h, w = image.shape
    if spread is None:
        tensor, seen = structure_tensor(image, valid_mask)
        spread = pull_push(tensor, seen, box=hole_box(valid_mask, 0))  # read at the hole pixels only
    # Per hole pixel, as flat indices into (N * H * W): the rays are traced only there.
    hole = torch.nonzero(valid_mask.reshape(-1) < 0.5).flatten()  # (P,)
    plane = h * w
    which = torch.div(hole, plane, rounding_mode="floor")  # (P,) the pixel's image in the batch
    base = which * plane
    inner = hole - base  # (P,) y * W + x
    direction, coherence, energy = orientation(_at(spread, base, inner))  # (P, 2), (P, 1), (P, 1): at the holes only
    gate = _ramp(coherence, COHERENCE_LOW, COHERENCE_HIGH) * _ramp(energy, ENERGY_LOW, ENERGY_HIGH)
    y = torch.div(inner, w, rounding_mode="floor").to(image.dtype)
    x = (inner - y.long() * w).to(image.dtype)
    # 1 where the 2x2 neighbourhood whose top-left pixel this is lies inside the image and is all known; padded with
    # zeros by more than a ray's length, so a step outside the image reads 0 without a test
    inside = F.pad(valid_mask[..., 1:, 1:] * valid_mask[..., :-1, 1:] * valid_mask[..., 1:, :-1], (0, 1, 0, 1))
    corner_known = F.pad(inside * valid_mask, (_RAY_PAD,) * 4).reshape(-1)  # (N * (H + 2R) * (W + 2R),)
    wide = w + 2 * _RAY_PAD
    origin = which * ((h + 2 * _RAY_PAD) * wide) + _RAY_PAD * (wide + 1)
    colours = (image * valid_mask).permute(0, 2, 3, 1).reshape(-1, c)  # (N*H*W, C)
    # Both ways at once: the rays along +u, then those along -u, as one batch of 2P (half the graph's nodes).
    x2, y2, origin2, base2 = (torch.cat([t, t]) for t in (x, y, origin, base))  # (2P,) each
    ux, uy = (torch.cat([u, u * -1.0]) for u in (direction[:, :1], direction[:, 1:]))  # (2P, 1) each
    t, found = _first_known(corner_known, origin2, wide, x2, y2, ux, uy)  # (2P, 1) each
    ends = _bilinear(colours, base2, x2 + t[:, 0] * ux[:, 0], y2 + t[:, 0] * uy[:, 0], w, h)  # (2P, C)
    count = hole.shape[0]  # P (dynamic in a traced graph: slices, not split)
    (ta, tb), (found_a, found_b), (va, vb) = ((u[:count], u[count:]) for u in (t, found, ends))
    both = (found_a & found_b).to(image.dtype)  # (P, 1)
    # both ends known: the interpolation along the ray; one only (the other ray left the image or ran out of steps):
    # that end's value, with the weight ONE_SIDED
    along = torch.where(found_a & found_b, (tb * va + ta * vb) / (ta + tb), torch.where(found_a, va, vb))  # (P, C)
    agree = 1 - _ramp((va - vb).abs().amax(dim=1, keepdim=True) * 255, AGREE_LOW, AGREE_HIGH) * both
    one_side = torch.exp((1 - torch.where(found_a, ta, tb)) / ONE_SIDED_REACH)  # falls with the distance to it
    reached = both + ONE_SIDED * one_side * (found_a | found_b).to(image.dtype) * (1 - both)
    weight = strength * gate * agree * reached  # (P, 1)
    at = _flat_index(base, inner, c, plane)  # (P, C) into prediction.reshape(-1)
    mixed = prediction.reshape(-1)[at] * (1 - weight) + along * weight
    return prediction.reshape(-1).index_put((at.reshape(-1),), mixed.reshape(-1)).reshape(n, c, h, w)


def _flat_index(base: Tensor, inner: Tensor, channels: int, plane: int) -> Tensor:
    """(P, K): the flat indices into an (N, K, H, W) tensor of the pixels ``base + inner`` of an (N, H, W) one
    (``base`` the image's first pixel, ``inner`` y * W + x; both (P,)), one per channel."""
    offsets = torch.arange(channels, device=base.device) * plane  # (K,)
    return (base * channels + inner)[:, None] + offsets


def _at(t: Tensor, base: Tensor, inner: Tensor) -> Tensor:
    """(P, K): the values of ``t`` (N, K, H, W) at the pixels ``base + inner`` (as ``_flat_index``)."""
    return t.reshape(-1)[_flat_index(base, inner, int(t.shape[1]), t.shape[-2] * t.shape[-1])]  # C: a constant


def _first_known(
    corner_known: Tensor, origin: Tensor, wide: int, x: Tensor, y: Tensor, ux: Tensor, uy: Tensor
) -> tuple[Tensor, Tensor]:
    """The first step t in 1..RAY_STEPS from (x, y) along (ux, uy) whose 2x2 neighbourhood is known.

    ``RAY_CHUNK`` steps at a time, so memory stays at (P, RAY_CHUNK) per tensor however long the rays.

    Args:
        corner_known: (N * (H + 2R) * (W + 2R),) 1 where the 2x2 neighbourhood with that top-left pixel is inside
            and known, each image padded with ``_RAY_PAD`` (R) zeros on every side.
        origin: (P,) the flat index in ``corner_known`` of pixel (0, 0) of each hole pixel's image; ``wide`` the
            padded width, W + 2R.
        x, y: (P,) each pixel's position; ux, uy: (P, 1) the direction.
    Returns:
        ``(t, found)``, both (P, 1): the step (as a float; ``RAY_STEPS + 1`` where none is) and whether one is.
    """
    t = torch.full_like(ux, float(RAY_STEPS + 1))
    found = torch.zeros_like(ux, dtype=torch.bool)
    for start in range(0, RAY_STEPS, RAY_CHUNK):
        steps = torch.arange(start + 1, min(start + RAY_CHUNK, RAY_STEPS) + 1, dtype=x.dtype, device=x.device)
        qx, qy = x[:, None] + steps * ux, y[:, None] + steps * uy  # (P, S)
        at = origin[:, None] + qy.floor().long() * wide + qx.floor().long()  # (P, S), in the padding outside
        hit = corner_known[at] > 0.5
        first = hit.to(x.dtype).argmax(dim=1, keepdim=True) + (start + 1)  # (P, 1): this chunk's first hit
        new = hit.any(dim=1, keepdim=True) & ~found
        t = torch.where(new, first.to(x.dtype), t)
        found = found | new
    return t, found


def _bilinear(colours: Tensor, base: Tensor, x: Tensor, y: Tensor, w: int, h: int) -> Tensor:
    """(P, C): ``colours`` ((N*H*W, C)) read bilinearly at (x, y) of image ``base // (H*W)``; x, y (P,)."""
    x0, y0 = x.floor().clamp(0, w - 2), y.floor().clamp(0, h - 2)
    fx, fy = (x - x0).clamp(0, 1)[:, None], (y - y0).clamp(0, 1)[:, None]
    at = base + y0.long() * w + x0.long()
    return (
        colours[at] * (1 - fx) * (1 - fy)
        + colours[at + 1] * fx * (1 - fy)
        + colours[at + w] * (1 - fx) * fy
        + colours[at + w + 1] * fx * fy
    )


def _ramp(x: Tensor, low: float, high: float) -> Tensor:
    """0 at and below ``low``, 1 at and above ``high``, linear between."""
    return ((x - low) / (high - low)).clamp(0, 1)


def finish_fill(prediction: Tensor, image: Tensor, valid_mask: Tensor, *, smooth: Tensor | float = 1.0) -> Tensor:
    """Everything after the network, beyond the paper: the smooth blend (``pconv.smooth.blend``), then the
    structure continued through the hole (``continue_structure``); ``smooth=0`` returns ``prediction`` unchanged.

    Args:
        prediction: (N, C, H, W), the network's (averaged) prediction.
        image: (N, C, H, W) in [0, 1]; values under the hole are never read.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known.
        smooth: 1 = on, 0 = off (a float, or a () tensor in a traced graph).
    Returns:
        (N, C, H, W).
    """
    tensor, seen = structure_tensor(image, valid_mask)
    blended, spread = blend_spreading(prediction, image, valid_mask, tensor, seen.expand(-1, 3, -1, -1), smooth=smooth)
    return continue_structure(blended, image, valid_mask, strength=smooth, spread=spread)
