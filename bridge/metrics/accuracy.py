"""Accuracy metrics (Keras names and semantics)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.metrics._core import core
from bridge.metrics._mean_based import MeanBased
from bridge.metrics.base import StreamingMetric, check_positive_int


class Accuracy(MeanBased):
    """How often ``y_pred`` equals ``y_true`` exactly (Keras ``Accuracy``).

    Both hold class labels of the same shape; mixed dtypes are compared as float64.

    >>> m = Accuracy()
    >>> m.update_state([1, 2, 3, 4], [0, 2, 3, 4])
    >>> m.result()
    0.75
    """

    _kind = "equal"

    def __init__(self, name: str = "accuracy", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class CategoricalAccuracy(MeanBased):
    """How often ``argmax(y_pred)`` equals ``argmax(y_true)`` for one-hot ``y_true``.

    Ties pick the first maximum, as ``numpy.argmax`` and Keras do.
    """

    _kind = "categorical_accuracy"

    def __init__(self, name: str = "categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanBased):
    """How often ``argmax(y_pred)`` equals the integer class index ``y_true``.

    ``y_pred`` is ``(batch, num_classes)`` (probabilities or logits); ``y_true``
    is ``(batch,)`` or ``(batch, 1)`` of integers in ``[0, num_classes)``.
    Ties pick the first maximum. Computed in one pass without an argmax.
    """

    _kind = "sparse_accuracy"

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class SparseTopKCategoricalAccuracy(MeanBased):
    """How often the true class is among the ``k`` highest scores.

    Ties follow ``tf.math.in_top_k`` (used by Keras): the true class counts as
    inside when fewer than ``k`` classes score strictly higher than it.
    """

    _kind = "sparse_top_k"

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy", dtype: Any = None) -> None:
        self.k = check_positive_int(k, "k")
        super().__init__(name=name, dtype=dtype, k=self.k)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "k": self.k}


class BinaryAccuracy(StreamingMetric):
    """How often ``y_pred > threshold`` matches the 0/1 label ``y_true`` (Keras ``BinaryAccuracy``).

    >>> m = BinaryAccuracy()
    >>> m.update_state([1, 1, 0, 0], [0.98, 0.4, 0.1, 0.6])
    >>> m.result()
    0.5
    """

    _state_names = ("true_positives", "false_positives", "true_negatives", "false_negatives")

    def __init__(self, name: str = "binary_accuracy", dtype: Any = None, threshold: float = 0.5) -> None:
        try:
            self.threshold = float(threshold)
        except (TypeError, ValueError):
            raise ValueError(f"Argument `threshold` must be a number. Received: threshold={threshold!r}") from None
        if not np.isfinite(self.threshold):
            raise ValueError(f"Argument `threshold` must be finite. Received: threshold={threshold!r}")
        self._core = core.BinaryCountsState([self.threshold], name=name)
        super().__init__(name=name, dtype=dtype)

    def _state_shapes(self) -> list[tuple[int, ...]]:
        return [()] * 4

    def result(self) -> float:
        """(tp + tn) / total weight, 0.0 before any weight is seen."""
        tp, fp, tn, fn = (float(v) for v in self._core.state())
        total = tp + fp + tn + fn
        return (tp + tn) / total if total else 0.0

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}
