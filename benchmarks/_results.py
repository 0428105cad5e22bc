"""The one way a benchmark writes its section of ``benchmarks/RESULTS.md``: ``write_section(path, key, text)``,
``pconv.bench_report``'s (``pconv bench`` writes its own section with it too; the keys in use are listed there).
The benchmark scripts import it from here, their folder being on ``sys.path``.
"""

from __future__ import annotations

from pconv.bench_report import markers, write_section

__all__ = ["markers", "write_section"]
