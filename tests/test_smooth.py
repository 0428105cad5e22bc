"""Smooth content comes back exact: ``pconv.smooth`` alone, and the shipped model through the public API.

The property test is the one of issue #30: constant colours (near black, near white, saturated primaries, mid
greys, sky blue) at three sizes (one larger than the 1024 px the network runs whole, so windows and resizing run)
with NVIDIA test holes from 1 % to 60 %, border (B) and no-border (N): every hole pixel within 2 levels, each
channel's mean offset within 0.5 level; linear ramps (horizontal, vertical, diagonal; three colour pairs): mean
absolute error at most 0.75 level, or no worse than OpenCV's Navier-Stokes on the same case.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pconv import Inpainter
from pconv.smooth import (
    EDGE_AGREE,
    EDGE_MARGIN,
    STD_HIGH,
    _border_share,
    _continue_edge,
    _cross,
    _neighbour_mean,
    continue_edge,
    crop,
    detail_gate,
    grow,
    hole_box,
    local_std,
    paste,
    plane_fit,
    pull_push,
    smooth_fill,
)

COLOURS = [(3, 3, 3), (30, 30, 30), (128, 128, 128), (240, 240, 240), (252, 252, 252)]
COLOURS += [(255, 0, 0), (0, 255, 0), (0, 0, 255), (135, 206, 235)]
RAMP_ENDS = [((0, 0, 0), (255, 255, 255)), ((20, 60, 140), (200, 220, 250)), ((90, 40, 10), (120, 160, 60))]
# (height, width) and which of the 12 masks (one per ratio bin and N/B) run at that size.
SIZES = [((256, 256), slice(None)), ((512, 512), slice(1, None, 4)), ((1024, 1536), slice(4, None, 6))]


def ramp(h: int, w: int, kind: str, start: tuple, end: tuple) -> np.ndarray:
    """(h, w, 3) uint8: a linear ramp from ``start`` to ``end`` across the image (h, v or d for diagonal)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    t = {"h": x / (w - 1), "v": y / (h - 1), "d": (x + y) / (h + w - 2)}[kind][..., None]
    return np.rint(np.array(start) * (1 - t) + np.array(end) * t).astype(np.uint8)


# ---------- pconv.smooth on its own ----------


def test_plane_fit_recovers_a_plane_from_scattered_known_pixels() -> None:
    gen = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 40), torch.linspace(-1, 1, 50), indexing="ij")
    image = torch.stack([0.3 + 0.2 * xs - 0.1 * ys, 0.5 + 0.0 * xs, 0.1 * xs + 0.4 * ys + 0.4])[None]
    valid = (torch.rand(1, 1, 40, 50, generator=gen) > 0.7).float()
    assert torch.allclose(plane_fit(image * valid, valid), image, atol=2e-5)


def test_plane_fit_falls_back_to_the_mean_on_a_line_and_to_zero_on_nothing() -> None:
    image = torch.rand(1, 3, 20, 30)
    line = torch.zeros(1, 1, 20, 30)
    line[..., 7, :] = 1  # one known row: the plane's slope along y is undetermined
    mean = (image * line).sum(dim=(-2, -1), keepdim=True) / line.sum()
    assert torch.allclose(plane_fit(image * line, line), mean.expand_as(image), atol=1e-6)
    assert torch.equal(plane_fit(image * 0, torch.zeros(1, 1, 20, 30)), torch.zeros(1, 3, 20, 30))


def test_pull_push_keeps_known_values_and_stays_within_their_range() -> None:
    gen = torch.Generator().manual_seed(1)
    values = torch.rand(2, 3, 37, 53, generator=gen)
    weights = (torch.rand(2, 1, 37, 53, generator=gen) > 0.6).float()
    out = pull_push(values, weights)
    assert torch.equal(out[weights.expand_as(out) > 0], values[weights.expand_as(values) > 0])
    known = values[weights.expand_as(values) > 0]
    assert out.min() >= known.min() - 1e-6 and out.max() <= known.max() + 1e-6


@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 1, 1, 4), (1, 3, 2, 2)])
def test_neighbour_mean_repeats_the_edge_pixels(shape: tuple[int, int, int, int]) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    want = (padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2] + padded[..., 1:-1, 2:]) / 4
    torch.testing.assert_close(_neighbour_mean(x), want, rtol=0, atol=1e-6)  # eager form
    torch.testing.assert_close(_neighbour_mean(x, _cross(x), _border_share(x, _cross(x))), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["h", "v", "d"])
