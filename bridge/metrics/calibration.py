"""Expected calibration error over equal-width confidence bins."""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.metrics._core import core
from bridge.metrics.base import StreamingMetric, check_positive_int


class ExpectedCalibrationError(StreamingMetric):
    """Weighted mean gap between confidence and accuracy (L1 ECE).

    Binary: ``y_pred`` ``(batch,)`` holds P(label = 1) and ``y_true`` 0/1 labels;
    the confidence is ``y_pred`` and the outcome ``y_true`` (the reliability of the
    positive class, as torchmetrics' ``BinaryCalibrationError``). Multi-class:
    ``y_pred`` ``(batch, num_classes)`` holds probabilities and ``y_true`` class
    indices; the confidence is the row maximum and the outcome whether its
    (first) argmax is the label. Bins are ``[k/n, (k+1)/n)``, with 1.0 in the
    last bin. ECE = sum over bins of |sum(outcome) - sum(confidence)| / total weight.
    """

    _state_names = ("bin_weight", "bin_confidence", "bin_outcome")

    def __init__(self, num_bins: int = 15, name: str = "expected_calibration_error", dtype: Any = None) -> None:
        self.num_bins = check_positive_int(num_bins, "num_bins", per_entry=3)
        self._core = core.CalibrationState(self.num_bins, name=name)
        super().__init__(name=name, dtype=dtype)

    def _state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.num_bins,)] * 3

    def result(self) -> float:
        weight, confidence, outcome = np.split(self._core.state(), 3)
        total = weight.sum()
        return float(np.abs(outcome - confidence).sum() / total) if total > 0 else 0.0

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_bins": self.num_bins}
