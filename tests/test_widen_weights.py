"""``tools/widen_weights.py``: a width-w network written as a width-k*w one that computes the same function."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pconv.config import ModelConfig
from pconv.model import PConvUNet, load_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from widen_weights import main, widen_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_data import SyntheticPhotos  # noqa: E402
from test_train import tiny_config  # noqa: E402


def _hidden_features(model: PConvUNet, image: torch.Tensor, valid_mask: torch.Tensor) -> list[torch.Tensor]:
    """Every block's output except the last decoder step's, in call order."""
    found: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda m, i, o: found.append(o[0])) for b in [*model.encoder, *model.decoder]]
    with torch.no_grad():
        model(image, valid_mask)
    for hook in hooks:
        hook.remove()
    return found[:-1]


def _box_hole(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    valid = torch.ones(2, 1, size, size)
    valid[0, :, 10:40, 8:50] = 0
    valid[1, :, 30:60, 20:28] = 0
    return image, valid


def _deep_in_hole(valid: torch.Tensor, margin: int) -> torch.Tensor:
    """Hole pixels with no known pixel within ``margin`` pixels: (N, 1, H, W) bool."""
    return F.max_pool2d(valid, 2 * margin + 1, stride=1, padding=margin) == 0


@pytest.mark.parametrize("edge_refine", [0, 4])
def test_hidden_features_are_copied_and_deep_hole_pixels_kept(make_weights, edge_refine: int) -> None:
    small = load_weights(make_weights(0, ModelConfig(depth=4, width=0.125, edge_refine=edge_refine)))
    wide = widen_model(small, 2, noise=1e-2, seed=1)
    assert wide.config == ModelConfig(depth=4, width=0.25, edge_refine=edge_refine)
    assert wide.config.channels == tuple(2 * c for c in small.config.channels)
    image, valid = _box_hole()
    for before, after in zip(_hidden_features(small, image, valid), _hidden_features(wide, image, valid)):
        torch.testing.assert_close(after, before.repeat(1, 2, 1, 1), rtol=1e-4, atol=1e-5)  # both copies
    with torch.no_grad():
        p_small, p_wide = small(image * valid, valid)[0], wide(image * valid, valid)[0]
    # The last step's sum(1)/sum(M) changes where the image's window is partly known (see the tool's docstring);
    # deep inside a hole it is exact (the head reads a 5x5 neighbourhood of the prediction: 3 pixels deeper).
    deep = _deep_in_hole(valid, 3 if edge_refine else 1).expand_as(p_small)
    assert deep.sum() > 500
    torch.testing.assert_close(p_wide[deep], p_small[deep], rtol=1e-4, atol=1e-5)
    if edge_refine:
        assert all(torch.equal(wide.state_dict()[k], v) for k, v in small.state_dict().items() if "refine" in k)


def test_copies_share_batchnorm_and_noise_is_zero_sum(make_weights) -> None:
    small = load_weights(make_weights(0))
    s, w = small.state_dict(), widen_model(small, 3, noise=1e-2).state_dict()
    c = small.config.channels
    assert torch.equal(w["encoder.1.bn.running_mean"], s["encoder.1.bn.running_mean"].repeat(3))
    assert torch.equal(w["decoder.2.bn.running_var"], s["decoder.2.bn.running_var"].repeat(3))
    assert torch.equal(w["encoder.0.conv.bias"], s["encoder.0.conv.bias"].repeat(3))
    enc1 = w["encoder.1.conv.weight"][: c[1]]  # (C1, 3 * C0, k, k): three copies of encoder.0's channels
    copies = enc1.view(c[1], 3, c[0], *enc1.shape[2:])
    torch.testing.assert_close(copies.sum(1), s["encoder.1.conv.weight"], rtol=1e-5, atol=1e-7)
    assert not torch.equal(copies[:, 0], copies[:, 1])  # the symmetry is broken
    exact = widen_model(small, 3, noise=0.0).state_dict()["encoder.1.conv.weight"][: c[1]].view_as(copies)
    assert torch.equal(exact[:, 0], exact[:, 2])


def test_shipped_model_widened_to_half_width_keeps_its_fill_on_a_real_photo(shared_data: Path) -> None:
    from pconv import evaluate as ev
    from pconv.inference import default_weights_path

    v6 = load_weights(default_weights_path())
    wide = widen_model(v6, 2, noise=1e-3)
    assert wide.config == ModelConfig(depth=8, width=0.5, edge_refine=v6.config.edge_refine)
    assert {k: v.shape for k, v in wide.state_dict().items()} == {
        k: v.shape for k, v in PConvUNet(ModelConfig(width=0.5, edge_refine=v6.config.edge_refine)).state_dict().items()
    }
    photo = ev.find_photos(shared_data / "val_photos")[0]
    source = ev.NvidiaCellMasks(shared_data / "masks" / "nvidia_irregular_test")
    case = ev.build_cases([photo], source)[5]  # (0.2, 0.3] holes, N
    image = torch.from_numpy(ev.load_photo(photo).copy()).permute(2, 0, 1)[None].float() / 255
    hole = torch.from_numpy(source.load(case).copy())[None, None].float()
    valid = 1 - hole
    with torch.no_grad():
        diff = (wide(image * valid, valid)[0] - v6(image * valid, valid)[0]).abs() * 255  # levels of 0..255
    in_hole = diff[hole.expand_as(diff) > 0]
    assert in_hole.mean() < 0.2 and in_hole.max() < 6, (in_hole.mean(), in_hole.max())


def test_written_file_loads_and_starts_a_wider_training_run(tmp_path: Path, make_weights, capsys) -> None:
    from pconv.train_setup import prepare_run

    small = make_weights(0, ModelConfig(depth=3, width=0.0625))
    out = tmp_path / "wide.safetensors"
    assert main([str(small), "--factor", "2", "--output", str(out), "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    wide = load_weights(out)
    torch.testing.assert_close(wide.state_dict(), widen_model(load_weights(small), 2, noise=1e-3, seed=3).state_dict())
    cfg = tiny_config(tmp_path / "run", "model.width=0.125", f"train.init_weights={out}")
    run = prepare_run(cfg, train_set=SyntheticPhotos())
    assert all(torch.equal(v, wide.state_dict()[k]) for k, v in run.model.state_dict().items())
    half = tmp_path / "half.safetensors"
    assert main([str(small), "--output", str(half), "--fp16"]) == 0
    assert half.stat().st_size < 0.6 * out.stat().st_size


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.safetensors"], "weights file not found"),
        (["TEXT"], "is not a readable safetensors weights file"),
        (["IN", "--factor", "1"], "--factor must be an integer of at least 2, got 1"),
        (["IN", "--factor", "0"], "--factor must be an integer of at least 2, got 0"),
        (["IN", "--noise", "-1"], "--noise must be >= 0"),
        (["NARROW"], "gives channels (4, 8, 16), not 2 x (4, 4, 8)"),
        (["IN", "--output", "IN"], "exists; choose another --output"),
    ],
)
def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path, make_weights, capsys, args, message) -> None:
    files = {"IN": str(make_weights(0)), "NARROW": str(make_weights(1, ModelConfig(depth=3, width=0.03125)))}
    files["TEXT"] = str(tmp_path / "notes.safetensors")
    Path(files["TEXT"]).write_text("not weights")
    before = {p: Path(p).read_bytes() for p in files.values()}
    argv = [files.get(a, a) for a in args]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "out.safetensors")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("widen_weights: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.safetensors").exists()
    assert {p: Path(p).read_bytes() for p in files.values()} == before


def test_widen_half_config_continues_the_widened_shipped_model(tmp_path: Path) -> None:
    from pconv.config import load_config
    from pconv.inference import default_weights_path
    from pconv.train import fit
    from pconv.train_setup import prepare_run

    init = tmp_path / "widen_half_init.safetensors"
    assert main([str(default_weights_path()), "--output", str(init), "--fp16"]) == 0
    config = Path(__file__).resolve().parents[1] / "configs" / "widen_half.yaml"
    small = ("data.crop_size=64", "data.batch_size=2", "data.num_workers=0", "phase2.steps=2", "train.ckpt_every=2")
    cfg = load_config(config, [f"train.init_weights={init}", f"train.out_dir={tmp_path / 'run'}", *small])
    assert cfg.train.ema > 0 and cfg.phase1.steps == 0 and cfg.phase2.freeze_encoder_bn
    run = prepare_run(cfg, train_set=SyntheticPhotos(4, 64))
    wide = load_weights(init).state_dict()
    assert all(torch.equal(v, wide[k]) for k, v in run.model.state_dict().items())
    fit(run)
    assert run.step == 2 and torch.equal(run.model.encoder[1].bn.running_mean, wide["encoder.1.bn.running_mean"])
