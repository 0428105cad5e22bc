"""Property-based tests (hypothesis) of the layer and the inference pipeline, over random sizes and masks.

- ``Inpainter``: any image size (1..80 a side) and any hole mask -> an output of the same size and kind, every
  known pixel bit-identical to the input, every value finite; also on the windowed large-image path. A mask that
  leaves no known pixel is refused (``NoKnownPixelError``), never filled.
- ``PartialConv2d`` (arXiv 1804.07723, eq. 1-2): random shapes, kernels, strides, paddings and dilations give
  finite outputs of ``nn.Conv2d``'s shape, a new mask in {0, 1}, and outputs that ignore the content of holes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pconv.config import ModelConfig
from pconv.inference import Inpainter, NoKnownPixelError
from pconv.layers import PartialConv2d
from pconv.model import PConvUNet

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def model() -> PConvUNet:
    torch.manual_seed(0)
    return PConvUNet(ModelConfig(depth=4, width=0.125)).eval()


def _fill_or_refused(inpainter: Inpainter, image, hole):
    """``inpainter(image, hole)``, or None after checking that a hole covering everything is refused."""
    if hole.all():
        with pytest.raises(NoKnownPixelError):
            inpainter(image, hole)
        return None
    return inpainter(image, hole)


def _hole_mask(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    """(h, w) uint8 in {0, 1}, 1 = hole: no hole, all hole, random speckle, or a box."""
    if kind == "none":
        return np.zeros((h, w), np.uint8)
    if kind == "all":
        return np.ones((h, w), np.uint8)
    if kind == "speckle":
        return (rng.random((h, w)) < rng.uniform(0.05, 0.95)).astype(np.uint8)
    hole = np.zeros((h, w), np.uint8)
    y, x = rng.integers(0, h), rng.integers(0, w)
    hole[y : y + rng.integers(1, h + 1), x : x + rng.integers(1, w + 1)] = 1
    return hole


image_sizes = st.tuples(st.integers(1, 80), st.integers(1, 80))
mask_kinds = st.sampled_from(["none", "all", "speckle", "box"])


@SETTINGS
@given(size=image_sizes, kind=mask_kinds, seed=st.integers(0, 2**31), with_alpha=st.booleans())
def test_inpainter_keeps_size_and_known_pixels_for_any_numpy_image(model, size, kind, seed, with_alpha) -> None:
    h, w = size
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 4 if with_alpha else 3), dtype=np.uint8)
    hole = _hole_mask(rng, h, w, kind)
    out = _fill_or_refused(Inpainter(model=model, device="cpu"), image, hole)
    if out is None:
        return
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[hole == 0], image[hole == 0])  # known pixels bit-identical (alpha everywhere)
    if with_alpha:
        assert np.array_equal(out[:, :, 3], image[:, :, 3])


@SETTINGS
@given(
    size=image_sizes, kind=mask_kinds, seed=st.integers(0, 2**31), dtype=st.sampled_from([torch.float32, torch.float64])
)
def test_inpainter_tensor_output_is_finite_and_known_pixels_exact(model, size, kind, seed, dtype) -> None:
    h, w = size
    rng = np.random.default_rng(seed)
    image = torch.from_numpy(rng.random((3, h, w))).to(dtype)
    hole = torch.from_numpy(_hole_mask(rng, h, w, kind))
    out = _fill_or_refused(Inpainter(model=model, device="cpu"), image, hole)
    if out is None:
        return
    assert out.shape == image.shape and out.dtype == dtype
    assert torch.isfinite(out).all()
    known = (hole == 0).expand_as(image)
    assert torch.equal(out[known], image[known])
    assert out.min() >= 0 and out.max() <= 1


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.tuples(st.integers(40, 150), st.integers(40, 150)), kind=mask_kinds, seed=st.integers(0, 2**31),
       max_side=st.sampled_from([16, 24, 32]))  # fmt: skip
def test_windowed_large_image_path_keeps_size_and_known_pixels(model, size, kind, seed, max_side) -> None:
    # max_side far below the image's sides forces the window-by-window path (and its resize-down fallback).
    h, w = size
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    hole = _hole_mask(rng, h, w, kind)
    inpainter = Inpainter(model=model, device="cpu", max_side=max_side, margin=int(rng.integers(0, 20)))
    out = _fill_or_refused(inpainter, image, hole)
    if out is None:
        return
    assert out.shape == image.shape
    assert np.array_equal(out[hole == 0], image[hole == 0])


layer_shapes = st.fixed_dictionaries(
    {
        "n": st.integers(1, 2),
        "c_in": st.integers(1, 4),
        "c_out": st.integers(1, 4),
        "kernel": st.integers(1, 5),
        "stride": st.integers(1, 3),
        "padding": st.integers(0, 2),
        "dilation": st.integers(1, 2),
        "h": st.integers(1, 14),
        "w": st.integers(1, 14),
        "bias": st.booleans(),
        "multi_channel": st.booleans(),
        "hole_fraction": st.floats(0, 1),
    }
)


def _layer_case(p: dict, seed: int) -> tuple[PartialConv2d, torch.Tensor, torch.Tensor] | None:
    span = p["dilation"] * (p["kernel"] - 1) + 1
    if p["h"] + 2 * p["padding"] < span or p["w"] + 2 * p["padding"] < span:
        return None  # no output pixel: nn.Conv2d refuses these sizes too
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = PartialConv2d(p["c_in"], p["c_out"], p["kernel"], p["stride"], p["padding"], p["dilation"],
                          bias=p["bias"], multi_channel=p["multi_channel"])  # fmt: skip
    x = torch.randn(p["n"], p["c_in"], p["h"], p["w"], generator=g)
    mask_channels = p["c_in"] if p["multi_channel"] else 1
    valid = (torch.rand(p["n"], mask_channels, p["h"], p["w"], generator=g) >= p["hole_fraction"]).float()
    return layer, x, valid


@settings(max_examples=50, deadline=None, derandomize=True)
@given(p=layer_shapes, seed=st.integers(0, 2**31))
def test_partial_conv_is_finite_with_conv_shape_and_binary_new_mask(p, seed) -> None:
    case = _layer_case(p, seed)
    if case is None:
        return
    layer, x, valid = case
    with torch.no_grad():
        out, new_mask = layer(x, valid)
        reference = F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation)
    assert out.shape == reference.shape and torch.isfinite(out).all()
    assert new_mask.shape[-2:] == out.shape[-2:] and new_mask.shape[1] == (p["c_out"] if p["multi_channel"] else 1)
    assert ((new_mask == 0) | (new_mask == 1)).all()
    assert (out[(new_mask == 0).expand_as(out)] == 0).all()  # windows with no known pixel output 0 (eq. 1)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(p=layer_shapes, seed=st.integers(0, 2**31), scale=st.sampled_from([1.0, 1e3, 1e6]))
def test_partial_conv_output_ignores_what_is_in_the_holes(p, seed, scale) -> None:
    case = _layer_case(p, seed)
    if case is None:
        return
    layer, x, valid = case
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1)) * scale
    other = torch.where(valid.expand_as(x) > 0, x, noise)  # same known pixels, anything in the holes
    with torch.no_grad():
        out_a, mask_a = layer(x, valid)
        out_b, mask_b = layer(other, valid)
    assert torch.equal(out_a, out_b) and torch.equal(mask_a, mask_b)
