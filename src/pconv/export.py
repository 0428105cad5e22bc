"""ONNX export of ``PConvUNet`` (arXiv 1804.07723) with dynamic batch, height and width, checked with onnxruntime.

Two graphs, both of the network with BatchNorm folded (``pconv.model.fuse_for_inference``; the same output to float
rounding, and fewer operations for ONNX Runtime):

``graph="fill"`` (the default, and the shipped ``pconv_default.onnx``): **the whole fill**,
``pconv.fill_graph.FillGraph``:
- inputs ``image`` (N, H, W, 3) uint8 RGB, ``hole_mask`` (N, H, W) uint8 (> 127 = hole, **white = hole**), and the
  optional scalars ``flip``, ``shift`` (() float32, default 1 = the four-pass average; 0 turns one off) and
  ``smooth`` (default 1: the smooth blend of ``pconv.smooth``; 0: the network's fill alone);
- output ``filled`` (N, H, W, 3) uint8, known pixels identical to ``image``.
Every runtime (ONNX Runtime in Python, ONNX Runtime Web in the browser) then gives the same bytes; what stays in
Python (``pconv.inference``) is windows and resizing for large photos, dilation and file handling.

``graph="network"``: ``PConvUNet.forward`` alone:
- inputs ``image`` (N, 3, H, W) float32 in [0, 1] and ``valid_mask`` (N, 1, H, W) float32 in {0, 1},
  **1 = known pixel** (the paper's M; a hole mask must be flipped first: ``valid_mask = 1 - hole_mask``);
- outputs ``output`` (N, 3, H, W), the raw prediction everywhere (about [0, 1]; keep the known pixels with
  ``valid_mask * image + (1 - valid_mask) * output``), and ``output_mask`` (N, 1, H, W).
Any H and W work: the padding to the network's multiple ``2**depth`` (256 for the paper's network), counted as
hole, and the crop back are inside the graph, so callers need not pad. The export uses PyTorch's TorchScript-based
exporter (``dynamo=False``), which records those size computations as graph operations.

The file is written **pre-optimised**: after the export, ONNX Runtime's basic graph optimisations (constant folding,
redundant and common nodes removed, shape computations simplified; 4,438 nodes become 2,622 for the shipped fill
graph) are applied once, here, and their result is what is saved. That level is the portable one: it runs before
the graph is split between execution providers and writes standard ONNX operators only, so the file runs the
same on any CPU, in the browser's WebAssembly and on WebGPU; the layout and fusion optimisations that are specific
to a CPU are left to the runtime that loads it (``pconv.backends`` keeps their result in its optimisation cache).
A session then starts without redoing that work, with the same output bytes (the shipped graph's session, with the
cache: 0.40 -> 0.13 s, ``benchmarks/RESULTS.md``).

The file's metadata (``OnnxNetwork.metadata``) records the graph (``pconv_graph``: fill or network), the network's
config (``pconv_model_config``), the offline optimisation (``pconv_optimized``: ``basic``) and, when it was exported
from a weights file, that file's SHA-256 (``pconv_weights_sha256``): the package's ``pconv_default.onnx`` is the
export of its ``pconv_default.safetensors``, and a test keeps the two together.

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

__all__ = ["DEFAULT_OPSET", "GRAPHS", "OnnxPredictor", "check_onnx", "export_onnx", "file_sha256", "onnx_inpainter"]

DEFAULT_OPSET = 17
GRAPHS = ("fill", "network")  # what export_onnx writes: the whole fill (uint8 in and out) or the network alone
# ... or one part of the fill (pconv.fill_graph.PARTS, in the order they run), for the browser page's sessions; the
# page's files are named ``<stem>.<part>.onnx`` (pconv.web_engine.manifest, tools/build_try.py)
PART_GRAPHS = ("passes", "finish")
INPUT_NAMES = ONNX_INPUTS
OUTPUT_NAMES = ("output", "output_mask")
CONFIG_KEY = "pconv_model_config"
WEIGHTS_SHA_KEY = "pconv_weights_sha256"
GRAPH_KEY = "pconv_graph"
OPTIMIZED_KEY = "pconv_optimized"

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
    graph: str = "fill",
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    weights_file: str | Path | None = None,
    optimize: bool = True,
) -> Path:
    """Write ``model``, BatchNorm folded, as ONNX (dynamic N, H, W) to ``path``, atomically (temporary file, rename).

    Args:
        model: the network; exported in eval mode (BatchNorm uses its running statistics); it is not modified.
        graph: ``"fill"``, the whole fill (uint8 image and hole mask in, filled uint8 image out; module docstring),
            or ``"network"``, the network alone (float image and valid mask in, raw prediction out), or one of
            ``PART_GRAPHS``: the fill's ``passes`` (uint8 image and hole mask in, the averaged prediction out) or its
            ``finish`` (that prediction, the image and the mask in, the filled image out).
        opset: ONNX opset version.
        overwrite: replace an existing file; otherwise FileExistsError.
        weights_file: the safetensors file ``model`` was loaded from; its SHA-256 goes into the metadata.
        optimize: save the graph after ONNX Runtime's basic (portable) optimisations (module docstring); False
            saves the exporter's graph as it is.
    Returns:
        ``path``.
    """
    import onnx
    import torch

    from pconv.model import fuse_for_inference

    if graph not in GRAPHS + PART_GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS + PART_GRAPHS}, got {graph!r}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist")
    fused = fuse_for_inference(model.cpu())
    module, example, names, dynamic = _traced_form(fused, graph)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings from the shape checks, the exporter's deprecation note
            torch.onnx.export(
                module,
                example,
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=list(names[0]),
                output_names=list(names[1]),
                dynamic_axes=dynamic,
            )
        proto = onnx.load(str(tmp))
        if graph != "network":
            scalars = {"flip": 1.0, "shift": 1.0, "smooth": 1.0}
            _default_scalars(proto, {name: scalars[name] for name in names[0] if name in scalars})
        if optimize:
            onnx.save(proto, str(tmp))
            proto = _optimized_offline(tmp)
        metadata = {GRAPH_KEY: graph, CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True)}
        if optimize:
            metadata[OPTIMIZED_KEY] = "basic"
        if weights_file is not None:
            metadata[WEIGHTS_SHA_KEY] = file_sha256(weights_file)
        onnx.helper.set_model_props(proto, metadata)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _optimized_offline(path: Path) -> Any:
    """The ONNX model at ``path`` after ONNX Runtime's basic optimisations, as an ``onnx.ModelProto``.

    Basic is the level that stays portable (module docstring); the opset imports ONNX Runtime adds for its own
    domains are dropped again where no node uses them, so the file declares only what it needs.
    """
    import onnx
    import onnxruntime as ort

    out = path.with_name(path.name + ".basic")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3  # errors only: the exporter's initializers for flip, shift, smooth are inputs too
    try:
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        proto = onnx.load(str(out))
    finally:
        out.unlink(missing_ok=True)
    used = {node.domain for node in proto.graph.node} | {""}
    kept = [op for op in proto.opset_import if op.domain in used]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)
    del proto.metadata_props[:]  # set afresh by the caller, in its order
    return proto


def _traced_form(fused: PConvUNet, graph: str) -> tuple[Any, tuple, tuple, dict]:
    """(module, example inputs, (input names, output names), dynamic axes) for ``torch.onnx.export``."""
    import torch

    h, w = _example_sizes(fused)[0]
    if graph == "network":
        example = (torch.rand(1, fused.config.in_channels, h, w), torch.ones(1, 1, h, w))
        dims = {0: "batch", 2: "height", 3: "width"}
        return fused, example, (INPUT_NAMES, OUTPUT_NAMES), {n: dims for n in (*INPUT_NAMES, *OUTPUT_NAMES)}
    from pconv.fill_graph import FILL_INPUTS, FILL_OUTPUTS, PARTS, FillGraph, FillPart

    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, h, w, 3), generator=gen, dtype=torch.uint8)
    hole_mask = (torch.rand(1, h, w, generator=gen) > 0.7).to(torch.uint8) * 255
    one = torch.tensor(1.0)
    # the page's passes graph runs its four variants as one network call: a third of the set-up in ONNX Runtime Web
    fill = FillGraph(fused, one_call=graph == "passes").eval()
    dims = {0: "batch", 1: "height", 2: "width"}
    dynamic = {"image": dims, "hole_mask": dims, "filled": dims, "prediction": {0: "batch", 2: "height", 3: "width"}}
    if graph == "fill":
        return fill, (image, hole_mask, one, one, one), (FILL_INPUTS, FILL_OUTPUTS), dynamic
    with torch.no_grad():
        prediction = fill.passes(image, hole_mask, one, one)
    example = {"passes": (image, hole_mask, one, one), "finish": (prediction, image, hole_mask, one)}[graph]
    names = PARTS[graph]
    return (
        FillPart(fill, graph).eval(),
        example,
        names,
        {k: v for k, v in dynamic.items() if k in {*names[0], *names[1]}},
    )


def _default_scalars(proto: Any, defaults: dict[str, float]) -> None:
    """Give the graph inputs ``defaults`` a value (an initializer of the same name), so callers may leave them out."""
    import onnx

    for name, value in defaults.items():
        proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array(value, dtype=np.float32), name))


def check_onnx(
    model: PConvUNet, path: str | Path, *, sizes: list[tuple[int, int]] | None = None, batch: int = 2, seed: int = 0
) -> float:
    """Max abs difference between onnxruntime on ``path`` and PyTorch on ``model``, on random images and holes.

    A network graph is compared on its raw ``output``; a fill graph on its filled 8-bit image against PyTorch's
    four-pass fill (``pconv.inference.averaged_predictor``, then ``pconv.smooth.blend``, composited and rounded),
    in units of [0, 1].

    Args:
        model: the (unfused) network the file was exported from.
        sizes: (H, W) to try; default two sizes that are not multiples of ``2**depth``.
        batch: images per size.
    Returns:
        The largest absolute difference over all sizes: float32 round-off (about 1e-6) for a faithful network
        graph; 0 or one level (1/255, a value that float round-off tipped over a rounding edge) for a fill graph.
    """
    import torch

    from pconv.inference import averaged_predictor
    from pconv.smooth import blend

    network = OnnxNetwork(path)
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    model = model.eval().cpu()

    def torch_net(x: np.ndarray, m: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            inputs = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x, m))
            return model(*inputs)[0].numpy()

    for h, w in sizes or _example_sizes(model):
        image = torch.rand(batch, model.config.in_channels, h, w, generator=gen).numpy()
        valid_mask = (torch.rand(batch, 1, h, w, generator=gen) > 0.3).float().numpy()
        if network.graph == "fill":
            pixels = np.rint(image * 255).astype(np.uint8)  # (N, 3, H, W)
            image = pixels.astype(np.float32) / 255
            got = network.fill(pixels.transpose(0, 2, 3, 1), np.where(valid_mask[:, 0] > 0, 0, 255).astype(np.uint8))
            averaged = torch.from_numpy(averaged_predictor(torch_net)(image, valid_mask))
            with torch.no_grad():
                pred = np.clip(blend(averaged, torch.from_numpy(image), torch.from_numpy(valid_mask)).numpy(), 0, 1)
            expected = np.rint(np.where(valid_mask > 0, image, pred) * 255).transpose(0, 2, 3, 1)
            worst = max(worst, float(np.abs(got.astype(np.float64) - expected).max()) / 255)
        else:
            worst = max(worst, float(np.abs(network(image, valid_mask) - torch_net(image, valid_mask)).max()))
    return worst


def onnx_inpainter(path: str | Path, **options: Any) -> Inpainter:
    """An ``Inpainter`` (same options, e.g. ``max_side``, ``dilate``) that runs an exported ONNX graph."""
    from pconv.inference import Inpainter

    return Inpainter(path, backend="onnx", **options)
