"""A bounded fuzz run of image and mask decoding (hypothesis): mutated real files never break a reader's contract.

The mutations and readers live in ``tools/fuzz_decode.py`` (which also runs longer on its own). Each mutated
PNG, JPEG, GIF, WebP, BMP or TIFF file goes through ``pconv.imageio``, ``pconv.data.load_rgb``,
``pconv.masks.load_hole_mask`` and the server's upload path; the only allowed outcomes are a well-formed image or
a ``ValueError``/``OSError`` with a message (an HTTP 4xx for the server).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("fastapi")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from fuzz_decode import FUZZ_MAX_PIXELS, MUTATIONS, READERS, check_all_readers, seed_files  # noqa: E402

SEEDS = seed_files()
SLOW_CASE_SECONDS = 20  # far above the ~0.1 s a case takes; only a hang or a runaway allocation gets near it


@pytest.fixture(autouse=True)
def _pillow_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # A mutated header may declare any size; keep Pillow's bomb guard low so no case allocates gigabytes.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", FUZZ_MAX_PIXELS)


def test_every_seed_file_reads_cleanly_in_every_reader() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in SEEDS.items():
            assert check_all_readers(data, Path(tmp), name) == [], name


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(SEEDS)),
    mutations=st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3),
    rng=st.randoms(use_true_random=False),
)
def test_mutated_files_give_an_image_or_a_clear_error(name: str, mutations: list[str], rng: random.Random) -> None:
    data = SEEDS[name]
    for how in mutations:
        if data:
            data = MUTATIONS[how](data, rng)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        findings = check_all_readers(data, Path(tmp), name)
        took = time.monotonic() - start
    assert findings == [], f"{name} after {mutations}: {findings}"
    assert took < SLOW_CASE_SECONDS, f"{name} after {mutations} took {took:.1f} s in {len(READERS)} readers"


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_truncation_point_of_the_header_is_a_clear_error_or_an_image(name: str) -> None:
    data = SEEDS[name]
    with tempfile.TemporaryDirectory() as tmp:
        for end in [*range(0, min(len(data), 64)), *range(64, len(data), max(1, len(data) // 16))]:
            assert check_all_readers(data[:end], Path(tmp), name) == [], f"{name} cut at {end} bytes"


REGRESSIONS = Path(__file__).resolve().parent / "fuzz_regressions"


@pytest.mark.parametrize("path", sorted(REGRESSIONS.iterdir()), ids=lambda p: p.name)
def test_files_the_fuzzer_found_give_clear_errors(path: Path) -> None:
    # tiff_float_strip_offset.tiff: a flipped bit turns StripOffsets into a RATIONAL; Pillow's load() then raises
    # TypeError (found by `tools/fuzz_decode.py --seconds 300 --seed 3`; every reader used to let it through).
    with tempfile.TemporaryDirectory() as tmp:
        assert check_all_readers(path.read_bytes(), Path(tmp), path.name) == []
