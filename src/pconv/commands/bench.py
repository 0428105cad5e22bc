"""``pconv bench``: speed and memory of the partial-convolution U-Net against its floor (see benchmarks/)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

HELP = "Measure latency, memory and training speed against a plain-convolution floor; write RESULTS.md."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("benchmarks"),
        help="where results.json, RESULTS.md and results.png go (default: %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny model and sizes, seconds: checks the script runs (figures mean nothing)",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu runs the CPU sections; cuda runs the GPU section (default: %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=None, help="timed interleaved rounds (default: 7, quick 2)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (minutes on a small CPU)")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime")
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --output-dir")


def run(args: argparse.Namespace) -> int:
    from pconv.bench import BenchSettings, run_benchmarks
    from pconv.bench_report import goals, write_outputs

    existing = [p for p in ("results.json", "RESULTS.md", "results.png") if (args.output_dir / p).exists()]
    if existing and not args.overwrite:
        raise ValueError(f"{args.output_dir} already holds {', '.join(existing)}; pass --overwrite to replace them")
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    overrides: dict[str, object] = {"device": args.device, "threads": args.threads}
    overrides.update(compile=False if args.no_compile else not args.quick, onnx=not args.no_onnx)
    if args.repeats is not None:
        overrides["repeats"] = max(1, args.repeats)
    settings = BenchSettings.quick(**overrides) if args.quick else BenchSettings(**overrides)  # type: ignore[arg-type]
    results = run_benchmarks(settings, progress=lambda msg: print(f"pconv bench: {msg}", flush=True))
    paths = write_outputs(results, args.output_dir, command=_command_line(args))
    for row in goals(results):
        met = {True: "met", False: "NOT met", None: ""}[row["met"]]
        print(f"pconv bench: {row['goal']}: {row['figure']} {met}".rstrip())
    print(f"pconv bench: wrote {', '.join(str(p) for p in paths)}")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The ``pconv bench`` command equivalent to ``args`` (for RESULTS.md)."""
    words = ["pconv", "bench", "--output-dir", str(args.output_dir), "--device", args.device]
    words += ["--threads", str(args.threads)] + (["--repeats", str(args.repeats)] if args.repeats else [])
    flags = {"--quick": args.quick, "--no-compile": args.no_compile, "--no-onnx": args.no_onnx}
    words += [flag for flag, on in flags.items() if on] + (["--overwrite"] if args.overwrite else [])
    return " ".join(shlex.quote(w) for w in words)
