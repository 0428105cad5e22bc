"""`pconv.inference.Inpainter`: kinds in and out, known pixels bit-identical, masks, batches, any resolution."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pconv.config import ModelConfig
from pconv.inference import DEFAULT_BATCH, Inpainter, flip_averaged, plan_windows, resize_hole_mask, shift_averaged
from pconv.model import PConvUNet, save_weights

TINY = ModelConfig(depth=4, width=0.125)


@pytest.fixture
def model() -> PConvUNet:
    torch.manual_seed(1)
    return PConvUNet(TINY).eval()


@pytest.fixture
def inpainter(model: PConvUNet) -> Inpainter:
    return Inpainter(model=model, device="cpu")


def photo(h: int = 40, w: int = 52, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def box_hole(h: int = 40, w: int = 52, value: int = 255) -> np.ndarray:
    hole = np.zeros((h, w), np.uint8)
    hole[8:20, 10:30] = value
    return hole


def test_numpy_known_pixels_bit_identical_and_hole_filled(inpainter: Inpainter) -> None:
    img, hole = photo(), box_hole()
    out = inpainter.inpaint(img, hole)
    assert out.shape == img.shape and out.dtype == np.uint8
    known = hole == 0
    assert np.array_equal(out[known], img[known])
    assert (out[~known] != img[~known]).any(axis=-1).mean() > 0.9  # the hole got new values


def test_pil_in_pil_out_with_alpha_kept(inpainter: Inpainter) -> None:
    img = photo()
    alpha = np.random.default_rng(3).integers(0, 256, img.shape[:2], dtype=np.uint8)
    rgba = Image.fromarray(np.dstack([img, alpha]), "RGBA")
    out = inpainter.inpaint(rgba, Image.fromarray(box_hole(), "L"))
    assert isinstance(out, Image.Image) and out.mode == "RGBA" and out.size == rgba.size
    out_arr = np.asarray(out)
    assert np.array_equal(out_arr[..., 3], alpha)
    known = box_hole() == 0
    assert np.array_equal(out_arr[..., :3][known], img[known])


def test_numpy_rgba_keeps_alpha(inpainter: Inpainter) -> None:
    rgba = np.dstack([photo(), np.full((40, 52), 77, np.uint8)])
    out = inpainter.inpaint(rgba, box_hole())
    assert out.shape == (40, 52, 4) and (out[..., 3] == 77).all()


def test_tensor_in_tensor_out_same_dtype_known_identical(inpainter: Inpainter) -> None:
    img = torch.rand(3, 40, 52, dtype=torch.float64)
    hole = torch.from_numpy(box_hole(value=1)).float()
    out = inpainter.inpaint(img, hole)
    assert out.shape == img.shape and out.dtype == torch.float64
    known = hole == 0
    assert torch.equal(out[:, known], img[:, known])
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_batch_equals_one_by_one(inpainter: Inpainter) -> None:
    images = torch.rand(3, 3, 40, 52)
    holes = torch.zeros(3, 1, 40, 52)
    holes[0, :, 5:15, 5:15] = 1
    holes[1, :, 20:35, 30:50] = 1
    holes[2, :, :, 40:] = 1
    batch = inpainter.inpaint(images, holes)
    one_by_one = torch.stack([inpainter.inpaint(images[i], holes[i]) for i in range(3)])
    torch.testing.assert_close(batch, one_by_one, atol=1e-5, rtol=0)


def test_list_of_mixed_kinds_returns_same_kinds(inpainter: Inpainter) -> None:
    images = [photo(), Image.fromarray(photo(seed=1)), torch.rand(3, 40, 52)]
    outs = inpainter.inpaint(images, box_hole())
    assert isinstance(outs, list) and len(outs) == 3
    assert isinstance(outs[0], np.ndarray) and isinstance(outs[1], Image.Image) and isinstance(outs[2], torch.Tensor)


def test_empty_mask_returns_input_without_running_the_network() -> None:
    def must_not_run(image: np.ndarray, valid_mask: np.ndarray) -> np.ndarray:
        raise AssertionError("the network ran on an empty mask")

    inpainter = Inpainter(predictor=must_not_run)
    img = photo()
    assert np.array_equal(inpainter.inpaint(img, np.zeros((40, 52), np.uint8)), img)


@pytest.mark.parametrize("kind", ["tensor", "numpy", "pil", "batch"])
def test_mask_with_no_known_pixel_is_refused_naming_the_polarity(inpainter: Inpainter, kind: str) -> None:
    """Nothing is there to fill from: a ValueError that names mask_polarity, not a black or grey image."""
    from pconv.inference import NoKnownPixelError

    full = np.full((40, 52), 255, np.uint8)
    image, mask = {
        "tensor": (torch.rand(1, 3, 40, 52), torch.ones(1, 1, 40, 52)),
        "numpy": (photo(), full),
        "pil": (Image.fromarray(photo()), Image.fromarray(full)),
        "batch": ([photo(), photo()], [box_hole(), full]),
    }[kind]
    with pytest.raises(NoKnownPixelError, match='covers the whole image.*mask_polarity="black-hole"'):
        inpainter.inpaint(image, mask)
    assert issubclass(NoKnownPixelError, ValueError)


def test_black_hole_polarity_of_an_all_black_mask_is_refused_too(inpainter: Inpainter) -> None:
    black_hole = Inpainter(predictor=inpainter.network, mask_polarity="black-hole")
    with pytest.raises(ValueError, match="covers the whole image"):
        black_hole.inpaint(photo(), np.zeros((40, 52), np.uint8))


def test_dilation_that_leaves_no_known_pixel_is_refused_naming_dilate(inpainter: Inpainter) -> None:
    hole = np.zeros((40, 52), np.uint8)
    hole[18:22, 24:28] = 1
    with pytest.raises(ValueError, match="dilating the hole by 30 pixels leaves no known pixel.*--dilate"):
        inpainter.inpaint(photo(), hole, dilate=30)
    assert inpainter.inpaint(photo(), hole, dilate=3).shape == photo().shape  # a smaller dilation fills


def test_predictor_sees_valid_mask_polarity() -> None:
    seen = {}

    def grey(image: np.ndarray, valid_mask: np.ndarray) -> np.ndarray:
        assert isinstance(image, np.ndarray) and image.dtype == np.float32  # the pipeline is numpy, any backend
        seen["valid"] = valid_mask.copy()
        return np.full_like(image, 0.25)

    out = Inpainter(predictor=grey, smooth=False).inpaint(photo(), box_hole())  # the predictor's fill alone
    assert seen["valid"][0, 0, 10, 12] == 0 and seen["valid"][0, 0, 30, 40] == 1  # 1 = known for the network
    assert (out[box_hole() > 0] == 64).all()  # 0.25 * 255 rounded


def test_grey_mask_binarised_at_threshold_127() -> None:
    out = Inpainter(predictor=lambda image, valid: np.zeros_like(image), smooth=False).inpaint(
        np.full((4, 4, 3), 200, np.uint8), np.array([[127, 128, 0, 255]] * 4, np.uint8)
    )
    assert (out[:, 0] == 200).all() and (out[:, 1] == 0).all() and (out[:, 2] == 200).all() and (out[:, 3] == 0).all()


def test_black_hole_polarity_flips(inpainter: Inpainter, model: PConvUNet) -> None:
    img, hole = photo(), box_hole()
    flipped = Inpainter(model=model, device="cpu", mask_polarity="black-hole").inpaint(img, 255 - hole)
    assert np.array_equal(flipped, inpainter.inpaint(img, hole))


def test_alpha_only_pil_mask_is_the_paint(inpainter: Inpainter) -> None:
    img, hole = photo(), box_hole()
    painted = np.zeros((40, 52, 4), np.uint8)
    painted[..., 3] = hole  # transparent layer with opaque paint where the hole is
    assert np.array_equal(inpainter.inpaint(img, Image.fromarray(painted, "RGBA")), inpainter.inpaint(img, hole))


def test_dilation_grows_the_hole(model: PConvUNet) -> None:
    img, hole = photo(), box_hole()
    out = Inpainter(model=model, device="cpu", dilate=3).inpaint(img, hole)
    assert (out[8:20, 7] != img[8:20, 7]).any()  # 3 px left of the hole: now filled
    assert np.array_equal(out[8:20, 6], img[8:20, 6])  # 4 px left: still known
    assert np.array_equal(out[30:], img[30:])


def test_mask_of_other_size_is_refused_naming_both(inpainter: Inpainter) -> None:
    with pytest.raises(ValueError, match="26x20.*52x40"):
        inpainter.inpaint(photo(), np.zeros((20, 26), np.uint8))


def test_resize_hole_mask_same_aspect_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    small = np.zeros((20, 26), np.uint8)
    small[4:10, 5:15] = 1
    with caplog.at_level(logging.WARNING, logger="pconv.resize"):
        big = resize_hole_mask(small, (52, 40))
    assert big.shape == (40, 52) and set(np.unique(big)) == {0, 1}
    assert big[8:20, 10:30].all() and big.sum() == 4 * small.sum()
    assert "resizing the mask" in caplog.text


def test_resize_hole_mask_other_aspect_refused() -> None:
    with pytest.raises(ValueError, match=r"30x20.*52x40"):
        resize_hole_mask(np.zeros((20, 30), np.uint8), (52, 40))


def test_missing_default_model_says_pass_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pconv.inference

    monkeypatch.setattr(pconv.inference, "default_weights_path", lambda: tmp_path / "none.safetensors")
    monkeypatch.setattr(pconv.inference, "default_onnx_path", lambda: tmp_path / "none.onnx")
    for backend in ("torch", "onnx", "auto"):
        with pytest.raises(FileNotFoundError, match="weights"):
            Inpainter(backend=backend)


def test_shipped_model_is_trained_and_beats_a_flat_fill() -> None:
    """The bundled weights load by default and fill the demo's hole closer to the truth than its mean colour."""
    from pconv.commands.demo import demo_hole
    from pconv.inference import default_weights_path

    assert default_weights_path().is_file(), "the package ships pconv/weights/pconv_default.safetensors"
    inpainter = Inpainter(backend="torch", device="cpu")
    assert inpainter.model is not None and inpainter.model.config == ModelConfig(depth=8, width=0.25, edge_refine=16)
    sample = Path(__file__).resolve().parents[1] / "src" / "pconv" / "assets" / "kodim23.png"
    truth = np.asarray(Image.open(sample).convert("RGB"))
    hole = np.asarray(demo_hole(truth.shape[1], truth.shape[0])) > 127
    filled = inpainter.inpaint(truth, hole.astype(np.uint8))
    assert np.array_equal(filled[~hole], truth[~hole])
    model_err = np.abs(filled[hole].astype(float) - truth[hole]).mean()
    flat_err = np.abs(truth[~hole].mean(axis=0) - truth[hole]).mean()
    assert model_err < 0.6 * flat_err


