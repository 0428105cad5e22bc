"""Shared test set-up: CPU, fixed seeds, no network, `gpu` and `slow` markers.

torch is imported only where a test needs it, so the tests in tests/light run in a venv without it (`make test-light`).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not _cuda_available():
            item.add_marker(skip_gpu)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """ONNX Runtime's optimisation cache (``pconv.backends``) goes to a folder of this run, not ~/.cache: the tests
    (and the processes they start) neither write to the user's home nor depend on what an earlier run left there."""
    os.environ["PCONV_CACHE_DIR"] = str(tmp_path_factory.mktemp("pconv-cache"))


@pytest.fixture(autouse=True)
def _seed_and_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed seed (torch's too, where a test has imported it); any connection outside loopback fails loudly."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise RuntimeError(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture
def make_weights(tmp_path: Path) -> Callable[..., Path]:
    """``make_weights(seed, config)`` saves a randomly initialised network (default depth 4, width 1/8) under
    tmp_path and returns the file; BatchNorm running means are random too, so tools that combine weights files
    are checked on the statistics as well as on the parameters."""

    import torch

    from pconv.config import ModelConfig
    from pconv.model import PConvUNet, save_weights

    def make(seed: int, config: ModelConfig | None = None) -> Path:
        config = config or ModelConfig(depth=4, width=0.125)
        torch.manual_seed(seed)
        model = PConvUNet(config)
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-1, 1)
        return save_weights(model, tmp_path / f"w{seed}_{config.depth}_{config.width}.safetensors")

    return make
