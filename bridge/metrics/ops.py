"""``tf.compat.v1.metrics``-style constructors for ``eval_metric_ops``, computed by the C++ engine.

Inside a model_fn::

    eval_metric_ops = {
        "accuracy": bridge.metrics.accuracy(labels, predicted_classes),
        "auc": bridge.metrics.auc(labels, probabilities),
        "exact_auc": bridge.metrics.exact_auc(labels, probabilities),
    }

Each call returns a ``HostMetricOp``: it names the tensors the Estimator must fetch every
evaluation step and the ``bridge.metrics`` object that accumulates them on the host, in a
worker thread, while TensorFlow runs the next batch. Semantics follow ``tf.compat.v1.metrics``:
inputs are flattened and compared element by element, ``weights`` broadcast to the values,
labels and predictions cast to bool for the precision/recall family, and thresholded AUC uses
the same thresholds and summation rules. Results are float64 (tf.estimator returned float32).

This module does not import TensorFlow: the tensors are only stored, never touched.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from bridge.metrics.accuracy import Accuracy, SparseTopKCategoricalAccuracy
from bridge.metrics.auc import AUC
from bridge.metrics.base import StreamingMetric
from bridge.metrics.confusion import ConfusionMatrix, Precision
from bridge.metrics.reduction import Mean
from bridge.metrics.regression import MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError

Arrays = Mapping[str, np.ndarray]


class HostMetricOp:
    """An ``eval_metric_ops`` value computed on the host by a ``bridge.metrics`` object.

    ``fetches`` are the tensors (labels, predictions, weights, ...) to fetch each step;
    ``update(values)`` feeds one step's numpy values to the metric; ``result()`` reads it.
    """

    __bridge_metric_op__ = True

    def __init__(
        self,
        metric: StreamingMetric,
        fetches: Mapping[str, Any],
        prepare: Callable[[Arrays], dict[str, Any]],
        result_fn: Callable[[StreamingMetric], Any] | None = None,
    ) -> None:
        self.metric = metric
        self.fetches = {name: tensor for name, tensor in fetches.items() if tensor is not None}
        self._prepare = prepare
        self._result_fn = result_fn

    def update(self, values: Arrays) -> None:
        """Accumulates one evaluation step (called from the Estimator's host thread).

        An empty batch adds nothing, as in tf.compat.v1.metrics.
        """
        prepared = self._prepare(values)
        if prepared is not None:
            self.metric.update_state(**prepared)

    def reset(self) -> None:
        """Forgets every accumulated step (the Estimator calls it when an evaluation starts)."""
        self.metric.reset_state()

    def result(self) -> Any:
        value = self._result_fn(self.metric) if self._result_fn else self.metric.result()
        return np.float64(value) if np.ndim(value) == 0 else np.asarray(value)

    def __repr__(self) -> str:
        return f"HostMetricOp({self.metric.name}, fetches={sorted(self.fetches)})"


# -- input preparation (numpy, on the host thread) ----------------------------------------------


def _squeeze_one(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """v1's ``remove_squeezable_dimensions``: drops a trailing size-1 axis from whichever has one more."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        a = a.reshape(a.shape[:-1])
    elif b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        b = b.reshape(b.shape[:-1])
    return a, b


def _flat_weights(values: Arrays, like: np.ndarray) -> np.ndarray | None:
    """Weights broadcast to ``like`` and flattened, by v1's rules.

    A trailing size-1 axis too many is dropped and one too few is added (so per-example weights
    of shape ``(batch,)`` apply to every element of ``(batch, d)`` values); then each axis must
    be 1 or match, or the weights be a scalar.
    """
    weights = values.get("weights")
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim == like.ndim + 1 and weights.shape[-1] == 1:
        weights = weights.reshape(weights.shape[:-1])
    elif weights.ndim and like.ndim == weights.ndim + 1:
        weights = weights[..., np.newaxis]
    if weights.ndim and (weights.ndim != like.ndim or any(w not in (1, n) for w, n in zip(weights.shape, like.shape))):
        raise ValueError(
            f"weights of shape {weights.shape} cannot be broadcast to the values' shape {like.shape}."
        )
    return np.broadcast_to(weights, like.shape).reshape(-1)


def _elementwise(cast: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]):
    """labels/predictions flattened element by element, with weights broadcast to them.

    Returns None for an empty batch.
    """

    def prepare(values: Arrays) -> dict[str, Any] | None:
        labels, predictions = _squeeze_one(np.asarray(values["labels"]), np.asarray(values["predictions"]))
        if labels.shape != predictions.shape:
            raise ValueError(
                f"Shapes {labels.shape} (labels) and {predictions.shape} (predictions) are incompatible."
            )
        weights = _flat_weights(values, predictions)
        if predictions.size == 0:
            return None
        labels, predictions = cast(labels, predictions)
        return {"y_true": labels.reshape(-1), "y_pred": predictions.reshape(-1), "sample_weight": weights}

    return prepare


