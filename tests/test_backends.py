"""The two network backends agree: the shipped ONNX file is the export of the shipped safetensors, their fills of
real photos agree within 1/255, and the numpy pipeline's resizes and dilation match PyTorch's operations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

pytest.importorskip("onnx")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from pconv import backends  # noqa: E402
from pconv.backends import OnnxNetwork, choose_backend  # noqa: E402
from pconv.config import ModelConfig  # noqa: E402
from pconv.export import export_onnx  # noqa: E402
from pconv.inference import (  # noqa: E402
    Inpainter,
    default_onnx_path,
    default_weights_path,
    dilate_hole,
    resize_area,
    resize_bicubic,
)
from pconv.model import PConvUNet  # noqa: E402


def _initializers(path: Path) -> list[tuple[tuple[int, ...], bytes]]:
    """The graph's weights as (shape, bytes), sorted: independent of the names the exporter gave them."""
    graph = onnx.load(str(path)).graph
    return sorted((tuple(t.dims), numpy_helper.to_array(t).tobytes()) for t in graph.initializer)


def test_shipped_onnx_is_the_export_of_the_shipped_safetensors(tmp_path: Path) -> None:
    model = Inpainter(backend="torch", device="cpu").model
    assert model is not None
    fresh = export_onnx(model, tmp_path / "fresh.onnx", weights_file=default_weights_path())
    hint = "src/pconv/weights/pconv_default.onnx is stale: run `make onnx` (pconv export-onnx) and commit it"
    assert _initializers(fresh) == _initializers(default_onnx_path()), hint
    shipped, again = OnnxNetwork(default_onnx_path()), OnnxNetwork(fresh)
    assert shipped.metadata == again.metadata, hint
    rng = np.random.default_rng(0)
    image = rng.random((1, 3, 67, 90), dtype=np.float32)
    valid = (rng.random((1, 1, 67, 90)) > 0.3).astype(np.float32)
    assert np.array_equal(shipped(image, valid), again(image, valid)), hint


@pytest.mark.parametrize(("photo", "mask"), [("kodim05.png", 5000), ("kodim19.png", 9000)])
def test_backends_agree_on_real_photos(shared_data: Path, photo: str, mask: int) -> None:
    """Default settings (flip and shift average): known pixels identical, fills within 1/255."""
    img = Image.open(shared_data / "eval_photos" / "kodak24" / photo).convert("RGB")
    left, top = (img.width - 512) // 2, (img.height - 512) // 2
    rgb = np.asarray(img.crop((left, top, left + 512, top + 512)))
    hole = np.asarray(Image.open(shared_data / "masks" / "nvidia_irregular_test" / f"{mask:05d}.png"))
    via_torch = Inpainter(backend="torch", device="cpu").inpaint(rgb, hole)
    via_onnx = Inpainter(backend="onnx").inpaint(rgb, hole)
    known = hole <= 127
    assert np.array_equal(via_onnx[known], rgb[known]) and np.array_equal(via_torch[known], rgb[known])
    diff = np.abs(via_onnx.astype(int) - via_torch.astype(int)).max(axis=-1)[~known]
    # Float round-off may flip a rounding (one level); and where it moves a structure ray's sample across a pixel
    # boundary (pconv.structure), that ray ends one step further on: a few pixels in 100,000 then differ by more.
    assert (diff <= 1).mean() >= 0.9999 and diff.mean() < 0.05
    assert (via_torch[~known] != rgb[~known]).any(axis=-1).mean() > 0.5  # the hole was really filled


def test_tensor_input_on_the_onnx_backend_comes_back_as_a_tensor() -> None:
    torch.manual_seed(0)
    img = torch.rand(2, 3, 40, 52, dtype=torch.float64)
    hole = torch.zeros(2, 1, 40, 52)
    hole[:, :, 10:20, 5:30] = 1
    out = Inpainter(backend="onnx").inpaint(img, hole)
    assert out.dtype == torch.float64 and out.shape == img.shape
    assert torch.equal(out[hole.expand_as(img) == 0], img[hole.expand_as(img) == 0])


def test_resize_area_matches_torch_interpolate() -> None:
    image = torch.rand(2, 3, 37, 101, generator=torch.Generator().manual_seed(1))
    for size in ((10, 30), (37, 50), (19, 101), (5, 7)):
        expected = F.interpolate(image, size=size, mode="area").numpy()
        np.testing.assert_allclose(resize_area(image.numpy(), size), expected, atol=1e-6)


def test_resize_bicubic_matches_torch_interpolate() -> None:
    image = torch.rand(2, 3, 23, 31, generator=torch.Generator().manual_seed(2))
    for size in ((70, 95), (23, 64), (40, 31), (12, 15)):
        expected = F.interpolate(image, size=size, mode="bicubic", align_corners=False).numpy()
        np.testing.assert_allclose(resize_bicubic(image.numpy(), size), expected, atol=1e-5)


def test_dilate_hole_matches_max_pool() -> None:
    hole = (torch.rand(2, 1, 45, 60, generator=torch.Generator().manual_seed(3)) > 0.98).float()
    for pixels in (1, 4, 20):
        expected = F.max_pool2d(hole, kernel_size=2 * pixels + 1, stride=1, padding=pixels).numpy()
        assert np.array_equal(dilate_hole(hole.numpy(), pixels), expected)


def test_auto_takes_torch_only_when_it_can_use_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "gpu_present", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a driver, but no CUDA build of torch
    assert choose_backend("auto") == "onnx"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_backend("auto") == "torch"
    assert choose_backend("auto", device="cpu") == "onnx"
    assert choose_backend("auto", weights=Path("w.safetensors")) == "torch"


def test_a_built_model_runs_on_torch_only() -> None:
    net = PConvUNet(ModelConfig(depth=4, width=0.125))
    assert Inpainter(model=net, device="cpu").backend == "torch"
    with pytest.raises(ValueError, match="torch backend"):
        Inpainter(model=net, backend="onnx")


def test_threads_reach_both_backends() -> None:
    before = torch.get_num_threads()
    try:
        onnx_net = Inpainter(backend="onnx", threads=1).network
        assert onnx_net.session.get_session_options().intra_op_num_threads == 1
        Inpainter(model=PConvUNet(ModelConfig(depth=2, width=0.125)), threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
