"""``pconv explain``: picture of the hole after each encoder layer, beside the input and the result."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Draw the mask after each encoder layer (the paper's mask update: the hole shrinks to nothing) as a PNG."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="image file")
    parser.add_argument("--mask", type=Path, required=True, help="mask file, white = hole")
    parser.add_argument("--output", type=Path, required=True, help="PNG to write")
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="safetensors weights (default: the shipped model, else random weights with a notice)",
    )
    parser.add_argument(
        "--max-side", type=int, default=1024, help="larger images are resized down first (default: %(default)s)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from pconv.explain import encoder_hole_masks, render_explanation
    from pconv.imageio import atomic_write, read_hole_mask, read_image
    from pconv.inference import default_weights_path
    from pconv.model import PConvUNet, load_weights
    from pconv.resize import resize_hole_mask

    if args.output.suffix.lower() != ".png":
        raise ValueError(f"--output must be a .png file, got {args.output}")
    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it")
    picture = read_image(args.image)
    hole = resize_hole_mask(read_hole_mask(args.mask), picture.size)
    weights = args.weights or (default_weights_path() if default_weights_path().is_file() else None)
    if weights is None:
        model = PConvUNet().eval()
        print(
            "pconv explain: no weights given and none shipped: the paper's network on RANDOM weights. The masks "
            "do not depend on the weights; the result panel is noise."
        )
    else:
        model = load_weights(weights)
    image = torch.from_numpy(picture.rgb).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    hole_mask = torch.from_numpy(hole.astype(np.float32))[None, None]  # (1, 1, H, W), 1 = hole
    scale = args.max_side / max(image.shape[2:])
    if scale < 1:
        size = (max(1, round(image.shape[2] * scale)), max(1, round(image.shape[3] * scale)))
        image = torch.nn.functional.interpolate(image, size=size, mode="area")
        hole_mask = (torch.nn.functional.interpolate(hole_mask, size=size, mode="area") > 0).float()
    filled, holes = encoder_hole_masks(model, image, hole_mask)
    sheet = render_explanation(image, hole_mask, holes, filled)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.output, lambda f: sheet.save(f, format="PNG"), overwrite=args.overwrite)
    gone = next((i for i, h in enumerate(holes, 1) if not h.any()), None)
    print(
        f"pconv explain: wrote {args.output}; "
        + (
            f"the hole is gone after encoder layer {gone} of {len(holes)}"
            if gone
            else f"some hole is left after all {len(holes)} encoder layers (a very large hole)"
        )
    )
    return 0
