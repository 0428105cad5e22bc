"""``tools/average_weights.py``: the mean of weights files of one architecture (how version 4 was made)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pconv.config import ModelConfig
from pconv.model import load_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from average_weights import average_weights, main  # noqa: E402


def test_average_is_the_elementwise_mean_and_writes_a_loadable_file(tmp_path: Path, make_weights) -> None:
    a, b = make_weights(0), make_weights(1)
    soup = average_weights([a, b]).state_dict()
    sa, sb = load_weights(a).state_dict(), load_weights(b).state_dict()
    for key, value in soup.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (sa[key] + sb[key]) / 2)
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)  # the two inputs really differ
    out = tmp_path / "soup.safetensors"
    assert main([str(a), str(b), "--output", str(out)]) == 0
    torch.testing.assert_close(load_weights(out).state_dict(), soup)


def test_refuses_other_architectures_one_file_and_an_existing_output(tmp_path: Path, make_weights, capsys) -> None:
    a, wide = make_weights(0), make_weights(1, ModelConfig(depth=4, width=0.25))
    with pytest.raises(ValueError, match="different model configs"):
        average_weights([a, wide])
    with pytest.raises(ValueError, match="at least two"):
        average_weights([a])
    before = a.read_bytes()
    assert main([str(a), str(a), "--output", str(a)]) == 2  # never overwrites, not even an input
    assert a.read_bytes() == before and "exists" in capsys.readouterr().err
    assert main([str(a), str(tmp_path / "missing.safetensors"), "--output", str(tmp_path / "o.safetensors")]) == 2
    assert "average_weights:" in capsys.readouterr().err
