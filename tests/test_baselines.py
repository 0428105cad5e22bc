"""Classical baselines: one interface, known pixels kept, sensible fills, bad inputs refused."""

from __future__ import annotations

import numpy as np
import pytest

from pconv.baselines import BASELINES, check_fill_inputs, fill_mean, get_baseline


def _patchmatch_works() -> bool:
    try:
        get_baseline("patchmatch")
    except RuntimeError:
        return False
    return True


def _names() -> list:
    marks = pytest.mark.skipif(not _patchmatch_works(), reason="pypatchmatch not usable here")
    return [pytest.param(n, marks=marks) if n == "patchmatch" else n for n in sorted(BASELINES)]


def _gradient(h: int = 64, w: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 3, y * 3, (x + y) * 2], axis=2).clip(0, 255).astype(np.uint8)


def _hole(h: int = 64, w: int = 80) -> np.ndarray:
    hole_mask = np.zeros((h, w), np.uint8)
    hole_mask[20:30, 30:45] = 1
    return hole_mask


@pytest.mark.parametrize("name", _names())
def test_fill_returns_uint8_image_with_known_pixels_kept(name: str) -> None:
    image, hole_mask = _gradient(), _hole()
    filled = get_baseline(name)(image, hole_mask)
    assert filled.shape == image.shape and filled.dtype == np.uint8
    known = hole_mask == 0
    np.testing.assert_array_equal(filled[known], image[known])
    assert not np.array_equal(filled[~known], np.zeros_like(filled[~known]))


@pytest.mark.parametrize("name", ["telea", "ns"])
def test_diffusion_fills_a_smooth_gradient_closely_and_beats_mean(name: str) -> None:
    image, hole_mask = _gradient(), _hole()
    hole = hole_mask.astype(bool)
    err = np.abs(get_baseline(name)(image, hole_mask).astype(int) - image)[hole].mean()
    err_mean = np.abs(fill_mean(image, hole_mask).astype(int) - image)[hole].mean()
    assert err < 6 and err < err_mean / 4


@pytest.mark.skipif(not _patchmatch_works(), reason="pypatchmatch not usable here")
def test_patchmatch_is_deterministic_and_continues_a_periodic_texture() -> None:
    x = np.arange(96)
    stripes = np.where((x // 4) % 2 == 0, 220, 30).astype(np.uint8)  # vertical stripes, period 8 px
    image = np.repeat(np.repeat(stripes[None, :, None], 96, axis=0), 3, axis=2)
    hole_mask = np.zeros((96, 96), np.uint8)
    hole_mask[40:56, 40:56] = 1
    fill = get_baseline("patchmatch")
    first, second = fill(image, hole_mask), fill(image, hole_mask)
    np.testing.assert_array_equal(first, second)
    hole = hole_mask.astype(bool)
    err = np.abs(first.astype(int) - image)[hole].mean()
    err_telea = np.abs(get_baseline("telea")(image, hole_mask).astype(int) - image)[hole].mean()
    assert err < 0.6 * err_telea  # copying patches beats diffusion on texture (about 49 vs 105 here)


def test_mean_fill_uses_the_rounded_mean_of_known_pixels() -> None:
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0] = (10, 20, 31)
    image[0, 1] = (20, 40, 32)
    image[1, 0] = (30, 60, 30)
    hole_mask = np.array([[0, 0], [0, 1]], np.uint8)
    filled = fill_mean(image, hole_mask)
    assert tuple(filled[1, 1]) == (20, 40, 31)  # (10+20+30)/3, (20+40+60)/3, round(93/3 = 31)
    np.testing.assert_array_equal(filled[hole_mask == 0], image[hole_mask == 0])


def test_mean_fill_of_an_all_hole_image_is_mid_grey() -> None:
    filled = fill_mean(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.uint8))
    assert (filled == 128).all()


@pytest.mark.parametrize(
    "image, hole_mask, match",
    [
        (np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 255, np.uint8), "only 0 and 1"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9), np.uint8), "matching the image"),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), r"\(H, W, 3\) uint8"),
        (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), r"\(H, W, 3\) uint8"),
    ],
)
def test_bad_inputs_are_refused(image: np.ndarray, hole_mask: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_fill_inputs(image, hole_mask)
    with pytest.raises(ValueError, match=match):
        get_baseline("telea")(image, hole_mask)


def test_unknown_baseline_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="mean, ns, patchmatch, telea"):
        get_baseline("photoshop")


def test_patchmatch_without_its_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "patchmatch", None)  # makes `import patchmatch` fail as if not installed
    with pytest.raises(RuntimeError, match="pip install pypatchmatch"):
        get_baseline("patchmatch")
