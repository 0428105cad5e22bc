"""PartialConv2d against a direct loop over the paper's equations (arXiv 1804.07723, eq. 1-2)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from pconv.layers import PartialConv2d


def loop_reference(layer: PartialConv2d, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slow, literal eq. 1-2 in float64: one window at a time, mask broadcast to every input channel."""
    x, mask = x.double(), mask.double().expand_as(x) if mask.shape[1] == 1 else mask.double()
    w = layer.weight.double()
    b = layer.bias.double() if layer.bias is not None else None
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    xp = F.pad(x, (pw, pw, ph, ph))
    mp = F.pad(mask, (pw, pw, ph, ph))  # padding is hole
    n, c, hp, wp = xp.shape
    ho = (hp - dh * (kh - 1) - 1) // sh + 1
    wo = (wp - dw * (kw - 1) - 1) // sw + 1
    out = torch.zeros(n, layer.out_channels, ho, wo, dtype=torch.float64)
    new = torch.zeros(n, 1, ho, wo, dtype=torch.float64)
    # sum(1) counts the mask's own elements: C_in*k*k for a multi-channel mask, k*k for a single-channel one.
    single = mask.shape[1] == layer.in_channels and not layer.multi_channel
    for i, j in itertools.product(range(ho), range(wo)):
        rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
        cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
        xw, mw = xp[:, :, rows, cols], mp[:, :, rows, cols]
        if single:
            msum, window = mw[:, :1].sum(dim=(1, 2, 3)), kh * kw
        else:
            msum, window = mw.sum(dim=(1, 2, 3)), c * kh * kw
        for k in range(n):
            if msum[k] > 0:
                val = (w * (xw[k] * mw[k])[None]).sum(dim=(1, 2, 3)) * window / msum[k]
                out[k, :, i, j] = val + (b if b is not None else 0)
                new[k, 0, i, j] = 1
    return out, new


def random_mask(n: int, c: int, h: int, w: int, *, p: float = 0.5) -> torch.Tensor:
    mask = (torch.rand(n, c, h, w) > p).float()
    mask[0, :, :3, :3] = 0  # a hole big enough for hole-only windows
    return mask


