"""The state of one training run and its set-up (arXiv 1804.07723, section 4: the two-phase schedule).

``prepare_run(cfg) -> TrainRun`` builds everything ``pconv.train.fit`` needs: the processes (``torchrun``:
DistributedDataParallel over NCCL or gloo), the device and autocast dtype, the loss (before anything is written,
so missing VGG weights fail early), the datasets (``build_datasets``: photos with generated or NVIDIA hole masks),
the network in its first phase's BatchNorm state, Adam at the first phase's learning rate (over only
``train.trainable``'s parameters when set), the grad scaler, the weight average (``train.ema``) and, with
``resume``, the newest good checkpoint with the RNG states (``rng_state`` / ``set_rng_state``) it saved.
The resolved config is written into the run directory as ``config.json`` and ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import Dataset, Subset

from pconv.checkpoint import list_checkpoints, load_latest_checkpoint
from pconv.config import Config, ModelConfig
from pconv.distributed import Ranks
from pconv.ema import ModelEMA
from pconv.losses import InpaintingLoss, build_loss
from pconv.model import PConvUNet

__all__ = ["TrainRun", "prepare_run", "build_datasets", "rng_state", "set_rng_state"]

log = logging.getLogger(__name__)


@dataclass
class TrainRun:
    """Everything the loop needs; ``model`` is the unwrapped network, ``net`` what the step calls (DDP/compiled),
    ``ema`` the moving average of ``model``'s weights (None when ``train.ema`` is 0)."""

    config: Config
    run_dir: Path
    model: PConvUNet
    net: nn.Module
    loss_fn: InpaintingLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: Optional[torch.dtype]
    dist: Ranks
    train_set: Dataset
    val_set: Optional[Dataset]
    step: int = 0
    ema: Optional[ModelEMA] = None


# ---------------------------------------------------------------------------------------------- data


def build_datasets(cfg: Config) -> tuple[Dataset, Optional[Dataset]]:
    """The training set and the fixed validation set (or None) that ``cfg.data`` describes."""
    from pconv.data import InpaintingDataset
    from pconv.mask_generation import GeneratedMasks, preset_names
    from pconv.masks import RATIO_BINS
    from pconv.nvidia_masks import NvidiaMasks

    data = cfg.data
    if not data.train_root:
        raise ValueError("no training photos: set --data.train_root to a folder of photos")
    for name, root in (("data.train_root", data.train_root), ("data.val_root", data.val_root)):
        if root is not None and not Path(root).is_dir():
            raise FileNotFoundError(f"{name}: folder not found: {root}")
    if data.masks == "generated":
        preset_names(data.mask_preset)  # an unknown name fails here, not in a loader worker
        bins = tuple(b for b in RATIO_BINS if b[1] <= data.mask_max_ratio + 1e-9)
        masks: Any = GeneratedMasks(preset=data.mask_preset, bins=bins, scale=data.mask_scale or None)
    elif data.mask_max_ratio < RATIO_BINS[-1][1]:
        raise ValueError("data.mask_max_ratio applies to generated masks only; leave it out with a mask folder")
    elif Path(data.masks).is_dir():
        masks = NvidiaMasks(data.masks)
    else:
        raise FileNotFoundError(f"data.masks must be 'generated' or a folder of mask PNGs; not found: {data.masks}")
    seed = cfg.train.seed
    train_set = InpaintingDataset(
        data.train_root, crop_size=data.crop_size, train=True, masks=masks, seed=seed, min_scale=data.min_scale
    )
    val_set = None
    if data.val_root is not None and data.val_count > 0:
        val_full = InpaintingDataset(data.val_root, crop_size=data.val_size, train=False, masks=masks, seed=seed)
        # Spread over the whole folder (all its groups) and, with NVIDIA masks, over all hole-ratio bins.
        picks = np.linspace(0, len(val_full) - 1, min(data.val_count, len(val_full))).round().astype(int)
        val_set = Subset(val_full, sorted(set(picks.tolist())))
    return train_set, val_set


# ---------------------------------------------------------------------------------------------- set-up


def _init_distributed(device: str) -> Ranks:
    info = Ranks.from_env()
    if not info.enabled:
        return info
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return info


def _resolve_device(name: str, dist: Ranks) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device asks for CUDA but no GPU is available; use --train.device=cpu")
        if dist.enabled:
            device = torch.device("cuda", dist.local_rank)
    return device


def _resolve_amp(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype, or None for fp32.

    ``auto`` is bf16 (or fp16 where bf16 is missing) on a GPU and fp32 on the CPU. On the CPU, ``bf16`` must be
    asked for: 1.5x faster on an AVX512-BF16 processor (benchmarks/bench_cpu_train_precision.py); ``fp16`` is
    GPU-only and falls back to fp32 there.
    """
    if precision == "fp32":
        return None
    if device.type != "cuda":
        if precision == "bf16":
            return torch.bfloat16
        if precision == "fp16":
            log.info("precision fp16 is for GPUs; training in fp32 on %s (bf16 works on the CPU)", device)
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def rng_state() -> dict[str, Any]:
    """The torch, CUDA, numpy and Python RNG states, for a checkpoint (numpy's keys as a tensor, Python's as lists)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states ``rng_state`` returned (CUDA's only where a GPU is present)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _save_config(cfg: Config, run_dir: Path) -> None:
    import yaml

    data = cfg.to_dict()
    _write_text_atomic(run_dir / "config.json", json.dumps(data, indent=2) + "\n")
    _write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))


