"""The `pconv` command line: help, errors as one line, the demo job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pconv.cli import main
from pconv.inference import default_weights_path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pconv", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout


def test_demo_writes_side_by_side_png_and_says_random(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo.png"
    assert main(["demo", "--output", str(out)]) == 0
    with Image.open(out) as img:
        assert img.size == (768 * 2, 512)
    out_text = capsys.readouterr().out
    assert ("RANDOM" in out_text) != default_weights_path().is_file()


def test_demo_never_overwrites_without_flag(tmp_path: Path) -> None:
    out = tmp_path / "keep.png"
    out.write_bytes(b"precious")
    result = run_cli("demo", "--output", str(out))
    assert result.returncode == 2
    assert "exists" in result.stderr and "Traceback" not in result.stderr
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("command", ["inpaint", "serve", "evaluate"])
def test_flip_and_shift_average_are_on_unless_turned_off(command: str) -> None:
    from pconv.cli import build_parser

    required = {
        "inpaint": ["--image", "a.png", "--mask", "m.png", "--output", "o.png"],
        "serve": [],
        "evaluate": ["--photos", "p", "--masks", "m"],
    }
    parser = build_parser()
    assert parser.parse_args([command, *required[command]]).flip_average is True
    assert parser.parse_args([command, *required[command], "--no-flip-average"]).flip_average is False
    assert parser.parse_args([command, *required[command]]).shift_average is True
    assert parser.parse_args([command, *required[command], "--no-shift-average"]).shift_average is False
