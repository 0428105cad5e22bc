"""Load test of ``pconv serve`` on loopback (short form of ``benchmarks/load_test.py``).

A real ``python -m pconv serve --port 0`` process with a tiny network gets 600 requests from 8 concurrent clients
(at most 1 inference running and 4 waiting, so some clients are told 503 and retry after the ``Retry-After`` the
server sends), with the server's default fill. Every answer must be 200 or 503, every 200 a PNG, and the server's
resident memory after the last request within 20 MiB of its value after 100 warm-up requests: a leak of one decoded
96x96 image per request would add about 55 MiB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from load_test import Server, retry_after, run_load, tiny_weights  # noqa: E402

RSS_GROWTH_LIMIT_KB = 20 * 1024


def test_client_reads_retry_after_as_seconds_or_a_date() -> None:
    import email.utils
    import time

    assert retry_after({"retry-after": "3"}) == 3.0
    in_five = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 < retry_after({"retry-after": in_five}) <= 5.0
    assert retry_after({}) == 1.0 and retry_after({"retry-after": "soon"}, default=0.5) == 0.5


def test_eight_clients_get_only_200_or_503_and_server_memory_stays_flat(tmp_path: Path) -> None:
    import httpx

    # The server's default fill (four passes and the smooth blend); a client told 503 waits the Retry-After it is sent.
    server = Server(tiny_weights(tmp_path), "--max-concurrency", "1", "--max-queue", "4")
    try:
        report = run_load(server.url, server.pid, clients=8, requests=600, warmup=100, seconds=240, min_side=96,
                          max_side=96)  # fmt: skip
        health = httpx.get(f"{server.url}/health", trust_env=False, timeout=30).json()
    finally:
        server.stop()
    print(report.summary())
    assert report.errors == [], report.errors[:5]
    assert report.answered == 600 and set(report.statuses) <= {200, 503}
    assert report.statuses[200] >= 300, report.statuses  # overload sheds some requests, not most of them
    assert health["running"] == 0 and health["waiting"] == 0  # every slot was given back
    assert report.rss_end_kb - report.rss_warm_kb < RSS_GROWTH_LIMIT_KB, report.summary()
