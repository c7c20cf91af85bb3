"""Regression heads: ``RegressionHead``, ``PoissonRegressionHead``, ``LogisticRegressionHead``."""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from bridge import export_output
from bridge.canned.heads import _base
from bridge.canned.heads._base import MetricKeys as K
from bridge.canned.heads._base import PredictionKeys as P


class RegressionHead(_base.Head):
    """Real-valued labels of ``label_dimension`` values; mean squared error by default.

    Args:
      label_dimension: number of regression targets per example.
      weight_column: feature key (or numeric column) of per-example weights.
      loss_reduction: ``'sum_over_batch_size'`` (default: Σ w·l / (batch · label_dimension)) or ``'sum'``.
      loss_fn: ``loss_fn(labels, logits[, features])`` returning unreduced losses
        ``[D0, ... DN, label_dimension]``.
      inverse_link_fn: maps logits to ``predictions`` (then ``logits`` is a prediction key too).
      name: suffix of the metric keys and name scope.
    """

    def __init__(self, label_dimension: int = 1, weight_column: Any = None,
                 loss_reduction: str = _base.SUM_OVER_BATCH_SIZE, loss_fn: Callable | None = None,
                 inverse_link_fn: Callable | None = None, name: str | None = None) -> None:
        if label_dimension < 1:
            raise ValueError(f"Invalid label_dimension {label_dimension}.")
        _base.validate_loss_reduction(loss_reduction)
        if loss_fn:
            _base.validate_loss_fn_args(loss_fn)
        self._logits_dimension = label_dimension
        self._weight_column = weight_column
        self._loss_reduction = loss_reduction
        self._loss_fn = loss_fn
        self._inverse_link_fn = inverse_link_fn
        self._name = name

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def logits_dimension(self) -> int:
        return self._logits_dimension

    @property
    def loss_reduction(self) -> str:
        return self._loss_reduction

    def _processed_labels(self, logits: tf.Tensor, labels: Any) -> tf.Tensor:
        labels = _base.dense_labels(labels, logits, self._logits_dimension)
        _base.refuse_string_labels(labels)
        return tf.cast(labels, tf.float32)

    def _unweighted_loss_and_weights(self, logits, labels, features):
        if self._loss_fn:
            loss = _base.call_loss_fn(self._loss_fn, labels, logits, features, self._logits_dimension)
        else:
            loss = tf.math.squared_difference(logits, labels)
        return loss, _base.example_weights(features, self._weight_column, logits)

    def loss(self, labels, logits, features=None, mode=None, regularization_losses=None):
        return _base.training_loss(self, labels, logits, features, regularization_losses, self._processed_labels)

    def predictions(self, logits, keys=None):
        logits = _base.check_logits(logits, self._logits_dimension)
        with tf.name_scope("predictions"):
            if self._inverse_link_fn:
                return {P.PREDICTIONS: self._inverse_link_fn(logits), P.LOGITS: logits}
            return {P.PREDICTIONS: logits}

    def _export_outputs(self, predictions):
        regression = export_output.RegressionOutput(value=predictions[P.PREDICTIONS])
        return {
            _base.DEFAULT_SERVING_KEY: regression,
            _base.REGRESS_SERVING_KEY: regression,
            _base.PREDICT_SERVING_KEY: export_output.PredictOutput(predictions),
        }

    def metrics(self, regularization_losses=None):
        from bridge.metrics import Mean

        metrics = {self._summary_key(k): Mean(name=k) for k in (K.LOSS_MEAN, K.PREDICTION_MEAN, K.LABEL_MEAN)}
        if regularization_losses:
            metrics[self._summary_key(K.LOSS_REGULARIZATION)] = Mean(name=K.LOSS_REGULARIZATION)
        return metrics

    def update_metrics(self, eval_metrics, features, logits, labels, regularization_losses=None):
        predicted = self.predictions(logits)[P.PREDICTIONS]
        logits = _base.check_logits(logits, self._logits_dimension)
        labels = self._processed_labels(logits, labels)
        unweighted, weights = self._unweighted_loss_and_weights(logits, labels, features)
        key, m = self._summary_key, eval_metrics
        ops = {
            key(K.LOSS_MEAN): _base.feed_values(m[key(K.LOSS_MEAN)], unweighted, weights),
            key(K.LABEL_MEAN): _base.feed_values(m[key(K.LABEL_MEAN)], labels, weights),
            key(K.PREDICTION_MEAN): _base.feed_values(m[key(K.PREDICTION_MEAN)], predicted, weights),
        }
        if regularization_losses and key(K.LOSS_REGULARIZATION) in m:
            ops[key(K.LOSS_REGULARIZATION)] = _base.feed_values(
                m[key(K.LOSS_REGULARIZATION)], tf.add_n(list(regularization_losses)))
        return ops


class PoissonRegressionHead(RegressionHead):
    """Counts: ``tf.nn.log_poisson_loss`` on log-rate logits; ``predictions = exp(logits)``."""

    def __init__(self, label_dimension: int = 1, weight_column: Any = None,
                 loss_reduction: str = _base.SUM_OVER_BATCH_SIZE, compute_full_loss: bool = True,
                 name: str | None = None) -> None:
        self._compute_full_loss = compute_full_loss
        super().__init__(label_dimension, weight_column, loss_reduction, self._poisson_loss, tf.math.exp, name)

    def _poisson_loss(self, labels, logits):
        return tf.nn.log_poisson_loss(targets=labels, log_input=logits, compute_full_loss=self._compute_full_loss)


class LogisticRegressionHead(RegressionHead):
    """Labels in [0, 1]: sigmoid cross-entropy; ``predictions = sigmoid(logits)``."""

    def __init__(self, weight_column: Any = None, loss_reduction: str = _base.SUM_OVER_BATCH_SIZE,
                 name: str | None = None) -> None:
        super().__init__(1, weight_column, loss_reduction, self._logistic_loss, tf.math.sigmoid, name)

    def _logistic_loss(self, labels, logits):
        labels = _base.check_label_range(labels, 2, message="Labels must be in range [0, 1]")
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
