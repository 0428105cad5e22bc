"""The fill graph's module in PyTorch: the passes as one network call give the floats of two."""

from __future__ import annotations

import itertools

import torch

from pconv.config import ModelConfig
from pconv.fill_graph import FillGraph
from pconv.model import PConvUNet, fuse_for_inference


def test_one_call_passes_give_the_floats_of_two_calls_in_every_hole_pixel() -> None:
    """``FillGraph(one_call=True)`` (the page's passes graph) runs the four variants as one batch: each hole pixel's
    averaged prediction is the same float as with two calls, for every setting of the averages, holes at the edges
    included (the holes' box is the batch's, so it differs between the two; pixels outside the holes are unused)."""
    torch.manual_seed(0)
    network = fuse_for_inference(PConvUNet(ModelConfig(depth=4, width=0.125)).eval())
    image = torch.randint(0, 256, (2, 37, 52, 3), dtype=torch.uint8)
    hole_mask = torch.zeros(2, 37, 52, dtype=torch.uint8)
    hole_mask[0, 5:12, 30:52] = 255  # touches the right edge: its mirror is on the left
    hole_mask[1, 30:37, 0:4] = 200  # bottom-left corner, grey above 127
    hole_mask[1, 10:14, 20:26] = 255
    hole = hole_mask > 127  # (N, H, W)
    two, one = FillGraph(network).eval(), FillGraph(network, one_call=True).eval()
    for flip, shift in itertools.product((0.0, 1.0), repeat=2):
        scalars = torch.tensor(flip), torch.tensor(shift)
        with torch.no_grad():
            want, got = two.passes(image, hole_mask, *scalars), one.passes(image, hole_mask, *scalars)
        assert got.shape == want.shape == (2, 3, 37, 52)
        assert torch.equal(got.permute(0, 2, 3, 1)[hole], want.permute(0, 2, 3, 1)[hole]), (flip, shift)
        assert got.abs().amax() > 0  # a real prediction, not zeros
