"""Folder throughput of `pconv inpaint` by `--batch-size` on the CPU: which default is fastest
(`pconv.inference.DEFAULT_BATCH`).

Run (from the repository root, after `make test` has made .venv and .venv-light):
    python benchmarks/bench_batch_size.py --light-python .venv-light/bin/python --full-python .venv/bin/python \
        [--photos 8] [--rounds 3] [--batch-sizes 1 2 4] [--out benchmarks/RESULTS.md]

The folder is `bench_light_inference.py`'s (``--photos`` crops of kodim23 at 512x512, every other one mirrored, the
demo's hole moved photo to photo), and the same photos with one mask for all (the first photo's, as when a
watermark is removed from every photo). Each run is a whole `pconv inpaint --image DIR --mask DIR` command, a
fresh process, images/s from start to exit (start-up and model load included); every backend (ONNX Runtime on the
base install, PyTorch on the full one), hole layout, number of passes (the default four, and one:
``--no-flip-average --no-shift-average``) and batch size in turn, round after round, so the machine's other load
falls on all alike; medians over ``--rounds``. The largest difference of any output pixel from the batch size 1
run's is reported too (the network's floats may depend on the batch). The section ``batch-size`` of ``--out`` is
replaced or added (``benchmarks/_results.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _results import write_section  # benchmarks/_results.py (this script's folder is on sys.path)
from bench_light_inference import ROOT, make_folder, run_once
from PIL import Image

HEADING = "## Batch size on the CPU: `pconv inpaint` on a folder"
ONE_PASS = ("--no-flip-average", "--no-shift-average")


def largest_difference(folder: Path, reference: Path) -> int:
    """The largest |difference| of any pixel of the images in ``folder`` from those of the same names in
    ``reference``, in levels (0..255)."""
    worst = 0
    for path in sorted(folder.iterdir()):
        a = np.asarray(Image.open(path).convert("RGB")).astype(int)
        b = np.asarray(Image.open(reference / path.name).convert("RGB")).astype(int)
        worst = max(worst, int(np.abs(a - b).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--light-python", default=str(ROOT / ".venv-light" / "bin" / "python"))
    parser.add_argument("--full-python", default=sys.executable)
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch rows (full install)")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write the section into")
    args = parser.parse_args()
    if 1 not in args.batch_sizes:
        parser.error("--batch-sizes must include 1 (the outputs are compared with it)")
    backends = {"ONNX Runtime (base install)": ("onnx", args.light_python)}
    if not args.no_torch:
        backends["PyTorch (full install)"] = ("torch", args.full_python)
    load_start = os.getloadavg()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    src = str(ROOT / "src")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images, moved = make_folder(root, args.photos)
        one_mask = root / "one_mask"
        one_mask.mkdir()
        first = sorted(moved.iterdir())[0]
        for path in sorted(moved.iterdir()):
            shutil.copyfile(first, one_mask / path.name)
        layouts = {"moved photo to photo": moved, "one mask for all": one_mask}
        cases = [
            (backend, layout, passes, batch)
            for backend in backends
            for passes in (4, 1)
            for layout in layouts
            for batch in sorted(args.batch_sizes)
        ]
        rates: dict[tuple[str, str, int, int], list[float]] = {case: [] for case in cases}
        differs: dict[tuple[str, str, int, int], int] = {}
        for round_ in range(args.rounds):
            for case in cases:
                backend, layout, passes, batch = case
                name, python = backends[backend]
                out = root / f"out_{cases.index(case)}"
                shutil.rmtree(out, ignore_errors=True)
                argv = [python, "-m", "pconv", "inpaint", "--image", str(images), "--mask", str(layouts[layout])]
                argv += ["--output", str(out), "--backend", name, "--batch-size", str(batch)]
                argv += list(ONE_PASS) if passes == 1 else []
                rates[case].append(args.photos / run_once(argv, src)[0])
                if round_ == 0:
                    reference = root / f"out_{cases.index((backend, layout, passes, 1))}"
                    differs[case] = largest_difference(out, reference)
                print(case, f"{rates[case][-1]:.2f} images/s", file=sys.stderr)
    load_end = os.getloadavg()
    sizes = sorted(args.batch_sizes)
    header = "| backend, passes | holes | " + " | ".join(f"`--batch-size {b}`" for b in sizes) + " |"
    lines = [HEADING, "", header, "|---|---|" + "---:|" * len(sizes)]
    for backend in backends:
        for passes in (4, 1):
            for layout in layouts:
                medians = [statistics.median(rates[(backend, layout, passes, b)]) for b in sizes]
                best = max(medians)
                cells = [f"**{m:.2f}**" if m == best else f"{m:.2f}" for m in medians]
                label = f"{backend}, {passes} pass{'es' if passes > 1 else ''}"
                lines.append(f"| {label} | {layout} | " + " | ".join(cells) + " |")
    worst = max(differs.values())
    options = f"--photos {args.photos} --rounds {args.rounds} --batch-sizes {' '.join(map(str, sizes))}"
    options += " --no-torch" if args.no_torch else ""
    lines += [
        "",
        "Images/s over the whole command (start-up and model load included), medians of the rounds.",
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, shared with other jobs; {started}; "
        f"load average (1, 5, 15 min) {' '.join(f'{x:.1f}' for x in load_start)} at the start and "
        f"{' '.join(f'{x:.1f}' for x in load_end)} at the end.",
        f"- Command: `python benchmarks/bench_batch_size.py {options} --out benchmarks/RESULTS.md`; "
        f"{args.photos} photos of 512x512, {args.rounds} rounds, every case in turn each round.",
        f"- Outputs against the same case at `--batch-size 1`: largest pixel difference {worst} level(s).",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.out is not None:
        write_section(args.out, "batch-size", section)


if __name__ == "__main__":
    main()
