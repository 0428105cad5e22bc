"""``benchmarks/_results.py``: the one section writer of ``benchmarks/RESULTS.md``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import markers, write_section  # noqa: E402

BENCHMARKS_WRITING_RESULTS = (
    "bench_batch_size.py",
    "bench_browser.py",
    "bench_browser_profile.py",
    "bench_cpu_train_precision.py",
    "bench_light_inference.py",
    "bench_masks.py",
    "bench_scale_out.py",
    "bench_test_time_average.py",
)

BEFORE = "# results\n\nintro line\n"
OTHER = "<!-- other:begin -->\n## Other\n\n| a |\n|---|\n| 1 |\n<!-- other:end -->\n"
AFTER = "\n## Written by hand\n\ntrailing text\n"


def test_replaces_its_own_section_and_leaves_the_rest_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    begin, end = markers("mine")
    path.write_text(f"{BEFORE}\n{begin}\n## Mine\n\nold figure 1.0\n{end}\n\n{OTHER}{AFTER}")
    write_section(path, "mine", "## Mine\n\nnew figure 2.0\n")
    assert path.read_text() == f"{BEFORE}\n{begin}\n## Mine\n\nnew figure 2.0\n{end}\n\n{OTHER}{AFTER}"


def test_a_section_of_another_key_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(BEFORE + "\n" + OTHER + AFTER)
    write_section(path, "mine", "## Mine\n\nfigure\n")
    text = path.read_text()
    assert text.startswith(BEFORE + "\n" + OTHER + AFTER)  # appended after the unchanged content
    assert text.endswith("\n\n<!-- mine:begin -->\n## Mine\n\nfigure\n<!-- mine:end -->\n")


def test_appends_when_absent_and_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "new.md"
    write_section(path, "first", "## First\n\n1\n")
    assert path.read_text() == "<!-- first:begin -->\n## First\n\n1\n<!-- first:end -->\n"
    write_section(path, "second", "## Second\n\n2")  # a missing trailing newline is added
    write_section(path, "first", "## First\n\n3\n")
    assert path.read_text() == (
        "<!-- first:begin -->\n## First\n\n3\n<!-- first:end -->\n\n<!-- second:begin -->\n## Second\n\n2\n"
        "<!-- second:end -->\n"
    )


def test_unpaired_markers_are_refused_and_the_file_kept(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    begin, _ = markers("mine")
    path.write_text(f"{BEFORE}{begin}\n## Mine\n")
    with pytest.raises(ValueError, match="unpaired"):
        write_section(path, "mine", "## Mine\n")
    assert path.read_text() == f"{BEFORE}{begin}\n## Mine\n"


@pytest.mark.parametrize("key", ["", "two\nlines", "a -- b"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        markers(key)


@pytest.mark.parametrize("script", BENCHMARKS_WRITING_RESULTS)
def test_every_benchmark_writes_through_the_one_writer(script: str) -> None:
    source = (ROOT / "benchmarks" / script).read_text()
    assert "from _results import write_section" in source
    assert "def write_section" not in source and 'open("a")' not in source


def test_results_md_sections_are_all_paired() -> None:
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines()
    begins = [line for line in text if line.startswith("<!-- ") and line.endswith(":begin -->")]
    assert begins, "RESULTS.md holds no marked section"
    for begin in begins:
        end = begin.replace(":begin -->", ":end -->")
        assert text.count(begin) == 1 and text.count(end) == 1 and text.index(begin) < text.index(end), begin
