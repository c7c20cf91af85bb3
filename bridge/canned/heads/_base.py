"""``Head``: what a model's logits mean (loss, predictions, metrics, serving outputs).

A head turns the logits a network computes into everything an ``EstimatorSpec`` needs, so a
model_fn only builds the network:

    def model_fn(features, labels, mode):
        logits = ...
        return head.create_estimator_spec(features, mode, logits, labels,
                                          optimizer=keras.optimizers.Adagrad(0.05),
                                          trainable_variables=tf.compat.v1.trainable_variables())

Semantics are tf.estimator 2.15's (``tf.estimator.Head``): label and weight shapes are checked
against the logits, the training loss is reduced with ``loss_reduction`` over the weighted
per-example losses and regularization losses are added to it; the metric, prediction and
export-output keys are 2.15's. Metrics run on bridge's C++ engine (``bridge.metrics``) on the
host, with Keras's definitions, which 2.15's heads used.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from bridge import export_output
from bridge.estimator_spec import EstimatorSpec
from bridge.metrics.ops import HostMetricOp
from bridge.mode_keys import ModeKeys

DEFAULT_SERVING_KEY = "serving_default"
CLASSIFY_SERVING_KEY = "classification"
REGRESS_SERVING_KEY = "regression"
PREDICT_SERVING_KEY = "predict"

# tf.losses.Reduction's values that a head accepts (NONE is not a training loss).
SUM = "sum"
SUM_OVER_BATCH_SIZE = "sum_over_batch_size"
# tf.compat.v1.losses.Reduction's MEAN and SUM_BY_NONZERO_WEIGHTS (the tf.compat.v1.estimator classes).
WEIGHTED_MEAN = "weighted_mean"
SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
_REDUCTIONS = ("auto", SUM, SUM_OVER_BATCH_SIZE, WEIGHTED_MEAN, SUM_BY_NONZERO_WEIGHTS)


class MetricKeys:
    """Evaluation keys of the canned heads (``tf.estimator`` 2.15's names)."""

    LOSS = "loss"
    LOSS_MEAN = "average_loss"
    LOSS_REGULARIZATION = "regularization_loss"
    ACCURACY = "accuracy"
    PRECISION = "precision"
    RECALL = "recall"
    ACCURACY_BASELINE = "accuracy_baseline"
    AUC = "auc"
    AUC_PR = "auc_precision_recall"
    LABEL_MEAN = "label/mean"
    PREDICTION_MEAN = "prediction/mean"
    ACCURACY_AT_THRESHOLD = "accuracy/positive_threshold_%g"
    PRECISION_AT_THRESHOLD = "precision/positive_threshold_%g"
    RECALL_AT_THRESHOLD = "recall/positive_threshold_%g"
    PROBABILITY_MEAN_AT_CLASS = "probability_mean/class%d"
    AUC_AT_CLASS = "auc/class%d"
    AUC_PR_AT_CLASS = "auc_precision_recall/class%d"


class PredictionKeys:
    """Prediction keys of the canned heads."""

    CLASSES = "classes"
    CLASS_IDS = "class_ids"
    ALL_CLASSES = "all_classes"
    ALL_CLASS_IDS = "all_class_ids"
    LOGISTIC = "logistic"
    LOGITS = "logits"
    PREDICTIONS = "predictions"
    PROBABILITIES = "probabilities"


# -- validation -----------------------------------------------------------------------------------


def validate_loss_reduction(loss_reduction: Any) -> None:
    if loss_reduction not in _REDUCTIONS:
        raise ValueError(
            f"Invalid loss_reduction: {loss_reduction}. See `tf.losses.Reduction` for valid options."
        )


def validate_loss_fn_args(loss_fn: Callable) -> None:
    from bridge._fn_args import fn_args

    args = set(fn_args(loss_fn))
    for required in ("labels", "logits"):
        if required not in args:
            raise ValueError(f"loss_fn must contain argument: {required}. Given arguments: {tuple(sorted(args))}")
    unexpected = args - {"labels", "logits", "features", "loss_reduction"}
    if unexpected:
        raise ValueError(f"loss_fn has unexpected args: {sorted(unexpected)}")


def validate_label_vocabulary(label_vocabulary: Any, n_classes: int) -> None:
    if label_vocabulary is None:
        return
    if not isinstance(label_vocabulary, (list, tuple)):
        raise ValueError(f"label_vocabulary should be a list or a tuple. Given type: {type(label_vocabulary)}")
    if len(set(label_vocabulary)) != len(label_vocabulary):
        raise ValueError(f"label_vocabulary must not have duplicates: {label_vocabulary}")
    if len(label_vocabulary) != n_classes:
        raise ValueError(
            f"label_vocabulary has {len(label_vocabulary)} entries but n_classes is {n_classes}: "
            f"{label_vocabulary}"
        )


# -- tensors --------------------------------------------------------------------------------------


def check_logits(logits: Any, dimension: int) -> tf.Tensor:
    """logits as float32 of shape ``[D0, ... DN, dimension]`` (checked statically where known)."""
    logits = tf.cast(logits, tf.float32)
    shape = logits.shape
    if shape.rank is not None and shape.rank < 2:
        raise ValueError(f"logits must have rank at least 2.  Received rank {shape.rank}, shape {tuple(shape)}")
    if shape.rank is not None and shape[-1] is not None and shape[-1] != dimension:
        raise ValueError(f"logits shape must be [D0, D1, ... DN, logits_dimension], got {shape}.")
    return logits


def dense_labels(labels: Any, logits: tf.Tensor, dimension: int) -> tf.Tensor:
    """labels reshaped to ``logits.shape[:-1] + [dimension]`` and checked against the logits."""
    if labels is None:
        raise ValueError("You must provide a labels Tensor. Given: None. Suggested troubleshooting steps: "
                         "Check that your data contain your label feature. Check that your input_fn "
                         "properly parses and returns labels.")
    if isinstance(labels, tf.SparseTensor):
        raise ValueError(f"SparseTensor labels are not supported. labels must be a Tensor of shape "
                         f"[D0, D1, ... DN, {dimension}], e.g. [batch_size, {dimension}].")
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank is not None and logits.shape.rank is not None and labels.shape.rank == logits.shape.rank - 1:
        labels = tf.expand_dims(labels, -1)
    if labels.shape.rank is not None and labels.shape[-1] is not None and labels.shape[-1] != dimension:
        raise ValueError(f"Mismatched label shape. Expected labels dimension={dimension}.  Received {labels.shape[-1]}")
    expected = tf.concat([tf.shape(logits)[:-1], [dimension]], axis=0)
    check = tf.debugging.assert_equal(
        expected, tf.shape(labels),
        message=f"labels shape must be [D0, D1, ... DN, {dimension}]. expected_labels_shape vs labels_shape")
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def check_label_range(labels: tf.Tensor, n_classes: int, message: str | None = None) -> tf.Tensor:
    """Fails the step (InvalidArgumentError, 2.15's messages) when a label is outside [0, n_classes)."""
    upper = tf.debugging.assert_less_equal(
        labels, tf.cast(n_classes - 1, labels.dtype),
        message=message or f"Labels must be <= n_classes - 1 (n_classes={n_classes})")
    lower = tf.debugging.assert_non_negative(
        labels, message=message or "Labels must be >= 0")
    with tf.control_dependencies([upper, lower]):
        return tf.identity(labels)


def refuse_string_labels(labels: tf.Tensor) -> None:
    if labels.dtype == tf.string:
        raise tf.errors.UnimplementedError(
            None, None,
            "Labels are strings, but the head has no label_vocabulary: pass label_vocabulary=[...] "
            "listing the label strings (Cast string to float is not supported).",
        )


def example_weights(features: Any, weight_column: Any, logits: tf.Tensor) -> tf.Tensor | None:
    """Per-example weights ``[D0, ... DN, 1]`` as float32 from ``features``, or None when unweighted."""
    if weight_column is None:
        return None
    if isinstance(weight_column, str):
        weight_column = tf.feature_column.numeric_column(key=weight_column, shape=(1,))
    if type(weight_column).__name__ not in ("NumericColumn", "_NumericColumn"):
        raise TypeError(
            f"Weight column must be either a string or NumericColumn. Given type: {type(weight_column)}."
        )
    if not isinstance(features, Mapping) or weight_column.key not in features:
        raise ValueError(f"Feature {weight_column.key} is not in features dictionary (weight_column).")
    raw = features[weight_column.key]
    if isinstance(raw, tf.SparseTensor):
        raise ValueError(f"The weight column {weight_column.key!r} must be dense, got a SparseTensor.")
    raw = tf.convert_to_tensor(raw)
    if not (raw.dtype.is_floating or raw.dtype.is_integer):
        raise ValueError(f"Weight column should be castable to float. Given dtype: {raw.dtype}")
    weights = tf.cast(raw, tf.float32)
    if weight_column.normalizer_fn is not None:
        weights = weight_column.normalizer_fn(weights)
    if weights.shape.rank is not None and logits.shape.rank is not None and weights.shape.rank == logits.shape.rank - 1:
        weights = tf.expand_dims(weights, -1)
    expected = tf.concat([tf.shape(logits)[:-1], [1]], axis=0)
    check = tf.debugging.assert_equal(
        expected, tf.shape(weights), message="weights shape must be [D0, D1, ... DN] or [D0, D1, ... DN, 1]")
    with tf.control_dependencies([check]):
        return tf.identity(weights, name="weights")


def training_loss(head: "Head", labels: Any, logits: Any, features: Any,
                  regularization_losses: Sequence[tf.Tensor] | None,
                  processed_labels: Callable[[tf.Tensor, Any], tf.Tensor]) -> tf.Tensor:
    """A single head's ``loss``: its unweighted loss of the processed labels, weighted and reduced by its
    ``loss_reduction``, plus the regularization losses."""
    with tf.name_scope("losses"):
        logits = check_logits(logits, head.logits_dimension)
        labels = processed_labels(logits, labels)
        unweighted, weights = head._unweighted_loss_and_weights(logits, labels, features)  # pylint: disable=protected-access
        loss = reduce_loss(unweighted, weights, head.loss_reduction)
        if regularization_losses:
            loss = loss + tf.add_n(list(regularization_losses))
        return loss


def reduce_loss(unweighted: tf.Tensor, weights: tf.Tensor | None, reduction: str) -> tf.Tensor:
    """Keras's ``compute_weighted_loss``: Σ w·l, divided by the number of losses unless ``SUM``.

    The TF1 reductions divide by the sum of the weights (``WEIGHTED_MEAN``) or by the number of
    non-zero weights (``SUM_BY_NONZERO_WEIGHTS``), each broadcast to the losses.
    """
    weighted = unweighted if weights is None else unweighted * weights
    total = tf.reduce_sum(weighted)
    if reduction == SUM:
        return total
    if reduction in (WEIGHTED_MEAN, SUM_BY_NONZERO_WEIGHTS):
        broadcast = tf.ones_like(unweighted) if weights is None else weights * tf.ones_like(unweighted)
        divisor = (tf.reduce_sum(broadcast) if reduction == WEIGHTED_MEAN
                   else tf.cast(tf.math.count_nonzero(broadcast), tf.float32))
        return tf.math.divide_no_nan(total, divisor)
    return tf.math.divide_no_nan(total, tf.cast(tf.size(weighted), tf.float32))


def call_loss_fn(loss_fn: Callable, labels: tf.Tensor, logits: tf.Tensor, features: Any, dimension: int) -> tf.Tensor:
    from bridge._fn_args import fn_args

    kwargs = {"features": features} if "features" in fn_args(loss_fn) else {}
    loss = tf.convert_to_tensor(loss_fn(labels=labels, logits=logits, **kwargs))
    expected = tf.concat([tf.shape(logits)[:-1], [dimension]], axis=0)
    check = tf.debugging.assert_equal(
        expected, tf.shape(loss), message=f"loss_fn must return Tensor of shape [D0, D1, ... DN, {dimension}]. ")
    with tf.control_dependencies([check]):
        return tf.identity(loss)


def all_class_ids(logits: tf.Tensor, n_classes: int) -> tf.Tensor:
    return tf.tile(tf.range(n_classes)[tf.newaxis], [tf.shape(logits)[0], 1])


def all_classes(logits: tf.Tensor, n_classes: int, label_vocabulary: Sequence[str] | None = None) -> tf.Tensor:
    if label_vocabulary:
        names = tf.constant([list(label_vocabulary)])
    else:
        names = tf.strings.as_string(tf.range(n_classes)[tf.newaxis])
    return tf.tile(names, [tf.shape(logits)[0], 1])


def classification_output(scores: tf.Tensor, n_classes: int, label_vocabulary: Sequence[str] | None = None):
    return export_output.ClassificationOutput(scores=scores, classes=all_classes(scores, n_classes, label_vocabulary))


def class_export_outputs(predictions: Mapping[str, tf.Tensor], n_classes: int,
                         label_vocabulary: Sequence[str] | None) -> dict[str, Any]:
    """A class-scoring head's signatures: ``serving_default`` and ``classification`` (probabilities with every
    class name), ``predict`` (every prediction)."""
    classification = classification_output(predictions[PredictionKeys.PROBABILITIES], n_classes, label_vocabulary)
    return {
        DEFAULT_SERVING_KEY: classification,
        CLASSIFY_SERVING_KEY: classification,
        PREDICT_SERVING_KEY: export_output.PredictOutput(predictions),
    }


# -- metrics on the host --------------------------------------------------------------------------


def _broadcast_weights(values: dict, like: np.ndarray) -> np.ndarray | None:
    weights = values.get("weights")
    if weights is None:
        return None
    return np.broadcast_to(np.asarray(weights, np.float64), like.shape).reshape(-1)


def _pairs(values: dict) -> dict | None:
    y_true = np.asarray(values["labels"])
    y_pred = np.asarray(values["predictions"])
    if y_pred.size == 0:
        return None
    y_true = np.broadcast_to(y_true, y_pred.shape)
    return {"y_true": y_true.reshape(-1), "y_pred": y_pred.reshape(-1), "sample_weight": _broadcast_weights(values, y_pred)}


def _means(values: dict) -> dict | None:
    data = np.asarray(values["values"], np.float64)
    if data.size == 0:
        return None
    return {"values": data.reshape(-1), "sample_weight": _broadcast_weights(values, data)}


def feed_pairs(metric: Any, labels: tf.Tensor, predictions: tf.Tensor, weights: tf.Tensor | None,
               result_fn: Callable | None = None) -> HostMetricOp:
    """``metric`` (a ``bridge.metrics`` object) fed ``(labels, predictions, weights)`` every eval step."""
    return HostMetricOp(metric, {"labels": labels, "predictions": predictions, "weights": weights}, _pairs, result_fn)


def feed_values(metric: Any, values: tf.Tensor, weights: tf.Tensor | None = None,
                result_fn: Callable | None = None) -> HostMetricOp:
    """A mean-like ``metric`` fed ``values`` (weights broadcast to them) every eval step."""
    return HostMetricOp(metric, {"values": values, "weights": weights}, _means, result_fn)


def auc_metric(name: str, curve: str = "ROC", exact: bool = False, summation_method: str = "interpolation") -> Any:
    """Keras's AUC with 200 thresholds (what 2.15's heads reported), or the exact area when ``exact``.

    ``summation_method="trapezoidal"``: tf.compat.v1.metrics.auc's area (2.15's TF1 heads).
    """
    from bridge.metrics import AUC

    if exact:
        return AUC(num_thresholds=None, curve=curve, name=name)
    return AUC(num_thresholds=200, curve=curve, name=name, summation_method=summation_method)


_THRESHOLD_KEYS = (MetricKeys.ACCURACY_AT_THRESHOLD, MetricKeys.PRECISION_AT_THRESHOLD, MetricKeys.RECALL_AT_THRESHOLD)


def threshold_metrics(summary_key: Callable[[str], str], thresholds: Sequence[float]) -> dict[str, Any]:
    """``accuracy/positive_threshold_<t>`` and the precision and recall keys like it."""
    from bridge.metrics import BinaryAccuracy, Precision, Recall

    metrics = {}
    for t in thresholds:
        accuracy, precision, recall = (pattern % t for pattern in _THRESHOLD_KEYS)
        metrics[summary_key(accuracy)] = BinaryAccuracy(threshold=t, name=accuracy)
        metrics[summary_key(precision)] = Precision(thresholds=t, name=precision)
        metrics[summary_key(recall)] = Recall(thresholds=t, name=recall)
    return metrics


def feed_threshold_metrics(eval_metrics: dict, summary_key: Callable[[str], str], thresholds: Sequence[float],
                           labels: tf.Tensor, probabilities: tf.Tensor, weights: tf.Tensor | None) -> dict:
    return {summary_key(pattern % t): feed_pairs(eval_metrics[summary_key(pattern % t)], labels, probabilities, weights)
            for t in thresholds for pattern in _THRESHOLD_KEYS}


# -- the base class -------------------------------------------------------------------------------


class Head(abc.ABC):
    """Interface of a head (``tf.estimator.Head``): subclass it to define a model's output.

    A subclass implements ``name``, ``logits_dimension``, ``loss_reduction``, ``loss``,
    ``predictions``, ``metrics`` and ``update_metrics``; ``create_estimator_spec`` then builds the
    EstimatorSpec of every mode from them.
    """

    @property
    @abc.abstractmethod
    def name(self) -> str | None:
        """The head's name; it suffixes metric and summary keys (``"auc/<name>"``)."""

    @property
    @abc.abstractmethod
    def logits_dimension(self) -> int:
        """Size of the last dimension of the logits the head expects."""

    @property
    def loss_reduction(self) -> str:
        """How the training loss is reduced over the batch (``tf.losses.Reduction`` value)."""
        return SUM_OVER_BATCH_SIZE

    @abc.abstractmethod
    def loss(self, labels: Any, logits: Any, features: Any = None, mode: str | None = None,
             regularization_losses: Sequence[tf.Tensor] | None = None) -> tf.Tensor:
        """The scalar training loss: reduced weighted loss plus the regularization losses."""

    @abc.abstractmethod
    def predictions(self, logits: Any, keys: Sequence[str] | None = None) -> dict[str, tf.Tensor]:
        """The prediction tensors by key (all of the head's keys when ``keys`` is None)."""

    @abc.abstractmethod
    def metrics(self, regularization_losses: Sequence[tf.Tensor] | None = None) -> dict[str, Any]:
        """The head's metric objects by evaluation key, not yet fed."""

    @abc.abstractmethod
    def update_metrics(self, eval_metrics: dict[str, Any], features: Any, logits: Any, labels: Any,
                       mode: str | None = None, regularization_losses: Sequence[tf.Tensor] | None = None
                       ) -> dict[str, Any]:
        """Feeds the metrics one batch; returns the ``eval_metric_ops`` for the EstimatorSpec.

        The arguments are 2.15's ``Head.update_metrics``'s (its concrete heads, like bridge's,
        take no ``mode``); the runtime passes ``regularization_losses`` by keyword.
        """

    def _summary_key(self, key: str) -> str:
        return f"{key}/{self.name}" if self.name else key

    def _export_outputs(self, predictions: dict[str, tf.Tensor]) -> dict[str, Any]:
        """Serving signatures of the predictions (here: all of them, as ``serving_default`` and ``predict``)."""
        output = export_output.PredictOutput(predictions)
        return {DEFAULT_SERVING_KEY: output, PREDICT_SERVING_KEY: output}

    def create_estimator_spec(
        self,
        features: Any,
        mode: str,
        logits: Any,
        labels: Any = None,
        optimizer: Any = None,
        trainable_variables: Sequence[tf.Variable] | None = None,
        train_op_fn: Callable[[tf.Tensor], Any] | None = None,
        update_ops: Sequence[Any] | None = None,
        regularization_losses: Sequence[tf.Tensor] | None = None,
    ) -> EstimatorSpec:
        """The EstimatorSpec of ``mode`` for these logits.

        In TRAIN exactly one of ``optimizer`` (a Keras 3 optimizer, with ``trainable_variables``)
        and ``train_op_fn`` (``loss -> train_op``) builds the update; ``update_ops`` (e.g. batch
        norm statistics) run with it. An ``optimizer`` step also counts in the global step.
        """
        if optimizer is not None:
            from bridge.canned import _optimizers

            _optimizers.note_optimizer(optimizer)
        with tf.name_scope(self.name or "head"):
            predictions = self.predictions(logits)
            if mode == ModeKeys.PREDICT:
                return EstimatorSpec(mode, predictions=predictions, export_outputs=self._export_outputs(predictions))
            loss = self.loss(labels, logits, features=features, mode=mode,
                             regularization_losses=regularization_losses)
            if mode == ModeKeys.EVAL:
                metrics = self.update_metrics(self.metrics(regularization_losses), features, logits, labels,
                                              regularization_losses=regularization_losses)
                return EstimatorSpec(mode, predictions=predictions, loss=loss, eval_metric_ops=metrics)
        train_op = self._train_op(loss, optimizer, trainable_variables, train_op_fn, update_ops)
        return EstimatorSpec(mode, predictions=predictions, loss=loss, train_op=train_op)

    def _train_op(self, loss: tf.Tensor, optimizer: Any, trainable_variables: Any, train_op_fn: Any,
                  update_ops: Any) -> Any:
        if update_ops is not None and not isinstance(update_ops, (list, tuple)):
            raise ValueError(f"update_ops must be a list or tuple. Given type: {type(update_ops)}.")
        if optimizer is not None:
            if train_op_fn is not None:
                raise ValueError("train_op_fn and optimizer cannot both be set.")
            if trainable_variables is None:
                raise ValueError(f"trainable_variables cannot be None. Given {trainable_variables}")
            if not isinstance(trainable_variables, (list, tuple)):
                raise ValueError(
                    f"trainable_variables must be a list or tuple. Given type: {type(trainable_variables)}.")
            if not hasattr(optimizer, "apply_gradients"):
                raise ValueError("The given optimizer is not a tf.keras.optimizers.Optimizer instance. "
                                 f"Received optimizer of type {type(optimizer)}")
            from bridge.canned import _optimizers

            with tf.name_scope("training"):
                train_op = _optimizers.apply(optimizer, loss, trainable_variables,
                                             tf.compat.v1.train.get_or_create_global_step())
        elif train_op_fn is not None:
            train_op = train_op_fn(loss)
        else:
            raise ValueError("train_op_fn and optimizer cannot both be None.")
        if update_ops:
            train_op = tf.group(train_op, *update_ops)
        return train_op
