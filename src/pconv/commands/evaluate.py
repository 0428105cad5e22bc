"""``pconv evaluate``: score the network and classical baselines on deterministic 512x512 cases, per hole-ratio
bin x N/B, as in the paper's table (arXiv 1804.07723, §5).

``--split val`` scores the validation photos (``<data root>/val_photos``: for every choice between candidates,
checkpoints, recipes), ``--split test`` the test photos (``<data root>/eval_photos``: scored once per model that
ships, never used to choose); ``--photos`` any other folder.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pconv.commands._options import add_test_time_averages

if TYPE_CHECKING:
    from pconv.distributed import Group, Ranks

HELP = (
    "Evaluate the network and/or baselines (telea, ns, patchmatch, mean) on photos x hole masks: l1, PSNR, SSIM "
    "per hole-ratio bin and N/B; writes results.md/.json, cases.csv, plots and a sample grid."
)

METHOD_CHOICES = ("pconv", "telea", "ns", "patchmatch", "mean")
# --split name -> (folder under --data-root, what the split is for)
SPLITS = {
    "val": ("val_photos", "validation: for choosing between models, checkpoints and recipes"),
    "test": ("eval_photos", "test: scored once per model that ships, never used to choose"),
}
DEFAULT_DATA_ROOT = Path("../shared/data")
NVIDIA_MASKS = "masks/nvidia_irregular_test"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        nargs="+",
        choices=METHOD_CHOICES,
        default=["pconv"],
        metavar="METHOD",
        help=f"one or more of {', '.join(METHOD_CHOICES)} (default: pconv)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="pconv weights (safetensors from pconv.model.save_weights; default: the shipped model)",
    )
    photos = parser.add_mutually_exclusive_group(required=True)
    photos.add_argument("--photos", type=Path, help="folder of photos (searched recursively)")
    photos.add_argument(
        "--split",
        choices=sorted(SPLITS),
        help="val: DATA_ROOT/val_photos, for every choice between candidates; test: DATA_ROOT/eval_photos, "
        "scored once per model that ships",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help=f"with --split: the folder holding val_photos, eval_photos and {NVIDIA_MASKS} (default: "
        f"{DEFAULT_DATA_ROOT})",
    )
    parser.add_argument(
        "--masks",
        default=None,
        help="the NVIDIA irregular test mask folder (00000.png..11999.png), or 'generated'; required with --photos, "
        f"DATA_ROOT/{NVIDIA_MASKS} by default with --split",
    )
    parser.add_argument("--out", type=Path, default=Path("out/evaluate"), help="output folder (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out, replacing reports")
    parser.add_argument("--limit", type=int, default=None, help="use only the first K photos (12 cases each)")
    parser.add_argument("--workers", type=int, default=1, help="processes for the baselines (default: 1)")
    parser.add_argument("--batch-size", type=int, default=4, help="pconv inference batch (default: %(default)s)")
    parser.add_argument("--device", default=None, help="torch device for pconv (default: cuda if available, else cpu)")
    add_test_time_averages(
        parser,
        flip_help="score pconv without the flip average pconv inpaint uses",
        shift_help="score pconv without the one-pixel shift average pconv inpaint uses",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask choice (default: %(default)s)")
    parser.add_argument(
        "--reuse",
        nargs="+",
        type=Path,
        default=None,
        help="cases.csv (or its folder) of earlier runs on the same cases: their methods' scores join the tables "
        "without being recomputed (e.g. slow baselines such as patchmatch)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _default_weights() -> Path:
    from pconv.inference import default_weights_path

    path = default_weights_path()
    if not path.is_file():
        raise ValueError(
            f"no trained pconv weights are bundled with this install (looked for {path}); pass --weights PATH "
            "(a file written by pconv.model.save_weights) or pick a baseline with --method"
        )
    return path


def _build_methods(args: argparse.Namespace) -> tuple[list, dict[str, str]]:
    from pconv.baselines import get_baseline
    from pconv.evaluate import BaselineMethod, PConvMethod

    methods, notes = [], {}
    for name in dict.fromkeys(args.method):
        if name != "pconv":
            get_baseline(name)  # fails early, in one line, if e.g. patchmatch cannot run here
            methods.append(BaselineMethod(name))
            continue
        import torch

        from pconv.model import load_weights

        weights = args.weights or _default_weights()
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        methods.append(
            PConvMethod(
                load_weights(weights, map_location=device).to(device).eval(),
                batch_size=args.batch_size,
                device=device,
                flip_average=args.flip_average,
                shift_average=args.shift_average,
                smooth=args.smooth,
            )
        )
        notes["pconv weights"] = str(weights)
        notes["pconv device"] = device
        notes["pconv flip average"] = "yes" if args.flip_average else "no"
        notes["pconv shift average"] = "yes" if args.shift_average else "no"
        notes["pconv smooth blend"] = "yes" if args.smooth else "no"
    return methods, notes


def _resolve_split(args: argparse.Namespace) -> dict[str, str]:
    """Fill ``args.photos`` (and ``args.masks``, if not given) from ``--split``; the report lines that name it."""
    if args.split is None:
        if args.data_root is not None:
            raise ValueError("--data-root applies to --split only; with --photos, give the folders themselves")
        if args.masks is None:
            raise ValueError("--masks is required with --photos: the NVIDIA test mask folder, or 'generated'")
        return {"split": f"none (--photos {args.photos})"}
    root = args.data_root or DEFAULT_DATA_ROOT
    folder, purpose = SPLITS[args.split]
    args.photos = root / folder
    if not args.photos.is_dir():
        raise FileNotFoundError(
            f"--split {args.split}: photo folder not found: {args.photos}; pass --data-root (the folder holding "
            f"{folder}) or --photos"
        )
    if args.masks is None:
        args.masks = str(root / NVIDIA_MASKS)
    return {"split": f"{args.split} ({purpose})"}


def _check_numbers(args: argparse.Namespace) -> None:
    for option in ("workers", "batch_size"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")


def run(args: argparse.Namespace) -> int:
    from pconv.distributed import Group, Ranks

    ranks = Ranks.from_env()
    with Group(ranks, name="pconv-evaluate") as group:
        return _run(args, group)


def _set_up(args: argparse.Namespace, ranks: Ranks) -> tuple:
    """Check the options, build the cases and this rank's methods (on its device), read reused scores."""
    from pconv import evaluate as ev
    from pconv.distributed import rank_device, split_threads

    _check_numbers(args)
    split = _resolve_split(args)
    if args.out.is_dir() and any(args.out.iterdir()) and not args.overwrite:
        raise ValueError(f"--out {args.out} is not empty; pass --overwrite to replace the report files in it")
    photos = ev.find_photos(args.photos)
    source = (
        ev.GeneratedCellMasks(args.seed)
        if args.masks == "generated"
        else ev.NvidiaCellMasks(Path(args.masks), args.seed)
    )
    cases = ev.build_cases(photos, source, limit=args.limit)
    split_threads(ranks)
    if "pconv" in args.method:
        args.device = rank_device(args.device, ranks)
    methods, notes = _build_methods(args)
    reused = []
    for earlier in args.reuse or []:
        reused += ev.load_case_results(earlier, cases, skip=[m.name for m in methods])
    return split, source, cases, methods, notes, reused


