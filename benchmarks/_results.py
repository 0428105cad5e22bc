"""The one way a benchmark writes its section of ``benchmarks/RESULTS.md``: ``write_section(path, key, text)``.

Each benchmark owns sections of the file, each between two marker lines named by its key::

    <!-- light-inference:begin -->
    ## Light inference: ...
    ...
    <!-- light-inference:end -->

A run replaces its own section (markers included) and leaves every other byte of the file as it was; a key not yet
in the file is appended at its end, after one blank line. The markers are HTML comments, so the rendered page
(``docs/performance/results.md``) does not show them. Keys in use: ``light-inference`` and ``light-throughput``
(``bench_light_inference.py``), ``browser`` (``bench_browser.py``), ``scale-out MODEL PASSES``
(``bench_scale_out.py``), ``masks`` (``bench_masks.py``), ``test-time-average`` (``bench_test_time_average.py``),
``cpu-train-precision WIDTH`` (``bench_cpu_train_precision.py``), ``structure`` (``bench_structure.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["markers", "write_section"]


def markers(key: str) -> tuple[str, str]:
    """The (begin, end) marker lines around the section ``key``, without their newlines."""
    if not key or "\n" in key or "--" in key:
        raise ValueError(f"a section key is one line without '--', got {key!r}")
    return f"<!-- {key}:begin -->", f"<!-- {key}:end -->"


def write_section(path: str | Path, key: str, text: str) -> None:
    """Replace the section ``key`` of ``path`` by ``text``, or append it; every other byte stays as it was.

    Args:
        path: the Markdown file (created if missing).
        key: the section's name (``markers``); one line.
        text: the section's Markdown, its heading included; a trailing newline is added if missing.
    Raises:
        ValueError: a bad key, or the file holds the section's begin marker without its end (or the other way).
    """
    path = Path(path)
    begin, end = markers(key)
    old = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text.rstrip(chr(10))}\n{end}\n"
    lines = old.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == begin]
    stops = [i for i, line in enumerate(lines) if line.rstrip("\n") == end]
    if not starts and not stops:
        new = (old.rstrip("\n") + "\n\n" if old.strip() else "") + block
    elif len(starts) == 1 and len(stops) == 1 and starts[0] < stops[0]:
        new = "".join(lines[: starts[0]]) + block + "".join(lines[stops[0] + 1 :])
    else:
        raise ValueError(f"{path}: the markers of section {key!r} are unpaired or repeated; fix them by hand")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)  # a reader never sees half a file
