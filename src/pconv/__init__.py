"""pconv: image inpainting with partial convolutions (Liu et al., ECCV 2018, arXiv 1804.07723).

The public names below are imported on first use, so ``import pconv`` (and ``pconv --help``) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "GeneratedMasks": "pconv.mask_generation",
    "InpaintingDataset": "pconv.data",
    "ModelConfig": "pconv.config",
    "NvidiaMasks": "pconv.nvidia_masks",
    "RATIO_BINS": "pconv.masks",
    "generate_hole_mask": "pconv.mask_generation",
    "list_images": "pconv.data",
    "load_rgb": "pconv.data",
    "PartialConv2d": "pconv.layers",
    "PConvUNet": "pconv.model",
    "Inpainter": "pconv.inference",
    "build_model": "pconv.model",
    "composite": "pconv.model",
    "create_app": "pconv.server",
    "fuse_for_inference": "pconv.model",
    "load_weights": "pconv.model",
    "save_weights": "pconv.model",
    "Config": "pconv.config",
    "load_config": "pconv.config",
    "InpaintingLoss": "pconv.losses",
    "VGG16Features": "pconv.losses",
    "load_vgg16_features": "pconv.losses",
    "export_weights": "pconv.checkpoint",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pconv' has no attribute {name!r}")
