"""Training: exact resume after SIGKILL, corrupt checkpoints, NaN stop, the two phases, data order, export."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import pconv.checkpoint
from pconv.checkpoint import export_weights, list_checkpoints, load_latest_checkpoint, read_checkpoint
from pconv.config import Config, load_config
from pconv.model import load_weights
from pconv.train import EpochBatchSampler, TrainingDiverged, evaluate, fit, train
from pconv.train_setup import prepare_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_data import TINY_OVERRIDES, SyntheticPhotos  # noqa: E402

WORKER = Path(__file__).resolve().parent / "synthetic_data.py"
SRC = Path(__file__).resolve().parents[1] / "src"
TINY = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")


def tiny_config(out_dir: Path, *overrides: str) -> Config:
    return load_config(
        None,
        [
            *TINY_OVERRIDES,
            f"train.out_dir={out_dir}",
            "phase1.steps=8",
            "phase2.steps=4",
            "train.ckpt_every=4",
            "train.log_every=2",
            "train.val_every=0",
            *overrides,
        ],
    )


def worker(out_dir: Path, *args: str) -> list[str]:
    return [sys.executable, str(WORKER), str(out_dir), *args]


def worker_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def final_model(run_dir: Path) -> dict[str, torch.Tensor]:
    """The newest checkpoint's weights, its weight average (keys ``ema.*``, when the run keeps one) and step."""
    path, state = load_latest_checkpoint(run_dir)
    ema = {f"ema.{k}": v for k, v in (state.get("ema") or {}).items()}
    return state["model"] | ema | {"__step": torch.tensor(state["step"])}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_run_killed_with_sigkill_and_resumed_ends_with_identical_weights(tmp_path: Path) -> None:
    # 12 photos in batches of 2 = 6 steps an epoch; 70 + 10 steps cross many epochs and the phase change.
    args = ["phase1.steps=70", "phase2.steps=10", "train.ckpt_every=7", "train.keep_last=2", "train.log_every=10"]
    env = worker_env()
    subprocess.run(worker(tmp_path / "whole", *args), env=env, check=True, timeout=300, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(worker(killed, *args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list_checkpoints(killed) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    done = read_checkpoint(list_checkpoints(killed)[-1])["step"]
    assert 0 < done < 80, "the run must be killed in the middle"

    subprocess.run(worker(killed, "--resume", *args), env=env, check=True, timeout=300, capture_output=True)
    resumed, whole = final_model(killed), final_model(tmp_path / "whole")
    assert int(resumed["__step"]) == 80
    assert_same_state(resumed, whole)


def test_corrupt_latest_checkpoint_resumes_from_the_previous_one(tmp_path: Path, caplog) -> None:
    cfg = tiny_config(tmp_path / "run")
    train(cfg, train_set=SyntheticPhotos(), val_set=None)
    ckpts = list_checkpoints(tmp_path / "run")
    assert [p.name for p in ckpts] == ["ckpt_00000004.pt", "ckpt_00000008.pt", "ckpt_00000012.pt"]
    reference = read_checkpoint(ckpts[-1])["model"]
    ckpts[-1].write_bytes(ckpts[-1].read_bytes()[:1000])  # torn file
    with caplog.at_level(logging.WARNING):
        run = prepare_run(cfg, resume=True, train_set=SyntheticPhotos())
    assert run.step == 8
    assert "ckpt_00000012.pt" in caplog.text and "previous" in caplog.text
    fit(run)
    assert_same_state(read_checkpoint(ckpts[-1])["model"], reference)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", "train.ckpt_every=5", "phase1.steps=20")
    # 6 steps per epoch; the images of epoch 2 (steps 13..18) are NaN.
    with pytest.raises(TrainingDiverged) as info:
        train(cfg, train_set=SyntheticPhotos(nan_from_epoch=2))
    message = str(info.value)
    assert "not finite at step 13" in message and "ckpt_00000010.pt" in message and "--resume" in message
    ckpts = list_checkpoints(tmp_path / "run")
    assert ckpts[-1].name == "ckpt_00000010.pt"
    state = read_checkpoint(ckpts[-1])
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_phase_two_lowers_lr_and_freezes_only_the_encoder_batchnorm(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", "phase1.lr=1e-3", "phase2.lr=1e-4", "train.keep_last=5")
    run_dir = train(cfg, train_set=SyntheticPhotos())
    end1 = read_checkpoint(run_dir / "ckpt_00000008.pt")  # end of phase 1
    end2 = read_checkpoint(run_dir / "ckpt_00000012.pt")
    assert end1["optimizer"]["param_groups"][0]["lr"] == 1e-3 and end2["optimizer"]["param_groups"][0]["lr"] == 1e-4
    a, b = end1["model"], end2["model"]
    assert torch.equal(a["encoder.1.bn.running_mean"], b["encoder.1.bn.running_mean"])  # frozen statistics
    assert not torch.equal(a["encoder.1.bn.weight"], b["encoder.1.bn.weight"])  # affine still learns
    assert not torch.equal(a["decoder.1.bn.running_mean"], b["decoder.1.bn.running_mean"])  # decoder BN trains
    import json

    lrs = [json.loads(line)["lr"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
    assert lrs == [1e-3] * 4 + [1e-4] * 2


def test_training_lowers_validation_l1(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", "phase1.steps=60", "phase1.lr=2e-3", "phase2.steps=0", "train.ckpt_every=60")
    val = SyntheticPhotos(6, 32, seed=5)
    run = prepare_run(cfg, train_set=SyntheticPhotos(24), val_set=val)
    before = evaluate(run.model, val)["l1"]
    fit(run)
    assert evaluate(run.model, val)["l1"] < 0.8 * before


def test_run_dir_with_checkpoints_is_not_overwritten_without_resume(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", "phase1.steps=4", "phase2.steps=0")
    train(cfg, train_set=SyntheticPhotos())
    before = (tmp_path / "run" / "ckpt_00000004.pt").read_bytes()
    with pytest.raises(ValueError, match="--resume"):
        train(cfg, train_set=SyntheticPhotos())
    assert (tmp_path / "run" / "ckpt_00000004.pt").read_bytes() == before


def test_vgg_terms_without_weights_fail_before_writing_anything(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", "loss.perceptual=0.05")
    with pytest.raises(ValueError, match="vgg16-397923af.pth"):
        train(cfg, train_set=SyntheticPhotos())
    assert not (tmp_path / "run").exists()


def test_checkpoint_holds_the_unwrapped_model_and_resolved_config(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", "phase1.steps=2", "phase2.steps=0")
    train(cfg, train_set=SyntheticPhotos())
    state = read_checkpoint(tmp_path / "run" / "ckpt_00000002.pt")
    assert {"config", "model", "optimizer", "scaler", "step", "rng", "format_version"} <= set(state)
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in state["model"])
    assert load_config(tmp_path / "run" / "config.yaml") == cfg
    assert Config.__name__ and state["config"] == cfg.to_dict()


def test_sampler_shards_are_disjoint_and_reshuffled_each_epoch() -> None:
    ranks = [EpochBatchSampler(10, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].batches_per_epoch == 2
    epoch0 = [set(ranks[r].shard(0).tolist()) for r in range(2)]
    assert not epoch0[0] & epoch0[1] and epoch0[0] | epoch0[1] == set(range(10))
    assert ranks[0].shard(0).tolist() != ranks[0].shard(1).tolist()
    assert ranks[0].batches(4) == EpochBatchSampler(10, 2, seed=3, rank=0, world_size=2).batches(4)  # pure
    assert ranks[0].batches(0) != EpochBatchSampler(10, 2, seed=4, rank=0, world_size=2).batches(0)
    assert EpochBatchSampler(11, 2, seed=0, rank=1, world_size=2).shard(0).size == 6  # padded like DistributedSampler
    with pytest.raises(ValueError, match="too few"):
        EpochBatchSampler(3, 4, seed=0, world_size=2)


def test_resume_is_exact_with_dataloader_workers(tmp_path: Path) -> None:
    # Workers fork per epoch after set_epoch; stopping mid-epoch and resuming must see the same batches.
    args = ("data.num_workers=2", "phase1.steps=9", "phase2.steps=0", "train.ckpt_every=9")
    train(tiny_config(tmp_path / "whole", *args), train_set=SyntheticPhotos(10))
    train(tiny_config(tmp_path / "part", *args[:1], "phase1.steps=7", "phase2.steps=0"), train_set=SyntheticPhotos(10))
    train(tiny_config(tmp_path / "part", *args), resume=True, train_set=SyntheticPhotos(10))
    assert_same_state(final_model(tmp_path / "part"), final_model(tmp_path / "whole"))


def test_export_weights_round_trips_to_the_inference_format(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", "phase1.steps=2", "phase2.steps=0")
    run = prepare_run(cfg, train_set=SyntheticPhotos())
    fit(run)
    out = export_weights(tmp_path / "run", tmp_path / "model.safetensors")
    model = load_weights(out)
    image, valid = SyntheticPhotos()[0]
    with torch.no_grad():
        torch.testing.assert_close(model(image[None], valid[None])[0], run.model.eval()(image[None], valid[None])[0])
    with pytest.raises(ValueError, match="exists"):
        export_weights(tmp_path / "run", out)
    half = export_weights(tmp_path / "run" / "ckpt_00000002.pt", tmp_path / "half.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * out.stat().st_size


def _photos(folder: Path, count: int = 6) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
        Image.fromarray(coarse).resize((90, 72), Image.BICUBIC).save(folder / f"photo{i}.jpg")
    return folder


def test_cli_tiny_preset_trains_resumes_and_exports(tmp_path: Path, capsys, monkeypatch) -> None:
    from pconv.cli import main

    photos = _photos(tmp_path / "photos")
    run_dir = tmp_path / "run"
    common = ["--data.train_root", str(photos), f"--data.val_root={photos}", f"--train.out_dir={run_dir}"]
    assert main(["train", "--config", TINY, *common]) == 0
    assert "pconv export-weights" in capsys.readouterr().out
    assert read_checkpoint(run_dir / "ckpt_00000010.pt")["step"] == 10
    vals = [line for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    assert len(vals) == 2  # before training and at the end
    assert main(["train", "--config", TINY, *common]) == 2  # refuses to overwrite the run
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--phase2.steps=4"]) == 0
    assert final_model(run_dir)["__step"] == 12
    out = tmp_path / "model.safetensors"
    reads = []
    real_read = pconv.checkpoint.read_checkpoint
    monkeypatch.setattr(pconv.checkpoint, "read_checkpoint", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    ckpt = str(run_dir / "ckpt_00000012.pt")
    assert main(["export-weights", ckpt, "--output", str(out), "--fp16"]) == 0
    assert len(reads) == 1  # the checkpoint is read once (it holds the optimizer too)
    assert load_weights(out).config.depth == 4
    assert main(["export-weights", str(run_dir), "--output", str(out)]) == 2  # no overwrite without --overwrite


def test_cli_rejects_bad_overrides_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pconv", "train", "--config", TINY, "--model.depth=deep"],
        capture_output=True,
        text=True,
        env=worker_env(),
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model.depth" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = subprocess.run(
        [sys.executable, "-m", "pconv", "train", "--model.detph=3"],
        capture_output=True,
        text=True,
        env=worker_env(),
        timeout=120,
    )
    assert result.returncode == 2 and "unrecognized arguments: --model.detph=3" in result.stderr


def test_tensorboard_gets_each_loss_term_lr_validation_and_image_grids(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(
        tmp_path / "run",
        "train.tensorboard=True",
        "train.image_every=4",
        "loss.ssim=1.0",
        "phase1.steps=4",
        "phase2.steps=0",
    )
    train(cfg, train_set=SyntheticPhotos(), val_set=SyntheticPhotos(2, seed=7))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {f"train/{k}" for k in ("valid", "hole", "tv", "ssim", "total", "lr", "images_per_s")} <= scalars
    assert {"val/l1", "val/psnr", "val/ssim"} <= scalars
    (grid,) = events.Images("train/input_mask_output_composite")
    assert grid.step == 4 and grid.width == 4 * 34 + 2 and grid.height == 2 * 34 + 2  # 2 samples x 4 panels


def test_init_weights_starts_from_a_weights_file_and_rejects_another_network(tmp_path: Path) -> None:
    first = train(tiny_config(tmp_path / "a"), train_set=SyntheticPhotos(), val_set=None)
    weights = export_weights(first, tmp_path / "a.safetensors")
    cfg = tiny_config(tmp_path / "b", "phase1.steps=0", "phase2.steps=0", f"train.init_weights={weights}")
    run = prepare_run(cfg, train_set=SyntheticPhotos(), val_set=None)
    source = load_weights(weights).state_dict()
    assert all(torch.equal(v, source[k]) for k, v in run.model.state_dict().items())

    other = tiny_config(tmp_path / "c", "model.width=0.125", f"train.init_weights={weights}")
    with pytest.raises(ValueError, match="init_weights"):
        prepare_run(other, train_set=SyntheticPhotos(), val_set=None)


def test_trainable_trains_only_a_new_edge_refine_head_on_fixed_weights(tmp_path: Path) -> None:
    first = train(tiny_config(tmp_path / "a"), train_set=SyntheticPhotos(), val_set=None)
    weights = export_weights(first, tmp_path / "a.safetensors")
    overrides = ("model.edge_refine=4", "train.trainable=refine", "phase1.steps=3", "phase2.steps=0")
    cfg = tiny_config(tmp_path / "b", *overrides, "phase1.lr=1e-2", f"train.init_weights={weights}")
    run = prepare_run(cfg, train_set=SyntheticPhotos(), val_set=None)
    source = load_weights(weights).state_dict()
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    assert all(torch.equal(before[k], v) for k, v in source.items())  # the backbone comes from the file
    assert {n for n, p in run.model.named_parameters() if p.requires_grad} == {
        n for n, _ in run.model.named_parameters() if n.startswith("refine.")
    }
    fit(run)
    after = run.model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in source)  # weights and BatchNorm statistics fixed
    assert not torch.equal(after["refine.out.weight"], before["refine.out.weight"])
    # A file with the head loads into a network without one (the head is dropped); bad prefixes are named.
    with_head = export_weights(tmp_path / "b", tmp_path / "b.safetensors")
    plain = prepare_run(tiny_config(tmp_path / "c", f"train.init_weights={with_head}"), train_set=SyntheticPhotos())
    assert plain.model.refine is None and all(torch.equal(v, after[k]) for k, v in plain.model.state_dict().items())
    with pytest.raises(ValueError, match="no parameters under 'refin'.*decoder.0"):
        prepare_run(tiny_config(tmp_path / "d", "train.trainable=refin"), train_set=SyntheticPhotos())


def test_cpu_bf16_is_used_only_when_asked_and_trains(tmp_path: Path) -> None:
    auto = prepare_run(tiny_config(tmp_path / "auto"), train_set=SyntheticPhotos())
    assert auto.amp_dtype is None  # auto stays fp32 on the CPU
    fp16 = prepare_run(tiny_config(tmp_path / "fp16", "train.precision=fp16"), train_set=SyntheticPhotos())
    assert fp16.amp_dtype is None  # fp16 autocast is GPU-only
    cfg = tiny_config(tmp_path / "bf16", "train.precision=bf16", "phase1.steps=4", "phase2.steps=0")
    run = prepare_run(cfg, train_set=SyntheticPhotos())
    assert run.amp_dtype == torch.bfloat16
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    fit(run)
    after = run.model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    assert all(after[k].dtype == before[k].dtype for k in before)  # autocast leaves the fp32 weights fp32


def test_mask_max_ratio_keeps_generated_holes_small_and_rejects_bad_uses(tmp_path: Path) -> None:
    from PIL import Image

    from pconv.train_setup import build_datasets

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for k in range(40):
        Image.fromarray(rng.integers(0, 256, (72, 72, 3), dtype=np.uint8)).save(photos / f"p{k}.png")

    def hole_ratios(*overrides: str) -> np.ndarray:
        cfg = tiny_config(tmp_path / "run", f"data.train_root={photos}", "data.crop_size=64", *overrides)
        train_set, _ = build_datasets(cfg)
        return np.array([1 - float(train_set[i][1].mean()) for i in range(len(train_set))])

    small, every = hole_ratios("data.mask_max_ratio=0.2"), hole_ratios()
    assert small.max() <= 0.2 + 1e-6 and small.min() > 0.01
    assert every.max() > 0.3  # the default keeps the large-hole bins
    with pytest.raises(ValueError, match="data.mask_max_ratio must be between 0.1"):
        tiny_config(tmp_path / "run", "data.mask_max_ratio=0.05")
    with pytest.raises(ValueError, match="generated masks only"):
        build_datasets(
            tiny_config(
                tmp_path / "run", f"data.train_root={photos}", f"data.masks={photos}", "data.mask_max_ratio=0.3"
            )
        )
