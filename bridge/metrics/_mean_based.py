"""MeanBased: metrics whose state is a weighted (total, count) pair."""

from __future__ import annotations

from typing import Any, ClassVar

from bridge.metrics._core import core
from bridge.metrics.base import StreamingMetric


class MeanBased(StreamingMetric):
    """A weighted mean of one value per row; the value is chosen by ``_kind``.

    State: ``total`` (sum of weight * value) and ``count`` (sum of weights).
    With no updates (or zero total weight) the result is 0.0, as in Keras.
    """

    _kind: ClassVar[str] = ""
    _state_names = ("total", "count")

    def __init__(self, name: str, dtype: Any = None, *, k: int = 5, from_logits: bool = False,
                 label_smoothing: float = 0.0) -> None:
        self._core = core.MeanState(self._kind, k=k, from_logits=bool(from_logits),
                                    label_smoothing=float(label_smoothing), name=name)
        super().__init__(name=name, dtype=dtype)

    def _state_shapes(self) -> list[tuple[int, ...]]:
        return [(), ()]

    def _total_count(self) -> tuple[float, float]:
        total, count = self._core.state()
        return float(total), float(count)

    def result(self) -> float:
        """Weighted mean of the per-row values (0.0 before any weight is seen)."""
        total, count = self._total_count()
        return total / count if count != 0.0 else 0.0
