"""Image folders for training and evaluation: robust image reading and an (image, valid_mask) dataset.

The paper (arXiv 1804.07723, section 4) trains on 512 × 512 crops with irregular holes; here the crop size is a
parameter (default 256). Hole masks come from a ``pconv.masks.MaskSource`` as ``hole_mask`` (1 = hole) and are
flipped into the paper's ``valid_mask`` M (1 = known) in ``InpaintingDataset.__getitem__`` with
``pconv.masks.hole_to_valid_array``, the one place on this path where the polarity changes.

Images smaller than the crop are resized up (bicubic, aspect kept) so that their short side equals the crop.
Transparent images are composited over white (what an image viewer shows), not stripped of their alpha.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset

from pconv.mask_generation import GeneratedMasks
from pconv.masks import MaskSource, hole_to_valid_array, resize_hole_nearest

__all__ = ["IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS", "list_images", "load_rgb", "InpaintingDataset"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})

# Largest image (in pixels) ``load_rgb`` decodes by default: Pillow's own decompression-bomb limit (~89.5 MP).
MAX_IMAGE_PIXELS = 89_478_485


class _TooManyPixels(ValueError):
    pass


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def list_images(root: str | Path) -> list[Path]:
    """Image files under ``root``, recursively, sorted by relative path.

    Extensions in ``IMAGE_EXTENSIONS``, any case. Hidden files and folders (names starting with ".", such as
    macOS ``._*`` files) are left out. A ``root`` that is itself an image file gives ``[root]``.
    """
    root = Path(root)
    if root.is_file():
        return [root] if root.suffix.lower() in IMAGE_EXTENSIONS else []
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.suffix.lower() in IMAGE_EXTENSIONS and not any(p.startswith(".") for p in rel.parts):
            if path.is_file():
                found.append((rel.as_posix(), path))
    return [path for _, path in sorted(found)]


def _draft_for_short_side(img: Image.Image, min_short_side: int) -> None:
    """Let a JPEG decode at a reduced scale (1/2, 1/4, 1/8) that keeps the short side >= min_short_side."""
    if img.format != "JPEG":
        return
    w, h = img.size
    factor = min_short_side / min(w, h)
    if factor < 1:
        img.draft(None, (math.ceil(w * factor), math.ceil(h * factor)))


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any Pillow image -> (H, W, 3) uint8 RGB, by mode (see ``load_rgb``)."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img)
    if mode in _SIXTEEN_BIT_MODES:
        grey = np.asarray(img).astype(np.float64) * (255 / 65535)
        return np.repeat(np.clip(grey + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if mode == "F":
        grey = np.asarray(img, dtype=np.float64)
        grey = grey * 255 if np.nanmax(grey) <= 1 else grey
        return np.repeat(np.clip(np.nan_to_num(grey) + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:] / 255
        return (rgba[..., :3] * alpha + 255 * (1 - alpha) + 0.5).astype(np.uint8)  # over white
    return np.asarray(img.convert("RGB"))  # L, 1, P, CMYK, YCbCr, HSV


def load_rgb(path: str | Path, *, min_short_side: int | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file as RGB, the way a viewer shows it.

    - EXIF orientation is applied.
    - Grey, bilevel, palette, CMYK and YCbCr images are converted to RGB; 16-bit (and 32-bit integer) grey is
      scaled from 0..65535 to 0..255; float images are taken as [0, 1] when their maximum is <= 1, else 0..255.
      (Pillow reduces 16-bit-per-channel colour PNGs to 8 bits itself.)
    - Transparent images (RGBA, LA, palette with transparency) are composited over white.

    Args:
        path: the image file.
        min_short_side: when given, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (Pillow's ``draft``) as long
            as its short side stays >= this; for callers that downscale anyway. None decodes at full size.
        max_pixels: larger images are refused (a guard against decompression bombs).

    Returns:
        image: (H, W, 3) uint8 RGB.

    Raises:
        ValueError: the file is not a readable image (corrupt, truncated, empty, not an image, too large), with a
            one-line reason.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below says it better
            img = Image.open(path)
        with img:
            if img.width * img.height > max_pixels:
                raise _TooManyPixels(
                    f"cannot read image {path}: {img.width}x{img.height} is more than {max_pixels} pixels "
                    "(decompression-bomb guard); downscale it first"
                )
            if min_short_side is not None:
                _draft_for_short_side(img, min_short_side)
            img.load()
            img = _exif_transposed(img)
            return np.ascontiguousarray(_to_rgb_array(img))
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except _TooManyPixels:
        raise
    except Image.DecompressionBombError as exc:
        raise ValueError(f"cannot read image {path}: too many pixels (decompression-bomb guard: {exc})") from None
    except Exception as exc:  # Pillow reports damaged files as OSError, SyntaxError, TypeError, struct.error...
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"cannot read image {path}: not a readable image ({reason})") from None


def _exif_transposed(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block leaves the image as stored rather than rejecting it."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # Pillow raises many types on malformed EXIF; the pixels themselves are fine
        logger.debug("ignoring unreadable EXIF of %s: %s", img, exc)
        return img


def _resize_short_side(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 so that min(H, W) == size, keeping the aspect ratio (bicubic, antialiased)."""
    h, w = image.shape[:2]
    if min(h, w) == size:
        return image
    scale = size / min(h, w)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC))


