"""The fast inference path (BatchNorm folded, premasked features, in-place re-normalisation, channels_last)
equals the plain one, and the benchmark script runs end to end (figures are measured in benchmarks/, not here)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from pconv.bench import BenchSettings, bench_gpu
from pconv.bench_networks import PlainUNet, ReferencePConvUNet, bench_valid_mask, randomize_batchnorm
from pconv.bench_timing import interleaved
from pconv.cli import main
from pconv.config import ModelConfig
from pconv.layers import PartialConv2d, PConvBlock
from pconv.model import PConvUNet, fuse_for_inference

TINY = ModelConfig(depth=4, width=0.125)
DEEP_THIN = ModelConfig(depth=8, width=0.0625)
# bf16 keeps 8 significant bits (relative step 2**-8 = 0.4 %); through a U-Net the prediction, about [0, 1],
# drifts by up to a few 1e-2 from fp32. The mask path stays fp32, so the drift does not grow with the hole.
BF16_ATOL = 6e-2


def trained_like(config: ModelConfig, seed: int = 0) -> PConvUNet:
    """A model with random weights and random BatchNorm statistics (folding then changes every weight)."""
    torch.manual_seed(seed)
    return randomize_batchnorm(PConvUNet(config), seed=seed).eval()


def inputs(n: int, h: int, w: int, hole_ratio: float = 0.4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))
    valid = bench_valid_mask(n, h, w, hole_ratio, seed=seed)
    valid[:, :, 1:4, 1:4] = 0  # a few small holes too
    return image, valid


@pytest.mark.parametrize(("config", "h", "w"), [(TINY, 48, 40), (TINY, 37, 21), (DEEP_THIN, 256, 256)])
def test_fused_model_equals_plain_model_fp32(config: ModelConfig, h: int, w: int) -> None:
    model = trained_like(config)
    fused = fuse_for_inference(model)
    image, valid = inputs(2, h, w)
    with torch.inference_mode():
        ref, ref_mask = model(image, valid)
        out, out_mask = fused(image, valid)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_mask, ref_mask, rtol=0, atol=0)


def test_fused_channels_last_equals_plain_model() -> None:
    model = trained_like(TINY)
    fused = fuse_for_inference(model, channels_last=True)
    image, valid = inputs(2, 64, 64)
    with torch.inference_mode():
        ref, _ = model(image, valid)
        out, _ = fused(image, valid)
        out_cl, _ = fused(image.contiguous(memory_format=torch.channels_last), valid)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_cl, ref, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous() and fused.channels_last
    assert fused.decoder[1].conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_fused_model_still_ignores_hole_pixels() -> None:
    fused = fuse_for_inference(trained_like(TINY))
    image, valid = inputs(1, 32, 32)
    scribbled = image * valid + (1 - valid) * 100
    with torch.inference_mode():
        torch.testing.assert_close(fused(image, valid)[0], fused(scribbled, valid)[0], rtol=0, atol=0)


def test_fusing_leaves_the_model_alone_and_cannot_be_trained() -> None:
    model = trained_like(TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_inference(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.fused and fused.fused and not fused.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with pytest.raises(RuntimeError, match="fused"):
        fused.train()


def test_folded_block_equals_batchnorm_block_where_the_new_mask_is_one() -> None:
    """In the holes the BN block gives act(beta - mean * scale), the folded one 0: both are masked later."""
    block = PConvBlock(6, 5, 3, stride=2, bn=True, activation="leaky")
    randomize_batchnorm(block, seed=3).eval()
    x = torch.randn(2, 6, 16, 16)
    valid = bench_valid_mask(2, 16, 16, 0.6, seed=1)
    with torch.no_grad():
        ref, ref_mask = block([x], [valid])
        block.fold_batchnorm()
        out, out_mask = block([x * valid], [valid], premasked=True)
    assert block.bn is None
    torch.testing.assert_close(out_mask, ref_mask)
    torch.testing.assert_close(out * ref_mask, ref * ref_mask, rtol=1e-5, atol=1e-5)
    assert bool((out[ref_mask.expand_as(out) == 0] == 0).all())
    assert bool((ref[ref_mask.expand_as(ref) == 0] != 0).any())  # the difference the docstring describes


def test_premasked_input_gives_the_same_result() -> None:
    layer = PartialConv2d(4, 3, 3, padding=1)
    xs = [torch.randn(2, 4, 12, 12), torch.randn(2, 2, 12, 12)]
    ms = [bench_valid_mask(2, 12, 12, 0.5, seed=s) for s in (1, 2)]
    torch.testing.assert_close(layer(xs[0] * ms[0], ms[0], premasked=True), layer(xs[0], ms[0]))
    concat = PartialConv2d(6, 3, 3, padding=1)
    masked = [x * m for x, m in zip(xs, ms)]
    torch.testing.assert_close(concat.forward_concat(masked, ms, premasked=True), concat.forward_concat(xs, ms))


def test_in_place_renormalisation_has_correct_gradients() -> None:
    layer = PartialConv2d(2, 3, 3, stride=2, padding=1).double()
    valid = bench_valid_mask(1, 7, 7, 0.5, seed=4).double()
    x = torch.randn(1, 2, 7, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: _call_with(layer, x, valid, w, b), (x, layer.weight, layer.bias))


def _call_with(layer: PartialConv2d, x: torch.Tensor, valid: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
    return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x, valid))[0]


def test_bf16_autocast_of_the_fused_model_is_close_to_fp32() -> None:
    model = trained_like(TINY)
    fused = fuse_for_inference(model)
    image, valid = inputs(2, 64, 64, hole_ratio=0.6)
    with torch.inference_mode():
        ref, ref_mask = model(image, valid)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, out_mask = fused(image, valid)
        pure, _ = fuse_for_inference(model).to(torch.bfloat16)(image.bfloat16(), valid.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=0, atol=BF16_ATOL)
    torch.testing.assert_close(pure.float(), ref, rtol=0, atol=BF16_ATOL)
    torch.testing.assert_close(out_mask.float(), ref_mask)  # the mask path is exact


def test_reference_network_computes_the_same_function() -> None:
    """The benchmark's C-channel-mask reference is the paper's formula too: only its cost differs."""
    model = trained_like(TINY)
    reference = ReferencePConvUNet(TINY).eval()
    reference.load_state_dict(model.state_dict())
    image, valid = inputs(2, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(reference(image, valid)[0], model(image, valid)[0], rtol=1e-4, atol=1e-4)


def test_floor_has_the_same_shapes_and_folds_exactly() -> None:
    model = trained_like(TINY)
    floor = PlainUNet(TINY).eval()
    floor.load_state_dict(model.state_dict())  # same keys and shapes as PConvUNet
    image = torch.rand(1, 3, 40, 40)
    with torch.inference_mode():
        ref = floor(image)
        folded = floor.fold_batchnorm()(image)
    torch.testing.assert_close(folded, ref, rtol=1e-5, atol=1e-5)
    assert ref.shape == image.shape


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.6])
def test_bench_mask_has_the_asked_hole_ratio(ratio: float) -> None:
    valid = bench_valid_mask(2, 60, 80, ratio, seed=5)
    assert valid.shape == (2, 1, 60, 80)
    assert set(valid.unique().tolist()) <= {0.0, 1.0}
    assert abs((1 - valid).mean().item() - ratio) < 1 / (60 * 80)


def test_interleaved_runs_round_robin_after_warmup() -> None:
    calls: list[str] = []
    times = interleaved({n: (lambda n=n: calls.append(n)) for n in "ABC"}, warmup=1, repeats=2)
    assert calls == list("ABCABCABC")
    assert {k: len(v) for k, v in times.items()} == {"A": 2, "B": 2, "C": 2}


def test_gpu_section_runs_on_cpu_with_tiny_sizes() -> None:
    """The device-agnostic part of `--device cuda` (CUDA graphs and compilation are CUDA-only or opt-in)."""
    s = BenchSettings.quick(device="cpu", size=32, gpu_batch=2, warmup=1, repeats=1)
    torch.set_num_threads(2)
    out = bench_gpu(s)
    assert set(out["latency"]) == {"float32", "bfloat16"}
    assert set(out["latency"]["bfloat16"]) == {"floor", "floor_fused", "pconv_fused"}
    assert {"pconv_fused", "pconv_fused_channels_last"} <= set(out["throughput"]["results"])
    assert all(e["images_per_s"] > 0 for e in out["throughput"]["results"].values())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_section_with_cuda_graphs() -> None:
    out = bench_gpu(BenchSettings.quick(device="cuda", size=64, gpu_batch=4))
    assert "pconv_fused_cuda_graph" in out["latency"]["bfloat16"]


def test_bench_command_quick_writes_results(tmp_path, capsys) -> None:
    assert main(["bench", "--quick", "--output-dir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"forward", "holes", "fast_paths", "training", "sizes"} <= set(results)
    forward = results["forward"]["results"]
    assert {"floor", "pconv", "pconv_fused", "reference"} <= set(forward)
    assert forward["floor"]["vs_floor"] == 1.0
    assert len(results["sizes"]) == 2 and all("peak_rss_mib" in r for r in results["sizes"])
    assert results["fast_paths"]["notes"].get("onnxruntime_max_abs_diff", 1) < 1e-4
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Goals" in text and "results.png" in text and "`pconv bench --output-dir" in text and "--quick" in text
    with Image.open(tmp_path / "results.png") as png:
        assert png.format == "PNG" and png.size[0] > 500
    assert "wrote" in capsys.readouterr().out
    # A second run must not silently replace the results.
    assert main(["bench", "--quick", "--output-dir", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_bench_command_replaces_only_its_own_section_of_results_md(tmp_path) -> None:
    from pconv.bench_report import BENCH_SECTION, markers, write_section

    results_md = tmp_path / "RESULTS.md"
    write_section(results_md, "another-benchmark", "## Another benchmark\n\nits figures\n")
    before = results_md.read_text()
    assert main(["bench", "--quick", "--output-dir", str(tmp_path), "--overwrite"]) == 0
    text = results_md.read_text()
    begin, end = markers(BENCH_SECTION)
    assert text.count(begin) == 1 and text.count(end) == 1 and "## Goals" in text
    assert before in text  # every byte of the other section kept


def test_plain_and_fused_agree_on_the_paper_network_at_256() -> None:
    """The full-width paper network: fusion stays within 1e-5 at realistic channel counts."""
    model = trained_like(ModelConfig())
    fused = fuse_for_inference(model)
    image, valid = inputs(1, 256, 256)
    with torch.inference_mode():
        torch.testing.assert_close(fused(image, valid)[0], model(image, valid)[0], rtol=1e-5, atol=1e-5)


def test_print_table_prints_and_appends_one_markdown_section(tmp_path, capsys) -> None:
    from pconv.bench_timing import print_table

    out = tmp_path / "RESULTS.md"
    out.write_text("# Results\n")
    text = print_table("Speed", ("size", "s"), [("512x512", "0.10"), ("1024x1024", 0.4)], out, note="median of 5")
    assert capsys.readouterr().out.strip() == text.strip()
    assert text.splitlines() == [
        "## Speed",
        "",
        "median of 5",
        "",
        "| size | s |",
        "|---|---|",
        "| 512x512 | 0.10 |",
        "| 1024x1024 | 0.4 |",
    ]
    print_table("Again", ("a",), [(1,)], out)
    assert out.read_text() == "# Results\n\n" + text + "\n## Again\n\n| a |\n|---|\n| 1 |\n"
