"""``tools/edge_error.py``: fill error by distance into the hole (where the shipped model trails Navier-Stokes)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pconv import scores

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from edge_error import FAR, EdgeTally, edge_fills, hole_distance, main  # noqa: E402


def test_hole_distance_counts_pixels_to_the_nearest_known_one() -> None:
    hole = np.zeros((20, 20), np.uint8)
    hole[5:15, 2:9] = 1  # 7 columns wide: distances 1, 2, 3, 4, 3, 2, 1 across
    dist = hole_distance(hole)
    assert dist[10, 2:9].tolist() == [1, 2, 3, 4, 3, 2, 1]
    assert (dist[hole == 0] == 0).all() and (dist[hole == 1] >= 1).all()
    assert dist[5, 5] == 1 and dist[6, 5] == 2  # top row of the hole touches known pixels


def test_tally_averages_the_error_per_distance_and_the_ssim_per_case() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    hole = np.zeros((32, 32), np.uint8)
    hole[4:28, 4:28] = 1  # 24x24: every distance 1..12 occurs
    dist = hole_distance(hole)
    brighter = np.clip(truth.astype(int) + 10, 0, 255)
    off_by_10 = np.where(hole[..., None] > 0, brighter, truth).astype(np.uint8)
    edge_only = np.where((dist == 1)[..., None], brighter, truth).astype(np.uint8)
    tally = EdgeTally()
    tally.add(truth, hole, {"off": off_by_10, "edge": edge_only, "exact": truth.copy()})
    tally.add(truth, hole, {"off": off_by_10, "edge": edge_only, "exact": truth.copy()})
    assert tally.cases == 2
    assert tally.pixels.sum() == 2 * hole.sum()
    assert tally.pixels[0] == 2 * (24 * 4 - 4)  # the hole's outer ring
    per_px = {n: tally.error[n] / tally.pixels for n in tally.error}
    expected = np.abs(brighter - truth).mean(2)
    assert per_px["off"][FAR - 1] == pytest.approx(expected[dist >= FAR].mean())
    assert per_px["edge"][0] == pytest.approx(expected[dist == 1].mean()) and (per_px["edge"][1:] == 0).all()
    assert (per_px["exact"] == 0).all()
    assert tally.ssim["exact"] == pytest.approx(2.0)
    assert tally.ssim["off"] == pytest.approx(2 * scores.ssim(off_by_10, truth))
    report = tally.report()
    assert "| 1 | 92 |" in report and f"| {FAR}+ |" in report and "exact 1.00000" in report


def test_edge_fills_take_the_first_pixels_from_the_classical_fill() -> None:
    hole = np.zeros((16, 16), np.uint8)
    hole[3:13, 3:13] = 1
    ours, theirs = np.full((16, 16, 3), 10, np.uint8), np.full((16, 16, 3), 200, np.uint8)
    fills = edge_fills(ours, theirs, hole, "ns")
    dist = hole_distance(hole)
    one, two = fills["pconv, edge 1 px from ns"], fills["pconv, edge 2 px from ns"]
    assert (one[dist == 1] == 200).all() and (one[dist != 1] == 10).all()
    assert (two[(dist == 1) | (dist == 2)] == 200).all() and (two[(dist == 0) | (dist > 2)] == 10).all()


def test_bad_input_gets_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    masks = tmp_path / "no_masks"
    assert main(["--photos", str(tmp_path), "--masks", str(masks)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["--photos", str(tmp_path), "--masks", str(masks), "--bins", "7"]) == 2
    assert "--bins" in capsys.readouterr().err
    assert main(["--photos", str(tmp_path), "--masks", str(masks), "--weights", str(tmp_path / "x.st")]) == 2
    assert "weights file not found" in capsys.readouterr().err


def test_on_one_evaluation_photo(shared_data: Path, capsys: pytest.CaptureFixture[str], make_weights) -> None:
    photos = shared_data / "eval_photos"
    argv = ["--photos", str(photos), "--masks", str(shared_data / "masks" / "nvidia_irregular_test")]
    assert main([*argv, "--every", "1000", "--bins", "1", "--weights", str(make_weights(0))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 cases, bins (0.1, 0.2)")
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert len(rows) == 2
    for row in rows:  # pconv, ns, edge-1, edge-2 errors; the edge fills take ns's values on their rows
        errors = [float(v.strip(" |")) for v in row[2:]]
        assert all(e > 0 for e in errors)
    assert float(rows[0][3]) == float(rows[0][4].strip(" |")) == float(rows[0][5].strip(" |"))
    assert float(rows[1][3]) == float(rows[1][5].strip(" |"))
