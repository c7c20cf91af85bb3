"""Precision, Recall, F-scores and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bridge.metrics._core import core
from bridge.metrics.base import StreamingMetric, check_positive_int, check_probability


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b with 0 where b == 0 (Keras's divide_no_nan)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


class _ThresholdCounts(StreamingMetric):
    """tp/fp/tn/fn at one or more thresholds, optionally for one column (class_id)."""

    _state_names = ("true_positives", "false_positives", "true_negatives", "false_negatives")

    def __init__(self, thresholds: float | Sequence[float] | None, top_k: int | None, class_id: int | None,
                 name: str, dtype: Any) -> None:
        if top_k is not None:
            raise ValueError(
                "Argument `top_k` is not supported by bridge.metrics; filter y_pred to its top-k "
                f"entries first. Received: top_k={top_k!r}"
            )
        self._single = thresholds is None or np.ndim(thresholds) == 0
        raw = [0.5] if thresholds is None else ([thresholds] if self._single else list(thresholds))
        if not raw:
            raise ValueError("Argument `thresholds` must not be empty.")
        self.thresholds = [check_probability(t, "thresholds") for t in raw]
        self.class_id = None if class_id is None else check_positive_int(class_id, "class_id", minimum=0)
        self._core = core.BinaryCountsState(self.thresholds, class_id=-1 if self.class_id is None else self.class_id,
                                            name=name)
        super().__init__(name=name, dtype=dtype)

    def _state_shapes(self) -> list[tuple[int, ...]]:
        return [(len(self.thresholds),)] * 4

    def _counts(self) -> tuple[np.ndarray, ...]:
        return tuple(np.split(self._core.state(), 4))

    def _finish(self, values: np.ndarray) -> float | np.ndarray:
        return float(values[0]) if self._single else values

    def get_config(self) -> dict[str, Any]:
        thresholds: Any = self.thresholds[0] if self._single else list(self.thresholds)
        return {**super().get_config(), "thresholds": thresholds, "top_k": None, "class_id": self.class_id}


class Precision(_ThresholdCounts):
    """tp / (tp + fp) with predictions ``y_pred > threshold`` (Keras ``Precision``).

    ``y_true`` holds 0/1 labels shaped like ``y_pred``; 2-D batches count every
    element. ``class_id`` restricts both to one column of ``(batch, num_classes)``
    inputs. A list of thresholds gives one value per threshold. With no
    predicted positives the result is 0.0, as in Keras.
    """

    def __init__(self, thresholds: float | Sequence[float] | None = None, top_k: int | None = None,
                 class_id: int | None = None, name: str = "precision", dtype: Any = None) -> None:
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self) -> float | np.ndarray:
        tp, fp, _, _ = self._counts()
        return self._finish(_div(tp, tp + fp))


class Recall(_ThresholdCounts):
    """tp / (tp + fn) with predictions ``y_pred > threshold`` (Keras ``Recall``); see :class:`Precision`."""

    def __init__(self, thresholds: float | Sequence[float] | None = None, top_k: int | None = None,
                 class_id: int | None = None, name: str = "recall", dtype: Any = None) -> None:
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self) -> float | np.ndarray:
        tp, _, _, fn = self._counts()
        return self._finish(_div(tp, tp + fn))


class FBetaScore(StreamingMetric):
    """F-beta score per class, or averaged (Keras ``FBetaScore``), computed exactly.

    Inputs: ``y_pred`` of shape ``(batch, num_classes)`` with ``y_true`` either
    one-hot/multi-hot of the same shape or integer class indices ``(batch,)``;
    or, for the binary case, ``y_pred`` ``(batch,)``/``(batch, 1)`` with 0/1 labels.
    With ``threshold=None`` a row's positives are its maximal entries; otherwise
    the entries above ``threshold``.

    Args:
        average: ``None`` (one score per class), ``"micro"`` (pooled counts),
            ``"macro"`` (unweighted mean over classes) or ``"weighted"`` (mean
            weighted by each class's support).
        beta: weight of recall relative to precision.

    Unlike Keras no epsilon is added: classes with no predicted or true
    positives score 0.0 (scikit-learn's ``zero_division=0``).
    """

    _state_names = ("true_positives", "false_positives", "false_negatives", "support")
    _averages = (None, "micro", "macro", "weighted")

    def __init__(self, average: str | None = None, beta: float = 1.0, threshold: float | None = None,
                 name: str = "fbeta_score", dtype: Any = None) -> None:
        if average not in self._averages:
            raise ValueError(
                "Invalid `average` argument value. Expected one of: None, 'micro', 'macro', 'weighted'. "
                f"Received: average={average!r}"
            )
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta * beta < float("inf"):
            raise ValueError(f"Argument `beta` must be a finite float > 0. Received: beta={beta!r}")
        if threshold is not None:
            threshold = float(threshold)
            if not 0.0 < threshold <= 1.0:
                raise ValueError(f"Argument `threshold` must be in (0, 1]. Received: threshold={threshold!r}")
        self.average = average
        self.beta = float(beta)
        self.threshold = threshold
        self._core = core.ClassCountsState(float("nan") if threshold is None else threshold, name=name)
        super().__init__(name=name, dtype=dtype)

    def _state_shapes(self) -> list[tuple[int, ...]]:
        return [(int(self._core.classes),)] * 4

    def _check_state_sizes(self, parts: list[np.ndarray]) -> None:
        # The number of classes comes with the state, but all four arrays must agree on it.
        sizes = {name: part.size for name, part in zip(self._state_names, parts)}
        if len(set(sizes.values())) != 1:
            raise ValueError(
                f"{type(self).__name__}.set_state needs four arrays of one length (num_classes). "
                f"Received: {sizes}"
            )

    def result(self) -> float | np.ndarray:
        """Score per class (``average=None``) or the averaged score; 0.0 before any update."""
        classes = int(self._core.classes)
        if classes == 0:
            return 0.0 if self.average is not None else np.zeros(0)
        tp, fp, fn, support = np.split(self._core.state(), 4)
        if self.average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        b2 = self.beta * self.beta
        precision = _div(tp, tp + fp)
        recall = _div(tp, tp + fn)
        score = _div((1.0 + b2) * precision * recall, b2 * precision + recall)
        if self.average is None:
            return score
        if self.average == "weighted":
            return float(_div((score * support).sum(), support.sum()))
        return float(np.mean(score))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """F1 score (beta = 1): binary, per class, micro, macro or weighted; see :class:`FBetaScore`.

    >>> m = F1Score(threshold=0.5)
    >>> m.update_state([1, 0, 1, 1], [0.9, 0.8, 0.2, 0.7])
    >>> round(float(m.result()[0]), 4)
    0.6667
    """

    def __init__(self, average: str | None = None, threshold: float | None = None, name: str = "f1_score",
                 dtype: Any = None) -> None:
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["beta"]
        return config


class ConfusionMatrix(StreamingMetric):
    """Weighted ``num_classes x num_classes`` confusion matrix; rows are true classes.

    ``y_true`` holds class indices. ``y_pred`` holds class indices (integers),
    scores of shape ``(batch, num_classes)`` (argmax, first maximum on ties), or,
    when ``num_classes == 2``, one column of scores thresholded at ``threshold``.
    """

    _state_names = ("confusion_matrix",)

    def __init__(self, num_classes: int, threshold: float = 0.5, name: str = "confusion_matrix",
                 dtype: Any = None) -> None:
        self.num_classes = check_positive_int(num_classes, "num_classes", minimum=2, per_entry=-1)
        self.threshold = check_probability(threshold, "threshold")
        self._core = core.ConfusionState(self.num_classes, threshold=self.threshold, name=name)
        super().__init__(name=name, dtype=dtype)

    def _state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.num_classes, self.num_classes)]

    def result(self) -> np.ndarray:
        """The matrix as float64 (weighted counts)."""
        return self._core.state().reshape(self.num_classes, self.num_classes)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes, "threshold": self.threshold}