def test_smooth_fill_is_exact_on_constants_and_ramps(kind: str) -> None:
    valid = torch.ones(1, 1, 64, 96)
    valid[..., 10:40, 0:50] = 0  # a hole on the image's border
    valid[..., 45:60, 60:90] = 0  # and one inside
    for start, end in RAMP_ENDS:
        image = torch.from_numpy(ramp(64, 96, kind, start, end)).permute(2, 0, 1)[None].float() / 255
        levels = (smooth_fill(image, valid) - image).abs() * 255
        assert levels.max() < 1.01  # the 8-bit rounding of the ramp, no more
    constant = torch.tensor([0.2, 0.9, 0.55]).reshape(1, 3, 1, 1).expand(1, 3, 64, 96)
    assert (smooth_fill(constant, valid) - constant).abs().max() < 1e-6


@pytest.mark.parametrize("size", [64, 256])
def test_detail_gate_is_zero_on_ramps_and_one_on_texture(size: int) -> None:
    valid = torch.ones(1, 1, size, size)
    valid[..., size // 4 : size // 2, size // 4 : size // 2] = 0
    hole = valid == 0
    for start, end in RAMP_ENDS:
        smooth = torch.from_numpy(ramp(size, size, "d", start, end)).permute(2, 0, 1)[None].float() / 255
        assert detail_gate(smooth, valid)[hole].max() == 0
    texture = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    assert detail_gate(texture, valid)[hole].min() == 1


def test_grow_fills_ring_by_ring_with_the_neighbours_mean() -> None:
    valid = torch.ones(1, 1, 9, 20)
    valid[..., :, 4:16] = 0  # a 12-px wide hole band, rings of 2 px (kernel 5) from both sides
    values = torch.zeros(1, 1, 9, 20)
    values[..., :, :4] = 1.0  # left known part 1, right known part 0
    grown, depth = grow(values, valid, steps=2)
    assert depth[0, 0, 0].tolist() == [0] * 4 + [1, 1, 2, 2, 3, 3, 3, 3, 2, 2, 1, 1] + [0] * 4
    assert torch.equal(grown[..., :4], values[..., :4]) and torch.equal(grown[..., 16:], values[..., 16:])
    assert torch.allclose(grown[..., 4], torch.full((1, 1, 9), 1.0))  # only left pixels in its 5x5 window
    assert torch.allclose(grown[..., 15], torch.zeros(1, 1, 9))
    assert (grown[..., 8:12] == 0).all()  # beyond the last ring: nothing grown
    constant = torch.full((1, 3, 9, 20), 0.37)
    assert torch.allclose(grow(constant, valid, steps=3)[0][..., 4:16], constant[..., 4:16], atol=1e-6)


def test_local_std_measures_the_known_pixels_only() -> None:
    valid = torch.ones(1, 1, 16, 16)
    valid[..., 4:12, 4:12] = 0
    image = torch.full((1, 3, 16, 16), 0.5)
    image[..., 4:12, 4:12] = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))  # hidden noise
    std, seen = local_std(image, valid)
    assert std.max() < 0.1  # the hole's values are never read (float32: within 0.1 level)
    image[:, 1, ::2] = 0.5 + 4 / 255  # known rows alternating by 4 levels in green: std 2 levels
    assert torch.allclose(local_std(image, valid)[0][..., 8, 0], torch.tensor([[2.0]]), atol=0.1)
    assert seen[..., 8, 8].item() == 0 and seen[..., 8, 2].item() == 1  # the hole's middle; 2 px from its edge


