"""Reproduce the shipped default model from the photos: every stage of versions 1 to 7, in order, resumable.

Versions 8 to 10 changed the fill around the network (the smooth blend, the edge continuation, the structure
continuation: ``pconv.smooth``, ``pconv.structure``), not the weights: they need no stage of their own, and the
weights version 7 trained are the ones that ship.

Run: PYTHONPATH=src python tools/make_model.py [--runs DIR] [--data-root DIR] [--until STAGE] [--dry-run] [--tiny]
(or ``make model ARGS="..."``). ``--dry-run`` prints the plan: each stage, its hours on the project's 2-core CPU
and the total (about 8.2 h, the wall times in docs/model_history.md and the configs), with what is already done.

Each training stage is one file under ``configs/model/`` holding every setting of its run (the card's command,
overrides included); this script passes only paths: the starting weights, the run directory and the photo folders
(``--data-root``: ``train_photos`` for training, ``val_photos`` for validation). Grafts, averages, widenings and
fp16 exports are stages too, run by ``tools/graft_weights.py``, ``tools/average_weights.py``,
``tools/widen_weights.py`` and ``pconv.model.save_weights``. The last stage is always the fp16 export of the
file to ship (``RUNS/<last stage>_fp16.safetensors``; copy it to ``src/pconv/weights/pconv_default.safetensors``).

Resuming: every stage writes ``RUNS/<stage>.safetensors`` (atomically) and a stage whose file exists is skipped;
a training stage interrupted mid-run continues from its newest checkpoint in ``RUNS/<stage>/``
(``pconv train --resume``). Run the same command again after a crash or Ctrl-C. To redo a stage, delete its file
and run directory, and the files of the stages after it (a stage whose file exists is not checked against its
inputs).

Not the identical bits: versions 1-5 (and version 6's head, trained the same day) were trained while
``train_photos`` still held the 107 photos now in ``val_photos``. On today's split (1,161 training photos, validation
on ``val_photos``) the recipe reproduces the procedure (stages, settings, seeds, step counts), not the shipped weights
bit for bit; bf16 kernels and thread counts differ between CPUs as well.

``--tiny`` runs every stage with a few steps on 64² crops and a depth-4 network of half the width (in
``RUNS/tiny``), for CI: it checks the plan runs, not what it learns.

Adding a stage is one line in ``STAGES`` (a training stage also needs its config file, with a ``# Time: about N min``
header line), e.g. ``Stage("v7_wide", "widen", ("v6",))``; the final export follows the last stage by itself.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "model"
KINDS = ("train", "graft", "average", "widen", "export")
HIGH_RES_BLOCKS = ("--blocks", "encoder.0,encoder.1,decoder.0,decoder.1,decoder.2")  # full, 1/2 and 1/4 resolution
TIME_LINE = re.compile(r"^# Time: about (\d+(?:\.\d+)?) min", re.MULTILINE)
PROG = "make_model"


@dataclass(frozen=True)
class Stage:
    """One step of the recipe; its output is ``RUNS/<name>.safetensors``.

    Attributes:
        name: unique; names the output file (and a training stage's run directory ``RUNS/<name>/``).
        kind: ``train`` (``pconv train``, then an fp32 export), ``graft`` (inputs: base, donor), ``average``
            (two or more inputs), ``widen`` (``tools/widen_weights.py``) or ``export`` (an fp16 copy).
        inputs: names of earlier stages whose files this one reads (a training stage: its starting weights, if any).
        config: a training stage's file under ``configs/model/``.
        options: options given to the tool as they are (a graft's ``--blocks``; a widening's ``--factor``).
    """

    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    config: str = ""
    options: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage("v1_scratch", "train", (), "01_v1_scratch.yaml"),
    Stage("v1_fp16", "export", ("v1_scratch",)),  # version 2 started from the shipped fp16 file
    Stage("v2_256", "train", ("v1_fp16",), "02_v2_256.yaml"),
    Stage("v2_384", "train", ("v2_256",), "03_v2_384.yaml"),
    Stage("v2_fp16", "export", ("v2_384",)),  # so did version 3
    Stage("v3_256", "train", ("v2_fp16",), "04_v3_256.yaml"),
    Stage("v3", "train", ("v3_256",), "05_v3_384.yaml"),
    Stage("v4_ft1", "train", ("v3",), "06_v4_ssim_hole2.yaml"),
    Stage("v4_ft2", "train", ("v4_ft1",), "07_v4_ssim_hole6.yaml"),
    Stage("v4", "average", ("v3", "v4_ft2")),
    Stage("v5_ft1", "train", ("v4",), "08_v5_fragments30.yaml"),
    Stage("v5_ft2", "train", ("v5_ft1",), "09_v5_fragments30_ssim_hole10.yaml"),
    Stage("v5_ft3", "train", ("v5_ft2",), "10_v5_fragments_all.yaml"),
    Stage("v5_graft1", "graft", ("v4", "v5_ft3"), options=HIGH_RES_BLOCKS),
    Stage("v5_ft4", "train", ("v5_graft1",), "11_v5_fragments_mixed.yaml"),
    Stage("v5", "graft", ("v4", "v5_ft4"), options=HIGH_RES_BLOCKS),
    Stage("v6", "train", ("v5",), "12_v6_edge_refine.yaml"),
    Stage("v7", "train", ("v6",), "13_v7_frozen_bn_ema.yaml"),
)


def plan(stages: Sequence[Stage] = STAGES) -> list[Stage]:
    """``stages`` followed by the fp16 export of the last one (the file to ship), checked by ``check_plan``."""
    full = [*stages, Stage(f"{stages[-1].name}_fp16", "export", (stages[-1].name,))]
    check_plan(full)
    return full


def check_plan(stages: Sequence[Stage]) -> None:
    """Raise ValueError naming the first stage that is malformed or reads a stage that does not come before it."""
    arity = {"train": (0, 1), "graft": (2, 2), "average": (2, 99), "widen": (1, 1), "export": (1, 1)}
    seen: set[str] = set()
    for stage in stages:
        where = f"stage {stage.name!r}"
        if stage.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {stage.kind!r}")
        if stage.name in seen or not re.fullmatch(r"[A-Za-z0-9_.-]+", stage.name):
            raise ValueError(f"{where}: names must be unique and plain (letters, digits, _ . -)")
        low, high = arity[stage.kind]
        if not low <= len(stage.inputs) <= high:
            raise ValueError(f"{where}: a {stage.kind} stage takes {low}-{high} inputs, got {len(stage.inputs)}")
        missing = [name for name in stage.inputs if name not in seen]
        if missing:
            raise ValueError(f"{where}: input {missing[0]!r} is not an earlier stage")
        if (stage.kind == "train") != bool(stage.config):
            raise ValueError(f"{where}: a training stage needs a config under configs/model/, other kinds none")
        if stage.config and not (CONFIGS / stage.config).is_file():
            raise ValueError(f"{where}: config not found: {CONFIGS / stage.config}")
        seen.add(stage.name)


def stage_minutes(stage: Stage) -> float:
    """The training time a stage's config states (``# Time: about N min``); other kinds take seconds (0)."""
    if stage.kind != "train":
        return 0.0
    found = TIME_LINE.search((CONFIGS / stage.config).read_text(encoding="utf-8"))
    if found is None:
        raise ValueError(f"{CONFIGS / stage.config} lacks its '# Time: about N min' header line")
    return float(found.group(1))


@dataclass(frozen=True)
class Paths:
    """Where a run reads and writes: the runs folder and the photo folders."""

    runs: Path
    train_photos: Path
    val_photos: Path

    def output(self, name: str) -> Path:
        return self.runs / f"{name}.safetensors"

    def run_dir(self, name: str) -> Path:
        return self.runs / name


def tiny_overrides(config: Path) -> list[str]:
    """Overrides that shrink a training stage for CI: depth 4, half the width, 64² crops, at most 2 steps a phase."""
    from pconv.config import load_config

    cfg = load_config(config)
    return [
        "--model.depth=4",
        f"--model.width={cfg.model.width / 2}",
        "--data.crop_size=64",
        "--data.batch_size=2",
        "--data.num_workers=0",
        "--data.val_count=2",
        "--data.val_size=64",
        f"--phase1.steps={min(cfg.phase1.steps, 2)}",
        f"--phase2.steps={min(cfg.phase2.steps, 2)}",
        "--train.precision=fp32",
        "--train.log_every=1",
        "--train.ckpt_every=1",
        "--train.val_every=0",
        "--train.image_every=0",
        "--train.tensorboard=False",
    ]


def train_commands(stage: Stage, paths: Paths, *, tiny: bool = False) -> list[list[str]]:
    """``pconv train`` (a fresh run, or ``--resume`` when its run directory holds a checkpoint), then the export."""
    from pconv.checkpoint import list_checkpoints

    config, run_dir = CONFIGS / stage.config, paths.run_dir(stage.name)
    pconv = [sys.executable, "-m", "pconv"]
    start = ["--resume", str(run_dir)] if list_checkpoints(run_dir) else [f"--train.out_dir={run_dir}"]
    init = [f"--train.init_weights={paths.output(name)}" for name in stage.inputs]
    roots = [f"--data.train_root={paths.train_photos}", f"--data.val_root={paths.val_photos}"]
    train = [*pconv, "train", "--config", str(config), *start, *init, *roots, *(tiny_overrides(config) if tiny else [])]
    return [train, [*pconv, "export-weights", str(run_dir), "--output", str(paths.output(stage.name))]]


def tool_command(stage: Stage, paths: Paths) -> list[str]:
    """The command line of a graft, average or widen stage."""
    script = {"graft": "graft_weights.py", "average": "average_weights.py", "widen": "widen_weights.py"}[stage.kind]
    options = stage.options or (("--factor", "2") if stage.kind == "widen" else ())
    inputs = [str(paths.output(name)) for name in stage.inputs]
    return [sys.executable, str(REPO / "tools" / script), *inputs, *options, "--output", str(paths.output(stage.name))]


def export_fp16(source: Path, output: Path) -> None:
    """Write ``source``'s network with fp16 tensors (as ``pconv export-weights --fp16`` writes a checkpoint's)."""
    import torch

    from pconv.model import load_weights, save_weights

    save_weights(load_weights(source), output, dtype=torch.float16)
    print(f"{PROG}: wrote {output} (fp16)")


def run_stage(stage: Stage, paths: Paths, *, tiny: bool = False) -> None:
    """Run one stage; raises ``subprocess.CalledProcessError`` when a command fails."""
    if stage.kind == "export":
        export_fp16(paths.output(stage.inputs[0]), paths.output(stage.name))
        return
    if stage.kind == "widen" and not (REPO / "tools" / "widen_weights.py").is_file():
        raise FileNotFoundError(f"stage {stage.name!r} needs tools/widen_weights.py, which this checkout lacks")
    commands = train_commands(stage, paths, tiny=tiny) if stage.kind == "train" else [tool_command(stage, paths)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    for command in commands:
        print(f"{PROG}: $ {' '.join(command[2:] if command[1] == '-m' else command)}", flush=True)
        subprocess.run(command, check=True, cwd=REPO, env=env)


def status(stage: Stage, paths: Paths) -> str:
    """``done``, ``at step S of T`` (a training stage with checkpoints) or ``todo``."""
    if paths.output(stage.name).is_file():
        return "done"
    if stage.kind == "train":
        from pconv.checkpoint import list_checkpoints

        ckpts = list_checkpoints(paths.run_dir(stage.name))
        if ckpts:
            return f"at step {int(ckpts[-1].stem.split('_')[1])}"
    return "todo"


def print_plan(stages: Sequence[Stage], paths: Paths) -> None:
    """One line per stage (kind, inputs, hours, status, config or options), then the total and what is left."""
    print(f"{PROG}: {len(stages)} stages in {paths.runs}")
    print(f"{PROG}: training photos {paths.train_photos}, validation photos {paths.val_photos}")
    print(f"  #  {'stage':<12} {'kind':<8} {'from':<16} {'time':>7}  {'status':<14} config / options")
    total = left = 0.0
    for number, stage in enumerate(stages, 1):
        minutes, state = stage_minutes(stage), status(stage, paths)
        total, left = total + minutes, left + (minutes if state != "done" else 0.0)
        what = f"configs/model/{stage.config}" if stage.config else " ".join(stage.options)
        hours = f"{minutes / 60:5.1f} h" if minutes else "< 1 min"
        inputs = ",".join(stage.inputs) or "-"
        print(f"{number:3d}  {stage.name:<12} {stage.kind:<8} {inputs:<16} {hours:>7}  {state:<14} {what}")
    print(
        f"{PROG}: total {total / 60:.1f} h of training ({total:.0f} min), {left / 60:.1f} h left. These are the model "
        f"card's wall times on the project's 2-core CPU with AVX512-BF16 (about 0.6 s per step of 8 crops of 256² in "
        f"bf16); scale them by your CPU's time per step"
    )


def default_runs() -> Path:
    return Path(os.environ.get("PCONV_RUNS") or Path.home() / "pconv_runs")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=None, help="run folder (default: $PCONV_RUNS or ~/pconv_runs)")
    parser.add_argument(
        "--data-root", type=Path, default=REPO.parent / "shared" / "data", help="holds train_photos and val_photos"
    )
    parser.add_argument("--until", default=None, metavar="STAGE", help="stop after this stage")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (hours, what is done) and stop")
    parser.add_argument("--tiny", action="store_true", help="every stage tiny, in RUNS/tiny (CI)")
    return parser.parse_args(argv)


def resolve_paths(args: argparse.Namespace) -> Paths:
    """The run folder and photo folders, checked; raises ValueError with what to do."""
    runs = (args.runs or default_runs()).expanduser().resolve()
    if runs.is_relative_to(REPO / "src"):
        raise ValueError(f"--runs {runs} is inside src/; choose a folder outside the package, e.g. ~/pconv_runs")
    data = args.data_root.expanduser().resolve()
    paths = Paths(runs / "tiny" if args.tiny else runs, data / "train_photos", data / "val_photos")
    for folder in (paths.train_photos, paths.val_photos):
        if not folder.is_dir() and not args.dry_run:
            raise ValueError(f"{folder} not found; point --data-root at the folder holding train_photos and val_photos")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        stages = plan()
        names = [stage.name for stage in stages]
        if args.until is not None and args.until not in names:
            raise ValueError(f"--until {args.until!r} is not a stage; stages are {', '.join(names)}")
        paths = resolve_paths(args)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print_plan(stages, paths)
    if args.dry_run:
        return 0
    paths.runs.mkdir(parents=True, exist_ok=True)
    for stage in stages[: names.index(args.until) + 1 if args.until else None]:
        if paths.output(stage.name).is_file():
            print(f"{PROG}: {stage.name}: done ({paths.output(stage.name)})")
            continue
        print(f"{PROG}: {stage.name}: {stage.kind}", flush=True)
        try:
            run_stage(stage, paths, tiny=args.tiny)
        except (subprocess.CalledProcessError, FileNotFoundError, KeyboardInterrupt) as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
            print(f"{PROG}: stage {stage.name} stopped ({reason}); run the same command to resume", file=sys.stderr)
            return 130 if isinstance(exc, KeyboardInterrupt) else 1
    last = stages[names.index(args.until)] if args.until else stages[-1]
    print(f"{PROG}: done; {last.name}: {paths.output(last.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
