"""Training config: YAML presets, section.key=value overrides type-checked against the fields, unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from pconv.config import Config, LossConfig, ModelConfig, PhaseConfig, config_from_dict, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_paper_recipe() -> None:
    cfg = Config()
    assert (cfg.loss.valid, cfg.loss.hole, cfg.loss.perceptual, cfg.loss.style, cfg.loss.tv) == (1, 6, 0.05, 120, 0.1)
    assert cfg.loss.ssim == 0
    assert (cfg.phase1.lr, cfg.phase1.freeze_encoder_bn) == (2e-4, False)
    assert (cfg.phase2.lr, cfg.phase2.freeze_encoder_bn) == (5e-5, True)
    assert cfg.model == ModelConfig() and cfg.data.batch_size == 6


def test_overrides_are_parsed_and_type_checked() -> None:
    cfg = load_config(
        None,
        [
            "--model.width=0.5",
            "model.depth=4",
            "phase1.lr=1e-3",
            "loss.vgg_weights=/w/vgg.pth",
            "train.compile=True",
            "data.masks=generated",
            "data.val_root=None",
            "loss.hole=7",
        ],
    )
    assert cfg.model == ModelConfig(depth=4, width=0.5)
    assert cfg.phase1 == PhaseConfig(steps=Config().phase1.steps, lr=1e-3)  # other keys keep the section's default
    assert cfg.loss.vgg_weights == "/w/vgg.pth" and cfg.train.compile is True and cfg.data.val_root is None
    assert cfg.loss.hole == 7.0 and isinstance(cfg.loss.hole, float)  # an int is accepted for a float


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.widht=1", "unknown config key 'model.widht'"),
        ("nosection.x=1", "unknown config key"),
        ("model.depth=2.5", "model.depth must be int"),
        ("train.compile=1", "train.compile must be bool"),
        ("data.batch_size=True", "data.batch_size must be int"),
        ("phase1.lr=fast", "cannot parse 'fast'"),
        ("train.precision=fp8", "precision"),
        ("model.depth=9", "depth must be in"),
        ("phase2.steps", "section.key=value"),
        ("data.min_scale=0", "data.min_scale must be between 0.1 and 1"),
        ("data.min_scale=1.5", "data.min_scale must be between 0.1 and 1"),
    ],
)
def test_bad_overrides_raise_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(None, [override])


def test_yaml_preset_loads_and_rejects_unknown_keys(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("model: {depth: 3, width: 0.25}\nloss: {perceptual: 0, style: 0}\nphase1: {steps: 5, lr: 1e-4}\n")
    cfg = load_config(good, ["phase1.steps=7"])
    assert cfg.model == ModelConfig(depth=3, width=0.25)
    assert cfg.phase1.steps == 7 and cfg.phase1.lr == 1e-4  # PyYAML reads 1e-4 as a string; it is accepted
    assert cfg.loss == LossConfig(perceptual=0.0, style=0.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: {preceptual: 0}\n")
    with pytest.raises(ValueError, match=r"unknown config keys \['preceptual'\] in section 'loss.'"):
        load_config(bad)
    worse = tmp_path / "worse.yaml"
    worse.write_text("model: [1, 2]\n")
    with pytest.raises(ValueError, match="model. must be a mapping"):
        load_config(worse)


def test_config_round_trips_through_its_dict() -> None:
    cfg = load_config(None, ["model.width=0.5", "phase2.steps=3", "data.train_root=/photos"])
    assert config_from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", ["tiny.yaml", "paper.yaml", "cpu_small.yaml", "widen_half.yaml"])
def test_shipped_presets_load(name: str) -> None:
    cfg = load_config(CONFIGS / name)
    assert cfg.total_steps > 0


def test_paper_preset_has_the_two_phase_schedule() -> None:
    cfg = load_config(CONFIGS / "paper.yaml")
    assert cfg.model == ModelConfig() and cfg.data.batch_size == 6 and cfg.data.crop_size == 512
    assert (cfg.phase1.lr, cfg.phase1.freeze_encoder_bn, cfg.phase2.lr, cfg.phase2.freeze_encoder_bn) == (
        2e-4,
        False,
        5e-5,
        True,
    )
    assert cfg.loss == LossConfig(vgg_weights=cfg.loss.vgg_weights)
    assert cfg.phase_at(0)[0] == 1 and cfg.phase_at(cfg.phase1.steps)[0] == 2


def test_training_configs_validate_on_the_validation_split_only() -> None:
    """Every choice is made on ../shared/data/val_photos: no config validates on a training folder or on the test
    photos (eval_photos); only the CPU smoke preset may skip validation."""
    for path in sorted(CONFIGS.rglob("*.yaml")):
        data = load_config(path).data
        if data.val_root is None and path.name == "tiny.yaml":
            continue
        assert data.val_root is not None, f"{path.name} does not validate; set data.val_root"
        val = Path(data.val_root)
        assert val.name == "val_photos", f"{path.name} validates on {val}, not on val_photos"
        assert not val.resolve().is_relative_to(Path(data.train_root).resolve()), path.name