def test_fast_path_matches_the_plain_network(model: PConvUNet) -> None:
    img, hole = photo(), box_hole()
    fast = Inpainter(model=model, device="cpu").inpaint(img, hole)
    plain = Inpainter(model=model, device="cpu", fast=False).inpaint(img, hole)
    assert np.abs(fast.astype(int) - plain.astype(int)).max() <= 1  # uint8 rounding of ~1e-6 differences


def test_torch_backend_predicts_only_the_holes_box_and_fills_as_the_whole_prediction(model: PConvUNet) -> None:
    """``Inpainter`` keeps only the hole pixels, so its torch backend runs the network with ``holes_only``: the
    whole prediction's fill (flip and shift averages and the blend included), while a ``TorchNetwork`` made by hand
    predicts everywhere unless asked. PyTorch picks its (channels-last) convolution kernels by shape, so on some
    CPUs the box's floats differ from the whole image's in the last bit (seen on one machine, not on another): the
    same to float rounding, and the same bytes but where such a float lands on a rounding boundary."""
    from pconv.backends import TorchNetwork

    img, hole = photo(), box_hole()
    inpainter = Inpainter(model=model, device="cpu")
    assert inpainter.network.holes_only is True
    boxed = inpainter.inpaint(img, hole)
    inpainter.network.holes_only = False
    levels = np.abs(boxed.astype(int) - inpainter.inpaint(img, hole).astype(int))
    assert levels.max() <= 1 and (levels > 0).sum() <= 3, int((levels > 0).sum())
    by_hand = TorchNetwork(model, device="cpu")
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    valid = np.ones((1, 1, 64, 64), np.float32)
    valid[..., 28:36, 28:36] = 0  # a small hole: the box leaves most of the image out
    whole = by_hand(x, valid)
    assert by_hand.holes_only is False and np.abs(whole[..., :8, :8]).max() > 0
    by_hand.holes_only = True
    part = by_hand(x, valid)
    in_holes = valid.repeat(3, 1) < 1
    np.testing.assert_allclose(part[in_holes], whole[in_holes], rtol=1e-5, atol=1e-6)
    assert np.all(part[..., :8, :8] == 0)  # outside the holes' box: not computed


