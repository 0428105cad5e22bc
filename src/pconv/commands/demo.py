"""``pconv demo``: fill a generated hole in the bundled sample photo and write a before/after picture."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Inpaint the bundled sample photo (Kodak kodim23) with a generated hole and write a side-by-side PNG."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, default=Path("out/demo.png"), help="PNG to write (default: %(default)s)")
    parser.add_argument("--weights", type=Path, default=None, help="safetensors weights (default: random weights)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from pconv.masks import hole_array_to_valid_tensor
    from pconv.model import PConvUNet, composite, load_weights

    if args.output.exists() and not args.overwrite:
        raise ValueError(f"{args.output} exists; pass --overwrite to replace it")
    sample = Path(__file__).resolve().parent.parent / "assets" / "kodim23.png"
    photo = Image.open(sample).convert("RGB")
    hole = Image.new("L", photo.size, 0)
    draw = ImageDraw.Draw(hole)
    w, h = photo.size
    draw.line([(w * 0.2, h * 0.3), (w * 0.5, h * 0.6), (w * 0.8, h * 0.35)], fill=255, width=max(8, h // 25))
    draw.ellipse([w * 0.55, h * 0.65, w * 0.7, h * 0.85], fill=255)
    hole_arr = (np.asarray(hole) > 127).astype(np.uint8)

    if args.weights is None:
        torch.manual_seed(args.seed)
        model = PConvUNet().eval()
        print(
            "pconv demo: no trained weights given, so this runs the paper's network on RANDOM weights; "
            "the fill is noise, not a prediction."
        )
    else:
        model = load_weights(args.weights)
    image = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    valid = hole_array_to_valid_tensor(hole_arr)
    with torch.inference_mode():
        pred, _ = model(image, valid)
        out = composite(image, pred.clamp(0, 1), valid)
    holed = image * valid + (1 - valid) * torch.tensor([1.0, 1.0, 1.0]).view(1, 3, 1, 1)
    panel = torch.cat([holed, out], dim=3)[0].permute(1, 2, 0).numpy()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + ".tmp.png")
    Image.fromarray((panel * 255 + 0.5).astype(np.uint8)).save(tmp)
    tmp.replace(args.output)
    print(f"pconv demo: wrote {args.output} (left: photo with the hole in white, right: filled)")
    return 0
