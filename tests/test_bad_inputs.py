"""Bad and odd inputs across the CLI, the Python API, the HTTP API and training configs: what each one gets.

Every case is one row of a table (``CLI_CASES``, ``API_CASES``, ``HTTP_CASES``, ``TRAIN_CASES``) with an id. An
*error* case must give a one-line message naming the problem (CLI: exit status != 0, one stderr line, no
traceback; HTTP: a 4xx with a JSON ``detail``; API: ``ValueError``/``OSError`` with a message), leave no new file
behind, and leave every input byte-identical (sha256). A *works* case is an odd input a user expects to work
(grey, RGBA, palette, 16-bit, CMYK, an animated GIF's first frame, 1x1...): it must give an output of the
input's size with every known pixel unchanged.

CLI cases run ``python -m pconv`` through ``cli_runner.CliRunner`` (one pre-imported process forked per command,
so 40 commands cost seconds, not minutes); ``test_fork_runner_matches_a_real_subprocess`` checks that it shows
what a fresh ``python -m pconv`` shows. Tests run as root, where ``chmod`` does not stop writes, so a read-only
output folder is simulated by a path below a regular file, and a full disk by a real 64 KiB tmpfs (skipped
where ``mount`` is not allowed) and by a writer that fails with ENOSPC mid-write.

``python tests/test_bad_inputs.py docs/bad_inputs.md`` runs every case and writes the table with what each got.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runner import CliRunner, real_subprocess  # noqa: E402

H, W = 48, 64

# ---------------------------------------------------------------------------------------------- the input files


def _photo(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _hole(h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[10:25, 20:40] = 255
    return m


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A 60-byte PNG whose header declares width x height RGB pixels (10 gigapixels by default)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _save(img: Image.Image, path: Path, **options: Any) -> None:
    img.save(path, **options)


def make_inputs(folder: Path) -> None:
    """Write every input file the cases use into ``folder``."""
    from safetensors.torch import load_file, save_file

    from pconv.config import ModelConfig
    from pconv.model import PConvUNet, save_weights

    folder.mkdir(parents=True, exist_ok=True)
    photo, hole = _photo(), _hole()
    _save(Image.fromarray(photo), folder / "photo.png")
    _save(Image.fromarray(hole), folder / "hole.png")
    png = (folder / "photo.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    broken = bytearray(png)
    broken[120:180] = bytes(60)  # zeroes inside the compressed pixels; the chunk CRC no longer matches
    (folder / "corrupt.png").write_bytes(bytes(broken))
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("these are my notes, not a picture\n")
    (folder / "bomb.png").write_bytes(_bomb_png())
    _save(Image.fromarray(photo), folder / "photo.jpg", quality=90)
    jpg = (folder / "photo.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpg[:200])
    _save(Image.fromarray(photo[:1, :1]), folder / "pixel.png")
    _save(Image.fromarray(np.full((1, 1), 255, np.uint8)), folder / "pixel_hole.png")
    _save(Image.fromarray(photo[:, :1]), folder / "column.png")
    column_hole = np.zeros((H, 1), np.uint8)
    column_hole[5:30] = 255
    _save(Image.fromarray(column_hole), folder / "column_hole.png")
    grey16 = (photo[:, :, 0].astype(np.uint16) * 257 + 3).astype(np.uint16)
    _save(Image.fromarray(grey16), folder / "grey16.png")
    _save(Image.fromarray(photo).convert("CMYK"), folder / "cmyk.jpg", quality=95)
    _save(Image.fromarray(photo).convert("P"), folder / "palette.png")
    _save(Image.fromarray(photo).convert("L"), folder / "grey.png")
    alpha = np.random.default_rng(1).integers(0, 256, (H, W), dtype=np.uint8)
    _save(Image.fromarray(np.dstack([photo, alpha])), folder / "rgba.png")
    frames = [Image.fromarray(_photo(seed=s)).convert("P") for s in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=80, loop=0)
    _save(Image.fromarray(np.zeros((10, 90), np.uint8)), folder / "mask_wide.png")
    _save(Image.fromarray(hole[::2, ::2]), folder / "mask_half.png")
    _save(Image.fromarray(np.random.default_rng(2).integers(0, 256, (H, W), dtype=np.uint8)), folder / "mask_grey.png")
    _save(Image.fromarray(np.full((H, W), 255, np.uint8)), folder / "mask_all.png")
    _save(Image.fromarray(np.zeros((H, W), np.uint8)), folder / "mask_none.png")
    _save(Image.fromarray(255 - hole), folder / "hole_inverted.png")  # black = hole, for mask_polarity=black-hole
    paint = np.zeros((H, W, 4), np.uint8)
    paint[10:25, 20:40, 3] = 255  # opaque black paint on a transparent layer: the alpha is the hole
    _save(Image.fromarray(paint), folder / "mask_alpha.png")
    (folder / "a_file").write_text("a regular file where a folder is expected\n")
    (folder / "no_images").mkdir()

    torch.manual_seed(0)
    weights = save_weights(PConvUNet(ModelConfig(depth=4, width=0.125)), folder / "tiny.safetensors")
    tensors, config = load_file(str(weights)), {"depth": 4, "width": 0.125, "in_channels": 3}
    for name, meta in {
        "other_arch": json.dumps({**config, "depth": 5}),  # tampered: the tensors are a depth-4 network
        "meta_wrong_type": json.dumps({**config, "width": "wide"}),
        "meta_not_json": "{depth: 4",
    }.items():
        save_file(tensors, str(folder / f"{name}.safetensors"), metadata={"pconv_model_config": meta})
    blob = weights.read_bytes()
    (folder / "truncated.safetensors").write_bytes(blob[: len(blob) // 2])
    import torchvision

    foreign = {k: v.contiguous() for k, v in torchvision.models.squeezenet1_1().state_dict().items()}
    save_file(foreign, str(folder / "squeezenet.safetensors"))
    torch.save(foreign, folder / "squeezenet.pt")

    (folder / "unknown_key.yaml").write_text("model: {depth: 4, widht: 0.5}\n")
    (folder / "list.yaml").write_text("- model\n- loss\n")
    (folder / "broken.yaml").write_text("model: {depth: [4\n")
    (folder / "section_scalar.yaml").write_text("model: 4\n")


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def read_rgb(path: Path) -> np.ndarray:
    from pconv.imageio import read_image

    return read_image(path).rgb


def known_pixels_kept(output: Path, source: np.ndarray, hole: np.ndarray) -> bool:
    return bool(np.array_equal(read_rgb(output)[hole == 0], source[hole == 0]))


# ---------------------------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One row of the table. ``error``: a regex the one-line message must match; ``None`` for a *works* case."""

    id: str
    what: str
    error: str | None = None
    args: tuple[str, ...] = ()  # CLI: arguments after ``pconv``; {out} is this case's empty output folder
    outputs: tuple[str, ...] = ()  # works: files that must appear in {out}
    check: Callable[[Path, Path], None] | None = None  # works: (inputs, out) -> assert more
    status: int | None = None  # HTTP: the expected status
    call: Callable[[Path, Path], Any] | None = None  # API / HTTP: (inputs, out) -> result


