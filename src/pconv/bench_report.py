"""Reports of benchmark results: the goals, ``RESULTS.md`` and the PNG chart of ``pconv bench``, and the one way
every benchmark writes its section of ``RESULTS.md`` (``write_section``).

Each benchmark owns sections of the file, each between two marker lines named by its key::

    <!-- light-inference:begin -->
    ## Light inference: ...
    ...
    <!-- light-inference:end -->

A run replaces its own section (markers included) and leaves every other byte of the file as it was; a key not yet
in the file is appended at its end, after one blank line. The markers are HTML comments, so the rendered page
(``docs/performance/results.md``) does not show them. Keys in use: ``pconv-bench`` (``pconv bench``, the head of
the file), ``light-inference`` and ``light-throughput`` (``benchmarks/bench_light_inference.py``), ``browser``
(``bench_browser.py``), ``scale-out MODEL PASSES`` (``bench_scale_out.py``), ``masks`` (``bench_masks.py``),
``test-time-average`` (``bench_test_time_average.py``), ``cpu-train-precision WIDTH``
(``bench_cpu_train_precision.py``), ``structure`` (``bench_structure.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["BENCH_SECTION", "goals", "markers", "render_markdown", "plot_results", "write_outputs", "write_section"]

BENCH_SECTION = "pconv-bench"  # the key of ``pconv bench``'s section of RESULTS.md


def goals(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's CPU goals, each with the figure reached and whether it is met."""
    rows: list[dict[str, Any]] = []
    fwd = results.get("forward", {}).get("results", {})
    pairs = (
        ("pconv_fused", "floor", "PConvUNet (fused, eager) <= 1.05x the eager floor"),
        ("pconv", "floor", "PConvUNet (plain, as trained, eager) <= 1.05x the eager floor"),
        ("pconv_fused_channels_last", "floor_channels_last", "channels_last: PConvUNet (fused) <= 1.05x the floor"),
    )
    for name, floor, goal in pairs:
        if name in fwd and floor in fwd:
            ratio = fwd[name]["median_s"] / fwd[floor]["median_s"]
            by_min = fwd[name]["min_s"] / fwd[floor]["min_s"]
            figure = f"{ratio:.3f}x medians ({by_min:.3f}x minimums)"
            rows.append({"goal": goal, "figure": figure, "met": ratio <= 1.05})
    holes = results.get("holes")
    if holes:
        spread = holes["pconv_fused"]["spread"]
        mins = [min(t) for t in holes["pconv_fused"]["times_s"]]
        figure = f"{spread:.1%} spread of medians ({(max(mins) - min(mins)) / min(mins):.1%} of minimums)"
        goal = "latency independent of the hole ratio within 5 % (fused)"
        rows.append({"goal": goal, "figure": figure, "met": spread <= 0.05})
    large = next((r for r in results.get("sizes", []) if (r["h"], r["w"]) == tuple(results["settings"]["large"])), None)
    if large is not None:
        if "error" in large:
            rows.append({"goal": "peak memory at the large image < 2 GiB", "figure": large["error"], "met": False})
        else:
            peak = large["peak_rss_mib"]
            rows.append(
                {
                    "goal": f"peak memory at {large['w']}x{large['h']} < 2 GiB",
                    "figure": f"{peak / 1024:.2f} GiB ({large['strategy']})",
                    "met": peak < 2048,
                }
            )
    fast = results.get("fast_paths")
    if fast:
        best = fast["fastest_pconv"]
        rows.append(
            {
                "goal": "fastest CPU path vs the eager floor",
                "figure": f"{best}: {fast['results'][best]['vs_floor']:.3f}x",
                "met": None,
            }
        )
    return rows


