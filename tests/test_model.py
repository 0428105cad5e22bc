"""PConvUNet: the paper's layer list, shapes at any size, hole-content invariance, BN freeze, weights files, and the
optional EdgeRefine head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pconv.config import ModelConfig
from pconv.layers import PartialConv2d
from pconv.model import PConvUNet, WeightsError, composite, fuse_for_inference, load_weights, save_weights

TINY = ModelConfig(depth=4, width=0.125)


def hole_mask_like(n: int, h: int, w: int) -> torch.Tensor:
    """(N, 1, H, W) valid mask with a rectangle hole and random specks, 1 = known."""
    valid = (torch.rand(n, 1, h, w) > 0.1).float()
    valid[:, :, h // 4 : h // 2, w // 3 : w // 2 + 3] = 0
    return valid


def describe(block: nn.Module) -> tuple:
    conv: PartialConv2d = block.conv
    bn = block.bn is not None
    act = type(block.act).__name__ if block.act is not None else None
    return (conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], bn, act)


def test_default_network_is_the_papers_layer_list() -> None:
    model = PConvUNet()
    encoder = [describe(b) for b in model.encoder]
    assert encoder == [
        (3, 64, 7, 2, False, "ReLU"),
        (64, 128, 5, 2, True, "ReLU"),
        (128, 256, 5, 2, True, "ReLU"),
        (256, 512, 3, 2, True, "ReLU"),
        (512, 512, 3, 2, True, "ReLU"),
        (512, 512, 3, 2, True, "ReLU"),
        (512, 512, 3, 2, True, "ReLU"),
        (512, 512, 3, 2, True, "ReLU"),
    ]
    # Decoder steps 8..1: upsampled features + skip features in, 512,512,512,512,256,128,64,3 out.
    decoder = [describe(model.decoder[i]) for i in reversed(range(8))]
    assert decoder == [
        (512 + 512, 512, 3, 1, True, "LeakyReLU"),
        (512 + 512, 512, 3, 1, True, "LeakyReLU"),
        (512 + 512, 512, 3, 1, True, "LeakyReLU"),
        (512 + 512, 512, 3, 1, True, "LeakyReLU"),
        (512 + 256, 256, 3, 1, True, "LeakyReLU"),
        (256 + 128, 128, 3, 1, True, "LeakyReLU"),
        (128 + 64, 64, 3, 1, True, "LeakyReLU"),
        (64 + 3, 3, 3, 1, False, None),
    ]
    assert all(m.negative_slope == 0.2 for m in model.modules() if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, (nn.Sigmoid, nn.Tanh)) for m in model.modules())


def test_paper_network_at_512_gives_full_output_and_mask() -> None:
    model = PConvUNet().eval()
    valid = hole_mask_like(1, 512, 512)
    with torch.inference_mode():
        out, out_mask = model(torch.rand(1, 3, 512, 512), valid)
    assert out.shape == (1, 3, 512, 512)
    assert out_mask.shape == (1, 1, 512, 512)
    assert bool((out_mask == 1).all())  # 8 stride-2 layers see every pixel from some known one
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("h", "w"), [(16, 16), (17, 23), (1, 1), (33, 64), (5, 100)])
def test_any_size_is_padded_and_cropped_back(h: int, w: int) -> None:
    model = PConvUNet(TINY).eval()
    valid = torch.ones(2, 1, h, w)
    valid[0, 0, 0, 0] = 0
    with torch.inference_mode():
        out, out_mask = model(torch.rand(2, 3, h, w), valid)
    assert out.shape == (2, 3, h, w) and out_mask.shape == (2, 1, h, w)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("config", [TINY, ModelConfig(depth=8, width=0.0625)])
def test_output_ignores_hole_pixels(config: ModelConfig) -> None:
    model = PConvUNet(config).eval()
    image = torch.rand(2, 3, 64, 48)
    valid = hole_mask_like(2, 64, 48)
    scribbled = image * valid + (1 - valid) * torch.rand_like(image) * 50
    with torch.inference_mode():
        out1, _ = model(image, valid)
        out2, _ = model(scribbled, valid)
    torch.testing.assert_close(out1, out2)


def test_hole_ignored_in_training_mode_and_gradient_zero_there() -> None:
    model = PConvUNet(TINY).train()
    valid = hole_mask_like(2, 32, 32)
    image = torch.rand(2, 3, 32, 32, requires_grad=True)
    out, _ = model(image, valid)
    out.sum().backward()
    assert bool((image.grad * (1 - valid) == 0).all())


def test_encoder_masks_only_shrink_holes_and_all_valid_stays_valid() -> None:
    model = PConvUNet(TINY).eval()
    valid = hole_mask_like(1, 64, 64)
    masks = []
    x, mask = valid.expand(-1, 3, -1, -1), valid
    with torch.inference_mode():
        for block in model.encoder:
            x, mask = block([x], [mask])
            masks.append(mask)
    fractions = [1 - valid.mean().item()] + [1 - m.mean().item() for m in masks]
    assert all(a >= b for a, b in zip(fractions, fractions[1:]))
    with torch.inference_mode():
        _, out_mask = model(torch.rand(1, 3, 64, 64), torch.ones(1, 1, 64, 64))
    assert bool((out_mask == 1).all())


def test_composite_keeps_known_pixels_exactly() -> None:
    image, pred = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    valid = hole_mask_like(2, 8, 8)
    comp = composite(image, pred, valid)
    assert torch.equal(comp * valid, image * valid)
    assert torch.equal(comp * (1 - valid), pred * (1 - valid))


def test_freeze_encoder_bn_keeps_running_stats_but_decoder_updates() -> None:
    model = PConvUNet(TINY, freeze_encoder_bn=True).train()
    enc_bn, dec_bn = model.encoder[1].bn, model.decoder[1].bn
    before_enc, before_dec = enc_bn.running_mean.clone(), dec_bn.running_mean.clone()
    model(torch.rand(2, 3, 32, 32), hole_mask_like(2, 32, 32))
    assert torch.equal(enc_bn.running_mean, before_enc)
    assert not torch.equal(dec_bn.running_mean, before_dec)
    assert not enc_bn.training and dec_bn.training


def test_freeze_decoder_bn_keeps_every_statistic_and_trains_like_eval_mode() -> None:
    model = PConvUNet(TINY, freeze_encoder_bn=True, freeze_decoder_bn=True)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    x, valid = torch.rand(2, 3, 32, 32), hole_mask_like(2, 32, 32)
    out_train, _ = model(x, valid)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    out_eval, _ = model.eval()(x, valid)
    assert torch.equal(out_train, out_eval)


def test_width_and_depth_build_a_small_model() -> None:
    small = PConvUNet(ModelConfig(depth=8, width=0.5))
    n_params = sum(p.numel() for p in small.parameters())
    assert 8.0e6 < n_params < 8.5e6  # METHOD.md: the half-width paper network has 8.2 M parameters


def test_weights_round_trip_gives_identical_output(tmp_path: Path) -> None:
    model = PConvUNet(TINY).eval()
    path = save_weights(model, tmp_path / "m.safetensors")
    loaded = load_weights(path)
    assert loaded.config == TINY
    x, valid = torch.rand(1, 3, 32, 32), hole_mask_like(1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x, valid)[0], model(x, valid)[0], rtol=0, atol=0)


def test_bad_weights_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_text("not weights")
    with pytest.raises(WeightsError, match="not a readable"):
        load_weights(junk)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(WeightsError, match="no pconv model config"):
        load_weights(other)


def test_mismatched_inputs_are_rejected() -> None:
    model = PConvUNet(TINY)
    with pytest.raises(ValueError, match="differ in size"):
        model(torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 15))
    with pytest.raises(ValueError, match="expected image"):
        model(torch.rand(1, 3, 16, 16), torch.ones(1, 3, 16, 16))


def test_config_rejects_bad_values_and_unknown_keys() -> None:
    with pytest.raises(ValueError, match="depth"):
        ModelConfig(depth=0)
    with pytest.raises(ValueError, match="width"):
        ModelConfig(width=-1)
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"depth": 4, "colour": 3})


def test_weights_with_malformed_config_metadata_give_a_weights_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in PConvUNet(TINY).state_dict().items()}
    for bad in ("{not json", '{"depth": "deep"}', "[1, 2]"):
        path = tmp_path / "bad.safetensors"
        save_file(state, str(path), metadata={"pconv_model_config": bad})
        with pytest.raises(WeightsError, match="unreadable pconv model config"):
            load_weights(path)


def test_edge_refine_starts_as_the_plain_network_and_reads_only_known_pixels(tmp_path: Path) -> None:
    plain = PConvUNet(TINY).eval()
    refined = PConvUNet(ModelConfig(depth=4, width=0.125, edge_refine=8)).eval()
    refined.load_state_dict(plain.state_dict(), strict=False)  # the same backbone, a new head
    image, valid = torch.rand(2, 3, 40, 36), hole_mask_like(2, 40, 36)
    with torch.inference_mode():
        torch.testing.assert_close(refined(image, valid)[0], plain(image, valid)[0])  # new head: unchanged
        torch.nn.init.normal_(refined.refine.out.weight, std=0.1)
        out, mask = refined(image, valid)
        assert not torch.allclose(out, plain(image, valid)[0]) and mask.shape == (2, 1, 40, 36)
        scribbled = image * valid + (1 - valid) * torch.rand_like(image) * 50
        torch.testing.assert_close(refined(scribbled, valid)[0], out)  # hole content is never read
        torch.testing.assert_close(fuse_for_inference(refined)(image, valid)[0], out, rtol=1e-4, atol=1e-5)
    path = save_weights(refined, tmp_path / "refined.safetensors")
    loaded = load_weights(path)
    assert loaded.config.edge_refine == 8
    with torch.inference_mode():
        torch.testing.assert_close(loaded(image, valid)[0], out)
    with pytest.raises(ValueError, match="edge_refine"):
        ModelConfig(edge_refine=-1)


def _trained_like(config: ModelConfig) -> PConvUNet:
    """A model with random weights everywhere (EdgeRefine's zero-initialised last convolution too)."""
    torch.manual_seed(3)
    model = PConvUNet(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("refine", [0, 4])
def test_holes_only_gives_the_same_floats_in_the_holes(fused: bool, refine: int) -> None:
    """The decoder's finest steps on the holes' box (``decode_box``) give the whole computation's floats in every
    hole pixel: holes in the middle, at an edge and a corner, in a batch whose two holes are apart, odd sizes."""
    from pconv.model import BOX_LEVELS

    model = _trained_like(ModelConfig(width=0.125, depth=5, edge_refine=refine))
    net = fuse_for_inference(model) if fused else model
    torch.manual_seed(4)
    for h, w, holes in [
        (96, 96, [(0, 40, 50, 60, 70)]),
        (90, 117, [(0, 0, 20, 0, 9), (1, 70, 89, 100, 116)]),  # (item, top, bottom, left, right)
        (64, 160, [(0, 30, 33, 3, 140)]),
        (71, 53, [(0, 60, 71, 40, 53)]),
    ]:
        image, valid = torch.rand(2, 3, h, w), torch.ones(2, 1, h, w)
        for n, top, bottom, left, right in holes:
            valid[n, :, top:bottom, left:right] = 0
        with torch.inference_mode():
            whole, _ = net(image, valid)
            boxed, _ = net(image, valid, holes_only=True)
        hole = (valid < 1).expand_as(whole)
        assert torch.equal(whole[hole], boxed[hole]), (h, w)
        assert BOX_LEVELS >= 1


def test_decode_box_holds_every_hole_pixel_with_its_margin_and_is_aligned() -> None:
    from pconv.model import decode_box

    valid = torch.ones(2, 1, 256, 512)
    valid[0, :, 100:120, 300:301] = 0
    valid[1, :, 10:12, 400:420] = 0
    for levels, refine in [(1, False), (3, False), (3, True)]:
        (top, bottom), (left, right) = (tuple(int(v) for v in span) for span in decode_box(valid, levels, refine))
        step, margin = 2**levels, 2**levels - 1 + (2 if refine else 0)
        assert all(v % step == 0 for v in (top, bottom, left, right))
        assert top <= 10 - margin and bottom >= 120 + margin and left <= 300 - margin and right >= 420 + margin
        assert bottom - top < 110 + 2 * margin + 2 * step and right - left < 120 + 2 * margin + 2 * step
    no_hole = decode_box(torch.ones(1, 1, 64, 32), 3, True)
    assert [tuple(int(v) for v in span) for span in no_hole] == [(0, 64), (0, 32)]
    edge = torch.ones(1, 1, 64, 64)
    edge[..., 0, 63] = 0  # at the corner: clipped to the image
    assert [tuple(int(v) for v in span) for span in decode_box(edge, 3, True)] == [(0, 16), (48, 64)]
