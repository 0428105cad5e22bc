"""Windows for large images: where to crop an image so that every hole pixel is filled with context around it.

An image longer than ``Inpainter``'s ``max_side`` is not run whole: the hole's connected regions (found on a grid of
32 px cells) each get a window with ``margin`` pixels of context, overlapping windows are merged, and each window is
filled on its own (IOPaint's crop strategy). A hole spread over the whole image gives one window: the whole image.

Polarity: ``plan_windows`` takes a hole (1 = hole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CELL", "DEFAULT_MARGIN", "Window", "plan_windows"]

CELL = 32  # side of the grid cells on which hole regions are found
DEFAULT_MARGIN = 128  # context pixels around each hole region


@dataclass(frozen=True)
class Window:
    """A crop ``[top:bottom, left:right]`` of the image, in pixels."""

    top: int
    left: int
    bottom: int
    right: int

    def overlaps(self, other: Window) -> bool:
        rows = self.top < other.bottom and other.top < self.bottom
        return rows and self.left < other.right and other.left < self.right

    def union(self, other: Window) -> Window:
        return Window(
            min(self.top, other.top),
            min(self.left, other.left),
            max(self.bottom, other.bottom),
            max(self.right, other.right),
        )


def plan_windows(hole: np.ndarray, *, margin: int = DEFAULT_MARGIN, min_side: int = 0) -> list[Window]:
    """Non-overlapping windows that together hold every hole pixel, each with ``margin`` pixels of context.

    Hole regions are the 8-connected components of a grid of 32 px cells that hold any hole pixel; each region's
    box grows by ``margin`` and to at least ``min_side`` a side (clamped to the image), and overlapping boxes are
    merged until none overlap.

    Args:
        hole: (H, W) bool or {0, 1}, 1 = hole.
    Returns:
        Windows in no particular order; empty if there is no hole.
    """
    h, w = hole.shape
    hc, wc = -(-h // CELL), -(-w // CELL)
    padded = np.zeros((hc * CELL, wc * CELL), dtype=bool)
    padded[:h, :w] = hole
    grid = padded.reshape(hc, CELL, wc, CELL).any(axis=(1, 3))  # (H/32, W/32) cells holding hole
    windows = []
    for top, left, bottom, right in _component_boxes(grid):
        y0, y1 = _expand(top * CELL, min(bottom * CELL, h), margin, min_side, h)
        x0, x1 = _expand(left * CELL, min(right * CELL, w), margin, min_side, w)
        windows.append(Window(y0, x0, y1, x1))
    return _merge_overlapping(windows)


def _component_boxes(grid: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (top, left, bottom, right), end exclusive, of the 8-connected True regions of ``grid``."""
    seen = np.zeros_like(grid)
    boxes = []
    for start in zip(*np.nonzero(grid)):
        if seen[start]:
            continue
        seen[start] = True
        stack, box = [start], [start[0], start[1], start[0] + 1, start[1] + 1]
        while stack:
            y, x = stack.pop()
            box = [min(box[0], y), min(box[1], x), max(box[2], y + 1), max(box[3], x + 1)]
            for ny in range(max(y - 1, 0), min(y + 2, grid.shape[0])):
                for nx in range(max(x - 1, 0), min(x + 2, grid.shape[1])):
                    if grid[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        boxes.append(tuple(int(v) for v in box))
    return boxes


def _expand(start: int, end: int, margin: int, min_len: int, limit: int) -> tuple[int, int]:
    """Grow ``[start, end)`` by ``margin`` each side and to ``min_len``, shifted and clamped into ``[0, limit)``."""
    start, end = start - margin, end + margin
    short = min_len - (end - start)
    if short > 0:
        start, end = start - short // 2, end + short - short // 2
    if start < 0:
        start, end = 0, end - start
    if end > limit:
        start, end = start - (end - limit), limit
    return max(start, 0), end


def _merge_overlapping(windows: list[Window]) -> list[Window]:
    merged = list(windows)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                if merged[i].overlaps(merged[j]):
                    merged[i] = merged[i].union(merged.pop(j))
                    changed = True
                    break
            if changed:
                break
    return merged
