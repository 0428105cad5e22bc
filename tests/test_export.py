"""ONNX export: dynamic size, parity with PyTorch under onnxruntime, the ONNX backend of `pconv inpaint`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime")

from pconv.cli import main  # noqa: E402
from pconv.config import ModelConfig  # noqa: E402
from pconv.export import OnnxPredictor, check_onnx, export_onnx, onnx_inpainter  # noqa: E402
from pconv.inference import Inpainter  # noqa: E402
from pconv.model import PConvUNet, save_weights  # noqa: E402


@pytest.fixture
def model() -> PConvUNet:
    torch.manual_seed(3)
    net = PConvUNet(ModelConfig(depth=4, width=0.125))
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a train-mode export would differ
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture
def onnx_path(tmp_path: Path, model: PConvUNet) -> Path:
    return export_onnx(model, tmp_path / "tiny.onnx")


@pytest.fixture
def network_path(tmp_path: Path, model: PConvUNet) -> Path:
    return export_onnx(model, tmp_path / "tiny_network.onnx", graph="network")


def test_network_graph_matches_pytorch_at_sizes_not_multiple_of_the_network(
    model: PConvUNet, network_path: Path
) -> None:
    diff = check_onnx(model, network_path, sizes=[(16, 16), (21, 37), (50, 9)], batch=3)
    assert diff < 1e-5


def test_fill_graph_matches_pytorch_four_pass_fill_within_one_level(model: PConvUNet, onnx_path: Path) -> None:
    diff = check_onnx(model, onnx_path, sizes=[(16, 16), (21, 37), (50, 9)], batch=3)
    assert diff <= 1 / 255 + 1e-9


def test_onnx_with_the_edge_refine_head_matches_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(4)
    net = PConvUNet(ModelConfig(depth=4, width=0.125, edge_refine=4)).eval()
    torch.nn.init.normal_(net.refine.out.weight, std=0.1)  # a trained head, not the no-op it starts as
    path = export_onnx(net, tmp_path / "refined.onnx", graph="network")
    assert check_onnx(net, path, sizes=[(16, 16), (21, 37)], batch=2) < 1e-5
    fill = export_onnx(net, tmp_path / "refined_fill.onnx")
    assert check_onnx(net, fill, sizes=[(16, 16), (21, 37)], batch=2) <= 1 / 255 + 1e-9


def test_network_graph_inputs_are_image_and_valid_mask_with_dynamic_sizes(network_path: Path) -> None:
    session = OnnxPredictor(network_path).session
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert list(inputs) == ["image", "valid_mask"]
    assert inputs["image"][0] == "batch" and inputs["image"][2:] == ["height", "width"]
    assert OnnxPredictor(network_path).graph == "network"


def test_fill_graph_inputs_uint8_nhwc_with_optional_averages(onnx_path: Path) -> None:
    net = OnnxPredictor(onnx_path)
    assert net.graph == "fill" and net.metadata["pconv_graph"] == "fill"
    inputs = {i.name: (i.type, i.shape) for i in net.session.get_inputs()}
    assert inputs["image"] == ("tensor(uint8)", ["batch", "height", "width", 3])
    assert inputs["hole_mask"] == ("tensor(uint8)", ["batch", "height", "width"])
    assert {i.name for i in net.session.get_overridable_initializers()} == {"flip", "shift", "smooth"}
    (out,) = net.session.get_outputs()
    assert (out.name, out.type, out.shape) == ("filled", "tensor(uint8)", ["batch", "height", "width", 3])


def test_fill_graph_averages_switch_off_one_by_one(model: PConvUNet, onnx_path: Path) -> None:
    """Each flip/shift setting equals the numpy averages around the torch network (pconv.inference)."""
    from pconv.inference import averaged_predictor

    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (2, 23, 41, 3), dtype=np.uint8)
    hole = (rng.random((2, 23, 41)) > 0.5).astype(np.uint8) * 255
    net = OnnxPredictor(onnx_path)
    image = pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255
    valid = (hole[:, None] == 0).astype(np.float32)

    def torch_net(x: np.ndarray, m: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            inputs = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x, m))
            return model(*inputs)[0].numpy()

    outs = {}
    for flip in (False, True):
        for shift in (False, True):
            got = net.fill(pixels, hole, flip=flip, shift=shift, smooth=False).astype(int)
            pred = np.clip(averaged_predictor(torch_net, flip=flip, shift=shift)(image, valid), 0, 1)
            want = np.rint(np.where(valid > 0, image, pred) * 255).transpose(0, 2, 3, 1)
            assert np.abs(got - want).max() <= 1
            assert np.array_equal(got[hole == 0], pixels[hole == 0])  # known pixels are the input's bytes
            outs[flip, shift] = got
    assert len({o.tobytes() for o in outs.values()}) == 4  # every setting changes the fill


def test_fill_graph_reads_grey_above_127_as_hole(onnx_path: Path) -> None:
    net = OnnxPredictor(onnx_path)
    pixels = np.full((1, 16, 16, 3), 90, np.uint8)
    grey = np.zeros((1, 16, 16), np.uint8)
    grey[0, 4:8, 4:8] = 127  # not hole
    grey[0, 9:13, 9:13] = 128  # hole
    pixels[0, 4:8, 4:8] = 0
    pixels[0, 9:13, 9:13] = 0
    out = net.fill(pixels, grey)
    assert (out[0, 4:8, 4:8] == 0).all()
    assert (out[0, 9:13, 9:13] != 0).any()


def test_fill_graph_is_saved_preoptimised_with_standard_operators_and_the_same_fill(
    model: PConvUNet, onnx_path: Path, tmp_path: Path
) -> None:
    """ONNX Runtime's basic optimisations are done at export: fewer nodes, standard ONNX operators only (portable to
    any CPU, WebAssembly, WebGPU), recorded in the metadata, and the same bytes as the graph saved unoptimised."""
    import onnx

    plain_path = export_onnx(model, tmp_path / "plain.onnx", optimize=False)
    optimised, plain = onnx.load(str(onnx_path)), onnx.load(str(plain_path))
    assert len(optimised.graph.node) < len(plain.graph.node)
    assert {node.domain for node in optimised.graph.node} == {""}
    assert {op.domain for op in optimised.opset_import} <= {"", "ai.onnx"}
    assert OnnxPredictor(onnx_path).metadata["pconv_optimized"] == "basic"
    assert "pconv_optimized" not in OnnxPredictor(plain_path).metadata
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (2, 45, 70, 3), dtype=np.uint8)
    hole = np.where(rng.random((2, 45, 70)) > 0.7, 255, 0).astype(np.uint8)
    for flip, shift, smooth in [(True, True, True), (False, True, False)]:
        settings = {"flip": flip, "shift": shift, "smooth": smooth}
        got = OnnxPredictor(onnx_path).fill(pixels, hole, **settings)
        assert np.array_equal(got, OnnxPredictor(plain_path).fill(pixels, hole, **settings))


def test_the_fills_two_parts_in_turn_give_the_whole_graphs_bytes(
    tmp_path: Path, model: PConvUNet, onnx_path: Path
) -> None:
    """The page runs the fill as two graphs (``PART_GRAPHS``): passes, then finish, with the whole graph's output."""
    import onnx
    import onnxruntime as ort

    from pconv.export import PART_GRAPHS
    from pconv.fill_graph import PARTS

    assert tuple(PARTS) == PART_GRAPHS  # the parts export_onnx names are the fill graph's, in its order
    whole = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    parts = [
        ort.InferenceSession(
            str(export_onnx(model, tmp_path / f"{p}.onnx", graph=p)), providers=["CPUExecutionProvider"]
        )
        for p in PART_GRAPHS
    ]
    assert [i.name for i in parts[1].get_inputs()][:3] == ["prediction", "image", "hole_mask"]
    # the passes run as one network call (FillGraph(one_call=True)): one copy of the network's convolutions, not two
    convs = [sum(n.op_type == "Conv" for n in onnx.load(p).graph.node) for p in (onnx_path, tmp_path / "passes.onnx")]
    assert convs[1] > 0 and convs[0] >= 2 * convs[1], convs
    rng = np.random.default_rng(5)
    for (h, w), (flip, shift, smooth) in zip(
        [(16, 16), (21, 37), (50, 9), (33, 40)], [(1, 1, 1), (0, 1, 1), (1, 0, 0), (0, 0, 1)]
    ):
        image = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        hole = ((rng.random((2, h, w)) > 0.6) * 255).astype(np.uint8)
        scalars = {k: np.array(v, np.float32) for k, v in zip(("flip", "shift", "smooth"), (flip, shift, smooth))}
        want = whole.run(["filled"], {"image": image, "hole_mask": hole, **scalars})[0]
        (prediction,) = parts[0].run(
            None, {"image": image, "hole_mask": hole, "flip": scalars["flip"], "shift": scalars["shift"]}
        )
        assert prediction.shape == (2, 3, h, w) and prediction.dtype == np.float32
        feed = {"prediction": prediction, "image": image, "hole_mask": hole, "smooth": scalars["smooth"]}
        assert np.array_equal(parts[1].run(["filled"], feed)[0], want)


