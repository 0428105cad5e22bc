"""`pconv inpaint` on real files: single pairs, folders, bad inputs, masks as people make them, no lost files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from pconv.cli import main
from pconv.config import ModelConfig
from pconv.model import PConvUNet, save_weights

H, W = 48, 64


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(2)
    return save_weights(PConvUNet(ModelConfig(depth=4, width=0.125)).eval(), tmp_path / "tiny.safetensors")


def photo(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def hole(h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[10:25, 20:40] = 255
    return m


def save(arr: np.ndarray, path: Path, **kw) -> Path:
    Image.fromarray(arr).save(path, **kw)
    return path


def inpaint(*args: str | Path) -> int:
    return main(["inpaint", *map(str, args)])


def read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def test_single_pair_keeps_known_pixels_and_fills_hole(tmp_path: Path, weights: Path, capsys) -> None:
    img, m = save(photo(), tmp_path / "a.png"), save(hole(), tmp_path / "m.png")
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "out.png", "--weights", weights) == 0
    out, src, known = read(tmp_path / "out.png"), photo(), hole() == 0
    assert np.array_equal(out[known], src[known])
    assert (out[~known] != src[~known]).any(axis=-1).mean() > 0.9
    assert "wrote" in capsys.readouterr().out


def test_jpeg_with_exif_orientation_and_icc_to_png(tmp_path: Path, weights: Path) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "pconv-test", 6
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = save(photo(), tmp_path / "phone.jpg", exif=exif.tobytes(), icc_profile=icc)
    m = save(hole(W, H), tmp_path / "m.png")  # painted on the upright (rotated) picture: 64 x 48 -> 48 x 64
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "out.png", "--weights", weights) == 0
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (H, W)
        assert out.getexif()[0x010F] == "pconv-test" and out.getexif().get(0x0112, 1) == 1
        assert out.info["icc_profile"] == icc


def test_rgba_input_keeps_alpha(tmp_path: Path, weights: Path) -> None:
    alpha = photo(seed=4)[:, :, 0]
    img = save(np.dstack([photo(), alpha]), tmp_path / "a.png")
    m = save(hole(), tmp_path / "m.png")
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "out.png", "--weights", weights) == 0
    out = read(tmp_path / "out.png")
    assert out.shape == (H, W, 4) and np.array_equal(out[..., 3], alpha)


@pytest.mark.parametrize(("suffix", "fmt"), [(".jpg", "JPEG"), (".webp", "WEBP"), (".png", "PNG")])
def test_output_format_from_extension(tmp_path: Path, weights: Path, suffix: str, fmt: str) -> None:
    img, m = save(photo(), tmp_path / "a.png"), save(hole(), tmp_path / "m.png")
    out = tmp_path / f"out{suffix}"
    assert inpaint("--image", img, "--mask", m, "--output", out, "--weights", weights, "--quality", "80") == 0
    with Image.open(out) as o:
        assert o.format == fmt and o.size == (W, H)


def test_empty_mask_output_equals_input(tmp_path: Path, weights: Path) -> None:
    img, m = save(photo(), tmp_path / "a.png"), save(np.zeros((H, W), np.uint8), tmp_path / "m.png")
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "out.png", "--weights", weights) == 0
    assert np.array_equal(read(tmp_path / "out.png"), photo())


def test_all_hole_mask_is_refused_in_one_line_and_nothing_is_written(tmp_path: Path, weights: Path, capsys) -> None:
    img, m = save(photo(), tmp_path / "a.png"), save(np.full((H, W), 255, np.uint8), tmp_path / "m.png")
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "o.png", "--weights", weights) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "covers the whole image" in err[0] and "--mask-polarity black-hole" in err[0], err
    assert not (tmp_path / "o.png").exists()


def test_folder_reports_the_all_hole_pair_fills_the_others_and_exits_non_zero(
    tmp_path: Path, weights: Path, capsys
) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for name, mask in (("a", hole()), ("b", np.full((H, W), 255, np.uint8)), ("c", hole())):
        save(photo(ord(name)), images / f"{name}.png"), save(mask, masks / f"{name}.png")
    out = tmp_path / "out"
    assert inpaint("--image", images, "--mask", masks, "--output", out, "--weights", weights) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    captured = capsys.readouterr()
    assert "2 written" in captured.out and "1 failed" in captured.out
    failed = [line for line in captured.err.splitlines() if line.strip().startswith("failed")]
    assert len(failed) == 1 and "b.png" in failed[0] and "covers the whole image" in failed[0], failed


def test_grey_antialiased_mask_and_dilate(tmp_path: Path, weights: Path) -> None:
    grey = hole() // 255 * 200  # painted at grey 200: hole
    grey[10:25, 19] = 100  # anti-aliased edge under the threshold: known
    img, m = save(photo(), tmp_path / "a.png"), save(grey, tmp_path / "m.png")
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "o.png", "--weights", weights) == 0
    out = read(tmp_path / "o.png")
    assert np.array_equal(out[10:25, 19], photo()[10:25, 19]) and not np.array_equal(out[10:25, 20], photo()[10:25, 20])
    assert (
        inpaint("--image", img, "--mask", m, "--output", tmp_path / "d.png", "--weights", weights, "--dilate", "2") == 0
    )
    assert not np.array_equal(read(tmp_path / "d.png")[10:25, 18], photo()[10:25, 18])


def test_no_flip_average_and_no_shift_average_reach_the_inpainter(tmp_path: Path, weights: Path) -> None:
    from pconv.inference import Inpainter

    img, m = save(photo(), tmp_path / "a.png"), save(hole(), tmp_path / "m.png")
    cases = {"default": ([], True, True), "noflip": (["--no-flip-average"], False, True)}
    cases["none"] = (["--no-flip-average", "--no-shift-average"], False, False)
    for name, (flags, flip, shift) in cases.items():
        out = tmp_path / f"o_{name}.png"
        assert inpaint("--image", img, "--mask", m, "--output", out, "--weights", weights, *flags) == 0
        expected = Inpainter(weights, device="cpu", flip_average=flip, shift_average=shift).inpaint(photo(), hole())
        assert np.array_equal(read(out), expected), name
    outputs = {read(tmp_path / f"o_{name}.png").tobytes() for name in cases}
    assert len(outputs) == 3


def test_alpha_channel_mask_and_black_hole_polarity(tmp_path: Path, weights: Path) -> None:
    img = save(photo(), tmp_path / "a.png")
    painted = np.zeros((H, W, 4), np.uint8)
    painted[..., 3] = hole()
    save(painted, tmp_path / "alpha.png")
    save(255 - hole(), tmp_path / "black.png")
    save(hole(), tmp_path / "white.png")
    args = ["--image", img, "--weights", weights]
    assert inpaint(*args, "--mask", tmp_path / "white.png", "--output", tmp_path / "o1.png") == 0
    assert inpaint(*args, "--mask", tmp_path / "alpha.png", "--output", tmp_path / "o2.png") == 0
    assert (
        inpaint(
            *args, "--mask", tmp_path / "black.png", "--output", tmp_path / "o3.png", "--mask-polarity", "black-hole"
        )
        == 0
    )
    assert np.array_equal(read(tmp_path / "o1.png"), read(tmp_path / "o2.png"))
    assert np.array_equal(read(tmp_path / "o1.png"), read(tmp_path / "o3.png"))


def test_mask_same_aspect_other_size_is_resized_with_warning(tmp_path: Path, weights: Path, capsys) -> None:
    img, m = save(photo(), tmp_path / "a.png"), save(hole(H // 2, W // 2), tmp_path / "m.png")
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "o.png", "--weights", weights) == 0
    assert "resizing the mask" in capsys.readouterr().err
    out = read(tmp_path / "o.png")
    # The 32x24 mask's hole rows 10..24, columns 20..32 doubles into rows 20..48, columns 40..64.
    assert np.array_equal(out[:20], photo()[:20]) and np.array_equal(out[:, :40], photo()[:, :40])
    assert (out[20:48, 40:64] != photo()[20:48, 40:64]).any(axis=-1).mean() > 0.9


def test_mask_of_another_aspect_is_refused_naming_both_sizes(tmp_path: Path, weights: Path, capsys) -> None:
    img, m = save(photo(), tmp_path / "a.png"), save(hole(H, H), tmp_path / "m.png")
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "o.png", "--weights", weights) == 2
    err = capsys.readouterr().err
    assert "48x48" in err and "64x48" in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("bad", ["missing", "text", "empty", "truncated"])
def test_bad_image_files_give_one_line_errors(tmp_path: Path, weights: Path, capsys, bad: str) -> None:
    path = tmp_path / "bad.jpg"
    if bad == "text":
        path.write_text("hello")
    elif bad == "empty":
        path.write_bytes(b"")
    elif bad == "truncated":
        save(photo(h=200, w=200), tmp_path / "full.jpg")
        data = (tmp_path / "full.jpg").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    m = save(hole(), tmp_path / "m.png")
    assert inpaint("--image", path, "--mask", m, "--output", tmp_path / "o.png", "--weights", weights) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pconv inpaint: error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_bad_mask_file_is_an_error(tmp_path: Path, weights: Path, capsys) -> None:
    img = save(photo(), tmp_path / "a.png")
    (tmp_path / "m.png").write_bytes(b"")
    m = tmp_path / "m.png"
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "o.png", "--weights", weights) == 2
    assert "mask" in capsys.readouterr().err


def test_never_overwrites_output_or_input_without_flag(tmp_path: Path, weights: Path, capsys) -> None:
    img, m = save(photo(), tmp_path / "a.png"), save(hole(), tmp_path / "m.png")
    before = img.read_bytes()
    (tmp_path / "o.png").write_bytes(b"precious")
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "o.png", "--weights", weights) == 2
    assert inpaint("--image", img, "--mask", m, "--output", img, "--weights", weights) == 2
    assert "input image" in capsys.readouterr().err
    assert (tmp_path / "o.png").read_bytes() == b"precious" and img.read_bytes() == before
    assert inpaint("--image", img, "--mask", m, "--output", img, "--weights", weights, "--overwrite") == 0
    assert img.read_bytes() != before and not np.array_equal(read(img)[10:25, 20:40], photo()[10:25, 20:40])


def test_output_folder_that_is_a_file_leaves_nothing(tmp_path: Path, weights: Path) -> None:
    img, m = save(photo(), tmp_path / "a.png"), save(hole(), tmp_path / "m.png")
    (tmp_path / "blocker").write_text("file")
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "blocker" / "o.png", "--weights", weights) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "blocker", "m.png", "tiny.safetensors"]


def test_folder_mode_pairs_by_stem_writes_good_ones_and_exits_nonzero(tmp_path: Path, weights: Path, capsys) -> None:
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    save(photo(0), images / "a.png")
    save(photo(1), images / "b.jpg", quality=95)
    (images / "c.png").write_bytes(b"not an image")  # fails
    save(photo(3), images / "d.png")  # no mask: fails
    save(hole(), masks / "a.png")
    save(hole(), masks / "b_mask001.png")  # LaMa-style name
    save(hole(), masks / "c.png")
    assert inpaint("--image", images, "--mask", masks, "--output", out, "--weights", weights) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    captured = capsys.readouterr()
    assert "2 written" in captured.out and "2 failed" in captured.out
    assert "c.png" in captured.err and "d.png" in captured.err and "no mask" in captured.err
    known = hole() == 0
    assert np.array_equal(read(out / "a.png")[known], photo(0)[known])


def test_folder_with_one_mask_for_all(tmp_path: Path, weights: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        save(photo(i), images / f"{i}.png")
    m = save(hole(), tmp_path / "m.png")
    assert inpaint("--image", images, "--mask", m, "--output", tmp_path / "out", "--weights", weights) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]


def test_lama_folder_layout_several_masks_per_image(tmp_path: Path, weights: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    save(photo(), data / "x.png")
    save(hole(), data / "x_mask001.png")
    save(255 - hole(), data / "x_mask002.png")
    assert inpaint("--image", data, "--mask", data, "--output", tmp_path / "out", "--weights", weights) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x_mask001.png", "x_mask002.png"]


def test_folder_mode_refuses_to_overwrite_existing_outputs(tmp_path: Path, weights: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    save(photo(), images / "a.png")
    m = save(hole(), tmp_path / "m.png")
    before = (images / "a.png").read_bytes()
    assert inpaint("--image", images, "--mask", m, "--output", images, "--weights", weights) == 1
    assert (images / "a.png").read_bytes() == before


def test_onnx_backend_without_a_file_runs_the_shipped_model(tmp_path: Path) -> None:
    img, m = save(photo(), tmp_path / "a.png"), save(hole(), tmp_path / "m.png")
    assert inpaint("--image", img, "--mask", m, "--output", tmp_path / "o.png", "--backend", "onnx") == 0
    known = hole() == 0
    assert np.array_equal(read(tmp_path / "o.png")[known], photo()[known])


def test_no_weights_and_none_shipped_says_what_to_do(tmp_path: Path) -> None:
    img, m = save(photo(), tmp_path / "a.png"), save(hole(), tmp_path / "m.png")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pconv",
            "inpaint",
            "--image",
            str(img),
            "--mask",
            str(m),
            "--output",
            str(tmp_path / "o.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode == 0:
        pytest.skip("a default model is shipped")
    assert result.returncode == 2 and "--weights" in result.stderr and "Traceback" not in result.stderr


def test_help_lists_the_new_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "pconv", "--help"], capture_output=True, text=True, timeout=60)
    assert all(cmd in result.stdout for cmd in ("inpaint", "export-onnx", "explain"))
