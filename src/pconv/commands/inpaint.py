"""``pconv inpaint``: fill the holes of image files or folders of them (masks: white = hole).

Pairing when ``--image`` is a folder: each image ``NAME.ext`` takes the mask ``NAME.*`` from the ``--mask``
folder, or LaMa-style ``NAME_mask*.png`` files (several give several outputs ``NAME_mask001.ext``...); a mask
*file* serves every image. Outputs go to ``--output`` (a folder) under the image's name and format. A pair that
fails is reported and skipped; the others are still written; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pconv.commands._options import add_backend, add_test_time_averages, model_file

if TYPE_CHECKING:
    import numpy as np

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


@dataclass(frozen=True)
class Job:
    image: Path
    mask: Path
    output: Path


def run(args: argparse.Namespace) -> int:
    from pconv.imageio import IMAGE_SUFFIXES

    logging.basicConfig(level=logging.WARNING, format="pconv inpaint: warning: %(message)s", force=True)
    if not args.image.exists():
        raise FileNotFoundError(f"image not found: {args.image}")
    if not args.mask.exists():
        raise FileNotFoundError(f"mask not found: {args.mask}")
    if args.image.is_dir():
        jobs, failures = folder_jobs(args.image, args.mask, args.output, IMAGE_SUFFIXES)
        if not jobs and not failures:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {args.image}")
    else:
        jobs, failures = [single_job(args.image, args.mask, args.output, IMAGE_SUFFIXES)], []
    inpainter = _build_inpainter(args)
    if not args.image.is_dir():
        _process(inpainter, jobs[0], args, {})
        print(f"pconv inpaint: wrote {jobs[0].output}")
        return 0
    return _run_folder(inpainter, jobs, failures, args)


def _run_folder(
    inpainter: Inpainter, jobs: list[Job], failures: list[tuple[Path, str]], args: argparse.Namespace
) -> int:
    _make_folder(args.output)
    masks: dict[Path, np.ndarray] = {}
    done = 0
    for job in _progress(jobs):
        try:
            _process(inpainter, job, args, masks)
            done += 1
        except (ValueError, OSError, RuntimeError) as exc:
            failures.append((job.image, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__))
    print(f"pconv inpaint: {done} written to {args.output}, {len(failures)} failed")
    for image, reason in failures:
        print(f"  failed {image}: {reason}", file=sys.stderr)
    return 1 if failures else 0


def _progress(jobs: list[Job]) -> Iterable[Job]:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in the [train]/[eval] extras, not the core install
        return jobs
    return tqdm(jobs, unit="image", desc="pconv inpaint", file=sys.stderr, disable=len(jobs) < 2)


def _build_inpainter(args: argparse.Namespace) -> Inpainter:
    from pconv.inference import Inpainter

    options = dict(
        max_side=args.max_side,
        threshold=args.threshold,
        dilate=args.dilate,
        mask_polarity=args.mask_polarity,
        flip_average=args.flip_average,
        shift_average=args.shift_average,
    )
    return Inpainter(model_file(args), backend=args.backend, device=args.device, **options)


def _process(inpainter: Inpainter, job: Job, args: argparse.Namespace, masks: dict[Path, np.ndarray]) -> None:
    """Read, fill and write one pair; raise ValueError/OSError with a one-line reason."""
    from pconv.imageio import output_format, read_hole_mask, read_image, write_image
    from pconv.inference import resize_hole_mask

    output_format(job.output)  # fail on a bad extension before any work
    _check_output(job, args.overwrite)
    picture = read_image(job.image)
    if job.mask not in masks:
        masks[job.mask] = read_hole_mask(job.mask, threshold=args.threshold)
    hole = resize_hole_mask(masks[job.mask], picture.size)
    filled = inpainter.inpaint(picture.rgb, hole)
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
