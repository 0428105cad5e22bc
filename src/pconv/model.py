"""The paper's partial-convolution U-Net (Liu et al. 2018, arXiv 1804.07723, section 3.3 and supplementary).

Encoder: ``depth`` stride-2 partial convolutions (kernels 7,5,5,3,3,3,3,3; channels 64,128,256,512x5), ReLU,
BatchNorm on all but the first. Decoder: per step, nearest x2 upsampling of features *and* mask,
concatenation with the skip's features *and* mask, 3x3 partial convolution, BatchNorm, LeakyReLU(0.2); the
last step joins the input image and input mask and gives 3 channels with no BatchNorm and no activation.

Beyond the paper, off by default (``ModelConfig.edge_refine``): ``EdgeRefine``, a small full-resolution head that
corrects the prediction from the known neighbours of each pixel.

Convention: ``image`` (N, 3, H, W) in [0, 1]; ``valid_mask`` (N, 1, H, W) in {0, 1}, 1 = known pixel. The
network sees ``2 * image - 1`` and its raw output is mapped back by ``(y + 1) / 2``, so predictions are in
about [0, 1] (not clamped: there is no final activation, as in the paper).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv.config import ModelConfig
from pconv.layers import PConvBlock

__all__ = [
    "PConvUNet",
    "EdgeRefine",
    "build_model",
    "BOX_LEVELS",
    "composite",
    "decode_box",
    "fuse_for_inference",
    "save_weights",
    "load_weights",
    "WeightsError",
]


class EdgeRefine(nn.Module):
    """A residual head on the network's prediction: two 3x3 convolutions (LeakyReLU(0.2) between) over the
    prediction, the masked image, the mask, the mean of the known pixels of each 3x3 neighbourhood and their share.

    The last convolution starts at zero, so a new head leaves the prediction unchanged. Only known pixels of the
    image are read.

    Args:
        channels: image channels C.
        hidden: channels between the two convolutions.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.hidden = nn.Conv2d(3 * channels + 2, hidden, 3, padding=1)
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)
        self.register_buffer("box", torch.ones(channels + 1, 1, 3, 3), persistent=False)  # 3x3 sums per channel
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, prediction: Tensor, image: Tensor, valid_mask: Tensor) -> Tensor:
        """(N, C, H, W) prediction and image in [0, 1], (N, 1, H, W) valid_mask, 1 = known -> (N, C, H, W)."""
        c = self.box.shape[0] - 1
        valid = valid_mask.to(image.dtype)
        known = image * valid
        sums = F.conv2d(
            torch.cat([known, valid], 1), self.box.to(image.dtype), padding=1, groups=c + 1
        )  # (N, C+1, H, W)
        count = sums[:, c:]
        mean_known = sums[:, :c] / count.clamp_min(1)
        features = torch.cat([prediction, known, valid, mean_known, count / 9], 1)
        return prediction + self.out(F.leaky_relu(self.hidden(features), 0.2))