def test_continue_edge_draws_the_first_hole_pixels_toward_smooth_surroundings() -> None:
    valid = torch.ones(1, 1, 48, 48)
    valid[..., 8:40, 8:40] = 0
    hole = valid == 0
    image = torch.full((1, 3, 48, 48), 0.4)
    offset = image + 10 / 255  # a network's fill 10 levels off everywhere
    out = continue_edge(offset, image, valid)
    first_ring = hole & (F.max_pool2d(valid, 3, stride=1, padding=1) > 0)
    # At the edge the continuation's full weight times the agreement (1 - 10 / EDGE_AGREE): 10 levels become
    # 10 * 10 / EDGE_AGREE.
    edge = ((out - image) * 255)[first_ring.expand_as(out)]
    assert torch.allclose(edge, torch.full_like(edge, 10 * 10 / EDGE_AGREE), atol=1e-3)
    centre = ((out - image) * 255)[..., 24, 24]
    assert (centre > edge.max()).all() and (centre < 10).all()  # 16 px in: drawn less of the way
    assert torch.equal(continue_edge(offset, image, valid, smooth=0.0), offset)  # off
    assert torch.equal(out[valid.expand_as(out) > 0], offset[valid.expand_as(out) > 0])  # only the hole changes


def test_continue_edge_leaves_detail_and_disagreement_to_the_network() -> None:
    valid = torch.ones(1, 1, 48, 48)
    valid[..., 8:40, 8:40] = 0
    noisy = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(4)) * (4 * STD_HIGH / 255) + 0.3
    prediction = torch.full_like(noisy, 0.35)
    assert torch.equal(continue_edge(prediction, noisy, valid), prediction)  # busy surroundings: untouched
    flat = torch.full((1, 3, 48, 48), 0.4)
    far = flat + (EDGE_AGREE + 1) / 255  # the network brings something the surroundings do not hold
    assert torch.equal(continue_edge(far, flat, valid), far)


def test_hole_box_holds_every_hole_pixel_with_its_margin() -> None:
    valid = torch.ones(2, 1, 40, 50)
    valid[0, :, 10:12, 30:33] = 0
    valid[1, :, 37:, 2] = 0  # the second image's hole widens the box and reaches the bottom edge
    (top, bottom), (left, right) = hole_box(valid, 3)
    assert (int(top), int(bottom), int(left), int(right)) == (7, 40, 0, 36)
    (top, bottom), (left, right) = hole_box(torch.ones(1, 1, 9, 7), 3)  # no hole: the whole image
    assert (int(top), int(bottom), int(left), int(right)) == (0, 9, 0, 7)


def test_crop_and_paste_put_the_box_back_where_it_was() -> None:
    x = torch.arange(2 * 3 * 9 * 11, dtype=torch.float32).reshape(2, 3, 9, 11)
    valid = torch.ones(2, 1, 9, 11)
    valid[1, :, 4, 5:7] = 0
    box = hole_box(valid, 2)
    inner = crop(x, box)
    assert torch.equal(inner, x[..., 2:7, 3:9])
    assert torch.equal(paste(x, inner, box), x)
    changed = paste(x, -inner, box)
    assert torch.equal(changed[..., 2:7, 3:9], -inner) and (changed == x).sum() == x.numel() - inner.numel()


def test_grow_with_a_mask_per_group_is_the_mask_repeated_per_channel() -> None:
    g = torch.Generator().manual_seed(3)
    values = torch.rand(2, 4, 23, 31, generator=g)
    masks = (torch.rand(2, 2, 23, 31, generator=g) > 0.4).float()
    masks[:, :, 5:15, 8:20] = 0
    repeated = masks[:, [0, 0, 0, 1]]
    grown, depth = grow(values, masks, 6, groups=(3, 1))
    expected, expected_depth = grow(values, repeated, 6)
    assert torch.equal(grown, expected) and torch.equal(depth, expected_depth[:, [0, 3]])
    assert (depth == 3).any()  # it really grew ring by ring


@pytest.mark.parametrize("seed", range(6))
def test_continue_edge_on_the_hole_box_is_the_whole_image_computation(seed: int) -> None:
    # continue_edge works on the box around the hole; the same arithmetic on the whole image gives the same floats
    g = torch.Generator().manual_seed(seed)
    h, w = (int(v) for v in torch.randint(12, 90, (2,), generator=g))
    # surroundings with a standard deviation of about 2-4 levels, between STD_LOW and STD_HIGH, where it counts
    image = torch.rand(1, 3, h, w, generator=g) * (0.03 + 0.01 * (seed % 3)) + 0.3
    valid = torch.ones(1, 1, h, w)
    y, x = (int(v) for v in torch.randint(0, min(h, w) - 8, (2,), generator=g))
    valid[..., y : y + 8, x : x + 6] = 0
    valid[..., (y + 5) % h, :3] = 0  # a second hole at the left edge
    prediction = image + torch.rand(1, 3, h, w, generator=g) * 0.1  # within EDGE_AGREE of the continuation
    plane = plane_fit(image * valid, valid)
    whole = _continue_edge(prediction, image, valid, plane, smooth=1.0)
    assert not torch.equal(whole, prediction)  # the continuation changed the hole
    assert torch.equal(continue_edge(prediction, image, valid, plane=plane), whole)
    assert EDGE_MARGIN == 5  # what it reads around a hole pixel: 2 px of the ring's window, 3 of the std window


