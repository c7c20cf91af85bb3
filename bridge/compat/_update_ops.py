"""``UPDATE_OPS`` with TF1's semantics inside a traced model_fn.

In a TF1 graph, the moving-average updates of batch normalization ran only when something
fetched them: a model_fn that wrapped ``train_op`` in
``tf.control_dependencies(tf.compat.v1.get_collection(UPDATE_OPS))`` updated the moving
statistics, one that forgot did not. bridge traces model_fn into a ``tf.function``, which runs
*every* stateful op built in it, so building the assignments directly would always update.

So a layer puts a stateless marker (a ``NoOp``) into ``UPDATE_OPS`` and registers how to build
the real update. When model_fn has returned (the model_fn seam's exit), the updates whose
markers a TRAIN spec's fetches depend on (``train_op`` and ``loss``, what tf.estimator fetched
every step) are built and grouped into ``train_op``; the others are never built.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterator, NamedTuple

import tensorflow as tf


class _Pending(NamedTuple):
    marker: tf.Operation
    build: Callable[[], Any]
    name_scope: str


_pending: contextvars.ContextVar[list[_Pending] | None] = contextvars.ContextVar("bridge_compat_updates", default=None)


def add_update(build: Callable[[], Any], name: str = "update") -> tf.Operation:
    """Registers an update op in ``UPDATE_OPS``; returns what stands for it there.

    Inside a bridge model_fn the update is built only if the spec's fetches depend on the
    returned marker; elsewhere (a plain graph) it is built at once, as in TF1.
    """
    pending = _pending.get()
    if pending is None:
        op = tf.group(build(), name=name)
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, op)
        return op
    marker = tf.no_op(name=name)
    pending.append(_Pending(marker, build, tf.compat.v1.get_default_graph().get_name_scope()))
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, marker)
    return marker


def _fetched_ops(spec: Any) -> list[tf.Operation]:
    found = []
    for item in tf.nest.flatten([spec.train_op, spec.loss]):
        if isinstance(item, tf.Operation):
            found.append(item)
        elif isinstance(item, tf.Tensor) and hasattr(item, "op"):
            found.append(item.op)
    return found


def _reached(roots: list[tf.Operation], markers: set[tf.Operation]) -> set[tf.Operation]:
    """The markers that ``roots`` depend on, through data inputs or control inputs."""
    seen: set[tf.Operation] = set()
    stack = list(roots)
    reached: set[tf.Operation] = set()
    while stack and len(reached) < len(markers):
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        if op in markers:
            reached.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return reached


def _build_reached(pending: list[_Pending], spec: Any) -> Any:
    reached = _reached(_fetched_ops(spec), {p.marker for p in pending})
    built = []
    for item in pending:
        if item.marker in reached:
            with tf.name_scope(item.name_scope + "/" if item.name_scope else None):
                built.append(tf.group(item.build()))
    if not built:
        return spec
    train_op = spec.train_op if spec.train_op is not None else []
    # The marker's consumers already ran after it; the real update only has to run in the same
    # step, which grouping it into train_op guarantees (also if unfetched stateful ops get pruned).
    return spec._replace(train_op=tf.group(train_op, *built))


@contextlib.contextmanager
def deferred_updates(call: Any) -> Iterator[None]:
    """The model_fn seam's scope: collects update markers, builds the fetched ones on exit."""
    token = _pending.set([])
    try:
        yield
        pending = _pending.get()
        if pending and call.spec is not None and call.spec.mode == "train":
            call.spec = _build_reached(pending, call.spec)
    finally:
        _pending.reset(token)
