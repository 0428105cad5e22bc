"""``tools/make_model.py`` (``make model``): the recipe of the shipped model, its plan, and its stages in tiny form."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pconv.checkpoint import list_checkpoints
from pconv.config import ModelConfig, load_config
from pconv.model import load_weights

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_model  # noqa: E402
from make_model import Paths, Stage, check_plan, main, plan, stage_minutes, tool_command  # noqa: E402

# The model commands (docs/model_history.md, "Command"; versions 1-3 in commits 989d713,
# 2bc426a, 0bf1ac0): each stage's preset in configs/ and its overrides, paths left out.
VAL_32 = ["data.val_count=32", "data.val_size=384"]
FRAGMENTS_30 = ["phase2.steps=1200", "phase2.lr=5e-5", "loss.ssim_hole=6.0", "train.seed=9"]
FRAGMENTS_30 += ["data.mask_preset=fragments", "data.mask_max_ratio=0.3", *VAL_32, "train.val_every=600"]
CARD = {
    "01_v1_scratch.yaml": ("default_cpu.yaml", []),
    "02_v2_256.yaml": ("finetune_cpu_256.yaml", []),
    "03_v2_384.yaml": ("finetune_cpu_384.yaml", []),
    "04_v3_256.yaml": ("finetune_cpu_256.yaml", ["phase1.steps=3000", "phase1.lr=1e-4", "train.seed=3", *VAL_32]),
    "05_v3_384.yaml": ("finetune_cpu_384.yaml", ["phase2.steps=2500", "train.seed=4", *VAL_32]),
    "06_v4_ssim_hole2.yaml": (
        "finetune_cpu_384.yaml",
        ["phase2.steps=1200", "phase2.lr=5e-5", "loss.ssim_hole=2.0", "train.seed=6", *VAL_32],
    ),
    "07_v4_ssim_hole6.yaml": (
        "finetune_cpu_384.yaml",
        ["phase2.steps=1200", "phase2.lr=5e-5", "loss.ssim_hole=6.0", "train.seed=7", *VAL_32],
    ),
    "08_v5_fragments30.yaml": ("finetune_cpu_384.yaml", FRAGMENTS_30),
    # stopped after its step-400 checkpoint (the learning rate is constant within a phase)
    "09_v5_fragments30_ssim_hole10.yaml": (
        "finetune_cpu_384.yaml",
        [*FRAGMENTS_30, "loss.ssim_hole=10.0", "train.seed=10", "phase2.steps=400"],
    ),
    "10_v5_fragments_all.yaml": (
        "finetune_cpu_384.yaml",
        [*FRAGMENTS_30[:2], "loss.ssim_hole=6.0", "train.seed=11", "data.mask_preset=fragments", *VAL_32]
        + ["phase2.steps=800", "train.val_every=800"],
    ),
    "11_v5_fragments_mixed.yaml": (
        "finetune_cpu_384.yaml",
        ["phase2.steps=1200", "phase2.lr=3e-5", "loss.ssim_hole=4.0", "train.seed=13"]
        + ["data.mask_preset=fragments,mixed", *VAL_32, "train.val_every=1200"],
    ),
    "12_v6_edge_refine.yaml": (
        "finetune_cpu_384.yaml",
        ["model.edge_refine=16", "train.trainable=refine", "phase2.steps=1200", "phase2.lr=1e-3"]
        + ["data.crop_size=256", "data.batch_size=8", "train.precision=fp32", "loss.ssim_hole=4.0"]
        + ["data.mask_preset=fragments,mixed", "train.seed=16", *VAL_32, "train.val_every=1200"],
    ),
    "13_v7_frozen_bn_ema.yaml": (
        "finetune_cpu_384.yaml",
        ["model.edge_refine=16", "phase2.freeze_decoder_bn=True", "phase2.steps=3000", "phase2.lr=5e-5"]
        + ["data.crop_size=256", "data.batch_size=8", "data.mask_preset=fragments,mixed", "train.precision=bf16"]
        + ["loss.ssim_hole=4.0", "train.ema=0.999", "train.seed=32", *VAL_32, "train.val_every=250"]
        + ["train.log_every=25", "train.keep_last=2"],
    ),
}


def _settings(config: dict) -> dict:
    """A config's training settings: without paths and thread count, with CPU ``auto`` precision spelled fp32."""
    data = {**config["data"]}
    train = {**config["train"]}
    for key in ("train_root", "val_root"):
        data.pop(key)
    for key in ("out_dir", "threads", "init_weights"):
        train.pop(key)
    if train["precision"] == "auto" and train["device"] == "cpu":
        train["precision"] = "fp32"
    return {**config, "data": data, "train": train}


def test_plan_is_complete_in_order_and_ends_at_the_final_export() -> None:
    stages = plan()
    assert stages[-1].kind == "export" and stages[-1].inputs == (make_model.STAGES[-1].name,)
    consumed = {name for stage in stages for name in stage.inputs}
    assert [s.name for s in stages if s.name not in consumed] == [stages[-1].name]  # every other file is used
    configs = [s.config for s in stages if s.kind == "train"]
    assert configs == sorted(p.name for p in make_model.CONFIGS.glob("*.yaml"))  # each file once, in stage order
    for name in configs:
        cfg = load_config(make_model.CONFIGS / name)  # parses and type-checks
        assert Path(cfg.data.val_root).name == "val_photos" and Path(cfg.data.train_root).name == "train_photos"
        assert cfg.total_steps > 0


