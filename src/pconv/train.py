"""Training: the paper's two-phase schedule (Liu et al. 2018, arXiv 1804.07723, section 4), crash-safe.

``train(cfg) -> run_dir`` is ``prepare_run`` (devices, model, loss, optimizer, data, resume) then ``fit`` (the loop
of ``train_step``, logging, ``evaluate`` and ``save_checkpoint``). Phase 1 runs Adam at 2e-4 with BatchNorm on;
phase 2 fine-tunes at 5e-5 with the encoder's BatchNorm frozen (``PConvUNet.freeze_encoder_bn``; the decoder's
too with ``freeze_decoder_bn``, not in the paper).

Exact resume: the data order is a pure function of (seed, epoch) and every crop and mask a pure function of
(seed, epoch, index), so a resumed run skips the batches already done and sees the same batches as an
uninterrupted one; model, optimizer, grad scaler, step, RNG states and the weight average (``train.ema``,
when on) come from the checkpoint.
Several processes (``torchrun``): DistributedDataParallel, each rank takes a disjoint shard of every epoch's
permutation, and only rank 0 logs, validates and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from pconv.checkpoint import (
    FORMAT_VERSION,
    checkpoint_path,
    list_checkpoints,
    load_latest_checkpoint,
    prune_checkpoints,
    write_checkpoint,
)
from pconv.config import Config, ModelConfig, PhaseConfig
from pconv.distributed import Ranks
from pconv.ema import ModelEMA
from pconv.losses import InpaintingLoss, build_loss
from pconv.metrics import l1, psnr, ssim
from pconv.model import PConvUNet, composite

__all__ = [
    "train",
    "prepare_run",
    "fit",
    "train_step",
    "evaluate",
    "save_checkpoint",
    "TrainRun",
    "TrainingDiverged",
    "EpochBatchSampler",
]

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; nothing was saved after the last good checkpoint."""


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


# ---------------------------------------------------------------------------------------------- data order


