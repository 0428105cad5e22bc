"""Speed and memory benchmarks of the partial-convolution U-Net against its floor and a reference.

Three networks of exactly the same shapes (arXiv 1804.07723, section 3.3) are timed in one process, runs
interleaved (A, B, C, A, B, C, ...), medians after warm-up:

- ``PConvUNet``, plain (as trained) and fused for inference (``pconv.model.fuse_for_inference``);
- ``PlainUNet``: the floor, the same convolutions, BatchNorm, activations, upsampling and concatenations with
  ordinary zero-padded convolutions and no mask at all;
- ``ReferencePConvUNet``: a REFERENCE ONLY partial-convolution network written the way common public
  re-implementations do it (NVIDIA's layer with ``multi_channel=True``): a full C-channel mask at every layer,
  convolved with a (C_out, C_in, k, k) ones kernel. It is here to be measured, never used by the package.

``run_benchmarks`` runs every section and returns a JSON-able dict; ``pconv.bench_report.write_outputs`` turns
it into ``results.json``, ``RESULTS.md`` and a PNG chart. The ``pconv bench`` command and
``benchmarks/bench.py`` call them.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv.config import ModelConfig
from pconv.model import PConvUNet, fuse_for_inference

__all__ = [
    "BenchSettings",
    "PlainUNet",
    "ReferencePConv2d",
    "ReferencePConvUNet",
    "bench_valid_mask",
    "interleaved",
    "print_table",
    "run_benchmarks",
]

log = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. The defaults are the full CPU benchmark of the paper's network.

    Attributes:
        model: the network's shape (default: the paper's).
        size: side of the square input of the main comparison (512 in the paper).
        hole_ratio: hole fraction of the main comparison's mask.
        hole_ratios: hole fractions of the hole-independence section.
        sizes: (H, W) of the size/memory section, each measured in a fresh subprocess.
        large: (H, W) of the large image (4000x3000 photo, landscape), also in a fresh subprocess.
        train_size, train_batch, train_steps: the training-throughput section.
        threads: ``torch.set_num_threads`` (also ONNX Runtime's intra-op threads).
        warmup, repeats: untimed and timed rounds of each interleaved comparison.
        size_repeats: timed forwards per size up to 1024x1024 in the memory section (after one warm-up);
            larger sizes are timed once, without warm-up.
        compile: include ``torch.compile`` (minutes of compilation for the paper's network on 2 cores).
        onnx: include ONNX Runtime (CPU execution provider).
        device: ``"cpu"`` runs the CPU sections; ``"cuda"`` (or another device) runs the GPU section.
        gpu_batch: batch of the GPU throughput section.
        cuda_graphs: capture the batch-1 GPU forwards in CUDA graphs (CUDA only).
        channels_last: layout of the fused model in the size/memory section (channels-last also avoids the
            im2col buffer of the layers PyTorch runs through its slow NCHW path).
        memory_cap_gib: data-segment cap of each memory subprocess, so a huge forward fails with an error
            instead of pushing other processes out of memory.
        seed: weights, BatchNorm statistics and masks.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    size: int = 512
    hole_ratio: float = 0.3
    hole_ratios: tuple[float, ...] = (0.0, 0.3, 0.6)
    sizes: tuple[tuple[int, int], ...] = ((256, 256), (512, 512), (1024, 1024), (2048, 2048))
    large: tuple[int, int] = (3000, 4000)
    train_size: int = 256
    train_batch: int = 6
    train_steps: int = 4
    threads: int = 2
    warmup: int = 2
    repeats: int = 7
    size_repeats: int = 3
    compile: bool = True
    onnx: bool = True
    device: str = "cpu"
    gpu_batch: int = 64
    cuda_graphs: bool = True
    channels_last: bool = True
    memory_cap_gib: float = 12.0
    seed: int = 0

    @classmethod
    def quick(cls, **overrides: Any) -> BenchSettings:
        """A tiny model and tiny sizes: seconds, for tests and smoke runs (figures mean nothing)."""
        base: dict[str, Any] = dict(
            model=ModelConfig(depth=4, width=0.125),
            size=64,
            sizes=((32, 32),),
            large=(72, 96),
            train_size=32,
            train_batch=2,
            train_steps=1,
            warmup=1,
            repeats=2,
            size_repeats=1,
            compile=False,
            gpu_batch=4,
            memory_cap_gib=8.0,
        )
        base.update(overrides)
        return cls(**base)


# ----------------------------------------------------------------------------------------------- networks


class _PlainBlock(nn.Module):
    """Convolution, optional BatchNorm, optional activation: ``PConvBlock`` without the mask."""

    def __init__(self, c_in: int, c_out: int, k: int, *, stride: int, bn: bool, activation: str | None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=not bn)
        self.bn = nn.BatchNorm2d(c_out) if bn else None
        self.act = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x) if self.act is not None else x


def _activation(name: str | None) -> nn.Module | None:
    return {"relu": nn.ReLU(inplace=True), "leaky": nn.LeakyReLU(0.2, inplace=True), None: None}[name]


def _unet_blocks(config: ModelConfig, make: Callable[..., nn.Module]) -> tuple[nn.ModuleList, nn.ModuleList]:
    """Encoder and decoder blocks of the paper's U-Net shapes, built by ``make(c_in, c_out, k, **kw)``."""
    kernels, channels, c_img = config.kernels, config.channels, config.in_channels
    encoder = nn.ModuleList(
        make(c_img if i == 0 else channels[i - 1], c, k, stride=2, bn=i > 0, activation="relu")
        for i, (k, c) in enumerate(zip(kernels, channels))
    )
    decoder = nn.ModuleList()
    for i in range(config.depth):
        skip = c_img if i == 0 else channels[i - 1]
        decoder.append(make(channels[i] + skip, skip, 3, stride=1, bn=i > 0, activation="leaky" if i else None))
    return encoder, decoder


