"""Speed and memory benchmarks of the partial-convolution U-Net against its floor and a reference.

The networks, all of the paper's shapes (arXiv 1804.07723, section 3.3), are built in ``pconv.bench_networks``:
``PConvUNet`` plain and fused for inference, the mask-free floor ``PlainUNet`` and the REFERENCE ONLY
``ReferencePConvUNet`` (C-channel masks, as common re-implementations do it). They are timed in one process,
runs interleaved (A, B, C, A, B, C, ...), medians after warm-up (``pconv.bench_timing``). The sections: batch-1
forward latency, hole-ratio independence, eager vs ``torch.compile`` vs ONNX Runtime, training throughput,
latency and peak memory per size (each in a fresh subprocess), and batch-1 / batched GPU figures.

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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv.bench_networks import bench_valid_mask, build_networks, forward_call, randomize_batchnorm
from pconv.bench_timing import interleaved, machine_info, peak_rss_mib, rss_mib, summarize
from pconv.config import ModelConfig
from pconv.model import PConvUNet, fuse_for_inference

__all__ = [
    "BenchSettings",
    "bench_forward",
    "bench_holes",
    "bench_training",
    "bench_fast_paths",
    "measure_size",
    "bench_gpu",
    "run_benchmarks",
]

log = logging.getLogger(__name__)


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


# ------------------------------------------------------------------------------------------- CPU sections


def bench_forward(s: BenchSettings, nets: Mapping[str, nn.Module]) -> dict[str, Any]:
    """Batch-1 ``size``x``size`` forward latency of every network and layout, interleaved in one run."""
    image = torch.rand(1, 3, s.size, s.size, generator=torch.Generator().manual_seed(s.seed))
    valid = bench_valid_mask(1, s.size, s.size, s.hole_ratio, seed=s.seed)
    cl = torch.channels_last
    fused_cl = fuse_for_inference(nets["pconv"], channels_last=True)
    floor_cl = copy.deepcopy(nets["floor"]).to(memory_format=cl)
    calls = {name: forward_call(net, image, valid) for name, net in nets.items()}
    image_cl = image.contiguous(memory_format=cl)
    calls["pconv_fused_channels_last"] = forward_call(fused_cl, image, valid)  # the model switches layout itself
    calls["floor_channels_last"] = forward_call(floor_cl, image_cl, valid)
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
            calls[f"{name}@{ratio}"] = forward_call(nets[name], image, valid)
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
    calls = {name: forward_call(nets[name], image, valid) for name in ("floor", "floor_fused", "pconv_fused")}
    fused_cl = fuse_for_inference(nets["pconv"], channels_last=True)
    calls["pconv_fused_channels_last"] = forward_call(fused_cl, image, valid)
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
    rss_before = rss_mib()
    small = h * w <= 1024 * 1024  # small sizes get a warm-up call; a large one is timed once, cold
    times = []
    with torch.inference_mode():
        if small:
            call()
        for _ in range(spec["repeats"] if small else 1):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
    peak = peak_rss_mib()
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
            calls = {n: forward_call(m, image, valid) for n, m in models.items()}
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
        calls[name] = forward_call(nchw, image, valid)
        calls[f"{name}_channels_last"] = forward_call(chl, image.contiguous(memory_format=cl), valid)
        if s.compile:
            compiled = torch.compile(chl)
            calls[f"{name}_channels_last_compiled"] = forward_call(compiled, image.contiguous(memory_format=cl), valid)
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