class EpochBatchSampler:
    """The batches of every epoch, as dataset indices; a pure function of (seed, epoch, rank, world size).

    Epoch ``e`` is a permutation seeded by ``(seed, e)``, padded (like ``DistributedSampler``) to a multiple of
    ``world_size`` and sharded ``perm[rank::world_size]``; each rank's shard is cut into ``batch_size`` batches
    (the incomplete last one is dropped). Optimizer step ``s`` uses batch ``s % batches_per_epoch`` of epoch
    ``s // batches_per_epoch``, so a resumed run skips the batches already done without loading them.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"{n} training photos are too few for batches of {batch_size} on {world_size} "
                f"process(es); add photos or lower --data.batch_size"
            )

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.n // self.world_size) // self.batch_size

    def shard(self, epoch: int) -> np.ndarray:
        """This rank's dataset indices for ``epoch``, in order."""
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        padded = np.resize(perm, -(-self.n // self.world_size) * self.world_size)  # repeats the first ones
        return padded[self.rank :: self.world_size]

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``."""
        shard, bs = self.shard(epoch).tolist(), self.batch_size
        return [shard[b * bs : (b + 1) * bs] for b in range(self.batches_per_epoch)]


def _batches_from(run: TrainRun) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless training batches from optimizer step ``run.step`` on.

    One DataLoader per epoch, created after ``set_epoch``: its worker processes start with that epoch and no
    worker ever prefetches across an epoch boundary, so every item is the function of (seed, epoch, index) it
    should be, whatever ``num_workers`` is.
    """
    cfg = run.config
    sampler = EpochBatchSampler(
        len(run.train_set),
        cfg.data.batch_size,
        seed=cfg.train.seed,  # type: ignore[arg-type]
        rank=run.dist.rank,
        world_size=run.dist.world_size,
    )
    epoch, skip = divmod(run.step, sampler.batches_per_epoch)
    while True:
        if hasattr(run.train_set, "set_epoch"):
            run.train_set.set_epoch(epoch)
        loader = DataLoader(
            run.train_set,
            batch_sampler=sampler.batches(epoch)[skip:],
            num_workers=cfg.data.num_workers,
            pin_memory=run.device.type == "cuda",
        )
        yield from loader
        epoch, skip = epoch + 1, 0


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


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
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
            _set_rng_state(state["rng"])
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


# ---------------------------------------------------------------------------------------------- one step


def _autocast(run: TrainRun) -> torch.autocast:
    return torch.autocast(run.device.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None)


def _divergence_message(run: TrainRun, terms: dict[str, Tensor]) -> str:
    phase_no, _ = run.config.phase_at(run.step)
    values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
    ckpts = list_checkpoints(run.run_dir)
    keep = (
        f"the last good checkpoint is {ckpts[-1]}: resume it (pconv train --resume {run.run_dir}) with a lower "
        f"--phase{phase_no}.lr or --train.precision=fp32"
        if ckpts
        else "no checkpoint had been written yet"
    )
    return f"loss is not finite at step {run.step + 1} (phase {phase_no}; {values}); training stopped, {keep}"


def train_step(run: TrainRun, image: Tensor, valid_mask: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """One optimizer step on a batch.

    Args:
        image: (N, 3, H, W) in [0, 1] on ``run.device``, the ground truth.
        valid_mask: (N, 1, H, W) in {0, 1}, 1 = known pixel.
    Returns:
        the detached loss terms (``total`` included) and the detached prediction (N, 3, H, W).
    Raises:
        TrainingDiverged: the loss is NaN or inf on any process (no weights are updated).
    """
    with _autocast(run):
        output, _ = run.net(image * valid_mask, valid_mask)  # the hole content is never shown to the network
        terms = run.loss_fn(output, image, valid_mask)
    total = terms["total"]
    finite = torch.isfinite(total.detach()).float()
    if run.dist.enabled:
        torch_dist.all_reduce(finite, op=torch_dist.ReduceOp.MIN)  # every rank stops together
    if finite.item() == 0:
        raise TrainingDiverged(_divergence_message(run, terms))
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(total).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update(run.model)
    return {k: v.detach() for k, v in terms.items()}, output.detach()


def _enter_phase(run: TrainRun, phase: PhaseConfig) -> None:
    for group in run.optimizer.param_groups:
        group["lr"] = phase.lr
    run.model.freeze_encoder_bn = phase.freeze_encoder_bn
    run.model.freeze_decoder_bn = phase.freeze_decoder_bn
    run.model.train()


# ---------------------------------------------------------------------------------------------- validation


def evaluate(
    model: PConvUNet,
    dataset: Dataset,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    amp_dtype: Optional[torch.dtype] = None,
) -> dict[str, float]:
    """Mean l1, PSNR and SSIM of the composited output (paper, section 5) over ``dataset``.

    Args:
        dataset: items ``(image (3, H, W) in [0, 1], valid_mask (1, H, W) in {0, 1}, 1 = known)``.
    Returns:
        ``{"l1", "psnr", "ssim", "count"}``; the model is left in the train/eval mode it was in.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    sums = {"l1": 0.0, "psnr": 0.0, "ssim": 0.0}
    count = 0
    with torch.inference_mode():
        for image, valid_mask in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            image, valid_mask = image.to(device), valid_mask.to(device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                pred, _ = model(image * valid_mask, valid_mask)
            comp = composite(image, pred.float().clamp(0, 1), valid_mask)
            for name, metric in (("l1", l1), ("psnr", psnr), ("ssim", ssim)):
                sums[name] += metric(comp, image).sum().item()
            count += image.shape[0]
    model.train(was_training)
    return {**{k: v / max(count, 1) for k, v in sums.items()}, "count": count}


# ---------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(run: TrainRun) -> Path:
    """Write ``ckpt_<step>.pt`` atomically into the run directory and keep the newest ``train.keep_last``."""
    state = {
        "format_version": FORMAT_VERSION,
        "config": run.config.to_dict(),
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "step": run.step,
        "phase": run.config.phase_at(max(run.step - 1, 0))[0],
        "rng": _rng_state(),
    }
    if run.ema is not None:
        state["ema"] = run.ema.state_dict()
    path = write_checkpoint(state, checkpoint_path(run.run_dir, run.step))
    prune_checkpoints(run.run_dir, run.config.train.keep_last)
    return path


# ---------------------------------------------------------------------------------------------- logging


class _RunLog:
    """metrics.jsonl, TensorBoard (optional) and the progress bar; used on rank 0 only."""

    def __init__(self, run: TrainRun) -> None:
        from tqdm import tqdm

        tc = run.config.train
        self.metrics = open(run.run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.writer = None
        if tc.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run.run_dir / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed; no TensorBoard events (pip install tensorboard)")
        self.bar = tqdm(
            total=run.config.total_steps, initial=run.step, disable=not tc.progress, unit="step", dynamic_ncols=True
        )

    def scalars(self, step: int, kind: str, values: dict[str, float], **labels: str) -> None:
        """Log numbers (metrics.jsonl and TensorBoard); ``labels`` (text such as ``weights="ema"``) go to the
        jsonl record only."""
        self.metrics.write(json.dumps({"step": step, "kind": kind, **labels, **values}) + "\n")
        self.metrics.flush()
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{kind}/{name}", value, step)

    def images(self, step: int, image: Tensor, valid_mask: Tensor, output: Tensor) -> None:
        if self.writer is None:
            return
        from torchvision.utils import make_grid

        k = min(4, image.shape[0])
        image, valid_mask, output = image[:k].float().cpu(), valid_mask[:k].float().cpu(), output[:k].float().cpu()
        holed = image * valid_mask + (1 - valid_mask)  # the hole shown white
        pred = output.clamp(0, 1)
        rows = [holed, valid_mask.expand_as(image), pred, composite(image, pred, valid_mask)]
        grid = make_grid(torch.stack(rows, 1).flatten(0, 1), nrow=4, padding=2)  # one row per sample
        self.writer.add_image("train/input_mask_output_composite", grid, step)

    def close(self) -> None:
        self.bar.close()
        self.metrics.close()
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------------------------------------- the loop


def _validate(run: TrainRun, run_log: _RunLog) -> None:
    """Score the EMA weights when there is an average, else the trained ones; metrics.jsonl says which."""
    if run.val_set is None:
        return
    model, weights = (run.model, "trained") if run.ema is None else (run.ema.module, "ema")
    scores = evaluate(
        model, run.val_set, device=run.device, batch_size=run.config.data.batch_size, amp_dtype=run.amp_dtype
    )
    run_log.scalars(run.step, "val", scores, weights=weights)
    log.info(
        "step %d: validation (%s weights) l1 %.4f, PSNR %.2f dB, SSIM %.4f on %d images",
        run.step,
        weights,
        scores["l1"],
        scores["psnr"],
        scores["ssim"],
        scores["count"],
    )


def fit(run: TrainRun) -> None:
    """Train from ``run.step`` to ``config.total_steps``, logging, validating and saving as configured."""
    cfg, tc = run.config, run.config.train
    total = cfg.total_steps
    if run.step >= total:
        log.info("%s is already at step %d of %d; nothing to do", run.run_dir, run.step, total)
        return
    batches = _batches_from(run)
    run_log = _RunLog(run) if run.dist.is_main else None
    try:
        if run_log is not None and run.step == 0:
            _validate(run, run_log)  # the untrained baseline
        phase = None
        images, tick = 0, time.perf_counter()
        for image, valid_mask in batches:
            if cfg.phase_at(run.step)[1] is not phase:
                phase = cfg.phase_at(run.step)[1]
                _enter_phase(run, phase)
                log.info(
                    "step %d: phase %d, lr %g, BatchNorm statistics: encoder %s, decoder %s",
                    run.step,
                    cfg.phase_at(run.step)[0],
                    phase.lr,
                    *(
                        "frozen" if frozen else "training"
                        for frozen in (phase.freeze_encoder_bn, phase.freeze_decoder_bn)
                    ),
                )
            image = image.to(run.device, non_blocking=True)
            valid_mask = valid_mask.to(run.device, non_blocking=True)
            terms, output = train_step(run, image, valid_mask)
            run.step += 1
            images += image.shape[0] * run.dist.world_size
            if run_log is not None:
                run_log.bar.update(1)
                if run.step % tc.log_every == 0 or run.step == total:
                    now = time.perf_counter()
                    values = {k: v.item() for k, v in terms.items()}
                    values.update(lr=phase.lr, images_per_s=images / (now - tick))
                    run_log.scalars(run.step, "train", values)
                    run_log.bar.set_postfix(loss=f"{values['total']:.4f}", img_s=f"{values['images_per_s']:.1f}")
                    images, tick = 0, now
                side = time.perf_counter()
                if tc.image_every and run.step % tc.image_every == 0:
                    run_log.images(run.step, image, valid_mask, output)
                if (tc.val_every and run.step % tc.val_every == 0) or run.step == total:
                    _validate(run, run_log)
                if run.step % tc.ckpt_every == 0 or run.step == total:
                    save_checkpoint(run)
                tick += time.perf_counter() - side  # images/s counts training time only
            if run.step >= total:
                break
    finally:
        batches.close()  # stops the DataLoader workers
        if run_log is not None:
            run_log.close()


def train(
    cfg: Config, *, resume: bool = False, train_set: Optional[Dataset] = None, val_set: Optional[Dataset] = None
) -> Path:
    """Train as ``cfg`` says and return the run directory (config, checkpoints, metrics.jsonl, TensorBoard).

    Works alone or under ``torchrun`` (one process per GPU, or CPU processes with gloo). See ``prepare_run`` for
    ``resume``, ``train_set`` and ``val_set``.
    """
    try:
        run = prepare_run(cfg, resume=resume, train_set=train_set, val_set=val_set)
        fit(run)
        return run.run_dir
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
