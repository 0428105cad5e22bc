"""Image folders: faithful reading of odd files, corrupt files skipped, deterministic (image, valid_mask) items."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pconv.data import InpaintingDataset, list_images, load_rgb
from pconv.mask_generation import GeneratedMasks
from pconv.masks import resize_hole_nearest
from pconv.nvidia_masks import NvidiaMasks

RED, BLUE = (220, 20, 30), (10, 40, 200)


def _photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth colourful test picture: (h, w, 3) uint8."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6, 3)
    chans = [127 + 100 * np.sin(x / (7 + 3 * k) + y / (11 + k) + phase[k]) for k in range(3)]
    return np.stack(chans, axis=2).astype(np.uint8)


def _save(array: np.ndarray, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _photo_folder(root: Path, n: int = 5, sizes: tuple[tuple[int, int], ...] = ((48, 64), (70, 50))) -> Path:
    for k in range(n):
        h, w = sizes[k % len(sizes)]
        _save(_photo(h, w, seed=k), root / f"sub{k % 2}" / f"img{k}.png")
    return root


# ---- list_images ---------------------------------------------------------------------------------------------


def test_list_images_is_recursive_sorted_and_case_insensitive(tmp_path: Path) -> None:
    pic = _photo(8, 8)
    for name in ["b/z.JPG", "a.png", "b/c/y.Jpeg", "d.webp", "e.BMP", "f.tif", "g.TIFF"]:
        _save(pic, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    _save(pic, tmp_path / ".hidden" / "h.png")
    _save(pic, tmp_path / "b" / "._z.jpg")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a.png", "b/c/y.Jpeg", "b/z.JPG", "d.webp", "e.BMP", "f.tif", "g.TIFF"]
    for path in list_images(tmp_path):
        assert load_rgb(path).shape == (8, 8, 3)
    with pytest.raises(FileNotFoundError, match="not found"):
        list_images(tmp_path / "nowhere")


# ---- load_rgb: odd but valid files --------------------------------------------------------------------------


def test_rgb_png_is_read_exactly(tmp_path: Path) -> None:
    pic = _photo()
    assert np.array_equal(load_rgb(_save(pic, tmp_path / "p.png")), pic)


def test_grey_becomes_three_equal_channels(tmp_path: Path) -> None:
    grey = _photo()[..., 0]
    rgb = load_rgb(_save(grey, tmp_path / "g.png"))
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[..., 0], grey) and np.array_equal(rgb[..., 1], grey) and np.array_equal(rgb[..., 2], grey)


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = RED
    rgba[0, :, 3] = 0  # transparent: white
    rgba[1, :, 3] = 255  # opaque: its colour
    rgba[2:, :, 3] = 128  # half: halfway to white
    rgb = load_rgb(_save(rgba, tmp_path / "a.png")).astype(int)
    assert (rgb[0] == 255).all()
    assert (rgb[1] == RED).all()
    expected = np.round(np.array(RED) * 128 / 255 + 255 * 127 / 255)
    assert np.abs(rgb[2] - expected).max() <= 1


def test_palette_and_palette_with_transparency(tmp_path: Path) -> None:
    pic = _photo()
    pal = Image.fromarray(pic).convert("P", palette=Image.ADAPTIVE, colors=64)
    pal.save(tmp_path / "p.png")
    assert np.array_equal(load_rgb(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))
    pal.info["transparency"] = int(np.asarray(pal)[0, 0])
    pal.save(tmp_path / "pt.png", transparency=int(np.asarray(pal)[0, 0]))
    rgb = load_rgb(tmp_path / "pt.png")
    assert (rgb[0, 0] == 255).all()  # the transparent palette entry shows as white


def test_cmyk_jpeg_and_tiff_become_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    cmyk.save(tmp_path / "c.jpg", quality=95)
    cmyk.save(tmp_path / "c.tif")
    for name in ["c.jpg", "c.tif"]:
        rgb = load_rgb(tmp_path / name).astype(int)
        assert rgb.shape == (16, 16, 3)
        assert rgb[..., 0].min() > 230 and rgb[..., 1:].max() < 25, name


def test_16_bit_grey_and_colour_are_scaled_to_8_bits(tmp_path: Path) -> None:
    grey16 = np.array([[0, 257 * 100, 65535, 32768]], np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode.startswith("I")  # really stored as 16-bit
    assert load_rgb(tmp_path / "g16.png")[..., 0].tolist() == [[0, 100, 255, 128]]

    cv2 = pytest.importorskip("cv2")
    rgb16 = np.zeros((2, 2, 3), np.uint16)
    rgb16[..., 0] = 65535  # red channel full
    rgb16[..., 2] = 257 * 50  # blue 50/255
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])  # cv2 writes BGR
    assert load_rgb(tmp_path / "c16.png")[0, 0].tolist() == [255, 0, 50]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pic = np.zeros((20, 40, 3), np.uint8)
    pic[:, :20] = RED  # left half red, right half blue, as stored
    pic[:, 20:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pic).save(tmp_path / "r.jpg", exif=exif, quality=95)
    rgb = load_rgb(tmp_path / "r.jpg").astype(int)
    assert rgb.shape == (40, 20, 3)  # portrait once rotated
    assert np.abs(rgb[5, 10] - RED).max() < 30 and np.abs(rgb[35, 10] - BLUE).max() < 30  # left went to the top


def test_jpeg_draft_decodes_smaller_but_not_below_the_requested_side(tmp_path: Path) -> None:
    big = np.repeat(np.repeat(_photo(60, 80), 8, axis=0), 8, axis=1)  # 480 x 640
    _save(big, tmp_path / "big.jpg", quality=90)
    assert load_rgb(tmp_path / "big.jpg").shape == (480, 640, 3)
    small = load_rgb(tmp_path / "big.jpg", min_short_side=100)
    assert small.shape == (120, 160, 3)  # 1/4 scale: the smallest with short side >= 100


# ---- load_rgb: broken files ---------------------------------------------------------------------------------


def _broken_files(root: Path) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(_photo(64, 64)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("this is a text file, not a PNG\n")
    (root / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return sorted(root.iterdir())


def test_broken_files_raise_a_one_line_value_error(tmp_path: Path) -> None:
    for path in _broken_files(tmp_path):
        with pytest.raises(ValueError) as info:
            load_rgb(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message, message
    with pytest.raises(FileNotFoundError, match="not found"):
        load_rgb(tmp_path / "missing.png")


def test_decompression_bomb_guard(tmp_path: Path) -> None:
    path = _save(_photo(20, 20), tmp_path / "p.png")
    with pytest.raises(ValueError, match="decompression-bomb guard"):
        load_rgb(path, max_pixels=399)
    assert load_rgb(path, max_pixels=400).shape == (20, 20, 3)


# ---- InpaintingDataset ----------------------------------------------------------------------------------------


class FixedHoles:
    """A user-defined mask source: a centred square hole."""

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        hole = np.zeros((size, size), np.uint8)
        hole[size // 4 : size // 2, size // 4 : size // 2] = 1
        return hole


def _items(ds: InpaintingDataset) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [ds[i] for i in range(len(ds))]


def _same(a: list, b: list) -> bool:
    return all(torch.equal(x, y) and torch.equal(m, n) for (x, m), (y, n) in zip(a, b))


def test_items_have_the_documented_shapes_ranges_and_polarity(tmp_path: Path) -> None:
    ds = InpaintingDataset(_photo_folder(tmp_path), crop_size=32, masks=FixedHoles())
    image, valid_mask = ds[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert valid_mask.shape == (1, 32, 32) and valid_mask.dtype == torch.float32
    assert valid_mask[0, 8:16, 8:16].eq(0).all() and valid_mask.sum() == 32 * 32 - 64  # 1 = known


def test_eval_mode_is_identical_across_runs_and_epochs(tmp_path: Path) -> None:
    root = _photo_folder(tmp_path)
    first = InpaintingDataset(root, crop_size=40, train=False, seed=3)
    again = InpaintingDataset(root, crop_size=40, train=False, seed=3)
    again.set_epoch(5)
    a, b = _items(first), _items(again)
    assert _same(a, b)
    assert not torch.equal(a[0][1], a[1][1])  # masks differ between items


def test_eval_mode_resizes_short_side_and_centre_crops(tmp_path: Path) -> None:
    pic = np.zeros((40, 120, 3), np.uint8)
    pic[:, :40] = RED  # left third red, middle green, right third blue
    pic[:, 40:80] = (0, 200, 0)
    pic[:, 80:] = BLUE
    _save(pic, tmp_path / "wide.png")
    image, _ = InpaintingDataset(tmp_path, crop_size=20, train=False)[0]
    assert image.shape == (3, 20, 20)
    centre = (image[:, :, 2:-2] * 255).round().int()
    assert (centre[1] > 180).all() and (centre[0] < 20).all()  # only the green middle is kept


def test_eval_mode_takes_indexable_masks_by_index(tmp_path: Path, shared_data: Path) -> None:
    root = _photo_folder(tmp_path, n=4)
    masks = NvidiaMasks(shared_data / "masks" / "nvidia_irregular_test", augment=False)
    ds = InpaintingDataset(root, crop_size=64, train=False, masks=masks)
    for i in range(4):
        expected = 1 - resize_hole_nearest(masks[i * 12000 // 4], 64)  # spread over all six bins
        assert np.array_equal(ds[i][1][0].numpy(), expected)


def test_train_mode_is_a_function_of_seed_epoch_and_index(tmp_path: Path) -> None:
    root = _photo_folder(tmp_path)
    ds = InpaintingDataset(root, crop_size=32, seed=1)
    ds.set_epoch(2)
    items = _items(ds)
    other = InpaintingDataset(root, crop_size=32, seed=1)
    other.set_epoch(2)
    assert _same(items, [other[i] for i in reversed(range(len(other)))][::-1])  # order does not matter
    other.set_epoch(3)
    assert not _same(items, _items(other))
    reseeded = InpaintingDataset(root, crop_size=32, seed=2)
    reseeded.set_epoch(2)
    assert not _same(items, _items(reseeded))


def test_train_mode_crops_and_flips_vary(tmp_path: Path) -> None:
    _save(_photo(60, 90), tmp_path / "one.png")
    ds = InpaintingDataset(tmp_path, crop_size=24, masks=FixedHoles())
    crops = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        crops.add(ds[0][0].numpy().tobytes())
    assert len(crops) > 8


def test_small_images_are_resized_up_to_the_crop(tmp_path: Path) -> None:
    _save(_photo(20, 30), tmp_path / "tiny.png")
    for train in (True, False):
        image, valid_mask = InpaintingDataset(tmp_path, crop_size=64, train=train)[0]
        assert image.shape == (3, 64, 64) and valid_mask.shape == (1, 64, 64)


def test_corrupt_files_are_skipped_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _photo_folder(tmp_path / "photos", n=3)
    broken = _broken_files(root / "broken")
    ds = InpaintingDataset(root, crop_size=32, train=False)
    assert len(ds) == 7
    with caplog.at_level(logging.WARNING, logger="pconv.data"):
        items = _items(ds)
    assert len(items) == 7 and all(x.shape == (3, 32, 32) for x, _ in items)
    assert sorted(ds.skipped) == broken
    assert sum("skipping unreadable image" in r.message for r in caplog.records) == 4
    # A broken file's item comes from the next readable file, deterministically.
    again = InpaintingDataset(root, crop_size=32, train=False)
    assert _same(items, list(reversed([again[i] for i in reversed(range(7))])))


def test_dataloader_workers_match_the_main_process_and_share_skips(tmp_path: Path) -> None:
    root = _photo_folder(tmp_path, n=6)
    (root / "zz_empty.png").write_bytes(b"")
    ds = InpaintingDataset(root, crop_size=32, seed=4, masks=GeneratedMasks(preset="thick"))
    ds.set_epoch(1)
    loader = DataLoader(ds, batch_size=7, num_workers=2, persistent_workers=True)
    workers = next(iter(loader))
    assert ds.skipped == [root / "zz_empty.png"]  # found by a worker, seen here
    reference = InpaintingDataset(root, crop_size=32, seed=4, masks=GeneratedMasks(preset="thick"))
    reference.set_epoch(1)
    expected = [torch.stack(t) for t in zip(*_items(reference))]
    assert torch.equal(workers[0], expected[0]) and torch.equal(workers[1], expected[1])
    ds.set_epoch(2)  # persistent workers see the new epoch
    reference.set_epoch(2)
    assert torch.equal(next(iter(loader))[1], torch.stack([m for _, m in _items(reference)]))


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(ValueError, match="no images"):
        InpaintingDataset(tmp_path)


def test_all_files_broken_raises_instead_of_looping(tmp_path: Path) -> None:
    _broken_files(tmp_path)
    ds = InpaintingDataset(tmp_path, crop_size=16)
    with pytest.raises(RuntimeError, match="none of the 4 images"):
        ds[0]


def test_real_photo_folders(shared_data: Path) -> None:
    train = InpaintingDataset(shared_data / "train_photos" / "bsds500", crop_size=256)
    image, valid_mask = train[0]
    assert image.shape == (3, 256, 256) and 0.01 < 1 - valid_mask.mean() <= 0.6
    folders = [shared_data / "eval_photos" / "kodak24", shared_data / "eval_photos" / "sun_hays80"]
    evaluation = InpaintingDataset(folders, crop_size=256, train=False)
    assert len(evaluation) == 104
    assert torch.equal(evaluation[30][0], evaluation[30][0])


def test_min_scale_shows_photos_downscaled_and_stays_deterministic(tmp_path: Path) -> None:
    ramp = np.repeat(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 256, axis=0), 3, axis=2)
    _save(ramp, tmp_path / "ramp.png")  # value = column: a crop's value range is the width it covers
    plain = InpaintingDataset(tmp_path, crop_size=32, masks=FixedHoles(), seed=1)
    default = InpaintingDataset(tmp_path, crop_size=32, masks=FixedHoles(), seed=1, min_scale=1.0)
    scaled = InpaintingDataset(tmp_path, crop_size=32, masks=FixedHoles(), seed=1, min_scale=0.25)

    def spans(ds: InpaintingDataset) -> list[float]:
        out = []
        for epoch in range(12):
            ds.set_epoch(epoch)
            image = ds[0][0]
            out.append(float(image[0].max() - image[0].min()) * 255)
        return out

    assert spans(plain) == spans(default) and max(spans(plain)) < 32  # min_scale 1 changes nothing
    wide = spans(scaled)
    assert max(wide) > 48 and max(wide) <= 128  # crops of up to 32 / 0.25 = 128 columns, shrunk to 32
    assert wide == spans(scaled)  # the same items for the same (seed, epoch, index)
    with pytest.raises(ValueError, match="min_scale"):
        InpaintingDataset(tmp_path, crop_size=32, min_scale=0)
