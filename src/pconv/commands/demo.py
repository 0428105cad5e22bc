"""``pconv demo``: fill a generated hole in the bundled sample photo and write a before/after picture."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Inpaint the bundled sample photo (Kodak kodim23) with a drawn hole and write a side-by-side PNG."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, default=Path("out/demo.png"), help="PNG to write (default: %(default)s)")
    parser.add_argument("--weights", type=Path, default=None, help="safetensors weights (default: the shipped model)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")


def demo_hole(width: int, height: int):  # -> PIL.Image.Image
    """The demo's hole: a brush stroke and an ellipse, white = hole, (height, width) mode L."""
    from PIL import Image, ImageDraw

    hole = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(hole)
    w, h = width, height
    draw.line([(w * 0.2, h * 0.3), (w * 0.5, h * 0.6), (w * 0.8, h * 0.35)], fill=255, width=max(8, h // 25))
    draw.ellipse([w * 0.55, h * 0.65, w * 0.7, h * 0.85], fill=255)
    return hole


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from pconv.imageio import write_image
    from pconv.inference import Inpainter, default_weights_path

    if args.output.exists() and not args.overwrite:
        raise ValueError(f"{args.output} exists; pass --overwrite to replace it")
    sample = Path(__file__).resolve().parent.parent / "assets" / "kodim23.png"
    photo = Image.open(sample).convert("RGB")
    hole = demo_hole(*photo.size)
    if args.weights is None and not default_weights_path().is_file():
        import torch

        from pconv.model import PConvUNet

        torch.manual_seed(0)
        inpainter = Inpainter(model=PConvUNet(), device=args.device)
        print(
            "pconv demo: this install has no trained model, so the paper's network runs on RANDOM weights; "
            "the fill is noise, not a prediction."
        )
    else:
        inpainter = Inpainter(args.weights, device=args.device)
        print(f"pconv demo: model {args.weights or 'pconv_default (shipped)'} on the {inpainter.backend} backend")
    filled = inpainter.inpaint(photo, hole)
    holed = np.asarray(photo).copy()
    holed[np.asarray(hole) > 127] = 255
    panel = np.concatenate([holed, np.asarray(filled)], axis=1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.output, panel, overwrite=args.overwrite)
    print(f"pconv demo: wrote {args.output} (left: the photo with the hole in white, right: filled)")
    return 0
