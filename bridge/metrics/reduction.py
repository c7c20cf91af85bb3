"""Mean and Sum of arbitrary values."""

from __future__ import annotations

from typing import Any

from bridge.metrics._mean_based import MeanBased


class Mean(MeanBased):
    """Weighted mean of the given values (Keras ``Mean``).

    Rows of a 2-D batch are averaged first, then rows are weighted by
    ``sample_weight``: ``update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])``
    gives 2.0.

    >>> m = Mean()
    >>> m.update_state([1.0, 3.0, 5.0, 7.0])
    >>> m.result()
    4.0
    """

    _kind = "values"
    _signed_state_names = ("total",)

    def __init__(self, name: str = "mean", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def _bind(self) -> None:
        self.update_state = self._core.update_values

    def update_state(self, values: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        """Accumulates ``values`` (scalar, ``(batch,)`` or ``(batch, d)``) with optional weights."""
        self._core.update_values(values, sample_weight)


class Sum(Mean):
    """Weighted sum of the given values (Keras ``Sum``); 2-D rows are summed first.

    >>> m = Sum()
    >>> m.update_state([1.0, 3.0, 5.0, 7.0], sample_weight=[1, 1, 0, 0])
    >>> m.result()
    4.0
    """

    _kind = "value_sums"

    def __init__(self, name: str = "sum", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def result(self) -> float:
        """Sum of weight * (sum of the row's values)."""
        return self._total_count()[0]