def _same_size_and_known(image: str, mask: str, output: str = "out.png") -> Callable[[Path, Path], None]:
    """Output of the image's size whose known pixels equal the input's (as ``pconv.imageio`` reads both)."""

    def check(inputs: Path, out: Path) -> None:
        from pconv.imageio import read_hole_mask
        from pconv.inference import resize_hole_mask

        source = read_rgb(inputs / image)
        result = read_rgb(out / output)
        assert result.shape == source.shape, (result.shape, source.shape)
        hole = resize_hole_mask(read_hole_mask(inputs / mask), (source.shape[1], source.shape[0]))
        assert known_pixels_kept(out / output, source, hole)

    return check


def _inpaint(image: str, mask: str, output: str = "{out}/out.png", *extra: str) -> tuple[str, ...]:
    return ("inpaint", "--image", image, "--mask", mask, "--output", output, "--weights", "tiny.safetensors",
            "--device", "cpu", *extra)  # fmt: skip


def _works(id: str, what: str, image: str, mask: str, *extra: str) -> Case:
    return Case(id, what, None, _inpaint(image, mask, "{out}/out.png", *extra), ("out.png",),
                _same_size_and_known(image, mask))  # fmt: skip


def _check_rgba_alpha_kept(inputs: Path, out: Path) -> None:
    _same_size_and_known("rgba.png", "hole.png")(inputs, out)
    with Image.open(inputs / "rgba.png") as a, Image.open(out / "out.png") as b:
        assert b.mode == "RGBA" and np.array_equal(np.asarray(a)[:, :, 3], np.asarray(b)[:, :, 3])


def _check_grey16(inputs: Path, out: Path) -> None:
    _same_size_and_known("grey16.png", "hole.png")(inputs, out)
    with Image.open(out / "out.png") as b:
        assert b.mode == "L"  # written back as grey
    assert read_rgb(out / "out.png")[_hole() == 0].mean() < 200  # scaled from 16 bits, not clipped to white


def _check_gif_first_frame(inputs: Path, out: Path) -> None:
    with Image.open(inputs / "animated.gif") as gif:
        first = np.asarray(gif.convert("RGB"))
    assert known_pixels_kept(out / "out.png", first, _hole())


def _check_no_hole_is_identity(inputs: Path, out: Path) -> None:
    assert np.array_equal(read_rgb(out / "out.png"), read_rgb(inputs / "photo.png"))


