"""Configuration dataclasses shared by the model, training and inference.

Defaults are the paper's recipe (Liu et al. 2018, arXiv 1804.07723, section 3.3).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["ModelConfig", "PAPER_KERNELS", "PAPER_CHANNELS"]

# Encoder of the paper: 8 stride-2 partial convolutions.
PAPER_KERNELS: tuple[int, ...] = (7, 5, 5, 3, 3, 3, 3, 3)
PAPER_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a ``PConvUNet``.

    Attributes:
        depth: number of encoder layers (= decoder steps), 1..8; the paper uses 8. Inputs are padded to a
            multiple of ``2**depth``.
        width: multiplier on the paper's channel counts (0.5 gives the half-width network).
        in_channels: image channels (3 for RGB).
    """

    depth: int = 8
    width: float = 1.0
    in_channels: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= len(PAPER_KERNELS):
            raise ValueError(f"depth must be in 1..{len(PAPER_KERNELS)}, got {self.depth}")
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be at least 1, got {self.in_channels}")

    @property
    def kernels(self) -> tuple[int, ...]:
        """Encoder kernel sizes, shallow to deep."""
        return PAPER_KERNELS[: self.depth]

    @property
    def channels(self) -> tuple[int, ...]:
        """Encoder output channels, shallow to deep (the paper's counts times ``width``, at least 4)."""
        return tuple(max(4, round(c * self.width)) for c in PAPER_CHANNELS[: self.depth])

    @property
    def multiple(self) -> int:
        """Height and width are padded internally to a multiple of this."""
        return 2**self.depth

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ModelConfig:
        """Build from a dict, rejecting unknown keys with a clear message."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)  # type: ignore[arg-type]
