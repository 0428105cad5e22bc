"""Evaluation reports: Markdown tables, JSON, per-case CSV, metric-vs-hole-ratio plots and a sample grid.

Everything here takes the output of ``pconv.evaluate`` (``summarize`` and the ``CaseResult`` list) and writes
files atomically (temporary name + rename) into an output folder that ``prepare_out_dir`` has checked.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pconv.evaluate import KINDS, CaseResult, bin_label, case_rows

__all__ = ["METRICS", "prepare_out_dir", "markdown_report", "write_report"]

# metric key -> (column title, format, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "l1": ("l1 (%)", "{:.2f}", False),
    "psnr": ("PSNR (dB)", "{:.2f}", True),
    "ssim": ("SSIM", "{:.3f}", True),
}
KIND_NAMES = {"N": "N (no hole within 50 px of the border)", "B": "B (holes may touch the border)"}
CLASSICAL = ("telea", "ns", "patchmatch")  # the baselines pconv must beat; ``mean`` is a floor, not a rival


def prepare_out_dir(out: Path, *, overwrite: bool) -> Path:
    """Create ``out``; refuse an existing non-empty folder unless ``overwrite`` (then files are replaced)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out {out} is not empty; pass --overwrite to replace the report files in it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _fmt(agg: dict, metric: str) -> str:
    value = agg[metric]
    if isinstance(value, float) and math.isnan(value):
        return "∞" if metric == "psnr" and agg["psnr_infinite"] else "–"
    text = METRICS[metric][1].format(value)
    if metric == "psnr" and agg["psnr_infinite"]:
        text += f" (+{agg['psnr_infinite']}×∞)"
    return text