def write_outputs(results: Mapping[str, Any], out_dir: Path, *, command: str) -> list[Path]:
    """Write ``results.json``, ``RESULTS.md`` and ``results.png`` (atomically); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {**results, "command": command}
    paths = [out_dir / "results.json", out_dir / "RESULTS.md", out_dir / "results.png"]
    _atomic_write_text(paths[0], json.dumps(results, indent=1) + "\n")
    write_section(paths[1], BENCH_SECTION, render_markdown(results, chart=paths[2].name))  # the other sections stay
    tmp = paths[2].with_name(paths[2].stem + ".tmp.png")
    plot_results(results, tmp)
    tmp.replace(paths[2])
    return paths


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


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


LABELS: dict[str, str] = {
    "floor": "floor: plain convs, same shapes, no mask (eager, BatchNorm as modules)",
    "floor_fused": "floor, BatchNorm folded",
    "floor_channels_last": "floor, channels_last",
    "pconv": "PConvUNet as trained (eval mode)",
    "pconv_fused": "PConvUNet fused for inference (`fuse_for_inference`)",
    "pconv_fused_channels_last": "PConvUNet fused, channels_last",
    "reference": "reference: C-channel mask conv at every layer (common re-implementations)",
    "pconv_compiled": "PConvUNet fused, `torch.compile`",
    "pconv_onnxruntime": "PConvUNet fused, ONNX Runtime CPU EP",
    "floor_onnxruntime": "floor (BatchNorm folded), ONNX Runtime CPU EP",
}


def _latency_table(entries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["| network | median ms | min ms | vs eager floor |", "|---|---:|---:|---:|"]
    for name, e in entries.items():
        lines.append(
            f"| {LABELS.get(name, name)} | {e['median_s'] * 1e3:.1f} | {e['min_s'] * 1e3:.1f} | {e['vs_floor']:.3f}x |"
        )
    return lines


def render_markdown(results: Mapping[str, Any], *, chart: str = "results.png") -> str:
    """``RESULTS.md``: machine, command, the goals and every section's table."""
    m, s = results["machine"], results["settings"]
    cfg = s["model"]
    lines = [
        "# pconv benchmarks",
        "",
        f"- Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; torch {m['torch']}, Python {m['python']}"
        + (f"; GPU {m['gpu']}" if "gpu" in m else ""),
        f"- Date: {m['date']}; `torch.set_num_threads({results['threads']})`"
        + (f"; load average at the start {m['loadavg']}" if "loadavg" in m else ""),
        f"- Command: `{results.get('command', '?')}`",
        f"- Model: depth {cfg['depth']}, width {cfg['width']} (depth 8, width 1 is the paper's network); "
        f"hole ratio {s['hole_ratio']:.0%} unless stated; {s['warmup']} warm-up and {s['repeats']} timed rounds, "
        "runs interleaved (A, B, C, A, B, C, ...), medians.",
        "- Other processes may have been running on this machine: absolute times are noisy, the ratio to the "
        "floor *in the same interleaved run* is the figure that matters.",
        "",
        f"![benchmark chart]({chart})",
        "",
    ]
    rows = goals(results)
    if rows:
        lines += ["## Goals", "", "| goal | reached | met |", "|---|---|---|"]
        marks = {True: "yes", False: "**no**", None: "-"}
        lines += [f"| {r['goal']} | {r['figure']} | {marks[r['met']]} |" for r in rows]
        lines.append("")
    for key, render in (
        ("forward", _md_forward),
        ("holes", _md_holes),
        ("fast_paths", _md_fast),
        ("sizes", _md_sizes),
        ("training", _md_training),
        ("gpu", _md_gpu),
    ):
        if key in results:
            lines += render(results[key]) + [""]
    if "gpu" not in results:
        lines += [
            "## GPU",
            "",
            "Not run: no GPU was available for this run. `pconv bench --device cuda` measures "
            "batch-1 fp32/bf16 latency with CUDA graphs and batch-64 bf16 throughput (channels_last, "
            "`torch.compile`), each beside the floor from the same run.",
            "",
        ]
    return "\n".join(lines)


def _md_forward(r: Mapping[str, Any]) -> list[str]:
    head = [f"## Forward latency, {r['size']}x{r['size']}, batch 1, hole ratio {r['hole_ratio']:.0%}", ""]
    return head + _latency_table(r["results"])


def _md_holes(r: Mapping[str, Any]) -> list[str]:
    lines = [
        f"## Latency against the hole ratio, {r['size']}x{r['size']}",
        "",
        "| network | " + " | ".join(f"{x:.0%} holes" for x in r["hole_ratios"]) + " | spread |",
        "|---|" + "---:|" * (len(r["hole_ratios"]) + 1),
    ]
    for name in ("pconv_fused", "pconv"):
        ms = " | ".join(f"{t * 1e3:.1f} ms" for t in r[name]["median_s"])
        lines.append(f"| {LABELS[name]} | {ms} | {r[name]['spread']:.1%} |")
    return lines


def _md_fast(r: Mapping[str, Any]) -> list[str]:
    lines = [f"## Fastest CPU path, {r['size']}x{r['size']}, against the eager floor", ""]
    lines += _latency_table(r["results"])
    notes = r["notes"]
    lines.append("")
    if "compile_s" in notes:
        lines.append(
            f"- `torch.compile`: first call (compilation) {notes['compile_s']:.0f} s; max |diff| to eager "
            f"{notes['compiled_max_abs_diff']:.1e}."
        )
    if "onnxruntime_max_abs_diff" in notes:
        lines.append(
            f"- ONNX Runtime: export {notes['onnx_export_s']:.1f} s; max |diff| to eager "
            f"{notes['onnxruntime_max_abs_diff']:.1e}."
        )
    lines += [f"- {k}: {v}" for k, v in notes.items() if k.endswith("error")]
    lines.append(
        f"- Fastest partial-conv path: {LABELS.get(r['fastest_pconv'], r['fastest_pconv'])}, "
        f"{r['results'][r['fastest_pconv']]['vs_floor']:.3f}x the eager floor."
    )
    return lines


