"""The network behind ``pconv.inference.Inpainter``, as one call on numpy arrays, with two interchangeable backends.

Both run the same partial-convolution U-Net (arXiv 1804.07723, section 3.3) and take and return numpy arrays:
``network(image, valid_mask) -> prediction`` with
- ``image``: (N, 3, H, W) float32 in [0, 1];
- ``valid_mask``: (N, 1, H, W) float32 in {0, 1}, **1 = known pixel** (the paper's M);
- the prediction: (N, 3, H, W) float32, about [0, 1], the network's raw output everywhere (known pixels included).

Backends:
- ``OnnxNetwork``: ONNX Runtime on a graph written by ``pconv export-onnx``. Needs only numpy and onnxruntime; torch
  is never imported. The graph is either the network alone (inputs ``image``, ``valid_mask``) or **the whole fill**
  (``pconv.fill_graph``: uint8 image and hole mask in, filled uint8 image out, the flip and shift averages inside),
  which is what the package ships as ``pconv/weights/pconv_default.onnx``; ``OnnxNetwork.fill`` runs that one, and
  calling it as a network runs it with both averages off (the prediction then comes back in steps of 1/255).
- ``TorchNetwork``: PyTorch on a ``PConvUNet``, by default a copy with BatchNorm folded and channels-last layout
  (``pconv.model.fuse_for_inference``), on the CPU or a GPU. Needs ``pip install "pconv[torch]"``.

``choose_backend`` picks one for ``"auto"``: PyTorch when it is installed and a GPU is present, ONNX Runtime
otherwise, without importing torch on a machine that has no GPU (``import torch`` alone takes longer than filling a
512² photo with ONNX Runtime).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

    from pconv.model import PConvUNet

__all__ = [
    "BACKENDS",
    "BackendError",
    "Network",
    "OnnxNetwork",
    "TorchNetwork",
    "choose_backend",
    "gpu_present",
    "installed",
    "resolve_device",
]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
ONNX_INPUTS = ("image", "valid_mask")  # the network graph's inputs
# The fill graph's (pconv.fill_graph); flip, shift and smooth are optional (default 1).
FILL_INPUTS = ("image", "hole_mask", "flip", "shift", "smooth")
# Backend -> (Python module it needs, how to install it).
_NEEDS = {
    "torch": ("torch", "pip install 'pconv[torch]'"),
    "onnx": ("onnxruntime", "pip install onnxruntime"),
}


class BackendError(RuntimeError):
    """A backend was asked for that this install or this machine cannot run; the message says what to install."""


class Network(Protocol):
    """``(image (N, 3, H, W) in [0, 1], valid_mask (N, 1, H, W), 1 = known) -> prediction (N, 3, H, W)``, float32."""

    def __call__(self, image: np.ndarray, valid_mask: np.ndarray) -> np.ndarray: ...


def installed(backend: str) -> bool:
    """Whether the package ``backend`` (``"torch"`` or ``"onnx"``) needs is installed; nothing is imported."""
    module = _NEEDS[backend][0]
    return module in sys.modules or importlib.util.find_spec(module) is not None


def require(backend: str) -> None:
    """``BackendError`` naming the missing package unless ``backend`` can be imported."""
    if not installed(backend):
        module, how = _NEEDS[backend]
        raise BackendError(f"the {backend} backend needs the {module} package, which is not installed: {how}")


def gpu_present() -> bool:
    """A cheap guess, without importing torch, that this machine has a GPU: an NVIDIA or AMD driver is visible."""
    import shutil

    nvidia = Path("/proc/driver/nvidia/gpus")
    if nvidia.is_dir() and any(nvidia.iterdir()):
        return True
    return Path("/dev/kfd").exists() or shutil.which("nvidia-smi") is not None


def choose_backend(backend: str, *, weights: Path | None = None, device: str | None = None) -> str:
    """Resolve ``"auto"`` (and check an explicit choice): ``"torch"`` or ``"onnx"``.

    ``"auto"`` takes the backend a ``weights`` file needs (``.onnx``: ONNX Runtime; anything else is safetensors:
    PyTorch), PyTorch for a ``device`` other than the CPU, and otherwise PyTorch only when it is installed and a
    GPU is present (torch is imported to ask whether CUDA works), else ONNX Runtime.

    Raises:
        ValueError: an unknown backend name.
        BackendError: the chosen backend's package is not installed (the message says what to install).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        backend = _auto(weights, device)
    require(backend)
    return backend


