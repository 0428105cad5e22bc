"""Partial convolution (Liu et al., ECCV 2018, arXiv 1804.07723, eq. 1 and 2; padding per arXiv 1811.11718).

For every output location, with ``X`` the input window, ``M`` the valid-mask window (1 = known pixel):

    x' = W^T (X * M) * sum(1) / sum(M) + b    where sum(M) > 0       (eq. 1)
    x' = 0                                    elsewhere
    m' = 1 where sum(M) > 0, else 0                                  (eq. 2, the mask update)

``sum(1)`` is the element count of the window *for the mask's own channel count*: ``k_h * k_w`` for a
single-channel mask, ``C_in * k_h * k_w`` for a multi-channel one. Zero padding counts as hole
("partial convolution based padding"). The mask path is computed in fp32 outside autocast, so the
sums (up to ``C * k * k``) stay exact under bf16/fp16, and carries no gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PartialConv2d", "PConvBlock"]


class PartialConv2d(nn.Conv2d):
    """``nn.Conv2d`` with the paper's re-normalisation and mask update.

    Args:
        in_channels: as ``nn.Conv2d``.
        out_channels: as ``nn.Conv2d``.
        kernel_size: as ``nn.Conv2d``.
        stride: as ``nn.Conv2d``.
        padding: as ``nn.Conv2d`` (``padding_mode`` is always zeros, and the padding counts as hole).
        dilation: as ``nn.Conv2d``.
        bias: as ``nn.Conv2d``.
        multi_channel: if True the valid mask has one channel per input channel and the new mask one
            channel per output channel; if False both masks have a single channel.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        multi_channel: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups=1, bias=bias)
        self.multi_channel = multi_channel
        # All-ones kernel of the mask update (eq. 2): fixed, not a parameter, not in the state dict.
        self.register_buffer("ones_kernel", torch.ones(1, 1, *self.kernel_size), persistent=False)

    @property
    def window_size(self) -> int:
        """``k_h * k_w``: the element count of a single-channel window."""
        return self.kernel_size[0] * self.kernel_size[1]

    def mask_sum(self, valid_mask: Tensor) -> Tensor:
        """``sum(M)`` over each window of a single-channel mask.

        Args:
            valid_mask: (N, 1, H, W) in {0, 1}, 1 = known pixel.
        Returns:
            (N, 1, H', W') float32 counts of valid pixels per window.
        """
        with torch.no_grad(), torch.autocast(valid_mask.device.type, enabled=False):
            return F.conv2d(
                valid_mask.float(), self.ones_kernel.float(), None, self.stride, self.padding, self.dilation
            )

    def forward(self, x: Tensor, valid_mask: Tensor, *, premasked: bool = False) -> tuple[Tensor, Tensor]:
        """Partial convolution of ``x`` restricted to the known pixels.

        Args:
            x: (N, C_in, H, W) features.
            valid_mask: 1 = known, 0 = hole; (N, 1, H, W) when ``multi_channel`` is False, (N, C_in, H, W)
                or (N, 1, H, W) (broadcast to every channel) when True.
            premasked: the caller guarantees ``x`` is already 0 wherever ``valid_mask`` is 0, so ``X * M`` is
                skipped (the result is the same; a wrong guarantee gives wrong results).
        Returns:
            out: (N, C_out, H', W'), zero wherever the window holds no known pixel.
            new_mask: (N, 1, H', W') or, with ``multi_channel``, (N, C_out, H', W'); 1 where any known pixel
                fell in the window. Same dtype as ``valid_mask``.
        """
        if valid_mask.dim() != 4 or valid_mask.shape[0] != x.shape[0] or valid_mask.shape[2:] != x.shape[2:]:
            raise ValueError(f"valid_mask of shape {tuple(valid_mask.shape)} does not fit x of shape {tuple(x.shape)}")
        valid_mask = valid_mask.detach()  # the mask is data, never a learned quantity: no gradient into it
        if valid_mask.shape[1] == 1:
            # One mask for every channel: sum(M) = C_in * conv(m, 1) and sum(1) = C_in * k * k in multi-channel
            # mode; the factor C_in cancels in the ratio, so both modes use the single-channel sums.
            msum = self.mask_sum(valid_mask)
            window = self.window_size
        elif self.multi_channel and valid_mask.shape[1] == self.in_channels:
            msum = self.mask_sum(valid_mask.sum(dim=1, keepdim=True))
            window = self.window_size * self.in_channels
        else:
            raise ValueError(
                f"valid_mask has {valid_mask.shape[1]} channels; expected 1"
                + (f" or {self.in_channels}" if self.multi_channel else " (multi_channel=False)")
            )
        out = self._conv_forward(x if premasked else x * valid_mask.to(x.dtype), self.weight, None)
        return self._renormalise(out, msum, window, valid_mask.dtype)

    def forward_concat(
        self, xs: Sequence[Tensor], valid_masks: Sequence[Tensor], *, premasked: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Partial convolution of ``torch.cat(xs, 1)`` where segment ``i`` has its own single-channel mask.

        Equal to ``forward`` in multi-channel mode on the concatenation with each segment's mask repeated over
        its channels, but the mask sums come from 1-channel convolutions: ``sum(M) = sum_i C_i * conv(m_i, 1)``
        and ``sum(1) = C_in * k * k``. This is how the U-Net decoder joins upsampled and skip features.

        Args:
            xs: tensors (N, C_i, H, W) with ``sum(C_i) == in_channels``.
            valid_masks: tensors (N, 1, H, W), 1 = known, one per segment.
            premasked: each ``xs[i]`` is already 0 wherever ``valid_masks[i]`` is 0 (skip the products).
        Returns:
            out: (N, C_out, H', W'); new_mask: (N, 1, H', W') (or (N, C_out, H', W') with ``multi_channel``).
        """
        if len(xs) != len(valid_masks) or sum(x.shape[1] for x in xs) != self.in_channels:
            raise ValueError(f"segments of {[x.shape[1] for x in xs]} channels do not make {self.in_channels}")
        valid_masks = [m.detach() for m in valid_masks]
        with torch.no_grad():
            weighted = valid_masks[0].float() * xs[0].shape[1]  # (N, 1, H, W) channel counts
            for x, m in zip(xs[1:], valid_masks[1:]):
                weighted.add_(m.float(), alpha=x.shape[1])  # exact: small integers in fp32
        msum = self.mask_sum(weighted)
        if not premasked:
            xs = [x * m.to(x.dtype) for x, m in zip(xs, valid_masks)]
        x = torch.cat(list(xs), dim=1)  # (N, C_in, H, W)
        out = self._conv_forward(x, self.weight, None)
        return self._renormalise(out, msum, self.window_size * self.in_channels, valid_masks[0].dtype)

    def _renormalise(self, out: Tensor, msum: Tensor, window: int, mask_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Apply ``sum(1)/sum(M)``, the bias where ``sum(M) > 0``, and zero elsewhere (eq. 1 and 2)."""
        with torch.no_grad(), torch.autocast(out.device.type, enabled=False):
            # Exact fp32 ratio sum(1)/sum(M), 0 where the window is all hole (1/0 = inf -> 0), in three in-place
            # ops on a fresh tensor; the new mask is its sign. Few ops: each one is a thread-pool round trip.
            ratio = msum.reciprocal().mul_(window)  # (N, 1, H', W'), inf where the window is all hole
            if torch.onnx.is_in_onnx_export():  # the same values as one select: nan_to_num exports float64 casts,
                ratio = torch.where(msum > 0, ratio, torch.zeros_like(ratio))  # which WebGPU cannot run
            else:
                ratio.nan_to_num_(posinf=0.0)
            new_mask = ratio.sign()  # (N, 1, H', W') in {0, 1}
        # In place on the fresh convolution output (autograd allows it: the convolution's backward does not
        # need its output): one pass for the ratio, one for the bias where sum(M) > 0 (bias * m is exact).
        out.mul_(ratio.to(out.dtype))
        if self.bias is not None:
            out.addcmul_(self.bias.view(1, -1, 1, 1).to(out.dtype), new_mask.to(out.dtype))
        if self.multi_channel:
            new_mask = new_mask.expand(-1, self.out_channels, -1, -1)
        return out, new_mask.to(mask_dtype)


class PConvBlock(nn.Module):
    """Partial convolution, then optional BatchNorm, then optional activation.

    Args:
        in_channels: of the partial convolution.
        out_channels: of the partial convolution.
        kernel_size: of the partial convolution; padding is ``kernel_size // 2``.
        stride: of the partial convolution.
        bn: add a BatchNorm2d (then the convolution has no bias, as BN's shift replaces it).
        activation: ``"relu"``, ``"leaky"`` (LeakyReLU 0.2) or ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        bn: bool = True,
        activation: str | None = "relu",
    ) -> None:
        super().__init__()
        self.conv = PartialConv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=not bn)
        self.bn = nn.BatchNorm2d(out_channels) if bn else None
        if activation == "relu":
            self.act: nn.Module | None = nn.ReLU(inplace=True)
        elif activation == "leaky":
            self.act = nn.LeakyReLU(0.2, inplace=True)
        elif activation is None:
            self.act = None
        else:
            raise ValueError(f"unknown activation {activation!r}; use 'relu', 'leaky' or None")

    def forward(
        self, xs: Sequence[Tensor], valid_masks: Sequence[Tensor], *, premasked: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Run the block on feature segments ``xs`` (N, C_i, H, W) with masks (N, 1, H, W), 1 = known.

        With ``premasked`` the segments are already 0 in their holes (see ``PartialConv2d.forward``). Without
        BatchNorm the block's output is itself 0 wherever its new mask is 0 (the activations map 0 to 0).
        """
        if len(xs) == 1:
            out, new_mask = self.conv(xs[0], valid_masks[0], premasked=premasked)
        else:
            out, new_mask = self.conv.forward_concat(xs, valid_masks, premasked=premasked)
        if self.bn is not None:
            out = self.bn(out)
        if self.act is not None:
            out = self.act(out)
        return out, new_mask

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the BatchNorm's running statistics into the convolution, in place (for inference only).

        BN(y) = s * y + t with ``s = gamma / sqrt(var + eps)``, ``t = beta - mean * s``. Scaling the weight by
        ``s`` scales ``W^T(X*M) * sum(1)/sum(M)`` by ``s``; ``s * b + t`` becomes the convolution's bias, which
        the partial convolution adds only where ``sum(M) > 0``. So the folded block equals the original wherever
        its new mask is 1 and gives 0 (not ``act(t)``) in the holes, which every later partial convolution
        multiplies by 0 anyway. Call it on a block in eval mode; it does nothing without BatchNorm.
        """
        if self.bn is None:
            return
        bn, conv = self.bn, self.conv
        scale = torch.rsqrt(bn.running_var.double() + bn.eps)  # (C_out,), folded in float64, then cast back
        shift = -bn.running_mean.double() * scale
        if bn.affine:
            scale, shift = scale * bn.weight.double(), shift * bn.weight.double() + bn.bias.double()
        bias = shift if conv.bias is None else conv.bias.double() * scale + shift
        conv.weight.mul_(scale.to(conv.weight.dtype).view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
        self.bn = None
