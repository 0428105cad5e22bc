"""Random hole masks by ratio bin, the NVIDIA mask set, and the `pconv masks` command."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pconv.cli import main
from pconv.mask_generation import PRESETS, GeneratedMasks, augment_hole_mask, generate_hole_mask
from pconv.masks import (
    RATIO_BINS,
    MaskSource,
    hole_ratio,
    hole_to_valid_array,
    load_hole_mask,
    ratio_bin_index,
    resize_hole_nearest,
)
from pconv.nvidia_masks import NvidiaMasks

SIZE = 256  # generator tests run at 256 x 256 to stay fast; shapes scale with the size


@pytest.mark.parametrize("ratio_bin", RATIO_BINS)
def test_1000_generated_masks_fall_inside_their_bin(ratio_bin: tuple[float, float]) -> None:
    rng = np.random.default_rng(1234)
    ratios = np.array([hole_ratio(generate_hole_mask(SIZE, SIZE, rng=rng, ratio_bin=ratio_bin)) for _ in range(1000)])
    lo, hi = ratio_bin
    assert ((ratios > lo) & (ratios <= hi)).all(), (ratios.min(), ratios.max())
    # The target is drawn across the bin, so the ratios spread over it instead of piling up at its low end.
    assert ratios.max() - ratios.min() > 0.7 * (hi - lo)


@pytest.mark.parametrize("preset", sorted(set(PRESETS) - {"medium"}))
def test_every_preset_reaches_every_bin(preset: str) -> None:
    rng = np.random.default_rng(7)
    for k, ratio_bin in enumerate(RATIO_BINS):
        for _ in range(50):
            mask = generate_hole_mask(SIZE, SIZE, rng=rng, ratio_bin=ratio_bin, preset=preset)
            assert ratio_bin_index(hole_ratio(mask)) == k


def test_border_rule_holds_in_every_bin() -> None:
    rng = np.random.default_rng(3)
    border = 25  # the paper's 50 px at 512, scaled to 256
    for ratio_bin in RATIO_BINS:
        for _ in range(100):
            mask = generate_hole_mask(SIZE, SIZE, rng=rng, ratio_bin=ratio_bin, border=border)
            assert ratio_bin[0] < hole_ratio(mask) <= ratio_bin[1]
            inner = mask[border:-border, border:-border]
            assert mask.sum() == inner.sum(), "hole pixel within the border"
            assert inner.any()


def test_paper_border_at_512_and_non_square_sizes() -> None:
    rng = np.random.default_rng(4)
    mask = generate_hole_mask(512, 512, rng=rng, ratio_bin=(0.5, 0.6), border=50)
    assert 0.5 < hole_ratio(mask) <= 0.6 and mask[:50].sum() == mask[-50:].sum() == 0
    assert mask[:, :50].sum() == mask[:, -50:].sum() == 0
    wide = generate_hole_mask(100, 300, rng=rng, ratio_bin=(0.2, 0.3), preset="thick")
    assert wide.shape == (100, 300) and 0.2 < hole_ratio(wide) <= 0.3


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("ratio_bin", [None, (0.1, 0.2)])
def test_masks_are_binary_uint8(preset: str, ratio_bin: tuple[float, float] | None) -> None:
    rng = np.random.default_rng(5)
    for _ in range(10):
        mask = generate_hole_mask(64, 96, rng=rng, ratio_bin=ratio_bin, preset=preset)
        assert mask.shape == (64, 96) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1}


def test_generator_is_deterministic_per_seed() -> None:
    def masks(seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [generate_hole_mask(SIZE, SIZE, rng=rng, ratio_bin=b, preset="thin") for b in RATIO_BINS]

    first, again, other = masks(11), masks(11), masks(12)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))


def test_unreachable_bin_and_bad_arguments_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="out of reach"):
        generate_hole_mask(256, 256, rng=rng, ratio_bin=(0.5, 0.6), border=50)  # 156^2 / 256^2 = 0.37
    with pytest.raises(ValueError, match="unknown mask preset"):
        generate_hole_mask(64, 64, rng=rng, preset="huge")
    with pytest.raises(ValueError, match="lo < hi"):
        generate_hole_mask(64, 64, rng=rng, ratio_bin=(0.4, 0.3))
    with pytest.raises(ValueError, match="border"):
        generate_hole_mask(64, 64, rng=rng, border=32)


def test_generated_masks_source_picks_bins_and_is_deterministic() -> None:
    source = GeneratedMasks(preset="medium")
    assert isinstance(source, MaskSource)
    rng = np.random.default_rng(9)
    bins = {ratio_bin_index(hole_ratio(source.sample(rng, 128))) for _ in range(60)}
    assert bins == set(range(len(RATIO_BINS)))
    a = source.sample(np.random.default_rng(1), 128)
    b = source.sample(np.random.default_rng(1), 128)
    assert a.shape == (128, 128) and np.array_equal(a, b)
    only = GeneratedMasks(bins=((0.4, 0.5),), border=10).sample(rng, 128)
    assert 0.4 < hole_ratio(only) <= 0.5 and only[:10].sum() == 0


def test_hole_to_valid_array_flips_and_checks() -> None:
    hole = np.array([[0, 1], [1, 0]], np.uint8)
    valid = hole_to_valid_array(hole)
    assert valid.dtype == np.float32 and valid.tolist() == [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match="only 0 and 1"):
        hole_to_valid_array(np.array([[0, 255]], np.uint8))


def test_resize_nearest_stays_binary() -> None:
    mask = (np.random.default_rng(0).random((512, 512)) > 0.7).astype(np.uint8)
    small = resize_hole_nearest(mask, 200)
    assert small.shape == (200, 200) and set(np.unique(small)) <= {0, 1}
    assert abs(hole_ratio(small) - hole_ratio(mask)) < 0.02
    assert resize_hole_nearest(mask, (100, 50)).shape == (100, 50)


# ---- NVIDIA irregular mask test set -------------------------------------------------------------------------


def _nvidia_root(shared_data: Path) -> Path:
    return shared_data / "masks" / "nvidia_irregular_test"


def test_nvidia_bins_by_index_match_the_manifest(shared_data: Path) -> None:
    with open(shared_data / "masks" / "nvidia_irregular_test_manifest.csv", newline="") as f:
        manifest = {row["file"]: row for row in csv.DictReader(f)}
    masks = NvidiaMasks(_nvidia_root(shared_data))
    assert len(masks) == 12000
    for i in range(0, 12000, 250):  # 48 files, both halves of every bin
        path = masks.files[i]
        row = manifest[path.name]
        hole = masks[i]
        assert hole.shape == (512, 512) and set(np.unique(hole)) <= {0, 1}
        assert hole_ratio(hole) == pytest.approx(float(row["hole_ratio_white"]), abs=1e-5)
        assert ratio_bin_index(hole_ratio(hole)) == i // 2000
        assert NvidiaMasks.bin_of(path) == RATIO_BINS[i // 2000]
        assert NvidiaMasks.is_border_constrained(path) == (row["border_constrained"] == "1")
        if NvidiaMasks.is_border_constrained(path):
            assert hole.sum() == hole[50:-50, 50:-50].sum()


def test_nvidia_filters_by_bin_and_border(shared_data: Path) -> None:
    n_masks = NvidiaMasks(_nvidia_root(shared_data), bins=[(0.3, 0.4)], border_constrained=True)
    assert len(n_masks) == 1000
    assert {int(p.stem) for p in n_masks.files} == set(range(6000, 7000))
    b_masks = NvidiaMasks(_nvidia_root(shared_data), bins=[0, 5], border_constrained=False)
    assert {int(p.stem) for p in b_masks.files} == set(range(1000, 2000)) | set(range(11000, 12000))
    with pytest.raises(ValueError, match="unknown ratio bin"):
        NvidiaMasks(_nvidia_root(shared_data), bins=[(0.3, 0.5)])


def test_nvidia_sample_is_augmented_resized_binary_and_seeded(shared_data: Path) -> None:
    augmented = NvidiaMasks(_nvidia_root(shared_data), bins=[2])
    plain = NvidiaMasks(_nvidia_root(shared_data), bins=[2], augment=False)
    differ = 0
    for seed in range(8):
        a = augmented.sample(np.random.default_rng(seed), 256)
        assert a.shape == (256, 256) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 1}
        assert np.array_equal(a, augmented.sample(np.random.default_rng(seed), 256))
        p = plain.sample(np.random.default_rng(seed), 256)  # same file (the index is drawn first), no augmentation
        assert 0.2 < hole_ratio(p) <= 0.3 + 0.02  # nearest-neighbour resize keeps the ratio close
        differ += not np.array_equal(a, p)
    assert differ == 8


def test_augmentation_rotates_flips_and_crops() -> None:
    hole = np.zeros((512, 512), np.uint8)
    hole[100:140, 50:450] = 1  # a horizontal bar
    shapes, angles = set(), set()
    for seed in range(20):
        out = augment_hole_mask(hole, np.random.default_rng(seed))
        assert out.shape[0] == out.shape[1] and 0.6 * 512 - 1 <= out.shape[0] <= 512
        assert set(np.unique(out)) <= {0, 1}
        shapes.add(out.shape[0])
        ys, xs = np.nonzero(out)
        if len(xs) > 100:  # the bar's orientation from its second moments, to 10 degrees
            cov = np.cov(np.stack([xs, ys]))
            angles.add(round(float(np.degrees(0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1]))), -1))
    assert len(shapes) > 10 and len(angles) > 3


def test_nvidia_masks_refuse_a_folder_without_masks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=str(tmp_path)):
        NvidiaMasks(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "holiday.png")
    with pytest.raises(ValueError, match="no NVIDIA masks"):
        NvidiaMasks(tmp_path)
    with pytest.raises(ValueError, match="no NVIDIA masks"):
        NvidiaMasks(tmp_path / "missing")


# ---- the `pconv masks` command ------------------------------------------------------------------------------


def test_cli_writes_masks_of_the_bin_and_a_sheet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "masks"
    assert main(["masks", "--bin", "0.3-0.4", "-n", "16", "--out", str(out), "--size", "128"]) == 0
    files = sorted(out.glob("mask_*.png"))
    assert len(files) == 16
    for path in files:
        with Image.open(path) as img:
            assert img.size == (128, 128) and img.mode == "L"
            assert set(np.unique(np.asarray(img))) <= {0, 255}
        assert 0.3 < hole_ratio(load_hole_mask(path)) <= 0.4
    with Image.open(out / "sheet.png") as sheet:
        assert sheet.width > 128 * 4
    assert "wrote 16 masks" in capsys.readouterr().out


def test_cli_border_and_preset(tmp_path: Path) -> None:
    out = tmp_path / "m"
    assert main(["masks", "-n", "3", "--out", str(out), "--size", "128", "--border", "12", "--preset", "thin"]) == 0
    for path in sorted(out.glob("mask_*.png")):
        hole = load_hole_mask(path)
        assert hole.any() and hole[:12].sum() == hole[-12:].sum() == hole[:, :12].sum() == 0


def test_cli_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "mask_0001.png").write_bytes(b"precious")
    result = subprocess.run(
        [sys.executable, "-m", "pconv", "masks", "-n", "4", "--out", str(out), "--size", "64"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--overwrite" in result.stderr and "Traceback" not in result.stderr
    assert (out / "mask_0001.png").read_bytes() == b"precious"
    assert not (out / "mask_0000.png").exists()  # nothing written at all
    assert main(["masks", "-n", "4", "--out", str(out), "--size", "64", "--overwrite"]) == 0
    assert load_hole_mask(out / "mask_0001.png").shape == (64, 64)


@pytest.mark.parametrize("bad", ["0.4-0.3", "abc", "0.1-0.2-0.3", "0.2-0.2", "0.5-1.5"])
def test_cli_bad_bin_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture, bad: str) -> None:
    assert main(["masks", "--bin", bad, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pconv masks: error: --bin") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_mixed_preset_and_fixed_scale_make_wider_strokes_on_small_crops() -> None:
    """scale=1.0 on a 128 crop draws shapes at their 512-pixel size: fewer, wider pieces for the same bin."""
    import cv2

    from pconv.mask_generation import GeneratedMasks

    def pieces(source: GeneratedMasks) -> float:
        counts = [cv2.connectedComponents(source.sample(np.random.default_rng(s), 128))[0] - 1 for s in range(40)]
        return float(np.mean(counts))

    scaled = GeneratedMasks(preset="medium", bins=((0.2, 0.3),), scale=1.0)
    default = GeneratedMasks(preset="medium", bins=((0.2, 0.3),))
    assert pieces(scaled) < pieces(default)
    mixed = GeneratedMasks(preset="mixed", bins=((0.3, 0.4),))
    for seed in range(20):
        ratio = mixed.sample(np.random.default_rng(seed), 96).mean()
        assert 0.3 < ratio <= 0.4
    with pytest.raises(ValueError, match="scale"):
        GeneratedMasks(scale=-1.0).sample(np.random.default_rng(0), 64)


def test_narrow_bin_with_oversized_shapes_still_lands_in_bin() -> None:
    """Regression: thick 512-scale shapes on a small crop overshot every try and the generator raised mid-epoch."""
    for seed in range(10):
        hole = generate_hole_mask(
            96, 96, rng=np.random.default_rng(seed), ratio_bin=(0.1, 0.102), preset="thick", scale=3.0
        )
        assert 0.1 < hole.mean() <= 0.102


def _outline_per_hole_pixel(hole: np.ndarray) -> float:
    """Hole pixels with a known 4-neighbour, per hole pixel: high for ragged, broken outlines."""
    import cv2

    inner = cv2.erode(hole, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return float((hole > inner).sum()) / max(int(hole.sum()), 1)


def test_fragments_preset_breaks_strokes_into_ragged_pieces() -> None:
    """Like the NVIDIA test masks: more separate pieces and more outline per hole pixel than smooth strokes."""
    import cv2

    def stats(preset: str) -> tuple[float, float]:
        masks = [
            generate_hole_mask(SIZE, SIZE, rng=np.random.default_rng(s), ratio_bin=(0.1, 0.2), preset=preset)
            for s in range(12)
        ]
        assert all(0.1 < m.mean() <= 0.2 for m in masks)
        pieces = np.mean([cv2.connectedComponents(m)[0] - 1 for m in masks])
        return float(pieces), float(np.mean([_outline_per_hole_pixel(m) for m in masks]))

    smooth_pieces, smooth_outline = stats("medium")
    ragged_pieces, ragged_outline = stats("fragments")
    assert ragged_pieces > 2 * smooth_pieces
    assert ragged_outline > smooth_outline


def test_preset_lists_pick_each_listed_preset_and_mixed_keeps_its_four() -> None:
    from pconv.mask_generation import MIXED_PRESETS, preset_names

    assert preset_names("mixed") == MIXED_PRESETS == ("blobs", "medium", "thick", "thin")
    assert preset_names("fragments, mixed") == ("fragments", *MIXED_PRESETS)
    with pytest.raises(ValueError, match="unknown mask preset 'huge'"):
        preset_names("thin,huge")
    # "mixed" draws exactly what it drew before "fragments" existed: the same rng calls, the same masks.
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(6):
        mixed = GeneratedMasks(preset="mixed", bins=((0.01, 0.1),)).sample(rng_a, 96)
        rng_b.integers(1)  # the bin pick
        name = MIXED_PRESETS[int(rng_b.integers(4))]
        assert np.array_equal(mixed, generate_hole_mask(96, 96, rng=rng_b, ratio_bin=(0.01, 0.1), preset=name))
    listed = GeneratedMasks(preset="fragments,thin", bins=((0.1, 0.2),))
    masks = [listed.sample(np.random.default_rng(s), 128) for s in range(16)]
    assert all(0.1 < m.mean() <= 0.2 for m in masks)