class PConvUNet(nn.Module):
    """Partial-convolution U-Net.

    Args:
        config: depth, width and input channels; the default is exactly the paper's network.
        freeze_encoder_bn: keep the encoder's BatchNorm layers in eval mode (running statistics frozen) even
            in ``train()`` mode: the paper's fine-tuning phase. Their affine parameters still learn.
        freeze_decoder_bn: the same for the decoder's BatchNorm layers (not in the paper; for fine-tuning a
            trained model).

    Attribute ``fixed_prefixes`` (default empty; set by ``pconv train`` with ``train.trainable``): ``train()`` keeps
    every BatchNorm whose name starts with one of these (e.g. ``"encoder.1.bn"``) in eval mode as well.
    """

    def __init__(
        self, config: ModelConfig | None = None, *, freeze_encoder_bn: bool = False, freeze_decoder_bn: bool = False
    ) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.freeze_encoder_bn = freeze_encoder_bn
        self.freeze_decoder_bn = freeze_decoder_bn
        self.fixed_prefixes: tuple[str, ...] = ()
        self.fused = False  # set by fuse_for_inference: BatchNorm folded, features kept 0 in their holes
        self.channels_last = False  # set by fuse_for_inference: features run in channels-last layout
        kernels, channels = self.config.kernels, self.config.channels
        c_img = self.config.in_channels
        self.encoder = nn.ModuleList()
        for i, (k, c_out) in enumerate(zip(kernels, channels)):
            c_in = c_img if i == 0 else channels[i - 1]
            self.encoder.append(PConvBlock(c_in, c_out, k, stride=2, bn=i > 0, activation="relu"))
        # decoder[i] produces the input of encoder[i]'s resolution: channels[i-1] (or the image's) out.
        self.decoder = nn.ModuleList()
        for i in range(self.config.depth):
            skip = c_img if i == 0 else channels[i - 1]
            last = i == 0
            self.decoder.append(
                PConvBlock(channels[i] + skip, skip, 3, bn=not last, activation=None if last else "leaky")
            )
        self.refine = EdgeRefine(c_img, self.config.edge_refine) if self.config.edge_refine else None

    def train(self, mode: bool = True) -> PConvUNet:
        if mode and self.fused:
            raise RuntimeError("this model was fused for inference (BatchNorm folded); train the unfused model")
        super().train(mode)
        for frozen, blocks in ((self.freeze_encoder_bn, self.encoder), (self.freeze_decoder_bn, self.decoder)):
            if mode and frozen:
                for block in blocks:
                    if block.bn is not None:
                        block.bn.eval()
        if mode and self.fixed_prefixes:
            for name, module in self.named_modules():
                if isinstance(module, nn.BatchNorm2d) and name.startswith(self.fixed_prefixes):
                    module.eval()
        return self

    def forward(self, image: Tensor, valid_mask: Tensor, holes_only: bool = False) -> tuple[Tensor, Tensor]:
        """Predict the whole image; pixel values under the hole are never read.

        Args:
            image: (N, C, H, W) in [0, 1], any H and W (padded internally to a multiple of ``2**depth``, with the
                padding treated as hole, then cropped back).
            valid_mask: (N, 1, H, W) in {0, 1}, 1 = known pixel.
            holes_only: run the decoder's finest ``BOX_LEVELS`` steps (and ``refine``) only on the box around the
                batch's holes that their hole pixels read (``decode_box``): the same floats in the holes, a
                fraction of the work for a brush stroke; 0 outside the box. For inference, where only the hole
                pixels are kept (``composite``).
        Returns:
            output: (N, C, H, W), about [0, 1], the raw prediction everywhere (use ``composite`` to keep the
                known pixels).
            output_mask: (N, 1, H, W), 1 where the network had any known pixel in its receptive field.
        """
        if image.dim() != 4 or valid_mask.dim() != 4 or valid_mask.shape[1] != 1:
            raise ValueError(
                f"expected image (N,C,H,W) and valid_mask (N,1,H,W), got {tuple(image.shape)} "
                f"and {tuple(valid_mask.shape)}"
            )
        if image.shape[0] != valid_mask.shape[0] or image.shape[2:] != valid_mask.shape[2:]:
            raise ValueError(f"image {tuple(image.shape)} and valid_mask {tuple(valid_mask.shape)} differ in size")
        h, w = image.shape[2:]
        m = self.config.multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        x = F.pad(image * 2 - 1, (0, pad_w, 0, pad_h))
        mask = F.pad(valid_mask.to(x.dtype), (0, pad_w, 0, pad_h))  # padding is hole
        # Fused: no BatchNorm, so every block's output is 0 in its holes (see PConvBlock.forward); masking the
        # input once keeps that true everywhere and lets every layer skip X * M. Nearest upsampling keeps it too.
        premasked = self.fused
        if premasked:
            x = x * mask
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # every layer then keeps the layout
        feats, masks = [x], [mask]
        for block in self.encoder:
            x, mask = block([x], [mask], premasked=premasked)  # (N, C_i, H/2^i, W/2^i)
            feats.append(x)
            masks.append(mask)
        levels = min(BOX_LEVELS, self.config.depth) if holes_only else 0
        if levels:
            # The photo's own holes: the padding (hole to the network) is not filled, so it widens no box.
            known_padding = F.pad(valid_mask.to(mask.dtype), (0, pad_w, 0, pad_h), value=1.0)
            (top, bottom), (left, right) = decode_box(known_padding, levels, self.refine is not None)
        for i in reversed(range(self.config.depth)):
            if i == levels - 1:  # from here on the box: ``decode_box``'s bounds are multiples of 2**levels
                x, mask = (_window(t, top, bottom, left, right, levels) for t in (x, mask))
            if i < levels:
                feats[i], masks[i] = (_window(t, top, bottom, left, right, i) for t in (feats[i], masks[i]))
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")
            # concat with the skip, then 3x3 pconv
            x, mask = self.decoder[i]([x, feats[i]], [mask, masks[i]], premasked=premasked)
        if not levels:
            output = (x[:, :, :h, :w] + 1) / 2
            if self.refine is not None:
                output = self.refine(output, image, valid_mask)
            return output.contiguous(), mask[:, :, :h, :w]
        # The box within the image (the padding dropped), then back into place, 0 around it.
        bottom, right = bottom.clamp(max=h), right.clamp(max=w)
        output = (_window(x, 0, bottom - top, 0, right - left) + 1) / 2
        mask = _window(mask, 0, bottom - top, 0, right - left)
        if self.refine is not None:
            output = self.refine(output, *(_window(t, top, bottom, left, right) for t in (image, valid_mask)))
        return _placed(output, top, left, h, w), _placed(mask, top, left, h, w)