def test_flip_averaged_is_the_mean_of_the_pass_and_the_mirrored_pass() -> None:
    # A predictor that is not mirror-symmetric: it paints a left-to-right ramp. The mirrored pass paints the
    # ramp mirrored, so the average is flat at 0.5; a predictor that commutes with the flip is left unchanged.
    image, valid = torch.rand(2, 3, 6, 8), torch.ones(2, 1, 6, 8)
    ramp = torch.linspace(0, 1, 8).expand(2, 3, 6, 8)
    out = flip_averaged(lambda x, m: ramp, image, valid)
    torch.testing.assert_close(out, torch.full_like(image, 0.5))
    torch.testing.assert_close(flip_averaged(lambda x, m: x * m, image, valid), image)


def test_shift_averaged_moves_down_right_and_back() -> None:
    # A predictor that ignores its input and paints odd rows: moved down by one and back, every row's partner
    # has the other parity, so the average is 0.5 except the last row and column, which keep the single pass.
    image, valid = torch.rand(2, 3, 6, 8), torch.ones(2, 1, 6, 8)
    rows = (torch.arange(6) % 2).float()[:, None].expand(2, 3, 6, 8)
    out = shift_averaged(lambda x, m: rows, image, valid)
    torch.testing.assert_close(out[..., :-1, :-1], torch.full_like(out[..., :-1, :-1], 0.5))
    torch.testing.assert_close(out[..., -1, :], rows[..., -1, :])
    torch.testing.assert_close(out[..., :, -1], rows[..., :, -1])
    # A predictor that commutes with the move (here: the input itself) is left unchanged; 1-px images too.
    torch.testing.assert_close(shift_averaged(lambda x, m: x * m, image, valid), image)
    tiny = torch.rand(1, 3, 1, 5)
    torch.testing.assert_close(shift_averaged(lambda x, m: x + 1, tiny, torch.ones(1, 1, 1, 5)), tiny + 1)


