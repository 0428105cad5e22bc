"""Before and after: straight structures through a hole, as filled by an earlier fill graph and the shipped one.

Run: PYTHONPATH=src python tools/structure_figure.py --before OLD.onnx [--out docs/structure_before_after.png]

``OLD.onnx`` is an earlier fill graph (e.g. version 9's: ``git show 457c800:src/pconv/weights/pconv_default.onnx``).
Rows: synthetic cases of ``benchmarks/bench_structure.py`` (a horizon-like edge under a stroke, stripes under a disk,
a thin line under a stroke, each with grain) and columns: the input (hole in magenta), the earlier graph, the
shipped one, OpenCV's Navier-Stokes, the truth; each image enlarged 2x by nearest neighbour.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_structure as bench  # noqa: E402

ROWS = (("edge", {}, 30, "stroke"), ("stripes", {"period": 12}, 60, "disk"), ("line", {"width": 3}, 100, "stroke"))
COLUMNS = ("input", "before", "after (shipped)", "Navier-Stokes", "truth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the earlier fill graph (.onnx)")
    parser.add_argument("--out", type=Path, default=Path("docs/structure_before_after.png"))
    args = parser.parse_args(argv)
    if not args.before.is_file():
        parser.error(f"--before {args.before} is not a file")

    from pconv.baselines import get_baseline
    from pconv.inference import Inpainter

    before, after, ns = Inpainter(weights=args.before, backend="onnx"), Inpainter(backend="onnx"), get_baseline("ns")
    scale, label = 2, 18
    side = bench.SIZE * scale
    sheet = Image.new("RGB", (side * len(COLUMNS), label + side * len(ROWS)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(COLUMNS):
        draw.text((c * side + 4, 3), name, fill="black")
    for r, (shape, params, angle, hole_name) in enumerate(ROWS):
        truth = bench.render(bench.structure(shape, angle, **params), 4.0, seed=angle)
        hole = bench.stroke_hole(angle + 15) if hole_name == "stroke" else bench.disk_hole()
        shown = truth.copy()
        shown[hole > 0] = (255, 0, 255)
        tiles = [shown, before.inpaint(truth, hole * 255), after.inpaint(truth, hole * 255), ns(truth, hole), truth]
        for c, tile in enumerate(tiles):
            big = Image.fromarray(tile).resize((side, side), Image.Resampling.NEAREST)
            sheet.paste(big, (c * side, label + r * side))
    sheet.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