CLI_CASES: list[Case] = [
    # -- damaged or impossible images
    Case("cli-truncated-png", "PNG cut in half", r"cannot read image truncated\.png: damaged or truncated",
         _inpaint("truncated.png", "hole.png")),
    Case("cli-corrupt-png", "PNG with 60 zeroed bytes in its pixel data", r"cannot read image corrupt\.png: damaged",
         _inpaint("corrupt.png", "hole.png")),
    Case("cli-truncated-jpeg", "JPEG cut after 200 bytes", r"cannot read image truncated\.jpg",
         _inpaint("truncated.jpg", "hole.png")),
    Case("cli-zero-byte-image", "empty file named .png", r"empty\.png: not an image file",
         _inpaint("empty.png", "hole.png")),
    Case("cli-text-as-png", "a text file named .png", r"notes\.png: not an image file",
         _inpaint("notes.png", "hole.png")),
    Case("cli-decompression-bomb", "60-byte PNG declaring 100000x100000 pixels", r"bomb\.png: it declares more than",
         _inpaint("bomb.png", "hole.png")),
    Case("cli-missing-image", "image path that does not exist", r"image not found: nowhere\.png",
         _inpaint("nowhere.png", "hole.png")),
    Case("cli-empty-image-folder", "--image is a folder without images", r"no images .* in no_images",
         _inpaint("no_images", "hole.png", "{out}/filled")),
    # -- masks
    Case("cli-mask-other-aspect", "90x10 mask for a 64x48 image", r"mask is 90x10 but the image is 64x48",
         _inpaint("photo.png", "mask_wide.png")),
    Case("cli-mask-truncated", "mask PNG cut in half", r"cannot read mask truncated\.png",
         _inpaint("photo.png", "truncated.png")),
    Case("cli-mask-zero-byte", "empty mask file", r"cannot read mask empty\.png", _inpaint("photo.png", "empty.png")),
    Case("cli-mask-bomb", "mask declaring 100000x100000 pixels", r"cannot read mask bomb\.png: it declares more",
         _inpaint("photo.png", "bomb.png")),
    # -- weights
    Case("cli-missing-weights", "--weights file that does not exist", r"weights file not found: nowhere",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--weights", "nowhere.safetensors")),
    Case("cli-weights-other-architecture", "depth-4 tensors, metadata tampered to depth 5",
         r"does not match the pconv architecture",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--weights", "other_arch.safetensors")),
    Case("cli-weights-torchvision-squeezenet", "a torchvision squeezenet1_1 state dict as safetensors",
         r"no pconv model config in its metadata",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--weights", "squeezenet.safetensors")),
    Case("cli-weights-torch-pickle", "a squeezenet1_1 torch.save file (.pt)",
         r"squeezenet\.pt is not a readable safetensors weights file",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--weights", "squeezenet.pt")),
    Case("cli-weights-truncated", "weights file cut in half", r"truncated\.safetensors is not a readable safetensors",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--weights", "truncated.safetensors")),
    Case("cli-weights-metadata-wrong-type", 'config metadata with "width": "wide"', r"model\.width must be float",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--weights", "meta_wrong_type.safetensors")),
    Case("cli-weights-metadata-not-json", "config metadata that is not JSON",
         r"meta_not_json\.safetensors holds an unreadable pconv model config",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--weights", "meta_not_json.safetensors")),
    # -- outputs
    Case("cli-output-is-input", "--output equal to --image", r"photo\.png exists \(it is the input image\)",
         _inpaint("photo.png", "hole.png", "photo.png")),
    Case("cli-output-is-mask-overwrite", "--output equal to --mask, with --overwrite", r"hole\.png is the mask file",
         _inpaint("photo.png", "hole.png", "hole.png", "--overwrite")),
    Case("cli-output-exists", "--output is an existing file (no --overwrite)", r"grey\.png exists; pass --overwrite",
         _inpaint("photo.png", "hole.png", "grey.png")),
    Case("cli-output-folder-is-a-file", "read-only output folder, simulated: --output below a regular file",
         r"cannot create the output folder a_file/sub: a_file is a file",
         _inpaint("photo.png", "hole.png", "a_file/sub/out.png")),
    Case("cli-output-unknown-format", "--output out.gif", r"cannot tell the image format of .*out\.gif",
         _inpaint("photo.png", "hole.png", "{out}/out.gif")),
    # -- settings
    Case("cli-max-side-zero", "--max-side 0", r"^pconv inpaint: error: --max-side must be at least 16, got 0$",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--max-side", "0")),
    Case("cli-negative-dilate", "--dilate -1", r"^pconv inpaint: error: --dilate must be at least 0, got -1$",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--dilate", "-1")),
    Case("cli-threshold-out-of-range", "--threshold 300", r"error: --threshold must be at most 254, got 300$",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--threshold", "300")),
    Case("cli-quality-zero", "--quality 0", r"quality must be in 1\.\.100, got 0",
         _inpaint("photo.png", "hole.png", "{out}/out.jpg", "--quality", "0")),
    Case("cli-dilate-not-a-number", "--dilate x", r"^pconv inpaint: error: argument --dilate: invalid int value: 'x'",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--dilate", "x")),
    Case("cli-unknown-command", "pconv inpiant (typo)", r"^pconv: error: argument COMMAND: invalid choice: 'inpiant'",
         ("inpiant", "--image", "photo.png")),
    Case("cli-unknown-device", "--device tpu9", r"unknown device 'tpu9'",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--device", "tpu9")),
    # -- odd inputs that must work
    Case("cli-1x1-image-all-hole", "1x1 image, its one pixel a hole (nothing known)", r"covers the whole image",
         _inpaint("pixel.png", "pixel_hole.png")),
    _works("cli-one-pixel-wide", "1x48 image, a hole in its only column", "column.png", "column_hole.png"),
    Case("cli-16bit-png", "16-bit grey PNG", None, _inpaint("grey16.png", "hole.png"), ("out.png",), _check_grey16),
    _works("cli-cmyk-jpeg", "CMYK JPEG", "cmyk.jpg", "hole.png"),
    _works("cli-palette-png", "palette (P mode) PNG", "palette.png", "hole.png"),
    _works("cli-grey-png", "8-bit grey PNG", "grey.png", "hole.png"),
    Case("cli-rgba-png", "RGBA PNG (alpha kept)", None, _inpaint("rgba.png", "hole.png"), ("out.png",),
         _check_rgba_alpha_kept),
    Case("cli-animated-gif", "3-frame animated GIF (first frame filled)", None, _inpaint("animated.gif", "hole.png"),
         ("out.png",), _check_gif_first_frame),
    _works("cli-mask-half-size", "32x24 mask for a 64x48 image (same aspect: resized)", "photo.png", "mask_half.png"),
    _works("cli-mask-non-binary", "mask of random grey levels (binarised at 127)", "photo.png", "mask_grey.png"),
    Case("cli-mask-all-hole", "all-white mask (no known pixel)",
         r"^pconv inpaint: error: the mask covers the whole image.*--mask-polarity black-hole",
         _inpaint("photo.png", "mask_all.png")),
    Case("cli-mask-all-black-black-hole", "all-black mask read with --mask-polarity black-hole",
         r"covers the whole image", _inpaint("photo.png", "mask_none.png", "{out}/out.png", "--mask-polarity",
                                             "black-hole")),
    Case("cli-dilate-covers-all", "--dilate 64 on a 64x48 image (no known pixel left)",
         r"dilating the hole by 64 pixels leaves no known pixel.*--dilate",
         _inpaint("photo.png", "hole.png", "{out}/out.png", "--dilate", "64")),
    Case("cli-mask-no-hole", "all-black mask (output = input)", None, _inpaint("photo.png", "mask_none.png"),
         ("out.png",), _check_no_hole_is_identity),
    _works("cli-mask-alpha-only", "mask painted on a transparent layer (alpha = hole)", "photo.png", "mask_alpha.png"),
]  # fmt: skip


def _train(*extra: str) -> tuple[str, ...]:
    return ("train", "--config", str(TINY), "--data.train_root=.", "--train.out_dir={out}/run", *extra)


TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"

TRAIN_CASES: list[Case] = [
    Case("train-unknown-yaml-key", "preset with model.widht (typo)", r"unknown config keys \['widht'\]",
         ("train", "--config", "unknown_key.yaml", "--train.out_dir={out}/run")),
    Case("train-unknown-override", "--model.detph=3 (typo)",
         r"^pconv train: error: unrecognized arguments: --model\.detph=3 \(see pconv train --help\)",
         ("train", "--model.detph=3")),
    Case("train-yaml-is-a-list", "preset holding a list", r"list\.yaml must hold a mapping of sections",
         ("train", "--config", "list.yaml")),
    Case("train-yaml-broken", "preset that is not valid YAML", r"broken\.yaml is not valid YAML",
         ("train", "--config", "broken.yaml")),
    Case("train-yaml-section-scalar", "preset with model: 4", r"model\. must be a mapping, got 4",
         ("train", "--config", "section_scalar.yaml")),
    Case("train-missing-config", "--config that does not exist", r"config file not found: nowhere\.yaml",
         ("train", "--config", "nowhere.yaml")),
    Case("train-wrong-type", "--model.depth=deep", r"model\.depth", _train("--model.depth=deep")),
    Case("train-zero-crop", "--data.crop_size=0", r"data\.crop_size must be >= 1, got 0", _train("--data.crop_size=0")),
    Case("train-huge-crop", "--data.crop_size=100000 (used to run out of memory)",
         r"data\.crop_size must be <= 8192 pixels", _train("--data.crop_size=100000")),
    Case("train-negative-batch", "--data.batch_size=-2", r"data\.batch_size must be >= 1, got -2",
         _train("--data.batch_size=-2")),
    Case("train-zero-depth", "--model.depth=0", r"depth must be in 1\.\.8, got 0", _train("--model.depth=0")),
    Case("train-zero-width", "--model.width=0", r"width must be positive", _train("--model.width=0")),
    Case("train-negative-steps", "--phase1.steps=-1", r"steps >= 0 .* got steps=-1", _train("--phase1.steps=-1")),
    Case("train-zero-lr", "--phase1.lr=0", r"lr > 0", _train("--phase1.lr=0")),
    Case("train-zero-ckpt-every", "--train.ckpt_every=0", r"ckpt_every .* must be >= 1",
         _train("--train.ckpt_every=0")),
    Case("train-bad-precision", "--train.precision=fp8", r"train\.precision must be", _train("--train.precision=fp8")),
    Case("train-missing-data", "--data.train_root=nowhere", r"train_root: folder not found: nowhere",
         ("train", "--config", str(TINY), "--data.train_root=nowhere", "--train.out_dir={out}/run")),
    Case("train-no-images", "--data.train_root with no images", r"no images .* found in no_images",
         ("train", "--config", str(TINY), "--data.train_root=no_images", "--train.out_dir={out}/run")),
    Case("train-missing-masks", "--data.masks=nowhere", r"data\.masks must be 'generated' or a folder",
         _train("--data.masks=nowhere")),
    Case("train-vgg-without-weights", "--loss.perceptual=0.05 without VGG weights", r"need ImageNet VGG-16 weights",
         _train("--loss.perceptual=0.05")),
    Case("train-resume-missing-run", "--resume nowhere_run", r"run directory not found: nowhere_run",
         ("train", "--resume", "nowhere_run")),
]  # fmt: skip


# ------------------------------------------------------------------------------------------------ the CLI runs


@dataclass
class CliOutcome:
    returncode: int
    stdout: str
    stderr: str
    new_files: list[str] = field(default_factory=list)
    changed_inputs: list[str] = field(default_factory=list)


def run_cli_case(runner: CliRunner, case: Case, inputs: Path, out: Path) -> CliOutcome:
    out.mkdir(parents=True, exist_ok=True)
    before_in, before_out = snapshot(inputs), snapshot(out)
    args = [a.replace("{out}", str(out)) for a in case.args]
    result = runner.run(args, cwd=inputs, timeout=180)
    after_in, after_out = snapshot(inputs), snapshot(out)
    new = sorted((set(after_in) - set(before_in)) | {f"{{out}}/{p}" for p in set(after_out) - set(before_out)})
    changed = sorted(p for p in before_in if after_in.get(p) != before_in[p])
    return CliOutcome(result.returncode, result.stdout, result.stderr, new, changed)


def assert_cli_outcome(case: Case, outcome: CliOutcome, inputs: Path, out: Path) -> None:
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.changed_inputs == [], f"inputs modified: {outcome.changed_inputs}"
    if case.error is not None:
        lines = outcome.stderr.strip().splitlines()
        assert outcome.returncode != 0 and len(lines) == 1, (outcome.returncode, outcome.stderr)
        assert re.search(case.error, lines[0]), lines[0]
        assert outcome.new_files == [], f"left behind: {outcome.new_files}"
        return
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.new_files == sorted(f"{{out}}/{name}" for name in case.outputs), outcome.new_files
    if case.check is not None:
        case.check(inputs, out)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    make_inputs(folder)
    return folder


@pytest.fixture(scope="module")
def runner() -> Iterator[CliRunner]:
    cli = CliRunner()
    yield cli
    cli.close()


@pytest.mark.parametrize("case", CLI_CASES + TRAIN_CASES, ids=lambda c: c.id)
def test_cli(case: Case, inputs: Path, runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_cli_outcome(case, run_cli_case(runner, case, inputs, out), inputs, out)


def test_fork_runner_matches_a_real_subprocess(inputs: Path, runner: CliRunner, tmp_path: Path) -> None:
    for case in (CLI_CASES[0], TRAIN_CASES[0]):
        args = [a.replace("{out}", str(tmp_path)) for a in case.args]
        forked, real = runner.run(args, cwd=inputs), real_subprocess(args, cwd=inputs)
        assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)


def test_the_runner_shows_a_traceback_when_there_is_one(inputs: Path, runner: CliRunner, tmp_path: Path) -> None:
    # The CLI cases can only fail on a traceback if the runner shows one: PCONV_DEBUG=1 lets an error propagate.
    args = [a.replace("{out}", str(tmp_path)) for a in CLI_CASES[0].args]
    result = runner.run(args, cwd=inputs, env={"PCONV_DEBUG": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "ValueError" in result.stderr


# ------------------------------------------------------------------------------------------------ full disk


def _fill_tiny_tmpfs(mount: Path) -> Iterator[Path]:
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB filesystem (tmpfs), for writes that run out of space."""
    yield from _fill_tiny_tmpfs(tmp_path / "disk")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_cli_full_disk_on_a_real_tmpfs_leaves_no_partial_file(inputs: Path, runner: CliRunner, tiny_disk: Path,
                                                            tmp_path: Path, suffix: str) -> None:  # fmt: skip
    big, mask = tmp_path / "big.png", tmp_path / "big_mask.png"  # 400x300 noise: 150+ KB in each format; 64 fit
    Image.fromarray(_photo(300, 400, seed=5)).save(big)
    Image.fromarray(np.zeros((300, 400), np.uint8)).save(mask)
    before = snapshot(inputs)
    result = runner.run(list(_inpaint(str(big), str(mask), str(tiny_disk / f"out{suffix}"))), cwd=inputs)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert re.search(rf"cannot write .*out\{suffix}: No space left on device", lines[0]), lines[0]
    assert list(tiny_disk.iterdir()) == [] and snapshot(inputs) == before


class _DiskFull(io.RawIOBase):
    """A file that accepts ``limit`` bytes, then fails like a full disk."""

    def __init__(self, real: Any, limit: int) -> None:
        self.real, self.limit, self.written = real, limit, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        room = self.limit - self.written
        if room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = self.real.write(bytes(data)[:room])
        self.written += n
        return n

    def fileno(self) -> int:
        return self.real.fileno()

    def flush(self) -> None:
        self.real.flush()

    def close(self) -> None:
        try:
            super().close()  # flushes through self.flush while the real file is still open
        finally:
            self.real.close()


@pytest.mark.parametrize(("suffix", "fails_at"), [(".png", "write"), (".png", "fsync"), (".jpg", "fsync"),
                                                 (".webp", "fsync")])  # fmt: skip
def test_cli_full_disk_mid_write_leaves_no_partial_file(inputs: Path, tmp_path: Path, monkeypatch, capsys,
                                                        suffix: str, fails_at: str) -> None:  # fmt: skip
    """In-process, simulated: ENOSPC after 100 bytes of write(), or at fsync once the encoder has written its bytes
    (where network and delayed-allocation filesystems report a full disk; JPEG writes to the descriptor directly)."""
    import builtins
    import os

    import pconv.imageio
    from pconv.cli import main

    partial: list[int] = []

    def open_then_fill(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        real = builtins.open(path, mode, *args, **kwargs)
        return _DiskFull(real, limit=100) if fails_at == "write" and "x" in mode else real

    def fsync_then_fail(fd: int) -> None:
        partial.append(os.fstat(fd).st_size)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pconv.imageio, "open", open_then_fill, raising=False)
    if fails_at == "fsync":
        monkeypatch.setattr(pconv.imageio.os, "fsync", fsync_then_fail)
    monkeypatch.chdir(inputs)
    before = snapshot(inputs)
    code = main(list(_inpaint("photo.png", "hole.png", str(tmp_path / f"out{suffix}"))))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert re.search(rf"cannot write .*out\{suffix}: No space left on device", err[0]), err[0]
    assert fails_at == "write" or partial[0] > 100, "the encoder's bytes should have reached the file before fsync"
    assert list(tmp_path.iterdir()) == [] and snapshot(inputs) == before  # the temporary file is gone too


# ------------------------------------------------------------------------------------------------ Python API


def _inpainter(inputs: Path) -> Any:
    from pconv.inference import Inpainter

    return Inpainter(inputs / "tiny.safetensors", device="cpu")


def _api_inpaint(image: Any, mask: Any) -> Callable[[Path, Path], Any]:
    return lambda inputs, out: _inpainter(inputs).inpaint(image, mask)


def _write_full_disk(inputs: Path, out: Path) -> Any:
    from unittest import mock

    import pconv.imageio

    real_open = open
    with mock.patch.object(pconv.imageio, "open", lambda p, m="r": _DiskFull(real_open(p, m), 100), create=True):
        return pconv.imageio.write_image(out / "x.png", _photo())


def _load_other_arch(inputs: Path, out: Path) -> Any:
    from pconv.model import load_weights

    return load_weights(inputs / "other_arch.safetensors")


def _checkpoint_of_other_config(inputs: Path, out: Path) -> Any:
    """A training checkpoint whose model config is a list, read for inference."""
    from pconv.checkpoint import FORMAT_VERSION, model_from_checkpoint, write_checkpoint

    state = {"format_version": FORMAT_VERSION, "config": {"model": [4, 0.125]}, "model": {}, "optimizer": {},
             "scaler": {}, "step": 1, "rng": {}}  # fmt: skip
    path = write_checkpoint(state, out / "ckpt_00000001.pt")
    try:
        return model_from_checkpoint(path)
    finally:
        path.unlink()  # the case itself must leave nothing behind; the file exists only while it is read


API_CASES: list[Case] = [
    Case("api-missing-weights", "Inpainter('nowhere.safetensors')", r"weights file not found",
         call=lambda i, o: __import__("pconv.inference").inference.Inpainter(i / "nowhere.safetensors")),
    Case("api-weights-other-architecture", "load_weights on tampered metadata",
         r"does not match the pconv architecture",
         call=_load_other_arch),
    Case("api-checkpoint-foreign-config", "checkpoint whose model config is a list", r"model config must be a mapping",
         call=_checkpoint_of_other_config),
    Case("api-float-0-255-tensor", "float tensor image in 0..255", r"values in \[0\.\d+, 2\d\d\.\d+\], not \[0, 1\]; "
         r"divide 0\.\.255 values by 255",
         call=lambda i, o: _api_inpaint(torch.rand(3, 20, 30) * 255, torch.ones(20, 30))(i, o)),
    Case("api-nan-tensor", "tensor image holding NaN", r"NaN or infinite",
         call=lambda i, o: _api_inpaint(torch.full((3, 20, 30), float("nan")), torch.ones(20, 30))(i, o)),
    Case("api-nan-mask", "tensor mask holding NaN", r"hole_mask tensor holds NaN",
         call=lambda i, o: _api_inpaint(torch.rand(3, 20, 30), torch.full((20, 30), float("nan")))(i, o)),
    Case("api-grey-2d-array", "(H, W) uint8 array as the image", r"numpy image must be uint8 \(H, W, 3\)",
         call=lambda i, o: _api_inpaint(_photo()[:, :, 0], _hole())(i, o)),
    Case("api-float64-array", "float64 (H, W, 3) array", r"got \(48, 64, 3\) float64",
         call=lambda i, o: _api_inpaint(_photo().astype(np.float64), _hole())(i, o)),
    Case("api-mask-other-size", "mask 64x24 for a 64x48 image", r"hole_mask is 64x24 but the image is 64x48",
         call=lambda i, o: _api_inpaint(_photo(), _hole()[:24])(i, o)),
    Case("api-mask-int64", "int64 mask array", r"must be uint8 or bool, got int64",
         call=lambda i, o: _api_inpaint(_photo(), _hole().astype(np.int64))(i, o)),
    Case("api-path-as-image", "a file name instead of pixels", r"image must be a PIL image, .* got str",
         call=lambda i, o: _api_inpaint("photo.png", _hole())(i, o)),
    Case("api-list-count-mismatch", "2 images, 3 masks", r"2 images but 3 hole masks",
         call=lambda i, o: _api_inpaint([_photo(), _photo()], [_hole()] * 3)(i, o)),
    Case("api-read-bomb", "imageio.read_image on the 100000x100000 PNG", r"it declares more than",
         call=lambda i, o: __import__("pconv.imageio").imageio.read_image(i / "bomb.png")),
    Case("api-load-rgb-bomb", "data.load_rgb on the 100000x100000 PNG", r"too many pixels|more than",
         call=lambda i, o: __import__("pconv.data").data.load_rgb(i / "bomb.png")),
    Case("api-load-hole-mask-corrupt", "masks.load_hole_mask on the corrupt PNG", r"cannot read mask .*corrupt\.png",
         call=lambda i, o: __import__("pconv.masks").masks.load_hole_mask(i / "corrupt.png")),
    Case("api-write-into-a-file", "write_image below a regular file", r"a_file is a file, not a folder",
         call=lambda i, o: __import__("pconv.imageio").imageio.write_image(i / "a_file" / "x.png", _photo())),
    Case("api-write-full-disk", "write_image failing with ENOSPC after 100 bytes",
         r"cannot write .*x\.png: No space left on device",
         call=_write_full_disk),
    Case("api-config-unknown-key", "load_config(overrides=['model.widht=1'])", r"unknown config key 'model\.widht'",
         call=lambda i, o: __import__("pconv.config").config.load_config(None, ["model.widht=1"])),
    # odd inputs that must work (call returns (result, expected size, known-pixel check))
    Case("api-pil-16bit", "PIL I;16 image", call=lambda i, o: (_inpainter(i).inpaint(Image.open(i / "grey16.png"),
         Image.open(i / "hole.png")), read_rgb(i / "grey16.png"))),
    Case("api-pil-palette", "PIL P image", call=lambda i, o: (_inpainter(i).inpaint(Image.open(i / "palette.png"),
         Image.open(i / "hole.png")), read_rgb(i / "palette.png"))),
    Case("api-pil-cmyk", "PIL CMYK image", call=lambda i, o: (_inpainter(i).inpaint(Image.open(i / "cmyk.jpg"),
         Image.open(i / "hole.png")), read_rgb(i / "cmyk.jpg"))),
    Case("api-all-hole", "an all-white mask (no known pixel)", r'covers the whole image.*mask_polarity="black-hole"',
         call=lambda i, o: _inpainter(i).inpaint(_photo(), np.full((H, W), 255, np.uint8))),
    Case("api-1x1-array", "1x1 uint8 array, hole (no known pixel)", r"covers the whole image",
         call=lambda i, o: _inpainter(i).inpaint(_photo(1, 1), np.ones((1, 1), np.uint8))),
]  # fmt: skip


def run_api_case(case: Case, inputs: Path, out: Path) -> tuple[str, Any]:
    """('error', exception) or ('works', result)."""
    try:
        return "works", case.call(inputs, out)
    except (ValueError, OSError) as exc:
        return "error", exc


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.id)
def test_api(case: Case, inputs: Path, tmp_path: Path) -> None:
    before = snapshot(inputs)
    kind, value = run_api_case(case, inputs, tmp_path)
    assert snapshot(inputs) == before and list(tmp_path.iterdir()) == []
    if case.error is not None:
        assert kind == "error", f"expected an error, got {value!r}"
        message = str(value)
        assert len(message.strip().splitlines()) == 1 and re.search(case.error, message), message
        return
    assert kind == "works", value
    result, source = value
    pixels = np.asarray(result.convert("RGB") if isinstance(result, Image.Image) else result)[:, :, :3]
    assert pixels.shape == source.shape
    hole = _hole() if source.shape[:2] == (H, W) else np.ones(source.shape[:2], np.uint8)
    assert np.array_equal(pixels[hole == 0], source[hole == 0])


# ------------------------------------------------------------------------------------------------ HTTP API


def _upload(image: str, mask: str, **data: str) -> Callable[[Path, Any], Any]:
    def post(inputs: Path, client: Any) -> Any:
        files = {"image": (image, (inputs / image).read_bytes(), "application/octet-stream"),
                 "mask": (mask, (inputs / mask).read_bytes(), "application/octet-stream")}  # fmt: skip
        return client.post("/api/v1/inpaint", files=files, data=data)

    return post


HTTP_CASES: list[Case] = [
    Case("http-truncated-png", "image upload cut in half", r"image upload could not be decoded: truncated or corrupt",
         status=422,
         call=_upload("truncated.png", "hole.png")),
    Case("http-corrupt-png", "PNG with zeroed pixel data", r"truncated or corrupt PNG", status=422,
         call=_upload("corrupt.png", "hole.png")),
    Case("http-zero-byte", "empty image upload", r"the image upload is empty", status=422,
         call=_upload("empty.png", "hole.png")),
    Case("http-text-as-png", "text file named .png", r"not an image this server reads", status=415,
         call=_upload("notes.png", "hole.png")),
    Case("http-decompression-bomb", "PNG declaring 100000x100000", r"too many pixels", status=413,
         call=_upload("bomb.png", "hole.png")),
    Case("http-mask-bomb", "mask declaring 100000x100000", r"mask upload has too many pixels", status=413,
         call=_upload("photo.png", "bomb.png")),
    Case("http-mask-other-aspect", "90x10 mask for a 64x48 image", r"mask is 90x10 but the image is 64x48", status=400,
         call=_upload("photo.png", "mask_wide.png")),
    Case("http-mask-truncated", "mask upload cut in half", r"mask upload could not be decoded", status=422,
         call=_upload("photo.png", "truncated.png")),
    Case("http-negative-dilate", "dilate=-1", r"greater than or equal to 0", status=422,
         call=_upload("photo.png", "hole.png", dilate="-1")),
    Case("http-missing-mask", "no mask field", r"mask", status=422,
         call=lambda i, c: c.post("/api/v1/inpaint", files={"image": ("p.png", (i / "photo.png").read_bytes())})),
    Case("http-not-multipart", "a JSON body", r"image", status=422,
         call=lambda i, c: c.post("/api/v1/inpaint", json={"image": "photo.png"})),
    Case("http-16bit-png", "16-bit grey PNG (scaled, not white)", status=200, call=_upload("grey16.png", "hole.png")),
    Case("http-cmyk-jpeg", "CMYK JPEG", status=200, call=_upload("cmyk.jpg", "hole.png")),
    Case("http-palette-png", "palette PNG", status=200, call=_upload("palette.png", "hole.png")),
    Case("http-rgba-png", "RGBA PNG", status=200, call=_upload("rgba.png", "hole.png")),
    Case("http-animated-gif", "animated GIF (first frame)", status=200, call=_upload("animated.gif", "hole.png")),
    Case("http-1x1", "1x1 image with a hole (no known pixel)", r"covers the whole image", status=422,
         call=_upload("pixel.png", "pixel_hole.png")),
    Case("http-mask-alpha-only", "mask painted on a transparent layer", status=200,
         call=_upload("photo.png", "mask_alpha.png")),
    Case("http-mask-all-hole", "all-white mask (no known pixel)",
         r"covers the whole image.*mask_polarity=black-hole", status=422, call=_upload("photo.png", "mask_all.png")),
    Case("http-mask-black-hole", "mask_polarity=black-hole: the black box is the hole", status=200,
         call=_upload("photo.png", "hole_inverted.png", mask_polarity="black-hole")),
    Case("http-mask-polarity-unknown", "mask_polarity=grey", r"white-hole.*black-hole", status=422,
         call=_upload("photo.png", "hole.png", mask_polarity="grey")),
    Case("http-dilate-covers-all", "dilate=64 on a 64x48 image", r"dilating the hole by 64 pixels", status=422,
         call=_upload("photo.png", "hole.png", dilate="64")),
]  # fmt: skip

_HTTP_SOURCES = {"http-16bit-png": "grey16.png", "http-cmyk-jpeg": "cmyk.jpg", "http-palette-png": "palette.png",
                 "http-rgba-png": "rgba.png", "http-mask-alpha-only": "photo.png",
                 "http-mask-black-hole": "photo.png", "http-animated-gif": "animated.gif"}  # fmt: skip


@pytest.fixture(scope="module")
def http_client(inputs: Path) -> Iterator[Any]:
    pytest.importorskip("fastapi")
    import httpx
    from live_server import serve

    from pconv.server import create_app

    with serve(create_app(_inpainter(inputs))) as url, httpx.Client(base_url=url, timeout=60, trust_env=False) as c:
        yield c


@pytest.mark.parametrize("case", HTTP_CASES, ids=lambda c: c.id)
def test_http(case: Case, inputs: Path, http_client: Any) -> None:
    before = snapshot(inputs)
    response = case.call(inputs, http_client)
    assert snapshot(inputs) == before
    assert response.status_code == case.status, response.text
    if case.status != 200:
        detail = response.json()["detail"]
        text = detail if isinstance(detail, str) else json.dumps(detail)
        assert re.search(case.error, text), text
        return
    result = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    source_name = _HTTP_SOURCES[case.id]
    with Image.open(inputs / source_name) as src:
        source = np.asarray(src.convert("RGB")) if src.mode != "I;16" else read_rgb(inputs / source_name)
    assert result.shape == source.shape
    if source.shape[:2] == (H, W):
        assert np.array_equal(result[_hole() == 0], source[_hole() == 0])


# ------------------------------------------------------------------------------------------------ the table


def _cli_summary(outcome: CliOutcome) -> str:
    if outcome.returncode == 0:
        return f"works (exit 0): {outcome.stdout.strip().splitlines()[-1]}"
    return f"exit {outcome.returncode}: `{outcome.stderr.strip().splitlines()[-1]}`"


def write_table(path: Path) -> None:
    """Run every case and write ``docs/bad_inputs.md``: each input with what it got."""
    import tempfile

    import httpx
    from live_server import serve

    from pconv.server import create_app

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs"
        make_inputs(inputs)
        cli = CliRunner()
        for n, case in enumerate(CLI_CASES + TRAIN_CASES):
            outcome = run_cli_case(cli, case, inputs, Path(tmp) / f"out{n}")
            rows.append((case, _cli_summary(outcome).replace(str(Path(tmp) / f"out{n}"), "OUT")))
        cli.close()
        for n, case in enumerate(API_CASES):
            (Path(tmp) / f"api{n}").mkdir()
            kind, value = run_api_case(case, inputs, Path(tmp) / f"api{n}")
            got = f"{type(value).__name__}: `{value}`" if kind == "error" else "works: same size, known pixels kept"
            rows.append((case, got.replace(str(inputs) + "/", "").replace(tmp, "TMP")))
        with serve(create_app(_inpainter(inputs))) as url, httpx.Client(base_url=url, timeout=60) as client:
            for case in HTTP_CASES:
                response = case.call(inputs, client)
                got = (f"{response.status_code}: image/png of the input's size" if response.status_code == 200
                       else f"{response.status_code}: `{response.json()['detail']}`")  # fmt: skip
                rows.append((case, got))
    lines = [
        "# Bad and odd inputs, and what each gets",
        "",
        "Generated by `PYTHONPATH=src python tests/test_bad_inputs.py docs/bad_inputs.md`; the same cases are",
        "asserted by `tests/test_bad_inputs.py` (error cases: one line, exit != 0 or 4xx, no file left behind, no",
        "input modified; *works* cases: an output of the input's size with every known pixel unchanged). CLI cases",
        "run `python -m pconv` with the weights `tiny.safetensors` in a folder holding the inputs.",
        "",
        "| id | input | expected | what it got |",
        "|---|---|---|---|",
    ]
    for case, got in rows:
        expected = "works" if case.error is None and case.status in (None, 200) else "error"
        lines.append(f"| {case.id} | {case.what} | {expected} | {got.replace('|', '/')} |")
    lines += [
        "| cli-full-disk-tmpfs (.png .jpg .webp) | output on a real 64 KiB tmpfs, 400x300 noise | error | exit 2: "
        "`pconv inpaint: error: [Errno 28] cannot write DISK/out.png: No space left on device`, the disk left empty |",
        "| cli-full-disk-write (.png) | writes fail with ENOSPC after 100 bytes (monkeypatched, in-process) | error | "
        "exit 2, same message; the temporary file removed |",
        "| cli-full-disk-fsync (.png .jpg .webp) | fsync fails with ENOSPC after the encoder wrote (monkeypatched) | "
        "error | exit 2, same message; the temporary file removed |",
    ]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    write_table(Path(sys.argv[1]))
