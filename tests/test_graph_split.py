"""Cutting an ONNX graph into a chain of smaller graphs: the same bytes, bounded pieces, defaults kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pconv.config import ModelConfig  # noqa: E402
from pconv.export import export_onnx  # noqa: E402
from pconv.graph_split import crossing_cost, split_graph, tensor_bytes  # noqa: E402
from pconv.model import PConvUNet  # noqa: E402


@pytest.fixture(scope="module")
def finish_graph(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The fill's finish part (blend, structure step, rounding: about 1,500 nodes) of a small random network."""
    torch.manual_seed(0)
    model = PConvUNet(ModelConfig(depth=4, width=0.125)).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("split") / "finish.onnx", graph="finish")
    return onnx.load(str(path))


def _inputs(rng: np.random.Generator, h: int, w: int, smooth: float) -> dict[str, np.ndarray]:
    hole = ((rng.random((2, h, w)) > 0.7) * 255).astype(np.uint8)
    hole[1, h // 3 : h // 2, : w // 2] = 255  # a block at the edge too
    return {
        "prediction": rng.random((2, 3, h, w), dtype=np.float32),
        "image": rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8),
        "hole_mask": hole,
        "smooth": np.array(smooth, np.float32),
    }


def _session(model: object) -> object:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _run_in_turn(sessions: list, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each piece fed what it names (inputs with a default too) from the inputs and the earlier pieces' outputs."""
    values = dict(feeds)
    for session in sessions:
        names = [v.name for v in (*session.get_inputs(), *session.get_overridable_initializers())]
        outputs = [v.name for v in session.get_outputs()]
        values.update(zip(outputs, session.run(outputs, {n: values[n] for n in names if n in values})))
    return values


def test_pieces_run_in_turn_give_the_graphs_bytes(finish_graph: object) -> None:
    rng = np.random.default_rng(0)
    example = {k: v for k, v in _inputs(rng, 24, 40, 1.0).items() if k != "smooth"}
    pieces = split_graph(finish_graph, 400, example)
    sizes = [len(p.graph.node) for p in pieces]
    assert len(pieces) >= 4 and max(sizes) <= 400, sizes
    assert sum(sizes) == len(finish_graph.graph.node)  # the graph's own nodes, each once
    assert [n.name for p in pieces for n in p.graph.node] == [n.name for n in finish_graph.graph.node]
    whole, chain = _session(finish_graph), [_session(p) for p in pieces]
    assert {v.name for v in chain[0].get_inputs()} <= {"prediction", "image", "hole_mask"}
    for (h, w), smooth in [((33, 47), 1.0), ((64, 96), 0.0), ((17, 200), 1.0)]:
        feeds = _inputs(rng, h, w, smooth)
        want = whole.run(["filled"], feeds)[0]
        got = _run_in_turn(chain, feeds)["filled"]
        assert got.dtype == np.uint8 and np.array_equal(got, want), (h, w, smooth)
    # smooth = 0 gives the network's fill, rounded: the default (1) was overridden in every piece that reads it
    off = _run_in_turn(chain, feeds := _inputs(rng, 20, 30, 0.0))["filled"]
    rounded = np.round(np.clip(feeds["prediction"].transpose(0, 2, 3, 1), 0, 1) * 255)
    assert np.array_equal(off, np.where(feeds["hole_mask"][..., None] > 127, rounded, feeds["image"]))


def test_an_input_with_a_default_stays_an_input_of_each_piece_that_reads_it(finish_graph: object) -> None:
    assert "smooth" in {t.name for t in finish_graph.graph.initializer}  # the export's default of 1
    pieces = split_graph(finish_graph, 400, _inputs(np.random.default_rng(1), 24, 40, 1.0))
    readers = [p for p in pieces if any("smooth" in n.input for n in p.graph.node)]
    assert readers
    for piece in readers:
        assert "smooth" in {v.name for v in piece.graph.input} and "smooth" in {t.name for t in piece.graph.initializer}
    for piece in pieces:
        onnx.checker.check_model(piece)


def test_cuts_go_where_few_bytes_cross(finish_graph: object) -> None:
    """Every cut is one of the cheapest within its reach: no cut in the middle of the pull-push's pyramid."""
    rng = np.random.default_rng(2)
    example = {k: v for k, v in _inputs(rng, 24, 40, 1.0).items() if k != "smooth"}
    inferred = onnx.shape_inference.infer_shapes(finish_graph)
    types = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    costs = crossing_cost(finish_graph, tensor_bytes(finish_graph, types, example))
    assert costs[0] == 0 and costs[-1] == 0 and max(costs) > 0
    pieces = split_graph(finish_graph, 600, example)
    cuts = np.cumsum([len(p.graph.node) for p in pieces])[:-1]
    median = float(np.median(costs[1:-1]))
    assert all(costs[c] < median for c in cuts), ([costs[c] for c in cuts], median)


def test_small_graph_comes_back_whole_and_max_nodes_is_checked(finish_graph: object) -> None:
    assert split_graph(finish_graph, len(finish_graph.graph.node), {}) == [finish_graph]
    with pytest.raises(ValueError, match="at least 2"):
        split_graph(finish_graph, 1, {})
