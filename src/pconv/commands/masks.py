"""``pconv masks``: write random irregular hole masks (white = hole) of a hole-ratio bin, plus a contact sheet."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

HELP = "Write N random irregular hole masks (PNG, white = hole) of a hole-ratio bin, plus a contact sheet."

SHEET_NAME = "sheet.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder to write the masks and the sheet to")
    parser.add_argument("-n", type=int, default=16, help="number of masks (default: %(default)s)")
    parser.add_argument(
        "--bin",
        dest="ratio_bin",
        default=None,
        help="hole ratio bin LO-HI, e.g. 0.3-0.4: every mask's hole fraction lies in (LO, HI] "
        "(default: a random one of the paper's bins per mask)",
    )
    parser.add_argument(
        "--preset", default="medium", help="thin, medium, thick, blobs or fragments (default: %(default)s)"
    )
    parser.add_argument("--size", type=int, default=512, help="mask side in pixels (default: %(default)s)")
    parser.add_argument(
        "--border", type=int, default=0, help="hole-free margin in pixels; the paper's is 50 at 512 (default: 0)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing mask files and sheet")


def parse_bin(text: str) -> tuple[float, float]:
    """'0.3-0.4' -> (0.3, 0.4); raises ValueError with a one-line reason."""
    parts = text.replace(",", "-").split("-")
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"--bin {text!r}: expected LO-HI such as 0.3-0.4") from None
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"--bin {text!r}: need 0 <= LO < HI <= 1")
    return lo, hi


def _check_args(args: argparse.Namespace) -> tuple[float, float] | None:
    from pconv.mask_generation import PRESETS

    if args.n < 1:
        raise ValueError(f"-n must be at least 1, got {args.n}")
    if args.size < 8:
        raise ValueError(f"--size must be at least 8, got {args.size}")
    if args.border < 0 or 2 * args.border >= args.size:
        raise ValueError(f"--border {args.border} leaves no room in a {args.size} px mask")
    if args.preset not in PRESETS:
        raise ValueError(f"unknown --preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    return None if args.ratio_bin is None else parse_bin(args.ratio_bin)


def contact_sheet(hole_masks: list, *, tile: int = 128, columns: int = 8, gap: int = 4):
    """Tile (H, W) {0, 1} hole masks into one uint8 grey image: white = hole, mid-grey gaps between tiles."""
    import numpy as np
    from PIL import Image

    columns = min(columns, len(hole_masks))
    rows = math.ceil(len(hole_masks) / columns)
    sheet = np.full((rows * (tile + gap) + gap, columns * (tile + gap) + gap), 128, np.uint8)
    for k, hole_mask in enumerate(hole_masks):
        # Area averaging keeps thin strokes visible as grey in the thumbnail.
        thumb = Image.fromarray(hole_mask * 255).resize((tile, tile), Image.BOX)
        r, c = divmod(k, columns)
        y, x = gap + r * (tile + gap), gap + c * (tile + gap)
        sheet[y : y + tile, x : x + tile] = np.asarray(thumb)
    return sheet


def _save_png(array, path: Path) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(array).save(tmp)
    tmp.replace(path)  # atomic: a reader never sees half a file


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from pconv.mask_generation import generate_hole_mask
    from pconv.masks import RATIO_BINS, hole_ratio

    ratio_bin = _check_args(args)
    digits = max(4, len(str(args.n - 1)))
    paths = [args.out / f"mask_{k:0{digits}d}.png" for k in range(args.n)]
    sheet_path = args.out / SHEET_NAME
    existing = [p for p in [*paths, sheet_path] if p.exists()]
    if existing and not args.overwrite:
        raise ValueError(f"{existing[0]} exists ({len(existing)} files would be replaced); pass --overwrite")
    args.out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(args.seed)
    hole_masks, ratios = [], []
    for path in tqdm(paths, desc="pconv masks", unit="mask"):
        mask_bin = ratio_bin if ratio_bin is not None else RATIO_BINS[int(rng.integers(len(RATIO_BINS)))]
        hole_mask = generate_hole_mask(
            args.size, args.size, rng=rng, ratio_bin=mask_bin, preset=args.preset, border=args.border
        )
        _save_png(hole_mask * 255, path)
        hole_masks.append(hole_mask)
        ratios.append(hole_ratio(hole_mask))
    _save_png(contact_sheet(hole_masks), sheet_path)
    wanted = f"bin ({ratio_bin[0]}, {ratio_bin[1]}]" if ratio_bin else "random paper bins"
    print(
        f"pconv masks: wrote {args.n} masks ({args.size}x{args.size}, {args.preset}, {wanted}, border {args.border}) "
        f"to {args.out}; hole ratio min {min(ratios):.3f} mean {np.mean(ratios):.3f} max {max(ratios):.3f}; "
        f"contact sheet {sheet_path}"
    )
    return 0
