"""How the benchmarks measure: interleaved timing, summaries, resident memory, the machine and Markdown tables.

Runs are interleaved (A, B, C, A, B, C, ...) so that other work on the machine slows every contender alike;
the figure that counts is the median, and the ratio between contenders timed in the same run. Used by
``pconv.bench`` (the ``pconv bench`` command) and the scripts in ``benchmarks/``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["interleaved", "summarize", "print_table", "machine_info", "peak_rss_mib", "rss_mib"]

MiB = 1024 * 1024


def interleaved(
    fns: Mapping[str, Callable[[], object]], *, warmup: int, repeats: int, sync: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Time each callable ``repeats`` times, round-robin (A, B, C, A, B, C, ...), after ``warmup`` rounds.

    Returns:
        name -> list of wall-clock seconds, one per round.
    """
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return times


def summarize(times: list[float]) -> dict[str, Any]:
    """Median, min and max of a list of seconds, plus the raw list."""
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "times_s": times}


def print_table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[object]], out: Path | None, *, note: str = ""
) -> str:
    """A Markdown section (``## title``, ``note``, a table), printed, and appended to ``out`` if given; returns it."""
    lines = [
        f"## {title}",
        "",
        *([note, ""] if note else []),
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    text = "\n".join([*lines, ""])
    print(text)
    if out is not None:
        with out.open("a") as f:
            f.write("\n" + text)
    return text


def machine_info() -> dict[str, Any]:
    """CPU model, core count, torch version, platform and date."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if hasattr(os, "getloadavg"):
        info["loadavg"] = " ".join(f"{x:.1f}" for x in os.getloadavg())  # other work on the machine
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def peak_rss_mib() -> float:
    """Peak resident set of this process's address space in MiB: ``VmHWM`` (Linux), else ``ru_maxrss``.

    ``ru_maxrss`` of a fresh subprocess can report its parent's peak (Linux carries it across fork and exec);
    ``VmHWM`` belongs to the address space that exec created.
    """
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / MiB
