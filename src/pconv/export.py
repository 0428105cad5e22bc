"""ONNX export of ``PConvUNet`` (arXiv 1804.07723) with dynamic batch, height and width, checked with onnxruntime.

The graph is ``PConvUNet.forward`` of the network with BatchNorm folded (``pconv.model.fuse_for_inference``; the
same output to float rounding, and fewer operations for ONNX Runtime):
- inputs ``image`` (N, 3, H, W) float32 in [0, 1] and ``valid_mask`` (N, 1, H, W) float32 in {0, 1},
  **1 = known pixel** (the paper's M; a hole mask must be flipped first: ``valid_mask = 1 - hole_mask``);
- outputs ``output`` (N, 3, H, W), the raw prediction everywhere (about [0, 1]; keep the known pixels with
  ``valid_mask * image + (1 - valid_mask) * output``), and ``output_mask`` (N, 1, H, W).
Any H and W work: the padding to the network's multiple ``2**depth`` (256 for the paper's network), counted as
hole, and the crop back are inside the graph, so callers need not pad. The export uses PyTorch's TorchScript-based
exporter (``dynamo=False``), which records those size computations as graph operations.

The file's metadata (``OnnxNetwork.metadata``) records the network's config (``pconv_model_config``) and, when it was
exported from a weights file, that file's SHA-256 (``pconv_weights_sha256``): the package's
``pconv_default.onnx`` is the export of its ``pconv_default.safetensors``, and a test keeps the two together.

Running an exported graph needs only onnxruntime: ``pconv.backends.OnnxNetwork`` (no torch import), also reached
as ``OnnxPredictor`` here, and ``onnx_inpainter(path)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pconv.backends import ONNX_INPUTS, OnnxNetwork

if TYPE_CHECKING:
    from pconv.inference import Inpainter
    from pconv.model import PConvUNet

__all__ = ["DEFAULT_OPSET", "OnnxPredictor", "check_onnx", "export_onnx", "file_sha256", "onnx_inpainter"]

DEFAULT_OPSET = 17
INPUT_NAMES = ONNX_INPUTS
OUTPUT_NAMES = ("output", "output_mask")
CONFIG_KEY = "pconv_model_config"
WEIGHTS_SHA_KEY = "pconv_weights_sha256"

# The onnxruntime runner: ``(image, valid_mask) -> output`` on float32 numpy arrays (pconv.backends).
OnnxPredictor = OnnxNetwork


def _example_sizes(model: PConvUNet) -> list[tuple[int, int]]:
    """(H, W) sizes that are not multiples of ``2**depth``, so the in-graph padding is exercised."""
    m = model.config.multiple
    return [(m // 2 + 3, m + 5), (m + 9, m // 2 + 1)]


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_onnx(
    model: PConvUNet,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    weights_file: str | Path | None = None,
) -> Path:
    """Write ``model``, BatchNorm folded, as ONNX (dynamic N, H, W) to ``path``, atomically (temporary file, rename).

    Args:
        model: the network; exported in eval mode (BatchNorm uses its running statistics); it is not modified.
        opset: ONNX opset version.
        overwrite: replace an existing file; otherwise FileExistsError.
        weights_file: the safetensors file ``model`` was loaded from; its SHA-256 goes into the metadata.
    Returns:
        ``path``.
    """
    import onnx
    import torch

    from pconv.model import fuse_for_inference

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist")
    fused = fuse_for_inference(model.cpu())
    h, w = _example_sizes(fused)[0]
    example = (torch.rand(1, fused.config.in_channels, h, w), torch.ones(1, 1, h, w))
    dims = {0: "batch", 2: "height", 3: "width"}
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings from the shape checks, the exporter's deprecation note
            torch.onnx.export(
                fused,
                example,
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={name: dims for name in (*INPUT_NAMES, *OUTPUT_NAMES)},
            )
        graph = onnx.load(str(tmp))
        metadata = {CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True)}
        if weights_file is not None:
            metadata[WEIGHTS_SHA_KEY] = file_sha256(weights_file)
        onnx.helper.set_model_props(graph, metadata)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_onnx(
    model: PConvUNet, path: str | Path, *, sizes: list[tuple[int, int]] | None = None, batch: int = 2, seed: int = 0
) -> float:
    """Max abs difference of ``output`` between onnxruntime and PyTorch on random images and holes.

    Args:
        model: the (unfused) network the file was exported from.
        sizes: (H, W) to try; default two sizes that are not multiples of ``2**depth``.
        batch: images per size.
    Returns:
        The largest absolute difference over all sizes (float32 round-off, about 1e-6, for a faithful export).
    """
    import torch

    network = OnnxNetwork(path)
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    model = model.eval().cpu()
    for h, w in sizes or _example_sizes(model):
        image = torch.rand(batch, model.config.in_channels, h, w, generator=gen)
        valid_mask = (torch.rand(batch, 1, h, w, generator=gen) > 0.3).float()
        with torch.no_grad():
            expected = model(image, valid_mask)[0].numpy()
        worst = max(worst, float(np.abs(network(image.numpy(), valid_mask.numpy()) - expected).max()))
    return worst


def onnx_inpainter(path: str | Path, **options: Any) -> Inpainter:
    """An ``Inpainter`` (same options, e.g. ``max_side``, ``dilate``) that runs an exported ONNX graph."""
    from pconv.inference import Inpainter

    return Inpainter(path, backend="onnx", **options)