class PlainUNet(nn.Module):
    """The floor: ``PConvUNet``'s exact shapes with ordinary convolutions and no mask.

    Its state dict has the same keys as ``PConvUNet``'s, so ``load_state_dict(pconv_model.state_dict())`` works.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.encoder, self.decoder = _unet_blocks(self.config, _PlainBlock)

    def forward(self, image: Tensor) -> Tensor:
        """image (N, C, H, W) in [0, 1] -> (N, C, H, W); padded to a multiple of ``2**depth`` and cropped back."""
        h, w = image.shape[2:]
        m = self.config.multiple
        x = F.pad(image * 2 - 1, (0, (-w) % m, 0, (-h) % m))
        feats = [x]
        for block in self.encoder:
            x = block(x)
            feats.append(x)
        for i in reversed(range(self.config.depth)):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = self.decoder[i](torch.cat([x, feats[i]], dim=1))
        return (x[:, :, :h, :w] + 1) / 2

    def fold_batchnorm(self) -> PlainUNet:
        """Fold every BatchNorm into its convolution (eval mode), in place; returns self."""
        self.eval()
        for block in [*self.encoder, *self.decoder]:
            if block.bn is not None:
                block.conv = nn.utils.fusion.fuse_conv_bn_eval(block.conv, block.bn)
                block.bn = None
        return self


class ReferencePConv2d(nn.Conv2d):
    """REFERENCE ONLY (benchmark baseline): partial convolution as common re-implementations write it.

    The mask has one channel per input channel and is convolved with a (C_out, C_in, k, k) ones kernel at
    every layer (as costly as the feature convolution itself); the new mask has C_out channels. The formula is
    the paper's (eq. 1-2, ``sum(1) = C_in * k * k``), so its outputs match ``PartialConv2d`` in multi-channel
    mode; only the cost differs. Not used by the package.
    """

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, *, bias: bool) -> None:
        super().__init__(c_in, c_out, k, stride, padding, bias=bias)
        self.register_buffer("mask_kernel", torch.ones(c_out, c_in, k, k), persistent=False)

    def forward(self, x: Tensor, valid_mask: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """x, valid_mask (N, C_in, H, W), 1 = known -> out, new mask (N, C_out, H', W')."""
        with torch.no_grad():
            msum = F.conv2d(valid_mask, self.mask_kernel, None, self.stride, self.padding)  # (N, C_out, H', W')
            new_mask = msum.clamp(0, 1)
            ratio = self.mask_kernel[0].numel() / (msum + 1e-8) * new_mask
        raw = self._conv_forward(x * valid_mask, self.weight, None)
        out = raw * ratio
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1) * new_mask
        return out, new_mask


class _ReferenceBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, *, stride: int, bn: bool, activation: str | None) -> None:
        super().__init__()
        self.conv = ReferencePConv2d(c_in, c_out, k, stride, k // 2, bias=not bn)
        self.bn = nn.BatchNorm2d(c_out) if bn else None
        self.act = _activation(activation)

    def forward(self, x: Tensor, valid_mask: Tensor) -> tuple[Tensor, Tensor]:
        x, valid_mask = self.conv(x, valid_mask)
        if self.bn is not None:
            x = self.bn(x)
        return (self.act(x) if self.act is not None else x), valid_mask


class ReferencePConvUNet(nn.Module):
    """REFERENCE ONLY (benchmark baseline): the paper's U-Net with ``ReferencePConv2d`` (C-channel masks).

    Same state-dict keys as ``PConvUNet``. Masks are upsampled and concatenated channel by channel with the
    features, as in common re-implementations.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.encoder, self.decoder = _unet_blocks(self.config, _ReferenceBlock)

    def forward(self, image: Tensor, valid_mask: Tensor) -> tuple[Tensor, Tensor]:
        """image (N, C, H, W) in [0, 1], valid_mask (N, 1, H, W) 1 = known -> output (N, C, H, W), its mask."""
        h, w = image.shape[2:]
        m = self.config.multiple
        pad = (0, (-w) % m, 0, (-h) % m)
        x = F.pad(image * 2 - 1, pad)
        mask = F.pad(valid_mask.expand_as(image), pad)  # (N, C, H, W): one mask channel per image channel
        feats, masks = [x], [mask]
        for block in self.encoder:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        for i in reversed(range(self.config.depth)):
            x = torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), feats[i]], dim=1)
            mask = torch.cat([F.interpolate(mask, scale_factor=2.0, mode="nearest"), masks[i]], dim=1)
            x, mask = self.decoder[i](x, mask)
        return (x[:, :, :h, :w] + 1) / 2, mask[:, :, :h, :w]


