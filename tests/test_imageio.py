"""`pconv.imageio`: upright reading, metadata and alpha kept, formats by extension, atomic writes, bad files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from pconv.imageio import PNG_COMPRESS_LEVEL, atomic_write, read_hole_mask, read_image, write_image

MAKE, ORIENTATION, EXIF_IFD, DATE_ORIGINAL = 0x010F, 0x0112, 0x8769, 0x9003


def pixels(h: int = 30, w: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def exif_bytes(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[MAKE] = "pconv-test"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    exif.get_ifd(EXIF_IFD)[DATE_ORIGINAL] = "2020:01:02 03:04:05"
    return exif.tobytes()


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = pixels()
    Image.fromarray(arr).save(tmp_path / "rot.png", exif=exif_bytes(orientation=6))  # 6: show rotated 90° clockwise
    pic = read_image(tmp_path / "rot.png")
    assert pic.rgb.shape == (50, 30, 3) and pic.size == (30, 50)
    assert np.array_equal(pic.rgb, np.rot90(arr, k=-1))
    kept = Image.Exif()
    kept.load(pic.exif)
    assert kept[MAKE] == "pconv-test" and kept.get(ORIENTATION, 1) == 1


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_exif_and_icc_kept_and_orientation_reset(tmp_path: Path, suffix: str) -> None:
    icc = srgb_icc()
    Image.fromarray(pixels()).save(tmp_path / "in.jpg", exif=exif_bytes(orientation=6), icc_profile=icc)
    pic = read_image(tmp_path / "in.jpg")
    write_image(tmp_path / f"out{suffix}", pic.rgb, exif=pic.exif, icc_profile=pic.icc_profile)
    with Image.open(tmp_path / f"out{suffix}") as out:
        exif = out.getexif()
        assert out.size == (30, 50)
        assert exif[MAKE] == "pconv-test" and exif.get_ifd(EXIF_IFD)[DATE_ORIGINAL] == "2020:01:02 03:04:05"
        assert exif.get(ORIENTATION, 1) == 1  # pixels are upright now: a viewer must not rotate again
        assert out.info["icc_profile"] == icc


@pytest.mark.parametrize(("suffix", "fmt"), [(".png", "PNG"), (".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP")])
def test_format_follows_extension(tmp_path: Path, suffix: str, fmt: str) -> None:
    write_image(tmp_path / f"x{suffix}", pixels())
    with Image.open(tmp_path / f"x{suffix}") as img:
        assert img.format == fmt


def test_unknown_extension_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png"):
        write_image(tmp_path / "x.gif", pixels())
    assert not list(tmp_path.iterdir())


def test_jpeg_quality_option_changes_the_file(tmp_path: Path) -> None:
    arr = pixels(200, 200)
    write_image(tmp_path / "lo.jpg", arr, quality=30)
    write_image(tmp_path / "hi.jpg", arr, quality=95)
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size / 2


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_rgba_alpha_kept_exactly(tmp_path: Path, suffix: str) -> None:
    arr, alpha = pixels(), pixels(seed=1)[:, :, 0]
    Image.fromarray(np.dstack([arr, alpha]), "RGBA").save(tmp_path / "in.png")
    pic = read_image(tmp_path / "in.png")
    assert np.array_equal(pic.alpha, alpha) and np.array_equal(pic.rgb, arr)
    write_image(tmp_path / f"out{suffix}", pic.rgb, alpha=pic.alpha, quality=100)  # WebP 100 = lossless
    back = read_image(tmp_path / f"out{suffix}")
    assert np.array_equal(back.alpha, alpha) and np.array_equal(back.rgb, arr)


def test_png_written_at_the_fast_zlib_level_and_lossless(tmp_path: Path) -> None:
    """PNG_COMPRESS_LEVEL (1): the same pixels back, the file as zlib level 1 makes it (smaller than level 0)."""
    arr = np.repeat(np.repeat(pixels(24, 40), 4, axis=0), 4, axis=1)  # (96, 160, 3): blocks, so zlib has work
    write_image(tmp_path / "out.png", arr)
    assert PNG_COMPRESS_LEVEL == 1 and np.array_equal(read_image(tmp_path / "out.png").rgb, arr)
    for level in (0, PNG_COMPRESS_LEVEL):
        Image.fromarray(arr).save(tmp_path / f"level{level}.png", compress_level=level)
    assert (tmp_path / "out.png").read_bytes() == (tmp_path / f"level{PNG_COMPRESS_LEVEL}.png").read_bytes()
    assert (tmp_path / "out.png").stat().st_size < (tmp_path / "level0.png").stat().st_size


def test_jpeg_drops_alpha_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pconv.imageio"):
        write_image(tmp_path / "x.jpg", pixels(), alpha=np.zeros((30, 50), np.uint8))
    assert "alpha" in caplog.text
    with Image.open(tmp_path / "x.jpg") as img:
        assert img.mode == "RGB"


def test_grey_image_written_back_grey_exactly(tmp_path: Path) -> None:
    grey = pixels()[:, :, 0]
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    pic = read_image(tmp_path / "g.png")
    assert pic.grey
    write_image(tmp_path / "out.png", pic.rgb, grey=pic.grey)
    with Image.open(tmp_path / "out.png") as img:
        assert img.mode == "L" and np.array_equal(np.asarray(img), grey)


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "deep.png")
    assert (read_image(tmp_path / "deep.png").rgb == 255).all()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_image(tmp_path / "nope.png")


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("these are not pixels")
    with pytest.raises(ValueError, match="not an image"):
        read_image(tmp_path / "notes.png")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read"):
        read_image(tmp_path / "empty.jpg")


def test_truncated_jpeg(tmp_path: Path) -> None:
    Image.fromarray(pixels(200, 200)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_image(tmp_path / "cut.jpg")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        read_image(tmp_path)


def test_mask_read_upright_and_binarised(tmp_path: Path) -> None:
    grey = np.zeros((30, 50), np.uint8)
    grey[:, :10] = 200  # left band hole, anti-aliased edge below the threshold
    grey[:, 10] = 100
    Image.fromarray(grey, "L").save(tmp_path / "m.png", exif=exif_bytes(orientation=6))
    hole = read_hole_mask(tmp_path / "m.png")
    assert hole.shape == (50, 30) and set(np.unique(hole)) == {0, 1}
    assert hole[:10].all() and not hole[10:].any()  # the left band is the top after a 90° clockwise turn


def test_existing_file_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_image(target, pixels())
    assert target.read_bytes() == b"precious"
    write_image(target, pixels(), overwrite=True)
    assert read_image(target).rgb.shape == (30, 50, 3)


def test_failed_encode_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "old.png"
    target.write_bytes(b"old content")

    def crash_midway(f) -> None:
        f.write(b"\x89PNG half of a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash_midway, overwrite=True)
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"]  # no temporary file left behind


def test_unwritable_destination_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(OSError):
        write_image(blocker / "out.png", pixels())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_image(tmp_path / "no" / "such" / "dir.png", pixels())
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]
