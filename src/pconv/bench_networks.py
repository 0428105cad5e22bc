"""The networks and inputs the benchmarks time: the partial-convolution U-Net, its floor and a reference.

Three networks of exactly the same shapes (arXiv 1804.07723, section 3.3), sharing one set of weights:

- ``PConvUNet``, plain (as trained) and fused for inference (``pconv.model.fuse_for_inference``);
- ``PlainUNet``: the floor, the same convolutions, BatchNorm, activations, upsampling and concatenations with
  ordinary zero-padded convolutions and no mask at all;
- ``ReferencePConvUNet``: a REFERENCE ONLY partial-convolution network written the way common public
  re-implementations do it (NVIDIA's layer with ``multi_channel=True``): a full C-channel mask at every layer,
  convolved with a (C_out, C_in, k, k) ones kernel. It is here to be measured, never used by the package.

``build_networks`` builds them (``randomize_batchnorm`` first, so folding BatchNorm is not trivial),
``bench_valid_mask`` makes the masks they are timed on and ``forward_call`` the no-argument call to time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv.config import ModelConfig
from pconv.model import PConvUNet, fuse_for_inference

__all__ = [
    "PlainUNet",
    "ReferencePConv2d",
    "ReferencePConvUNet",
    "bench_valid_mask",
    "randomize_batchnorm",
    "build_networks",
    "forward_call",
]


class _PlainBlock(nn.Module):
    """Convolution, optional BatchNorm, optional activation: ``PConvBlock`` without the mask."""

    def __init__(self, c_in: int, c_out: int, k: int, *, stride: int, bn: bool, activation: str | None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=not bn)
        self.bn = nn.BatchNorm2d(c_out) if bn else None
        self.act = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x) if self.act is not None else x


def _activation(name: str | None) -> nn.Module | None:
    return {"relu": nn.ReLU(inplace=True), "leaky": nn.LeakyReLU(0.2, inplace=True), None: None}[name]


def _unet_blocks(config: ModelConfig, make: Callable[..., nn.Module]) -> tuple[nn.ModuleList, nn.ModuleList]:
    """Encoder and decoder blocks of the paper's U-Net shapes, built by ``make(c_in, c_out, k, **kw)``."""
    kernels, channels, c_img = config.kernels, config.channels, config.in_channels
    encoder = nn.ModuleList(
        make(c_img if i == 0 else channels[i - 1], c, k, stride=2, bn=i > 0, activation="relu")
        for i, (k, c) in enumerate(zip(kernels, channels))
    )
    decoder = nn.ModuleList()
    for i in range(config.depth):
        skip = c_img if i == 0 else channels[i - 1]
        decoder.append(make(channels[i] + skip, skip, 3, stride=1, bn=i > 0, activation="leaky" if i else None))
    return encoder, decoder


