"""``pconv inpaint``: fill the holes of image files or folders of them (masks: white = hole).

Pairing when ``--image`` is a folder: each image ``NAME.ext`` takes the mask ``NAME.*`` from the ``--mask``
folder, or LaMa-style ``NAME_mask*.png`` files (several give several outputs ``NAME_mask001.ext``...); a mask
*file* serves every image. Outputs go to ``--output`` (a folder) under the image's name and format. A pair that
fails is reported and skipped; the others are still written; the exit status is 1 if any failed.

Folders run in batches of ``--batch-size`` consecutive pairs (same-size images go through the network together),
with ``--workers`` threads reading the next batch and writing the last one while the network runs. Under
``torchrun`` the batches are shared between the processes (rank r takes batches r, r + N, ...; each rank on its
own GPU or share of the CPU cores), rank 0 shows one progress bar and prints one summary, and the files are
byte-identical to one process's with the same ``--batch-size``. ``--skip-existing`` restarts a killed batch:
pairs whose output is already a readable image of the right size are skipped (a batch with some done pairs
still runs whole and writes only the missing ones, so every output is what an uninterrupted run writes).
See docs/scale_out.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pconv.commands._options import add_backend, add_test_time_averages, model_file
from pconv.distributed import one_line

if TYPE_CHECKING:
    import numpy as np

    from pconv.distributed import Group, Ranks
    from pconv.imageio import Picture
    from pconv.inference import Inpainter


HELP = "Fill the holes of an image (or a folder of images) given a mask (white = hole); any size, metadata kept."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="image file or folder of images")
    parser.add_argument(
        "--mask",
        type=Path,
        required=True,
        help="mask file (one for all images) or folder of masks paired by name; white = hole",
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="output file (format from its extension: .png .jpg .webp) or folder"
    )
    parser.add_argument(
        "--weights", type=Path, default=None, help="safetensors weights (default: the model shipped with pconv, if any)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument(
        "--mask-polarity",
        choices=("white-hole", "black-hole"),
        default="white-hole",
        help="which colour of the mask marks the hole (default: %(default)s)",
    )
    parser.add_argument(
        "--threshold", type=int, default=127, help="grey level above which a mask pixel is white (default: %(default)s)"
    )
    parser.add_argument("--dilate", type=int, default=0, help="grow the hole by N pixels (default: 0)")
    add_test_time_averages(parser)
    parser.add_argument(
        "--max-side",
        type=int,
        default=1024,
        help="larger images are filled window by window around the holes (default: %(default)s)",
    )
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality 1..100 (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (even the input image)")
    add_backend(parser)
    add_scale_arguments(parser)


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """Options for folders: batching, file threads, CPU threads and restarts (docs/scale_out.md)."""
    from pconv.inference import DEFAULT_BATCH

    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="folders: skip pairs whose output is already a readable image of the right size (restart a batch)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"folders: same-size pairs run through the network together (default: {DEFAULT_BATCH['cpu']} on "
        f"the CPU, {DEFAULT_BATCH['cuda']} on a GPU)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="folders: threads that read and write files while the network runs; 0: none (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of the network (default: all cores; under torchrun, the node's cores split between its "
        "processes)",
    )


@dataclass(frozen=True)
class Job:
    image: Path
    mask: Path
    output: Path


def run(args: argparse.Namespace) -> int:
    from pconv.distributed import Group, Ranks, on_every_rank

    logging.basicConfig(level=logging.WARNING, format="pconv inpaint: warning: %(message)s", force=True)
    ranks = Ranks.from_env()
    with Group(ranks, name="pconv-inpaint") as group:
        agreed = on_every_rank(group, lambda: _set_up(args, ranks))
        if agreed is None:
            return 2  # rank 0 has reported the error
        jobs, failures, inpainter = agreed
        if not args.image.is_dir():
            return _run_single(inpainter, jobs[0], args)
        return run_folder(inpainter, jobs, failures, args, group)


def _set_up(args: argparse.Namespace, ranks: Ranks) -> tuple[list[Job], list[tuple[Path, str]], Inpainter]:
    """Pair the files, check the options, pick this rank's device and threads, load the model."""
    from pconv.distributed import rank_device, rank_threads
    from pconv.imageio import IMAGE_SUFFIXES

    if not args.image.exists():
        raise FileNotFoundError(f"image not found: {args.image}")
    if not args.mask.exists():
        raise FileNotFoundError(f"mask not found: {args.mask}")
    _check_scale_options(args, ranks)
    if args.image.is_dir():
        jobs, failures = folder_jobs(args.image, args.mask, args.output, IMAGE_SUFFIXES)
        if not jobs and not failures:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {args.image}")
    else:
        jobs, failures = [single_job(args.image, args.mask, args.output, IMAGE_SUFFIXES)], []
    args.device = rank_device(args.device, ranks)
    args.threads = rank_threads(ranks, args.threads)
    inpainter = _build_inpainter(args)
    args.batch_size = inpainter.batch_size  # None given: by the device the backend chose (DEFAULT_BATCH)
    if args.image.is_dir():
        _make_folder(args.output)  # last: an error before leaves no empty folder behind
    return jobs, failures, inpainter