def test_inpainter_flip_and_shift_average_are_the_default_and_can_be_turned_off(model: PConvUNet) -> None:
    img = photo()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    valid = torch.from_numpy(1 - box_hole(value=1)).float()[None, None]
    net = lambda a, m: model(a, m)[0]  # noqa: E731
    with torch.inference_mode():
        once = net(x, valid)
        mirrored = net(x.flip(-1), valid.flip(-1)).flip(-1)
        moved = net(*(torch.nn.functional.pad(t[..., :-1, :-1], (1, 0, 1, 0), mode="replicate") for t in (x, valid)))
        both = shift_averaged(lambda a, m: flip_averaged(net, a, m), x, valid)
    shifted = once.clone()
    shifted[..., :-1, :-1] = (once[..., :-1, :-1] + moved[..., 1:, 1:]) / 2
    expected = {(False, False): once, (True, False): (once + mirrored) / 2, (False, True): shifted, (True, True): both}
    for (flip, shift), pred in expected.items():
        inpainter = Inpainter(
            model=model, device="cpu", fast=False, flip_average=flip, shift_average=shift, smooth=False
        )
        out = inpainter.inpaint(x[0], box_hole(value=1))
        want = torch.where(valid[0] > 0, x[0], pred[0].clamp(0, 1))
        torch.testing.assert_close(out, want, atol=1e-5, rtol=0)
    default = Inpainter(model=model, device="cpu")
    assert default.flip_average and default.shift_average
    for a, b in itertools.combinations(expected.values(), 2):
        assert not torch.allclose(a, b, atol=1e-3)  # the four settings really differ


def test_weights_file_loads_the_same_model(tmp_path: Path, model: PConvUNet, inpainter: Inpainter) -> None:
    path = save_weights(model, tmp_path / "tiny.safetensors")
    img, hole = photo(), box_hole()
    assert np.array_equal(Inpainter(path, device="cpu").inpaint(img, hole), inpainter.inpaint(img, hole))


