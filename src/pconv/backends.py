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

The optimisation cache: a graph file holds only the portable optimisations (``pconv.export``); what ONNX Runtime
adds for this CPU on the CPU (fusions, the blocked NCHWc layout of the convolutions) took most of a session's start.
So the first ``OnnxNetwork`` on a machine saves the graph as ONNX Runtime optimised it in a cache folder
(``cache_dir()``: ``$PCONV_CACHE_DIR/onnx``, else ``$XDG_CACHE_HOME/pconv/onnx``, else ``~/.cache/pconv/onnx``; an
empty ``PCONV_CACHE_DIR`` turns it off), named by the file's SHA-256, the ONNX Runtime version and the CPU, and later
ones load that copy with optimisation off: the same operations, so the same output bytes, in a third of the time.
A folder that cannot be written, or a damaged copy, only means the graph is optimised at load as without a cache;
the newest ``CACHE_KEEP`` copies are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import platform
import sys
import time
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
    "cache_dir",
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
CACHE_ENV = "PCONV_CACHE_DIR"  # the optimisation cache's folder; empty: no cache (module docstring)
CACHE_KEEP = 8  # optimised graphs kept in the cache, newest first (the shipped model's is about 9 MB)
_CACHED_NAMES = "*-" + "?" * 16 + "-" + "?" * 16 + ".onnx"  # STEM-FILE_SHA-MACHINE_KEY.onnx: what _prune may delete
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
        holes_only: predict only what the hole pixels need (``PConvUNet.forward(holes_only=True)``: the same floats
            in the holes to float rounding (PyTorch picks convolution kernels by shape, so the last bit may differ on
            some CPUs), 0 outside their box, faster for small holes); for callers that keep only the hole pixels, as
            ``Inpainter`` does. False: the prediction everywhere.
    """

    name = "torch"

    def __init__(
        self,
        model: PConvUNet,
        *,
        device: str | torch.device | None = None,
        fast: bool = True,
        threads: int | None = None,
        holes_only: bool = False,
    ) -> None:
        import torch

        from pconv.model import fuse_for_inference

        if threads is not None:
            torch.set_num_threads(threads)

        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self._net = fuse_for_inference(self.model, channels_last=True) if fast else self.model
        self.holes_only = holes_only

    def __call__(self, image: np.ndarray, valid_mask: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) in [0, 1], (N, 1, H, W) 1 = known -> prediction (N, 3, H, W) float32 (module docstring)."""
        import torch

        with torch.inference_mode():
            x, m = (torch.from_numpy(_float32(a)).to(self.device) for a in (image, valid_mask))
            return self._net(x, m, holes_only=self.holes_only)[0].float().cpu().numpy()


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
        cached: the copy in the optimisation cache the session was loaded from (module docstring), or None when
            it was optimised at load (first use on this machine, no cache, or not on the CPU).
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
        self.cached: Path | None = None  # the optimised copy this session was loaded from (module docstring)
        try:
            self.session = self._load(ort, path, providers or _providers(device, ort), threads)
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

    def _load(self, ort: Any, path: Path, providers: list[Any], threads: int | None) -> Any:
        """A session on ``path``, through the optimisation cache on the CPU (module docstring)."""
        folder = cache_dir() if providers == ["CPUExecutionProvider"] else None
        if folder is None:
            return ort.InferenceSession(str(path), sess_options=_options(ort, threads), providers=providers)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        cached = folder / f"{path.stem}-{digest}-{_machine_key(ort)}.onnx"
        if cached.is_file():
            try:  # optimised already, for this CPU
                session = ort.InferenceSession(
                    str(cached), sess_options=_options(ort, threads, optimize=False), providers=providers
                )
                self.cached = cached
                return session
            except Exception:  # a damaged copy: optimise afresh, and replace it
                log.debug("cannot load the cached %s: optimising %s afresh", cached, path)
        return _load_and_save(ort, path, providers, threads, cached)

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


def cache_dir() -> Path | None:
    """The optimisation cache's folder (module docstring), or None when ``PCONV_CACHE_DIR`` is set empty."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return Path(value).expanduser() / "onnx" if value else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pconv" / "onnx"


def _options(ort: Any, threads: int | None, *, optimize: bool = True) -> Any:
    """Session options: errors only in the log, no spinning threads, ``threads``, optimisation on or off."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings about the inputs with defaults on stderr
    # Idle threads sleep instead of spinning: on a CPU shared with other work (2 busy cores here) spinning
    # threads take turns from the ones computing; four passes of the shipped model at 512² ran about 25 % faster.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No memory pattern: with the graph's dynamic sizes ONNX Runtime plans one per input shape, and the planned
    # blocks are kept beside the arena's: without it four passes at 512² peak at 315 MiB instead of 542 and later
    # runs of a session are about 10 % faster (the same operations, so the same bytes).
    options.enable_mem_pattern = False
    if threads is not None:
        options.intra_op_num_threads = threads
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # Otherwise ONNX Runtime's default level (all): the file has the portable optimisations done (pconv.export);
    # what is left is this CPU's own (fusions, the NCHWc layout), which makes the fill faster than a graph run
    # unoptimised and gives the shipped bytes (unoptimised, a few pixels round differently).
    return options


def _load_and_save(ort: Any, path: Path, providers: list[Any], threads: int | None, cached: Path) -> Any:
    """A session on ``path`` optimised at load, its optimised graph saved as ``cached`` where that can be written."""
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    options = _options(ort, threads)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        writable = os.access(cached.parent, os.W_OK)
    except OSError:
        writable = False
    if writable:
        options.optimized_model_filepath = str(tmp)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception:
        if not writable:
            raise
        _discard(tmp)
        log.debug("cannot save %s's optimised graph in %s: loading it without the cache", path, cached.parent)
        return ort.InferenceSession(str(path), sess_options=_options(ort, threads), providers=providers)
    if writable:
        try:
            os.replace(tmp, cached)
            _prune(cached.parent)
        except OSError:
            _discard(tmp)
    return session


def _discard(path: Path) -> None:
    """Remove ``path`` if it is there and can be removed."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _machine_key(ort: Any) -> str:
    """What a graph optimised here is valid for: ONNX Runtime's version and this CPU (model and feature flags)."""
    cpu = platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu += "".join(sorted({line for line in lines if line.startswith(("model name", "flags", "Features"))}))
    except OSError:  # not Linux: the processor's name (platform.processor runs a command on Linux: slow)
        cpu += platform.processor()
    return hashlib.sha256(f"{ort.__version__} {cpu}".encode()).hexdigest()[:16]


def _prune(folder: Path) -> None:
    """Keep the ``CACHE_KEEP`` newest optimised graphs in ``folder``; drop what an interrupted save left behind."""
    copies = sorted(folder.glob(_CACHED_NAMES), key=lambda p: p.stat().st_mtime, reverse=True)
    stale = [tmp for tmp in folder.glob(f".{_CACHED_NAMES}.*.tmp") if time.time() - tmp.stat().st_mtime > 3600]
    for old in copies[CACHE_KEEP:] + stale:
        _discard(old)


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
