"""Mask polarity: white = hole in files, 1 = valid in the network, converted in pconv.masks only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pconv.masks import binarize_hole, hole_to_valid, load_hole_mask, valid_to_hole


def test_polarity_round_trip() -> None:
    hole = (torch.rand(2, 1, 8, 8) > 0.5).float()
    valid = hole_to_valid(hole)
    assert torch.equal(valid + hole, torch.ones_like(hole))
    assert torch.equal(valid_to_hole(valid), hole)


def test_non_binary_masks_are_rejected() -> None:
    with pytest.raises(ValueError, match="only 0 and 1"):
        hole_to_valid(torch.full((1, 1, 2, 2), 0.5))


def test_white_painted_png_becomes_hole_of_right_area(tmp_path: Path) -> None:
    grey = np.zeros((40, 50), np.uint8)
    grey[10:20, 5:25] = 255  # 200 hole pixels
    grey[30, 30] = 100  # faint anti-aliasing below the threshold: known
    Image.fromarray(grey).save(tmp_path / "m.png")
    hole = load_hole_mask(tmp_path / "m.png")
    assert hole.shape == (40, 50) and hole.dtype == np.uint8
    assert int(hole.sum()) == 200


def test_alpha_only_mask_uses_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[2:5, 2:5, 3] = 255  # painted (opaque) = hole, black paint
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert int(load_hole_mask(tmp_path / "a.png").sum()) == 9


def test_unreadable_mask_gives_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a readable image"):
        load_hole_mask(bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_hole_mask(tmp_path / "none.png")


def test_binarize_threshold() -> None:
    grey = np.array([[0, 127, 128, 255]], np.uint8)
    assert binarize_hole(grey).tolist() == [[0, 0, 1, 1]]