def _run(args: argparse.Namespace, group: Group) -> int:
    """Score on this rank's share of the photos; rank 0 writes the report of all (docs/scale_out.md)."""
    from pconv import evaluate as ev
    from pconv import report
    from pconv.baselines import CV_RADIUS, PATCHMATCH_RADIUS
    from pconv.distributed import on_every_rank

    prepared = on_every_rank(group, lambda: _set_up(args, group.ranks))
    if prepared is None:
        return 2  # rank 0 reports the error
    split, source, cases, methods, notes, reused = prepared
    start = time.perf_counter()
    results = ev.run_evaluation(cases, methods, source, workers=args.workers, progress=not args.quiet, group=group)
    elapsed = time.perf_counter() - start
    if not group.ranks.is_main:
        return 0
    if group.ranks.enabled:
        notes["processes"] = f"{group.ranks.world_size} (torchrun; photos shared between them)"
    results += reused
    summary = ev.summarize(results)
    settings = {
        **split,
        "photos": f"{args.photos} ({len(cases) // 12} photos, sorted; short side resized to 512 with Lanczos, "
        "centre crop 512x512)",
        "masks": f"{args.masks} (seed {args.seed}; one mask per photo per bin x N/B cell)",
        "cases": len(cases),
        "methods": ", ".join(m.name for m in methods)
        + (
            f" (scored now); {', '.join(dict.fromkeys(r.method for r in reused))} (scores reused from "
            f"{', '.join(str(p) for p in args.reuse)})"
            if reused
            else ""
        ),
        "baseline settings": f"OpenCV inpaint radius {CV_RADIUS}; PatchMatch patch radius {PATCHMATCH_RADIUS}",
        **notes,
        "workers": args.workers,
        "wall time": f"{elapsed:.1f} s",
    }
    out = report.prepare_out_dir(args.out, overwrite=args.overwrite)
    written = report.write_report(out, summary, results, settings)
    print(report.markdown_report(summary, settings))
    print(
        f"pconv evaluate: {len(cases)} cases x {len(methods)} methods in {elapsed:.1f} s; wrote "
        + ", ".join(str(p) for p in written)
    )
    return 0