class PlainUNet(nn.Module):
    """The floor: ``PConvUNet``'s exact shapes with ordinary convolutions and no mask.

    Its state dict has the same keys as ``PConvUNet``'s, so ``load_state_dict(pconv_model.state_dict())`` works.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.encoder, self.decoder = _unet_blocks(self.config, _PlainBlock)

    def forward(self, image: Tensor) -> Tensor:
        """image (N, C, H, W) in [0, 1] -> (N, C, H, W); padded to a multiple of ``2**depth`` and cropped back."""
        h, w = image.shape[2:]
        m = self.config.multiple
        x = F.pad(image * 2 - 1, (0, (-w) % m, 0, (-h) % m))
        feats = [x]
        for block in self.encoder:
            x = block(x)
            feats.append(x)
        for i in reversed(range(self.config.depth)):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = self.decoder[i](torch.cat([x, feats[i]], dim=1))
        return (x[:, :, :h, :w] + 1) / 2

    def fold_batchnorm(self) -> PlainUNet:
        """Fold every BatchNorm into its convolution (eval mode), in place; returns self."""
        self.eval()
        for block in [*self.encoder, *self.decoder]:
            if block.bn is not None:
                block.conv = nn.utils.fusion.fuse_conv_bn_eval(block.conv, block.bn)
                block.bn = None
        return self


class ReferencePConv2d(nn.Conv2d):
    """REFERENCE ONLY (benchmark baseline): partial convolution as common re-implementations write it.

    The mask has one channel per input channel and is convolved with a (C_out, C_in, k, k) ones kernel at
    every layer (as costly as the feature convolution itself); the new mask has C_out channels. The formula is
    the paper's (eq. 1-2, ``sum(1) = C_in * k * k``), so its outputs match ``PartialConv2d`` in multi-channel
    mode; only the cost differs. Not used by the package.
    """

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, *, bias: bool) -> None:
        super().__init__(c_in, c_out, k, stride, padding, bias=bias)
        self.register_buffer("mask_kernel", torch.ones(c_out, c_in, k, k), persistent=False)

    def forward(self, x: Tensor, valid_mask: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """x, valid_mask (N, C_in, H, W), 1 = known -> out, new mask (N, C_out, H', W')."""
        with torch.no_grad():
            msum = F.conv2d(valid_mask, self.mask_kernel, None, self.stride, self.padding)  # (N, C_out, H', W')
            new_mask = msum.clamp(0, 1)
            ratio = self.mask_kernel[0].numel() / (msum + 1e-8) * new_mask
        raw = self._conv_forward(x * valid_mask, self.weight, None)
        out = raw * ratio
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1) * new_mask
        return out, new_mask


class _ReferenceBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, *, stride: int, bn: bool, activation: str | None) -> None:
        super().__init__()
        self.conv = ReferencePConv2d(c_in, c_out, k, stride, k // 2, bias=not bn)
        self.bn = nn.BatchNorm2d(c_out) if bn else None
        self.act = _activation(activation)

    def forward(self, x: Tensor, valid_mask: Tensor) -> tuple[Tensor, Tensor]:
        x, valid_mask = self.conv(x, valid_mask)
        if self.bn is not None:
            x = self.bn(x)
        return (self.act(x) if self.act is not None else x), valid_mask


class ReferencePConvUNet(nn.Module):
    """REFERENCE ONLY (benchmark baseline): the paper's U-Net with ``ReferencePConv2d`` (C-channel masks).

    Same state-dict keys as ``PConvUNet``. Masks are upsampled and concatenated channel by channel with the
    features, as in common re-implementations.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.encoder, self.decoder = _unet_blocks(self.config, _ReferenceBlock)

    def forward(self, image: Tensor, valid_mask: Tensor) -> tuple[Tensor, Tensor]:
        """image (N, C, H, W) in [0, 1], valid_mask (N, 1, H, W) 1 = known -> output (N, C, H, W), its mask."""
        h, w = image.shape[2:]
        m = self.config.multiple
        pad = (0, (-w) % m, 0, (-h) % m)
        x = F.pad(image * 2 - 1, pad)
        mask = F.pad(valid_mask.expand_as(image), pad)  # (N, C, H, W): one mask channel per image channel
        feats, masks = [x], [mask]
        for block in self.encoder:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        for i in reversed(range(self.config.depth)):
            x = torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), feats[i]], dim=1)
            mask = torch.cat([F.interpolate(mask, scale_factor=2.0, mode="nearest"), masks[i]], dim=1)
            x, mask = self.decoder[i](x, mask)
        return (x[:, :, :h, :w] + 1) / 2, mask[:, :, :h, :w]


# ------------------------------------------------------------------------------------------- inputs


def bench_valid_mask(n: int, h: int, w: int, hole_ratio: float, *, seed: int = 0) -> Tensor:
    """A blobby valid mask whose hole fraction is ``hole_ratio`` (to one pixel).

    Returns:
        (N, 1, H, W) float32 in {0, 1}, 1 = known pixel.
    """
    if not 0 <= hole_ratio < 1:
        raise ValueError(f"hole_ratio must be in [0, 1), got {hole_ratio}")
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, max(2, h // 32), max(2, w // 32), generator=gen)
    field_ = F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)
    holes = round(hole_ratio * h * w)
    valid = torch.ones(n, 1, h, w)
    if holes:
        # The `holes` highest values of the smooth field become hole: blobs of an exact total area.
        idx = field_.flatten(1).topk(holes, dim=1).indices
        valid.view(n, -1).scatter_(1, idx, 0.0)
    return valid


def randomize_batchnorm(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random running statistics and affine parameters (so folding is not trivial)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            c = bn.num_features
            bn.running_mean.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
            bn.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            bn.weight.copy_(torch.rand(c, generator=gen) + 0.5)
            bn.bias.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
    return model


def build_networks(config: ModelConfig, *, seed: int = 0) -> dict[str, nn.Module]:
    """The networks under test, in eval mode and sharing one set of weights.

    Returns:
        ``pconv`` (plain), ``pconv_fused``, ``floor``, ``floor_fused`` (BatchNorm folded), ``reference``.
    """
    torch.manual_seed(seed)
    pconv = randomize_batchnorm(PConvUNet(config), seed=seed).eval()
    state = pconv.state_dict()
    floor, floor_fused, reference = PlainUNet(config), PlainUNet(config), ReferencePConvUNet(config)
    for net in (floor, floor_fused, reference):
        net.load_state_dict(state)
    return {
        "pconv": pconv,
        "pconv_fused": fuse_for_inference(pconv),
        "floor": floor.eval(),
        "floor_fused": floor_fused.fold_batchnorm(),
        "reference": reference.eval(),
    }


def forward_call(model: nn.Module, image: Tensor, valid_mask: Tensor) -> Callable[[], object]:
    """A no-argument inference call of ``model`` (the floor takes no mask)."""
    if isinstance(model, PlainUNet):
        return lambda: model(image)
    return lambda: model(image, valid_mask)
