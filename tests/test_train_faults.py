"""Training faults beyond tests/test_train.py: several SIGKILLs at seeded random steps in one run, a zero-byte or
half-written latest checkpoint, and a checkpoint of another network in the run directory.

The killed runs are real processes (``tests/synthetic_data.py`` under ``python``); each resume must end with the
same weights, bit for bit (``torch.equal``), as a run that was never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pconv.checkpoint import checkpoint_path, list_checkpoints, read_checkpoint, write_checkpoint
from pconv.train import fit, train
from pconv.train_setup import prepare_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_data import SyntheticPhotos  # noqa: E402
from test_train import assert_same_state, final_model, tiny_config, worker, worker_env  # noqa: E402

# 12 photos in batches of 2 = 6 steps an epoch: 26 steps cross 4 epochs and the phase change at step 20; with a
# weight average (train.ema), which must come back bit for bit too.
ARGS = [
    "phase1.steps=20",
    "phase2.steps=6",
    "train.ckpt_every=4",
    "train.keep_last=2",
    "train.log_every=1",
    "train.ema=0.9",
]


def _logged_step(run_dir: Path) -> int:
    """The newest step in metrics.jsonl (0 before the first)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return 0
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip().endswith("}")]
    return max(steps, default=0)


def _run_until_killed(run_dir: Path, kill_at: int, *, resume: bool) -> int:
    """Start (or resume) the worker and SIGKILL it as soon as it has logged step ``kill_at``; returns that step."""
    args = worker(run_dir, *(["--resume"] if resume else []), *ARGS)
    proc = subprocess.Popen(args, env=worker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while _logged_step(run_dir) < kill_at and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    return _logged_step(run_dir)


def test_three_sigkills_at_seeded_random_steps_then_resume_give_identical_weights(tmp_path: Path) -> None:
    kill_steps = sorted(random.Random(11).sample(range(2, 24), 3))  # seeded: the same steps on every run
    subprocess.run(worker(tmp_path / "whole", *ARGS), env=worker_env(), check=True, timeout=300, capture_output=True)

    killed, reached = tmp_path / "killed", []
    for n, step in enumerate(kill_steps):
        reached.append(_run_until_killed(killed, step, resume=n > 0))
    assert all(r >= s for r, s in zip(reached, kill_steps)) and reached[-1] < 26, (kill_steps, reached)
    subprocess.run(worker(killed, "--resume", *ARGS), env=worker_env(), check=True, timeout=300, capture_output=True)
    resumed = final_model(killed)
    assert int(resumed["__step"]) == 26 and "ema.encoder.0.conv.weight" in resumed
    assert_same_state(resumed, final_model(tmp_path / "whole"))


def _sha(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A 12-step run (checkpoints at 4, 8, 12; 3 kept) and its final weights."""
    run_dir = tmp_path_factory.mktemp("run") / "run"
    train(tiny_config(run_dir, "train.keep_last=3"), train_set=SyntheticPhotos(), val_set=None)
    return run_dir, read_checkpoint(checkpoint_path(run_dir, 12))["model"]


def _copy_run(run: Path, to: Path) -> Path:
    to.mkdir()
    for p in run.iterdir():
        if p.is_file():
            (to / p.name).write_bytes(p.read_bytes())
    return to


@pytest.mark.parametrize("damage", ["zero_bytes", "half_written_tmp_beside_it"])
def test_zero_byte_latest_checkpoint_resumes_from_the_previous_one_with_a_warning(
    finished_run, tmp_path: Path, caplog, damage: str
) -> None:
    source, reference = finished_run
    run_dir = _copy_run(source, tmp_path / "run")
    latest = checkpoint_path(run_dir, 12)
    latest.write_bytes(b"")  # e.g. a disk that filled up, or a copy that was interrupted
    if damage == "half_written_tmp_beside_it":  # what a kill during write_checkpoint leaves behind
        (run_dir / ".ckpt_00000016.pt.tmp").write_bytes(checkpoint_path(run_dir, 8).read_bytes()[:5000])
    cfg = tiny_config(run_dir, "train.keep_last=3")
    with caplog.at_level(logging.WARNING):
        run = prepare_run(cfg, resume=True, train_set=SyntheticPhotos())
    assert run.step == 8
    assert "ckpt_00000012.pt" in caplog.text and "previous" in caplog.text
    fit(run)
    assert_same_state(read_checkpoint(latest)["model"], reference)


def test_checkpoint_of_another_network_is_refused_naming_both_and_nothing_changes(finished_run, tmp_path) -> None:
    source, _ = finished_run
    run_dir = _copy_run(source, tmp_path / "run")
    other = tmp_path / "other"
    train(tiny_config(other, "model.depth=2", "phase1.steps=2", "phase2.steps=0"), train_set=SyntheticPhotos())
    write_checkpoint(read_checkpoint(list_checkpoints(other)[-1]) | {"step": 16}, checkpoint_path(run_dir, 16))
    before = _sha(run_dir)
    with pytest.raises(ValueError, match=r"ckpt_00000016\.pt holds a .*depth=2.* but the config asks for .*depth=3"):
        prepare_run(tiny_config(run_dir, "train.keep_last=3"), resume=True, train_set=SyntheticPhotos())
    assert _sha(run_dir) == before  # the run's own checkpoints are all still there, untouched