def test_export_unknown_graph(tmp_path: Path, model: PConvUNet) -> None:
    with pytest.raises(ValueError, match="graph must be one of"):
        export_onnx(model, tmp_path / "x.onnx", graph="whole")


def test_export_refuses_to_overwrite(tmp_path: Path, model: PConvUNet) -> None:
    (tmp_path / "x.onnx").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        export_onnx(model, tmp_path / "x.onnx")
    assert (tmp_path / "x.onnx").read_bytes() == b"keep"


def test_onnx_inpainter_agrees_with_torch(model: PConvUNet, onnx_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    hole = np.zeros((37, 45), np.uint8)
    hole[5:20, 10:30] = 1
    via_onnx = onnx_inpainter(onnx_path).inpaint(img, hole)
    via_torch = Inpainter(model=model, device="cpu").inpaint(img, hole)
    assert np.array_equal(via_onnx[hole == 0], img[hole == 0])
    assert np.abs(via_onnx.astype(int) - via_torch.astype(int)).max() <= 1  # float32 round-off may flip a rounding


def test_not_an_onnx_file(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable ONNX"):
        OnnxPredictor(tmp_path / "bad.onnx")
    with pytest.raises(FileNotFoundError):
        OnnxPredictor(tmp_path / "missing.onnx")


def test_cli_export_then_inpaint_with_onnx_backend(tmp_path: Path, model: PConvUNet, capsys) -> None:
    weights = save_weights(model, tmp_path / "tiny.safetensors")
    onnx = tmp_path / "tiny.onnx"
    assert main(["export-onnx", "--output", str(onnx), "--weights", str(weights)]) == 0
    assert "max abs difference" in capsys.readouterr().out
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    hole = np.zeros((40, 30), np.uint8)
    hole[10:20, 5:25] = 255
    Image.fromarray(hole).save(tmp_path / "m.png")
    args = ["inpaint", "--image", str(tmp_path / "a.png"), "--mask", str(tmp_path / "m.png")]
    assert main([*args, "--output", str(tmp_path / "onnx.png"), "--backend", "onnx", "--onnx", str(onnx)]) == 0
    assert main([*args, "--output", str(tmp_path / "torch.png"), "--weights", str(weights)]) == 0
    a, b = (np.asarray(Image.open(tmp_path / n)).astype(int) for n in ("onnx.png", "torch.png"))
    assert np.abs(a - b).max() <= 1


def test_cli_no_optimize_saves_the_exporters_graph(tmp_path: Path, model: PConvUNet, capsys) -> None:
    weights = save_weights(model, tmp_path / "tiny.safetensors")
    plain, optimised = tmp_path / "plain.onnx", tmp_path / "optimised.onnx"
    assert main(["export-onnx", "--output", str(plain), "--weights", str(weights), "--no-optimize"]) == 0
    assert "pre-optimised" not in capsys.readouterr().out
    assert main(["export-onnx", "--output", str(optimised), "--weights", str(weights)]) == 0
    assert "pre-optimised: ONNX Runtime's basic level" in capsys.readouterr().out
    assert "pconv_optimized" not in OnnxPredictor(plain).metadata
    assert OnnxPredictor(optimised).metadata["pconv_optimized"] == "basic"