def _header() -> list[str]:
    cols = [f"{kind} {METRICS[m][0]}" for kind in KINDS for m in METRICS]
    return ["| hole ratio | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]


def _rows(entry: dict) -> list[str]:
    rows = []
    for label, cells in [*entry["cells"].items(), ("all bins", entry["all"])]:
        values = [_fmt(cells[kind], m) for kind in KINDS for m in METRICS]
        rows.append(f"| {label} | " + " | ".join(values) + " |")
    return rows


def _best(summary: dict, cell: tuple[str, str] | None, kind: str, metric: str) -> str:
    """``value method`` of the best method in one cell (ties: every tied method)."""

    def agg_of(name: str) -> dict:
        entry = summary[name]
        return entry["all"][kind] if cell is None else entry["cells"][cell[0]][kind]

    scored = [(agg_of(n)[metric], n) for n in summary if not math.isnan(agg_of(n)[metric])]
    if not scored:
        return "–"
    text = METRICS[metric][1].format(_pick_best(scored, metric)[0])
    winners = [n for v, n in scored if METRICS[metric][1].format(v) == text]
    return f"{text} {'/'.join(winners)}"


def _comparison(summary: dict) -> list[str]:
    labels = list(next(iter(summary.values()))["cells"])
    lines = ["## Best method per cell", "", *_header()]
    for label in [*labels, None]:
        values = [_best(summary, None if label is None else (label, ""), kind, m) for kind in KINDS for m in METRICS]
        lines.append(f"| {label or 'all bins'} | " + " | ".join(values) + " |")
    return lines


def _pick_best(scored: list[tuple[float, str]], metric: str) -> tuple[float, str]:
    """The best ``(value, method)`` of non-NaN scores: highest PSNR/SSIM, lowest l1."""
    return max(scored) if METRICS[metric][2] else min(scored)


def _beats(value: float, rival: float, metric: str) -> bool:
    return value > rival if METRICS[metric][2] else value < rival


def _against_classical(summary: dict, method: str = "pconv") -> list[str]:
    """Cell-by-cell table of ``method`` against the best classical method of each cell and metric.

    A cell is bold where ``method`` is strictly better on the unrounded means; empty cells are skipped. Returns
    no lines unless ``method`` and at least one of ``CLASSICAL`` are in ``summary``.
    """
    rivals = [name for name in CLASSICAL if name in summary]
    if method not in summary or not rivals:
        return []
    lines = [
        f"## {method} against the best classical method ({', '.join(rivals)})",
        "",
        "Bold: better than the best classical method of that cell on the unrounded means.",
        "",
        "| hole ratio | kind | " + " | ".join(f"{method} {METRICS[m][0]} | best classical" for m in METRICS) + " |",
        "|---" * (2 + 2 * len(METRICS)) + "|",
    ]
    wins = {m: 0 for m in METRICS}
    all_three = cells = 0
    for label, by_kind in summary[method]["cells"].items():
        for kind in KINDS:
            agg = by_kind[kind]
            if agg["n"] == 0:
                continue
            cells += 1
            row, won_all = [label, kind], True
            for metric in METRICS:
                scored = [(summary[r]["cells"][label][kind][metric], r) for r in rivals]
                scored = [(v, r) for v, r in scored if not math.isnan(v)]
                text = _fmt(agg, metric)
                if not scored:
                    row += [text, "–"]
                    won_all = False
                    continue
                best, rival = _pick_best(scored, metric)
                won = not math.isnan(agg[metric]) and _beats(agg[metric], best, metric)
                wins[metric] += won
                won_all = won_all and won
                row += [f"**{text}**" if won else text, f"{METRICS[metric][1].format(best)} {rival}"]
            all_three += won_all
            lines.append("| " + " | ".join(row) + " |")
    counts = ", ".join(f"{METRICS[m][0].split(' ')[0]} {wins[m]}/{cells}" for m in METRICS)
    lines += ["", f"Cells where {method} beats the best classical method: {counts}, all three {all_three}/{cells}."]
    return lines


def markdown_report(summary: dict, settings: dict) -> str:
    """The results.md text: settings, one table per method, a best-per-cell table, times."""
    lines = ["# Evaluation results", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    lines += [
        "- columns: " + "; ".join(KIND_NAMES.values()),
        "- l1: mean absolute error over the whole 512x512 composite on [0, 1], in %; PSNR: mean over cases "
        "with a finite value (identical images counted as ×∞); SSIM: scikit-image, uniform 7x7 window",
        "",
    ]
    for method, entry in summary.items():
        overall = entry["overall"]
        lines += [
            f"## {method}",
            "",
            *_header(),
            *_rows(entry),
            "",
            f"Overall ({overall['n']} cases): l1 {_fmt(overall, 'l1')} %, PSNR {_fmt(overall, 'psnr')} dB, "
            f"SSIM {_fmt(overall, 'ssim')}; {overall['seconds']:.3f} s per image.",
            "",
        ]
    if len(summary) > 1:
        lines += [*_comparison(summary), ""]
    if against := _against_classical(summary):
        lines += [*against, ""]
    lines += ["## Time per image", "", "| method | seconds per image | cases |", "|---|---|---|"]
    lines += [f"| {m} | {e['overall']['seconds']:.3f} | {e['overall']['n']} |" for m, e in summary.items()]
    return "\n".join(lines) + "\n"


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN (no finite PSNR in a cell) is written as null; infinities are counted separately
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _csv_bytes(rows: list[dict[str, object]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def _figure_bytes(fig: object) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return buf.getvalue()


def plot_metric(summary: dict, metric: str) -> bytes:
    """PNG of one metric against the mean hole ratio of each bin, N and B side by side, a line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(KINDS), figsize=(11, 4), sharey=True)
    for ax, kind in zip(axes, KINDS):
        for method, entry in summary.items():
            cells = [entry["cells"][label][kind] for label in entry["cells"]]
            ax.plot([c["hole_ratio"] for c in cells], [c[metric] for c in cells], marker="o", label=method)
        ax.set_title(KIND_NAMES[kind])
        ax.set_xlabel("hole ratio")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(METRICS[metric][0])
    axes[-1].legend()
    fig.tight_layout()
    return _figure_bytes(fig)


def sample_grid(results: Sequence[CaseResult], methods: Sequence[str], *, thumb: int = 256) -> bytes | None:
    """PNG grid: a row per sample case; columns: input (hole in white), each method's composite, truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from pconv.evaluate import load_photo

    samples = {(r.case.index, r.method): r for r in results if r.sample is not None}
    cases = sorted({r.case.index: r.case for r in samples.values()}.items())
    methods = [m for m in methods if any(method == m for _, method in samples)]  # reused scores have no pictures
    if not cases:
        return None
    cols = ["input", *methods, "truth"]
    fig, axes = plt.subplots(len(cases), len(cols), figsize=(2.2 * len(cols), 2.4 * len(cases)), squeeze=False)
    for row, (index, case) in enumerate(cases):
        truth = load_photo(case.photo)
        holed = truth.copy()
        holed[samples[(index, methods[0])].sample_hole.astype(bool)] = 255  # type: ignore[union-attr]
        images = [holed, *[samples[(index, m)].sample for m in methods], truth]
        for col, (title, image) in enumerate(zip(cols, images)):
            ax = axes[row][col]
            ax.imshow(np.asarray(Image.fromarray(image).resize((thumb, thumb), Image.Resampling.LANCZOS)))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title)
        axes[row][0].set_ylabel(f"{case.photo.stem}\n{bin_label(case.bin_index)} {case.kind}", fontsize=8)
    fig.tight_layout()
    return _figure_bytes(fig)


def write_report(out: Path, summary: dict, results: Sequence[CaseResult], settings: dict) -> list[Path]:
    """Write results.md, results.json, cases.csv, plot_<metric>.png and samples.png into ``out``."""
    written = []
    files: dict[str, bytes | None] = {
        "results.md": markdown_report(summary, settings).encode(),
        "results.json": json.dumps(_json_safe({"settings": settings, "methods": summary}), indent=2).encode(),
        "cases.csv": _csv_bytes(case_rows(results)),
        **{f"plot_{m}.png": plot_metric(summary, m) for m in METRICS},
        "samples.png": sample_grid(results, list(summary)),
    }
    for name, data in files.items():
        if data is not None:
            _atomic_bytes(out / name, data)
            written.append(out / name)
    return written
