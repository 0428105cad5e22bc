"""Whole-process time and peak memory of filling one 512² photo: `pconv inpaint` on ONNX Runtime (base install, no
torch) and on PyTorch, `pconv inpaint` before the light path (optional), and OpenCV's Navier-Stokes fill.

Run (from the repository root, after `make test-light` has made .venv-light):
    python benchmarks/bench_light_inference.py --light-python .venv-light/bin/python \
        --full-python .venv/bin/python [--before-src DIR] [--rounds 7] [--out benchmarks/RESULTS.md]

The photo is the bundled Kodak kodim23 cropped to 512x512 and the hole the demo's brush stroke and ellipse
(`pconv demo`), both written to a temporary folder. Every command is a fresh process, started in turn (A, B, C, A,
B, C, ...) so that the machine's other load falls on all of them alike; wall time is from start to exit, CPU time
the process's user + system seconds (all its threads; less sensitive to the other load than wall time: with idle
CPUs a process that keeps one busy ends within about its CPU time), peak memory the process's resident-set
high-water mark (all from ``wait4``'s resource usage). ``--before-src`` is a ``src``
folder of the code before this change (e.g. ``git archive 5be860d src | tar -x -C /tmp/before``), run with the
full venv. The default four-pass average (flip and shift) is used throughout. The section "Light inference" of
``--out`` is replaced (or added).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np
from _results import write_section  # benchmarks/_results.py (this script's folder is on sys.path)
from PIL import Image

from pconv.commands.demo import demo_hole

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Light inference: `pconv inpaint` on one 512² photo, whole process"
NS_SCRIPT = """
import sys, cv2
image = cv2.imread(sys.argv[1], cv2.IMREAD_COLOR)
hole = (cv2.imread(sys.argv[2], cv2.IMREAD_GRAYSCALE) > 127).astype("uint8") * 255
cv2.imwrite(sys.argv[3], cv2.inpaint(image, hole, 5, cv2.INPAINT_NS))
"""
# One process on the light path, timed step by step (printed as "name seconds" lines).
STEPS_SCRIPT = """
import sys, time
t0 = time.perf_counter()
from pconv.imageio import read_hole_mask, read_image, write_image
from pconv.inference import Inpainter
import onnxruntime
t1 = time.perf_counter()
inpainter = Inpainter(backend="onnx")
t2 = time.perf_counter()
picture = read_image(sys.argv[1]); hole = read_hole_mask(sys.argv[2])
t3 = time.perf_counter()
filled = inpainter.inpaint(picture.rgb, hole)
t4 = time.perf_counter()
write_image(sys.argv[3], filled, overwrite=True)
t5 = time.perf_counter()
for name, seconds in zip(("import", "load", "read", "fill", "write"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
    print(name, seconds)
"""
STEP_NAMES = {
    "import": "import pconv (numpy, Pillow) and onnxruntime",
    "load": "load the model (ONNX Runtime session, graph optimisation)",
    "read": "read the photo and the mask",
    "fill": "fill: four network passes (flip and shift average) and the numpy pipeline",
    "write": "write the PNG",
}


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """The 512x512 photo and its hole mask (white = hole) as PNG files in ``folder``."""
    sample = Path(str(resources.files("pconv").joinpath("assets").joinpath("kodim23.png")))
    photo = Image.open(sample).convert("RGB")
    left, top = (photo.width - 512) // 2, (photo.height - 512) // 2
    photo = photo.crop((left, top, left + 512, top + 512))
    photo.save(folder / "photo.png")
    demo_hole(512, 512).save(folder / "mask.png")
    return folder / "photo.png", folder / "mask.png"


def commands(
    args: argparse.Namespace, photo: Path, mask: Path, out: Path
) -> dict[str, tuple[list[str], str, int | None]]:
    """Label -> (argv, PYTHONPATH, scheduling priority or None) of each process to time."""
    src = str(ROOT / "src")

    def inpaint(python: str, name: str, *extra: str) -> list[str]:
        return [python, "-m", "pconv", "inpaint", "--image", str(photo), "--mask", str(mask)] + [
            "--output",
            str(out / f"{name}.png"),
            "--overwrite",
            *extra,
        ]

    runs = {
        "`pconv inpaint --backend onnx`, base install (no torch)": (
            inpaint(args.light_python, "onnx_light", "--backend", "onnx"),
            src,
        ),
        "`pconv inpaint` (auto = onnx here), full install (torch installed, not imported)": (
            inpaint(args.full_python, "onnx_full"),
            src,
        ),
        "`pconv inpaint --backend torch`, full install": (
            inpaint(args.full_python, "torch", "--backend", "torch"),
            src,
        ),
    }
    if args.before_src is not None:
        runs["`pconv inpaint` before this change (`--before-src`, full install, default backend)"] = (
            inpaint(args.full_python, "before"),
            str(args.before_src),
        )
    runs["OpenCV Navier-Stokes (`cv2.inpaint`, radius 5), read + fill + write"] = (
        [args.full_python, "-c", NS_SCRIPT, str(photo), str(mask), str(out / "ns.png")],
        src,
    )
    runs["`python -c 'import torch'` alone"] = ([args.full_python, "-c", "import torch"], src)
    timed = {label: (argv, path, None) for label, (argv, path) in runs.items()}
    if args.also_nice is not None:  # the same processes again, at a higher priority than the machine's other jobs
        for label, (argv, path) in runs.items():
            timed[f"{label}, at nice {args.also_nice}"] = (argv, path, args.also_nice)
    return timed


def run_once(argv: list[str], pythonpath: str, nice: int | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user + system), peak RSS MiB) of one process, at scheduling priority ``nice``
    (None: inherited); raises if it fails."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        renice = None if nice is None else (lambda: os.setpriority(os.PRIO_PROCESS, 0, nice))
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=errors, preexec_fn=renice)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{' '.join(argv[:4])}... exited {proc.returncode}: {errors.read().decode()[-500:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux


def steps(python: str, photo: Path, mask: Path, out: Path, rounds: int) -> dict[str, float]:
    """Median seconds of each step of the light path in one process (``STEPS_SCRIPT``), over ``rounds`` runs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    found: dict[str, list[float]] = {}
    for _ in range(rounds):
        text = subprocess.run(
            [python, "-c", STEPS_SCRIPT, str(photo), str(mask), str(out / "steps.png")],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for line in text.splitlines():
            name, value = line.split()
            found.setdefault(name, []).append(float(value))
    return {name: statistics.median(values) for name, values in found.items()}


def agreement(out: Path, photo: Path, mask: Path) -> str:
    """How the ONNX Runtime fill compares with PyTorch's: known pixels and the largest difference in the hole."""
    image = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    hole = np.asarray(Image.open(mask).convert("L")) > 127
    onnx, torch_fill = (
        np.asarray(Image.open(out / f"{n}.png").convert("RGB")).astype(int) for n in ("onnx_light", "torch")
    )
    known_same = bool((onnx[~hole] == image[~hole]).all() and (torch_fill[~hole] == image[~hole]).all())
    diff = np.abs(onnx - torch_fill)
    line = (
        f"ONNX Runtime vs PyTorch on this photo: known pixels identical to the input: {'yes' if known_same else 'NO'}; "
        f"fill max |difference| {diff.max()}/255, {int((diff.max(axis=-1) > 0).sum())} of {int(hole.sum())} hole "
        "pixels differ at all"
    )
    if (out / "before.png").exists():
        before = np.asarray(Image.open(out / "before.png").convert("RGB")).astype(int)
        line += f"; PyTorch backend vs before this change: max |difference| {np.abs(before - torch_fill).max()}"
    return line


def markdown(
    results: dict[str, list[tuple[float, float, float]]], step_times: dict[str, float], notes: list[str]
) -> str:
    header = "| process | wall s, median | wall s, min | CPU s (user + sys), median | peak RSS MiB, median |"
    lines = [HEADING, "", *notes, "", header, "|---|---:|---:|---:|---:|"]
    for label, runs in results.items():
        wall, cpu, mem = ([r[i] for r in runs] for i in range(3))
        lines.append(
            f"| {label} | {statistics.median(wall):.2f} | {min(wall):.2f} | {statistics.median(cpu):.2f} | "
            f"{statistics.median(mem):.0f} |"
        )
    lines += ["", "Where the light path's time goes (one process, base install, medians):", ""]
    lines += ["| step | s |", "|---|---:|"]
    lines += [f"| {STEP_NAMES[name]} | {value:.3f} |" for name, value in step_times.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--light-python", default=str(ROOT / ".venv-light" / "bin" / "python"))
    parser.add_argument("--full-python", default=sys.executable)
    parser.add_argument("--before-src", type=Path, default=None, help="src folder of the code before this change")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--also-nice",
        type=int,
        default=None,
        help="also time every process at this scheduling priority (e.g. -15, needs root): closer to an idle machine",
    )
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write the section into")
    args = parser.parse_args()
    load_start = os.getloadavg()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory() as tmp:
        photo, mask = make_inputs(Path(tmp))
        runs = commands(args, photo, mask, Path(tmp))
        results: dict[str, list[tuple[float, float, float]]] = {label: [] for label in runs}
        for argv, pythonpath, nice in runs.values():  # one warm-up each: the page cache, .pyc files
            run_once(argv, pythonpath, nice)
        for _ in range(args.rounds):
            for label, (argv, pythonpath, nice) in runs.items():
                results[label].append(run_once(argv, pythonpath, nice))
        step_times = steps(args.light_python, photo, mask, Path(tmp), args.rounds)
        agree = agreement(Path(tmp), photo, mask)
        hole_pct = 100 * float((np.asarray(Image.open(mask)) > 127).mean())
    load_end = os.getloadavg()
    options = f"--rounds {args.rounds}{' --before-src DIR' if args.before_src else ''}"
    options += f" --also-nice {args.also_nice}" if args.also_nice is not None else ""
    notes = [
        f"- Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, shared with other jobs; {started}; "
        f"load average (1, 5, 15 min) {' '.join(f'{x:.1f}' for x in load_start)} at the start and "
        f"{' '.join(f'{x:.1f}' for x in load_end)} at the end.",
        f"- Command: `python benchmarks/bench_light_inference.py {options} --out benchmarks/RESULTS.md`; "
        f"{args.rounds} rounds after one warm-up, processes interleaved; the photo: kodim23 cropped to 512x512, "
        "the hole: `pconv demo`'s "
        f"({hole_pct:.1f} % of the pixels); default settings (flip and shift average: four network passes).",
        f"- {agree}.",
    ]
    section = markdown(results, step_times, notes)
    print(section)
    if args.out is not None:
        write_section(args.out, "light-inference", section)


if __name__ == "__main__":
    main()
