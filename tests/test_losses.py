"""InpaintingLoss (paper eq. 1-7 + optional SSIM), VGG16Features loading from local files, and the metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from pconv.config import LossConfig
from pconv.losses import (
    InpaintingLoss,
    VGG16Features,
    build_loss,
    hole_ssim_loss,
    load_vgg16_features,
    total_variation,
)
from pconv.metrics import l1, psnr, ssim

NO_VGG = LossConfig(perceptual=0.0, style=0.0)


def _batch(n: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(n, 3, size, size)
    valid = torch.ones(n, 1, size, size)
    valid[:, :, 8:20, 10:24] = 0
    return image, valid


def test_loss_is_zero_when_prediction_equals_target_except_the_image_own_tv() -> None:
    image, valid = _batch()
    loss = InpaintingLoss(LossConfig(ssim=1.0), vgg=VGG16Features())
    terms = loss(image.clone(), image, valid)
    for name in ("valid", "hole", "perceptual", "style_out", "style_comp", "ssim"):
        assert terms[name].item() == pytest.approx(0.0, abs=1e-6), name
    # tv is a smoothness prior on I_comp, not a distance to I_gt: it stays at the truth's own variation.
    assert terms["tv"].item() > 0
    torch.testing.assert_close(terms["total"], 0.1 * terms["tv"])
    smooth = torch.full_like(image, 0.5)
    assert loss(smooth.clone(), smooth, valid)["total"].item() == pytest.approx(0.0, abs=1e-6)


def test_valid_and_hole_terms_are_l1_normalised_by_element_count() -> None:
    target = torch.zeros(1, 3, 4, 4)
    valid = torch.ones(1, 1, 4, 4)
    valid[..., :2, :] = 0  # top half is hole: 24 of the 48 elements
    output = torch.full_like(target, 0.5)
    output[..., :2, :] = 1.0
    terms = InpaintingLoss(NO_VGG)(output, target, valid)
    assert terms["hole"].item() == pytest.approx(24 * 1.0 / 48)
    assert terms["valid"].item() == pytest.approx(24 * 0.5 / 48)


def test_tv_counts_only_pairs_inside_the_dilated_hole() -> None:
    # Checkerboard of 0/1 everywhere; the hole is a single pixel at (4, 4) of an 8x8 image. Only the output under
    # the hole reaches I_comp, so make the output the checkerboard and the target too: every neighbour pair differs
    # by 1. P is the 3x3 block around (4, 4): 3 rows x 2 horizontal pairs + 3 columns x 2 vertical pairs = 12.
    yy, xx = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    board = ((yy + xx) % 2).float().expand(1, 3, 8, 8).contiguous()
    valid = torch.ones(1, 1, 8, 8)
    valid[..., 4, 4] = 0
    terms = InpaintingLoss(NO_VGG)(board, board, valid)
    assert terms["tv"].item() == pytest.approx(3 * 12 / board.numel())
    # Over the whole image it would be far larger: 3 channels x (8*7 + 7*8) pairs.
    assert total_variation(board, torch.ones(1, 1, 8, 8)).item() == pytest.approx(3 * 112 / board.numel())


def test_weights_are_applied_as_configured() -> None:
    image, valid = _batch()
    output = torch.rand_like(image)
    vgg = VGG16Features()
    paper = InpaintingLoss(LossConfig(ssim=0.5), vgg=vgg)(output, image, valid)
    expected = (
        paper["valid"]
        + 6 * paper["hole"]
        + 0.05 * paper["perceptual"]
        + 120 * (paper["style_out"] + paper["style_comp"])
        + 0.1 * paper["tv"]
        + 0.5 * paper["ssim"]
    )
    torch.testing.assert_close(paper["total"], expected)
    doubled = InpaintingLoss(LossConfig(hole=12.0, ssim=0.5), vgg=vgg)(output, image, valid)
    torch.testing.assert_close(doubled["total"] - paper["total"], 6 * paper["hole"])


def test_style_uses_gram_matrices_normalised_by_chw() -> None:
    vgg = VGG16Features()
    image, valid = _batch(1, 16)
    output = torch.rand_like(image)
    terms = InpaintingLoss(LossConfig(), vgg=vgg)(output, image, valid)
    expected = 0.0
    for f_out, f_gt in zip(vgg(output), vgg(image)):
        _, c, h, w = f_out.shape
        g_out = f_out[0].reshape(c, -1) @ f_out[0].reshape(c, -1).T / (c * h * w)
        g_gt = f_gt[0].reshape(c, -1) @ f_gt[0].reshape(c, -1).T / (c * h * w)
        expected += (g_out - g_gt).abs().mean().item()
    assert terms["style_out"].item() == pytest.approx(expected, rel=1e-4)


def test_comp_terms_ignore_the_prediction_outside_the_hole() -> None:
    image, valid = _batch()
    output = torch.rand_like(image)
    changed = output + valid * torch.rand_like(image)  # differs from output only on known pixels
    loss = InpaintingLoss(LossConfig(ssim=1.0), vgg=VGG16Features())
    a, b = loss(output, image, valid), loss(changed, image, valid)
    for name in ("style_comp", "tv", "ssim", "hole"):
        torch.testing.assert_close(a[name], b[name], msg=name)
    assert not torch.allclose(a["valid"], b["valid"])


def test_vgg_terms_without_weights_fail_naming_the_file_and_the_way_out() -> None:
    with pytest.raises(ValueError) as info:
        build_loss(LossConfig())
    message = str(info.value)
    assert "vgg16-397923af.pth" in message and "--loss.perceptual=0 --loss.style=0" in message
    with pytest.raises(ValueError, match="vgg16-397923af.pth"):
        InpaintingLoss(LossConfig(perceptual=0.0, style=1.0))
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        build_loss(LossConfig(vgg_weights="/nonexistent/vgg16.pth"))
    image, valid = _batch()
    assert set(build_loss(NO_VGG)(torch.rand_like(image), image, valid)) == {"valid", "hole", "tv", "total"}


@pytest.fixture(scope="module")
def torchvision_vgg16_features() -> dict[str, torch.Tensor]:
    """A randomly initialised torchvision VGG-16 state dict (features; plus one classifier key, ignored)."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(1)
    features = make_layers(cfgs["D"])  # torchvision's VGG-16 feature stack, the keys of vgg16().state_dict()
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg_loads_torchvision_state_dict_from_local_file(
    tmp_path: Path, suffix: str, torchvision_vgg16_features: dict[str, torch.Tensor]
) -> None:
    from torchvision.models.vgg import cfgs, make_layers

    path = tmp_path / f"vgg16{suffix}"
    if suffix == ".pth":
        torch.save(torchvision_vgg16_features, path)
    else:
        from safetensors.torch import save_file

        save_file(torchvision_vgg16_features, str(path))
    vgg = load_vgg16_features(path)
    reference = make_layers(cfgs["D"]).eval()
    reference.load_state_dict(
        {k[len("features.") :]: v for k, v in torchvision_vgg16_features.items() if k.startswith("features.")}
    )
    image = torch.rand(1, 3, 32, 32)
    normalised = (image - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        pools = vgg(image)
        for pool, end in zip(pools, (5, 10, 17)):
            torch.testing.assert_close(pool, reference[:end](normalised))
    assert [p.shape[1:] for p in pools] == [(64, 16, 16), (128, 8, 8), (256, 4, 4)]
    assert not any(p.requires_grad for p in vgg.parameters())
    loss = build_loss(LossConfig(vgg_weights=str(path)))
    assert {"perceptual", "style_out", "style_comp"} <= set(loss(torch.rand(1, 3, 32, 32), *_batch(1)))


def test_vgg_rejects_a_file_that_is_not_vgg16(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(ValueError, match="features.0.weight"):
        load_vgg16_features(path)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a file")
    with pytest.raises(ValueError, match="cannot read"):
        load_vgg16_features(garbage)


def test_loss_gradient_reaches_the_prediction() -> None:
    image, valid = _batch()
    output = torch.rand_like(image, requires_grad=True)
    InpaintingLoss(LossConfig(ssim=1.0), vgg=VGG16Features())(output, image, valid)["total"].backward()
    assert output.grad is not None and output.grad.abs().sum() > 0


def test_ssim_matches_scikit_image() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 40, 33)).astype(np.float32)
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape).astype(np.float32), 0, 1)
    ours = ssim(torch.from_numpy(a), torch.from_numpy(b))
    for i in range(2):
        ref = structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0)
        assert ours[i].item() == pytest.approx(ref, abs=1e-5)
    assert ssim(torch.from_numpy(a), torch.from_numpy(a)).tolist() == pytest.approx([1.0, 1.0])


