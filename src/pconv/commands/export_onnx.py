"""``pconv export-onnx``: write the whole fill (or the network alone) as ONNX with dynamic size, checked against
PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = (
    "Export the model to ONNX (dynamic batch, height, width) and check it: the whole fill (uint8 image and white = "
    "hole mask in, filled uint8 image out) or, with --graph network, the network alone."
)

# Largest onnxruntime-vs-PyTorch difference accepted: float32 round-off (about 1e-6) for the network; for the fill,
# one level of 255 where round-off tips a value over a rounding edge.
TOLERANCE = {"network": 1e-4, "fill": 1 / 255 + 1e-6}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, required=True, help="ONNX file to write")
    parser.add_argument(
        "--weights", type=Path, default=None, help="safetensors weights (default: the model shipped with pconv, if any)"
    )
    parser.add_argument(
        "--graph",
        choices=("fill", "network"),
        default="fill",
        help="fill: the whole fill, uint8 image (N,H,W,3) and hole_mask (N,H,W) in, filled (N,H,W,3) out, the flip "
        "and shift averages inside (default; what pconv ships); network: the network alone, float image (N,3,H,W) "
        "and valid_mask (N,1,H,W) in, raw prediction out",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: %(default)s)")
    parser.add_argument(
        "--no-optimize",
        action="store_true",
        help="save the exporter's graph as it is, without ONNX Runtime's basic (portable) optimisations applied at "
        "export (the default saves them: the same output, a faster session start)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")


def run(args: argparse.Namespace) -> int:
    from pconv.export import check_onnx, export_onnx
    from pconv.inference import Inpainter, default_weights_path

    if args.weights is not None and args.weights.suffix.lower() == ".onnx":
        raise ValueError(f"--weights {args.weights} is already ONNX; pass the safetensors file it came from")
    model = Inpainter(args.weights, backend="torch", device="cpu").model
    assert model is not None
    weights = args.weights if args.weights is not None else default_weights_path()
    export_onnx(
        model,
        args.output,
        graph=args.graph,
        opset=args.opset,
        overwrite=args.overwrite,
        weights_file=weights,
        optimize=not args.no_optimize,
    )
    m = model.config.multiple
    diff = check_onnx(model, args.output)
    if args.graph == "fill":
        inputs = (
            "inputs image (N,H,W,3) uint8 RGB, hole_mask (N,H,W) uint8 (> 127 = hole), optional flip, shift, "
            "smooth (float, default 1); output filled (N,H,W,3) uint8"
        )
    else:
        inputs = "inputs image (N,3,H,W) in [0,1] and valid_mask (N,1,H,W), 1 = known"
    optimized = "" if args.no_optimize else "; pre-optimised: ONNX Runtime's basic level"
    print(
        f"pconv export-onnx: wrote {args.output} (opset {args.opset}; {inputs}; any H and W, padded to a multiple "
        f"of {m} inside the graph{optimized})"
    )
    tolerance = TOLERANCE[args.graph]
    print(f"pconv export-onnx: onnxruntime vs PyTorch, max abs difference {diff:.3g} (tolerance {tolerance:.3g})")
    if diff > tolerance:
        print(f"pconv export-onnx: the ONNX graph does not match PyTorch; do not use {args.output}")
        return 1
    return 0