def test_plan_matches_the_model_card_crops_hours_and_shipped_network() -> None:
    trains = [s for s in plan() if s.kind == "train"]
    configs = [load_config(make_model.CONFIGS / s.config) for s in trains]
    assert sum(c.total_steps * c.data.batch_size for c in configs) == 187_200  # the card's "187,200 random crops"
    assert sum(stage_minutes(s) for s in trains) == 55 + 70 + 25 + 28 + 62 + 42 + 39 + 36 + 12 + 24 + 38 + 19 + 40
    shipped = load_weights(ROOT / "src" / "pconv" / "weights" / "pconv_default.safetensors")
    assert configs[-1].model == shipped.config == ModelConfig(depth=8, width=0.25, edge_refine=16)


@pytest.mark.parametrize("name", sorted(CARD))
def test_stage_config_is_the_card_command(name: str) -> None:
    preset, overrides = CARD[name]
    card = load_config(ROOT / "configs" / preset, overrides).to_dict()
    assert _settings(load_config(make_model.CONFIGS / name).to_dict()) == _settings(card)


def test_check_plan_names_a_bad_addition_and_the_export_follows_a_new_last_stage(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'nope' is not an earlier stage"):
        check_plan([*make_model.STAGES, Stage("v8", "train", ("nope",), "12_v6_edge_refine.yaml")])
    with pytest.raises(ValueError, match="names must be unique"):
        check_plan([*make_model.STAGES, Stage("v7", "widen", ("v6",))])
    with pytest.raises(ValueError, match="needs a config"):
        check_plan([*make_model.STAGES, Stage("v8", "train", ("v7",))])
    with pytest.raises(ValueError, match="config not found"):
        check_plan([*make_model.STAGES, Stage("v8", "train", ("v7",), "99_missing.yaml")])
    with pytest.raises(ValueError, match="takes 2-2 inputs"):
        check_plan([*make_model.STAGES, Stage("v8", "graft", ("v7",))])
    widened = plan([*make_model.STAGES, Stage("v8_wide", "widen", ("v7",))])
    assert [(s.name, s.kind, s.inputs) for s in widened[-2:]] == [
        ("v8_wide", "widen", ("v7",)),
        ("v8_wide_fp16", "export", ("v8_wide",)),
    ]
    paths = Paths(tmp_path, tmp_path / "train_photos", tmp_path / "val_photos")
    assert tool_command(widened[-2], paths)[1:] == [
        str(ROOT / "tools" / "widen_weights.py"),
        str(tmp_path / "v7.safetensors"),
        "--factor",
        "2",
        "--output",
        str(tmp_path / "v8_wide.safetensors"),
    ]


def test_dry_run_prints_every_stage_and_the_total_and_writes_nothing(tmp_path: Path, capsys) -> None:
    assert main(["--dry-run", "--runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    for stage in plan():
        assert f" {stage.name} " in out
    assert "total 8.2 h of training (490 min), 8.2 h left" in out
    assert not (tmp_path / "runs").exists()


def test_runs_folder_defaults_to_pconv_runs_env(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PCONV_RUNS", str(tmp_path / "elsewhere"))
    assert main(["--dry-run"]) == 0
    assert f"{len(plan())} stages in {tmp_path / 'elsewhere'}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runs", str(ROOT / "src" / "runs")], "inside src/"),
        (["--data-root", "/nonexistent/data"], "point --data-root"),
        (["--until", "v99"], "'v99' is not a stage"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    runs = [] if "--runs" in args else ["--runs", str(tmp_path / "runs")]
    assert main([*args, *runs]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("make_model: error:") and message in err[0]
    assert not (tmp_path / "runs").exists()


def _tiny_first_stage(runs: Path, data: Path) -> list[str]:
    return ["--tiny", "--runs", str(runs), "--data-root", str(data), "--until", make_model.STAGES[0].name]


def test_first_stage_runs_tiny_end_to_end_and_resumes(shared_data: Path, tmp_path: Path, capfd) -> None:
    args = _tiny_first_stage(tmp_path, shared_data)
    assert main(args) == 0
    output, run_dir = tmp_path / "tiny" / "v1_scratch.safetensors", tmp_path / "tiny" / "v1_scratch"
    model = load_weights(output)
    assert model.config == ModelConfig(depth=4, width=0.125)
    image, valid_mask = torch.rand(1, 3, 64, 64), torch.ones(1, 1, 64, 64)
    valid_mask[..., 16:40, 20:44] = 0
    with torch.no_grad():
        prediction, _ = model(image, valid_mask)
    assert prediction.shape == image.shape and torch.isfinite(prediction).all()
    finished = output.read_bytes()

    # Interrupted after step 2 of 4: no output file, only the step-2 checkpoint.
    output.unlink()
    for ckpt in list_checkpoints(run_dir)[1:]:
        ckpt.unlink()
    assert [p.name for p in list_checkpoints(run_dir)] == ["ckpt_00000002.pt"]
    capfd.readouterr()
    assert main(args) == 0
    captured = capfd.readouterr()
    assert f"--resume {run_dir}" in captured.out and "resumed from" in captured.err
    assert output.read_bytes() == finished  # an exact resume trains the same weights

    mtime = output.stat().st_mtime_ns
    assert main(args) == 0  # a stage whose file exists is skipped
    assert "v1_scratch: done" in capfd.readouterr().out and output.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_every_stage_runs_tiny(shared_data: Path, tmp_path: Path) -> None:
    assert main(["--tiny", "--runs", str(tmp_path), "--data-root", str(shared_data)]) == 0
    final = load_weights(tmp_path / "tiny" / f"{make_model.STAGES[-1].name}_fp16.safetensors")
    assert final.config == ModelConfig(depth=4, width=0.125, edge_refine=16)
