"""Evaluation: scores by hand, deterministic cases, outputs checked, reports, and `pconv evaluate` end to end."""

from __future__ import annotations

import csv
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pconv import evaluate as ev
from pconv import mask_generation as pconv_masks
from pconv import report, scores
from pconv.cli import main
from pconv.config import ModelConfig
from pconv.model import PConvUNet, save_weights

NVIDIA = "masks/nvidia_irregular_test"


# ---- scores ---------------------------------------------------------------------------------------------------


def test_l1_and_psnr_match_hand_computed_values() -> None:
    truth = np.zeros((2, 2, 3), np.uint8)
    result = truth.copy()
    result[0, 0, 0] = 255  # one of 12 values off by 1.0 on [0, 1]
    assert scores.l1_percent(result, truth) == pytest.approx(100 / 12)
    assert scores.psnr(result, truth) == pytest.approx(10 * math.log10(12))  # MSE = 1/12
    result[1, 1] = 51  # three more values off by 0.2
    assert scores.l1_percent(result, truth) == pytest.approx(100 * (1 + 3 * 0.2) / 12)
    assert scores.psnr(result, truth) == pytest.approx(-10 * math.log10((1 + 3 * 0.04) / 12))


def test_ssim_of_one_window_matches_the_formula() -> None:
    # A 7x7 image has exactly one full 7x7 window, so SSIM is the formula on the whole image per channel
    # (sample covariance, C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 255), averaged over the channels.
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)
    result = np.clip(truth.astype(int) + rng.integers(-40, 41, (7, 7, 3)), 0, 255).astype(np.uint8)
    expected = []
    for c in range(3):
        x, y = truth[..., c].astype(float).ravel(), result[..., c].astype(float).ravel()
        mx, my = x.mean(), y.mean()
        vx, vy, cov = x.var(ddof=1), y.var(ddof=1), np.cov(x, y, ddof=1)[0, 1]
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        expected.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    assert scores.ssim(result, truth) == pytest.approx(np.mean(expected), abs=1e-9)


def test_identical_images_score_perfectly_with_infinite_psnr() -> None:
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert scores.l1_percent(image, image) == 0.0
    assert scores.psnr(image, image) == math.inf
    assert scores.ssim(image, image) == pytest.approx(1.0)