def _auto(weights: Path | None, device: str | None) -> str:
    if weights is not None:
        return "onnx" if Path(weights).suffix.lower() == ".onnx" else "torch"
    if device is not None and str(device) != "cpu":
        return "torch"
    if device is None and installed("torch") and gpu_present():
        import torch

        if torch.cuda.is_available():
            return "torch"
        log.info("a GPU driver is present but PyTorch cannot use it: running on ONNX Runtime")
    return "onnx" if installed("onnx") or not installed("torch") else "torch"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> CUDA if available, else CPU; otherwise the named device (ValueError if CUDA is asked but absent)."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r} ({exc}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
    return dev


class TorchNetwork:
    """PyTorch backend: a ``PConvUNet`` on ``device``.

    Args:
        model: the network (moved to ``device`` and put in eval mode; kept as ``self.model``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks CUDA if available, else CPU.
        fast: run a copy with BatchNorm folded and channels-last layout (``pconv.model.fuse_for_inference``): the
            same output to float rounding, faster (benchmarks/RESULTS.md).
        threads: CPU threads; torch's setting is per process, so this calls ``torch.set_num_threads`` (``None``:
            leave it as it is).
    """

    name = "torch"

    def __init__(
        self,
        model: PConvUNet,
        *,
        device: str | torch.device | None = None,
        fast: bool = True,
        threads: int | None = None,
    ) -> None:
        import torch

        from pconv.model import fuse_for_inference

        if threads is not None:
            torch.set_num_threads(threads)

        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self._net = fuse_for_inference(self.model, channels_last=True) if fast else self.model

    def __call__(self, image: np.ndarray, valid_mask: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) in [0, 1], (N, 1, H, W) 1 = known -> prediction (N, 3, H, W) float32 (module docstring)."""
        import torch

        with torch.inference_mode():
            x, m = (torch.from_numpy(_float32(a)).to(self.device) for a in (image, valid_mask))
            return self._net(x, m)[0].float().cpu().numpy()


class OnnxNetwork:
    """ONNX Runtime backend: a graph written by ``pconv export-onnx``, the network alone or the whole fill.

    Args:
        path: the ONNX file.
        device: ``None`` or ``"cpu"`` runs on the CPU; ``"cuda"`` / ``"cuda:N"`` needs onnxruntime-gpu.
        providers: onnxruntime execution providers, instead of ``device``'s.
        threads: CPU threads of this session (``None``: onnxruntime's default, one per core).

    Attributes:
        graph: ``"fill"`` (inputs ``image`` uint8, ``hole_mask``, ``flip``, ``shift``) or ``"network"`` (inputs
            ``image``, ``valid_mask``).
    """

    name = "onnx"

    def __init__(
        self,
        path: str | Path,
        *,
        device: str | None = None,
        providers: list[str] | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {path} (make one with `pconv export-onnx`)")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings about unused initializers on stderr
        # Idle threads sleep instead of spinning: on a CPU shared with other work (2 busy cores here) spinning
        # threads take turns from the ones computing; four passes of the shipped model at 512² ran about 25 % faster.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The optimisation level stays ONNX Runtime's default (all): ``pconv export-onnx`` saves the graph with the
        # portable basic optimisations done, so what is left at load is this CPU's own (fusions, the blocked NCHWc
        # layout of the convolutions), which costs little at load and makes the fill faster than a graph loaded
        # with optimisation off (which would also round a few pixels differently from the shipped bytes).
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=providers or _providers(device, ort)
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{path} is not a loadable ONNX model ({type(exc).__name__})") from None
        names = tuple(i.name for i in self.session.get_inputs())
        optional = {i.name for i in self.session.get_overridable_initializers()}
        if names == ONNX_INPUTS:
            self.graph = "network"
        elif names[:2] == FILL_INPUTS[:2] and set(names[2:]) | optional >= {"flip", "shift"}:
            self.graph = "fill"
        else:
            raise ValueError(
                f"{path} takes inputs {names}, expected {FILL_INPUTS} or {ONNX_INPUTS}; export it with "
                "`pconv export-onnx`"
            )
        self._inputs = set(names) | optional
        self.path = path
        self.device = str(device or "cpu")

    @property
    def metadata(self) -> dict[str, str]:
        """The graph's metadata (``pconv export-onnx`` records the graph, the model config and its weights' SHA-256)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, image: np.ndarray, valid_mask: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) in [0, 1], (N, 1, H, W) 1 = known -> prediction (N, 3, H, W) float32 (module docstring).

        On a fill graph: its fill with both averages off, in [0, 1] in steps of 1/255, the image's own values
        (rounded to 1/255) at known pixels.
        """
        if self.graph == "fill":
            pixels = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
            hole_mask = np.where(np.asarray(valid_mask)[:, 0] > 0, 0, 255).astype(np.uint8)
            filled = self.fill(pixels, hole_mask, flip=False, shift=False, smooth=False)
            return filled.transpose(0, 3, 1, 2).astype(np.float32) / 255
        (output,) = self.session.run(["output"], {"image": _float32(image), "valid_mask": _float32(valid_mask)})
        return output

    def fill(
        self, image: np.ndarray, hole_mask: np.ndarray, *, flip: bool = True, shift: bool = True, smooth: bool = True
    ) -> np.ndarray:
        """Run a fill graph (``graph == "fill"``): the whole fill of ``pconv.fill_graph``.

        Args:
            image: (N, H, W, 3) uint8 RGB.
            hole_mask: (N, H, W) uint8, > 127 = hole.
            flip: average with the fill of the mirrored image.
            shift: average with the fill of the image moved one pixel.
            smooth: the smooth blend (``pconv.smooth``): exact fills of smooth content.
        Returns:
            (N, H, W, 3) uint8, the input's bytes at known pixels.
        """
        if self.graph != "fill":
            raise ValueError(f"{self.path} is the network alone, not a fill graph; export one with `pconv export-onnx`")
        feed = {
            "image": np.ascontiguousarray(image, dtype=np.uint8),
            "hole_mask": np.ascontiguousarray(hole_mask, dtype=np.uint8),
            "flip": np.array(float(flip), dtype=np.float32),
            "shift": np.array(float(shift), dtype=np.float32),
        }
        if "smooth" in self._inputs:  # fill graphs exported before the smooth blend lack it
            feed["smooth"] = np.array(float(smooth), dtype=np.float32)
        (filled,) = self.session.run(["filled"], feed)
        return filled


def _float32(array: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 array with no negative stride (numpy keeps those on axes of length 1)."""
    out = np.ascontiguousarray(array, dtype=np.float32)
    return out if min(out.strides, default=0) >= 0 else out.copy()


def _providers(device: str | None, ort: Any) -> list[Any]:
    """onnxruntime providers for ``device``; ValueError for a device this onnxruntime cannot run on."""
    if device is None or str(device) == "cpu":
        return ["CPUExecutionProvider"]
    name, _, index = str(device).partition(":")
    if name != "cuda" or not (index == "" or index.isdigit()):
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise BackendError(
            f"device {device!r} asked for, but this onnxruntime has no CUDA provider: pip install onnxruntime-gpu, "
            "or use the torch backend, or --device cpu"
        )
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
