"""``pconv.adapters``: the filled image goes back as the caller's kind with every known pixel bit-identical, and
only the boxes around the holes are converted from float."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pconv.adapters import _to_uint8, hole_boxes, paste_fill, to_item


def _holes(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    hole = np.zeros((h, w), np.uint8)
    if kind == "corners":
        hole[0, 0] = hole[-1, -1] = hole[0, -1] = hole[-1, 0] = 1
    elif kind == "blobs":  # separate runs of rows, one of them with two blobs side by side
        hole[2:6, 3:9] = hole[3:5, w - 6 : w - 2] = hole[h // 2 : h // 2 + 3, w // 3 : w // 2] = 1
    elif kind == "every_other_row":
        hole[::2, w // 4 :] = 1
    elif kind == "random":
        hole = (rng.random((h, w)) < 0.3).astype(np.uint8)
    elif kind == "all":
        hole[:] = 1
    return hole


@pytest.mark.parametrize("kind", ["none", "corners", "blobs", "every_other_row", "random", "all"])
@pytest.mark.parametrize("size", [(1, 1), (17, 23), (40, 31)])
def test_paste_fill_is_where_hole_the_rounded_fill_else_the_known_pixels(kind: str, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(size) + len(kind))
    h, w = size
    known = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    filled = rng.uniform(-0.2, 1.2, (3, h, w)).astype(np.float32)
    filled[:, ::3] = np.round(filled[:, ::3] * 255 * 2) / (2 * 255)  # values on the rounding boundaries too
    hole = _holes(kind, h, w, rng)[None].astype(np.float32)
    expected = np.where(hole[0, :, :, None] > 0, _to_uint8(filled), known)
    out = known.copy()
    paste_fill(out, filled, hole)
    np.testing.assert_array_equal(out, expected)
    boxes = hole_boxes(hole[0] > 0)
    cover = np.zeros((h, w), int)
    for rows, cols in boxes:
        cover[rows, cols] += 1
    assert cover.max(initial=0) <= 1 and (cover[hole[0] > 0] == 1).all()  # each hole pixel in one box


def test_paste_fill_writes_through_a_view_of_an_rgba_array() -> None:
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    filled = rng.random((3, 9, 11), dtype=np.float32)
    hole = np.zeros((1, 9, 11), np.float32)
    hole[0, 4:7, 2:5] = 1
    out = rgba.copy()
    paste_fill(out[:, :, :3], filled, hole)
    np.testing.assert_array_equal(out[:, :, 3], rgba[:, :, 3])
    np.testing.assert_array_equal(out[:, :, :3], np.where(hole[0, :, :, None] > 0, _to_uint8(filled), rgba[:, :, :3]))


@pytest.mark.parametrize("kind", ["pil_rgba", "numpy_rgb", "numpy_rgba"])
def test_finish_keeps_known_pixels_and_alpha_and_rounds_the_hole(kind: str) -> None:
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (12, 14, 4), dtype=np.uint8)
    image = {
        "pil_rgba": Image.fromarray(pixels, "RGBA"),
        "numpy_rgb": pixels[:, :, :3].copy(),
        "numpy_rgba": pixels,
    }[kind]
    hole = np.zeros((12, 14), np.uint8)
    hole[3:8, 5:9] = 1
    item = to_item(image, hole)
    filled = rng.random((3, 12, 14), dtype=np.float32)
    out = np.asarray(item.finish(filled))
    in_hole = hole > 0
    np.testing.assert_array_equal(out[~in_hole][:, :3], pixels[:, :, :3][~in_hole])
    np.testing.assert_array_equal(out[in_hole][:, :3], _to_uint8(filled)[in_hole])
    if out.shape[2] == 4:
        np.testing.assert_array_equal(out[:, :, 3], pixels[:, :, 3])