def _md_sizes(rows: list[Mapping[str, Any]]) -> list[str]:
    lines = [
        "## Latency and peak memory against size (fused model, a fresh process per size)",
        "",
        "Peak memory is the process's resident-set high-water mark (`VmHWM`): Python, torch and the "
        "weights included; 'before' is the resident set just before the first forward.",
        "",
        "| size (WxH) | strategy | median s | peak RSS MiB | before MiB |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['w']}x{r['h']} | - | - | - | {r['error']} |")
        else:
            lines.append(
                f"| {r['w']}x{r['h']} | {r['strategy']} | {r['median_s']:.3f} | {r['peak_rss_mib']:.0f} | "
                f"{r['rss_before_mib']:.0f} |"
            )
    return lines


def _md_training(r: Mapping[str, Any]) -> list[str]:
    return [
        f"## Training, {r['size']}x{r['size']}, batch {r['batch']}",
        "",
        f"Forward, L1 loss, backward and an Adam step on `PConvUNet` in train mode: median step "
        f"{r['step']['median_s']:.2f} s, **{r['images_per_s']:.2f} images/s**.",
    ]


def _md_gpu(r: Mapping[str, Any]) -> list[str]:
    lines = [f"## GPU ({r['device']}), {r['size']}x{r['size']}", ""]
    lines += ["| dtype | network | median ms |", "|---|---|---:|"]
    for dtype, entries in r["latency"].items():
        lines += [f"| {dtype} | {LABELS.get(n, n)} | {e['median_s'] * 1e3:.3f} |" for n, e in entries.items()]
    t = r["throughput"]
    lines += ["", f"Batch {t['batch']}, {t['dtype']}:", "", "| network | images/s |", "|---|---:|"]
    lines += [f"| {n} | {e['images_per_s']:.0f} |" for n, e in t["results"].items()]
    return lines


def plot_results(results: Mapping[str, Any], path: Path) -> None:
    """A PNG with the latency bars, the hole-ratio curve and latency/memory against size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    # The forward section's figures, plus the paths only the fast-path section has (each ratio from its own run).
    entries = {**results.get("fast_paths", {}).get("results", {}), **results.get("forward", {}).get("results", {})}
    if entries:
        names = sorted(entries, key=lambda n: entries[n]["vs_floor"])
        ratios = [entries[n]["vs_floor"] for n in names]
        colors = ["tab:grey" if n.startswith("floor") else "tab:red" if n == "reference" else "tab:blue" for n in names]
        axes[0].barh(range(len(names)), ratios, color=colors)
        axes[0].set_yticks(range(len(names)), [n.replace("_", " ") for n in names], fontsize=8)
        axes[0].axvline(1.0, color="k", lw=0.8)
        axes[0].set_xlabel("latency / eager floor (same run)")
        axes[0].set_title(f"{results['settings']['size']}² forward, batch 1, CPU")
    holes = results.get("holes")
    if holes:
        for name in ("pconv_fused", "pconv"):
            axes[1].plot(
                [100 * r for r in holes["hole_ratios"]],
                [t * 1e3 for t in holes[name]["median_s"]],
                "o-",
                label=name.replace("_", " "),
            )
        axes[1].set_ylim(bottom=0)
        axes[1].set_xlabel("hole ratio (%)")
        axes[1].set_ylabel("median latency (ms)")
        axes[1].set_title("latency against hole ratio")
        axes[1].legend()
    sizes = [r for r in results.get("sizes", []) if "error" not in r]
    if sizes:
        mpix = [r["h"] * r["w"] / 1e6 for r in sizes]
        axes[2].loglog(mpix, [r["median_s"] for r in sizes], "o-", color="tab:blue", label="latency (s)")
        axes[2].loglog(
            mpix, [r["peak_rss_mib"] / 1024 for r in sizes], "s--", color="tab:orange", label="peak RSS (GiB)"
        )
        axes[2].axhline(2.0, color="tab:orange", lw=0.6, ls=":")
        axes[2].set_xlabel("megapixels")
        axes[2].set_title("fused model against size")
        axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