class InpaintingDataset(Dataset):
    """Photos from image folders paired with random hole masks, for training or evaluation.

    Train mode: a random ``crop_size`` square crop at the photo's own resolution, a random horizontal flip and
    a mask from ``masks.sample``. Photos whose short side is below the crop are first resized up so that it
    equals the crop. With ``min_scale`` below 1 the photo is shown at a random scale ``s`` in
    ``[max(min_scale, crop / short side), 1]`` (log-uniform): a random square of ``round(crop / s)`` pixels is
    cut and downscaled to the crop with Lanczos. All randomness of item ``i`` is a function of (seed, epoch, i),
    so a resumed run and any number of DataLoader workers see the same items; call ``set_epoch`` before
    iterating each epoch (the epoch lives in shared memory, so persistent workers see it too).

    Eval mode (``train=False``): the short side is resized to ``crop_size``, the centre square is cropped and
    the mask is chosen by index: ``masks[j]`` (resized with nearest neighbour) for an indexable source such
    as ``NvidiaMasks(augment=False)``, with ``j`` spread evenly over the source, else ``masks.sample`` with a
    generator seeded by (seed, i). The items are the same on every run and every epoch.

    Unreadable files are skipped with a logged warning: the item comes from the next readable file (in the
    same, deterministic way) and the file is recorded in ``skipped`` (shared across DataLoader workers).

    Args:
        root: an image folder (searched recursively, see ``list_images``), an image file, or a sequence of them.
        crop_size: side S of the square crops.
        train: train mode (random) or eval mode (deterministic).
        masks: the hole-mask source; default ``GeneratedMasks()`` (medium strokes, the paper's six ratio bins).
        seed: seeds all randomness.
        min_scale: smallest random downscale factor in train mode (1.0: none).

    Items:
        image: (3, S, S) float32 RGB in [0, 1].
        valid_mask: (1, S, S) float32 in {0, 1}, 1 = known pixel (the paper's M).
    """

    def __init__(
        self,
        root: str | Path | Sequence[str | Path],
        *,
        crop_size: int = 256,
        train: bool = True,
        masks: MaskSource | None = None,
        seed: int = 0,
        min_scale: float = 1.0,
    ) -> None:
        roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
        self.files: list[Path] = [f for r in roots for f in list_images(r)]
        if not self.files:
            names = ", ".join(str(r) for r in roots)
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {names}")
        if crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
        self.min_scale = min_scale
        self.crop_size = crop_size
        self.train = train
        self.masks: MaskSource = masks if masks is not None else GeneratedMasks()
        self.seed = seed
        # Shared with DataLoader workers (fork or spawn): the epoch, and which files failed to decode.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._bad = torch.zeros(len(self.files), dtype=torch.uint8).share_memory_()

    def __len__(self) -> int:
        return len(self.files)

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops, flips and masks the train-mode items use."""
        self._epoch[0] = int(epoch)

    @property
    def skipped(self) -> list[Path]:
        """Files found unreadable so far (in this process and its DataLoader workers)."""
        return [self.files[k] for k in torch.nonzero(self._bad).flatten().tolist()]

    def _rng(self, i: int) -> np.random.Generator:
        key = [self.seed, self.epoch, i] if self.train else [self.seed, i]
        return np.random.default_rng(key)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        n = len(self.files)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        i %= n
        for k in range(n):  # the first readable file from i on; deterministic, whatever was found bad before
            j = (i + k) % n
            if self._bad[j]:
                continue
            try:
                image = self._load(self.files[j])
            except (ValueError, OSError) as exc:
                self._bad[j] = 1
                logger.warning("skipping unreadable image: %s", exc)
                continue
            return self._make_item(image, i)
        raise RuntimeError(f"none of the {n} images is readable (first: {self.files[0]})")

    def _load(self, path: Path) -> np.ndarray:
        if self.train:
            return load_rgb(path)
        return load_rgb(path, min_short_side=self.crop_size)

    def _make_item(self, image: np.ndarray, i: int) -> tuple[Tensor, Tensor]:
        size = self.crop_size
        rng = self._rng(i)
        if self.train:
            if min(image.shape[:2]) < size:
                image = _resize_short_side(image, size)
            h, w = image.shape[:2]
            side = self._train_side(min(h, w), rng)
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = image[top : top + side, left : left + side]
            if side != size:
                crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.LANCZOS))
            if rng.uniform() < 0.5:
                crop = crop[:, ::-1]
            hole_mask = self.masks.sample(rng, size)
        else:
            image = _resize_short_side(image, size)
            h, w = image.shape[:2]
            top, left = (h - size) // 2, (w - size) // 2
            crop = image[top : top + size, left : left + size]
            hole_mask = self._eval_hole_mask(i, rng)
        if hole_mask.shape != (size, size):
            raise ValueError(f"mask source gave a {hole_mask.shape} mask, expected ({size}, {size})")
        # NumPy, not torch, up to here: tiny multi-threaded torch ops cost milliseconds each on a busy CPU.
        image = crop.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255)  # (3, S, S) in [0, 1]
        valid_mask = hole_to_valid_array(hole_mask)[None]  # (1, S, S), 1 = known: the one flip on this path
        return torch.from_numpy(image), torch.from_numpy(valid_mask)

    def _train_side(self, short_side: int, rng: np.random.Generator) -> int:
        """Side of the square cut from a photo whose short side is ``short_side`` (>= crop): ``crop / scale``."""
        lowest = max(self.min_scale, self.crop_size / short_side)
        if lowest >= 1:
            return self.crop_size
        scale = float(np.exp(rng.uniform(np.log(lowest), 0.0)))
        return min(short_side, round(self.crop_size / scale))

    def _eval_hole_mask(self, i: int, rng: np.random.Generator) -> np.ndarray:
        masks = self.masks
        if hasattr(masks, "__len__") and hasattr(masks, "__getitem__"):
            n_masks, n = len(masks), len(self.files)
            j = i * n_masks // n if n < n_masks else i % n_masks  # spread over all bins of the source
            return resize_hole_nearest(masks[j], self.crop_size)
        return masks.sample(rng, self.crop_size)
