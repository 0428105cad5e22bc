"""Fixtures for the torch-free tests: a photo and a hole from the bundled sample, as arrays and as files.

Nothing here (nor in the tests of this folder) imports torch: they run in a venv without it (`make test-light`),
and in the full venv as part of the whole suite.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw


@pytest.fixture(scope="session")
def sample_photo() -> np.ndarray:
    """A 320x224 crop of the bundled Kodak photo, (224, 320, 3) uint8."""
    path = Path(str(resources.files("pconv").joinpath("assets").joinpath("kodim23.png")))
    return np.asarray(Image.open(path).convert("RGB"))[144:368, 224:544].copy()


@pytest.fixture(scope="session")
def sample_hole() -> np.ndarray:
    """A brush stroke and a disc, (224, 320) uint8, 255 = hole."""
    hole = Image.new("L", (320, 224), 0)
    draw = ImageDraw.Draw(hole)
    draw.line([(40, 60), (160, 150), (280, 70)], fill=255, width=14)
    draw.ellipse([200, 150, 250, 200], fill=255)
    return np.asarray(hole).copy()


@pytest.fixture
def sample_files(tmp_path: Path, sample_photo: np.ndarray, sample_hole: np.ndarray) -> tuple[Path, Path]:
    """The sample photo and hole written as PNG files: (photo, mask)."""
    photo, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    Image.fromarray(sample_photo).save(photo)
    Image.fromarray(sample_hole).save(mask)
    return photo, mask
