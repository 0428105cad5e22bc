"""Multi-process training through torchrun: 2 CPU processes (gloo) on a tiny model end with identical weights and
identical weight averages (``train.ema``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from pconv.checkpoint import list_checkpoints, read_checkpoint

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def test_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(HERE / "synthetic_data.py"),
        str(tmp_path / "run"),
        "--dump-params",
        str(tmp_path / "params"),
        "phase1.steps=6",
        "phase2.steps=2",
        "train.ckpt_every=4",
        "train.log_every=2",
        "train.ema=0.9",
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "params" / "rank0.pt")
    rank1 = torch.load(tmp_path / "params" / "rank1.pt")
    assert rank0.keys() == rank1.keys() and rank0
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    # Rank 0 alone wrote the checkpoints, and they hold those weights, without a "module." prefix.
    ckpts = list_checkpoints(tmp_path / "run")
    assert [p.name for p in ckpts] == ["ckpt_00000004.pt", "ckpt_00000008.pt"]
    state = read_checkpoint(ckpts[-1])
    for name, value in rank0.items():
        assert torch.equal(state["model"][name], value), name
    ema0, ema1 = (torch.load(tmp_path / "params" / f"ema_rank{r}.pt") for r in (0, 1))
    assert ema0.keys() == state["ema"].keys() == ema1.keys()
    for name, value in ema0.items():  # rank 0's average is saved; its parameters are every rank's
        assert torch.equal(value, state["ema"][name]), name
        assert name not in rank0 or torch.equal(value, ema1[name]), name
    assert not torch.equal(ema0["encoder.0.conv.weight"], rank0["encoder.0.conv.weight"])
