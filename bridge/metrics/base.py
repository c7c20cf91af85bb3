"""StreamingMetric: the shared update/result/merge/state/config protocol.

Each metric keeps its state in a C++ object (``self._core``); Python only
names the state arrays and turns them into results. ``update_state`` is bound
straight to the C++ method so that a call costs one pybind11 dispatch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np


class StreamingMetric:
    """Base class of every ``bridge.metrics`` metric.

    Subclasses set ``self._core`` (a ``bridge._metrics_core`` state) in
    ``__init__`` and implement ``result`` and ``get_config``. State is a dict of
    numpy float64 arrays that add elementwise across workers (see
    ``get_state``), so distributed evaluation can sum states and call
    ``set_state`` once.
    """

    _state_names: ClassVar[tuple[str, ...]] = ()
    # State entries that may be negative (sums of signed values); every other entry is a sum
    # of weights, counts or non-negative losses, and set_state refuses negative values there.
    _signed_state_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, dtype: Any = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Argument `name` must be a non-empty string. Received: name={name!r}")
        self.name = name
        self.dtype = dtype
        self._bind()

    def _bind(self) -> None:
        # Instance attribute shadows the documented method: no Python frame per call.
        self.update_state = self._core.update

    # -- the Keras protocol ---------------------------------------------------------------
    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Accumulates one batch.

        Args:
            y_true: labels or targets, shape ``(batch,)`` or ``(batch, d)``.
            y_pred: predictions, same number of rows as ``y_true``.
            sample_weight: ``None``, a scalar, or one non-negative weight per row.

        Raises:
            TypeError: non-numeric input, or float labels where class indices are expected.
            ValueError: mismatched shapes, empty batches, NaN/inf scores, labels out of
                range, negative weights. A rejected batch leaves the state unchanged.
        """
        self._core.update(y_true, y_pred, sample_weight)

    def result(self) -> Any:
        """Returns the metric over everything accumulated since the last reset."""
        raise NotImplementedError

    def reset_state(self) -> None:
        """Forgets every accumulated batch."""
        self._core.reset()

    def merge_state(self, others: StreamingMetric | Iterable[StreamingMetric]) -> None:
        """Adds the state of other metrics of the same class and configuration.

        Merging the states of metrics fed disjoint parts of a stream gives the
        same result as one metric fed the whole stream.
        """
        if isinstance(others, StreamingMetric):
            others = [others]
        others = list(others)
        mine = self.get_config()
        for other in others:
            if type(other) is not type(self):
                raise TypeError(
                    f"{type(self).__name__}.merge_state expects {type(self).__name__} objects. "
                    f"Received: type(other)={type(other).__name__}"
                )
            if _without_name(other.get_config()) != _without_name(mine):
                raise ValueError(
                    f"{type(self).__name__}.merge_state needs metrics with the same configuration. "
                    f"Received: {_without_name(other.get_config())} vs {_without_name(mine)}"
                )
        for other in others:
            self._core.merge(other._core)

    # -- state ------------------------------------------------------------------------------
    def _state_shapes(self) -> list[tuple[int, ...]]:
        """Shape of each named state array, in ``_state_names`` order."""
        raise NotImplementedError

    def get_state(self) -> dict[str, np.ndarray]:
        """Returns the state as a dict of float64 numpy arrays (copies)."""
        flat = self._core.state()
        out: dict[str, np.ndarray] = {}
        offset = 0
        for name, shape in zip(self._state_names, self._state_shapes()):
            size = int(np.prod(shape, dtype=np.int64))
            out[name] = flat[offset : offset + size].reshape(shape).copy()
            offset += size
        return out

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Replaces the state with ``state`` (as returned by ``get_state``, or a sum of them)."""
        missing = [k for k in self._state_names if k not in state]
        if missing:
            raise ValueError(
                f"{type(self).__name__}.set_state needs the keys {list(self._state_names)}. "
                f"Received: keys={sorted(state)}"
            )
        parts = [_state_array(state[k], type(self).__name__, k) for k in self._state_names]
        self._check_state_sizes(parts)
        for name, part in zip(self._state_names, parts):
            if name not in self._signed_state_names and np.any(part < 0):
                raise ValueError(
                    f"{type(self).__name__}.set_state: `{name}` holds sums of weights, counts or losses, "
                    f"which are never negative. Received: {name}={state[name]!r}"
                )
        flat = np.concatenate(parts) if parts else np.zeros(0)
        if not np.all(np.isfinite(flat)):
            raise ValueError(f"{type(self).__name__}.set_state received non-finite values.")
        self._core.set_state(flat)

    def _check_state_sizes(self, parts: list[np.ndarray]) -> None:
        """Refuses state arrays of the wrong sizes (a concatenation would silently re-split them)."""
        expected = [int(np.prod(shape, dtype=np.int64)) for shape in self._state_shapes()]
        received = [part.size for part in parts]
        if received != expected:
            raise ValueError(
                f"{type(self).__name__}.set_state needs arrays of sizes "
                f"{dict(zip(self._state_names, expected))}. Received: {dict(zip(self._state_names, received))}"
            )

    # -- config and pickling ------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments, so ``type(m).from_config(m.get_config())`` rebuilds it."""
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StreamingMetric:
        """Builds a fresh (empty) metric from ``get_config()`` output."""
        return cls(**config)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.get_config(), self.get_state()))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _state_array(value: Any, metric: str, name: str) -> np.ndarray:
    """One state entry as a flat float64 array; only real numbers (bool, int, float) are accepted."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{metric}.set_state: `{name}` must hold real numbers. Received: {name}.dtype={arr.dtype}"
        )
    return arr.astype(np.float64).ravel()


def _without_name(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("name", "dtype")}


def _rebuild(cls: type[StreamingMetric], config: Mapping[str, Any], state: Mapping[str, Any]) -> StreamingMetric:
    metric = cls.from_config(config)
    metric.set_state(state)
    return metric


# Largest metric state in float64 values (1 GiB); the C++ states enforce the same bound.
MAX_STATE_ENTRIES = 2**27


def check_positive_int(value: Any, arg: str, minimum: int = 1, per_entry: int | None = None) -> int:
    """Validates an integer constructor argument (bools refused).

    ``per_entry``: state values per unit of ``value`` (``value`` itself for a square state,
    written as ``per_entry=-1``); the state must fit ``MAX_STATE_ENTRIES``, so that an
    unreasonable size is a ValueError here, before anything is allocated.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Argument `{arg}` must be an integer >= {minimum}. Received: {arg}={value!r}")
    value = int(value)
    if per_entry is not None:
        entries = value * (value if per_entry == -1 else per_entry)
        if entries > MAX_STATE_ENTRIES:
            raise ValueError(
                f"Argument `{arg}` is too large: the metric's state would hold {entries} values, more than "
                f"the {MAX_STATE_ENTRIES} (1 GiB) supported. Received: {arg}={value}"
            )
    return value


def check_probability(value: Any, arg: str) -> float:
    """Validates a threshold-like float in [0, 1]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Argument `{arg}` must be a number in [0, 1]. Received: {arg}={value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"Argument `{arg}` must be a number in [0, 1]. Received: {arg}={value!r}")
    return v