def test_hole_ssim_is_the_image_ssim_term_over_the_windows_the_hole_reaches() -> None:
    # Two 48x48 images, a 4x4 hole in the first and a 20x20 hole in the second, noisy fill in both.
    torch.manual_seed(0)
    image = torch.rand(2, 3, 48, 48)
    valid = torch.ones(2, 1, 48, 48)
    valid[0, :, 20:24, 20:24] = 0
    valid[1, :, 10:30, 10:30] = 0
    output = (image + 0.3 * torch.randn_like(image)).clamp(0, 1)
    comp = valid * image + (1 - valid) * output
    whole = 1 - ssim(comp, image)  # (2,), every window counted
    windows = 42 * 42  # 7x7 windows that fit in 48x48
    reached = torch.tensor([(4 + 6) ** 2, (20 + 6) ** 2], dtype=torch.float32)  # windows overlapping each hole
    expected = (whole * windows / reached).mean()
    torch.testing.assert_close(hole_ssim_loss(comp, image, valid), expected, rtol=1e-4, atol=1e-6)
    # The small hole weighs far more than in the whole-image term; no hole adds nothing; a perfect fill scores 0.
    assert hole_ssim_loss(comp[:1], image[:1], valid[:1]) > 10 * whole[0]
    assert hole_ssim_loss(image, image, torch.ones_like(valid)).item() == 0.0
    assert hole_ssim_loss(image, image, valid).item() == pytest.approx(0.0, abs=1e-6)
    terms = InpaintingLoss(LossConfig(perceptual=0.0, style=0.0, ssim_hole=2.0))(output, image, valid)
    torch.testing.assert_close(terms["ssim_hole"], hole_ssim_loss(comp, image, valid))
    plain = InpaintingLoss(NO_VGG)(output, image, valid)
    torch.testing.assert_close(terms["total"], plain["total"] + 2.0 * terms["ssim_hole"])
    with pytest.raises(ValueError, match="ssim_hole"):
        LossConfig(ssim_hole=-1.0)


def test_l1_and_psnr_on_known_values() -> None:
    target = torch.zeros(2, 3, 8, 8)
    pred = torch.zeros(2, 3, 8, 8)
    pred[0] = 0.1
    pred[1, 0] = 0.3  # one channel of three off by 0.3
    assert l1(pred, target).tolist() == pytest.approx([0.1, 0.1])
    assert psnr(pred, target).tolist() == pytest.approx([20.0, 10 * np.log10(1 / 0.03)], rel=1e-5)
    assert psnr(target, target).tolist() == [100.0, 100.0]
    with pytest.raises(ValueError, match="same"):
        l1(pred, target[:, :, :4])
