"""Regression errors: MSE, MAE and RMSE (Keras names and semantics)."""

from __future__ import annotations

import math
from typing import Any

from bridge.metrics._mean_based import MeanBased


class MeanSquaredError(MeanBased):
    """Weighted mean over rows of ``mean((y_true - y_pred) ** 2)`` over each row's columns."""

    _kind = "squared_error"

    def __init__(self, name: str = "mean_squared_error", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class MeanAbsoluteError(MeanBased):
    """Weighted mean over rows of ``mean(|y_true - y_pred|)`` over each row's columns."""

    _kind = "absolute_error"

    def __init__(self, name: str = "mean_absolute_error", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)


class RootMeanSquaredError(MeanBased):
    """Square root of :class:`MeanSquaredError`'s result (Keras ``RootMeanSquaredError``)."""

    _kind = "squared_error"

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def result(self) -> float:
        return math.sqrt(super().result())
