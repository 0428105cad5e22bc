"""Fuzz pconv's image and mask decoding with mutated real PNG, JPEG, GIF, WebP, BMP and TIFF files.

Every mutated file goes through each reader a user or client can reach: ``pconv.imageio.read_image`` and
``read_hole_mask`` (the CLI), ``pconv.data.load_rgb`` (training), ``pconv.masks.load_hole_mask``, and the
server's upload path (``open_upload`` + ``prepare_pair``). The only allowed outcomes are a well-formed result or a
``ValueError``/``OSError`` with a message (an HTTP 4xx for the server); anything else, a hang, or a crash is a
finding. ``tests/test_fuzz_decode.py`` drives the same checks with hypothesis; this script runs longer:

    PYTHONPATH=src python tools/fuzz_decode.py --seconds 60 [--seed 1] [--hang-seconds 20]

It prints one line per finding (reader, exception, mutation) and a summary; the exit status is 1 if it found
anything. A case that runs past ``--hang-seconds`` dumps the stack and exits (faulthandler).
"""

from __future__ import annotations

import argparse
import faulthandler
import io
import random
import struct
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# ------------------------------------------------------------------------------------------------ seed files


def _photo(h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=-1)
    return (base + rng.integers(0, 30, (h, w, 3))).clip(0, 255).astype(np.uint8)


def _encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def seed_files() -> dict[str, bytes]:
    """Small valid files, one per format and interesting mode (name -> bytes)."""
    rgb = Image.fromarray(_photo())
    hole = np.zeros((12, 16), np.uint8)
    hole[3:8, 4:11] = 255
    alpha_mask = np.zeros((12, 16, 4), np.uint8)
    alpha_mask[2:9, 5:12, 3] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    frames = [Image.fromarray(_photo(seed=s)).convert("P") for s in range(2)]
    return {
        "rgb.png": _encode(rgb, "PNG"),
        "rgba.png": _encode(rgb.convert("RGBA"), "PNG"),
        "palette.png": _encode(rgb.convert("P"), "PNG", transparency=0),
        "grey16.png": _encode(Image.fromarray(_photo()[:, :, 0].astype(np.uint16) * 257), "PNG"),
        "interlaced.png": _encode(rgb, "PNG", interlace=1) if _png_interlace_supported() else _encode(rgb, "PNG"),
        "mask.png": _encode(Image.fromarray(hole), "PNG"),
        "alpha_mask.png": _encode(Image.fromarray(alpha_mask), "PNG"),
        "exif.jpg": _encode(rgb, "JPEG", quality=80, exif=exif.tobytes()),
        "progressive.jpg": _encode(rgb, "JPEG", quality=70, progressive=True),
        "cmyk.jpg": _encode(rgb.convert("CMYK"), "JPEG"),
        "anim.gif": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
        "lossy.webp": _encode(rgb, "WEBP", quality=60),
        "lossless.webp": _encode(rgb.convert("RGBA"), "WEBP", lossless=True),
        "rgb.bmp": _encode(rgb, "BMP"),
        "lzw.tiff": _encode(rgb, "TIFF", compression="tiff_lzw"),
    }


def _png_interlace_supported() -> bool:
    try:
        _encode(Image.new("RGB", (2, 2)), "PNG", interlace=1)
        return True
    except (TypeError, ValueError, OSError):
        return False


# ------------------------------------------------------------------------------------------------ mutations


def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _overwrite(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    start = rng.randrange(len(out))
    for i in range(start, min(len(out), start + rng.randint(1, 16))):
        out[i] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _insert_or_delete(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    if rng.random() < 0.5:
        return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 32))) + data[i:]
    return data[:i] + data[i + rng.randint(1, 32) :]


_EXTREMES = (0, 1, 2, 255, 256, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)


