"""Whole-process time and peak memory of filling one 512² photo: `pconv inpaint` on ONNX Runtime (base install, no
torch) and on PyTorch, `pconv inpaint` before this change (optional), and OpenCV's Navier-Stokes fill; where the
light path's time goes (imports, session, fill, PNG write); and a folder's throughput on the base install.

Run (from the repository root, after `make test-light` has made .venv-light):
    python benchmarks/bench_light_inference.py --light-python .venv-light/bin/python \
        --full-python .venv/bin/python [--before-src DIR] [--rounds 7] [--out benchmarks/RESULTS.md]

The photo is the bundled Kodak kodim23 cropped to 512x512 and the hole the demo's brush stroke and ellipse
(`pconv demo`), both written to a temporary folder. Every command is a fresh process, started in turn (A, B, C, A,
B, C, ...) so that the machine's other load falls on all of them alike; wall time is from start to exit, CPU time
the process's user + system seconds (all its threads; less sensitive to the other load than wall time: with idle
CPUs a process that keeps one busy ends within about its CPU time), peak memory the process's resident-set
high-water mark (all from ``wait4``'s resource usage). **The ratio to Navier-Stokes** is taken round by round (each
`pconv inpaint` against the Navier-Stokes process of the same round) and the median of those ratios reported, so a
busy moment weighs on both sides of a pair. ``--before-src`` is a ``src`` folder of the code before this change
(``git archive COMMIT src | tar -x -C /tmp/before``, then ``--before-src /tmp/before/src``), run with
``--before-python`` (default: the base install); its output pixels are compared with this code's. The default
four-pass average (flip and shift) is used throughout.

The step table times the light path inside one process (``STEPS_SCRIPT``), this code and the code before
alternating. The folder throughput (``--folder N`` photos, 0 to skip): ``pconv inpaint`` on a folder of N 512x512
PNG photos (crops of kodim23 at different offsets, every other one mirrored; the demo's hole moved for each), one
process per run, for each ``--batch-sizes``, this code and the code before alternating; images/s over the whole
command (start-up and model load included). The large photo (``--no-large`` to skip): ``pconv inpaint`` on a
4000x3000 JPEG with three small holes (``make_large``), each code ``--folder-rounds`` times, wall time and peak
memory, and whether the output files are byte-identical. The section ``light-inference`` of ``--out`` is replaced
or added (``benchmarks/_results.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
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
LIGHT = "`pconv inpaint --backend onnx`, base install (no torch)"
BEFORE = "`pconv inpaint --backend onnx` before this change (`--before-src`)"
NS = "OpenCV Navier-Stokes (`cv2.inpaint`, radius 5), read + fill + write"
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
    "fill": "fill: four network passes (flip and shift average) and the smooth blend, one graph",
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


def make_folder(folder: Path, count: int) -> tuple[Path, Path]:
    """``count`` 512x512 PNG photos in ``folder/images`` and their masks (same names) in ``folder/masks``."""
    sample = Image.open(Path(str(resources.files("pconv").joinpath("assets").joinpath("kodim23.png")))).convert("RGB")
    hole = np.asarray(demo_hole(512, 512))
    images, masks = folder / "images", folder / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(count):
        left = (sample.width - 512) * i // max(count - 1, 1)
        photo = sample.crop((left, 0, left + 512, 512))
        photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i % 2 else photo
        photo.save(images / f"p{i:03d}.png")
        Image.fromarray(np.roll(hole, (17 * i, 29 * i), axis=(0, 1))).save(masks / f"p{i:03d}.png")
    return images, masks


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

    runs = {LIGHT: (inpaint(args.light_python, "onnx_light", "--backend", "onnx"), src)}
    if args.before_src is not None:
        runs[BEFORE] = (inpaint(args.before_python, "before", "--backend", "onnx"), str(args.before_src))
    runs[NS] = ([args.full_python, "-c", NS_SCRIPT, str(photo), str(mask), str(out / "ns.png")], src)
    if not args.no_torch:
        runs["`pconv inpaint` (auto = onnx here), full install (torch installed, not imported)"] = (
            inpaint(args.full_python, "onnx_full"),
            src,
        )
        runs["`pconv inpaint --backend torch`, full install"] = (
            inpaint(args.full_python, "torch", "--backend", "torch"),
            src,
        )
        runs["`python -c 'import torch'` alone"] = ([args.full_python, "-c", "import torch"], src)
    timed = {label: (argv, path, None) for label, (argv, path) in runs.items()}
    if args.also_nice is not None:  # the same processes again, at a higher priority than the machine's other jobs
        for label, (argv, path) in runs.items():
            timed[f"{label}, at nice {args.also_nice}"] = (argv, path, args.also_nice)
    return timed


def child_env(pythonpath: str) -> dict[str, str]:
    """The environment of a timed process: ``PYTHONPATH`` set, and Python's bytecode cached as an installed
    package's is (``pip install`` writes it; ``PYTHONDONTWRITEBYTECODE``, set on some machines, would make every
    process compile pconv's modules again, 5-20 ms), so the warm-up run writes it for the runs after."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(argv: list[str], pythonpath: str, nice: int | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user + system), peak RSS MiB) of one process, at scheduling priority ``nice``
    (None: inherited); raises if it fails."""
    env = child_env(pythonpath)
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


def steps(
    python: str, sources: dict[str, str], photo: Path, mask: Path, out: Path, rounds: int
) -> dict[str, dict[str, float]]:
    """Label -> step -> median seconds of the light path in one process (``STEPS_SCRIPT``), for each code in
    ``sources`` (label -> PYTHONPATH), alternating, over ``rounds`` runs each."""
    found: dict[str, dict[str, list[float]]] = {label: {} for label in sources}
    for _ in range(rounds):
        for label, pythonpath in sources.items():
            text = subprocess.run(
                [python, "-c", STEPS_SCRIPT, str(photo), str(mask), str(out / "steps.png")],
                env=child_env(pythonpath),
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            for line in text.splitlines():
                name, value = line.split()
                found[label].setdefault(name, []).append(float(value))
    return {label: {n: statistics.median(v) for n, v in times.items()} for label, times in found.items()}


def throughput(
    args: argparse.Namespace, sources: dict[str, str], images: Path, masks: Path, out: Path
) -> tuple[dict[tuple[str, int], list[float]], bool]:
    """(label, batch size) -> images/s of each run of ``pconv inpaint`` on the folder (base install), codes and
    batch sizes interleaved; and whether every run's output pixels equal the first code's at the same batch size."""
    count = len(list(images.iterdir()))
    found: dict[tuple[str, int], list[float]] = {}
    same = True
    for round_ in range(args.folder_rounds):
        for batch in args.batch_sizes:
            for label, pythonpath in sources.items():
                folder = out / f"folder_{len(found) % (len(sources) * len(args.batch_sizes))}"
                shutil.rmtree(folder, ignore_errors=True)
                argv = [args.light_python, "-m", "pconv", "inpaint", "--image", str(images), "--mask", str(masks)]
                argv += ["--output", str(folder), "--backend", "onnx", "--batch-size", str(batch)]
                wall = run_once(argv, pythonpath)[0]
                found.setdefault((label, batch), []).append(count / wall)
                if round_ == 0:
                    first = out / f"folder_first_{batch}"
                    if not first.exists():
                        folder.rename(first)
                    else:
                        same &= all(
                            np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(first / f.name)))
                            for f in sorted(folder.iterdir())
                        )
    return found, same


def make_large(folder: Path) -> tuple[Path, Path]:
    """A 4000x3000 JPEG (kodim23 enlarged) and its mask with three small holes (an ellipse, a stroke, a rectangle:
    0.1 % of the pixels), as a phone photo with one or two things to remove."""
    from PIL import ImageDraw

    sample = Image.open(Path(str(resources.files("pconv").joinpath("assets").joinpath("kodim23.png")))).convert("RGB")
    sample.resize((4000, 3000), Image.Resampling.BICUBIC).save(folder / "large.jpg", quality=92)
    mask = Image.new("L", (4000, 3000), 0)
    draw = ImageDraw.Draw(mask)
    draw.ellipse((500, 400, 620, 560), fill=255)
    draw.line((2000, 1500, 2300, 1600), fill=255, width=25)
    draw.rectangle((3500, 2500, 3600, 2580), fill=255)
    mask.save(folder / "large_mask.png")
    return folder / "large.jpg", folder / "large_mask.png"


def large_photo(
    args: argparse.Namespace, sources: dict[str, str], out: Path
) -> tuple[dict[str, list[tuple[float, float, float]]], bool]:
    """Label -> (wall s, CPU s, peak RSS MiB) of each ``pconv inpaint`` of the large photo (``make_large``, window by
    window) on the base install, the codes alternating ``--folder-rounds`` times; and whether their outputs agree."""
    photo, mask = make_large(out)
    found: dict[str, list[tuple[float, float, float]]] = {label: [] for label in sources}
    for _ in range(args.folder_rounds):
        for i, (label, pythonpath) in enumerate(sources.items()):
            argv = [args.light_python, "-m", "pconv", "inpaint", "--image", str(photo), "--mask", str(mask)]
            argv += ["--output", str(out / f"large_out_{i}.jpg"), "--overwrite", "--backend", "onnx"]
            found[label].append(run_once(argv, pythonpath))
    first = (out / "large_out_0.jpg").read_bytes()
    same = all((out / f"large_out_{i}.jpg").read_bytes() == first for i in range(len(sources)))
    return found, same


def agreement(out: Path, photo: Path, mask: Path) -> str:
    """How the ONNX Runtime fill compares with PyTorch's and with the code before this change."""
    image = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    hole = np.asarray(Image.open(mask).convert("L")) > 127
    onnx = np.asarray(Image.open(out / "onnx_light.png").convert("RGB")).astype(int)
    line = f"known pixels identical to the input: {'yes' if (onnx[~hole] == image[~hole]).all() else 'NO'}"
    if (out / "torch.png").exists():
        diff = np.abs(onnx - np.asarray(Image.open(out / "torch.png").convert("RGB")).astype(int))
        line += (
            f"; ONNX Runtime vs PyTorch on this photo: fill max |difference| {diff.max()}/255, "
            f"{int((diff.max(axis=-1) > 0).sum())} of {int(hole.sum())} hole pixels differ at all"
        )
    if (out / "before.png").exists():
        before = np.asarray(Image.open(out / "before.png").convert("RGB")).astype(int)
        same = np.array_equal(before, onnx)
        line += f"; base install vs before this change: output pixels {'identical' if same else 'DIFFER'}"
    return line


