#!/usr/bin/env python3
"""Benchmark pconv against its floor: ``python benchmarks/bench.py [options]`` = ``pconv bench [options]``.

Writes ``benchmarks/results.json``, ``benchmarks/RESULTS.md`` and ``benchmarks/results.png`` by default;
``--quick`` runs a tiny model in seconds, ``--device cuda`` the GPU section. The code is in ``pconv.bench``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a checkout without installing: the package lives in ../src.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pconv.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", "--output-dir", str(Path(__file__).resolve().parent), *sys.argv[1:]]))
