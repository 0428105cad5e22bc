"""``pconv export-onnx``: write the network as ONNX with dynamic size and check it against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Export the model to ONNX (dynamic batch, height, width; inputs image and valid_mask) and check it."

# Largest onnxruntime-vs-PyTorch difference accepted; float32 round-off is about 1e-6.
TOLERANCE = 1e-4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, required=True, help="ONNX file to write")
    parser.add_argument(
        "--weights", type=Path, default=None, help="safetensors weights (default: the model shipped with pconv, if any)"
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")


def run(args: argparse.Namespace) -> int:
    from pconv.export import check_onnx, export_onnx
    from pconv.inference import Inpainter, default_weights_path

    if args.weights is not None and args.weights.suffix.lower() == ".onnx":
        raise ValueError(f"--weights {args.weights} is already ONNX; pass the safetensors file it came from")
    model = Inpainter(args.weights, backend="torch", device="cpu").model
    assert model is not None
    weights = args.weights if args.weights is not None else default_weights_path()
    export_onnx(model, args.output, opset=args.opset, overwrite=args.overwrite, weights_file=weights)
    m = model.config.multiple
    diff = check_onnx(model, args.output)
    print(
        f"pconv export-onnx: wrote {args.output} (opset {args.opset}; inputs image (N,3,H,W) in [0,1] and "
        f"valid_mask (N,1,H,W), 1 = known; any H and W, padded to a multiple of {m} inside the graph)"
    )
    print(f"pconv export-onnx: onnxruntime vs PyTorch, max abs difference {diff:.3g} (tolerance {TOLERANCE:g})")
    if diff > TOLERANCE:
        print(f"pconv export-onnx: the ONNX graph does not match PyTorch; do not use {args.output}")
        return 1
    return 0
