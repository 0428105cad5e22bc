"""The light path's Python API: `Inpainter` on ONNX Runtime with the shipped model, and the numpy pipeline pieces.

Runs without torch (`make test-light`); see test_backends.py for the comparisons that need PyTorch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open
from torch_free import run_probe

from pconv import backends
from pconv.backends import BackendError, OnnxNetwork, choose_backend
from pconv.export import CONFIG_KEY, WEIGHTS_SHA_KEY, file_sha256
from pconv.inference import (
    Inpainter,
    default_onnx_path,
    default_weights_path,
    dilate_hole,
    flip_averaged,
    resize_area,
    resize_bicubic,
    shift_averaged,
)


@pytest.fixture(scope="module")
def onnx_inpainter() -> Inpainter:
    return Inpainter(backend="onnx")


def test_shipped_onnx_records_the_shipped_safetensors_it_was_exported_from() -> None:
    meta = OnnxNetwork(default_onnx_path()).metadata
    assert meta[WEIGHTS_SHA_KEY] == file_sha256(default_weights_path()), (
        "pconv_default.onnx is not the export of pconv_default.safetensors: run `make onnx`"
    )
    with safe_open(str(default_weights_path()), framework="numpy") as f:
        config = json.loads(f.metadata()["pconv_model_config"])
    assert json.loads(meta[CONFIG_KEY]) == config


def test_default_model_on_onnx_fills_better_than_a_flat_colour(
    onnx_inpainter: Inpainter, sample_photo: np.ndarray, sample_hole: np.ndarray
) -> None:
    assert onnx_inpainter.backend == "onnx" and onnx_inpainter.model is None
    hole = sample_hole > 127
    filled = onnx_inpainter.inpaint(sample_photo, sample_hole)
    assert filled.shape == sample_photo.shape and filled.dtype == np.uint8
    assert np.array_equal(filled[~hole], sample_photo[~hole])
    model_err = np.abs(filled[hole].astype(float) - sample_photo[hole]).mean()
    flat_err = np.abs(sample_photo[~hole].mean(axis=0) - sample_photo[hole]).mean()
    assert model_err < 0.6 * flat_err


def test_pil_and_numpy_give_the_same_fill_and_a_list_equals_one_by_one(
    onnx_inpainter: Inpainter, sample_photo: np.ndarray, sample_hole: np.ndarray
) -> None:
    other = np.ascontiguousarray(sample_photo[::-1])
    one_by_one = [onnx_inpainter.inpaint(img, sample_hole) for img in (sample_photo, other)]
    together = onnx_inpainter.inpaint([sample_photo, other], sample_hole)  # one batch of two
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(together, one_by_one))
    as_pil = onnx_inpainter.inpaint(Image.fromarray(sample_photo), Image.fromarray(sample_hole))
    assert isinstance(as_pil, Image.Image) and np.array_equal(np.asarray(as_pil), one_by_one[0])


def test_large_image_is_filled_window_by_window_on_onnx(sample_photo: np.ndarray) -> None:
    big = np.tile(sample_photo, (1, 4, 1))  # 1280 x 224
    hole = np.zeros(big.shape[:2], np.uint8)
    hole[100:120, 60:90] = 255
    hole[30:200, 700:1250] = 255  # wider than max_side: resized down and the fill back up
    out = Inpainter(backend="onnx", max_side=256, margin=16, flip_average=False, shift_average=False).inpaint(big, hole)
    known = hole == 0
    assert np.array_equal(out[known], big[known])
    assert (out[~known] != big[~known]).any(axis=-1).mean() > 0.9


def test_auto_picks_onnx_without_a_gpu_and_the_backend_a_file_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "gpu_present", lambda: False)
    assert choose_backend("auto") == "onnx"
    assert choose_backend("auto", device="cpu") == "onnx"
    assert choose_backend("auto", weights=Path("model.onnx")) == "onnx"
    with pytest.raises(ValueError, match="auto, torch, onnx"):
        choose_backend("tensorflow")


def test_missing_torch_is_a_one_line_error_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "installed", lambda backend: backend != "torch")
    for call in (
        lambda: choose_backend("torch"),
        lambda: choose_backend("auto", weights=Path("w.safetensors")),
        lambda: choose_backend("auto", device="cuda"),
    ):
        with pytest.raises(BackendError, match=r"needs the torch package.*pip install 'pconv\[torch\]'") as info:
            call()
        assert "\n" not in str(info.value)
    monkeypatch.setattr(backends, "installed", lambda backend: backend != "onnx")
    with pytest.raises(BackendError, match="needs the onnxruntime package"):
        choose_backend("onnx")


@pytest.mark.skipif(backends.installed("torch"), reason="torch is installed here (run by make test-light)")
def test_torch_backend_without_torch_installed_says_what_to_install() -> None:
    with pytest.raises(BackendError, match=r"pip install 'pconv\[torch\]'"):
        Inpainter(backend="torch")


def test_safetensors_on_the_onnx_backend_says_how_to_export() -> None:
    with pytest.raises(ValueError, match="pconv export-onnx --weights"):
        Inpainter(default_weights_path(), backend="onnx")


def test_python_api_imports_no_torch_module(tmp_path: Path) -> None:
    code = (
        "import numpy as np\n"
        "from pconv import Inpainter\n"
        "img = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)\n"
        "hole = np.zeros((64, 80), np.uint8); hole[20:40, 30:50] = 255\n"
        "out = Inpainter().inpaint(img, hole)\n"
        "assert np.array_equal(out[hole == 0], img[hole == 0]) and (out[hole > 0] != img[hole > 0]).any()\n"
        "print('filled')\n"
    )
    probe = run_probe(code, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "filled" and probe.torch_modules == []


def test_dilate_hole_is_a_square_max_filter() -> None:
    hole = (np.random.default_rng(0).random((2, 1, 23, 31)) > 0.97).astype(np.float32)
    for pixels in (1, 3, 12):
        padded = np.pad(hole, [(0, 0), (0, 0), (pixels, pixels), (pixels, pixels)])
        k = 2 * pixels + 1
        windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))
        expected = windows.max(axis=(-2, -1))
        assert np.array_equal(dilate_hole(hole, pixels), expected)
    assert dilate_hole(hole, 0) is hole
    with pytest.raises(ValueError, match=">= 0"):
        dilate_hole(hole, -1)


def test_resize_area_averages_cells_and_keeps_any_hole_pixel() -> None:
    image = np.random.default_rng(1).random((1, 3, 12, 18)).astype(np.float32)
    blocks = image.reshape(1, 3, 4, 3, 6, 3).mean(axis=(3, 5))  # whole 3x3 cells
    np.testing.assert_allclose(resize_area(image, (4, 6)), blocks, atol=1e-6)
    hole = np.zeros((1, 1, 100, 70), np.float32)
    hole[0, 0, 37, 11] = 1  # one pixel: its cell, and only its cells, must stay hole at any size
    for size in ((9, 7), (33, 20), (100, 70)):
        small = resize_area(hole, size) > 0
        assert 1 <= small.sum() <= 4


def test_resize_bicubic_keeps_constants_and_same_size_and_interpolates_between() -> None:
    flat = np.full((1, 3, 7, 5), 0.3, np.float32)
    np.testing.assert_allclose(resize_bicubic(flat, (20, 13)), np.full((1, 3, 20, 13), 0.3), atol=1e-6)
    image = np.random.default_rng(2).random((2, 3, 9, 11)).astype(np.float32)
    np.testing.assert_allclose(resize_bicubic(image, (9, 11)), image, atol=1e-6)
    ramp = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (1, 1, 4, 1))  # (1, 1, 4, 8), linear along the width
    up = resize_bicubic(ramp, (4, 32))[0, 0, 0]
    assert np.all(np.diff(up[4:-4]) > 0)  # a linear ramp stays increasing away from the repeated edges


def test_numpy_flip_and_shift_averages() -> None:
    image, valid = np.random.default_rng(3).random((2, 3, 6, 8)).astype(np.float32), np.ones((2, 1, 6, 8), np.float32)
    ramp = np.broadcast_to(np.linspace(0, 1, 8, dtype=np.float32), (2, 3, 6, 8))
    np.testing.assert_allclose(flip_averaged(lambda x, m: ramp, image, valid), np.full_like(image, 0.5), atol=1e-6)
    rows = np.broadcast_to((np.arange(6) % 2).astype(np.float32)[:, None], (2, 3, 6, 8))
    out = shift_averaged(lambda x, m: rows, image, valid)
    np.testing.assert_allclose(out[..., :-1, :-1], 0.5)
    assert np.array_equal(out[..., -1, :], rows[..., -1, :]) and np.array_equal(out[..., :, -1], rows[..., :, -1])
    np.testing.assert_allclose(shift_averaged(lambda x, m: x * m, image, valid), image)  # commutes with the move