def test_cuda_request_without_cuda_is_a_clear_error(model: PConvUNet) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        Inpainter(model=model, device="cuda")


def test_plan_windows_cover_every_hole_pixel_once() -> None:
    hole = np.zeros((300, 2500), bool)
    hole[100:130, 200:260] = True
    hole[50:60, 2000:2400] = True
    hole[250:260, 2450:2500] = True  # touches the border
    hole[140:150, 300:320] = True  # close to the first: windows merge
    windows = plan_windows(hole, margin=16, min_side=64)
    cover = np.zeros(hole.shape, int)
    for win in windows:
        assert 0 <= win.top < win.bottom <= 300 and 0 <= win.left < win.right <= 2500
        assert win.bottom - win.top >= 64 and win.right - win.left >= 64
        cover[win.top : win.bottom, win.left : win.right] += 1
    assert cover.max() == 1 and (cover[hole] == 1).all()
    assert len(windows) == 3  # the two close regions share one window
    assert plan_windows(np.zeros((64, 64), bool)) == []


def test_large_image_windowed_keeps_known_pixels_and_fills_holes(model: PConvUNet) -> None:
    img = photo(300, 2500, seed=5)
    hole = np.zeros((300, 2500), np.uint8)
    hole[100:130, 200:260] = 255
    hole[40:80, 1900:2450] = 255  # wider than max_side: its window is resized down and back up
    out = Inpainter(model=model, device="cpu", max_side=128, margin=16).inpaint(img, hole)
    known = hole == 0
    assert np.array_equal(out[known], img[known])
    assert (out[~known] != img[~known]).any(axis=-1).mean() > 0.9


def test_large_window_equals_network_on_the_crop(model: PConvUNet) -> None:
    """A window that fits max_side is exactly the network run on that crop."""
    img = torch.rand(1, 3, 300, 2500)
    hole = torch.zeros(1, 1, 300, 2500)
    hole[..., 100:130, 200:260] = 1
    out = Inpainter(model=model, device="cpu", max_side=512, margin=16).inpaint(img, hole)
    (win,) = plan_windows(hole[0, 0].numpy() > 0, margin=16, min_side=256)
    crop = Inpainter(model=model, device="cpu").inpaint(
        img[..., win.top : win.bottom, win.left : win.right], hole[..., win.top : win.bottom, win.left : win.right]
    )
    torch.testing.assert_close(out[..., win.top : win.bottom, win.left : win.right], crop, atol=1e-6, rtol=0)


def test_large_nearly_all_hole_image_resized_path_is_finite(model: PConvUNet) -> None:
    hole = torch.ones(150, 400)
    hole[0, 0] = 0  # one known pixel: an all-hole mask is refused (nothing to fill from)
    out = Inpainter(model=model, device="cpu", max_side=64).inpaint(torch.rand(3, 150, 400), hole)
    assert out.shape == (3, 150, 400) and torch.isfinite(out).all()


def test_bad_settings_error_names_only_the_wrong_ones() -> None:
    with pytest.raises(ValueError, match=r"^bad settings: dilate=-1 \(must be >= 0\)$"):
        Inpainter(predictor=lambda x, m: x, dilate=-1)
    with pytest.raises(
        ValueError, match=r"^bad settings: max_side=8 \(must be >= 16\), threshold=255 \(must be 0\.\.254\)$"
    ):
        Inpainter(predictor=lambda x, m: x, max_side=8, threshold=255)


def test_batch_size_defaults_by_the_device_the_network_runs_on(model: PConvUNet) -> None:
    class OnGpu:  # a predictor that says it runs on a GPU (the attribute Inpainter.device reads)
        device = "cuda:1"

        def __call__(self, image: np.ndarray, valid_mask: np.ndarray) -> np.ndarray:
            return image

    assert Inpainter(model=model, device="cpu").batch_size == DEFAULT_BATCH["cpu"] == 1
    assert Inpainter(predictor=OnGpu()).batch_size == DEFAULT_BATCH["cuda"]
    assert Inpainter(predictor=OnGpu(), batch_size=3).batch_size == 3
    with pytest.raises(ValueError, match=r"^bad settings: batch_size=0 \(must be >= 1\)$"):
        Inpainter(predictor=OnGpu(), batch_size=0)
