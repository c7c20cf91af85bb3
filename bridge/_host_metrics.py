"""Feeding ``bridge.metrics`` host ops during evaluate, on a worker thread.

The evaluation loop hands each step's fetched numpy values to ``HostMetricFeeder.submit``
and goes straight back to TensorFlow for the next batch; a worker thread runs the C++
updates (which release the GIL) meanwhile. The queue between them is bounded, so memory
stays flat however long the evaluation, and an error in an update is raised from the loop
(with its original type and message) instead of being lost in the thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Mapping

_STOP = object()


def is_host_metric_op(value: Any) -> bool:
    return bool(getattr(value, "__bridge_metric_op__", False))


class HostMetricFeeder:
    """Runs ``op.update(values)`` for every submitted step, in order, on one worker thread.

    Every op starts empty (``reset()``), as tf.estimator's local metric variables were
    initialised for each evaluation; an op listed under several keys is updated once per step.
    """

    def __init__(self, ops: Mapping[str, Any], depth: int = 4) -> None:
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1. Received: depth={depth!r}")
        self._ops: dict[str, Any] = {}
        for key, op in ops.items():
            if not is_host_metric_op(op):
                raise TypeError(f"eval_metric_ops[{key!r}] is not a bridge.metrics host op: {op!r}")
            if all(op is not seen for seen in self._ops.values()):
                self._ops[key] = op
        for op in self._ops.values():
            if hasattr(op, "reset"):
                op.reset()
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="bridge-host-metrics", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # drain without work, so that submit() never blocks on a dead feeder
            key = None
            try:
                for step in item:
                    for key, op in self._ops.items():
                        op.update(step[key])
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                if key is not None and hasattr(error, "add_note"):
                    error.add_note(f"raised by the update of eval_metric_ops[{key!r}]")
                self._error = error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, values_by_key: Mapping[str, Mapping[str, Any]]) -> None:
        """Queues one step's values, keyed like the ops (blocks while ``depth`` submissions are pending).

        Raises the error of an earlier update, if any.
        """
        self.submit_steps([values_by_key])

    def submit_steps(self, steps: list[Mapping[str, Mapping[str, Any]]]) -> None:
        """Queues several steps' values (one grouped call's) as one submission, updated in order.

        A grouped call returns its steps together; queueing them one by one would block the
        evaluation loop on the bounded queue until the worker caught up, instead of letting it
        start the next call.
        """
        self._raise_if_failed()
        self._queue.put([dict(values) for values in steps])

    def finish(self) -> None:
        """Waits for every queued update; raises the first update error, if any."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise_if_failed()

    def abandon(self) -> None:
        """Stops the worker after an error elsewhere, without raising."""
        self._error = self._error or RuntimeError("evaluation stopped")
        self._queue.put(_STOP)
        self._thread.join()


def merge_across_workers(ops: Mapping[str, Any], strategy: Any) -> None:
    """Under a multi-worker strategy, makes every host metric hold the state of all workers.

    Each worker evaluated its own shard of the input, so each op holds a partial state. The
    states are exchanged with the strategy's collectives (an all-gather, which also carries the
    variable-length states of exact AUC) and combined with the metric's own ``merge_state``.
    Every worker must call this, in the same order, as ``evaluate`` does.
    """
    extended = getattr(strategy, "extended", None)
    in_multi_worker_mode = getattr(extended, "_in_multi_worker_mode", None)
    if in_multi_worker_mode is None or not in_multi_worker_mode():
        return
    import numpy as np
    import tensorflow as tf

    local_replicas = len(extended.worker_devices)

    def gather(array: np.ndarray) -> list[np.ndarray]:
        """This array from every worker, in worker order (one copy per worker)."""
        flat = np.ascontiguousarray(array, dtype=np.float64).reshape(-1)
        sizes = strategy.gather(strategy.run(lambda: tf.constant([flat.size], tf.int64)), axis=0).numpy()
        values = strategy.gather(strategy.run(lambda: tf.constant(flat)), axis=0).numpy()
        pieces = np.split(values, np.cumsum(sizes)[:-1])
        return pieces[::local_replicas]

    for op in {id(op): op for op in ops.values()}.values():
        metric = op.metric
        state = metric.get_state()
        per_key = {key: gather(value) for key, value in sorted(state.items())}
        workers = len(next(iter(per_key.values()))) if per_key else 0
        states = []
        for index in range(workers):
            piece = {key: pieces[index] for key, pieces in per_key.items()}
            states.append({key: _like(piece[key], state[key]) for key in piece})
        copies = []
        for worker_state in states[1:]:
            copy = type(metric).from_config(metric.get_config())
            copy.set_state(worker_state)
            copies.append(copy)
        metric.set_state(states[0])
        if copies:
            metric.merge_state(copies)


def _like(piece: Any, local: Any) -> Any:
    """A gathered flat piece in the local state's shape when it has a fixed one."""
    import numpy as np

    local = np.asarray(local)
    return piece.reshape(local.shape) if piece.size == local.size else piece
