"""ONNX export of ``PConvUNet`` (arXiv 1804.07723) with dynamic batch, height and width, checked with onnxruntime.

The graph is ``PConvUNet.forward`` itself:
- inputs ``image`` (N, 3, H, W) float32 in [0, 1] and ``valid_mask`` (N, 1, H, W) float32 in {0, 1},
  **1 = known pixel** (the paper's M; a hole mask must be flipped first: ``valid_mask = 1 - hole_mask``);
- outputs ``output`` (N, 3, H, W), the raw prediction everywhere (about [0, 1]; keep the known pixels with
  ``valid_mask * image + (1 - valid_mask) * output``), and ``output_mask`` (N, 1, H, W).
Any H and W work: the padding to the network's multiple ``2**depth`` (256 for the paper's network), counted as
hole, and the crop back are inside the graph, so callers need not pad. The export uses PyTorch's TorchScript-based
exporter (``dynamo=False``), which records those size computations as graph operations.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pconv.inference import Inpainter
from pconv.model import PConvUNet

__all__ = ["DEFAULT_OPSET", "OnnxPredictor", "check_onnx", "export_onnx", "onnx_inpainter"]

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
INPUT_NAMES = ("image", "valid_mask")
OUTPUT_NAMES = ("output", "output_mask")


def _example_sizes(model: PConvUNet) -> list[tuple[int, int]]:
    """(H, W) sizes that are not multiples of ``2**depth``, so the in-graph padding is exercised."""
    m = model.config.multiple
    return [(m // 2 + 3, m + 5), (m + 9, m // 2 + 1)]


def export_onnx(model: PConvUNet, path: str | Path, *, opset: int = DEFAULT_OPSET, overwrite: bool = False) -> Path:
    """Write ``model`` as ONNX (dynamic N, H, W) to ``path``, atomically (temporary file, then rename).

    Args:
        model: the network; exported in eval mode (BatchNorm uses its running statistics).
        opset: ONNX opset version.
        overwrite: replace an existing file; otherwise FileExistsError.
    Returns:
        ``path``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist")
    model = model.eval().cpu()
    h, w = _example_sizes(model)[0]
    example = (torch.rand(1, model.config.in_channels, h, w), torch.ones(1, 1, h, w))
    dims = {0: "batch", 2: "height", 3: "width"}
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings from the shape checks, the exporter's deprecation note
            torch.onnx.export(
                model,
                example,
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={name: dims for name in (*INPUT_NAMES, *OUTPUT_NAMES)},
            )
        import onnx

        onnx.checker.check_model(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_onnx(
    model: PConvUNet, path: str | Path, *, sizes: list[tuple[int, int]] | None = None, batch: int = 2, seed: int = 0
) -> float:
    """Max abs difference of ``output`` between onnxruntime and PyTorch on random images and holes.

    Args:
        sizes: (H, W) to try; default two sizes that are not multiples of ``2**depth``.
        batch: images per size.
    Returns:
        The largest absolute difference over all sizes (float32 round-off, about 1e-6, for a faithful export).
    """
    predictor = OnnxPredictor(path)
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    model = model.eval().cpu()
    for h, w in sizes or _example_sizes(model):
        image = torch.rand(batch, model.config.in_channels, h, w, generator=gen)
        valid_mask = (torch.rand(batch, 1, h, w, generator=gen) > 0.3).float()
        with torch.no_grad():
            expected = model(image, valid_mask)[0]
        worst = max(worst, float((predictor(image, valid_mask) - expected).abs().max()))
    return worst


class OnnxPredictor:
    """Run an exported graph with onnxruntime: ``(image, valid_mask) -> output``, tensors in and out.

    Args:
        path: ONNX file written by ``export_onnx``.
        providers: onnxruntime execution providers (default: CPU).
    """

    def __init__(self, path: str | Path, *, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {path} (make one with `pconv export-onnx`)")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{path} is not a loadable ONNX model ({type(exc).__name__})") from None
        names = tuple(i.name for i in self.session.get_inputs())
        if names != INPUT_NAMES:
            raise ValueError(f"{path} takes inputs {names}, expected {INPUT_NAMES}; export it with `pconv export-onnx`")

    def __call__(self, image: Tensor, valid_mask: Tensor) -> Tensor:
        """(N, 3, H, W) in [0, 1], (N, 1, H, W) 1 = known -> prediction (N, 3, H, W) float32 on the CPU."""
        feeds = {"image": _numpy32(image), "valid_mask": _numpy32(valid_mask)}
        (output,) = self.session.run(["output"], feeds)
        return torch.from_numpy(output)


def _numpy32(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().float().numpy())


def onnx_inpainter(path: str | Path, **options: Any) -> Inpainter:
    """An ``Inpainter`` (same options, e.g. ``max_side``, ``dilate``) that runs an exported ONNX graph."""
    return Inpainter(predictor=OnnxPredictor(path), **options)
