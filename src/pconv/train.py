"""Training: the paper's two-phase schedule (Liu et al. 2018, arXiv 1804.07723, section 4), crash-safe.

``train(cfg) -> run_dir`` is ``pconv.train_setup.prepare_run`` (devices, model, loss, optimizer, data, resume)
then ``fit``, the loop here: ``train_step``, logging, ``evaluate`` and ``save_checkpoint``. Phase 1 runs Adam at
2e-4 with BatchNorm on; phase 2 fine-tunes at 5e-5 with the encoder's BatchNorm frozen
(``PConvUNet.freeze_encoder_bn``; the decoder's too with ``freeze_decoder_bn``, not in the paper).

Exact resume: the data order is a pure function of (seed, epoch) and every crop and mask a pure function of
(seed, epoch, index), so a resumed run skips the batches already done and sees the same batches as an
uninterrupted one; model, optimizer, grad scaler, step, RNG states and the weight average (``train.ema``,
when on) come from the checkpoint.
Several processes (``torchrun``): DistributedDataParallel, each rank takes a disjoint shard of every epoch's
permutation, and only rank 0 logs, validates and writes checkpoints.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from pconv.checkpoint import FORMAT_VERSION, checkpoint_path, list_checkpoints, prune_checkpoints, write_checkpoint
from pconv.config import Config, PhaseConfig
from pconv.metrics import l1, psnr, ssim
from pconv.model import PConvUNet, composite
from pconv.train_setup import TrainRun, prepare_run, rng_state

__all__ = [
    "train",
    "fit",
    "train_step",
    "evaluate",
    "save_checkpoint",
    "TrainingDiverged",
    "EpochBatchSampler",
]

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; nothing was saved after the last good checkpoint."""


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
        "rng": rng_state(),
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