def pair_ratios(results: dict[str, list[tuple[float, float, float]]], label: str) -> list[float]:
    """Round by round: the wall time of ``label`` over that round's Navier-Stokes process (at the same priority)."""
    nice = label.partition(", at nice")[1:]
    ns = NS + "".join(nice)
    return [mine[0] / other[0] for mine, other in zip(results[label], results[ns])]


def markdown(
    results: dict[str, list[tuple[float, float, float]]],
    step_times: dict[str, dict[str, float]],
    folder: tuple[dict[tuple[str, int], list[float]], bool] | None,
    notes: list[str],
    large: tuple[dict[str, list[tuple[float, float, float]]], bool] | None = None,
) -> str:
    header = (
        "| process | wall s, median | wall s, min | × Navier-Stokes (median of paired ratios) | "
        "CPU s (user + sys), median | peak RSS MiB, median |"
    )
    lines = [HEADING, "", *notes, "", header, "|---|---:|---:|---:|---:|---:|"]
    for label, runs in results.items():
        wall, cpu, mem = ([r[i] for r in runs] for i in range(3))
        ratio = f"{statistics.median(pair_ratios(results, label)):.2f}×"
        lines.append(
            f"| {label} | {statistics.median(wall):.2f} | {min(wall):.2f} | {ratio} | "
            f"{statistics.median(cpu):.2f} | {statistics.median(mem):.0f} |"
        )
    labels = list(step_times)
    lines += ["", "Where the light path's time goes (one process, base install, medians, s):", ""]
    lines += ["| step | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for name in STEP_NAMES:
        lines.append(f"| {STEP_NAMES[name]} | " + " | ".join(f"{step_times[lb][name]:.3f}" for lb in labels) + " |")
    if folder is not None:
        found, same = folder
        lines += ["", "A folder on the base install (`pconv inpaint --image DIR --batch-size B`, whole command):", ""]
        lines += [
            "| code | --batch-size | images/s, median | × this code's (median of paired ratios) | images/s, runs |",
            "|---|---:|---:|---:|---|",
        ]
        for (label, batch), rates in found.items():
            first = found[next(iter(found))[0], batch]
            paired = statistics.median(rate / base for rate, base in zip(rates, first))
            runs = " ".join(f"{r:.2f}" for r in rates)
            lines.append(f"| {label} | {batch} | {statistics.median(rates):.2f} | {paired:.2f}× | {runs} |")
        lines += ["", f"Output pixels of every folder run equal to the first code's: {'yes' if same else '**NO**'}."]
    if large is not None:
        runs_by_code, same = large
        lines += ["", "A 4000x3000 JPEG, three small holes (0.1 %; window by window), base install, whole command:"]
        lines += [""]
        lines += ["| code | wall s, median | wall s, runs | peak RSS MiB, median |", "|---|---:|---|---:|"]
        for label, runs in runs_by_code.items():
            walls = " ".join(f"{r[0]:.2f}" for r in runs)
            lines.append(
                f"| {label} | {statistics.median(r[0] for r in runs):.2f} | {walls} | "
                f"{statistics.median(r[2] for r in runs):.0f} |"
            )
        lines += ["", f"Output files of every code byte-identical: {'yes' if same else '**NO**'}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--light-python", default=str(ROOT / ".venv-light" / "bin" / "python"))
    parser.add_argument("--full-python", default=sys.executable)
    parser.add_argument("--before-src", type=Path, default=None, help="src folder of the code before this change")
    parser.add_argument(
        "--before-python", default=None, help="the Python that runs --before-src (default: --light-python)"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-torch", action="store_true", help="leave out the rows that need the full install")
    parser.add_argument("--folder", type=int, default=16, help="photos in the throughput folder (0: no folder runs)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4], help="--batch-size of the folder runs")
    parser.add_argument("--folder-rounds", type=int, default=3, help="rounds of the folder and large-photo runs")
    parser.add_argument("--no-large", action="store_true", help="leave out the 4000x3000 photo")
    parser.add_argument(
        "--also-nice",
        type=int,
        default=None,
        help="also time every process at this scheduling priority (e.g. -15, needs root): closer to an idle machine",
    )
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write the section into")
    args = parser.parse_args()
    args.before_python = args.before_python or args.light_python
    load_start = os.getloadavg()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sources = {"this code": str(ROOT / "src")}
    if args.before_src is not None:
        sources["before"] = str(args.before_src)
    with tempfile.TemporaryDirectory() as tmp:
        photo, mask = make_inputs(Path(tmp))
        runs = commands(args, photo, mask, Path(tmp))
        results: dict[str, list[tuple[float, float, float]]] = {label: [] for label in runs}
        for argv, pythonpath, nice in runs.values():  # one warm-up each: the page cache, .pyc files
            run_once(argv, pythonpath, nice)
        for _ in range(args.rounds):
            for label, (argv, pythonpath, nice) in runs.items():
                results[label].append(run_once(argv, pythonpath, nice))
        step_times = steps(args.light_python, sources, photo, mask, Path(tmp), args.rounds)
        agree = agreement(Path(tmp), photo, mask)
        hole_pct = 100 * float((np.asarray(Image.open(mask)) > 127).mean())
        folder = None
        if args.folder > 0:
            images, masks = make_folder(Path(tmp), args.folder)
            folder = throughput(args, sources, images, masks, Path(tmp))
        large = None if args.no_large else large_photo(args, sources, Path(tmp))
    load_end = os.getloadavg()
    options = f"--rounds {args.rounds}{' --before-src DIR' if args.before_src else ''}"
    options += " --no-torch" if args.no_torch else ""
    options += f" --folder {args.folder} --batch-sizes {' '.join(map(str, args.batch_sizes))}"
    options += f" --also-nice {args.also_nice}" if args.also_nice is not None else ""
    options += " --no-large" if args.no_large else ""
    notes = [
        f"- Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, shared with other jobs; {started}; "
        f"load average (1, 5, 15 min) {' '.join(f'{x:.1f}' for x in load_start)} at the start and "
        f"{' '.join(f'{x:.1f}' for x in load_end)} at the end.",
        f"- Command: `python benchmarks/bench_light_inference.py {options} --out benchmarks/RESULTS.md`; "
        f"{args.rounds} rounds after one warm-up, processes interleaved; the photo: kodim23 cropped to 512x512, "
        "the hole: `pconv demo`'s "
        f"({hole_pct:.1f} % of the pixels); default settings (flip and shift average: four network passes, the "
        "smooth blend).",
        f"- {agree}.",
    ]
    section = markdown(results, step_times, folder, notes, large)
    print(section)
    if args.out is not None:
        write_section(args.out, "light-inference", section)


if __name__ == "__main__":
    main()
