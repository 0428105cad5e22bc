"""Smooth content, exact: a smooth fill, and a gate that hands the hole to it where the known pixels around hold no
detail (beyond the paper, arXiv 1804.07723; off with ``smooth=0`` in the fill graph, ``Inpainter(smooth=False)``).

A learned fill does not reproduce smooth images exactly: on a constant colour or a linear ramp the network's fill
is off by levels to tens of levels, where classical fills (Navier-Stokes, Telea) are exact or nearly. Here the
final fill is::

    out = gate * prediction + (1 - gate) * smooth_fill

- ``smooth_fill`` is a plane fitted to the known pixels (per image and channel, least squares) plus the known
  pixels' residual from that plane spread into the hole by pull-push (a pyramid of mask-weighted averages, read back
  coarse to fine with bilinear upsampling, relaxed toward the mean of the four neighbours at every level). A constant
  image comes back exactly (every average of one value is that value), and a linear ramp too, wherever the hole
  is, the image border included (the plane is the ramp; the residual is only the 8-bit rounding).
- ``gate`` (N, 1, H, W) in [0, 1] measures detail: the absolute discrete Laplacian of the 3x3 means of the known
  pixels (where all the pixels it reads are known, in 8-bit levels, largest over the channels), averaged over 5x5
  windows and spread into the hole by the same pull-push,
  mapped linearly from 0 at ``GATE_LOW`` levels to 1 at ``GATE_HIGH``. Constants and 8-bit ramps have a Laplacian
  of at most about one level, so their gate is exactly 0 and the fill exactly the smooth one; texture gives 1, the
  network's fill unchanged.
- After the gate, ``continue_edge`` draws the fill's first pixels inside the hole toward a local
  continuation of the known pixels where those are smooth (standard deviation under a few levels): photos of sky,
  walls and water are rarely smooth enough for the gate, and there the network's first pixels showed as an outline.
  It reads only the pixels within ``EDGE_MARGIN`` px of the hole, so it runs on the hole's bounding box
  (``hole_box``, ``crop``, ``paste``): the same floats, a fraction of the work for a brush stroke.

Every function works on torch tensors of any size and traces into ONNX (``pconv.fill_graph``) with dynamic sizes.
Images are (N, C, H, W) in [0, 1]; ``valid_mask`` is (N, 1, H, W) in {0, 1}, 1 = known pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "EDGE_AGREE",
    "EDGE_MARGIN",
    "EDGE_REACH",
    "EDGE_STEPS",
    "GATE_HIGH",
    "GATE_LOW",
    "LEVELS",
    "STD_HIGH",
    "STD_LOW",
    "blend",
    "blend_spreading",
    "continue_edge",
    "crop",
    "detail_gate",
    "grow",
    "hole_box",
    "local_detail",
    "local_std",
    "paste",
    "plane_fit",
    "pull_push",
    "smooth_fill",
]

GATE_LOW = 0.4  # mean |Laplacian| (8-bit levels) at and below which the smooth fill is used alone
# (0.4 and 0.6 chosen on the first 16 val photos, one pass, among 0.4-0.6, 0.45-0.9, 0.4-1.2, 0.75-2.5)
GATE_HIGH = 0.6  # ... at and above which the network's fill is used alone
# The edge continuation (``continue_edge``), chosen on the 168 fault cases of the validation split (every 8th photo):
EDGE_KERNEL = 5  # px, the window each ring's value is averaged over: rings are 2 px wide
EDGE_STEPS = 16  # rings (32 px) into the hole that the continuation reaches
EDGE_REACH = 8.0  # rings (16 px): its weight falls by 1/e every EDGE_REACH rings from the hole's edge
STD_WINDOW = 7  # px, the window of the known pixels' standard deviation
STD_LOW = 2.0  # levels: known surroundings with a standard deviation at or below this are continued fully
STD_HIGH = 5.0  # ... at or above this not at all
EDGE_AGREE = 70.0  # levels: where the network's fill and the continuation differ by this much, the network's stays
EDGE_MARGIN = EDGE_KERNEL // 2 + STD_WINDOW // 2  # px around the hole that the continuation reads (``hole_box``)
# (swept: reach 4-12 rings, 8-24 rings, kernel 3/5/7, std 0.5-2 to 3-8 levels, agree 10-100 levels or none; longer
# reach and looser agreement lower the smooth-area error and l1 but cost PSNR: docs/model_history.md, version 9)
LEVELS = 11  # pyramid levels of pull-push: enough to reach 1 px from 2048 px
RELAX = 4  # neighbour-mean relaxations of the hole at each pyramid level
PUSH_BOX_LEVELS = 2  # the finest levels that ``pull_push(box=...)`` pushes on the box alone (most of the work)
_EPS = 1e-6
Box = tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]  # ((top, bottom), (left, right)): rows and columns


def plane_fit(image: Tensor, valid_mask: Tensor) -> Tensor:
    """The least-squares plane ``a + b x + c y`` through the known pixels, per image and channel, everywhere.

    Falls back to the known pixels' mean where they do not pin a plane (all on one line), and to 0 where there are
    none.

    Args:
        image: (N, C, H, W).
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known.
    Returns:
        (N, C, H, W): the plane's value at every pixel.
    """
    h, w = image.shape[-2:]
    ys = _coords(image, h, -2)  # (1, 1, H, 1) in [-1, 1]
    xs = _coords(image, w, -1)  # (1, 1, 1, W)
    x = xs.expand_as(valid_mask) * valid_mask
    y = ys.expand_as(valid_mask) * valid_mask
    total = lambda t: t.sum(dim=(-2, -1), keepdim=True)  # noqa: E731 - (N, C, 1, 1)
    n, sx, sy = total(valid_mask), total(x), total(y)
    sxx, sxy, syy = total(x * xs), total(x * ys), total(y * ys)
    known = image * valid_mask
    su, sux, suy = total(known), total(known * xs), total(known * ys)
    # Solve [[n, sx, sy], [sx, sxx, sxy], [sy, sxy, syy]] [a, b, c] = [su, sux, suy] by the adjugate.
    c00, c01, c02 = sxx * syy - sxy * sxy, sy * sxy - sx * syy, sx * sxy - sy * sxx
    c11, c12, c22 = n * syy - sy * sy, sx * sy - n * sxy, n * sxx - sx * sx
    det = n * c00 + sx * c01 + sy * c02
    a = (c00 * su + c01 * sux + c02 * suy) / det
    b = (c01 * su + c11 * sux + c12 * suy) / det
    c = (c02 * su + c12 * sux + c22 * suy) / det
    plane = a + b * xs + c * ys
    mean = su / n.clamp(min=1)
    pinned = det > 1e-6 * n.clamp(min=1) ** 3  # the known pixels span a plane, well conditioned
    return torch.where(pinned, plane, mean.expand_as(plane))


def _coords(like: Tensor, n: int, axis: int) -> Tensor:
    """Pixel centres along ``axis`` mapped to [-1, 1], shaped to broadcast: (1, 1, n, 1) or (1, 1, 1, n)."""
    steps = torch.arange(n, dtype=like.dtype, device=like.device)
    coords = (2 * steps + 1) / n - 1
    return coords.reshape(1, 1, -1, 1) if axis == -2 else coords.reshape(1, 1, 1, -1)


def pull_push(
    values: Tensor, weights: Tensor, *, levels: int = LEVELS, relax: int = RELAX, box: Box | None = None
) -> Tensor:
    """Spread ``values`` from where ``weights`` is 1 to where it is 0: a smooth, bounded fill.

    Pull: a pyramid of weighted 2x2 averages (partial cells at odd sizes count what they hold). Push: from the
    coarsest level down, each level keeps its own average in proportion to its weight and takes the rest from the
    level below it (bilinear upsampling), then relaxes its unknown part ``relax`` times toward the mean of its four
    neighbours (edges repeated). Where ``weights`` is 1 the result is ``values``.

    Args:
        values: (N, C, H, W).
        weights: (N, 1, H, W) in [0, 1], 1 = known, for every channel; or (N, C, H, W), one per channel (each
            channel is spread on its own either way, so several spreads can run as one call).
        box: only this box's values are wanted (``hole_box``): the finest ``PUSH_BOX_LEVELS`` levels are pushed on
            the box (widened by what it reads) instead of the whole level, the same floats inside the box; outside
            it the result is each pixel's own average. None: everywhere.
    Returns:
        (N, C, H, W), within the range of the known values.
    """
    sums, mass = [values * weights], [weights]
    for _ in range(levels):
        sums.append(F.avg_pool2d(sums[-1], 2, ceil_mode=True))
        mass.append(F.avg_pool2d(mass[-1], 2, ceil_mode=True))
    estimate = sums[-1] / mass[-1].clamp(min=_EPS)
    regions = [] if box is None else _push_regions(box, sums, relax)  # the finest levels' boxes
    # Exported to ONNX, the neighbour means are one convolution each (a dozen nodes fewer: the graph loads faster);
    # in eager PyTorch the slices are faster (a 3x3 depthwise convolution is slow on the CPU).
    cross = _cross(values) if torch.onnx.is_in_onnx_export() else None
    for level in reversed(range(levels)):
        if level >= len(regions):  # the whole level
            size, level_sums, level_mass = sums[level].shape[-2:], sums[level], mass[level]
        else:  # the level's box, and the half of it that it reads of the level below (whole, or its own box)
            here = regions[level]
            (top, bottom), (left, right) = here
            level_sums, level_mass = crop(sums[level], here), crop(mass[level], here)
            size = level_sums.shape[-2:]
            (rows, _), (cols, _) = regions[level + 1] if level + 1 < len(regions) else ((0, 0), (0, 0))
            half = lambda v: torch.div(v, 2, rounding_mode="trunc")  # noqa: E731 - of v >= 0: floor, as one node
            estimate = estimate[
                ..., half(top) - rows : half(bottom + 1) - rows, half(left) - cols : half(right + 1) - cols
            ]
        coarse = F.interpolate(estimate, size=size, mode="bilinear", align_corners=False)
        own = level_sums / level_mass.clamp(min=_EPS)
        keep = level_mass.clamp(0, 1)
        estimate = keep * own + (1 - keep) * coarse
        border = None if cross is None else _border_share(estimate, cross)
        for _ in range(relax):
            estimate = keep * own + (1 - keep) * _neighbour_mean(estimate, cross, border)
    if regions:  # the finest level's box back in place, each pixel's own average around it
        estimate = paste(sums[0] / mass[0].clamp(min=_EPS), estimate, regions[0])
    return estimate


def _push_regions(box: Box, sums: list[Tensor], relax: int) -> list[Box]:
    """The box each of the finest ``PUSH_BOX_LEVELS`` levels of ``pull_push`` is pushed on, finest first.

    A level's box holds what the finer level's box reads (its half, rounded out), widened by ``relax`` + 1 cells:
    the relaxations spoil one cell per step inward from a box's edge and the upsampling one more; rounded out to
    even bounds, so the bilinear upsampling of half the box is exactly the whole level's; and the whole level where
    its size is odd (the upsampling's scale is then not 2) or the box reaches past it.
    """
    margin = relax + 1
    regions, need = [], box
    for level in range(min(PUSH_BOX_LEVELS, len(sums) - 1)):
        axes = []
        for axis, (start, stop) in enumerate(need):
            size = sums[level].shape[-2 + axis]
            odd = torch.as_tensor(size % 2 == 1)
            # (every bound is >= 0: a truncating division rounds down, and exports as one node)
            start = torch.div((start - margin).clamp(min=0), 2, rounding_mode="trunc") * 2
            stop = (torch.div(stop + margin + 1, 2, rounding_mode="trunc") * 2).clamp(max=size)
            zero = torch.zeros_like(start)
            axes.append((torch.where(odd, zero, start), torch.where(odd, zero + size, stop)))
        regions.append(tuple(axes))
        need = tuple(
            (torch.div(a, 2, rounding_mode="trunc"), torch.div(b + 1, 2, rounding_mode="trunc")) for a, b in axes
        )
    return regions


def _neighbour_mean(x: Tensor, cross: Tensor | None = None, border: Tensor | None = None) -> Tensor:
    """(N, C, H, W): the mean of each pixel's four neighbours, the image's edge pixels repeated outward.

    Without ``cross``: a padded copy and four slices. With ``cross`` (``_cross(x)``) and ``border``
    (``_border_share(x, cross)``): the same mean as one zero-padded convolution plus the pixel itself for each
    neighbour outside the image, the form for an exported graph.
    """
    if cross is None or border is None:
        return _neighbour_sum(F.pad(x, (1, 1, 1, 1), mode="replicate")) / 4
    channels = int(x.shape[1])  # 1 or 3, a constant in a traced graph
    return F.conv2d(x, cross.expand(channels, 1, 3, 3), padding=1, groups=channels) + x * border


def _border_share(x: Tensor, cross: Tensor) -> Tensor:
    """(1, 1, H, W): a quarter for each of a pixel's four neighbours that lies outside the image (0 inside)."""
    return 1 - F.conv2d(torch.ones_like(x[:1, :1]), cross, padding=1)


def _cross(like: Tensor) -> Tensor:
    """(1, 1, 3, 3): a quarter on each of the four neighbours."""
    q = 0.25
    return torch.tensor([[[[0.0, q, 0.0], [q, 0.0, q], [0.0, q, 0.0]]]], dtype=like.dtype, device=like.device)


def smooth_fill(image: Tensor, valid_mask: Tensor, *, plane: Tensor | None = None) -> Tensor:
    """A smooth fill of the hole, exact for constant images and linear ramps (module docstring).

    Args:
        image: (N, C, H, W) in [0, 1]; values under the hole are never read.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known.
        plane: (N, C, H, W), ``plane_fit(image * valid_mask, valid_mask)`` if the caller has it already (``blend``
            fits it once for this and ``continue_edge``); None fits it here.
    Returns:
        (N, C, H, W): the known pixels as they are, the smooth fill in the hole.
    """
    known = image * valid_mask
    plane = plane_fit(known, valid_mask) if plane is None else plane
    return plane + pull_push((known - plane) * valid_mask, valid_mask)


def detail_gate(image: Tensor, valid_mask: Tensor, *, low: float = GATE_LOW, high: float = GATE_HIGH) -> Tensor:
    """How much detail the known pixels around each pixel hold, as the network's share of the fill.

    Args:
        image: (N, C, H, W) in [0, 1]; values under the hole are never read.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known.
        low: mean absolute Laplacian (8-bit levels) at and below which the gate is 0.
        high: mean absolute Laplacian (8-bit levels) at and above which the gate is 1.
    Returns:
        (N, 1, H, W) in [0, 1]: 0 = smooth surroundings (the smooth fill), 1 = detail (the network's fill).
    """
    local, seen = local_detail(image, valid_mask)
    return _gate(pull_push(local * seen, seen), low, high)


def local_detail(image: Tensor, valid_mask: Tensor) -> tuple[Tensor, Tensor]:
    """The detail that ``detail_gate`` measures, where it can be measured, before it is spread into the hole.

    Args:
        image: (N, C, H, W) in [0, 1]; values under the hole are never read.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known.
    Returns:
        ``(local, seen)``, both (N, 1, H, W): the mean absolute Laplacian (8-bit levels) of the 3x3 means over a
        5x5 window, and 1 where that window holds a pixel whose stencil is all known (0 elsewhere).
    """
    # The Laplacian of the 3x3 means: 8-bit rounding alone gives a ramp a Laplacian of about a level, its means a third.
    means = F.avg_pool2d(F.pad(image * valid_mask * 255, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    padded = F.pad(means, (1, 1, 1, 1), mode="replicate")
    laplacian = 4 * padded[..., 1:-1, 1:-1] - _neighbour_sum(padded)
    known = F.avg_pool2d(F.pad(valid_mask, (2, 2, 2, 2)), 5, stride=1)  # outside the image counts as unknown
    whole = known > 1 - 1e-3  # every pixel of the 5x5 the stencil reads is known and inside the image
    detail = laplacian.abs().amax(dim=1, keepdim=True)  # (N, 1, H, W), the busiest channel
    weights = whole.to(image.dtype)
    # The local mean over a 5x5 window (where the stencil is whole), so one odd pixel does not open the gate.
    box_sum = F.avg_pool2d(detail * weights, 5, stride=1, padding=2, count_include_pad=True)
    box_mass = F.avg_pool2d(weights, 5, stride=1, padding=2, count_include_pad=True)
    return box_sum / box_mass.clamp(min=_EPS), (box_mass > 0).to(image.dtype)


def _gate(spread: Tensor, low: float, high: float) -> Tensor:
    """The spread detail (8-bit levels) mapped linearly from 0 at ``low`` to 1 at ``high``."""
    return ((spread - low) / (high - low)).clamp(0, 1)


def _neighbour_sum(padded: Tensor) -> Tensor:
    """The sum of the four neighbours of every inner pixel of a tensor padded by one on each side."""
    return padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2] + padded[..., 1:-1, 2:]


def blend(prediction: Tensor, image: Tensor, valid_mask: Tensor, *, smooth: Tensor | float = 1.0) -> Tensor:
    """``gate * prediction + (1 - gate) * smooth_fill``: the network's fill where there is detail, the smooth fill
    where there is none; then drawn toward its smooth surroundings near the hole's edge (``continue_edge``).

    Args:
        prediction: (N, C, H, W), the network's (averaged) prediction.
        image: (N, C, H, W) in [0, 1]; values under the hole are never read.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known.
        smooth: 1 = blend, 0 = return ``prediction`` unchanged (a float, or a () tensor in a traced graph).
    Returns:
        (N, C, H, W).
    """
    none = image[:, :0]  # (N, 0, H, W): nothing more to spread
    return blend_spreading(prediction, image, valid_mask, none, valid_mask[:, :0], smooth=smooth)[0]


def blend_spreading(
    prediction: Tensor,
    image: Tensor,
    valid_mask: Tensor,
    values: Tensor,
    weights: Tensor,
    *,
    smooth: Tensor | float = 1.0,
) -> tuple[Tensor, Tensor]:
    """``blend``, and ``pull_push(values, weights)`` in the same call: the same floats as separate calls, fewer graph
    nodes (for a caller that needs more spread into the hole, as ``pconv.structure`` does).

    Args:
        prediction: (N, C, H, W), as ``blend``.
        image: (N, C, H, W) in [0, 1], as ``blend``.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known, as ``blend``.
        values: (N, K, H, W), K >= 0 more channels to spread.
        weights: (N, K, H, W), one weight per channel of ``values``.
        smooth: as ``blend``.
    Returns:
        ``(blend(...), pull_push(values, weights))``: (N, C, H, W) and (N, K, H, W).
    """
    known = image * valid_mask
    plane = plane_fit(known, valid_mask)  # one fit for the smooth fill and the edge continuation
    # detail_gate's and smooth_fill's pull-push as one, on C + 1 (+ K) channels each with its own weights: the same
    # floats as separate calls (every channel is averaged on its own), fewer of the graph's nodes.
    local, seen = local_detail(image, valid_mask)
    c = int(image.shape[1])
    spread = pull_push(
        torch.cat([(known - plane) * valid_mask, local * seen, values], dim=1),
        torch.cat([valid_mask.expand(-1, c, -1, -1), seen, weights], dim=1),
        box=hole_box(valid_mask, 0),  # only the hole pixels' values are used
    )
    gate = _gate(spread[:, c : c + 1], GATE_LOW, GATE_HIGH)  # as detail_gate(image, valid_mask)
    share = 1 - smooth * (1 - gate)  # the network's share: the gate, or 1 with smooth = 0
    blended = prediction * share + (plane + spread[:, :c]) * (1 - share)  # smooth_fill(image, valid_mask)
    return continue_edge(blended, image, valid_mask, smooth=smooth, plane=plane), spread[:, c + 1 :]


def grow(
    values: Tensor, valid_mask: Tensor, steps: int, *, kernel: int = EDGE_KERNEL, groups: tuple[int, ...] | None = None
) -> tuple[Tensor, Tensor]:
    """Grow ``values`` into the hole one ring at a time ("onion peel"): each new pixel is the mean of the known or
    already grown pixels in its ``kernel`` x ``kernel`` window.

    Args:
        values: (N, C, H, W); values under the hole are never read.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known, for every channel; or (N, C, H, W), one per channel (each
            channel grows on its own either way, so several growths can run as one call); or (N, G, H, W), one per
            group of channels (``groups``).
        steps: rings to grow.
        groups: with a mask per group, how many channels of ``values`` each mask channel is for, in order (they sum
            to C): the same floats as that mask repeated for each channel, its windows averaged once.
    Returns:
        ``(grown, depth)``: grown (N, C, H, W), the known values kept and the first ``steps`` rings filled (0 beyond);
        depth (N, 1, H, W), or (N, C, H, W) / (N, G, H, W) with one mask per channel / group: 0 on known pixels,
        k on the k-th ring, ``steps + 1`` beyond the last.
    """
    pad = kernel // 2
    if groups is None:
        per_channel = lambda t: t  # noqa: E731 - broadcast as it is
    else:  # each group's mask repeated for its channels: one gather
        index = torch.tensor([g for g, size in enumerate(groups) for _ in range(size)], device=values.device)
        per_channel = lambda t: t.index_select(1, index)  # noqa: E731
    grown, have = values * per_channel(valid_mask), valid_mask
    depth = torch.zeros_like(valid_mask)
    for ring in range(1, steps + 1):
        total = F.avg_pool2d(grown, kernel, stride=1, padding=pad, count_include_pad=False)
        mass = F.avg_pool2d(have, kernel, stride=1, padding=pad, count_include_pad=False)
        new = (mass > 0).to(values.dtype) * (1 - have)  # hole pixels with a known or grown neighbour
        grown = grown + per_channel(new) * total / per_channel(mass.clamp(min=_EPS))
        have = have + new
        depth = depth + new * ring
    return grown, depth + (1 - have) * (steps + 1)


def continue_edge(
    prediction: Tensor,
    image: Tensor,
    valid_mask: Tensor,
    *,
    smooth: Tensor | float = 1.0,
    plane: Tensor | None = None,
) -> Tensor:
    """Continue smooth surroundings into the first pixels of the hole (beyond the paper).

    Near the hole's edge, where the known pixels around are smooth, a local continuation of them is a better fill
    than the network's: on the validation split's smooth hole pixels, one pixel inside the edge, Navier-Stokes is
    off by 0.85 levels and the network by 1.55, and the network's fill shows as a faint outline. So the prediction
    is drawn toward a continuation of the known pixels: the plane through them (``plane_fit``) plus their residual
    from it grown ring by ring (``grow``: each 2-px ring the mean of the 5x5 known or grown pixels around it), with the
    weight ``exp(-(ring - 1) / EDGE_REACH)`` up to ``EDGE_STEPS`` rings (32 px), times how smooth the known pixels
    around are (their standard deviation over ``STD_WINDOW`` px, grown the same way, from 1 at ``STD_LOW`` levels
    to 0 at ``STD_HIGH``), times how much the two agree (1 where they are equal, 0 where they differ by
    ``EDGE_AGREE`` levels or more: there the network brings something the surroundings do not hold).

    Args:
        prediction: (N, C, H, W), the fill so far (in ``blend``: the network's, after the gate).
        image: (N, C, H, W) in [0, 1]; values under the hole are never read.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known.
        smooth: 1 = continue, 0 = return ``prediction`` unchanged (a float, or a () tensor in a traced graph).
        plane: (N, C, H, W), ``plane_fit(image * valid_mask, valid_mask)`` if the caller has it already; None fits
            it here.
    Returns:
        (N, C, H, W).
    """
    if plane is None:  # continued with the plane: constants and ramps stay exact
        plane = plane_fit(image * valid_mask, valid_mask)
    # Only the hole's surroundings are read: the work runs on the box around the hole (the same floats, a fraction
    # of the pixels for a brush stroke), and every pixel outside it keeps the prediction, as the weight 0 would.
    box = hole_box(valid_mask, EDGE_MARGIN)
    inside = [crop(t, box) for t in (prediction, image, valid_mask, plane)]
    return paste(prediction, _continue_edge(*inside, smooth=smooth), box)


def _continue_edge(
    prediction: Tensor, image: Tensor, valid_mask: Tensor, plane: Tensor, *, smooth: Tensor | float
) -> Tensor:
    """``continue_edge`` on tensors cropped to the hole's box (its arguments; all (N, K, h, w))."""
    spread, seen = local_std(image, valid_mask)  # (N, 1, H, W) levels; 1 where a fifth of the window is known
    # The residual from the plane and the spread (from the known pixels with a trustworthy window) grown as one, on
    # C + 1 channels each with its own mask: the same floats as two calls, half the graph's nodes.
    c = int(image.shape[1])
    masks = torch.cat([valid_mask, valid_mask * seen], dim=1)  # (N, 2, H, W): for the C colours, for the spread
    grown, depths = grow(torch.cat([image - plane, spread], dim=1), masks, EDGE_STEPS, groups=(c, 1))
    continued, spread, depth = plane + grown[:, :c], grown[:, c:], depths[:, :1]
    calm = ((STD_HIGH - spread) / (STD_HIGH - STD_LOW)).clamp(0, 1)
    reach = torch.exp((1 - depth) / EDGE_REACH) * (depth <= EDGE_STEPS).to(image.dtype) * (1 - valid_mask)
    differ = (prediction - continued).abs().amax(dim=1, keepdim=True) * 255
    agree = (1 - differ / EDGE_AGREE).clamp(0, 1)
    weight = smooth * reach * calm * agree
    return prediction * (1 - weight) + continued * weight


def hole_box(valid_mask: Tensor, margin: int) -> Box:
    """The smallest box holding every hole pixel of the batch, widened by ``margin`` px on each side and clipped to
    the image (the whole image when there is no hole).

    Args:
        valid_mask: (N, 1, H, W) in [0, 1], 1 = known; any value under 1 counts as hole.
        margin: px added on each side.
    Returns:
        ``((top, bottom), (left, right))``: () int64 tensors, rows ``top:bottom`` and columns ``left:right``
        (dynamic in a traced graph).
    """

    def span(hole: Tensor) -> tuple[Tensor, Tensor]:  # (L,) > 0 where the line holds a hole pixel
        size = hole.shape[0]
        first = hole.argmax()  # the first hole pixel's index (0 when there is none: then the box is the image)
        last = size - 1 - hole.flip(0).argmax()  # the last one's (size - 1 when there is none)
        return (first - margin).clamp(min=0), (last + margin + 1).clamp(max=size)

    hole = (valid_mask[:, 0] < 1).to(valid_mask.dtype)  # (N, H, W), 1 = hole (or a weight under 1)
    return span(hole.amax(dim=(0, 2))), span(hole.amax(dim=(0, 1)))


def crop(x: Tensor, box: Box) -> Tensor:
    """(N, C, h, w): the box (``hole_box``) of ``x`` (N, C, H, W), as slices (a copy in ONNX Runtime, no gather)."""
    (top, bottom), (left, right) = box
    return x[..., top:bottom, left:right]


def paste(x: Tensor, inner: Tensor, box: Box) -> Tensor:
    """(N, C, H, W): ``x`` with the box (``hole_box``) replaced by ``inner`` (N, C, h, w), joined from slices."""
    (top, bottom), (left, right) = box
    band = torch.cat([x[..., top:bottom, :left], inner, x[..., top:bottom, right:]], dim=-1)  # (N, C, h, W)
    return torch.cat([x[..., :top, :], band, x[..., bottom:, :]], dim=-2)


def local_std(image: Tensor, valid_mask: Tensor, *, window: int = STD_WINDOW) -> tuple[Tensor, Tensor]:
    """The standard deviation in 8-bit levels of the known pixels in each ``window`` x ``window`` window.

    Args:
        image: (N, C, H, W) in [0, 1]; values under the hole are never read.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known.
    Returns:
        ``(std, seen)``: std (N, 1, H, W), the largest over the channels (0 where the window holds no known
        pixel; float32 cancellation leaves up to about 0.05 level on a flat image); seen (N, 1, H, W), 1 where more
        than a fifth of the window is known (an estimate from enough pixels), else 0.
    """
    pad = window // 2
    known = image * valid_mask * 255
    mass = F.avg_pool2d(valid_mask, window, stride=1, padding=pad, count_include_pad=False).clamp(min=_EPS)
    mean = F.avg_pool2d(known, window, stride=1, padding=pad, count_include_pad=False) / mass
    square = F.avg_pool2d(known * known, window, stride=1, padding=pad, count_include_pad=False) / mass
    std = (square - mean * mean).clamp(min=0).sqrt().amax(dim=1, keepdim=True)
    return std, (mass > 0.2).to(image.dtype)
