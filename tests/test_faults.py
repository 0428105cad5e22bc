"""``tools/faults.py``: the colour offset on smooth areas and broken straight structures, on known answers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pconv.baselines import fill_ns

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from eval_cases import composite, parse_bins  # noqa: E402
from faults import (  # noqa: E402
    CaseRecord,
    FaultSums,
    case_pixels,
    edge_steps,
    main,
    measure_case,
    smooth_pixels,
    summarize,
    table,
)

SIZE = 96
YY, XX = np.mgrid[:SIZE, :SIZE]


def rgb(grey: np.ndarray) -> np.ndarray:
    """(H, W) levels -> (H, W, 3) uint8 grey picture."""
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def line_picture(*, offset: float = 0.0, contrast: int = 80, end_x: int = SIZE) -> np.ndarray:
    """A 3 px wide line y = x / 2 + 20 + offset of ``contrast`` levels on grey 100, drawn for x < end_x."""
    distance = np.abs(YY - (0.5 * XX + 20 + offset)) / np.hypot(1, 0.5)
    return rgb(np.where((distance <= 1.5) & (XX < end_x), 100 + contrast, 100))


def square_hole(lo: int = 30, hi: int = 60) -> np.ndarray:
    hole = np.zeros((SIZE, SIZE), np.uint8)
    hole[lo:hi, lo:hi] = 1
    return hole


def test_smooth_pixels_are_hole_pixels_of_a_flat_neighbourhood() -> None:
    rng = np.random.default_rng(0)
    grey = np.full((SIZE, SIZE), 150.0)
    grey[:, 48:] = rng.normal(150, 20, (SIZE, 48))  # textured right half
    hole = square_hole()
    smooth = smooth_pixels(rgb(grey), hole)
    assert smooth[hole == 0].sum() == 0
    assert smooth[30:60, 30:44].all()  # the 9x9 window stays in the flat half
    assert not smooth[30:60, 44:60].any()  # the window reaches the texture


def test_a_colour_offset_shows_as_bias_error_and_outline() -> None:
    truth, hole = rgb(np.full((SIZE, SIZE), 200)), square_hole()
    pixels = case_pixels(truth, hole)
    brighter_red = truth.astype(int) + [6, 0, -3]
    figures = FaultSums.of(composite(truth, hole, brighter_red.astype(np.uint8)), truth, pixels).figures()
    assert figures["smooth_pixels"] == 900 and figures["edge_pairs"] == 4 * 30
    assert figures["bias_rgb"] == pytest.approx([6, 0, -3])
    assert figures["smooth_mae"] == pytest.approx(3.0)
    assert figures["outline"] == pytest.approx(3.0)  # the truth itself has no step
    assert figures["edge_bias_rgb"] == pytest.approx([6, 0, -3]) and figures["edge_offset"] == pytest.approx(3.0)
    exact = FaultSums.of(truth, truth, pixels).figures()
    assert exact["smooth_mae"] == exact["outline"] == 0 and exact["bias_rgb"] == exact["edge_bias_rgb"] == [0, 0, 0]


def test_grain_at_the_edge_is_an_outline_without_an_edge_bias() -> None:
    truth, hole = rgb(np.full((SIZE, SIZE), 200)), square_hole()
    grain = np.where((YY + XX) % 2 == 0, 4, -4)[..., None]  # +-4 levels, a checkerboard: no offset on average
    figures = FaultSums.of(
        composite(truth, hole, (truth + grain).astype(np.uint8)), truth, case_pixels(truth, hole)
    ).figures()
    assert figures["outline"] == pytest.approx(4.0) and figures["edge_bias_rgb"] == pytest.approx([0, 0, 0])
    assert figures["edge_offset"] == pytest.approx(0.0)


def test_edge_offsets_of_opposite_sign_cancel_in_the_bias_but_not_in_the_offset() -> None:
    truth, hole = rgb(np.full((SIZE, SIZE), 100)), square_hole()
    pixels = case_pixels(truth, hole)
    shifted = [composite(truth, hole, (truth.astype(int) + d).astype(np.uint8)) for d in (5, -5)]
    brighter, darker = (FaultSums.of(fill, truth, pixels) for fill in shifted)
    figures = (brighter + darker).figures()
    assert figures["edge_bias_rgb"] == pytest.approx([0, 0, 0]) and figures["edge_offset"] == pytest.approx(5.0)
    assert figures["outline"] == pytest.approx(5.0)


def test_outline_counts_only_the_step_at_the_hole_edge() -> None:
    rng = np.random.default_rng(1)
    truth, hole = rgb(rng.normal(120, 1.0, (SIZE, SIZE))), square_hole()
    inner = np.zeros_like(hole)
    inner[32:58, 32:58] = 1  # offset only away from the edge: no outline, but an error
    offset_inside = np.where(inner[..., None] > 0, truth.astype(int) + 8, truth).astype(np.uint8)
    figures = FaultSums.of(offset_inside, truth, case_pixels(truth, hole)).figures()
    assert figures["outline"] == pytest.approx(0.0) and figures["smooth_mae"] > 4
    fill, true, offset = edge_steps(offset_inside, truth, hole > 0, hole > 0)
    assert len(fill) == len(true) == len(offset) == 4 * 30 and (fill == true).all() and (offset == 0).all()


def test_crossing_pixels_lie_on_a_line_that_enters_and_leaves_the_hole() -> None:
    hole = square_hole()
    crossing = case_pixels(line_picture(), hole).crossing
    distance = np.abs(YY - (0.5 * XX + 20)) / np.hypot(1, 0.5)
    assert crossing.sum() > 200 and (hole[crossing] == 1).all()
    assert distance[crossing].max() < 8  # the line and its flanks
    assert crossing[distance < 1].sum() == (distance[hole > 0] < 1).sum()  # its whole centre line in the hole
    assert not case_pixels(line_picture(end_x=45), hole).crossing.any()  # it ends in the hole: nothing to continue
    noise = rgb(np.random.default_rng(2).normal(100, 25, (SIZE, SIZE)))
    assert not case_pixels(noise, hole).crossing.any()


def test_contrast_kept_is_high_for_a_continued_line_and_low_for_a_blurred_one() -> None:
    truth, hole = line_picture(), square_hole()
    pixels = case_pixels(truth, hole)

    def score(fill: np.ndarray) -> dict:
        return FaultSums.of(composite(truth, hole, fill), truth, pixels).figures()

    exact, moved = score(truth), score(line_picture(offset=1))
    assert exact["contrast_kept"] == pytest.approx(1.0) and exact["structure_mae"] == 0
    assert moved["contrast_kept"] > 0.95 and moved["structure_mae"] > 5  # continued, 1 px off: sharp but wrong
    assert score(line_picture(contrast=40))["contrast_kept"] == pytest.approx(0.5, abs=0.05)
    blurred, diffused = score(cv2.GaussianBlur(truth, (0, 0), 4)), score(fill_ns(truth, hole))
    assert blurred["contrast_kept"] < 0.3 and diffused["contrast_kept"] < 0.3


def test_patchmatch_continues_the_line_where_navier_stokes_blurs_it() -> None:
    pytest.importorskip("patchmatch")
    from pconv.baselines import fill_patchmatch

    truth, hole = line_picture(), square_hole()
    fills = {n: composite(truth, hole, f(truth, hole)) for n, f in (("patchmatch", fill_patchmatch), ("ns", fill_ns))}
    figures = {n: s.figures() for n, s in measure_case(truth, hole, fills).items()}
    assert figures["patchmatch"]["contrast_kept"] > 0.8 > 0.4 > figures["ns"]["contrast_kept"]
    assert figures["patchmatch"]["structure_mae"] < figures["ns"]["structure_mae"] / 4


def test_summary_pools_pixels_and_counts_the_cases_pconv_loses() -> None:
    def sums(smooth_px: int, smooth_err: float, structure_px: int, structure_err: float) -> FaultSums:
        return FaultSums(
            smooth_pixels=smooth_px,
            smooth_abs=smooth_px * smooth_err,
            smooth_signed=np.full(3, smooth_px * smooth_err),
            structure_pixels=structure_px,
            structure_abs=structure_px * structure_err,
        )

    records = [
        CaseRecord(0, "N", {"pconv": sums(100, 4.0, 0, 0), "ns": sums(100, 2.0, 0, 0)}),
        CaseRecord(0, "B", {"pconv": sums(300, 1.0, 50, 9.0), "ns": sums(300, 2.0, 50, 3.0)}),
        CaseRecord(1, "N", {"pconv": sums(10, 9.0, 20, 1.0), "ns": sums(10, 1.0, 20, 2.0)}),  # 10 px: not counted
    ]
    summary = summarize(records, ["ns"])
    assert summary["pconv"]["smooth_mae"] == pytest.approx((400 + 300 + 90) / 410)
    assert summary["pconv"]["bias_rgb"] == pytest.approx([790 / 410] * 3)
    assert summary["ns"]["structure_mae"] == pytest.approx((150 + 40) / 70)
    assert summary["ns"]["pconv_worse_smooth"] == (1, 2) and summary["ns"]["pconv_worse_structure"] == (1, 2)
    assert np.isnan(summarize(records[:1], ["ns"])["pconv"]["structure_mae"])
    rows = table(summary).splitlines()
    assert rows[2].startswith("| pconv | 137 | 1.93 | +1.93 |") and "| 1 of 2 |" in rows[3]


def test_bins_parse_to_sorted_distinct_indices() -> None:
    assert parse_bins("all") == [0, 1, 2, 3, 4, 5] and parse_bins("3,1") == [1, 3]
    for bad in ("6", "1,1", "x", ""):
        with pytest.raises(ValueError, match="--bins"):
            parse_bins(bad)


def test_bad_input_gets_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], make_weights) -> None:
    base = ["--photos", str(tmp_path), "--masks", str(tmp_path / "no_masks"), "--weights", str(make_weights(0))]
    existing = tmp_path / "old.json"
    existing.write_text("keep me")
    cases = {
        "mask folder not found": [],
        "--bins": ["--bins", "7"],
        "--every": ["--every", "0"],
        "--limit": ["--limit", "0", "--masks", str(tmp_path)],
        "weights file not found": ["--weights", str(tmp_path / "x.safetensors")],
        "exists; pass --overwrite": ["--json", str(existing)],
        "is a folder": ["--json", str(tmp_path), "--overwrite"],
        "does not exist": ["--json", str(tmp_path / "no" / "out.json")],
    }
    for message, extra in cases.items():
        assert main([*base, *extra]) == 2, message
        err = capsys.readouterr().err
        assert err.startswith("faults: ") and message in err and err.count("\n") == 1, err
    assert existing.read_text() == "keep me"


def test_on_one_validation_photo(shared_data: Path, capsys: pytest.CaptureFixture[str], tmp_path, make_weights) -> None:
    out = tmp_path / "faults.json"
    argv = [
        "--photos",
        str(shared_data / "val_photos"),
        "--masks",
        str(shared_data / "masks" / "nvidia_irregular_test"),
    ]
    argv += ["--limit", "1", "--bins", "0,1", "--weights", str(make_weights(0)), "--method", "ns", "telea"]
    assert main([*argv, "--per-bin", "--no-shift-average", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    first = text.splitlines()[0]
    assert first.startswith("4 cases; pconv ") and first.endswith("flip average, smooth blend")
    assert "## all (4 cases)" in text and "## (0.01,0.1] (2 cases)" in text and "## (0.1,0.2] (2 cases)" in text
    report = json.loads(out.read_text())
    assert report["cases"] == 4 and report["pconv"]["flip_average"] and not report["pconv"]["shift_average"]
    every = report["groups"]["all"]
    assert list(every) == ["pconv", "ns", "telea"]
    for name in ("ns", "telea"):  # every fill is scored on the same pixels
        for key in ("smooth_pixels", "edge_pairs", "structure_pixels"):
            assert every[name][key] == every["pconv"][key]
        worse, counted = every[name]["pconv_worse_smooth"]
        assert 0 <= worse <= counted <= 4
    assert every["pconv"]["smooth_pixels"] > 0 and every["pconv"]["smooth_mae"] > 0
    halves = [report["groups"][b]["pconv"]["smooth_pixels"] for b in ("(0.01,0.1]", "(0.1,0.2]")]
    assert sum(halves) == every["pconv"]["smooth_pixels"]
    one_pass = ["--no-flip-average", "--no-shift-average"]
    assert (
        main([*argv[:4], "--limit", "1", "--bins", "0", "--weights", str(make_weights(1)), *one_pass, "--method"]) == 0
    )
    alone = capsys.readouterr().out  # pconv alone, no classical fill
    assert alone.startswith("2 cases; pconv ") and alone.splitlines()[0].endswith("one pass, smooth blend")
    assert "| pconv |" in alone and "| ns |" not in alone
