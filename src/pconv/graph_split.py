"""Cut an ONNX graph into a chain of smaller graphs that compute the same floats, for runtimes whose session set-up
grows faster than a graph's node count.

ONNX Runtime Web sets a graph up in a time that grows much faster than its node count: on the project's 2-CPU
machine the fill's ``finish`` part (1,477 nodes) took 2.0-2.6 s, and the same nodes as three graphs (410 + 567 +
500) 0.4-0.8 s together (docs/browser.md). ``split_graph`` cuts a graph at node boundaries: the pieces hold the
graph's own nodes, in its order, and nothing else, so running them in turn, each fed the graph inputs it names and
the tensors the pieces before it returned, gives the graph's output bit for bit on any runtime that runs each node
the same way (no node is changed, so no float is). The cuts are chosen where the fewest bytes cross them (measured
on an example run), since each tensor that does leaves one session and enters the next.

Every piece keeps the graph's opset, IR version and metadata. A graph input that has a default (an initializer of
the same name, such as the fill graph's ``smooth``) stays an input, with its default, of each piece that reads it.
Tensors that cross a cut keep their names (``/Add_113_output_0``), which is how a caller matches one piece's outputs
to the next one's inputs (``pconv/web/worker.js``: by name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["crossing_cost", "split_graph", "tensor_bytes"]

# A tensor crossing a cut costs its bytes (on the example) plus this, for leaving one session and entering the next.
_PER_TENSOR_BYTES = 4096


def split_graph(model: Any, max_nodes: int, example: Mapping[str, np.ndarray]) -> list[Any]:
    """``model`` cut into pieces of at most ``max_nodes`` nodes each, to run in turn (module docstring).

    The cuts are those that the fewest bytes cross in all on ``example`` (``tensor_bytes``; at a small size the
    proportions are a photo's), each cut counted as the largest input's bytes more (one more session to run).

    Args:
        model: an ``onnx.ModelProto`` whose nodes are in topological order (as ONNX requires and exporters write).
        max_nodes: the most nodes a piece may hold (>= 2); a graph of that many or fewer comes back whole.
        example: graph input name -> array, one run's inputs (inputs with a default may be left out).
    Returns:
        ``onnx.ModelProto`` pieces in the order they run: the first reads only graph inputs, each later one graph
        inputs and earlier pieces' outputs; together their outputs include every graph output.
    Raises:
        ValueError: ``max_nodes`` under 2, or a tensor that crosses a cut has no type (shape inference failed).
    """
    import onnx

    if max_nodes < 2:
        raise ValueError(f"max_nodes must be at least 2, got {max_nodes}")
    nodes = list(model.graph.node)
    if len(nodes) <= max_nodes:
        return [model]
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    costs = crossing_cost(model, tensor_bytes(model, types, example))
    # one more session to run costs about what copying the largest input once does
    cuts = _cheapest_cuts(costs, max_nodes, max(np.asarray(v).nbytes for v in example.values()))
    return [_piece(model, types, a, b) for a, b in zip([0, *cuts], [*cuts, len(nodes)])]


def tensor_bytes(model: Any, types: Mapping[str, Any], example: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Name -> bytes of every tensor a node of ``model`` makes, in one ONNX Runtime run on ``example`` (every node
    output made a graph output; no optimisation, so every tensor is there). ``types``: name -> ``ValueInfoProto``."""
    import onnxruntime as ort

    probe = type(model)()
    probe.CopyFrom(model)
    listed = {v.name for v in probe.graph.output}
    made = [name for node in probe.graph.node for name in node.output if name and name in types]
    probe.graph.output.extend(types[name] for name in made if name not in listed)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [v.name for v in session.get_outputs()]
    return {name: int(np.asarray(value).nbytes) for name, value in zip(names, session.run(names, dict(example)))}


def crossing_cost(model: Any, sizes: Mapping[str, int]) -> list[float]:
    """Per node index ``c`` (0 to the node count), what cutting before node ``c`` costs: the bytes (``sizes``) of
    the tensors made by the nodes before it and read by a node at or after it, each plus ``_PER_TENSOR_BYTES``."""
    graph = model.graph
    made_at, last_read = {}, {}
    for k, node in enumerate(graph.node):
        for name in node.input:
            last_read[name] = k
        for name in node.output:
            made_at[name] = k
    delta = [0.0] * (len(graph.node) + 2)
    for name, made in made_at.items():
        read = last_read.get(name, -1)
        if read > made:  # crosses every cut c with made < c <= read
            cost = sizes.get(name, 0) + _PER_TENSOR_BYTES
            delta[made + 1] += cost
            delta[read + 1] -= cost
    costs, total = [], 0.0
    for c in range(len(graph.node) + 1):
        total += delta[c]
        costs.append(total)
    return costs


def _cheapest_cuts(costs: list[float], max_nodes: int, per_cut: float) -> list[int]:
    """The node indices to cut before: pieces of at most ``max_nodes``, the least total ``costs`` (one entry per
    index, 0 to the node count) plus ``per_cut`` per cut. Dynamic programming over the cut positions."""
    n = len(costs) - 1
    best = [0.0] + [float("inf")] * n  # best[k]: the least cost of cutting the first k nodes into pieces
    before = [0] * (n + 1)  # where the last of those pieces starts
    for k in range(1, n + 1):
        for start in range(max(0, k - max_nodes), k):
            total = best[start] + (costs[start] + per_cut if start else 0.0)
            if total < best[k]:
                best[k], before[k] = total, start
    cuts, k = [], n
    while before[k]:
        k = before[k]
        cuts.append(k)
    return cuts[::-1]


def _piece(model: Any, types: dict[str, Any], start: int, stop: int) -> Any:
    """The nodes ``start:stop`` of ``model`` as a model of their own (``split_graph``)."""
    from onnx import helper

    graph = model.graph
    nodes = graph.node[start:stop]
    defaults = {t.name: t for t in graph.initializer}
    graph_inputs = {v.name for v in graph.input}
    graph_outputs = {v.name for v in graph.output}
    read_later = {name for node in graph.node[stop:] for name in node.input}
    made = [name for node in nodes for name in node.output]
    made_here = set(made)
    inputs: list[str] = []
    for node in nodes:
        for name in node.input:
            if name and name not in made_here and name not in inputs and (name in graph_inputs or name not in defaults):
                inputs.append(name)
    outputs = [name for name in made if name in graph_outputs or name in read_later]
    untyped = [name for name in inputs + outputs if name not in types]
    if untyped:
        raise ValueError(f"no type for {', '.join(untyped)} (shape inference failed); cannot cut there")
    read_here = {name for node in nodes for name in node.input}
    piece = helper.make_graph(
        nodes,
        f"{graph.name}_{start}_{stop}",
        [types[name] for name in inputs],
        [types[name] for name in outputs],
        [t for name, t in defaults.items() if name in read_here],
    )
    out = helper.make_model(piece, opset_imports=model.opset_import, ir_version=model.ir_version)
    out.metadata_props.extend(model.metadata_props)
    return out