def _check_scale_options(args: argparse.Namespace, ranks: Ranks) -> None:
    """One-line errors for options that cannot work together."""
    from pconv.inference import SETTING_RANGES

    ranges = {"workers": (0, None), "threads": (1, None), **SETTING_RANGES}
    for option, (least, most) in ranges.items():
        if option not in vars(args):  # margin: not a flag
            continue
        value = getattr(args, option)
        flag = f"--{option.replace('_', '-')}"
        if value is not None and value < least:
            raise ValueError(f"{flag} must be at least {least}, got {value}")
        if value is not None and most is not None and value > most:
            raise ValueError(f"{flag} must be at most {most}, got {value}")
    if ranks.enabled and not args.image.is_dir():
        raise ValueError(
            f"torchrun shares a folder of images between processes, but --image {args.image} is one file; "
            "run plain `pconv inpaint` for one image"
        )
    if args.skip_existing and args.image.is_dir() and args.output.resolve() == args.image.resolve():
        raise ValueError(
            "--skip-existing cannot tell finished outputs from the input images when --output is the --image "
            "folder; write the outputs to another folder"
        )


def _run_single(inpainter: Inpainter, job: Job, args: argparse.Namespace) -> int:
    if _state(job, args) == "done":  # also checks the output can be written, before any work
        print(f"pconv inpaint: skipped {job.output} (already done)")
        return 0
    _process(inpainter, job, args)
    print(f"pconv inpaint: wrote {job.output}")
    return 0


def run_folder(
    inpainter: Inpainter, jobs: list[Job], failures: list[tuple[Path, str]], args: argparse.Namespace, group: Group
) -> int:
    """Fill this rank's share of ``jobs`` batch by batch, files read and written on ``--workers`` threads meanwhile.

    ``jobs`` is cut into batches of ``--batch-size`` consecutive pairs, and rank r takes batches r, r + N, ...;
    a batch is the same set of pairs whatever the number of processes, so the network sees the same inputs
    together and writes the same bytes. Rank 0 shows one progress bar and the summary of all ranks.
    Returns the exit status: 1 if any pair failed (on any rank), else 0.
    """
    from pconv.distributed import SharedCount
    from pconv.loader import FileWorkers

    batches = [list(range(k, min(k + args.batch_size, len(jobs)))) for k in range(0, len(jobs), args.batch_size)]
    mine = group.ranks.share(batches)
    if args.skip_existing:
        _remove_stale_temporaries(args.output, {jobs[i].output.name for batch in mine for i in batch})
    shared_mask = _SharedMask(args.mask, args.threshold)
    bar = _progress_bar(len(jobs)) if group.ranks.is_main else None
    progress = SharedCount(group, "pairs", bar)
    tally = _Tally()

    def finished(done: _Tally) -> None:
        tally.add(done)
        progress.update(done.count)

    with FileWorkers(args.workers, on_written=finished) as files:
        for pairs in files.prefetch(partial(_load_batch, jobs=jobs, args=args, shared_mask=shared_mask), mine):
            _fill_batch(inpainter, pairs)
            files.write(partial(_write_batch, pairs, args))
        files.flush()
    progress.wait_all()
    if bar is not None:
        bar.close()
    return _report(group.all_gather(tally), failures, args, group.ranks)