def _load_init_weights(model: PConvUNet, path: str, expected: ModelConfig) -> None:
    """Copy the weights of a ``save_weights`` file into ``model`` (fine-tuning start); the networks must match
    except for the ``edge_refine`` head (one the file lacks keeps its fresh initialisation)."""
    from pconv.model import load_weights

    source = load_weights(path)
    if dataclasses.replace(source.config, edge_refine=expected.edge_refine) != expected:
        raise ValueError(
            f"train.init_weights {path} holds a {source.config} network but the config asks for "
            f"{expected}; set model.depth/model.width to match"
        )
    target = model.state_dict()
    state = source.state_dict()
    model.load_state_dict({k: state.get(k, v) for k, v in target.items()})
    fresh = sorted({k.split(".")[0] for k in target if k not in state})
    log.info("initialised the model from %s%s", path, f" (new: {', '.join(fresh)})" if fresh else "")


def _restrict_training(model: PConvUNet, trainable: str) -> list[nn.Parameter]:
    """Fix every parameter and BatchNorm outside the comma-separated module prefixes; return the trainable ones."""
    if not trainable.strip():
        return list(model.parameters())
    prefixes = tuple(f"{p.strip()}." for p in trainable.split(",") if p.strip())
    names = [n for n, _ in model.named_parameters()]
    unknown = [p[:-1] for p in prefixes if not any(n.startswith(p) for n in names)]
    if unknown:
        blocks = sorted(
            {".".join(n.split(".")[:2] if n.startswith(("encoder", "decoder")) else n.split(".")[:1]) for n in names}
        )
        raise ValueError(f"train.trainable: no parameters under {unknown[0]!r}; modules are {', '.join(blocks)}")
    params = []
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(prefixes))
        if param.requires_grad:
            params.append(param)
    model.fixed_prefixes = tuple(
        n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and not f"{n}.".startswith(prefixes)
    )
    return params


def _build_ema(model: PConvUNet, decay: float, state: Optional[dict[str, Any]]) -> Optional[ModelEMA]:
    """The weight average of ``train.ema`` (None when 0), restored from a resumed checkpoint ``state`` if it has one."""
    saved = state.get("ema") if state is not None else None
    if not decay:
        if saved is not None:
            log.info("train.ema is 0: the checkpoint's weight average is dropped")
        return None
    ema = ModelEMA(model, decay)
    if saved is not None:
        ema.load_state_dict(saved)
    elif state is not None:
        log.warning("the checkpoint holds no weight average; the EMA starts from its weights at step %d", state["step"])
    return ema


def prepare_run(
    cfg: Config, *, resume: bool = False, train_set: Optional[Dataset] = None, val_set: Optional[Dataset] = None
) -> TrainRun:
    """Set up devices, loss, data, model and optimizer; with ``resume``, continue from the newest good checkpoint.

    Args:
        cfg: the resolved config.
        resume: continue the run in ``cfg.train.out_dir`` (a fresh start, with a warning, if it has no
            checkpoint). Without it, a run directory that already holds checkpoints is an error.
        train_set: a dataset of ``(image (3, S, S) in [0, 1], valid_mask (1, S, S) in {0, 1})`` to use
            instead of the one ``cfg.data`` describes (items must be a function of (seed, epoch, index), with
            ``set_epoch(epoch)`` if they are random, for an exact resume).
        val_set: the same for validation.
    Raises:
        ValueError: a VGG term is asked for without weights (before anything is written), or the run directory
            already holds checkpoints and ``resume`` is False.
    """
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    dist = _init_distributed(tc.device)
    device = _resolve_device(tc.device, dist)
    amp_dtype = _resolve_amp(tc.precision, device)
    loss_fn = build_loss(cfg.loss).to(device)  # fails here, before training, when VGG weights are missing
    if train_set is None:
        train_set, val_set = build_datasets(cfg)
    run_dir = Path(tc.out_dir)
    if not resume and list_checkpoints(run_dir):
        raise ValueError(
            f"{run_dir} already holds checkpoints; pass --resume to continue that run, or choose "
            f"another --train.out_dir"
        )

    torch.manual_seed(tc.seed)
    first_phase = cfg.phase_at(0)[1]
    model = PConvUNet(
        cfg.model, freeze_encoder_bn=first_phase.freeze_encoder_bn, freeze_decoder_bn=first_phase.freeze_decoder_bn
    ).to(device)
    optimizer = torch.optim.Adam(_restrict_training(model, tc.trainable), lr=first_phase.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    step, state = 0, None
    if tc.init_weights and not resume:
        _load_init_weights(model, tc.init_weights, cfg.model)
    if resume:
        found = load_latest_checkpoint(run_dir)
        if found is None:
            log.warning("no checkpoint in %s to resume from; starting from step 0", run_dir)
        else:
            path, state = found
            saved_model = ModelConfig.from_dict(state["config"]["model"])
            if saved_model != cfg.model:
                raise ValueError(f"{path} holds a {saved_model} network but the config asks for {cfg.model}")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            step = int(state["step"])
            set_rng_state(state["rng"])
            log.info("resumed from %s (step %d of %d)", path, step, cfg.total_steps)
    ema = _build_ema(model, tc.ema, state)

    net: nn.Module = model
    if dist.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if tc.compile:
        net = torch.compile(net)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _save_config(cfg, run_dir)
    if dist.enabled:
        torch_dist.barrier()
    return TrainRun(
        cfg, run_dir, model, net, loss_fn, optimizer, scaler, device, amp_dtype, dist, train_set, val_set, step, ema
    )
