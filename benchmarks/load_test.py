"""Load test of ``pconv serve`` on loopback: concurrent clients, status codes, latency and the server's memory.

Starts ``python -m pconv serve --port 0`` (a tiny random-weight network unless ``--weights`` is given) as a child
process on 127.0.0.1, sends ``--requests`` inpainting requests from ``--clients`` threads (images of random sizes
``--min-side``..``--max-side``, a box hole each), and reads the server's resident memory (VmRSS in
/proc/PID/status) after the first ``--warmup`` requests and at the end. Only 200 and 503 (overload: the client
waits the ``Retry-After`` the server sends, then retries) are acceptable answers. It stops by itself after
``--requests`` answers or ``--seconds``.

    PYTHONPATH=src python benchmarks/load_test.py --clients 8 --requests 500

``tests/test_load.py`` runs a shorter form of the same thing in CI.
"""

from __future__ import annotations

import argparse
import email.utils
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass
class LoadReport:
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # transport errors and unexpected statuses
    latencies: list[float] = field(default_factory=list)  # seconds, 200 answers only
    rss_start_kb: int = 0  # once the server is up, before any request
    rss_warm_kb: int = 0  # after the warm-up requests
    rss_end_kb: int = 0  # after the last request
    rss_trace_kb: list[tuple[int, int]] = field(default_factory=list)  # (answers, RSS) every `trace_every` answers
    seconds: float = 0.0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> str:
        lat = np.array(self.latencies) * 1000 if self.latencies else np.zeros(1)
        return (
            f"{self.answered} answers in {self.seconds:.1f} s ({self.answered / max(self.seconds, 1e-9):.1f}/s): "
            f"{dict(sorted(self.statuses.items()))}, {len(self.errors)} errors; latency of 200s p50 "
            f"{np.percentile(lat, 50):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms; server RSS "
            f"{self.rss_start_kb / 1024:.1f} MiB at start, {self.rss_warm_kb / 1024:.1f} MiB after warm-up, "
            f"{self.rss_end_kb / 1024:.1f} MiB at the end ({(self.rss_end_kb - self.rss_warm_kb) / 1024:+.1f} MiB)"
        )


def rss_kb(pid: int) -> int:
    """Resident set size of a process in KiB (Linux /proc)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1))


def retry_after(headers: Mapping[str, str], *, default: float = 1.0) -> float:
    """The seconds a 503's ``Retry-After`` asks a client to wait: delay-seconds or an HTTP date (RFC 9110, 10.2.3);
    ``default`` when it is missing or unreadable."""
    value = headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def tiny_weights(folder: Path) -> Path:
    import torch

    from pconv.config import ModelConfig
    from pconv.model import PConvUNet, save_weights

    torch.manual_seed(0)
    return save_weights(PConvUNet(ModelConfig(depth=4, width=0.125)), folder / "tiny.safetensors")


class Server:
    """``python -m pconv serve --port 0`` as a child process; ``url`` is read from its first line."""

    def __init__(self, weights: Path, *extra: str) -> None:
        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        cmd = [sys.executable, "-m", "pconv", "serve", "--host", "127.0.0.1", "--port", "0", "--weights", str(weights),
               "--device", "cpu", *extra]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()  # "pconv serve: web editor at http://127.0.0.1:PORT/ , ..."
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not found:
            self.stop()
            raise RuntimeError(f"pconv serve did not start: {line!r}")
        self.url = f"http://127.0.0.1:{found.group(1)}"
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep its pipe from filling

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl+C: uvicorn shuts down gracefully
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        return self.proc.returncode


def _request_body(rng: np.random.Generator, min_side: int, max_side: int) -> dict:
    h, w = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    hole = np.zeros((h, w), np.uint8)
    hole[h // 4 : h // 2 + 1, w // 4 : w // 2 + 1] = 255
    files = {}
    for name, arr in (("image", image), ("mask", hole)):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG", compress_level=1)
        files[name] = (f"{name}.png", buf.getvalue(), "image/png")
    return files


def run_load(
    url: str,
    pid: int,
    *,
    clients: int = 8,
    requests: int = 500,
    warmup: int = 50,
    seconds: float = 300.0,
    min_side: int = 32,
    max_side: int = 128,
    seed: int = 0,
    trace_every: int = 100,
) -> LoadReport:
    """Send ``requests`` requests from ``clients`` threads (or stop after ``seconds``); see the module docstring."""
    import httpx

    report = LoadReport(rss_start_kb=rss_kb(pid))
    lock, counter = threading.Lock(), {"sent": 0}
    deadline = time.monotonic() + seconds

    def take_ticket() -> int | None:
        with lock:
            if counter["sent"] >= requests or time.monotonic() > deadline:
                return None
            counter["sent"] += 1
            return counter["sent"]

    def client(index: int) -> None:
        rng = np.random.default_rng([seed, index])
        with httpx.Client(base_url=url, timeout=120, trust_env=False) as http:
            while take_ticket() is not None:
                files = _request_body(rng, min_side, max_side)
                start = time.monotonic()
                try:
                    response = http.post("/api/v1/inpaint", files=files)
                except httpx.HTTPError as exc:
                    with lock:
                        report.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    report.statuses[response.status_code] += 1
                    if response.status_code == 200:
                        report.latencies.append(time.monotonic() - start)
                        if not response.content.startswith(b"\x89PNG\r\n\x1a\n"):
                            report.errors.append(f"200 without a PNG: {response.content[:40]!r}")
                    elif response.status_code != 503:
                        report.errors.append(f"{response.status_code}: {response.text[:200]}")
                    if report.answered == warmup:
                        report.rss_warm_kb = rss_kb(pid)
                    if report.answered % trace_every == 0:
                        report.rss_trace_kb.append((report.answered, rss_kb(pid)))
                if response.status_code == 503:  # wait as the server asks, within the deadline
                    time.sleep(min(retry_after(response.headers), max(0.0, deadline - time.monotonic())))

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic() + 120))
    report.seconds = time.monotonic() - start
    report.rss_end_kb = rss_kb(pid)
    if not report.rss_warm_kb:
        report.rss_warm_kb = report.rss_start_kb
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50, help="requests before the 'warm' RSS reading")
    parser.add_argument("--seconds", type=float, default=300.0, help="stop after this long in any case")
    parser.add_argument("--min-side", type=int, default=32)
    parser.add_argument("--max-side", type=int, default=128)
    parser.add_argument("--max-concurrency", type=int, default=1)
    parser.add_argument("--max-queue", type=int, default=4, help="small, so that 8 clients see some 503s")
    parser.add_argument("--weights", type=Path, default=None, help="default: a tiny random network")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or tiny_weights(Path(tmp))
        server = Server(weights, "--max-concurrency", str(args.max_concurrency), "--max-queue", str(args.max_queue))
        try:
            report = run_load(server.url, server.pid, clients=args.clients, requests=args.requests,
                              warmup=args.warmup, seconds=args.seconds, min_side=args.min_side,
                              max_side=args.max_side)  # fmt: skip
        finally:
            code = server.stop()
    print(f"load_test: {args.clients} clients, {args.requests} requests, sides {args.min_side}..{args.max_side}: "
          f"{report.summary()}; server exit {code}")  # fmt: skip
    trace = ", ".join(f"{n}: {kb / 1024:.0f}" for n, kb in report.rss_trace_kb)
    print(f"  server RSS (MiB) by answers: {trace}")
    for error in report.errors[:10]:
        print(f"  error: {error}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