def test_scores_refuse_mismatched_or_non_uint8_pairs() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in size"):
        scores.l1_percent(a, np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        scores.psnr(a.astype(np.float32), a)


def _result(case: ev.Case, method: str, psnr: float, l1: float = 1.0) -> ev.CaseResult:
    return ev.CaseResult(case, method, 0.05, l1, psnr, 0.9, 0.01)


def test_summary_averages_finite_psnr_and_counts_infinite_ones(tmp_path: Path) -> None:
    cases = [ev.Case(i, i, Path(f"p{i}.png"), 0, "N", "x") for i in range(3)]
    results = [_result(cases[0], "m", 30.0, 2.0), _result(cases[1], "m", 40.0, 4.0), _result(cases[2], "m", math.inf)]
    cell = ev.summarize(results)["m"]["cells"]["(0.01,0.1]"]["N"]
    assert cell["psnr"] == pytest.approx(35.0) and cell["psnr_infinite"] == 1
    assert cell["l1"] == pytest.approx(7 / 3) and cell["n"] == 3
    empty = ev.summarize(results)["m"]["cells"]["(0.5,0.6]"]["B"]
    assert empty["n"] == 0 and math.isnan(empty["psnr"])
    text = report.markdown_report(ev.summarize(results), {"photos": "test"})
    assert "35.00 (+1×∞)" in text
    # JSON stays valid JSON: NaN becomes null, never the non-standard NaN token
    report.write_report(tmp_path, ev.summarize(results), results, {"photos": "test"})
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["methods"]["m"]["cells"]["(0.5,0.6]"]["B"]["psnr"] is None


def test_comparison_table_names_the_best_method_per_cell() -> None:
    case = ev.Case(0, 0, Path("p.png"), 2, "B", "x")
    summary = ev.summarize([_result(case, "good", 30.0, 1.0), _result(case, "bad", 20.0, 5.0)])
    row = next(line for line in report.markdown_report(summary, {}).splitlines()[::-1] if "(0.2,0.3]" in line)
    assert "1.00 good" in row and "30.00 good" in row


# ---- cases ----------------------------------------------------------------------------------------------------


def test_load_photo_resizes_short_side_and_centre_crops(tmp_path: Path) -> None:
    wide = np.zeros((256, 768, 3), np.uint8)  # short side 256 -> 512, so 1536x512, crop columns 512..1024
    wide[:, :384] = (255, 0, 0)
    wide[:, 384:] = (0, 0, 255)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    image = ev.load_photo(tmp_path / "wide.png")
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    # the colour edge at original column 384 lands at 768 after scaling, 256 after the crop
    assert (image[:, :250, 0] > 200).all() and (image[:, 262:, 2] > 200).all()


def test_find_photos_is_recursive_and_sorted(tmp_path: Path) -> None:
    for rel in ["b/z.jpg", "a/y.PNG", "a/x.txt", "c.webp"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in ev.find_photos(tmp_path)] == ["a/y.PNG", "b/z.jpg", "c.webp"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no photos"):
        ev.find_photos(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="photo folder not found"):
        ev.find_photos(tmp_path / "missing")


def test_case_selection_is_deterministic_and_limit_is_a_prefix(shared_data: Path) -> None:
    photos = [Path(f"photo{i:03d}.jpg") for i in range(30)]
    source = ev.NvidiaCellMasks(shared_data / NVIDIA)
    full = ev.build_cases(photos, source)
    assert full == ev.build_cases(photos, ev.NvidiaCellMasks(shared_data / NVIDIA))
    assert ev.build_cases(photos, source, limit=4) == full[:48]
    assert len(full) == 30 * 12
    for case in full:
        index = int(case.mask_id[:5])
        assert index // 2000 == case.bin_index  # the NVIDIA layout: bin = index // 2000, N first then B
        assert (index % 2000 < 1000) == (case.kind == "N")
    cell = [c.mask_id for c in full if c.bin_index == 3 and c.kind == "B"]
    assert len(set(cell)) == len(cell)  # different photos get different masks
    other_seed = ev.build_cases(photos, ev.NvidiaCellMasks(shared_data / NVIDIA, seed=1))
    assert [c.mask_id for c in other_seed] != [c.mask_id for c in full]


def test_nvidia_masks_load_in_their_bin(shared_data: Path) -> None:
    source = ev.NvidiaCellMasks(shared_data / NVIDIA)
    for case in ev.build_cases([Path("p.jpg")], source):
        hole_mask = source.load(case)
        lo, hi = ev.BINS[case.bin_index]
        assert hole_mask.shape == (512, 512) and set(np.unique(hole_mask)) <= {0, 1}
        assert lo - 0.02 < hole_mask.mean() <= hi + 0.02
        if case.kind == "N":
            assert not hole_mask[:50].any() and not hole_mask[:, -50:].any()


def test_generated_masks_are_reproducible_in_their_bin_and_keep_the_border_rule() -> None:
    if not hasattr(pconv_masks, "generate_hole_mask"):
        with pytest.raises(RuntimeError, match="generate_hole_mask"):
            ev.GeneratedCellMasks(0)
        return
    source = ev.GeneratedCellMasks(0)
    cases = ev.build_cases([Path("a.jpg"), Path("b.jpg")], source)
    holes = [source.load(case) for case in cases]
    assert all(np.array_equal(h, source.load(c)) for h, c in zip(holes[:3], cases[:3]))
    assert not np.array_equal(holes[0], holes[12])  # another photo, another mask
    for case, hole_mask in zip(cases, holes):
        lo, hi = ev.BINS[case.bin_index]
        assert hole_mask.shape == (512, 512) and lo < hole_mask.mean() <= hi
        if case.kind == "N":
            assert not hole_mask[:50].any() and not hole_mask[-50:].any() and not hole_mask[:, :50].any()


def test_a_folder_that_is_not_the_nvidia_set_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(tmp_path / "00000.png")
    with pytest.raises(ValueError, match="11999.png is missing"):
        ev.NvidiaCellMasks(tmp_path)


# ---- running methods ------------------------------------------------------------------------------------------


class _Broken:
    """A method that returns a wrong result, to check the evaluation refuses it."""

    def __init__(self, mode: str) -> None:
        self.name, self.mode = f"broken-{mode}", mode

    def fill_batch(self, images: np.ndarray, hole_masks: np.ndarray) -> list:
        outputs = [image.copy() for image in images]
        if self.mode == "missing":
            return outputs[:-1]
        if self.mode == "size":
            outputs[3] = outputs[3][:, :500]
        if self.mode == "dtype":
            outputs[0] = outputs[0].astype(np.float32)
        if self.mode == "none":
            outputs[5] = None
        return outputs


@pytest.mark.parametrize(
    "mode, match",
    [
        ("missing", "11 outputs for 12"),
        ("size", "instead of"),
        ("dtype", "float32 instead"),
        ("none", "NoneType instead"),
    ],
)
def test_a_missing_or_malformed_output_is_an_error(shared_data: Path, mode: str, match: str) -> None:
    source = ev.NvidiaCellMasks(shared_data / NVIDIA)
    cases = ev.build_cases(ev.find_photos(shared_data / "eval_photos")[:1], source)
    with pytest.raises(RuntimeError, match=match):
        ev.run_evaluation(cases, [_Broken(mode)], source, progress=False)


def _tiny_model_and_cases(n: int, seed: int) -> tuple[PConvUNet, np.ndarray, np.ndarray]:
    """A tiny random network, n random 64x64 uint8 photos and (n, 64, 64) hole masks (1 = hole, ~30 %)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = PConvUNet(ModelConfig(depth=4, width=0.125)).eval()
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    return model, images, (rng.random((n, 64, 64)) < 0.3).astype(np.uint8)


def test_pconv_method_keeps_known_pixels_and_batches_consistently() -> None:
    model, images, hole_masks = _tiny_model_and_cases(5, seed=0)
    one = ev.PConvMethod(model, batch_size=1).fill_batch(images, hole_masks)
    many = ev.PConvMethod(model, batch_size=4).fill_batch(images, hole_masks)
    for a, b, image, hole_mask in zip(one, many, images, hole_masks):
        assert a.shape == image.shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a[hole_mask == 0], image[hole_mask == 0])
        assert np.abs(a.astype(int) - b).max() <= 1  # batch composition changes float rounding at most


def test_pconv_method_flip_and_shift_average_match_the_inpainter() -> None:
    model, images, hole_masks = _tiny_model_and_cases(2, seed=1)
    from pconv.inference import Inpainter

    outputs = {}
    for flip, shift, smooth in itertools.product((True, False), repeat=3):
        method = ev.PConvMethod(model, batch_size=2, flip_average=flip, shift_average=shift, smooth=smooth)
        outputs[flip, shift, smooth] = method.fill_batch(images, hole_masks)
        inpainter = Inpainter(
            model=model, device="cpu", fast=False, flip_average=flip, shift_average=shift, smooth=smooth
        )
        for got, image, hole_mask in zip(outputs[flip, shift, smooth], images, hole_masks):
            assert np.abs(got.astype(int) - inpainter.inpaint(image, hole_mask)).max() <= 1  # float rounding only
    # Without the smooth blend the four averages really differ (with it, flat test images may hide them).
    assert len({outputs[key][0].tobytes() for key in outputs if not key[2]}) == 4


# ---- the command ----------------------------------------------------------------------------------------------


def _tiny_weights(path: Path) -> Path:
    import torch

    torch.manual_seed(0)
    return save_weights(PConvUNet(ModelConfig(depth=4, width=0.125)), path)


def test_cli_end_to_end_writes_every_report(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    weights = _tiny_weights(tmp_path / "w.safetensors")
    photos, masks = str(shared_data / "eval_photos"), str(shared_data / NVIDIA)
    argv = [
        "evaluate",
        "--method",
        "pconv",
        "mean",
        "--weights",
        str(weights),
        "--photos",
        photos,
        "--masks",
        masks,
        "--out",
        str(out),
        "--limit",
        "2",
        "--batch-size",
        "6",
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "## pconv" in printed and "## Best method per cell" in printed and "| (0.5,0.6] |" in printed
    assert {p.name for p in out.iterdir()} == {
        "results.md",
        "results.json",
        "cases.csv",
        "plot_l1.png",
        "plot_psnr.png",
        "plot_ssim.png",
        "samples.png",
    }
    rows = list(csv.DictReader((out / "cases.csv").open()))
    assert len(rows) == 2 * 12 * 2 and {r["method"] for r in rows} == {"pconv", "mean"}
    assert all(float(r["l1_percent"]) > 0 and 0 < float(r["ssim"]) < 1 for r in rows)
    expected = ev.build_cases(ev.find_photos(photos), ev.NvidiaCellMasks(Path(masks)), limit=2)
    assert [r["mask"] for r in rows if r["method"] == "mean"] == [c.mask_id for c in expected]
    data = json.loads((out / "results.json").read_text())
    assert data["methods"]["pconv"]["overall"]["n"] == 24
    assert data["methods"]["pconv"]["cells"]["(0.5,0.6]"]["B"]["n"] == 2
    with Image.open(out / "samples.png") as grid:
        assert grid.width > 4 * 200  # input, 2 methods, truth
    assert (out / "results.md").read_text() in printed


def test_cli_parallel_workers_give_the_same_scores(shared_data: Path, tmp_path: Path) -> None:
    common = [
        "evaluate",
        "--method",
        "mean",
        "--photos",
        str(shared_data / "eval_photos"),
        "--masks",
        str(shared_data / NVIDIA),
        "--limit",
        "1",
        "--quiet",
    ]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--workers", "2"]) == 0

    def scores_of(folder: str) -> list:
        return [
            (r["case"], r["mask"], r["l1_percent"], r["psnr_db"], r["ssim"])
            for r in csv.DictReader((tmp_path / folder / "cases.csv").open())
        ]

    assert len(scores_of("a")) == 12 and scores_of("a") == scores_of("b")


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pconv", *args], capture_output=True, text=True, timeout=300)


def test_cli_errors_are_one_line_and_keep_user_files(shared_data: Path, tmp_path: Path) -> None:
    base = [
        "evaluate",
        "--photos",
        str(shared_data / "eval_photos"),
        "--masks",
        str(shared_data / NVIDIA),
        "--limit",
        "1",
    ]
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    busy = _run_cli(*base, "--method", "mean", "--out", str(out))
    assert busy.returncode == 2 and "--overwrite" in busy.stderr and "Traceback" not in busy.stderr
    assert (out / "keep.txt").read_text() == "precious"
    # LPIPS/FID are not offered (docs/evaluation.md says why): the removed option is an ordinary usage error
    lpips = _run_cli(*base, "--method", "mean", "--out", str(tmp_path / "x"), "--extra-metrics", "lpips")
    assert lpips.returncode == 2 and "unrecognized arguments: --extra-metrics" in lpips.stderr
    assert len(lpips.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
    missing = _run_cli(
        *base, "--method", "pconv", "--weights", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "y")
    )
    assert missing.returncode == 2 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    masks = _run_cli(*base, "--method", "mean", "--masks", str(tmp_path), "--out", str(tmp_path / "z"))
    assert masks.returncode == 2 and "not the NVIDIA test mask set" in masks.stderr


def test_pconv_without_weights_names_the_option(shared_data: Path, tmp_path: Path) -> None:
    from pconv.inference import default_weights_path

    if default_weights_path().is_file():
        pytest.skip("this install bundles default weights")
    result = _run_cli(
        "evaluate",
        "--photos",
        str(shared_data / "eval_photos"),
        "--masks",
        str(shared_data / NVIDIA),
        "--out",
        str(tmp_path / "o"),
        "--limit",
        "1",
    )
    assert result.returncode == 2 and "--weights PATH" in result.stderr and "Traceback" not in result.stderr


def test_reuse_joins_earlier_scores_and_refuses_other_cases(shared_data: Path, tmp_path: Path, capsys) -> None:
    photos, masks = str(shared_data / "eval_photos"), str(shared_data / NVIDIA)
    common = ["--photos", photos, "--masks", masks, "--limit", "1", "--quiet"]
    assert main(["evaluate", "--method", "mean", "telea", "--out", str(tmp_path / "a"), *common]) == 0
    first = json.loads((tmp_path / "a" / "results.json").read_text())["methods"]
    # Score only "mean" now and take telea from the first run: telea's tables must be the same numbers.
    argv = ["evaluate", "--method", "mean", "--reuse", str(tmp_path / "a"), "--out", str(tmp_path / "b"), *common]
    assert main(argv) == 0
    second = json.loads((tmp_path / "b" / "results.json").read_text())["methods"]
    assert set(second) == {"mean", "telea"}
    assert second["telea"]["overall"]["l1"] == pytest.approx(first["telea"]["overall"]["l1"], abs=1e-4)
    with (tmp_path / "b" / "cases.csv").open() as f:
        assert sum(row["method"] == "telea" for row in csv.DictReader(f)) == 12
    capsys.readouterr()
    # Another seed chooses other masks: the earlier scores do not describe these cases.
    other = [
        "evaluate",
        "--method",
        "mean",
        "--seed",
        "5",
        "--reuse",
        str(tmp_path / "a"),
        "--out",
        str(tmp_path / "c"),
        *common,
    ]
    assert main(other) == 2
    assert "use the same photos, masks and --seed" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_pconv_is_compared_cell_by_cell_with_the_best_classical_method() -> None:
    small, large = ev.Case(0, 0, Path("p.png"), 0, "N", "x"), ev.Case(1, 1, Path("q.png"), 5, "B", "y")

    def res(case: ev.Case, method: str, l1: float, psnr: float, ssim: float) -> ev.CaseResult:
        return ev.CaseResult(case, method, 0.05, l1, psnr, ssim, 0.01)

    results = [
        res(small, "pconv", 0.40, 33.0, 0.97),  # loses l1 to ns, wins PSNR and SSIM
        res(small, "ns", 0.39, 32.0, 0.96),
        res(small, "telea", 0.50, 32.5, 0.95),
        res(large, "pconv", 5.0, 19.0, 0.70),  # wins all three
        res(large, "ns", 5.5, 18.0, 0.69),
        res(large, "telea", 5.4, 18.5, 0.68),
        res(large, "mean", 1.0, 40.0, 0.99),  # the mean fill is not a classical rival
    ]
    text = report.markdown_report(ev.summarize(results), {})
    section = text[text.index("## pconv against the best classical method (telea, ns)") :]
    rows = [line for line in section.splitlines() if line.startswith("| (")]
    assert rows[0] == "| (0.01,0.1] | N | 0.40 | 0.39 ns | **33.00** | 32.50 telea | **0.970** | 0.960 ns |"
    assert rows[1] == "| (0.5,0.6] | B | **5.00** | 5.40 telea | **19.00** | 18.50 telea | **0.700** | 0.690 ns |"
    assert len(rows) == 2  # empty cells are skipped
    assert "l1 1/2, PSNR 2/2, SSIM 2/2, all three 1/2" in section
    assert "## pconv against" not in report.markdown_report(ev.summarize(results[3:4]), {})


def test_split_names_the_validation_or_test_folder_and_the_report_says_which(
    shared_data: Path, tmp_path: Path, monkeypatch
) -> None:
    common = ["evaluate", "--method", "mean", "--limit", "1", "--quiet"]
    assert main([*common, "--split", "val", "--data-root", str(shared_data), "--out", str(tmp_path / "val")]) == 0
    settings = json.loads((tmp_path / "val" / "results.json").read_text())["settings"]
    assert settings["split"].startswith("val (validation") and settings["photos"].startswith(
        str(shared_data / "val_photos")
    )
    assert settings["masks"].startswith(str(shared_data / NVIDIA))
    assert "- split: val (validation" in (tmp_path / "val" / "results.md").read_text()
    argv = ["--photos", str(shared_data / "val_photos"), "--masks", str(shared_data / NVIDIA)]
    assert main([*common, *argv, "--out", str(tmp_path / "photos")]) == 0

    def cases(folder: str) -> list:
        return [
            (r["photo"], r["mask"], r["l1_percent"]) for r in csv.DictReader((tmp_path / folder / "cases.csv").open())
        ]

    assert len(cases("val")) == 12 and cases("val") == cases("photos")
    assert json.loads((tmp_path / "photos" / "results.json").read_text())["settings"]["split"].startswith("none")
    # The default data root is ../shared/data, beside the checkout; test means eval_photos.
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main([*common, "--split", "test", "--out", str(tmp_path / "test")]) == 0
    settings = json.loads((tmp_path / "test" / "results.json").read_text())["settings"]
    assert settings["split"].startswith("test (") and "eval_photos" in settings["photos"]


def test_split_errors_are_one_line(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = ["--out", str(tmp_path / "o"), "--method", "mean", "--limit", "1"]
    assert main(["evaluate", "--split", "val", "--data-root", str(tmp_path), *out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--split val: photo folder not found" in err and "--data-root" in err
    assert main(["evaluate", "--photos", str(shared_data / "val_photos"), "--data-root", str(shared_data), *out]) == 2
    assert "--data-root applies to --split only" in capsys.readouterr().err
    assert main(["evaluate", "--photos", str(shared_data / "val_photos"), *out]) == 2
    assert "--masks is required with --photos" in capsys.readouterr().err
    for argv, message in (
        (["--split", "val", "--photos", str(shared_data / "val_photos")], "not allowed with argument"),
        ([], "one of the arguments --photos --split is required"),
        (["--split", "train"], "invalid choice: 'train'"),
    ):
        with pytest.raises(SystemExit) as info:
            main(["evaluate", *argv, *out])
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()
