"""`pconv explain`: the masks drawn are the network's own mask updates (eq. 2), and the picture is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pconv.cli import main
from pconv.config import ModelConfig
from pconv.explain import encoder_hole_masks
from pconv.model import PConvUNet, save_weights

TINY = ModelConfig(depth=4, width=0.125)


def test_first_layer_hole_is_the_paper_mask_update() -> None:
    """m' = 1 where the 7x7 stride-2 window holds any known pixel (zero padding counts as hole)."""
    image = torch.rand(1, 3, 40, 56)
    hole = torch.zeros(1, 1, 40, 56)
    hole[..., 8:30, 10:40] = 1
    _, holes = encoder_hole_masks(PConvUNet(TINY).eval(), image, hole)
    valid_after = F.max_pool2d(F.pad(1 - hole, (0, 8, 0, 8)), kernel_size=7, stride=2, padding=3)  # padded to 48x64
    expected = 1 - F.interpolate(valid_after, scale_factor=2.0, mode="nearest")[..., :40, :56]
    assert torch.equal(holes[0], expected)


def test_hole_shrinks_to_nothing_and_does_not_depend_on_weights() -> None:
    image = torch.rand(1, 3, 64, 64)
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., 20:44, 16:48] = 1
    torch.manual_seed(0)
    filled, holes = encoder_hole_masks(PConvUNet(TINY).eval(), image, hole)
    torch.manual_seed(1)
    _, holes_other = encoder_hole_masks(PConvUNet(TINY).eval(), image, hole)
    fractions = [float(h.mean()) for h in holes]
    assert len(holes) == TINY.depth and fractions == sorted(fractions, reverse=True)
    assert fractions[0] < float(hole.mean()) and fractions[-1] == 0
    assert all(torch.equal(a, b) for a, b in zip(holes, holes_other))
    assert torch.equal(filled[..., hole[0, 0] == 0], image[..., hole[0, 0] == 0])


def test_cli_writes_labelled_png(tmp_path: Path, capsys) -> None:
    weights = save_weights(PConvUNet(TINY).eval(), tmp_path / "tiny.safetensors")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    mask = np.zeros((60, 80), np.uint8)
    mask[20:40, 30:50] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = tmp_path / "explain.png"
    argv = [
        "explain",
        "--image",
        str(tmp_path / "a.jpg"),
        "--mask",
        str(tmp_path / "m.png"),
        "--output",
        str(out),
        "--weights",
        str(weights),
    ]
    assert main(argv) == 0
    assert "gone after encoder layer" in capsys.readouterr().out
    with Image.open(out) as img:
        assert img.format == "PNG"
        # 1 input + 1 hole + 4 layers + 1 result = 7 panels, 4 per row: 2 rows of 256-px panels with labels.
        assert img.width == 4 * (256 + 8) and img.height == 2 * (int(256 * 60 / 80) + 16 + 8)
    assert main(argv) == 2  # never overwrites without --overwrite
