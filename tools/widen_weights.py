"""Widen a pconv weights file k times (width w -> k*w) so that the wider network computes the same function.

Run: PYTHONPATH=src python tools/widen_weights.py IN.safetensors --factor 2 --output OUT.safetensors \
         [--noise 1e-3] [--seed S] [--fp16]
Net2WiderNet (Chen, Goodfellow, Shlens 2016, arXiv 1511.05641): every hidden channel of every partial convolution
is split into k copies (new channel ``r * C + j`` copies old channel ``j``: weights, bias, BatchNorm parameters and
running statistics), and the next layer's input weights of those copies are divided by k, so it sums the copies
back to the old channel. ``--noise`` (a fraction of each layer's weight standard deviation) is added to those
input weights of one copy and subtracted from the other (zero-sum over the k copies), which breaks the symmetry
for training and keeps the sum. The EdgeRefine head (``model.edge_refine``) reads the prediction, not hidden
features: it is copied unchanged. The result is the network of ``ModelConfig(width=k*w)``, so ``load_weights`` and
``pconv train --train.init_weights`` take it (e.g. version 6 at width 1/4 -> a width-1/2 start).

Exact except in the last decoder step. The encoder's partial convolutions use a single-channel mask, so
``sum(1)/sum(M)`` does not depend on the channel count. The decoder's (``PartialConv2d.forward_concat``) is
``C_in k^2 / sum_i C_i conv(m_i, 1)`` over the concatenated segments: doubling every segment keeps it, but the last
step concatenates the 3-channel input image, which does not widen. There, deep inside a hole (the image segment
all hole, the features all known) the ratio falls from ``(C+3)/C`` to ``(kC+3)/(kC)``; the features' weights are
scaled by the quotient of the two, so those pixels are exact too, and only a band about the hole's edge and
the known pixels, which the composite does not use, move a little. Measured on the shipped model (version 6,
width 1/4 -> 1/2, no noise, one pass, fp32) over 24 cases (the first two validation photos x the 12 NVIDIA-mask
cells): hole pixels moved 0.04 levels of 255 on average and at most 3.2 (without the rescaling: 3.1 and 11.8).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from pconv.model import PConvUNet, load_weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
from average_weights import build_and_save  # noqa: E402

_OUTPUT_KEYS = ("conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")


def _widen_inputs(
    weight: Tensor, segments: Sequence[tuple[int, bool]], factor: int, noise: float, generator: torch.Generator
) -> Tensor:
    """(O, sum C_i, kh, kw) -> the input weights of the widened segments (those marked True: k copies, each 1/k,
    plus zero-sum noise of ``noise * std(weight)``); the other segments unchanged."""
    parts, start, scale = [], 0, noise * float(weight.std())
    for size, widen in segments:
        part = weight[:, start : start + size]
        start += size
        if not widen:
            parts.append(part)
            continue
        eps = torch.randn((factor, *part.shape), generator=generator, dtype=torch.float64) * scale
        eps -= eps.mean(0, keepdim=True)  # zero sum over the copies: the next layer's sum is kept
        parts += [(part.double() / factor + eps[r]).to(part.dtype) for r in range(factor)]
    return torch.cat(parts, 1)


def _widen_block(
    state: dict[str, Tensor],
    prefix: str,
    segments: Sequence[tuple[int, bool]],
    widen_out: bool,
    factor: int,
    noise: float,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """The widened tensors of one ``PConvBlock`` (``prefix`` e.g. ``"decoder.3"``)."""
    weight = _widen_inputs(state[f"{prefix}.conv.weight"], segments, factor, noise, generator)
    out = {f"{prefix}.conv.weight": weight.repeat(factor, 1, 1, 1) if widen_out else weight}
    for name in _OUTPUT_KEYS:
        key = f"{prefix}.{name}"
        if key in state:
            out[key] = state[key].repeat(factor) if widen_out else state[key]
    return out


def widen_model(model: PConvUNet, factor: int, *, noise: float = 0.0, seed: int = 0) -> PConvUNet:
    """The network of ``width = factor * model.config.width`` computing ``model``'s function (see the module doc).

    Args:
        model: a ``PConvUNet`` (not fused); it is not modified.
        factor: k >= 2, the number of copies of every hidden channel.
        noise: symmetry-breaking noise on the copies' input weights, as a fraction of each layer's weight
            standard deviation (0 = exact copies); zero-sum over the copies, so the function is kept.
        seed: seeds the noise.
    Raises:
        ValueError: ``factor`` < 2, ``noise`` < 0, a fused model, or a width whose channel counts do not scale by
            ``factor`` exactly (``ModelConfig.channels`` rounds, and has a minimum of 4).
    """
    if factor < 2:
        raise ValueError(f"--factor must be an integer of at least 2, got {factor}")
    if noise < 0:
        raise ValueError(f"--noise must be >= 0, got {noise}")
    if model.fused:
        raise ValueError("the model was fused for inference (BatchNorm folded); widen the unfused weights")
    cfg = model.config
    wide_cfg = dataclasses.replace(cfg, width=cfg.width * factor)
    channels = cfg.channels
    if wide_cfg.channels != tuple(c * factor for c in channels):
        raise ValueError(
            f"width {cfg.width} x {factor} gives channels {wide_cfg.channels}, not {factor} x {channels}; "
            "its channel counts must all scale exactly (at least 4 channels per layer, none rounded)"
        )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    wide_state = dict(state)  # the EdgeRefine head and the BatchNorm counters stay as they are
    for i in range(cfg.depth):
        segments = [(cfg.in_channels, False)] if i == 0 else [(channels[i - 1], True)]
        wide_state.update(_widen_block(state, f"encoder.{i}", segments, True, factor, noise, generator))
    for i in reversed(range(cfg.depth)):
        skip = (cfg.in_channels, False) if i == 0 else (channels[i - 1], True)
        wide_state.update(
            _widen_block(state, f"decoder.{i}", [(channels[i], True), skip], i > 0, factor, noise, generator)
        )
    c0, c_img = channels[0], cfg.in_channels
    hole_ratio = ((c0 + c_img) / c0) / ((factor * c0 + c_img) / (factor * c0))  # sum(1)/sum(M) deep in a hole
    wide_state["decoder.0.conv.weight"][:, : factor * c0] *= hole_ratio
    wide = PConvUNet(wide_cfg)
    wide.load_state_dict(wide_state)
    return wide.eval()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="the pconv weights file to widen (safetensors)")
    parser.add_argument("--factor", type=int, default=2, help="copies of every hidden channel (default: 2)")
    parser.add_argument("--output", type=Path, required=True, help="the widened weights file to write")
    parser.add_argument(
        "--noise", type=float, default=1e-3, help="zero-sum noise on the copies, x weight std (default: 1e-3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    parser.add_argument("--fp16", action="store_true", help="store fp16 tensors (half the file)")
    args = parser.parse_args(argv)
    build = lambda: widen_model(load_weights(args.weights), args.factor, noise=args.noise, seed=args.seed)  # noqa: E731
    return build_and_save("widen_weights", build, args.output, fp16=args.fp16)


if __name__ == "__main__":
    sys.exit(main())
