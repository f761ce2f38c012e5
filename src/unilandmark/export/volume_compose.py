"""Several exported networks as one ONNX model: each the branch of an ``If`` on ``stage``.

Each network is exported on its own (:mod:`.volume_exporter`: one input, outputs
``points`` and ``confidence``). :func:`compose` makes one model of them whose inputs are
``stage`` (a scalar int64) and every network's input, and whose outputs are those of the
network ``stage`` names: an ``If`` chain ``stage == 0 ? coarse : stage == 1 ? patch 1 :
...``, ending in an empty answer (no rows) for a stage that does not exist. onnxruntime
runs only the chosen branch, so one file serves every stage at the cost of one. A branch
reads its input from the outer graph by name; every other name in it gets the branch's
prefix, so the networks never share a name. onnx only (no torch).
"""

from __future__ import annotations

import numpy as np

from .volume_contract import OUTPUTS, STAGE_INPUT


def compose(networks: list[tuple[int, object]], k: int, doc: str = ""):
    """One ``onnx.ModelProto`` from ``networks``: ``(stage, model)`` pairs in stage order,
    each model with one input and the outputs :data:`~.volume_contract.OUTPUTS` for ``k``
    landmarks (``points`` (N, K, 3), ``confidence`` (N, K))."""
    import onnx
    from onnx import TensorProto, helper

    first = networks[0][1]
    stage = helper.make_tensor_value_info(STAGE_INPUT, TensorProto.INT64, [])
    inputs = [stage] + [model.graph.input[0] for _, model in networks]
    rest = _empty_branch(k)
    for position in range(len(networks) - 1, -1, -1):
        index, model = networks[position]
        names = list(OUTPUTS) if position == 0 else [f"chain{index}/{o}" for o in OUTPUTS]
        nodes = [
            helper.make_node("Constant", [], [f"chain{index}/stage"],
                             value=helper.make_tensor(f"chain{index}/value", TensorProto.INT64,
                                                      [], [index])),
            helper.make_node("Equal", [STAGE_INPUT, f"chain{index}/stage"],
                             [f"chain{index}/chosen"]),
            helper.make_node("If", [f"chain{index}/chosen"], names,
                             then_branch=as_branch(model, f"stage{index}/"),
                             else_branch=rest, name=f"chain{index}/if")]
        if position == 0:
            graph = helper.make_graph(nodes, "unilandmark_volume", inputs,
                                      _outputs(names, k, "n"))
        else:
            rest = helper.make_graph(nodes, f"chain{index}", [], _outputs(names, k, None))
    functions = _functions([model for _, model in networks])
    opsets = {}
    for _, model in networks:
        for opset in model.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    composed = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        functions=functions, doc_string=doc)
    composed.ir_version = first.ir_version
    onnx.checker.check_model(composed)
    return composed


def as_branch(model, prefix: str):
    """The graph of ``model`` (one input, outputs ``points`` and ``confidence``) as an
    ``If`` branch: no inputs (its input is the outer graph's value of the same name), every
    other value, node and initializer renamed with ``prefix``."""
    from onnx import helper

    graph = model.graph
    outer = {i.name for i in graph.input}

    def rename(name: str) -> str:
        return name if not name or name in outer else prefix + name

    nodes = []
    for node in graph.node:
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
            raise ValueError(f"the exported network holds a subgraph ({node.op_type}); "
                             "this export cannot nest it")
        copy = type(node)()
        copy.CopyFrom(node)
        copy.name = prefix + node.name if node.name else ""
        copy.input[:] = [rename(n) for n in node.input]
        copy.output[:] = [rename(n) for n in node.output]
        nodes.append(copy)
    initializers = []
    for tensor in graph.initializer:
        copy = type(tensor)()
        copy.CopyFrom(tensor)
        copy.name = rename(tensor.name)
        initializers.append(copy)
    infos = []
    for info in list(graph.value_info) + list(graph.output):
        copy = type(info)()
        copy.CopyFrom(info)
        copy.name = rename(info.name)
        infos.append(copy)
    outputs = infos[len(graph.value_info):]
    return helper.make_graph(nodes, prefix.rstrip("/"), [], outputs,
                             initializer=initializers, value_info=infos[:len(graph.value_info)])


def _outputs(names: list[str], k: int, rows: str | None):
    """Value infos of ``points`` (rows, K, 3) and ``confidence`` (rows, K), float32."""
    from onnx import TensorProto, helper

    return [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, [rows, k, 3]),
            helper.make_tensor_value_info(names[1], TensorProto.FLOAT, [rows, k])]


def _empty_branch(k: int):
    """The answer to a stage that does not exist: no rows."""
    from onnx import helper, numpy_helper

    names = [f"none/{o}" for o in OUTPUTS]
    nodes = [helper.make_node("Constant", [], [names[0]], value=numpy_helper.from_array(
                 np.zeros((0, k, 3), np.float32), "none/points_value")),
             helper.make_node("Constant", [], [names[1]], value=numpy_helper.from_array(
                 np.zeros((0, k), np.float32), "none/confidence_value"))]
    return helper.make_graph(nodes, "none", [], _outputs(names, k, None))


def _functions(models) -> list:
    """The models' local functions, each once (the exporter may write the same one into
    several networks)."""
    seen, out = set(), []
    for model in models:
        for function in model.functions:
            key = (function.domain, function.name, getattr(function, "overload", ""))
            if key not in seen:
                seen.add(key)
                out.append(function)
    return out