def _header_int(data: bytes, rng: random.Random) -> bytes:
    """Set a 16- or 32-bit integer in the first 64 bytes (where sizes live) to an extreme value."""
    size, order = rng.choice([(2, "<"), (2, ">"), (4, "<"), (4, ">")])
    i = rng.randrange(min(len(data), 64) - size + 1) if len(data) >= size else 0
    value = rng.choice(_EXTREMES) & (0xFFFF if size == 2 else 0xFFFFFFFF)
    packed = struct.pack(order + ("H" if size == 2 else "I"), value)
    return data[:i] + packed + data[i + size :]


def _png_chunks(data: bytes) -> list[tuple[int, bytes, bytes]] | None:
    """(offset, type, payload) of each chunk of a PNG, or None if ``data`` is not a well-formed PNG."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    chunks, i = [], 8
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind, payload = data[i + 4 : i + 8], data[i + 8 : i + 8 + length]
        chunks.append((i, kind, payload))
        i += 12 + length
    return chunks


def _png_chunk_edit(data: bytes, rng: random.Random) -> bytes:
    """Change a PNG chunk's payload (IHDR fields: size, bit depth, colour type) and fix its CRC, so it parses."""
    chunks = _png_chunks(data)
    if not chunks:
        return _header_int(data, rng)
    offset, kind, payload = rng.choice(chunks)
    body = bytearray(payload)
    if kind == b"IHDR" and len(body) == 13:
        field = rng.randrange(5)
        if field < 2:  # width or height
            body[field * 4 : field * 4 + 4] = struct.pack(">I", rng.choice(_EXTREMES[:9]))
        else:  # bit depth, colour type, compression/filter/interlace
            body[6 + field] = rng.choice([0, 1, 2, 3, 4, 6, 8, 16, 255])
    elif body:
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
    else:
        body = bytearray(rng.randbytes(4))
    crc = struct.pack(">I", zlib.crc32(kind + bytes(body)) & 0xFFFFFFFF)
    chunk = struct.pack(">I", len(body)) + kind + bytes(body) + crc
    return data[:offset] + chunk + data[offset + 12 + len(payload) :]


def _jpeg_size_edit(data: bytes, rng: random.Random) -> bytes:
    """Set the height or width in a JPEG's SOF marker to an extreme value."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        i = data.find(marker)
        if i >= 0 and i + 9 <= len(data):
            at = i + 5 + 2 * rng.randrange(2)
            return data[:at] + struct.pack(">H", rng.choice(_EXTREMES[:7])) + data[at + 2 :]
    return _header_int(data, rng)


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip_bits": _flip_bits,
    "overwrite": _overwrite,
    "truncate": _truncate,
    "insert_or_delete": _insert_or_delete,
    "header_int": _header_int,
    "png_chunk_edit": _png_chunk_edit,
    "jpeg_size_edit": _jpeg_size_edit,
}

# ------------------------------------------------------------------------------------------------ readers

# Largest image the checks let a reader decode: a mutated header may declare any size, and Pillow's own guard
# (about 179 MP) would let a single case allocate gigabytes. The readers under test apply their own limits too.
FUZZ_MAX_PIXELS = 4_000_000


@dataclass
class Finding:
    reader: str
    error: str
    mutation: str


def _check_rgb(arr: np.ndarray) -> None:
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and arr.size > 0, (arr.shape, arr.dtype)


def _check_hole(arr: np.ndarray) -> None:
    assert arr.dtype == np.uint8 and arr.ndim == 2 and arr.size > 0, (arr.shape, arr.dtype)
    assert set(np.unique(arr).tolist()) <= {0, 1}


def _read_image(path: Path) -> None:
    from pconv.imageio import read_image

    picture = read_image(path)
    _check_rgb(picture.rgb)
    assert picture.alpha is None or picture.alpha.shape == picture.rgb.shape[:2]


def _read_hole_mask(path: Path) -> None:
    from pconv.imageio import read_hole_mask

    _check_hole(read_hole_mask(path))


def _load_rgb(path: Path) -> None:
    from pconv.data import load_rgb

    _check_rgb(load_rgb(path, max_pixels=FUZZ_MAX_PIXELS))


def _load_hole_mask(path: Path) -> None:
    from pconv.masks import load_hole_mask

    _check_hole(load_hole_mask(path))


def _server_upload(path: Path) -> None:
    """The server's path: decode the upload as the image (with a valid mask) and as the mask (with a valid image)."""
    from fastapi import HTTPException

    from pconv.server import open_upload, prepare_pair

    data = path.read_bytes()
    for field in ("image", "mask"):
        try:
            img = open_upload(data, field, max_pixels=FUZZ_MAX_PIXELS)
            if field == "image":
                photo, hole = prepare_pair(img, Image.new("L", img.size, 0))
            else:
                photo, hole = prepare_pair(Image.new("RGB", img.size, (9, 9, 9)), img)
        except HTTPException as exc:
            assert 400 <= exc.status_code < 500 and isinstance(exc.detail, str) and exc.detail, exc
            continue
        assert photo.mode in ("RGB", "RGBA") and hole.mode == "L" and photo.size == hole.size == img.size


