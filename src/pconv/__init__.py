"""pconv: image inpainting with partial convolutions (Liu et al., ECCV 2018, arXiv 1804.07723).

The public names below are imported on first use, so ``import pconv`` (and ``pconv --help``) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "ModelConfig": "pconv.config",
    "PartialConv2d": "pconv.layers",
    "PConvUNet": "pconv.model",
    "Inpainter": "pconv.inference",
    "build_model": "pconv.model",
    "composite": "pconv.model",
    "fuse_for_inference": "pconv.model",
    "load_weights": "pconv.model",
    "save_weights": "pconv.model",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pconv' has no attribute {name!r}")