BOX_LEVELS = 3  # decoder steps that ``PConvUNet.forward(..., holes_only=True)`` runs on the holes' box


def decode_box(valid_mask: Tensor, levels: int, refine: bool) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """The box that the hole pixels' predictions read when the decoder's finest ``levels`` steps run on it alone.

    A 3x3 convolution on a box reads 1 px past it, so its outermost pixel differs from the whole image's
    computation (the box's edge is padded with zeros); each step up doubles what the steps below spoiled:
    ``2**levels - 1`` px at full resolution, 2 more after ``EdgeRefine``'s two convolutions (its 3x3 sums spoil
    1 px, within those). The box is every hole pixel of the batch widened by that margin (and 1 more),
    rounded out to multiples of ``2**levels`` so that each coarser step's box is the finer one's halved exactly,
    and clipped to the (padded) image, whose own edge is padded with zeros in either computation.

    Args:
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known; H and W multiples of ``2**levels`` (the padded input).
        levels: decoder steps run on the box.
        refine: the model has ``EdgeRefine``.
    Returns:
        ``((top, bottom), (left, right))``: () int64 tensors, rows ``top:bottom`` and columns ``left:right``
        (the whole image when there is no hole).
    """
    step = 2**levels
    margin = step + (2 if refine else 0)
    hole = (valid_mask[:, 0] < 1).to(valid_mask.dtype)  # (N, H, W), 1 = hole
    if hole.shape[0] == 0:  # an empty batch (FillGraph's variant that is off, run eagerly): the whole image
        hole = valid_mask.new_zeros((1, *valid_mask.shape[-2:]))  # (a traced graph handles it as it is)

    def span(line: Tensor) -> tuple[Tensor, Tensor]:  # (L,) > 0 where the line has a hole pixel
        size = line.shape[0]
        first = line.argmax()  # 0 when there is no hole: then the span is the whole line
        last = size - 1 - line.flip(0).argmax()
        start = torch.div((first - margin).clamp(min=0), step, rounding_mode="floor") * step
        stop = torch.div(last + margin + step, step, rounding_mode="floor") * step  # past last + margin, rounded up
        return start, stop.clamp(max=size)

    return span(hole.amax(dim=(0, 2))), span(hole.amax(dim=(0, 1)))


