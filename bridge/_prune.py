"""Run only what the outputs need: tf.estimator's Session rule for a traced TF2 step.

A ``tf.compat.v1.Session`` ran only the ops the fetched tensors and operations depended on, so
tf.estimator never ran a ``train_op`` that model_fn built in EVAL or PREDICT. A ``tf.function``
instead runs every stateful op of its graph: its automatic control dependencies (ACD) add each
one to the function's control outputs and order the ops on each resource in program order.

``run_only_needed`` brings the Session rule to the trace. Called at the end of the traced Python
function, before TensorFlow applies ACD to the graph, it works out what the given roots need
and hides every other op created since the step began from the graph's op list. TensorFlow
reads that list (``graph.get_operations()``) both to apply ACD and to build the function body,
so a hidden op is not part of the function at all: it never runs and costs nothing, while the
ops that remain keep TF2's ordering among themselves (a Keras optimizer's read of
``iterations`` still comes before its increment). See docs/design.md, "Only what the outputs
need runs".

What a root needs (as in a Session): its data inputs and its explicit control inputs
(``tf.control_dependencies``, ``tf.group``), transitively; plus, for an op that uses a metric
variable (``ordered_handles``), every earlier write to that variable: a Keras metric object
updates its state in ``update_state`` and reads it in ``result()`` with no data dependency
between them, the order being the program's (tf.estimator fetched ``metric.updates`` for
such objects).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import tensorflow as tf

try:  # the op types TensorFlow's ACD treats as read-only
    from tensorflow.python.framework.auto_control_deps_utils import RESOURCE_READ_OPS as _READ_OPS
except ImportError:  # pragma: no cover - TensorFlow internals moved
    _READ_OPS = {"ReadVariableOp", "ResourceGather", "ResourceGatherNd", "VariableShape", "VarIsInitializedOp"}

_READ_ONLY_ATTR = "_read_only_resource_inputs"  # set by TensorFlow on If/While/function-call ops
_ALL_OPERATIONS = "_bridge_all_operations"
_HIDDEN = "_bridge_hidden_operations"
WRITE_OP_TYPES = {"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp"}


def all_operations(graph: Any) -> list[tf.Operation]:
    """Every op of ``graph`` in creation order, hidden ones included."""
    original = getattr(graph, _ALL_OPERATIONS, None)
    return original() if original is not None else graph.get_operations()


def hidden_operations(graph: Any) -> set[tf.Operation]:
    """The ops ``run_only_needed`` took out of ``graph``."""
    return set(getattr(graph, _HIDDEN, ()))


def captured_from_outside(graph: Any, tensor: Any, captures: dict[int, Any] | None = None) -> Any:
    """The eager tensor that ``tensor`` (a capture placeholder of ``graph``) stands for, or None.

    Follows captures through nested graphs (a while loop's body, a cond branch) to the eager
    handle of the variable. ``captures`` may hold ``graph``'s own capture map, built once.
    """
    while True:
        if captures is None:
            captures = {id(internal): external for external, internal in graph.captures}
        outer = captures.get(id(tensor))
        if outer is None:
            return None
        if not hasattr(outer, "graph"):  # eager: reached the variable's handle
            return outer
        graph, tensor, captures = outer.graph, outer, None


def written_resources(op: tf.Operation) -> list[tf.Tensor]:
    """The resource inputs ``op`` may write (all but those TensorFlow knows it only reads)."""
    resources = [(i, t) for i, t in enumerate(op.inputs) if t.dtype == tf.resource]
    if not resources or op.type in _READ_OPS:
        return []
    try:
        read_only = set(op.get_attr(_READ_ONLY_ATTR))
    except ValueError:
        read_only = set()
    return [t for i, t in resources if i not in read_only]


def variable_handles(variables: Iterable[Any]) -> set[int]:
    """ids of the eager handles of ``variables`` (each component of a distributed variable)."""
    handles = set()
    for variable in variables:
        for component in getattr(variable, "values", None) or (variable,):
            handle = getattr(component, "handle", None)
            if handle is not None:
                handles.add(id(handle))
    return handles


def run_only_needed(
    graph: Any,
    first: int,
    roots: Sequence[Any],
    ordered_handles: set[int] = frozenset(),
    also_needed: Callable[[tf.Operation, Callable[[tf.Tensor], Any]], bool] | None = None,
) -> list[tf.Operation]:
    """Hides every op of ``graph`` created from index ``first`` on that ``roots`` do not need.

    ``roots``: the tensors and operations the step fetches. ``ordered_handles``: ids of eager
    variable handles (metric state) whose earlier writes an op using them needs.
    ``also_needed(op, resource_of)``: ops to run even though no root needs them (training's
    updates of model variables); ``resource_of(tensor)`` gives the eager handle a resource
    input stands for. Must be called inside the trace, before TensorFlow finishes the graph.
    Returns the hidden ops.
    """
    operations = all_operations(graph)
    candidates = operations[first:]
    if not candidates:
        return []
    position = {op: i for i, op in enumerate(operations)}
    captures = {id(internal): external for external, internal in graph.captures}

    def resource_of(tensor: tf.Tensor) -> Any:
        return captured_from_outside(graph, tensor, captures)

    writes_by_handle: dict[int, list[tf.Operation]] = {}
    uses: dict[tf.Operation, list[int]] = {}
    if ordered_handles:
        for op in candidates:
            for tensor in op.inputs:
                if tensor.dtype != tf.resource:
                    continue
                handle = resource_of(tensor)
                if handle is not None and id(handle) in ordered_handles:
                    uses.setdefault(op, []).append(id(handle))
            for tensor in written_resources(op):
                handle = resource_of(tensor)
                if handle is not None and id(handle) in ordered_handles:
                    writes_by_handle.setdefault(id(handle), []).append(op)

    stack = [item if isinstance(item, tf.Operation) else item.op for item in roots]
    if also_needed is not None:
        stack.extend(op for op in candidates if also_needed(op, resource_of))
    needed: set[tf.Operation] = set()
    while stack:
        op = stack.pop()
        if op in needed or op.graph is not graph:
            continue
        needed.add(op)
        stack.extend(tensor.op for tensor in op.inputs)
        stack.extend(op.control_inputs)
        for handle in uses.get(op, ()):
            stack.extend(w for w in writes_by_handle.get(handle, ()) if position[w] < position[op])
    inputs = {tensor.op for tensor in graph.inputs}  # capture placeholders stay: they are the signature
    hidden = [op for op in candidates if op not in needed and op not in inputs]
    if hidden:
        _hide(graph, hidden)
    return hidden


class _GraphView:
    """A FuncGraph seen with some of its ops and outputs only (for building a second function)."""

    def __init__(self, graph: Any, operations: list[tf.Operation], outputs: list[tf.Tensor]) -> None:
        self._graph, self._operations, self.outputs = graph, operations, outputs

    def get_operations(self) -> list[tf.Operation]:
        return self._operations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._graph, name)


def function_without_outputs(graph: Any, keep: Sequence[int], name: str) -> Any:
    """The traced function of ``graph`` returning only ``graph.outputs[i]`` for ``i`` in ``keep``.

    For outputs fetched only on some calls. ``graph`` is a finished FuncGraph (its automatic
    control dependencies applied); the new function holds what the kept outputs and the graph's
    control outputs (its stateful ops) need, over data inputs and control inputs, ACD's
    included: the stateless work only the dropped outputs needed is left out, while every
    update and its order stay as in the full function. It takes the same arguments (inputs and
    captures) as the full one. Returns a TensorFlow ``AtomicFunction``.
    """
    from tensorflow.python.eager.polymorphic_function import atomic_function

    outputs = [graph.outputs[i] for i in keep]
    stack = [tensor.op for tensor in outputs] + list(graph.control_outputs)
    needed: set[tf.Operation] = set()
    while stack:
        op = stack.pop()
        if op in needed:
            continue
        needed.add(op)
        stack.extend(tensor.op for tensor in op.inputs)
        stack.extend(op.control_inputs)
    operations = [op for op in graph.get_operations() if op in needed]
    return atomic_function.from_func_graph(name, _GraphView(graph, operations, outputs), {})


def _hide(graph: Any, operations: list[tf.Operation]) -> None:
    """Takes ``operations`` out of ``graph.get_operations()`` (they stay in the C graph, unused)."""
    hidden = getattr(graph, _HIDDEN, None)
    if hidden is None:
        hidden = set()
        original = graph.get_operations
        setattr(graph, _HIDDEN, hidden)
        setattr(graph, _ALL_OPERATIONS, original)
        graph.get_operations = lambda: [op for op in original() if op not in hidden]
    hidden.update(operations)