CASES = list(itertools.product([1, 3], [1, 2], [0, 1, 3], [1, 2], [True, False]))


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation", "bias"), CASES)
def test_single_channel_mask_matches_loop(kernel: int, stride: int, padding: int, dilation: int, bias: bool) -> None:
    layer = PartialConv2d(3, 4, kernel, stride, padding, dilation, bias=bias)
    with torch.no_grad():
        if bias:
            layer.bias.uniform_(-1, 1)
    x, mask = torch.randn(2, 3, 9, 8), random_mask(2, 1, 9, 8)
    out, new = layer(x, mask)
    ref_out, ref_new = loop_reference(layer, x, mask)
    torch.testing.assert_close(out.double(), ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(new.double(), ref_new)


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation", "bias"), CASES)
def test_multi_channel_mask_matches_loop(kernel: int, stride: int, padding: int, dilation: int, bias: bool) -> None:
    layer = PartialConv2d(3, 4, kernel, stride, padding, dilation, bias=bias, multi_channel=True)
    with torch.no_grad():
        if bias:
            layer.bias.uniform_(-1, 1)
    x, mask = torch.randn(2, 3, 9, 8), random_mask(2, 3, 9, 8)
    out, new = layer(x, mask)
    ref_out, ref_new = loop_reference(layer, x, mask)
    torch.testing.assert_close(out.double(), ref_out, rtol=1e-5, atol=1e-5)
    assert new.shape == (2, 4, *ref_out.shape[2:])
    torch.testing.assert_close(new.double(), ref_new.expand_as(new))


def test_multi_channel_broadcasts_single_channel_mask() -> None:
    layer = PartialConv2d(3, 4, 3, padding=1, multi_channel=True)
    x, mask = torch.randn(2, 3, 8, 8), random_mask(2, 1, 8, 8)
    out_b, new_b = layer(x, mask)
    out_f, new_f = layer(x, mask.expand(-1, 3, -1, -1))
    torch.testing.assert_close(out_b, out_f)
    torch.testing.assert_close(new_b, new_f)


def test_forward_concat_equals_multi_channel_on_concatenation() -> None:
    layer = PartialConv2d(5, 4, 3, padding=1, multi_channel=True)
    xs = [torch.randn(2, 2, 8, 8), torch.randn(2, 3, 8, 8)]
    ms = [random_mask(2, 1, 8, 8, p=0.7), random_mask(2, 1, 8, 8, p=0.3)]
    out, new = layer.forward_concat(xs, ms)
    full_mask = torch.cat([ms[0].expand(-1, 2, -1, -1), ms[1].expand(-1, 3, -1, -1)], dim=1)
    ref_out, ref_new = loop_reference(layer, torch.cat(xs, 1), full_mask)
    torch.testing.assert_close(out.double(), ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(new.double(), ref_new.expand_as(new))


def test_all_valid_without_padding_equals_conv2d() -> None:
    layer = PartialConv2d(3, 5, 3)
    conv = torch.nn.Conv2d(3, 5, 3)
    conv.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 10, 10)
    out, new = layer(x, torch.ones(2, 1, 10, 10))
    torch.testing.assert_close(out, conv(x))
    assert bool((new == 1).all())


def test_border_with_padding_renormalised_upward() -> None:
    """Zero padding counts as hole: interior equals conv2d, border windows are scaled by sum(1)/sum(M) > 1."""
    layer = PartialConv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = torch.ones(1, 1, 6, 6)
    out, _ = layer(x, torch.ones(1, 1, 6, 6))
    # Every window of a constant image renormalises to the full-window sum: no dark border.
    torch.testing.assert_close(out, torch.full_like(out, 9.0))


def test_output_ignores_hole_pixels_and_grad_is_zero_there() -> None:
    layer = PartialConv2d(3, 4, 3, padding=1)
    mask = random_mask(2, 1, 8, 8)
    x1 = torch.randn(2, 3, 8, 8, requires_grad=True)
    x2 = x1.detach() + (1 - mask) * torch.randn(2, 3, 8, 8) * 100
    out1, _ = layer(x1, mask)
    out2, _ = layer(x2, mask)
    torch.testing.assert_close(out1, out2)
    out1.sum().backward()
    assert bool((x1.grad * (1 - mask) == 0).all())


def test_hole_only_window_gives_zero_output_and_mask_update_is_maxpool() -> None:
    layer = PartialConv2d(2, 3, 3, stride=2, padding=1)
    with torch.no_grad():
        layer.bias.fill_(5.0)  # a bias leaking into hole windows would show
    mask = random_mask(2, 1, 12, 12, p=0.85)
    out, new = layer(torch.randn(2, 2, 12, 12), mask)
    torch.testing.assert_close(new, F.max_pool2d(mask, 3, 2, 1))
    assert bool((out * (1 - new) == 0).all())
    assert bool((new == 0).any())


def test_no_gradient_into_mask() -> None:
    layer = PartialConv2d(2, 2, 3, padding=1)
    mask = random_mask(1, 1, 6, 6).requires_grad_(True)
    out, new = layer(torch.randn(1, 2, 6, 6), mask)
    assert not new.requires_grad
    out.sum().backward()
    assert mask.grad is None or bool((mask.grad == 0).all())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_autocast_is_finite_and_close(dtype: torch.dtype) -> None:
    # Large mask sums (C*k*k = 64*9 = 576) with a single valid pixel: the largest ratio the layer can produce.
    layer = PartialConv2d(64, 8, 3, padding=1, multi_channel=True)
    mask = torch.zeros(1, 1, 8, 8)
    mask[0, 0, 4, 4] = 1
    x = torch.randn(1, 64, 8, 8)
    ref, _ = layer(x, mask)
    with torch.autocast("cpu", dtype=dtype):
        out, new = layer(x, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_autocast_is_finite(dtype: torch.dtype) -> None:
    layer = PartialConv2d(64, 8, 3, padding=1).cuda()
    mask = (torch.rand(2, 1, 16, 16) > 0.9).float().cuda()
    with torch.autocast("cuda", dtype=dtype):
        out, _ = layer(torch.randn(2, 64, 16, 16).cuda(), mask)
    assert torch.isfinite(out).all()


def test_mask_of_wrong_shape_is_rejected() -> None:
    layer = PartialConv2d(3, 4, 3)
    with pytest.raises(ValueError, match="channels"):
        layer(torch.randn(1, 3, 8, 8), torch.ones(1, 3, 8, 8))
    with pytest.raises(ValueError, match="does not fit"):
        layer(torch.randn(1, 3, 8, 8), torch.ones(1, 1, 7, 8))
