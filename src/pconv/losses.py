"""The inpainting loss of Liu et al. 2018 (arXiv 1804.07723, section 3.4, eq. 1-7), plus an optional SSIM term.

With ``M`` the valid mask (1 = known), ``I_out`` the prediction, ``I_gt`` the truth, ``I_comp`` = ``I_out`` on the
holes and ``I_gt`` elsewhere, and ``Psi_p`` the ImageNet VGG-16 activations after pool1, pool2 and pool3:

- valid (eq. 1):  mean |M * (I_out - I_gt)|          hole (eq. 1): mean |(1 - M) * (I_out - I_gt)|
  (both divided by the element count N*C*H*W, per the authors' errata)
- perceptual (eq. 2): sum_p mean|Psi_p(I_out) - Psi_p(I_gt)| + sum_p mean|Psi_p(I_comp) - Psi_p(I_gt)|
- style_out, style_comp (eq. 3, 4): sum_p mean|G_p(I) - G_p(I_gt)| with G_p = Psi_p^T Psi_p / (C_p H_p W_p)
- tv (eq. 5-6): |horizontal and vertical differences of I_comp| over pairs of pixels that both lie in P, the
  1-pixel dilation of the hole, divided by the element count N*C*H*W
- total (eq. 7): valid + 6 hole + 0.05 perceptual + 120 (style_out + style_comp) + 0.1 tv

Beyond the paper (weight 0 by default): ``ssim`` = 1 - SSIM(I_comp, I_gt), SSIM as scikit-image computes it, and
``ssim_hole`` = the same over only the SSIM windows that overlap the hole, per image (small holes count fully).
The VGG-16 weights are never downloaded: ``load_vgg16_features(path)`` reads a local file.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv.config import LossConfig
from pconv.metrics import ssim, ssim_map
from pconv.model import composite

__all__ = ["VGG16Features", "InpaintingLoss", "hole_ssim_loss", "load_vgg16_features", "build_loss", "VGG_WEIGHTS_HELP"]

# torchvision's VGG-16 conv layers up to pool3 ("D" configuration); pool1..pool3 follow features.4, .9 and .16.
_VGG16_TO_POOL3: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")
_POOL_INDICES = (4, 9, 16)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

VGG_WEIGHTS_HELP = (
    "set --loss.vgg_weights to a local copy of torchvision's ImageNet VGG-16 weights (vgg16-397923af.pth, a "
    "state dict, or the same tensors as .safetensors; nothing is downloaded), or train without the perceptual "
    "and style terms with --loss.perceptual=0 --loss.style=0"
)


class VGG16Features(nn.Module):
    """Frozen VGG-16 (torchvision's layout) that returns the activations after pool1, pool2 and pool3.

    Constructed with random weights and no I/O; ``load_vgg16_features(path)`` gives the ImageNet ones. The
    ImageNet normalisation belongs to the weights, so it happens here.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for item in _VGG16_TO_POOL3:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c_in, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c_in = int(item)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Features:
        return super().train(False)  # no dropout or BatchNorm here; always inference behaviour

    def forward(self, image: Tensor) -> list[Tensor]:
        """Args: image (N, 3, H, W) RGB in [0, 1]. Returns: [(N, 64, H/2, W/2), (N, 128, H/4, W/4),
        (N, 256, H/8, W/8)], the pool1..pool3 activations."""
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        pools = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _POOL_INDICES:
                pools.append(x)
        return pools


def load_vgg16_features(path: str | Path) -> VGG16Features:
    """Load ImageNet VGG-16 weights from a local file into ``VGG16Features``.

    Args:
        path: torchvision's ``vgg16-397923af.pth`` (a state dict with ``features.N.weight`` keys; the classifier
            keys are ignored) or a ``.safetensors`` file with the same keys.
    Raises:
        FileNotFoundError: the file does not exist (the message says what file is needed).
        ValueError: the file is unreadable or lacks VGG-16 conv1_1..conv3_3.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG-16 weights file not found: {path}; {VGG_WEIGHTS_HELP}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise ValueError(f"cannot read VGG-16 weights from {path} ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict; expected torchvision's vgg16 state dict")
    model = VGG16Features()
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in state or tuple(state[k].shape) != tuple(wanted[k].shape)]
    if missing:
        raise ValueError(
            f"{path} is not a torchvision VGG-16 state dict: {missing[0]} is missing or has another "
            f"shape; {VGG_WEIGHTS_HELP}"
        )
    model.load_state_dict({k: state[k].float() for k in wanted})
    return model


def _gram(features: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, C) Gram matrix scaled by K_p = 1 / (C H W) (eq. 3), in fp32."""
    n, c, h, w = features.shape
    f = features.float().reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def _dilated_hole(valid_mask: Tensor) -> Tensor:
    """P of eq. 6: the hole (1 - M) dilated by one pixel (3x3 neighbourhood). (N, 1, H, W) in {0, 1}."""
    return F.max_pool2d(1 - valid_mask, kernel_size=3, stride=1, padding=1)


def hole_ssim_loss(comp: Tensor, target: Tensor, valid_mask: Tensor, *, win_size: int = 7) -> Tensor:
    """``1 - SSIM`` averaged over the windows that overlap the hole, per image, then over the batch.

    Windows that do not overlap the hole see the truth on both sides and score exactly 1, so per image this is
    ``1 - SSIM(comp, target)`` divided by the share of windows the hole reaches.

    Args:
        comp: (N, C, H, W) in [0, 1]; ``comp`` equals ``target`` on the known pixels.
        target: (N, C, H, W) in [0, 1], the ground truth.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known pixel.
    Returns:
        scalar in [0, 2]; images without a hole add 0.
    """
    loss_map = 1 - ssim_map(comp, target, win_size=win_size)  # (N, C, H - w + 1, W - w + 1)
    reached = F.max_pool2d(1 - valid_mask.to(loss_map.dtype), kernel_size=win_size, stride=1)  # (N, 1, ...)
    per_image = (loss_map * reached).flatten(1).sum(1) / (reached.flatten(1).sum(1) * loss_map.shape[1]).clamp_min(1)
    return per_image.mean()


def total_variation(comp: Tensor, region: Tensor) -> Tensor:
    """L1 of the horizontal and vertical differences of ``comp`` over neighbour pairs that both lie in ``region``.

    Args:
        comp: (N, C, H, W).
        region: (N, 1, H, W) in {0, 1}.
    Returns:
        scalar: the sum of those absolute differences divided by N*C*H*W.
    """
    dx = (comp[..., :, 1:] - comp[..., :, :-1]).abs() * (region[..., :, 1:] * region[..., :, :-1])
    dy = (comp[..., 1:, :] - comp[..., :-1, :]).abs() * (region[..., 1:, :] * region[..., :-1, :])
    return (dx.sum() + dy.sum()) / comp.numel()


class InpaintingLoss(nn.Module):
    """The paper's loss, each term returned on its own and weighted into ``total``.

    Args:
        config: term weights; the default is the paper's (valid 1, hole 6, perceptual 0.05, style 120, tv 0.1).
        vgg: the feature extractor for the perceptual and style terms; required when either weight is above 0.
    Raises:
        ValueError: a VGG term is asked for without ``vgg`` (the message names the weights file needed).
    """

    def __init__(self, config: LossConfig | None = None, *, vgg: VGG16Features | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()
        if self.config.needs_vgg and vgg is None:
            raise ValueError(
                f"loss.perceptual={self.config.perceptual} and loss.style={self.config.style} need "
                f"ImageNet VGG-16 weights: {VGG_WEIGHTS_HELP}"
            )
        self.vgg = vgg if self.config.needs_vgg else None

    def forward(self, output: Tensor, target: Tensor, valid_mask: Tensor) -> dict[str, Tensor]:
        """Compute the loss terms.

        Args:
            output: (N, 3, H, W), the network's raw prediction I_out, about [0, 1].
            target: (N, 3, H, W) in [0, 1], the ground truth I_gt.
            valid_mask: (N, 1, H, W) in {0, 1}, 1 = known pixel (the paper's M).
        Returns:
            scalars ``valid``, ``hole``, ``tv``; ``perceptual``, ``style_out``, ``style_comp`` when their weights
            are above 0; ``ssim`` and ``ssim_hole`` when their weights are above 0; and ``total``, the weighted sum.
        """
        cfg = self.config
        out, gt = output.float(), target.float()
        valid = valid_mask.to(out.dtype)
        comp = composite(gt, out, valid)
        diff = (out - gt).abs()
        terms = {
            "valid": (valid * diff).mean(),
            "hole": ((1 - valid) * diff).mean(),
            "tv": total_variation(comp, _dilated_hole(valid)),
        }
        total = cfg.valid * terms["valid"] + cfg.hole * terms["hole"] + cfg.tv * terms["tv"]
        if self.vgg is not None:
            n = out.shape[0]
            feats = self.vgg(torch.cat([out, comp, gt]))  # one pass over the three images, each (3N, C_p, ...)
            perceptual = out.new_zeros(())
            style_out, style_comp = out.new_zeros(()), out.new_zeros(())
            for f in feats:
                f_out, f_comp, f_gt = f.float().split(n)
                perceptual = perceptual + (f_out - f_gt).abs().mean() + (f_comp - f_gt).abs().mean()
                g_gt = _gram(f_gt)
                style_out = style_out + (_gram(f_out) - g_gt).abs().mean()
                style_comp = style_comp + (_gram(f_comp) - g_gt).abs().mean()
            terms.update(perceptual=perceptual, style_out=style_out, style_comp=style_comp)
            total = total + cfg.perceptual * perceptual + cfg.style * (style_out + style_comp)
        if cfg.ssim > 0:
            terms["ssim"] = 1 - ssim(comp, gt).mean()
            total = total + cfg.ssim * terms["ssim"]
        if cfg.ssim_hole > 0:
            terms["ssim_hole"] = hole_ssim_loss(comp, gt, valid)
            total = total + cfg.ssim_hole * terms["ssim_hole"]
        terms["total"] = total
        return terms


def build_loss(config: LossConfig) -> InpaintingLoss:
    """``InpaintingLoss`` with the VGG-16 weights read from ``config.vgg_weights`` when a VGG term is on.

    Raises:
        ValueError, FileNotFoundError: a VGG term is on and the weights file is not given, missing or unusable.
    """
    vgg = None
    if config.needs_vgg:
        if not config.vgg_weights:
            raise ValueError(
                f"loss.perceptual={config.perceptual} and loss.style={config.style} need ImageNet "
                f"VGG-16 weights, and loss.vgg_weights is not set: {VGG_WEIGHTS_HELP}"
            )
        vgg = load_vgg16_features(config.vgg_weights)
    return InpaintingLoss(config, vgg=vgg)
