"""Throughput of ``pconv inpaint`` on a folder: 1 process x 1 thread, 1 x 2 threads, 2 processes x 1 thread (torchrun).

Run: PYTHONPATH=src python benchmarks/bench_scale_out.py [--photos 200] [--rounds 3] [--model paper-quarter]
    [--out benchmarks/RESULTS.md]

The folder: the first ``--photos`` files of /work/shared/data/train_photos (sorted), short side resized to 512 with
Lanczos and centre cropped (``pconv.evaluate.load_photo``), saved as JPEG quality 95; one NVIDIA irregular test
mask each (every 60th file, so all hole-ratio bins), PNG. Each configuration is a real command line run from a
fresh output folder, configurations interleaved round by round (A, B, C, ..., A, B, C, ...) because the machine
is shared; the table gives medians and the load average seen at each start. Two figures per run: images/s over
the whole command (start-up, model load and all) and images/s in steady state (from the first output file's
modification time to the last's). Every run's files are compared with the first configuration's: all must be
byte-identical. The file work alone (decode image and mask, encode and write the output, no network) is timed
in this process, one thread, for scale.

``--model shipped`` uses the shipped weights; ``--model paper-quarter`` a randomly initialised network of the
paper's depth (8) at a quarter of its width (1/16 of the compute), to keep the benchmark short on a small
shared CPU. ``--passes 1`` (default) runs the network once per image (``--no-flip-average --no-shift-average``);
``--passes 4`` is ``pconv inpaint``'s default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import write_section  # benchmarks/_results.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# name -> (processes, threads per process, extra pconv inpaint options)
CONFIGS: dict[str, tuple[int, int, list[str]]] = {
    "1 process x 1 thread": (1, 1, []),
    "1 process x 2 threads": (1, 2, []),
    "2 processes x 1 thread (torchrun)": (2, 1, []),
    "1 process x 2 threads, no file threads (--workers 0)": (1, 2, ["--workers", "0"]),
    "1 process x 2 threads, --batch-size 1": (1, 2, ["--batch-size", "1"]),
}


def make_folder(work: Path, count: int) -> tuple[Path, Path]:
    """``count`` 512x512 JPEG photos and PNG hole masks (white = hole), paired by name; reused if present."""
    from PIL import Image

    from pconv.evaluate import find_photos, load_photo

    images, masks = work / "images", work / "masks"
    if images.is_dir() and len(list(images.glob("*.jpg"))) == count:
        return images, masks
    shutil.rmtree(images, ignore_errors=True)
    shutil.rmtree(masks, ignore_errors=True)
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    photos = find_photos(DATA / "train_photos")[:count]
    nvidia = DATA / "masks" / "nvidia_irregular_test"
    for i, photo in enumerate(photos):
        Image.fromarray(load_photo(photo, size=512)).save(images / f"{i:04d}.jpg", quality=95)
        shutil.copyfile(nvidia / f"{(i * 60) % 12000:05d}.png", masks / f"{i:04d}.png")
    return images, masks


def weights_for(model: str, work: Path) -> list[str]:
    if model == "shipped":
        return []
    import torch

    from pconv.config import ModelConfig
    from pconv.model import PConvUNet, save_weights

    torch.manual_seed(0)
    path = save_weights(PConvUNet(ModelConfig(depth=8, width=0.25)).eval(), work / "paper_quarter.safetensors")
    return ["--weights", str(path)]


def command(processes: int, threads: int, options: list[str]) -> list[str]:
    launcher = [sys.executable, "-m", "pconv"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        launcher += ["-m", "pconv"]
    return [*launcher, "inpaint", *options, "--threads", str(threads)]


def run_once(argv: list[str], out: Path) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run([*argv, "--output", str(out)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    stamps = sorted(p.stat().st_mtime for p in out.iterdir())
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return {"wall_s": wall, "images_per_s": len(stamps) / wall, "steady_images_per_s": steady, "load": load}


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def file_work_ms(images: Path, masks: Path, work: Path) -> float:
    """Median ms per pair to decode image and mask and encode + write a JPEG output, one thread, no network."""
    from pconv.imageio import read_hole_mask, read_image, write_image

    out = work / "file_work"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    times = []
    for image in sorted(images.iterdir())[:50]:
        start = time.perf_counter()
        picture = read_image(image)
        read_hole_mask(masks / f"{image.stem}.png")
        write_image(out / image.name, picture.rgb, exif=picture.exif, icc_profile=picture.icc_profile)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def markdown(results: dict[str, list[dict[str, float]]], settings: dict[str, object], title: str) -> str:
    lines = [
        f"## Scale-out: `pconv inpaint` on a folder of 512x512 photos, images/s (CPU), {title}",
        "",
        *[f"- {key}: {value}" for key, value in settings.items()],
        "",
        "| configuration | images/s, whole command (median) | images/s, steady state (median) | wall s (median) "
        "| load average at the starts |",
        "|---|---:|---:|---:|---|",
    ]
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("images_per_s", "steady_images_per_s", "wall_s")}
        loads = " ".join(f"{r['load']:.1f}" for r in runs)
        lines.append(
            f"| {name} | {med['images_per_s']:.2f} | {med['steady_images_per_s']:.2f} | {med['wall_s']:.1f} | {loads} |"
        )
    return "\n".join([*lines, ""]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", choices=("shipped", "paper-quarter"), default="paper-quarter")
    parser.add_argument("--passes", type=int, choices=(1, 4), default=1)
    parser.add_argument("--only", nargs="+", default=None, help="configuration numbers (1-based) to run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/pconv_scale_out"))
    parser.add_argument("--out", type=Path, default=None, help="RESULTS.md to write the section into")
    args = parser.parse_args()
    images, masks = make_folder(args.work, args.photos)
    options = ["--image", str(images), "--mask", str(masks), *weights_for(args.model, args.work)]
    options += ["--no-flip-average", "--no-shift-average"] if args.passes == 1 else []
    configs = {
        name: cfg for i, (name, cfg) in enumerate(CONFIGS.items(), 1) if args.only is None or str(i) in args.only
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    digests: dict[str, str] = {}
    load_start = os.getloadavg()
    for round_ in range(args.rounds):
        for name, (processes, threads, extra) in configs.items():
            out = args.work / f"out_{processes}x{threads}"
            results[name].append(run_once(command(processes, threads, [*options, *extra]), out))
            digests.setdefault(name, digest(out))
            print(f"round {round_ + 1}: {name}: {results[name][-1]}", flush=True)
    # The network's float rounding may differ with the batch's size (a pixel value off by one, rarely), so the
    # outputs are compared between runs of the same --batch-size; processes and threads must not change a byte.
    by_batch: dict[str, set[str]] = {}
    for name, (_, _, extra) in configs.items():
        batch = extra[extra.index("--batch-size") + 1] if "--batch-size" in extra else "default"
        by_batch.setdefault(batch, set()).add(digests[name])
    identical = all(len(found) == 1 for found in by_batch.values())
    file_ms = file_work_ms(images, masks, args.work)
    import torch

    model = "shipped model" if args.model == "shipped" else "random network, depth 8, width 0.25 (1/16 the compute)"
    settings = {
        "Machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, shared with other jobs; "
        f"torch {torch.__version__}",
        "Date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "Command": f"`PYTHONPATH=src python benchmarks/bench_scale_out.py --photos {args.photos} --rounds "
        f"{args.rounds} --model {args.model} --passes {args.passes} --out benchmarks/RESULTS.md`",
        "Folder": f"{args.photos} photos from shared/data/train_photos, 512x512 centre crops, JPEG q95; NVIDIA "
        "test masks (PNG); outputs JPEG",
        "Network": f"{model}; {args.passes} pass(es) per image"
        + (" (`--no-flip-average --no-shift-average`)" if args.passes == 1 else " (the default averages)"),
        "Defaults": "`--batch-size 4 --workers 2` unless the row says otherwise; torchrun `--standalone`",
        "Rounds": f"{args.rounds}, configurations interleaved; load average (1, 5, 15 min) at the start: "
        + " ".join(f"{x:.1f}" for x in load_start),
        "File work alone": f"{file_ms:.1f} ms per image (decode JPEG + mask, encode + write JPEG; one thread)",
        "Outputs": "byte-identical between all runs of the same `--batch-size`"
        if identical
        else "**differ between runs of the same batch size**",
    }
    text = markdown(results, settings, f"{args.model}, {args.passes} pass(es)")
    print(text)
    record = json.dumps({"settings": settings, "results": results}, indent=2)
    (args.work / f"scale_out_{args.model}_{args.passes}.json").write_text(record)
    if args.out is not None:
        write_section(args.out, f"scale-out {args.model} {args.passes}", text)
    if not identical:
        raise SystemExit("outputs differ between runs of the same batch size")


if __name__ == "__main__":
    main()