def _same_dtype(labels: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return labels, predictions.astype(labels.dtype, copy=False)


def _as_bool(labels: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return labels.astype(bool), predictions.astype(bool).astype(np.float64)


def _scores(labels: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bool labels and float scores, passed without a copy (the engine rounds them to float32)."""
    return labels.astype(bool), predictions if predictions.dtype.kind == "f" else predictions.astype(np.float64)


def _v1_scores(labels: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bool labels and float32 scores: v1 compares ``float32(prediction) > float32(threshold)``."""
    return labels.astype(bool), predictions.astype(np.float32).astype(np.float64)


def _float32_thresholds(thresholds: Sequence[float]) -> list[float]:
    return [float(np.float32(t)) for t in thresholds]


def _rows(values: Arrays) -> dict[str, Any] | None:
    """Class-index labels against per-class scores (top-k)."""
    labels = np.asarray(values["labels"]).reshape(-1)
    if labels.size == 0:
        return None
    return {"y_true": labels, "y_pred": np.asarray(values["predictions"]), "sample_weight": _flat_weights(values, labels)}


def _mean_values(values: Arrays) -> dict[str, Any] | None:
    data = np.asarray(values["values"])
    if data.dtype.kind not in "biuf":
        raise TypeError(f"mean: values must be numbers (bool, int or float). Received: dtype={data.dtype}")
    data = data.astype(np.float64, copy=False)
    weights = _flat_weights(values, data)
    if data.size == 0:
        return None
    return {"values": data.reshape(-1), "sample_weight": weights}


def _fetches(labels: Any, predictions: Any, weights: Any, metric: str) -> dict[str, Any]:
    if labels is None or predictions is None:
        raise ValueError(
            f"bridge.metrics.{metric} needs labels and predictions. Received: "
            f"labels={'None' if labels is None else 'a tensor'}, predictions={'None' if predictions is None else 'a tensor'}"
        )
    return {"labels": labels, "predictions": predictions, "weights": weights}


# -- thresholded AUC exactly as tf.compat.v1.metrics.auc ------------------------------------------

_EPSILON = 1e-6  # v1 adds 1e-6 to the divisions (its end thresholds use another one, 1e-7)


def _inner_thresholds(num_thresholds: int) -> list[float]:
    """tf.compat.v1's thresholds without its two ends (-1e-7 and 1+1e-7, which the engine adds)."""
    return [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]


def _v1_counts(metric: AUC, num_thresholds: int) -> tuple[np.ndarray, ...]:
    """tp, fp, tn, fn at each of v1's thresholds: -1e-7, the inner ones, 1 + 1e-7.

    The engine's bucketed AUC with explicit thresholds counts a score above a threshold when
    ``float32(score) > float32(threshold)``, which is v1's comparison.
    """
    counts = metric.confusion_at_thresholds()
    keep = slice(None) if num_thresholds > 2 else [0, -1]  # drop the placeholder inner threshold
    names = ("true_positives", "false_positives", "true_negatives", "false_negatives")
    return tuple(np.asarray(counts[name], dtype=np.float64)[keep] for name in names)


def _v1_auc(metric: AUC, num_thresholds: int, curve: str, summation_method: str) -> float:
    tp, fp, tn, fn = _v1_counts(metric, num_thresholds)
    if curve == "PR" and summation_method == "careful_interpolation":
        return _careful_pr_auc(tp, fp, fn)
    recall = (tp + _EPSILON) / (tp + fn + _EPSILON)
    if curve == "ROC":
        x, y = fp / (fp + tn + _EPSILON), recall
    else:
        x, y = recall, (tp + _EPSILON) / (tp + fp + _EPSILON)
    widths = x[:-1] - x[1:]
    if summation_method == "minoring":
        heights = np.minimum(y[:-1], y[1:])
    elif summation_method == "majoring":
        heights = np.maximum(y[:-1], y[1:])
    else:
        heights = (y[:-1] + y[1:]) / 2.0
    return float(np.sum(widths * heights))


def _div_no_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1.0), 0.0)


def _careful_pr_auc(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Davis & Goadrich interpolation of the PR curve between thresholds."""
    dtp = tp[:-1] - tp[1:]
    predicted = tp + fp
    slope = _div_no_nan(dtp, np.maximum(predicted[:-1] - predicted[1:], 0.0))
    intercept = tp[1:] - slope * predicted[1:]
    both = (predicted[:-1] > 0) & (predicted[1:] > 0)
    ratio = np.where(both, _div_no_nan(predicted[:-1], np.maximum(predicted[1:], 0.0)), 1.0)
    increments = _div_no_nan(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0.0))
    return float(np.sum(increments))


# -- the public constructors -------------------------------------------------------------------


def accuracy(labels: Any, predictions: Any, weights: Any = None, name: str = "accuracy") -> HostMetricOp:
    """Fraction of elements where ``predictions`` (cast to the labels' dtype) equal ``labels``."""
    return HostMetricOp(Accuracy(name=name), _fetches(labels, predictions, weights, "accuracy"), _elementwise(_same_dtype))


def precision(labels: Any, predictions: Any, weights: Any = None, name: str = "precision") -> HostMetricOp:
    """tp / (tp + fp), labels and predictions cast to bool (0 when nothing is predicted positive)."""
    return HostMetricOp(
        Precision(thresholds=0.5, name=name), _fetches(labels, predictions, weights, "precision"), _elementwise(_as_bool)
    )


def recall(labels: Any, predictions: Any, weights: Any = None, name: str = "recall") -> HostMetricOp:
    """tp / (tp + fn), labels and predictions cast to bool."""
    from bridge.metrics.confusion import Recall

    return HostMetricOp(
        Recall(thresholds=0.5, name=name), _fetches(labels, predictions, weights, "recall"), _elementwise(_as_bool)
    )


def _count(default_name: str):
    def constructor(labels: Any, predictions: Any, weights: Any = None, name: str = default_name) -> HostMetricOp:
        return HostMetricOp(
            Precision(thresholds=0.5, name=name),
            _fetches(labels, predictions, weights, default_name),
            _elementwise(_as_bool),
            lambda metric: metric.get_state()[default_name][0],
        )

    constructor.__name__ = default_name
    constructor.__doc__ = f"Weighted count of {default_name.replace('_', ' ')} (labels and predictions cast to bool)."
    return constructor


true_positives = _count("true_positives")
false_positives = _count("false_positives")
true_negatives = _count("true_negatives")
false_negatives = _count("false_negatives")


def precision_at_thresholds(
    labels: Any, predictions: Any, thresholds: Sequence[float], weights: Any = None, name: str = "precision_at_thresholds"
) -> HostMetricOp:
    """Precision for each threshold; a prediction counts as positive when strictly above it."""
    return HostMetricOp(
        Precision(thresholds=_float32_thresholds(thresholds), name=name),
        _fetches(labels, predictions, weights, "precision_at_thresholds"),
        _elementwise(_v1_scores),
    )


def recall_at_thresholds(
    labels: Any, predictions: Any, thresholds: Sequence[float], weights: Any = None, name: str = "recall_at_thresholds"
) -> HostMetricOp:
    """Recall for each threshold; a prediction counts as positive when strictly above it."""
    from bridge.metrics.confusion import Recall

    return HostMetricOp(
        Recall(thresholds=_float32_thresholds(thresholds), name=name),
        _fetches(labels, predictions, weights, "recall_at_thresholds"),
        _elementwise(_v1_scores),
    )


_SUMMATION_METHODS = ("trapezoidal", "careful_interpolation", "minoring", "majoring")


def auc(
    labels: Any,
    predictions: Any,
    weights: Any = None,
    num_thresholds: int = 200,
    curve: str = "ROC",
    summation_method: str = "trapezoidal",
    name: str = "auc",
    thresholds: Sequence[float] | None = None,
) -> HostMetricOp:
    """Thresholded ROC or PR AUC exactly as ``tf.compat.v1.metrics.auc`` computes it.

    ``predictions`` are probabilities in [0, 1] (else the update raises ValueError, as v1's
    assertion did); labels are cast to bool. Counting costs O(log num_thresholds) per element. The curve is sampled at ``num_thresholds``
    thresholds (evenly spaced, plus -1e-7 and 1+1e-7), or at the given ``thresholds`` plus
    those two ends.
    """
    if curve not in ("ROC", "PR"):
        raise ValueError(f"curve must be either ROC or PR, {curve} unknown")
    if summation_method not in _SUMMATION_METHODS:
        raise ValueError(f"Invalid summation_method: {summation_method}. Expected one of {_SUMMATION_METHODS}.")
    if not isinstance(num_thresholds, int) or num_thresholds < 2:
        raise ValueError(f"num_thresholds must be an integer > 1. Received: num_thresholds={num_thresholds!r}")
    if thresholds is not None:
        inner = sorted(float(t) for t in thresholds)
        num_thresholds = len(inner) + 2
    else:
        inner = _inner_thresholds(num_thresholds)
    return HostMetricOp(
        AUC(thresholds=inner or [0.5], name=name),
        _fetches(labels, predictions, weights, "auc"),
        _elementwise(_scores),
        lambda metric: _v1_auc(metric, num_thresholds, curve, summation_method),
    )


def exact_auc(labels: Any, predictions: Any, weights: Any = None, curve: str = "ROC", name: str = "exact_auc") -> HostMetricOp:
    """ROC AUC (or PR AUC as average precision) over every distinct score, with no thresholds."""
    return HostMetricOp(
        AUC(num_thresholds=None, curve=curve, name=name),
        _fetches(labels, predictions, weights, "exact_auc"),
        _elementwise(_scores),
    )


def mean(values: Any, weights: Any = None, name: str = "mean") -> HostMetricOp:
    """Weighted mean of every element of ``values`` (weights broadcast to them)."""
    return HostMetricOp(Mean(name=name), {"values": values, "weights": weights}, _mean_values)


def _regression(metric_class: type, default_name: str, doc: str):
    def constructor(labels: Any, predictions: Any, weights: Any = None, name: str = default_name) -> HostMetricOp:
        return HostMetricOp(metric_class(name=name), _fetches(labels, predictions, weights, default_name), _elementwise(_as_float))

    constructor.__name__ = default_name
    constructor.__doc__ = doc
    return constructor


def _as_float(labels: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return labels.astype(np.float64, copy=False), predictions.astype(np.float64, copy=False)


mean_squared_error = _regression(MeanSquaredError, "mean_squared_error", "Running mean of the squared error per element.")
mean_absolute_error = _regression(MeanAbsoluteError, "mean_absolute_error", "Running mean of the absolute error per element.")
root_mean_squared_error = _regression(
    RootMeanSquaredError, "root_mean_squared_error", "Square root of the running mean squared error per element."
)


def confusion_matrix(labels: Any, predictions: Any, num_classes: int, weights: Any = None, name: str = "confusion_matrix") -> HostMetricOp:
    """``num_classes`` x ``num_classes`` weighted counts; rows are labels, columns predicted class ids."""
    return HostMetricOp(
        ConfusionMatrix(num_classes, name=name),
        _fetches(labels, predictions, weights, "confusion_matrix"),
        _elementwise(_same_dtype),
    )


def mean_per_class_accuracy(
    labels: Any, predictions: Any, num_classes: int, weights: Any = None, name: str = "mean_per_class_accuracy"
) -> HostMetricOp:
    """Mean over classes of each class's accuracy (classes absent from the labels count as 0)."""

    def per_class(metric: StreamingMetric) -> float:
        matrix = np.asarray(metric.result(), dtype=np.float64)
        return float(np.mean(_div_no_nan(np.diag(matrix), matrix.sum(axis=1))))

    return HostMetricOp(
        ConfusionMatrix(num_classes, name=name),
        _fetches(labels, predictions, weights, "mean_per_class_accuracy"),
        _elementwise(_same_dtype),
        per_class,
    )


def top_k_accuracy(labels: Any, predictions: Any, k: int = 5, weights: Any = None, name: str = "top_k_accuracy") -> HostMetricOp:
    """How often the class-index label is among the ``k`` highest of the per-class ``predictions``."""
    return HostMetricOp(
        SparseTopKCategoricalAccuracy(k=k, name=name), _fetches(labels, predictions, weights, "top_k_accuracy"), _rows
    )


__all__ = [
    "HostMetricOp",
    "accuracy",
    "auc",
    "confusion_matrix",
    "exact_auc",
    "false_negatives",
    "false_positives",
    "mean",
    "mean_absolute_error",
    "mean_per_class_accuracy",
    "mean_squared_error",
    "precision",
    "precision_at_thresholds",
    "recall",
    "recall_at_thresholds",
    "root_mean_squared_error",
    "top_k_accuracy",
    "true_negatives",
    "true_positives",
]