# ------------------------------------------------------------------------------------------------ helpers


def bench_valid_mask(n: int, h: int, w: int, hole_ratio: float, *, seed: int = 0) -> Tensor:
    """A blobby valid mask whose hole fraction is ``hole_ratio`` (to one pixel).

    Returns:
        (N, 1, H, W) float32 in {0, 1}, 1 = known pixel.
    """
    if not 0 <= hole_ratio < 1:
        raise ValueError(f"hole_ratio must be in [0, 1), got {hole_ratio}")
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, max(2, h // 32), max(2, w // 32), generator=gen)
    field_ = F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)
    holes = round(hole_ratio * h * w)
    valid = torch.ones(n, 1, h, w)
    if holes:
        # The `holes` highest values of the smooth field become hole: blobs of an exact total area.
        idx = field_.flatten(1).topk(holes, dim=1).indices
        valid.view(n, -1).scatter_(1, idx, 0.0)
    return valid


def randomize_batchnorm(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random running statistics and affine parameters (so folding is not trivial)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            c = bn.num_features
            bn.running_mean.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
            bn.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            bn.weight.copy_(torch.rand(c, generator=gen) + 0.5)
            bn.bias.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
    return model


def build_networks(config: ModelConfig, *, seed: int = 0) -> dict[str, nn.Module]:
    """The networks under test, in eval mode and sharing one set of weights.

    Returns:
        ``pconv`` (plain), ``pconv_fused``, ``floor``, ``floor_fused`` (BatchNorm folded), ``reference``.
    """
    torch.manual_seed(seed)
    pconv = randomize_batchnorm(PConvUNet(config), seed=seed).eval()
    state = pconv.state_dict()
    floor, floor_fused, reference = PlainUNet(config), PlainUNet(config), ReferencePConvUNet(config)
    for net in (floor, floor_fused, reference):
        net.load_state_dict(state)
    return {
        "pconv": pconv,
        "pconv_fused": fuse_for_inference(pconv),
        "floor": floor.eval(),
        "floor_fused": floor_fused.fold_batchnorm(),
        "reference": reference.eval(),
    }


def interleaved(
    fns: Mapping[str, Callable[[], object]], *, warmup: int, repeats: int, sync: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Time each callable ``repeats`` times, round-robin (A, B, C, A, B, C, ...), after ``warmup`` rounds.

    Returns:
        name -> list of wall-clock seconds, one per round.
    """
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return times


def summarize(times: list[float]) -> dict[str, Any]:
    """Median, min and max of a list of seconds, plus the raw list."""
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "times_s": times}


def print_table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[object]], out: Path | None, *, note: str = ""
) -> str:
    """A Markdown section (``## title``, ``note``, a table), printed, and appended to ``out`` if given; returns it."""
    lines = [
        f"## {title}",
        "",
        *([note, ""] if note else []),
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    text = "\n".join([*lines, ""])
    print(text)
    if out is not None:
        with out.open("a") as f:
            f.write("\n" + text)
    return text


def _forward(model: nn.Module, image: Tensor, valid_mask: Tensor) -> Callable[[], object]:
    """A no-argument inference call of ``model`` (the floor takes no mask)."""
    if isinstance(model, PlainUNet):
        return lambda: model(image)
    return lambda: model(image, valid_mask)


def machine_info() -> dict[str, Any]:
    """CPU model, core count, torch version, platform and date."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if hasattr(os, "getloadavg"):
        info["loadavg"] = " ".join(f"{x:.1f}" for x in os.getloadavg())  # other work on the machine
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


# ------------------------------------------------------------------------------------------- CPU sections


def bench_forward(s: BenchSettings, nets: Mapping[str, nn.Module]) -> dict[str, Any]:
    """Batch-1 ``size``x``size`` forward latency of every network and layout, interleaved in one run."""
    image = torch.rand(1, 3, s.size, s.size, generator=torch.Generator().manual_seed(s.seed))
    valid = bench_valid_mask(1, s.size, s.size, s.hole_ratio, seed=s.seed)
    cl = torch.channels_last
    fused_cl = fuse_for_inference(nets["pconv"], channels_last=True)
    floor_cl = copy.deepcopy(nets["floor"]).to(memory_format=cl)
    calls = {name: _forward(net, image, valid) for name, net in nets.items()}
    image_cl = image.contiguous(memory_format=cl)
    calls["pconv_fused_channels_last"] = _forward(fused_cl, image, valid)  # the model switches layout itself
    calls["floor_channels_last"] = _forward(floor_cl, image_cl, valid)
    with torch.inference_mode():
        times = interleaved(calls, warmup=s.warmup, repeats=s.repeats)
    out = {name: summarize(t) for name, t in times.items()}
    floor = out["floor"]["median_s"]
    for entry in out.values():
        entry["vs_floor"] = entry["median_s"] / floor
    return {"size": s.size, "hole_ratio": s.hole_ratio, "results": out}


def bench_holes(s: BenchSettings, nets: Mapping[str, nn.Module]) -> dict[str, Any]:
    """Latency of the plain and fused ``PConvUNet`` at each hole ratio, interleaved in one run."""
    image = torch.rand(1, 3, s.size, s.size, generator=torch.Generator().manual_seed(s.seed))
    calls = {}
    for ratio in s.hole_ratios:
        valid = bench_valid_mask(1, s.size, s.size, ratio, seed=s.seed)
        for name in ("pconv_fused", "pconv"):
            calls[f"{name}@{ratio}"] = _forward(nets[name], image, valid)
    with torch.inference_mode():
        times = interleaved(calls, warmup=s.warmup, repeats=s.repeats)
    out: dict[str, Any] = {"size": s.size, "hole_ratios": list(s.hole_ratios)}
    for name in ("pconv_fused", "pconv"):
        medians = [statistics.median(times[f"{name}@{r}"]) for r in s.hole_ratios]
        out[name] = {
            "median_s": medians,
            "times_s": [times[f"{name}@{r}"] for r in s.hole_ratios],
            "spread": (max(medians) - min(medians)) / min(medians),
        }
    return out


def bench_training(s: BenchSettings) -> dict[str, Any]:
    """Training images/s: forward, L1 loss, backward and an Adam step on ``PConvUNet`` in train mode."""
    torch.manual_seed(s.seed)
    model = PConvUNet(s.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    gen = torch.Generator().manual_seed(s.seed)
    target = torch.rand(s.train_batch, 3, s.train_size, s.train_size, generator=gen)
    valid = bench_valid_mask(s.train_batch, s.train_size, s.train_size, s.hole_ratio, seed=s.seed)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        output, _ = model(target * valid, valid)
        F.l1_loss(output, target).backward()
        optimizer.step()

    step_s = summarize(interleaved({"step": step}, warmup=1, repeats=s.train_steps)["step"])
    return {
        "size": s.train_size,
        "batch": s.train_batch,
        "step": step_s,
        "images_per_s": s.train_batch / step_s["median_s"],
    }


def _onnx_session(model: nn.Module, inputs: tuple[Tensor, ...], path: Path, threads: int) -> Any:
    """Export ``model`` with the TorchScript-based exporter and open it in ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    names = ["image", "valid_mask"][: len(inputs)]
    torch.onnx.export(model, inputs, str(path), input_names=names, opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # No busy-waiting between runs: spinning ORT threads would steal the CPU from the interleaved torch runs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bench_fast_paths(s: BenchSettings, nets: Mapping[str, nn.Module]) -> dict[str, Any]:
    """Eager, ``torch.compile`` and ONNX Runtime against the eager floor, interleaved in one run."""
    image = torch.rand(1, 3, s.size, s.size, generator=torch.Generator().manual_seed(s.seed))
    valid = bench_valid_mask(1, s.size, s.size, s.hole_ratio, seed=s.seed)
    calls = {name: _forward(nets[name], image, valid) for name in ("floor", "floor_fused", "pconv_fused")}
    fused_cl = fuse_for_inference(nets["pconv"], channels_last=True)
    calls["pconv_fused_channels_last"] = _forward(fused_cl, image, valid)
    notes: dict[str, Any] = {}
    with torch.inference_mode():
        reference, _ = nets["pconv_fused"](image, valid)
    with tempfile.TemporaryDirectory() as tmp:
        if s.onnx:
            _add_onnx_calls(s, nets, image, valid, reference, Path(tmp), calls, notes)
        if s.compile:
            _add_compiled_call(nets["pconv_fused"], image, valid, reference, calls, notes)
        with torch.inference_mode():
            times = interleaved(calls, warmup=s.warmup, repeats=s.repeats)
    out = {name: summarize(t) for name, t in times.items()}
    floor = out["floor"]["median_s"]
    for entry in out.values():
        entry["vs_floor"] = entry["median_s"] / floor
    pconv_paths = {k: v["median_s"] for k, v in out.items() if k.startswith("pconv")}
    fastest = min(pconv_paths, key=pconv_paths.__getitem__)
    return {"size": s.size, "results": out, "notes": notes, "fastest_pconv": fastest}


def _add_onnx_calls(
    s: BenchSettings,
    nets: Mapping[str, nn.Module],
    image: Tensor,
    valid: Tensor,
    reference: Tensor,
    tmp: Path,
    calls: dict[str, Callable[[], object]],
    notes: dict[str, Any],
) -> None:
    try:
        t0 = time.perf_counter()
        session = _onnx_session(nets["pconv_fused"], (image, valid), tmp / "pconv.onnx", s.threads)
        notes["onnx_export_s"] = time.perf_counter() - t0
        feeds = {"image": image.numpy(), "valid_mask": valid.numpy()}
        got = torch.from_numpy(session.run(None, feeds)[0])
        notes["onnxruntime_max_abs_diff"] = float((got - reference).abs().max())
        calls["pconv_onnxruntime"] = lambda: session.run(None, feeds)
        floor_session = _onnx_session(nets["floor_fused"], (image,), tmp / "floor.onnx", s.threads)
        calls["floor_onnxruntime"] = lambda: floor_session.run(None, {"image": feeds["image"]})
    except (ImportError, RuntimeError, ValueError, OSError) as exc:  # a missing or failing exporter is reported
        notes["onnx_error"] = f"{type(exc).__name__}: {exc}"[:300]


def _add_compiled_call(
    model: nn.Module,
    image: Tensor,
    valid: Tensor,
    reference: Tensor,
    calls: dict[str, Callable[[], object]],
    notes: dict[str, Any],
) -> None:
    try:
        compiled = torch.compile(model)
        t0 = time.perf_counter()
        with torch.inference_mode():
            got, _ = compiled(image, valid)
        notes["compile_s"] = time.perf_counter() - t0
        notes["compiled_max_abs_diff"] = float((got - reference).abs().max())
        calls["pconv_compiled"] = lambda: compiled(image, valid)
    except Exception as exc:  # noqa: BLE001 - inductor raises many types; a failed compile is a result to report
        notes["compile_error"] = f"{type(exc).__name__}: {exc}"[:300]


# ------------------------------------------------------------------------------ sizes, in fresh subprocesses


def measure_size(s: BenchSettings, h: int, w: int) -> dict[str, Any]:
    """Latency and peak resident memory of the fused model at (h, w), in a fresh Python process.

    Uses ``pconv.inference.Inpainter`` (the large-image strategy) when it exists and the image is larger
    than ``s.sizes``' largest side, a whole-image forward otherwise.
    """
    spec = {
        "model": s.model.to_dict(),
        "h": h,
        "w": w,
        "threads": s.threads,
        "repeats": s.size_repeats,
        "seed": s.seed,
        "hole_ratio": s.hole_ratio,
        "cap_bytes": int(s.memory_cap_gib * 1024**3),
        "channels_last": s.channels_last,
        "use_inpainter": max(h, w) > max(max(hw) for hw in s.sizes),
    }
    src = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    code = "import sys; from pconv.bench import _size_child; _size_child(sys.argv[1])"
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, env=env, timeout=3600
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"h": h, "w": w, "error": f"exit {proc.returncode}: {tail}"[:300]}
    return json.loads(lines[-1])


def _peak_rss_mib() -> float:
    """Peak resident set of this process's address space in MiB: ``VmHWM`` (Linux), else ``ru_maxrss``.

    ``ru_maxrss`` of a fresh subprocess can report its parent's peak (Linux carries it across fork and exec);
    ``VmHWM`` belongs to the address space that exec created.
    """
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / MiB


def _size_child(spec_json: str) -> None:
    """Entry point of ``measure_size``'s subprocess: prints one JSON line."""
    import resource

    spec = json.loads(spec_json)
    # Cap the data segment (which includes anonymous mmaps) so a forward too big for the machine fails with
    # an error in this process rather than pushing other processes out of memory.
    resource.setrlimit(resource.RLIMIT_DATA, (spec["cap_bytes"], spec["cap_bytes"]))
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    model = PConvUNet(ModelConfig.from_dict(spec["model"]))
    model = fuse_for_inference(randomize_batchnorm(model), channels_last=spec["channels_last"])
    gc.collect()
    h, w = spec["h"], spec["w"]
    call, strategy = _size_call(model, h, w, spec["hole_ratio"], seed=spec["seed"], use_inpainter=spec["use_inpainter"])
    gc.collect()
    rss_before = _rss_mib()
    small = h * w <= 1024 * 1024  # small sizes get a warm-up call; a large one is timed once, cold
    times = []
    with torch.inference_mode():
        if small:
            call()
        for _ in range(spec["repeats"] if small else 1):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
    peak = _peak_rss_mib()
    result = {"h": h, "w": w, "strategy": strategy, "rss_before_mib": rss_before, "peak_rss_mib": peak}
    print(json.dumps({**result, **summarize(times)}))


def _size_call(
    model: PConvUNet, h: int, w: int, hole_ratio: float, *, seed: int, use_inpainter: bool
) -> tuple[Callable[[], object], str]:
    """The call to time at one size, and its name: the large-image strategy if asked and available."""
    valid = bench_valid_mask(1, h, w, hole_ratio, seed=seed)  # (1, 1, H, W), 1 = known
    image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
    layout = ", channels_last" if model.channels_last else ""
    if use_inpainter:
        try:
            from pconv.inference import Inpainter  # the large-image strategy, when installed
        except ImportError:
            log.warning("pconv.inference.Inpainter not available: timing a whole-image forward")
        else:
            # uint8 (H, W, 3) RGB and (H, W) hole mask, 255 = hole: what a user passes.
            rgb = (image[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            hole = ((1 - valid[0, 0]) * 255).to(torch.uint8).numpy()
            # one pass: the network's time
            inpainter = Inpainter(model=model, device="cpu", flip_average=False, shift_average=False)
            name = f"Inpainter (max_side {inpainter.max_side}), fused model{layout}"
            return (lambda: inpainter(rgb, hole)), name
    return (lambda: model(image, valid)), f"whole-image forward (fused{layout})"


# ------------------------------------------------------------------------------------------------ GPU section


def _cuda_graph(fn: Callable[[], object]) -> Callable[[], object]:
    """Capture ``fn`` (static inputs) in a CUDA graph after a warm-up on a side stream; returns its replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def bench_gpu(s: BenchSettings) -> dict[str, Any]:
    """Batch-1 forward in fp32 and bf16 (with CUDA graphs on CUDA) and batched bf16 throughput.

    bf16 means weights and activations in bf16 with the mask path in fp32 (the layer computes its mask sums
    in fp32 whatever the feature dtype). Runs on any device; CUDA graphs only on CUDA, compilation only if
    ``s.compile``.
    """
    device = torch.device(s.device)
    nets = build_networks(s.model, seed=s.seed)
    is_cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if is_cuda else None
    if is_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out: dict[str, Any] = {"device": str(device), "size": s.size, "latency": {}, "throughput": {}}
    names = ("floor", "floor_fused", "pconv_fused")
    for dtype in (torch.float32, torch.bfloat16):
        models = {n: copy.deepcopy(nets[n]).to(device, dtype) for n in names}
        image = torch.rand(1, 3, s.size, s.size, generator=torch.Generator().manual_seed(s.seed)).to(device, dtype)
        valid = bench_valid_mask(1, s.size, s.size, s.hole_ratio, seed=s.seed).to(device, dtype)
        with torch.inference_mode():
            calls = {n: _forward(m, image, valid) for n, m in models.items()}
            if is_cuda and s.cuda_graphs:
                calls.update({f"{n}_cuda_graph": _cuda_graph(calls[n]) for n in names})
            times = interleaved(calls, warmup=s.warmup, repeats=s.repeats, sync=sync)
        out["latency"][str(dtype).removeprefix("torch.")] = {n: summarize(t) for n, t in times.items()}
    out["throughput"] = _gpu_throughput(s, nets, device, sync)
    return out


def _gpu_throughput(
    s: BenchSettings, nets: Mapping[str, nn.Module], device: torch.device, sync: Callable[[], None] | None
) -> dict[str, Any]:
    """bf16 images/s at batch ``s.gpu_batch``: eager NCHW, eager channels_last and (optionally) compiled."""
    cl = torch.channels_last
    image = torch.rand(s.gpu_batch, 3, s.size, s.size, generator=torch.Generator().manual_seed(s.seed))
    valid = bench_valid_mask(s.gpu_batch, s.size, s.size, s.hole_ratio, seed=s.seed).to(device, torch.bfloat16)
    image = image.to(device, torch.bfloat16)
    calls: dict[str, Callable[[], object]] = {}
    for name in ("floor", "floor_fused", "pconv_fused"):
        nchw = copy.deepcopy(nets[name]).to(device, torch.bfloat16)
        chl = copy.deepcopy(nchw).to(memory_format=cl)
        calls[name] = _forward(nchw, image, valid)
        calls[f"{name}_channels_last"] = _forward(chl, image.contiguous(memory_format=cl), valid)
        if s.compile:
            compiled = torch.compile(chl)
            calls[f"{name}_channels_last_compiled"] = _forward(compiled, image.contiguous(memory_format=cl), valid)
    with torch.inference_mode():
        times = interleaved(calls, warmup=max(s.warmup, 2 if s.compile else 1), repeats=s.repeats, sync=sync)
    return {
        "batch": s.gpu_batch,
        "dtype": "bfloat16",
        "results": {n: {**summarize(t), "images_per_s": s.gpu_batch / statistics.median(t)} for n, t in times.items()},
    }


# ------------------------------------------------------------------------------------------- whole benchmark


def run_benchmarks(s: BenchSettings, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every section for ``s.device`` and return the results as a JSON-able dict."""
    say = progress or log.info
    torch.set_num_threads(s.threads)
    settings = dataclasses.asdict(s)
    results: dict[str, Any] = {"machine": machine_info(), "settings": settings, "threads": s.threads}
    if s.device != "cpu":
        say(f"GPU section on {s.device} ...")
        results["gpu"] = bench_gpu(s)
        return results
    nets = build_networks(s.model, seed=s.seed)
    say(f"forward latency at {s.size}x{s.size}, {s.repeats} interleaved rounds ...")
    results["forward"] = bench_forward(s, nets)
    say(f"hole ratios {list(s.hole_ratios)} ...")
    results["holes"] = bench_holes(s, nets)
    say("eager vs torch.compile vs ONNX Runtime" + (" (compiling takes minutes) ..." if s.compile else " ..."))
    results["fast_paths"] = bench_fast_paths(s, nets)
    del nets
    gc.collect()
    say(f"training at {s.train_size}x{s.train_size}, batch {s.train_batch} ...")
    results["training"] = bench_training(s)
    results["sizes"] = []
    for h, w in (*s.sizes, s.large):
        say(f"latency and peak memory at {w}x{h} in a fresh process ...")
        results["sizes"].append(measure_size(s, h, w))
    return results
