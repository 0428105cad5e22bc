"""Configuration dataclasses shared by the model, training and inference.

Defaults are the paper's recipe (Liu et al. 2018, arXiv 1804.07723, section 3.3 for the network, section 3.4
for the loss weights, section 4 for the training schedule). A training ``Config`` is loaded from a YAML preset,
then ``section.key=value`` overrides; every value is type-checked against its field and unknown keys are errors.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "ModelConfig",
    "PAPER_KERNELS",
    "PAPER_CHANNELS",
    "LossConfig",
    "DataConfig",
    "PhaseConfig",
    "TrainConfig",
    "Config",
    "load_config",
    "config_from_dict",
    "apply_overrides",
    "override_keys",
    "type_name",
]

# Encoder of the paper: 8 stride-2 partial convolutions.
PAPER_KERNELS: tuple[int, ...] = (7, 5, 5, 3, 3, 3, 3, 3)
PAPER_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512)
# Largest training/validation crop side (the paper trains on 512); bigger ones are surely a typo.
MAX_CROP_SIZE = 8192


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a ``PConvUNet``.

    Attributes:
        depth: number of encoder layers (= decoder steps), 1..8; the paper uses 8. Inputs are padded to a
            multiple of ``2**depth``.
        width: multiplier on the paper's channel counts (0.5 gives the half-width network).
        in_channels: image channels (3 for RGB).
        edge_refine: hidden channels of an optional full-resolution head after the paper's network
            (``pconv.model.EdgeRefine``; beyond the paper, 0 = off). The paper makes every output pixel with one
            linear 3x3 partial convolution, which fills the first pixels inside a hole's edge worse than
            diffusion does; the head corrects them from the known neighbours.
    """

    depth: int = 8
    width: float = 1.0
    in_channels: int = 3
    edge_refine: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= len(PAPER_KERNELS):
            raise ValueError(f"depth must be in 1..{len(PAPER_KERNELS)}, got {self.depth}")
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be at least 1, got {self.in_channels}")
        if self.edge_refine < 0:
            raise ValueError(f"edge_refine must be >= 0 (0 = off), got {self.edge_refine}")

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
    def from_dict(cls, data: Any) -> ModelConfig:
        """Build from a dict (e.g. JSON from a weights file), rejecting unknown keys and wrong types (ValueError)."""
        if not isinstance(data, Mapping):
            raise ValueError(
                f"a model config must be a mapping of {sorted(f.name for f in dataclasses.fields(cls))}, "
                f"got {type(data).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys are {sorted(known)}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: _coerce(v, hints[k], f"model.{k}") for k, v in data.items()})


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms (paper eq. 7) and the VGG-16 weights file the perceptual and style terms need.

    Attributes:
        valid, hole: L1 on the known and on the hole pixels (paper: 1 and 6).
        perceptual: VGG-16 pool1..pool3 feature L1 on I_out and I_comp (paper: 0.05).
        style: Gram-matrix L1 on I_out and on I_comp, each weighted by this (paper: 120).
        tv: total variation of I_comp over the 1-pixel dilation of the hole (paper: 0.1).
        ssim: weight of ``1 - SSIM(I_comp, I_gt)``; not in the paper (0 = off). METHOD.md's measurements: it raises
            both SSIM and PSNR.
        ssim_hole: weight of ``1 - SSIM`` averaged over only the windows that overlap the hole, per image; not in
            the paper (0 = off). Windows away from the hole score 1 on I_comp, so this is the ``ssim`` term divided
            by the share of windows the hole reaches: a 5 % hole weighs about as much as a 50 % one.
        vgg_weights: local ImageNet VGG-16 weights (torchvision's ``vgg16-397923af.pth`` state dict, or the same
            tensors as safetensors); needed when ``perceptual`` or ``style`` is above 0. Nothing is downloaded.
    """

    valid: float = 1.0
    hole: float = 6.0
    perceptual: float = 0.05
    style: float = 120.0
    tv: float = 0.1
    ssim: float = 0.0
    ssim_hole: float = 0.0
    vgg_weights: Optional[str] = None

    def __post_init__(self) -> None:
        for name in ("valid", "hole", "perceptual", "style", "tv", "ssim", "ssim_hole"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def needs_vgg(self) -> bool:
        return self.perceptual > 0 or self.style > 0


@dataclass(frozen=True)
class DataConfig:
    """Where the photos and masks come from and how batches are made.

    Attributes:
        train_root: folder of training photos (searched recursively).
        val_root: folder of validation photos; the first ``val_count`` (sorted by path) form a fixed validation
            set with fixed masks. ``None``: no validation.
        masks: ``"generated"`` for procedural stroke masks, or a folder of NVIDIA-style mask PNGs (white = hole).
        mask_preset: with generated masks, a preset of ``pconv.mask_generation.PRESETS``, ``"mixed"`` (the four smooth
            ones) or a comma list such as ``"mixed,fragments"``; with several, one is picked per mask.
        mask_scale: with generated masks, the shape size relative to a 512 × 512 image; 0 scales shapes with the
            crop. 1.0 on 256 crops trains on holes as wide in pixels as those of 512 × 512 evaluation masks.
        mask_max_ratio: with generated masks, use only the hole-ratio bins (``pconv.masks.RATIO_BINS``) that end
            at or below this ratio; 0.6 (default) keeps all six. 0.3 fine-tunes on holes of at most 30 %.
        crop_size: side of the random square training crops.
        min_scale: photos are shown at a random scale between this and 1 (log-uniform; 1.0, the default, keeps
            the photo's own resolution): a crop of ``crop_size / scale`` pixels is taken and downscaled (Lanczos)
            to ``crop_size``, never below the photo's own short side. Downscaled photos are cleaner and smoother
            (less noise and JPEG blocking), like photos taken larger and shown smaller; not in the paper.
        batch_size: images per step *per process* (the global batch is this times the number of processes).
        num_workers: DataLoader worker processes (0 = load in the training process).
        val_count: number of validation photos.
        val_size: side of the validation centre crops.
    """

    train_root: str = ""
    val_root: Optional[str] = None
    masks: str = "generated"
    mask_preset: str = "medium"
    mask_scale: float = 0.0
    mask_max_ratio: float = 0.6
    crop_size: int = 256
    min_scale: float = 1.0
    batch_size: int = 6  # paper, section 4
    num_workers: int = 2
    val_count: int = 16
    val_size: int = 256

    def __post_init__(self) -> None:
        for name in ("crop_size", "batch_size", "val_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("crop_size", "val_size"):  # photos are resized up to the crop: a typo must not eat the RAM
            if getattr(self, name) > MAX_CROP_SIZE:
                raise ValueError(f"data.{name} must be <= {MAX_CROP_SIZE} pixels, got {getattr(self, name)}")
        if self.num_workers < 0 or self.val_count < 0 or self.mask_scale < 0:
            raise ValueError("data.num_workers, data.val_count and data.mask_scale must be >= 0")
        if not 0.1 <= self.min_scale <= 1.0:
            raise ValueError(f"data.min_scale must be between 0.1 and 1 (1 = no downscaling), got {self.min_scale}")
        if not 0.1 <= self.mask_max_ratio <= 1.0:
            raise ValueError(
                f"data.mask_max_ratio must be between 0.1 (the end of the smallest hole-ratio bin) and 1, "
                f"got {self.mask_max_ratio}"
            )


@dataclass(frozen=True)
class PhaseConfig:
    """One phase of the schedule: Adam at ``lr`` for ``steps`` steps (0 = skip the phase).

    Attributes:
        steps: optimizer steps in this phase.
        lr: Adam learning rate (paper: 2e-4 from scratch, then 5e-5 for fine-tuning).
        freeze_encoder_bn: keep the encoder's BatchNorm statistics frozen (paper: during fine-tuning only).
        freeze_decoder_bn: keep the decoder's BatchNorm statistics frozen too (not in the paper): for fine-tuning a
            trained model, the network then trains as it runs at inference, and its statistics do not drift.
    """

    steps: int = 0
    lr: float = 2e-4
    freeze_encoder_bn: bool = False
    freeze_decoder_bn: bool = False

    def __post_init__(self) -> None:
        if self.steps < 0 or not self.lr > 0:
            raise ValueError(f"a phase needs steps >= 0 and lr > 0, got steps={self.steps}, lr={self.lr}")


@dataclass(frozen=True)
class TrainConfig:
    """Run-level settings: output, seed, device, precision, and how often to log, validate and save.

    Attributes:
        out_dir: the run directory (config, checkpoints, metrics.jsonl, TensorBoard events).
        seed: seeds the model initialisation, the data order and every random crop and mask.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: ``"auto"`` (bf16 autocast on a GPU that supports it, fp32 on CPU), ``"fp32"``, ``"bf16"`` or
            ``"fp16"`` (with a gradient scaler). On CPU, ``"bf16"`` autocast is used only when asked for; fp16 is
            GPU-only.
        compile: wrap the model in ``torch.compile``.
        threads: CPU threads for torch (0 = torch's default).
        log_every: steps between loss/lr scalars (metrics.jsonl, TensorBoard, progress bar).
        image_every: steps between TensorBoard image grids (0 = never).
        val_every: steps between validation scores (0 = only at the end).
        ckpt_every: steps between checkpoints (one is always written at the end).
        keep_last: checkpoints kept in the run directory (older ones are deleted).
        progress: show a tqdm progress bar.
        tensorboard: write TensorBoard events (skipped with a warning if tensorboard is not installed).
        init_weights: a safetensors weights file (``pconv.model.save_weights``) to start from instead of random
            weights, e.g. the shipped model for fine-tuning; its network must match ``model`` except for
            ``edge_refine``: a head the file lacks starts new (unchanged prediction), one ``model`` lacks is dropped.
            Ignored on resume.
        trainable: comma-separated module prefixes (e.g. ``"refine"``, ``"decoder.0,decoder.1"``) whose parameters
            train; every other parameter and BatchNorm statistic stays fixed. Empty (default) trains everything.
        ema: decay of an exponential moving average of the weights (``pconv.ema.ModelEMA``; not in the paper), e.g.
            0.999 (an average over about the last 1,000 steps); 0 (default) = off. When on, it is updated after
            every optimizer step, saved in every checkpoint, scored by the validation, and what ``pconv
            export-weights`` writes (``--raw`` for the trained weights themselves).
    """

    out_dir: str = "runs/pconv"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    threads: int = 0
    log_every: int = 50
    image_every: int = 1000
    val_every: int = 1000
    ckpt_every: int = 1000
    keep_last: int = 3
    progress: bool = True
    tensorboard: bool = True
    init_weights: Optional[str] = None
    trainable: str = ""
    ema: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"train.ema must be in [0, 1) (a decay such as 0.999; 0 = off), got {self.ema}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"train.precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.log_every < 1 or self.ckpt_every < 1 or self.keep_last < 1:
            raise ValueError("train.log_every, train.ckpt_every and train.keep_last must be >= 1")
        if self.image_every < 0 or self.val_every < 0 or self.threads < 0:
            raise ValueError("train.image_every, train.val_every and train.threads must be >= 0")


@dataclass(frozen=True)
class Config:
    """Everything a training run needs; saved as ``config.yaml``/``config.json`` in the run directory.

    The two phases are the paper's schedule (section 4): Adam at 2e-4 with BatchNorm on, then fine-tuning at
    5e-5 with the encoder's BatchNorm frozen. The paper gives no step counts (about 10 days on Places2); the
    defaults put the fine-tuning in the last fifth.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    phase1: PhaseConfig = field(default_factory=lambda: PhaseConfig(steps=400_000, lr=2e-4))
    phase2: PhaseConfig = field(default_factory=lambda: PhaseConfig(steps=100_000, lr=5e-5, freeze_encoder_bn=True))
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def total_steps(self) -> int:
        return self.phase1.steps + self.phase2.steps

    def phase_at(self, step: int) -> tuple[int, PhaseConfig]:
        """The phase (1 or 2, and its config) that the optimizer step number ``step`` (0-based) belongs to."""
        return (1, self.phase1) if step < self.phase1.steps else (2, self.phase2)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def type_name(tp: Any) -> str:
    """``int``, ``float``, ``str|None``...: a field type as the command line shows it."""
    if typing.get_origin(tp) is typing.Union:
        return "|".join(type_name(a) for a in typing.get_args(tp))
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the field type ``tp``; ints are accepted for floats. Raises ValueError."""
    if typing.get_origin(tp) is typing.Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (tp,) = [a for a in args if a is not type(None)]
    if tp is float and isinstance(value, str):
        try:  # PyYAML reads "1e-4" (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ValueError(f"{key} must be {type_name(tp)}, got {value!r} ({type(value).__name__})")


def _build(cls: type, data: Mapping[str, Any], prefix: str, base: Any = None) -> Any:
    """``cls`` from ``data``; keys missing from ``data`` keep their value in ``base`` (default: ``cls()``)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{prefix or 'config'} must be a mapping, got {data!r}")
    base = cls() if base is None else base
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"in section {prefix!r}" if prefix else "at the top level"
        raise ValueError(f"unknown config keys {unknown} {where}; known keys are {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        tp, key = hints[name], f"{prefix}{name}"
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, f"{key}.", getattr(base, name))
        else:
            kwargs[name] = _coerce(value, tp, key)
    try:
        return dataclasses.replace(base, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{prefix or 'config'}: {exc}") from None


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build a ``Config`` from nested dicts (missing keys take defaults; unknown keys and wrong types raise)."""
    return _build(Config, data, "")


def override_keys(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """Every ``section.key`` of a config class, mapped to its field type (for the command line)."""
    keys: dict[str, Any] = {}
    for name, tp in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(tp):
            keys.update(override_keys(tp, f"{prefix}{name}."))
        else:
            keys[f"{prefix}{name}"] = tp
    return keys


def _parse_value(raw: str, tp: Any) -> Any:
    """Parse an override string: a Python literal (``literal_eval``), or the raw text for a string field."""
    args = typing.get_args(tp) if typing.get_origin(tp) is typing.Union else (tp,)
    if raw == "None" and type(None) in args:
        return None
    if str in args and not (raw[:1] in "'\"" and raw[-1:] == raw[:1] and len(raw) > 1):
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise ValueError(f"cannot parse {raw!r} as {type_name(tp)}") from None


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (a leading ``--`` is allowed) to a nested config dict.

    Returns:
        a new nested dict; the result still goes through ``config_from_dict`` for the type checks.
    """
    keys = override_keys()
    result = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for item in overrides:
        text = item[2:] if item.startswith("--") else item
        key, sep, raw = text.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like section.key=value")
        if key not in keys:
            close = [k for k in keys if k.split(".")[-1] == key.split(".")[-1]]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"unknown config key {key!r}{hint}")
        try:
            value = _parse_value(raw, keys[key])
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        section, name = key.split(".", 1)
        result.setdefault(section, {})[name] = value
    return result


def load_config(path: Optional[str | Path] = None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML (or JSON) preset, apply ``section.key=value`` overrides, and type-check the result.

    Args:
        path: preset file; ``None`` starts from the defaults.
        overrides: strings like ``"phase1.steps=500"`` or ``"--model.width=0.5"``.
    Raises:
        ValueError: unknown keys, wrong types or bad values, with the offending key named.
        OSError: the file cannot be read.
    """
    import yaml

    data: Any = {}
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not a YAML text file (not UTF-8)") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, Mapping):
            raise ValueError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return config_from_dict(apply_overrides(data, overrides))