READERS: dict[str, Callable[[Path], None]] = {
    "imageio.read_image": _read_image,
    "imageio.read_hole_mask": _read_hole_mask,
    "data.load_rgb": _load_rgb,
    "masks.load_hole_mask": _load_hole_mask,
    "server.upload": _server_upload,
}


def check_all_readers(data: bytes, folder: Path, name: str = "fuzzed.png") -> list[Finding]:
    """Run every reader on ``data`` (written to ``folder/name``); return what broke the contract."""
    path = folder / name
    path.write_bytes(data)
    findings = []
    for reader, check in READERS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning, EXIF and ICC warnings
            try:
                check(path)
            except (ValueError, OSError) as exc:
                if not str(exc).strip():
                    findings.append(Finding(reader, f"{type(exc).__name__} without a message", ""))
            except Exception as exc:  # noqa: BLE001 - every other type is a finding
                findings.append(Finding(reader, f"{type(exc).__name__}: {exc}"[:300], ""))
    return findings


def _limit_pillow() -> None:
    """Keep a mutated size from allocating gigabytes: Pillow refuses over 2x this (``DecompressionBombError``)."""
    Image.MAX_IMAGE_PIXELS = FUZZ_MAX_PIXELS


def _silence_c_libraries() -> None:
    """libtiff and libjpeg print to file descriptor 2 on every damaged file; keep Python's stderr for findings."""
    import os

    sys.stderr = open(os.dup(2), "w", buffering=1)  # noqa: SIM115 - lives as long as the process
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--hang-seconds", type=float, default=20.0, help="a case longer than this is a hang")
    args = parser.parse_args(argv)
    _limit_pillow()
    _silence_c_libraries()
    rng = random.Random(args.seed)
    seeds = seed_files()
    names, mutations = sorted(seeds), sorted(MUTATIONS)
    found: dict[tuple[str, str], Finding] = {}
    cases, slowest, start = 0, (0.0, ""), time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        while time.monotonic() - start < args.seconds:
            name, how = rng.choice(names), rng.choice(mutations)
            data = seeds[name]
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                data = MUTATIONS[how](data, rng) if data else data
            label = f"{name} {how} case {cases}"
            faulthandler.dump_traceback_later(args.hang_seconds, exit=True, file=sys.stderr)
            tick = time.monotonic()
            for finding in check_all_readers(data, Path(tmp), name):
                key = (finding.reader, finding.error.split(":")[0])
                if key not in found:
                    found[key] = Finding(finding.reader, finding.error, label)
                    print(f"FOUND {finding.reader}: {finding.error} [{label}]", flush=True)
                    (Path(tmp).parent / f"pconv_fuzz_{len(found)}_{name}").write_bytes(data)
            faulthandler.cancel_dump_traceback_later()
            slowest = max(slowest, (time.monotonic() - tick, label))
            cases += 1
    print(
        f"fuzz_decode: {cases} mutated files x {len(READERS)} readers in {time.monotonic() - start:.0f} s, "
        f"{len(found)} distinct finding(s); slowest case {slowest[0]:.2f} s ({slowest[1]})"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