@dataclass
class _Pair:
    """One (image, mask) pair of a batch on its way through: read, filled, written."""

    index: int  # position in the sorted list of all pairs
    job: Job
    write: bool = True  # False: its output is already done; it still runs, so its batch is the same as before
    picture: Picture | None = None
    hole: np.ndarray | None = None  # (H, W) uint8, 1 = hole, the picture's size
    filled: np.ndarray | None = None  # (H, W, 3) uint8
    error: str | None = None


@dataclass
class _Tally:
    """What happened to some pairs; the failures carry the pair's index to be listed in order."""

    written: int = 0
    skipped: int = 0
    failures: list[tuple[int, Path, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.written + self.skipped + len(self.failures)

    def add(self, other: _Tally) -> None:
        self.written += other.written
        self.skipped += other.skipped
        self.failures += other.failures


class _SharedMask:
    """``--mask FILE`` (one mask for every image) read once, by whichever file thread needs it first."""

    def __init__(self, path: Path, threshold: int) -> None:
        self.path, self.threshold = path, threshold
        self._lock = threading.Lock()
        self._hole: np.ndarray | None = None
        self._error: str | None = None

    def hole(self, mask: Path) -> np.ndarray:
        """The hole mask of ``mask``: (H, W) uint8, 1 = hole; ValueError/OSError with a one-line reason."""
        from pconv.imageio import read_hole_mask

        if mask != self.path:
            return read_hole_mask(mask, threshold=self.threshold)
        with self._lock:
            if self._hole is None and self._error is None:
                try:
                    self._hole = read_hole_mask(mask, threshold=self.threshold)
                except (ValueError, OSError) as exc:
                    self._error = one_line(exc)
        if self._error is not None:
            raise ValueError(self._error)
        return self._hole  # type: ignore[return-value]


def _load_batch(
    indices: list[int], *, jobs: list[Job], args: argparse.Namespace, shared_mask: _SharedMask
) -> list[_Pair]:
    """Check the outputs of one batch and, unless all are done or failed, read its images and masks."""
    from pconv.imageio import read_image
    from pconv.resize import resize_hole_mask

    pairs = [_Pair(i, jobs[i]) for i in indices]
    for pair in pairs:
        try:
            pair.write = _state(pair.job, args) == "todo"
        except (ValueError, OSError) as exc:
            pair.error = one_line(exc)
    if not any(pair.write and pair.error is None for pair in pairs):
        return pairs  # nothing to write: do not even read the images
    for pair in pairs:
        if pair.error is None:
            try:
                pair.picture = read_image(pair.job.image)
                pair.hole = resize_hole_mask(shared_mask.hole(pair.job.mask), pair.picture.size)
            except (ValueError, OSError) as exc:
                pair.picture, pair.error = None, one_line(exc)
    return pairs


def _fill_batch(inpainter: Inpainter, pairs: list[_Pair]) -> None:
    """Fill the pairs that were read, all in one call (the Inpainter batches same-size images)."""
    ready = [pair for pair in pairs if pair.picture is not None and pair.error is None]
    if not ready:
        return
    try:
        filled = inpainter.inpaint([p.picture.rgb for p in ready], [p.hole for p in ready])  # type: ignore[union-attr]
    except (ValueError, RuntimeError) as exc:
        if len(ready) == 1:
            ready[0].error = one_line(exc)
            return
        for pair in ready:  # one at a time, to name the pair at fault
            _fill_batch(inpainter, [pair])
        return
    for pair, out in zip(ready, filled):
        pair.filled = out


def _write_batch(pairs: list[_Pair], args: argparse.Namespace) -> _Tally:
    """Write the filled pairs that are not done yet; count what happened to every pair of the batch."""
    tally = _Tally()
    for pair in pairs:
        if pair.error is None and not pair.write:
            tally.skipped += 1
            continue
        try:
            if pair.error is not None:
                raise ValueError(pair.error)
            assert pair.picture is not None and pair.filled is not None, "a pair without error was read and filled"
            _write_output(pair.job, pair.filled, pair.picture, args)
            tally.written += 1
        except (ValueError, OSError) as exc:
            tally.failures.append((pair.index, pair.job.image, one_line(exc)))
        pair.picture = pair.filled = None  # free the pixels now; the batch may live a little longer
    return tally


def _report(tallies: list[_Tally], failures: list[tuple[Path, str]], args: argparse.Namespace, ranks: Ranks) -> int:
    """Rank 0 prints the totals of all ranks and each failure once; every rank returns the same exit status."""
    total = _Tally()
    for tally in tallies:
        total.add(tally)
    listed = failures + [(image, reason) for _, image, reason in sorted(total.failures, key=lambda f: f[0])]
    if ranks.is_main:
        skipped = f", {total.skipped} skipped (already done)" if args.skip_existing else ""
        processes = f" by {ranks.world_size} processes" if ranks.enabled else ""
        print(f"pconv inpaint: {total.written} written to {args.output}{processes}{skipped}, {len(listed)} failed")
        for image, reason in listed:
            print(f"  failed {image}: {reason}", file=sys.stderr)
    return 1 if listed else 0


def _progress_bar(total: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in the [train]/[eval] extras, not the core install
        return None
    return tqdm(total=total, unit="image", desc="pconv inpaint", file=sys.stderr, disable=total < 2)


def _state(job: Job, args: argparse.Namespace) -> str:
    """``"done"`` (--skip-existing and its output is finished) or ``"todo"``; ValueError/OSError if it cannot be
    written (a bad extension, the output is the mask, or it exists without --overwrite)."""
    from pconv.imageio import output_format

    output_format(job.output)  # fail on a bad extension before any work
    if args.skip_existing and _finished(job):
        return "done"
    _check_output(job, args.overwrite)
    return "todo"


def _finished(job: Job) -> bool:
    """The output is a readable image of the input's upright size (and neither the input nor the mask).

    Writes are atomic (``pconv.imageio.atomic_write``), so an output of ours that exists is complete.
    """
    from pconv.imageio import read_image

    if not job.output.is_file() or any(p.exists() and job.output.samefile(p) for p in (job.image, job.mask)):
        return False
    try:
        return read_image(job.output).size == _upright_size(job.image)
    except (ValueError, OSError):
        return False


def _upright_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image as shown (EXIF orientation applied), from its header; None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # orientations that swap the sides
    except Exception:  # noqa: BLE001 - Pillow reports damaged headers as many kinds of errors; reading says which
        return None
    return (height, width) if turned else (width, height)


# The temporary name of ``pconv.imageio.atomic_write``: ".NAME.<8 hex digits>.tmp" beside NAME.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp")


def _remove_stale_temporaries(folder: Path, names: set[str]) -> None:
    """Remove what a killed run left of its unfinished writes of ``names`` in ``folder`` (restarts only)."""
    for entry in os.scandir(folder):
        match = _TEMPORARY.fullmatch(entry.name)
        if match and match["name"] in names and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)


def _build_inpainter(args: argparse.Namespace) -> Inpainter:
    from pconv.inference import Inpainter

    options = dict(
        max_side=args.max_side,
        threshold=args.threshold,
        dilate=args.dilate,
        mask_polarity=args.mask_polarity,
        flip_average=args.flip_average,
        shift_average=args.shift_average,
        smooth=args.smooth,
        batch_size=args.batch_size,
        threads=args.threads,
    )
    return Inpainter(model_file(args), backend=args.backend, device=args.device, **options)


def _process(inpainter: Inpainter, job: Job, args: argparse.Namespace) -> None:
    """Read, fill and write one pair whose output ``_state`` found writable; ValueError/OSError, one line."""
    from pconv.imageio import read_hole_mask, read_image
    from pconv.resize import resize_hole_mask

    picture = read_image(job.image)
    hole = resize_hole_mask(read_hole_mask(job.mask, threshold=args.threshold), picture.size)
    _write_output(job, inpainter.inpaint(picture.rgb, hole), picture, args)


def _write_output(job: Job, filled: np.ndarray, picture: Picture, args: argparse.Namespace) -> None:
    """Write ``filled`` (H, W, 3) uint8 to the job's output with the input's alpha, greyness and metadata."""
    from pconv.imageio import write_image

    _make_folder(job.output.parent)
    write_image(
        job.output,
        filled,
        alpha=picture.alpha,
        grey=picture.grey,
        exif=picture.exif,
        icc_profile=picture.icc_profile,
        quality=args.quality,
        overwrite=args.overwrite,
    )


def _make_folder(folder: Path) -> None:
    """Create the output folder; a file in the way is named in the error instead of ``[Errno 17] File exists``."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot create the output folder {folder}: {parent} is a file")
            break
    folder.mkdir(parents=True, exist_ok=True)


def _check_output(job: Job, overwrite: bool) -> None:
    if job.output.exists() and job.mask.exists() and job.output.samefile(job.mask):
        raise ValueError(f"output {job.output} is the mask file; choose another output")
    if job.output.exists() and not overwrite:
        same = job.output.samefile(job.image)
        raise FileExistsError(
            f"{job.output} exists{' (it is the input image)' if same else ''}; pass --overwrite to replace it"
        )


def single_job(image: Path, mask: Path, output: Path, suffixes: frozenset[str]) -> Job:
    """One image file: the mask is a file, or found by name in a mask folder; the output is a file or a folder."""
    if mask.is_dir():
        found = masks_for(image, mask, suffixes)
        if not found:
            raise FileNotFoundError(
                f"no mask for {image.name} in {mask} (looked for {image.stem}.* and {image.stem}_mask*)"
            )
        mask = found[0][0]
    if output.is_dir() or not output.suffix:
        output = output / image.name
    return Job(image, mask, output)


def folder_jobs(
    images: Path, masks: Path, output: Path, suffixes: frozenset[str]
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Pair a folder of images with a mask file or folder; images without a mask are returned as failures."""
    if output.is_file():
        raise ValueError(f"--image is a folder, so --output must be a folder, but {output} is a file")
    files = _image_files(images, suffixes)
    if masks.is_dir() and masks.resolve() == images.resolve():
        files = [f for f in files if not _is_lama_mask(f, {g.stem for g in files})]
    jobs, failures = [], []
    for image in files:
        if masks.is_file():
            if image.resolve() != masks.resolve():
                jobs.append(Job(image, masks, output / image.name))
            continue
        found = masks_for(image, masks, suffixes)
        if not found:
            failures.append((image, f"no mask found (looked for {image.stem}.* and {image.stem}_mask* in {masks})"))
        for mask, tag in found:
            jobs.append(Job(image, mask, output / f"{image.stem}{tag if len(found) > 1 else ''}{image.suffix}"))
    return jobs, failures


def masks_for(image: Path, folder: Path, suffixes: frozenset[str]) -> list[tuple[Path, str]]:
    """Masks for ``image`` in ``folder``: ``STEM.*`` (tag ``""``) then ``STEM_mask*`` (tag ``"_mask..."``), sorted."""
    exact, lama = [], []
    for f in _image_files(folder, suffixes):
        if f.resolve() == image.resolve():
            continue
        if f.stem == image.stem:
            exact.append((f, ""))
        elif f.stem.startswith(image.stem + "_mask"):
            lama.append((f, f.stem[len(image.stem) :]))
    return exact + lama


def _image_files(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    return sorted(
        f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in suffixes and not f.name.startswith(".")
    )


def _is_lama_mask(f: Path, stems: set[str]) -> bool:
    """``NAME_mask*`` where ``NAME`` is another image's stem in the same folder."""
    stem, start = f.stem, 0
    while (at := stem.find("_mask", start)) >= 0:
        if stem[:at] in stems:
            return True
        start = at + 1
    return False
