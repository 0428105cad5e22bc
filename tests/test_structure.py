"""Straight structures come through the hole: ``pconv.structure`` alone, and the shipped model through the public API.

The property test is the one of issue #36: synthetic images of our own (``benchmarks/bench_structure.py``: step
edges, stripes of two periods and duty cycles, thin lines of 3 and 6 px, five angles, without and with grain) with
holes that cross them (a brush stroke across, a disk on, NVIDIA test masks): the contrast the fill keeps is at least
0.6 on average and no worse than OpenCV's Navier-Stokes for any kind of structure, and the mean error no worse
than Navier-Stokes'.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pconv import Inpainter
from pconv.smooth import blend, blend_spreading, hole_box, pull_push
from pconv.structure import continue_structure, finish_fill, orientation, structure_tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_structure as bench  # noqa: E402


def _tensors(image: np.ndarray, hole: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (H, W, 3) and (H, W) 1 = hole -> image (1, 3, H, W) in [0, 1], valid_mask (1, 1, H, W), 1 = known."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    return x, torch.from_numpy((hole == 0).astype(np.float32))[None, None]


# ---------- pconv.structure on its own ----------


@pytest.mark.parametrize("angle", [0, 30, 60, 100, 135])
def test_orientation_runs_along_an_edge_and_is_coherent(angle: int) -> None:
    t = bench.structure("edge", angle)
    image, valid = _tensors(bench.render(t, 0.0, seed=0), bench.disk_hole())
    tensor, seen = structure_tensor(image, valid)
    direction, coherence, energy = orientation(pull_push(tensor, seen))
    centre = direction[0, :, bench.SIZE // 2, bench.SIZE // 2]  # in the middle of the hole
    along = torch.tensor([-math.sin(math.radians(angle)), math.cos(math.radians(angle))])  # the edge's direction
    assert abs(float(centre @ along)) > 0.99  # parallel (either sign)
    assert float(coherence[0, 0, bench.SIZE // 2, bench.SIZE // 2]) > 0.9
    assert float(energy[0, 0, bench.SIZE // 2, bench.SIZE // 2]) > 3


@pytest.mark.parametrize("kind", ["stripes 12 px, duty 0.5", "line 6 px", "line 3 px"])
def test_stripes_and_lines_continue_through_a_stroke(kind: str) -> None:
    shape, params = bench.KINDS[kind]
    t = bench.structure(shape, 30, **params)
    truth = bench.render(t, 0.0, seed=0)
    hole = bench.stroke_hole(45)
    image, valid = _tensors(truth, hole)
    # a fill that carries the background colour through the hole but not the structure: the rays must bring it
    background = torch.tensor(bench.C0 / 255, dtype=torch.float32).view(1, 3, 1, 1).expand_as(image).clone()
    out = continue_structure(background, image, valid)
    error = ((out - image).abs() * 255)[0].permute(1, 2, 0).numpy()
    before = ((background - image).abs() * 255)[0].permute(1, 2, 0).numpy()
    on_structure = (t > 0.5) & (hole > 0)
    assert error[on_structure].mean() < 0.25 * before[on_structure].mean()  # about 100 levels before
    assert error[hole > 0].mean() < 10
    assert torch.equal(out * valid, background * valid)  # only hole pixels are touched


def test_strength_zero_and_structureless_surroundings_keep_the_prediction() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)  # no dominant direction
    hole = np.zeros((96, 128), np.uint8)
    hole[30:60, 40:90] = 1
    image, valid = _tensors(noise, hole)
    prediction = torch.rand(image.shape, generator=torch.Generator().manual_seed(1))
    change = (continue_structure(prediction, image, valid) - prediction).abs().amax(1)[0][torch.from_numpy(hole > 0)]
    assert float((change * 255 > 0.5).float().mean()) < 0.03 and float(change.mean() * 255) < 0.5
    edge, valid = _tensors(bench.render(bench.structure("edge", 30), 0.0, seed=0), bench.disk_hole())
    prediction = torch.full_like(edge, 0.5)
    assert torch.equal(continue_structure(prediction, edge, valid, strength=0.0), prediction)
    assert not torch.equal(continue_structure(prediction, edge, valid), prediction)


def test_flat_colour_and_ramp_stay_as_the_smooth_blend_leaves_them() -> None:
    y, x = np.mgrid[0:128, 0:160].astype(np.float64)
    ramp = np.rint(np.stack([x / 159 * 200 + 20, 0 * x + 90, y / 127 * 120 + 60], -1)).astype(np.uint8)
    hole = np.zeros((128, 160), np.uint8)
    hole[40:90, 30:120] = 1
    for picture in (np.full((128, 160, 3), (135, 206, 235), np.uint8), ramp):
        image, valid = _tensors(picture, hole)
        prediction = torch.rand(image.shape, generator=torch.Generator().manual_seed(2))
        error = (finish_fill(prediction, image, valid) - image).abs().amax() * 255
        assert float(error) <= 1.0


def test_finish_fill_is_the_blend_then_the_structure_with_one_pull_push() -> None:
    image, valid = _tensors(bench.render(bench.structure("stripes", 60, period=12), 4.0, seed=3), bench.disk_hole())
    prediction = torch.rand(image.shape, generator=torch.Generator().manual_seed(3))
    tensor, seen = structure_tensor(image, valid)
    blended, spread = blend_spreading(prediction, image, valid, tensor, seen.expand(-1, 3, -1, -1))
    assert torch.equal(blended, blend(prediction, image, valid))  # extra channels change nothing of the blend
    assert torch.equal(spread, pull_push(tensor, seen, box=hole_box(valid, 0)))  # spread for the hole's box
    expected = continue_structure(blend(prediction, image, valid), image, valid)
    assert torch.equal(finish_fill(prediction, image, valid), expected)
    assert torch.equal(finish_fill(prediction, image, valid, smooth=0.0), prediction)


# ---------- the shipped model, through the public API ----------


@pytest.fixture(scope="module")
def measured(shared_data: Path) -> dict[tuple[str, str], tuple[float, float]]:
    return bench.measure(["pconv", "ns"], shared_data / "masks" / "nvidia_irregular_test")


def test_shipped_model_keeps_straight_structures_through_the_hole(measured: dict) -> None:
    """Issue #36: contrast kept >= 0.6 on average and >= Navier-Stokes' per kind; error <= Navier-Stokes'."""
    contrast, error = measured["all", "pconv"]
    assert contrast >= 0.6, f"contrast kept {contrast:.2f} on average"
    assert error <= measured["all", "ns"][1], f"mean error {error:.1f} vs Navier-Stokes {measured['all', 'ns'][1]:.1f}"
    for kind in bench.KINDS:
        ours, ns = measured[kind, "pconv"][0], measured[kind, "ns"][0]
        assert ours >= ns, f"{kind}: contrast kept {ours:.2f}, Navier-Stokes {ns:.2f}"


def test_the_cases_cross_the_structure_and_include_nvidia_masks(shared_data: Path) -> None:
    cases = list(bench.cases(shared_data / "masks" / "nvidia_irregular_test"))
    assert {c.hole_name for c in cases} == {"stroke", "disk", "nvidia"}
    assert {c.kind for c in cases} == set(bench.KINDS) and len(cases) > 120
    for case in cases:
        assert case.truth_t[case.hole > 0].std() > 0.1


def test_known_pixels_come_back_as_they_were() -> None:
    case = next(bench.cases())
    out = Inpainter().inpaint(case.image, case.hole * 255)
    assert np.array_equal(out[case.hole == 0], case.image[case.hole == 0])
