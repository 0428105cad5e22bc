"""The optimisation cache of ``pconv.backends.OnnxNetwork``: the graph ONNX Runtime optimised for this CPU is saved
once and loaded with optimisation off afterwards, with the same output bytes; a cache that cannot be used only
means optimising at load. Torch-free (runs in the light venv)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from pconv.backends import CACHE_ENV, CACHE_KEEP, OnnxNetwork, cache_dir  # noqa: E402
from pconv.inference import default_onnx_path  # noqa: E402


@pytest.fixture
def small_case(sample_photo: np.ndarray, sample_hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1, 96, 128, 3) photo and (1, 96, 128) hole: a corner of the sample, small enough for quick fills."""
    return sample_photo[None, 40:136, 120:248].copy(), sample_hole[None, 40:136, 120:248].copy()


def test_second_load_comes_from_the_cache_with_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_case: tuple[np.ndarray, np.ndarray]
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    first = OnnxNetwork(default_onnx_path())
    assert first.cached is None  # optimised at load, and saved
    saved = list((tmp_path / "cache" / "onnx").glob("pconv_default-*.onnx"))
    assert len(saved) == 1 and not list((tmp_path / "cache" / "onnx").glob(".*"))
    second = OnnxNetwork(default_onnx_path())
    assert second.cached == saved[0]
    assert second.graph == "fill" and second.metadata == first.metadata
    for settings in ({}, {"flip": False, "smooth": False}):
        assert np.array_equal(first.fill(*small_case, **settings), second.fill(*small_case, **settings))


def test_an_empty_cache_variable_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() is None
    assert OnnxNetwork(default_onnx_path()).cached is None and OnnxNetwork(default_onnx_path()).cached is None
    assert not any(tmp_path.iterdir())


def test_default_folder_follows_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "pconv" / "onnx"


def test_a_damaged_copy_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_case: tuple[np.ndarray, np.ndarray]
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    expected = OnnxNetwork(default_onnx_path()).fill(*small_case)
    (saved,) = (tmp_path / "onnx").glob("*.onnx")
    saved.write_bytes(saved.read_bytes()[:1000])  # torn
    again = OnnxNetwork(default_onnx_path())
    assert again.cached is None and np.array_equal(again.fill(*small_case), expected)
    assert OnnxNetwork(default_onnx_path()).cached == saved  # rewritten whole


def test_an_unwritable_folder_only_means_optimising_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_case: tuple[np.ndarray, np.ndarray]
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)  # as a read-only folder (root writes anyway)
    network = OnnxNetwork(default_onnx_path())
    assert network.cached is None and network.fill(*small_case).shape == (1, 96, 128, 3)
    assert not list((tmp_path / "onnx").iterdir())


def test_a_cache_folder_that_is_a_file_only_means_optimising_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_case: tuple[np.ndarray, np.ndarray]
) -> None:
    (tmp_path / "onnx").write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    network = OnnxNetwork(default_onnx_path())
    assert network.cached is None and network.fill(*small_case).shape == (1, 96, 128, 3)


def test_only_the_newest_copies_are_kept_and_other_files_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    folder = tmp_path / "onnx"
    folder.mkdir()
    old = [folder / f"old{i}-{i:016x}-{'0' * 16}.onnx" for i in range(CACHE_KEEP + 2)]
    for i, path in enumerate(old):
        path.write_bytes(b"x")
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    mine = folder / "my_model.onnx"
    mine.write_bytes(b"not a cached copy")
    OnnxNetwork(default_onnx_path())
    kept = {p.name for p in folder.glob("*-*-*.onnx")}
    assert len(kept) == CACHE_KEEP and old[0].name not in kept and mine.exists()
