"""Runs graph ops that model_fn built, once, outside the traced step.

A Session could run any op of its graph at any time; legacy initialisation relied on it
(``Scaffold(init_op=tf.group(w.assign(...)))``, ``init_fn=lambda scaffold, sess: sess.run(op)``).
bridge's model_fn runs inside the trace of the step function, where such an op is part of a
graph being built (and left out of the step when the step's outputs do not need it).

``run_once(fetches)`` copies what ``fetches`` need out of that graph into a fresh one-off
function (``lift_to_graph``, as TensorFlow's own ``wrap_function(...).prune`` does) whose
arguments are the captured values the ops read: the model's variable handles, constants. It
calls it once, eagerly, and returns the values, as ``Session.run`` did (None for an
operation). The variables are the ones the step uses, so the effects are the step's state.
An op that needs the input data (features, labels) cannot run outside a step: ValueError.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from tensorflow.python.eager import lift_to_graph
from tensorflow.python.eager.polymorphic_function import atomic_function
from tensorflow.python.framework import func_graph as func_graph_module
from tensorflow.python.util import object_identity

from bridge._prune import captured_from_outside, written_resources

__all__ = ["run_once", "is_graph_value", "closure", "written_handles"]


def is_graph_value(item: Any) -> bool:
    """Whether ``item`` is a tensor or operation of a graph being built (not an eager value)."""
    if isinstance(item, tf.Operation):
        return True
    return isinstance(item, tf.Tensor) and not hasattr(item, "_numpy")


def closure(targets: list[tf.Operation]) -> set[tf.Operation]:
    """``targets`` and every op they need (data and control inputs), within their graph."""
    seen: set[tf.Operation] = set()
    stack = list(targets)
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(tensor.op for tensor in op.inputs if tensor.op.graph is op.graph)
        stack.extend(op.control_inputs)
    return seen


def written_handles(operations: set[tf.Operation]) -> set[int]:
    """ids of the eager resource handles (variables) that ``operations`` may write."""
    handles = set()
    for op in operations:
        for tensor in written_resources(op):
            handle = captured_from_outside(op.graph, tensor)
            if handle is not None:
                handles.add(id(handle))
    return handles


def _sources(graph: Any, targets: list[tf.Operation], what: str) -> list[tf.Tensor]:
    """The capture placeholders ``targets`` read; ValueError when they need a function input."""
    captured = object_identity.ObjectIdentitySet(i for _, i in getattr(graph, "captures", ()))
    sources = object_identity.ObjectIdentitySet()
    for op in closure(targets):
        if op.type != "Placeholder":
            continue
        tensor = op.outputs[0]
        if tensor not in captured:
            raise ValueError(
                f"{what} needs {tensor.name}, an input of the traced step (the features or labels input_fn "
                "gives): it can only run inside a step. Build it from variables and constants only."
            )
        sources.add(tensor)
    return list(sources)


def run_once(fetches: Any, what: str = "The op") -> Any:
    """Runs ``fetches`` (a nest of graph tensors and operations of one graph) once; returns numpy values.

    ``what`` names the fetches in errors (e.g. ``"Scaffold(init_op=...)"``).
    """
    flat = tf.nest.flatten(fetches, expand_composites=False)
    graphs = {id(item.graph): item.graph for item in flat}
    if len(graphs) != 1:
        raise ValueError(f"{what}: the ops to run must come from the one model_fn graph; got {len(graphs)} graphs.")
    graph = next(iter(graphs.values()))
    targets = [item if isinstance(item, tf.Operation) else item.op for item in flat]
    sources = _sources(graph, targets, what)
    values = [captured_from_outside(graph, source) for source in sources]
    if any(value is None for value in values):
        raise ValueError(f"{what} reads a value bridge cannot find outside the step.")
    with tf.init_scope():
        new = func_graph_module.FuncGraph("bridge_run_once")
        op_map = lift_to_graph.lift_to_graph(flat, new, sources=sources, base_graph=graph)
        new.inputs = [op_map[source] for source in sources]
        new.outputs = [op_map[item] for item in flat if isinstance(item, tf.Tensor)]
        new.control_outputs = [op_map[item] for item in flat if isinstance(item, tf.Operation)]
        new.structured_outputs = None
        function = atomic_function.from_func_graph("bridge_run_once", new, {})
        results = iter(function.call_flat(*values) or ())
        out = [None if isinstance(item, tf.Operation) else next(results).numpy() for item in flat]
    return tf.nest.pack_sequence_as(fetches, out)
