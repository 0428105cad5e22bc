"""Tiny generated inpainting data for training tests, and a worker script that trains on it.

``SyntheticPhotos`` follows the ``pconv.data.InpaintingDataset`` contract: items ``(image (3, S, S) in [0, 1],
valid_mask (1, S, S) in {0, 1}, 1 = known)``, each a pure function of (seed, epoch, index), with ``set_epoch``.
Run as a script (also under ``torchrun``) it trains with ``pconv.train``:

    python tests/synthetic_data.py OUT_DIR [--resume] [--dump-params DIR] [section.key=value ...]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

# A 3-level, width-1/16 network on 32x32 crops with no VGG terms: the training tests' tiny CPU run.
TINY_OVERRIDES: tuple[str, ...] = (
    "model.depth=3",
    "model.width=0.0625",
    "loss.perceptual=0",
    "loss.style=0",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.crop_size=32",
    "train.device=cpu",
    "train.progress=False",
    "train.tensorboard=False",
)


class SyntheticPhotos(Dataset):
    """Smooth random colour fields (learnable: holes can be filled from their surroundings) with box holes."""

    def __init__(self, n: int = 12, size: int = 32, *, seed: int = 0, nan_from_epoch: int | None = None) -> None:
        self.n, self.size, self.seed, self.nan_from_epoch = n, size, seed, nan_from_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
        s = self.size
        coarse = torch.rand(1, 3, 4, 4, generator=g)
        image = F.interpolate(coarse, size=(s, s), mode="bilinear", align_corners=False)[0]
        valid = torch.ones(1, s, s)
        h, w = (int(v) for v in torch.randint(s // 8, s // 2, (2,), generator=g))
        y, x = (int(v) for v in torch.randint(0, s - max(h, w), (2,), generator=g))
        valid[:, y : y + h, x : x + w] = 0
        if self.nan_from_epoch is not None and self.epoch >= self.nan_from_epoch:
            image = image * math.nan
        return image, valid


def main() -> None:
    from pconv.config import load_config
    from pconv.train import fit
    from pconv.train_setup import prepare_run

    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--dump-params", type=Path, default=None)
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    cfg = load_config(
        None,
        [
            *TINY_OVERRIDES,
            "train.threads=1",
            f"train.out_dir={args.out_dir}",
            *args.overrides,
        ],
    )
    run = prepare_run(
        cfg,
        resume=args.resume,
        train_set=SyntheticPhotos(args.photos, cfg.data.crop_size),
        val_set=SyntheticPhotos(4, cfg.data.crop_size, seed=99),
    )
    fit(run)
    if args.dump_params is not None:
        args.dump_params.mkdir(parents=True, exist_ok=True)
        torch.save(dict(run.model.named_parameters()), args.dump_params / f"rank{run.dist.rank}.pt")
        if run.ema is not None:
            torch.save(run.ema.state_dict(), args.dump_params / f"ema_rank{run.dist.rank}.pt")
    if run.dist.enabled:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
