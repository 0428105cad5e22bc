"""The NVIDIA irregular hole mask test set (Liu et al. 2018, arXiv 1804.07723, section 4) as a mask source.

12,000 files ``NNNNN.png`` (512 x 512, 255 = hole): 2,000 per hole-ratio bin of ``pconv.masks.RATIO_BINS``, in
each bin 1,000 border-constrained masks, then 1,000 not. ``NvidiaMasks`` selects by bin and border, reads a file
as a ``hole_mask`` and, as a ``pconv.masks.MaskSource``, samples augmented and resized masks for datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pconv.mask_generation import augment_hole_mask
from pconv.masks import RATIO_BINS, load_hole_mask, resize_hole_nearest

__all__ = ["NvidiaMasks"]

# The NVIDIA irregular mask test set: 2,000 masks per bin; in each bin 1,000 border-constrained, then 1,000 not.
_NVIDIA_PER_BIN = 2000
_NVIDIA_CONSTRAINED_PER_BIN = 1000


class NvidiaMasks:
    """The NVIDIA irregular hole mask test set (Liu et al. 2018): files ``NNNNN.png``, 512 × 512, 255 = hole.

    File number ``n`` lies in ratio bin ``RATIO_BINS[n // 2000]``; within each bin the first 1,000 masks are
    border-constrained (no hole within 50 px of the edge, the paper's "N") and the next 1,000 are not ("B").

    Indexing (``masks[i]``) gives the raw mask; ``sample`` applies the paper's augmentation (random dilation,
    rotation, flip and crop), then resizes with nearest neighbour and re-binarises. Augmentation changes the
    hole ratio, so sampled masks do not keep their file's bin.

    Args:
        root: folder holding the PNG files.
        bins: keep only these bins (indices into ``RATIO_BINS`` or (lo, hi) tuples from it); None keeps all.
        border_constrained: True keeps only "N" masks, False only "B" masks, None both.
        augment: apply the augmentation in ``sample`` (False: only the resize).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        bins: Sequence[int | tuple[float, float]] | None = None,
        border_constrained: bool | None = None,
        augment: bool = True,
    ) -> None:
        self.root = Path(root)
        self.augment = augment
        files = sorted(self.root.glob("*.png")) if self.root.is_dir() else []
        wanted = None if bins is None else {self._bin_index(b) for b in bins}
        files = [f for f in files if self._keep(f, wanted, border_constrained)]
        if not files:
            raise ValueError(
                f"no NVIDIA masks (NNNNN.png) found in {self.root} for bins={bins}, "
                f"border_constrained={border_constrained}; point root at the nvidia_irregular_test folder"
            )
        self.files: list[Path] = files

    @staticmethod
    def _bin_index(b: int | tuple[float, float]) -> int:
        if isinstance(b, (int, np.integer)) and 0 <= b < len(RATIO_BINS):
            return int(b)
        if isinstance(b, tuple) and tuple(b) in RATIO_BINS:
            return RATIO_BINS.index(tuple(b))
        raise ValueError(f"unknown ratio bin {b!r}; use 0..{len(RATIO_BINS) - 1} or one of {RATIO_BINS}")

    @staticmethod
    def _keep(path: Path, wanted: set[int] | None, border_constrained: bool | None) -> bool:
        if not path.stem.isdigit():
            return False
        number = int(path.stem)
        if wanted is not None and number // _NVIDIA_PER_BIN not in wanted:
            return False
        constrained = number % _NVIDIA_PER_BIN < _NVIDIA_CONSTRAINED_PER_BIN
        return border_constrained is None or constrained == border_constrained

    @staticmethod
    def bin_of(path: str | Path) -> tuple[float, float]:
        """The ratio bin a file belongs to by its number (``NNNNN.png``)."""
        return RATIO_BINS[int(Path(path).stem) // _NVIDIA_PER_BIN]

    @staticmethod
    def is_border_constrained(path: str | Path) -> bool:
        """Whether a file is one of its bin's border-constrained ("N") masks, by its number."""
        return int(Path(path).stem) % _NVIDIA_PER_BIN < _NVIDIA_CONSTRAINED_PER_BIN

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        """The raw mask of file ``i``: (512, 512) uint8 in {0, 1}, 1 = hole."""
        return load_hole_mask(self.files[i])

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A random mask, augmented when ``augment`` is set: (size, size) uint8 in {0, 1}, 1 = hole."""
        hole_mask = self[int(rng.integers(len(self.files)))]
        if self.augment:
            hole_mask = augment_hole_mask(hole_mask, rng)
        return resize_hole_nearest(hole_mask, size)
