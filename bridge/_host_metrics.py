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
    """Runs ``op.update(values)`` for every submitted step, in order, on one worker thread."""

    def __init__(self, ops: Mapping[str, Any], depth: int = 4) -> None:
        self._ops = dict(ops)
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
            try:
                for key, values in item.items():
                    self._ops[key].update(values)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, values_by_key: Mapping[str, Mapping[str, Any]]) -> None:
        """Queues one step's values (blocks while ``depth`` steps are pending)."""
        self._raise_if_failed()
        self._queue.put(dict(values_by_key))

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
