"""Training checkpoints: atomic writes, pruning, finding the newest readable one, and exporting weights.

A checkpoint is a ``torch.save`` dict ``{"format_version", "config", "model", "optimizer", "scaler", "step",
"rng"}``, plus ``"ema"`` when the run keeps a weight average (``train.ema``). ``config`` is the resolved training
``Config`` as nested dicts; ``model`` (and ``ema``) is the *unwrapped* ``PConvUNet`` state dict (no ``module.`` or
``_orig_mod.`` prefixes). Files are named ``ckpt_<step>.pt`` inside
the run directory and written to a temporary name, flushed and renamed, so a crash never leaves a torn file.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from pconv.config import ModelConfig
from pconv.model import PConvUNet, save_weights

__all__ = [
    "FORMAT_VERSION",
    "checkpoint_path",
    "list_checkpoints",
    "write_checkpoint",
    "read_checkpoint",
    "load_latest_checkpoint",
    "prune_checkpoints",
    "model_from_checkpoint",
    "checkpoint_model",
    "export_weights",
    "write_weights",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt_(\d+)\.pt$")
_REQUIRED = ("format_version", "config", "model", "optimizer", "scaler", "step", "rng")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"ckpt_{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoint files of a run directory, oldest step first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def write_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and sanity-check a checkpoint. Raises ValueError (with the reason) for a torn or foreign file."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - torn or foreign files raise many different errors
        raise ValueError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or any(k not in state for k in _REQUIRED):
        raise ValueError(f"{path} is not a pconv training checkpoint (missing keys)")
    if state["format_version"] != FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {state['format_version']}, this pconv reads {FORMAT_VERSION}")
    return state


def load_latest_checkpoint(
    run_dir: str | Path, *, map_location: str | torch.device = "cpu"
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``run_dir`` that reads back; unreadable newer ones are skipped with a warning.

    Returns:
        (path, state), or None when the run directory holds no readable checkpoint.
    """
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, read_checkpoint(path, map_location=map_location)
        except ValueError as exc:
            log.warning("skipping checkpoint %s: %s; trying the previous one", path.name, exc)
    return None


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints."""
    for path in list_checkpoints(run_dir)[:-keep_last]:
        path.unlink(missing_ok=True)


def _resolve(path: str | Path) -> tuple[Path, dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        found = load_latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no readable checkpoint (ckpt_*.pt) in {path}")
        return found
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path, read_checkpoint(path)


def checkpoint_model(path: str | Path, *, raw: bool = False) -> tuple[PConvUNet, dict[str, Any], str]:
    """The network of a checkpoint file or of the newest checkpoint in a run directory.

    Args:
        raw: take the trained weights even when the checkpoint holds a weight average (``train.ema``).
    Returns:
        (model in eval mode, the checkpoint's training config as nested dicts, which weights: ``"ema"`` for the
        average, the default when there is one, or ``"trained"``).
    """
    _, state = _resolve(path)
    model = PConvUNet(ModelConfig.from_dict(state["config"]["model"]))
    weights = "trained" if raw or state.get("ema") is None else "ema"
    model.load_state_dict(state["model"] if weights == "trained" else state["ema"])
    return model.eval(), state["config"], weights


def model_from_checkpoint(path: str | Path, *, raw: bool = False) -> tuple[PConvUNet, dict[str, Any]]:
    """``checkpoint_model`` without the third item: (model in eval mode, training config as nested dicts)."""
    model, config, _ = checkpoint_model(path, raw=raw)
    return model, config


def export_weights(
    checkpoint: str | Path,
    output: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
    raw: bool = False,
) -> Path:
    """Write a checkpoint's network as safetensors weights (``pconv.model.save_weights``; ``load_weights`` reads it).

    Args:
        checkpoint: a ``ckpt_*.pt`` file, or a run directory (its newest readable checkpoint is used).
        output: the ``.safetensors`` file to write (atomically).
        dtype: floating-point dtype of the stored tensors (``torch.float16`` halves the file).
        overwrite: replace ``output`` if it exists.
        raw: write the trained weights even when the checkpoint holds a weight average (by default the average).
    """
    output = Path(output)
    _refuse_existing(output, overwrite)
    return write_weights(checkpoint_model(checkpoint, raw=raw)[0], output, dtype=dtype, overwrite=overwrite)


def write_weights(
    model: PConvUNet, output: str | Path, *, dtype: torch.dtype = torch.float32, overwrite: bool = False
) -> Path:
    """Write a network loaded by ``checkpoint_model`` as safetensors weights (the second half of ``export_weights``)."""
    output = Path(output)
    _refuse_existing(output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    return save_weights(model, output, dtype=dtype)


def _refuse_existing(output: Path, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise ValueError(f"{output} exists; pass --overwrite to replace it")
