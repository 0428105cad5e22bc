"""The weight average of ``train.ema`` (``pconv.ema.ModelEMA``): its arithmetic against the closed form, with
``train.trainable``, exact resume, validation on it, and ``export-weights`` taking it (``--raw`` the trained one).
The SIGKILL-and-resume runs of tests/test_train_faults.py train with it on as well."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch

from pconv.checkpoint import checkpoint_model, export_weights, read_checkpoint
from pconv.config import load_config
from pconv.ema import ModelEMA
from pconv.model import load_weights
from pconv.train import evaluate, fit, train, train_step
from pconv.train_setup import prepare_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_data import SyntheticPhotos  # noqa: E402
from test_train import assert_same_state, final_model, tiny_config  # noqa: E402


def _steps_with_history(run, steps: int) -> list[dict[str, torch.Tensor]]:
    """Run ``steps`` optimizer steps on the run's data; the model's state before the first and after each."""
    history = [{k: v.double().clone() for k, v in run.model.state_dict().items()}]
    for step in range(steps):
        image, valid_mask = run.train_set[step]
        train_step(run, image[None].repeat(2, 1, 1, 1), valid_mask[None].repeat(2, 1, 1, 1))
        history.append({k: v.double().clone() for k, v in run.model.state_dict().items()})
    return history


def _closed_form(history: list[dict[str, torch.Tensor]], key: str, decay: float) -> torch.Tensor:
    """decay^n p_0 + (1 - decay) sum_{k=1..n} decay^(n-k) p_k."""
    n = len(history) - 1
    return decay**n * history[0][key] + sum((1 - decay) * decay ** (n - k) * history[k][key] for k in range(1, n + 1))


def test_ema_after_n_steps_equals_the_closed_form_for_weights_and_batchnorm_statistics(tmp_path: Path) -> None:
    run = prepare_run(tiny_config(tmp_path / "run", "train.ema=0.8", "phase1.lr=1e-2"), train_set=SyntheticPhotos())
    run.model.train()
    history = _steps_with_history(run, 6)
    ema = run.ema.state_dict()
    params = {n for n, _ in run.model.named_parameters()}
    for key in params:
        torch.testing.assert_close(ema[key].double(), _closed_form(history, key, 0.8), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ema["encoder.1.conv.weight"].double(), history[-1]["encoder.1.conv.weight"])
    statistics = [k for k in set(ema) - params if ema[k].is_floating_point()]
    assert "decoder.1.bn.running_var" in statistics
    for key in statistics:  # BatchNorm running statistics: averaged like the weights they go with
        torch.testing.assert_close(ema[key].double(), _closed_form(history, key, 0.8), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ema["decoder.1.bn.running_mean"].double(), history[-1]["decoder.1.bn.running_mean"])
    assert int(ema["encoder.1.bn.num_batches_tracked"]) == 6  # counters: copied


def test_ema_with_trainable_averages_what_trains_and_keeps_the_rest_bit_for_bit(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", "model.edge_refine=4", "train.trainable=refine", "train.ema=0.5")
    run = prepare_run(cfg, train_set=SyntheticPhotos())
    run.model.train()
    history = _steps_with_history(run, 4)
    ema, model = run.ema.state_dict(), run.model.state_dict()
    for key in ema:
        if key.startswith("refine."):
            torch.testing.assert_close(ema[key].double(), _closed_form(history, key, 0.5), rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(ema[key], model[key]), key
    assert not torch.equal(ema["refine.out.weight"], model["refine.out.weight"])


def test_bad_decay_is_refused() -> None:
    with pytest.raises(ValueError, match=r"train.ema must be in \[0, 1\)"):
        load_config(None, ["train.ema=1.0"])
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        ModelEMA(torch.nn.Linear(2, 2), 0.0)


def test_resumed_bf16_run_ends_with_the_same_average_as_an_uninterrupted_one(tmp_path: Path) -> None:
    args = ("train.ema=0.7", "train.ckpt_every=3", "train.precision=bf16")
    train(tiny_config(tmp_path / "whole", *args), train_set=SyntheticPhotos())
    train(tiny_config(tmp_path / "part", *args, "phase1.steps=7", "phase2.steps=0"), train_set=SyntheticPhotos())
    train(tiny_config(tmp_path / "part", *args), resume=True, train_set=SyntheticPhotos())
    whole, part = final_model(tmp_path / "whole"), final_model(tmp_path / "part")
    assert any(k.startswith("ema.") for k in whole)
    assert_same_state(part, whole)


def test_resume_without_a_saved_average_starts_it_from_the_resumed_weights(tmp_path: Path, caplog) -> None:
    train(tiny_config(tmp_path / "run", "phase1.steps=4", "phase2.steps=0"), train_set=SyntheticPhotos())
    with caplog.at_level(logging.WARNING):
        run = prepare_run(tiny_config(tmp_path / "run", "train.ema=0.9"), resume=True, train_set=SyntheticPhotos())
    assert "no weight average" in caplog.text and run.step == 4
    assert_same_state(run.ema.state_dict(), run.model.state_dict())


def test_validation_scores_the_average_and_says_so(tmp_path: Path) -> None:
    val = SyntheticPhotos(4, seed=5)
    cfg = tiny_config(tmp_path / "run", "train.ema=0.9", "phase1.lr=1e-2", "phase1.steps=4", "phase2.steps=0")
    run = prepare_run(cfg, train_set=SyntheticPhotos(), val_set=val)
    fit(run)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in vals] == [0, 4] and all(r["weights"] == "ema" for r in vals)
    assert vals[-1]["l1"] == pytest.approx(evaluate(run.ema.module, val)["l1"], rel=1e-6)
    assert vals[-1]["l1"] != pytest.approx(evaluate(run.model, val)["l1"], rel=1e-4)
    plain = tiny_config(tmp_path / "plain", "phase1.steps=2", "phase2.steps=0")
    fit(prepare_run(plain, train_set=SyntheticPhotos(), val_set=val))
    assert '"weights": "trained"' in (tmp_path / "plain" / "metrics.jsonl").read_text()


def test_export_writes_the_average_by_default_and_the_trained_weights_with_raw(tmp_path: Path, capsys) -> None:
    from pconv.cli import main

    cfg = tiny_config(tmp_path / "run", "train.ema=0.9", "phase1.lr=1e-2", "phase1.steps=4", "phase2.steps=0")
    train(cfg, train_set=SyntheticPhotos())
    state = read_checkpoint(tmp_path / "run" / "ckpt_00000004.pt")
    assert main(["export-weights", str(tmp_path / "run"), "--output", str(tmp_path / "ema.safetensors")]) == 0
    assert "EMA weight average" in capsys.readouterr().out
    assert_same_state(load_weights(tmp_path / "ema.safetensors").state_dict(), state["ema"])
    raw = tmp_path / "raw.safetensors"
    assert main(["export-weights", str(tmp_path / "run"), "--output", str(raw), "--raw"]) == 0
    assert "the trained weights" in capsys.readouterr().out
    assert_same_state(load_weights(raw).state_dict(), state["model"])
    assert not torch.equal(state["ema"]["encoder.0.conv.weight"], state["model"]["encoder.0.conv.weight"])
    # Without an average in the checkpoint, both give the trained weights.
    train(tiny_config(tmp_path / "plain", "phase1.steps=2", "phase2.steps=0"), train_set=SyntheticPhotos())
    assert checkpoint_model(tmp_path / "plain")[2] == "trained"
    plain = export_weights(tmp_path / "plain", tmp_path / "plain.safetensors")
    assert_same_state(
        load_weights(plain).state_dict(), read_checkpoint(tmp_path / "plain" / "ckpt_00000002.pt")["model"]
    )


def test_phase_with_frozen_decoder_bn_keeps_every_statistic_of_the_initial_weights(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path / "run", "phase1.steps=0", "phase2.freeze_decoder_bn=True", "train.ema=0.9", "phase2.lr=1e-2"
    )
    run = prepare_run(cfg, train_set=SyntheticPhotos())
    start = {k: v.clone() for k, v in run.model.state_dict().items() if "running" in k}
    fit(run)
    for state in (run.model.state_dict(), run.ema.state_dict()):
        assert all(torch.equal(state[k], v) for k, v in start.items())
    assert not torch.equal(
        run.model.state_dict()["decoder.1.conv.weight"], run.ema.state_dict()["decoder.1.conv.weight"]
    )