# ---------- the shipped model, through the public API ----------


def nvidia_masks(shared_data: Path) -> list[str]:
    """One NVIDIA test mask per ratio bin and per border flag (12), in bin order."""
    folder = shared_data / "masks" / "nvidia_irregular_test"
    rows = list(csv.DictReader((shared_data / "masks" / "nvidia_irregular_test_manifest.csv").open()))
    picked = []
    for ratio_bin in sorted({r["ratio_bin"] for r in rows}):
        for flag in ("0", "1"):
            name = next(r["file"] for r in rows if r["ratio_bin"] == ratio_bin and r["border_constrained"] == flag)
            picked.append(str(folder / name))
    return picked


def hole_at(path: str, h: int, w: int) -> np.ndarray:
    return (np.asarray(Image.open(path).resize((w, h), Image.NEAREST)) > 127).astype(np.uint8)


@pytest.fixture(scope="module")
def shipped() -> Inpainter:
    return Inpainter()  # the shipped model, default settings (the smooth blend on)


def test_flat_colours_come_back_exact(shipped: Inpainter, shared_data: Path) -> None:
    masks = nvidia_masks(shared_data)
    worst_pixel, worst_offset = 0, 0.0
    for (h, w), which in SIZES:
        for path in masks[which]:
            hole = hole_at(path, h, w)
            images = [np.full((h, w, 3), colour, np.uint8) for colour in COLOURS]
            for colour, out in zip(COLOURS, shipped.inpaint(images, [hole] * len(images))):
                error = out[hole > 0].astype(int) - np.array(colour)  # (hole pixels, 3)
                worst_pixel = max(worst_pixel, int(np.abs(error).max()))
                worst_offset = max(worst_offset, float(np.abs(error.mean(axis=0)).max()))
                assert np.abs(error).max() <= 2, f"{colour} {w}x{h} {Path(path).name}: a pixel off by > 2 levels"
                assert np.abs(error.mean(axis=0)).max() <= 0.5, f"{colour} {w}x{h} {Path(path).name}: offset"
    print(f"flat colours: worst pixel {worst_pixel} levels, worst channel mean offset {worst_offset:.3f}")


def test_linear_ramps_come_back_within_a_level_or_as_navier_stokes(shipped: Inpainter, shared_data: Path) -> None:
    from pconv.baselines import fill_ns

    masks = nvidia_masks(shared_data)
    worst = 0.0
    for (h, w), which in SIZES:
        for path in masks[which]:
            hole = hole_at(path, h, w)
            images = [ramp(h, w, kind, a, b) for kind in "hvd" for a, b in RAMP_ENDS]
            for image, out in zip(images, shipped.inpaint(images, [hole] * len(images))):
                mae = float(np.abs(out.astype(int) - image)[hole > 0].mean())
                worst = max(worst, mae)
                if mae > 0.75:
                    ns = float(np.abs(fill_ns(image, hole).astype(int) - image)[hole > 0].mean())
                    assert mae <= ns, f"{w}x{h} {Path(path).name}: ramp MAE {mae:.2f} > 0.75 and > NS {ns:.2f}"
    print(f"ramps: worst mean absolute error {worst:.3f} levels")


