"""``tools/graft_weights.py``: blocks of one weights file put into another (how version 5 was made)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pconv.config import ModelConfig
from pconv.model import load_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from graft_weights import graft_weights, main  # noqa: E402


def test_listed_blocks_come_from_the_donor_and_the_rest_from_the_base(tmp_path: Path, make_weights) -> None:
    base, donor = make_weights(0), make_weights(1)
    graft = graft_weights(base, donor, ["encoder.0", "decoder.0", "decoder.1"]).state_dict()
    sb, sd = load_weights(base).state_dict(), load_weights(donor).state_dict()
    from_donor = [k for k in graft if k.startswith(("encoder.0.", "decoder.0.", "decoder.1."))]
    assert from_donor and len(from_donor) < len(graft)
    for key, value in graft.items():
        expected = sd[key] if key in from_donor else sb[key]
        assert torch.equal(value, expected), key
    assert any(not torch.equal(sb[k], sd[k]) for k in from_donor)  # the inputs differ where it matters
    out = tmp_path / "graft.safetensors"
    assert main([str(base), str(donor), "--blocks", "encoder.0,decoder.0,decoder.1", "--output", str(out)]) == 0
    torch.testing.assert_close(load_weights(out).state_dict(), graft)


def test_refuses_unknown_blocks_other_architectures_and_an_existing_output(
    tmp_path: Path, make_weights, capsys
) -> None:
    a, b = make_weights(0), make_weights(1)
    wide = make_weights(2, ModelConfig(depth=4, width=0.25))
    with pytest.raises(ValueError, match="unknown block 'decoder.9'; blocks are decoder.0"):
        graft_weights(a, b, ["decoder.9"])
    with pytest.raises(ValueError, match="different model configs"):
        graft_weights(a, wide, ["decoder.0"])
    before = a.read_bytes()
    assert main([str(a), str(b), "--blocks", "decoder.0", "--output", str(a)]) == 2  # never overwrites an input
    assert a.read_bytes() == before and "exists" in capsys.readouterr().err
    assert main([str(a), str(b), "--blocks", "nope", "--output", str(tmp_path / "o.safetensors")]) == 2
    assert capsys.readouterr().err.startswith("graft_weights: unknown block 'nope'")
    assert not (tmp_path / "o.safetensors").exists()