def _window(
    x: Tensor, top: Tensor | int, bottom: Tensor | int, left: Tensor | int, right: Tensor | int, level: int = 0
) -> Tensor:
    """Rows ``top:bottom`` and columns ``left:right`` of ``x`` (N, C, H, W), each bound divided by ``2**level``
    (exact for ``decode_box``'s): (N, C, h, w). Plain slices: a copy in ONNX Runtime, no gather."""
    step = 2**level
    return x[:, :, top // step : bottom // step, left // step : right // step]


def _placed(box: Tensor, top: Tensor, left: Tensor, h: int, w: int) -> Tensor:
    """(N, C, h, w): zeros with ``box`` (N, C, bh, bw) at rows ``top:``, columns ``left:`` (joined, not scattered)."""
    n, c, bh, bw = box.shape
    zeros = box.new_zeros(n, c, h, w)
    band = torch.cat([zeros[:, :, :bh, :left], box, zeros[:, :, :bh, left + bw :]], dim=-1)  # (N, C, bh, w)
    return torch.cat([zeros[:, :, :top], band, zeros[:, :, top + bh :]], dim=-2)


def composite(image: Tensor, prediction: Tensor, valid_mask: Tensor) -> Tensor:
    """Known pixels from ``image``, hole pixels from ``prediction`` (the paper's I_comp).

    Args:
        image: (N, C, H, W) in [0, 1].
        prediction: (N, C, H, W) in [0, 1].
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known pixel.
    Returns:
        (N, C, H, W): ``valid * image + (1 - valid) * prediction``.
    """
    valid = valid_mask.to(image.dtype)
    return valid * image + (1 - valid) * prediction


def fuse_for_inference(model: PConvUNet, *, channels_last: bool = False) -> PConvUNet:
    """A copy of ``model`` for fast inference: eval mode, BatchNorm folded into the partial convolutions.

    The copy's output equals ``model.eval()``'s to float rounding (about 1e-6 relative in fp32): folding moves
    BatchNorm's affine map into the weights and bias, and the copy keeps features at 0 in their holes, so no
    layer multiplies its input by the mask again. The copy cannot be trained (``train()`` raises) and its state
    dict has no BatchNorm keys: save weights from the original model.

    Args:
        model: a ``PConvUNet``; it is not modified.
        channels_last: store the weights and run the features channels-last (inputs and outputs keep the
            usual layout); faster on some CPUs and GPUs, see benchmarks/RESULTS.md.
    Returns:
        The fused copy, in eval mode, on the model's device.
    """
    import copy

    fused = copy.deepcopy(model).eval()
    for block in [*fused.encoder, *fused.decoder]:
        block.fold_batchnorm()
    fused.fused = True
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
        fused.channels_last = True
    return fused


def build_model(config: ModelConfig | None = None, *, weights: str | Path | None = None) -> PConvUNet:
    """Build a ``PConvUNet``; with ``weights``, load them (the file's own config wins over ``config``)."""
    if weights is not None:
        return load_weights(weights)
    return PConvUNet(config)


class WeightsError(ValueError):
    """A weights file is missing, unreadable, or for another architecture."""


_CONFIG_KEY = "pconv_model_config"


def save_weights(model: PConvUNet, path: str | Path, *, dtype: torch.dtype = torch.float32) -> Path:
    """Write the model's state dict as safetensors with its ``ModelConfig`` as JSON metadata.

    Floating tensors are cast to ``dtype`` (fp16 halves the file); BatchNorm counters stay int64.
    The file is written to a temporary name and renamed, so no half-written file is left behind.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {
        k: (v.to(dtype) if v.is_floating_point() else v).contiguous().cpu() for k, v in model.state_dict().items()
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={_CONFIG_KEY: json.dumps(model.config.to_dict())})
    tmp.replace(path)
    return path


def load_weights(path: str | Path, *, map_location: str | torch.device = "cpu") -> PConvUNet:
    """Load a model written by ``save_weights``; raises ``WeightsError`` with a one-line reason."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors weights file ({exc})") from None
    if _CONFIG_KEY not in meta:
        raise WeightsError(f"{path} has no pconv model config in its metadata; was it written by pconv?")
    try:
        config = ModelConfig.from_dict(json.loads(meta[_CONFIG_KEY]))
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise WeightsError(f"{path} holds an unreadable pconv model config ({exc})") from None
    model = PConvUNet(config)
    expected = model.state_dict()
    bad = [k for k in expected if k not in tensors or tensors[k].shape != expected[k].shape]
    if bad or set(tensors) - set(expected):
        raise WeightsError(
            f"{path} does not match the pconv architecture in its metadata (first bad key: "
            f"{(bad or sorted(set(tensors) - set(expected)))[0]})"
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return model.eval()