def test_torch_backend_blends_as_the_fill_graph(shared_data: Path) -> None:
    """The PyTorch path (numpy averages, then pconv.smooth.blend) gives the fill graph's bytes, to a level."""
    hole = hole_at(nvidia_masks(shared_data)[7], 256, 256)
    images = [np.full((256, 256, 3), COLOURS[8], np.uint8), ramp(256, 256, "d", *RAMP_ENDS[1])]
    photo = np.asarray(Image.open(Path(__file__).parents[1] / "src/pconv/assets/kodim23.png").convert("RGB"))
    images.append(np.ascontiguousarray(photo[:256, :256]))
    via_torch = Inpainter(backend="torch", device="cpu").inpaint(images, [hole] * 3)
    via_onnx = Inpainter(backend="onnx").inpaint(images, [hole] * 3)
    for a, b in zip(via_torch, via_onnx):
        assert np.abs(a.astype(int) - b).max() <= 1
    assert np.array_equal(via_torch[0], images[0])  # the flat colour: exact on both


def test_smooth_off_gives_the_network_fill(shipped: Inpainter) -> None:
    hole = np.zeros((128, 128), np.uint8)
    hole[30:90, 40:100] = 1
    flat = np.full((128, 128, 3), (0, 255, 0), np.uint8)
    assert np.array_equal(shipped.inpaint(flat, hole), flat)
    raw = Inpainter(smooth=False).inpaint(flat, hole)
    assert np.abs(raw.astype(int) - flat)[hole > 0].max() > 2  # what the blend repairs: the network alone is off


class _BoxedPullPush(torch.nn.Module):
    """pull_push of two channels, the first weighted by the hole mask, on the hole's box or everywhere."""

    def __init__(self, boxed: bool) -> None:
        super().__init__()
        self.boxed = boxed

    def forward(self, values: torch.Tensor, weights: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return pull_push(values, weights, box=hole_box(valid, 0) if self.boxed else None)


def _boxed_cases(count: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(values, weights, valid): random sizes (odd ones too), a hole of a few px, and a second weight channel under
    1 everywhere, so the pyramid's cells along the box's edges are not fixed (where a short margin shows)."""
    g = torch.Generator().manual_seed(7)
    cases = []
    for _ in range(count):
        h, w = (int(v) for v in torch.randint(20, 200, (2,), generator=g))
        valid = torch.ones(1, 1, h, w)
        y, x = int(torch.randint(0, h - 10, (1,), generator=g)), int(torch.randint(0, w - 10, (1,), generator=g))
        valid[..., y : y + 6, x : x + 9] = 0
        weights = torch.cat([valid, torch.rand(1, 1, h, w, generator=g) * 0.5], 1)
        cases.append((torch.rand(1, 2, h, w, generator=g), weights, valid))
    return cases


def test_pull_push_on_the_box_is_the_whole_computation_in_onnx_runtime(tmp_path: Path) -> None:
    # The finest levels pushed on the hole's box (the fill graph's form): the same floats in every hole pixel as the
    # whole levels, in ONNX Runtime (a margin one cell short differs in most of these cases)
    import onnxruntime as ort

    sessions = []
    for boxed in (False, True):
        path = tmp_path / f"boxed{boxed}.onnx"
        example = _boxed_cases(1)[0]
        names = ["values", "weights", "valid"]
        dims = {n: {2: "h", 3: "w"} for n in names}
        torch.onnx.export(_BoxedPullPush(boxed), example, str(path), dynamo=False, input_names=names, dynamic_axes=dims)
        sessions.append(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
    boxes_smaller = 0
    for values, weights, valid in _boxed_cases(20):
        feed = {"values": values.numpy(), "weights": weights.numpy(), "valid": valid.numpy()}
        whole, boxed = (s.run(None, {i.name: feed[i.name] for i in s.get_inputs()})[0] for s in sessions)
        hole = np.broadcast_to(valid.numpy() < 1, whole.shape)
        assert np.array_equal(whole[hole], boxed[hole])
        boxes_smaller += not np.array_equal(whole, boxed)  # outside the box: each pixel's own average
    assert boxes_smaller >= 15  # the box was smaller than the image in most cases


def test_pull_push_on_the_box_in_eager_pytorch_is_the_whole_computation_to_float_rounding() -> None:
    # PyTorch's bilinear upsampling of a box rounds some values in the last bit unlike the whole level's
    for values, weights, valid in _boxed_cases(10):
        whole = pull_push(values, weights)
        boxed = _BoxedPullPush(True)(values, weights, valid)
        hole = (valid < 1).expand_as(whole)
        torch.testing.assert_close(boxed[hole], whole[hole], rtol=0, atol=1e-6)
