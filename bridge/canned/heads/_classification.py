"""Classification heads: ``BinaryClassHead`` and ``MultiClassHead`` (tf.estimator 2.15 semantics)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge import export_output
from bridge.canned.heads import _base
from bridge.canned.heads._base import MetricKeys as K
from bridge.canned.heads._base import PredictionKeys as P


def label_ids_from_vocabulary(labels: tf.Tensor, vocabulary: Sequence[str]) -> tf.Tensor:
    """The index of each string label in ``vocabulary``; a string it does not list fails the step.

    Plain comparisons instead of a lookup table: nothing to initialise, and it exports as is.
    """
    if labels.dtype != tf.string:
        raise ValueError(f"Labels dtype should be string when label_vocabulary is given. Given: {labels.dtype}")
    matches = tf.equal(labels[..., tf.newaxis], tf.constant(list(vocabulary)))
    ids = tf.argmax(tf.cast(matches, tf.int32), axis=-1)
    known = tf.reduce_any(matches, axis=-1)
    # 2.15's message, naming the vocabulary and the strings it lacks
    check = tf.debugging.Assert(
        tf.reduce_all(known),
        [f"Labels must be >= 0: labels not in label_vocabulary ({', '.join(vocabulary)}):",
         tf.boolean_mask(labels, tf.logical_not(known))], summarize=10)
    with tf.control_dependencies([check]):
        return tf.where(known, ids, tf.constant(-1, tf.int64))


def class_names(class_ids: tf.Tensor, vocabulary: Sequence[str] | None) -> tf.Tensor:
    if vocabulary:
        return tf.gather(tf.constant(list(vocabulary)), class_ids)
    return tf.strings.as_string(class_ids, name="str_classes")


class _ClassHead(_base.Head):
    """What the two single-label classification heads share."""

    _n_classes: int

    def __init__(self, weight_column: Any, label_vocabulary: Any, loss_reduction: str, loss_fn: Callable | None,
                 name: str | None) -> None:
        if label_vocabulary is not None and not isinstance(label_vocabulary, (list, tuple)):
            raise ValueError(f"label_vocabulary should be a list or a tuple. Given type: {type(label_vocabulary)}")
        _base.validate_loss_reduction(loss_reduction)
        if loss_fn:
            _base.validate_loss_fn_args(loss_fn)
        self._weight_column = weight_column
        self._label_vocabulary = list(label_vocabulary) if label_vocabulary is not None else None
        self._loss_reduction = loss_reduction
        self._loss_fn = loss_fn
        self._name = name

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def loss_reduction(self) -> str:
        return self._loss_reduction

    def _label_ids(self, logits: tf.Tensor, labels: Any) -> tf.Tensor:
        """Labels as int64 class ids of shape ``[D0, ... DN, 1]``, range-checked."""
        labels = _base.dense_labels(labels, logits, 1)
        if self._label_vocabulary is not None:
            labels = label_ids_from_vocabulary(labels, self._label_vocabulary)
        else:
            _base.refuse_string_labels(labels)
        return labels

    def _unweighted_loss_and_weights(self, logits: tf.Tensor, label_ids: tf.Tensor, features: Any):
        if self._loss_fn:
            loss = _base.call_loss_fn(self._loss_fn, label_ids, logits, features, 1)
        else:
            loss = self._default_loss(label_ids, logits)
        return loss, _base.example_weights(features, self._weight_column, logits)

    def _default_loss(self, label_ids: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def loss(self, labels, logits, features=None, mode=None, regularization_losses=None):
        return _base.training_loss(self, labels, logits, features, regularization_losses, self._label_ids)

    def _class_outputs(self, class_ids: tf.Tensor, logits: tf.Tensor, keys: Sequence[str]) -> dict[str, tf.Tensor]:
        out = {}
        if P.CLASS_IDS in keys:
            out[P.CLASS_IDS] = class_ids
        if P.CLASSES in keys:
            out[P.CLASSES] = class_names(class_ids, self._label_vocabulary)
        if P.ALL_CLASS_IDS in keys:
            out[P.ALL_CLASS_IDS] = _base.all_class_ids(logits, self._n_classes)
        if P.ALL_CLASSES in keys:
            out[P.ALL_CLASSES] = _base.all_classes(logits, self._n_classes, self._label_vocabulary)
        return out

    def _check_keys(self, keys: Sequence[str] | None, valid: Sequence[str]) -> Sequence[str]:
        if not keys:
            return valid
        for key in keys:
            if key not in valid:
                raise ValueError(f"Prediction key must be in PredictionKeys, given: {key}.Valid prediction keys include {list(valid)}.")
        return keys

    def _regularization_metric(self, metrics: dict, regularization_losses: Any) -> None:
        if regularization_losses:
            from bridge.metrics import Mean

            metrics[self._summary_key(K.LOSS_REGULARIZATION)] = Mean(name=K.LOSS_REGULARIZATION)

    def _feed_regularization(self, ops: dict, eval_metrics: dict, regularization_losses: Any) -> None:
        key = self._summary_key(K.LOSS_REGULARIZATION)
        if regularization_losses and key in eval_metrics:
            ops[key] = _base.feed_values(eval_metrics[key], tf.add_n(list(regularization_losses)))


class BinaryClassHead(_ClassHead):
    """Two classes, one logit: sigmoid cross-entropy (``tf.estimator.BinaryClassHead``).

    Args:
      weight_column: feature key (or numeric column) of per-example weights.
      thresholds: extra thresholds in (0, 1) for ``accuracy/positive_threshold_<t>`` and the
        precision/recall keys like it.
      label_vocabulary: the two label strings, when labels are strings.
      loss_reduction: ``'sum_over_batch_size'`` (default) or ``'sum'``.
      loss_fn: ``loss_fn(labels, logits[, features])`` returning unreduced losses ``[D0, ... DN, 1]``.
      name: suffix of the metric keys and name scope (for ``MultiHead``).
      exact_auc: bridge's opt-in: ``auc`` and ``auc_precision_recall`` over every distinct score
        instead of Keras's 200 thresholds (2.15's values, the default).
    """

    _n_classes = 2
    # How auc and auc_precision_recall sum their 200-threshold curves: Keras's "interpolation"
    # (2.15's tf.estimator heads), or "trapezoidal" for tf.compat.v1.estimator's classes, whose
    # TF1 heads used tf.compat.v1.metrics.auc.
    _auc_summation = "interpolation"

    def __init__(self, weight_column: Any = None, thresholds: Sequence[float] | None = None,
                 label_vocabulary: Sequence[str] | None = None, loss_reduction: str = _base.SUM_OVER_BATCH_SIZE,
                 loss_fn: Callable | None = None, name: str | None = None, exact_auc: bool = False) -> None:
        thresholds = tuple(thresholds) if thresholds else ()
        for threshold in thresholds:
            if threshold <= 0.0 or threshold >= 1.0:
                raise ValueError(f"thresholds not in (0, 1): {(thresholds,)}.")
        super().__init__(weight_column, label_vocabulary, loss_reduction, loss_fn, name)
        if self._label_vocabulary is not None:
            _base.validate_label_vocabulary(self._label_vocabulary, 2)
        self._thresholds = thresholds
        self._exact_auc = exact_auc

    @property
    def logits_dimension(self) -> int:
        return 1

    def _label_ids(self, logits, labels):
        return tf.cast(_base.check_label_range(super()._label_ids(logits, labels), 2), tf.float32)

    def _default_loss(self, label_ids, logits):
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=label_ids, logits=logits)

    _KEYS = (P.LOGITS, P.LOGISTIC, P.PROBABILITIES, P.CLASS_IDS, P.CLASSES, P.ALL_CLASS_IDS, P.ALL_CLASSES)

    def predictions(self, logits, keys=None):
        keys = self._check_keys(keys, self._KEYS)
        logits = _base.check_logits(logits, 1)
        with tf.name_scope("predictions"):
            out = {}
            if P.LOGITS in keys:
                out[P.LOGITS] = logits
            if P.LOGISTIC in keys:
                out[P.LOGISTIC] = tf.sigmoid(logits, name=P.LOGISTIC)
            two_class_logits = tf.concat([tf.zeros_like(logits), logits], axis=-1)
            if P.PROBABILITIES in keys:
                out[P.PROBABILITIES] = tf.nn.softmax(two_class_logits, name=P.PROBABILITIES)
            class_ids = tf.argmax(two_class_logits, axis=-1)[..., tf.newaxis]
            out.update(self._class_outputs(class_ids, logits, keys))
            return out

    def _export_outputs(self, predictions):
        classification = _base.classification_output(predictions[P.PROBABILITIES], 2, self._label_vocabulary)
        return {
            _base.DEFAULT_SERVING_KEY: classification,
            _base.CLASSIFY_SERVING_KEY: classification,
            _base.REGRESS_SERVING_KEY: export_output.RegressionOutput(value=predictions[P.LOGISTIC]),
            _base.PREDICT_SERVING_KEY: export_output.PredictOutput(predictions),
        }

    def metrics(self, regularization_losses=None):
        from bridge.metrics import Accuracy, Mean, Precision, Recall

        key = self._summary_key
        metrics = {
            key(K.LOSS_MEAN): Mean(name=K.LOSS_MEAN),
            key(K.ACCURACY): Accuracy(name=K.ACCURACY),
            key(K.PRECISION): Precision(thresholds=0.5, name=K.PRECISION),
            key(K.RECALL): Recall(thresholds=0.5, name=K.RECALL),
            key(K.PREDICTION_MEAN): Mean(name=K.PREDICTION_MEAN),
            key(K.LABEL_MEAN): Mean(name=K.LABEL_MEAN),
            key(K.ACCURACY_BASELINE): Mean(name=K.ACCURACY_BASELINE),
            key(K.AUC): _base.auc_metric(K.AUC, exact=self._exact_auc, summation_method=self._auc_summation),
            key(K.AUC_PR): _base.auc_metric(K.AUC_PR, "PR", exact=self._exact_auc,
                                            summation_method=self._auc_summation),
        }
        self._regularization_metric(metrics, regularization_losses)
        metrics.update(_base.threshold_metrics(key, self._thresholds))
        return metrics

    def update_metrics(self, eval_metrics, features, logits, labels, regularization_losses=None):
        predictions = self.predictions(logits)
        logits = _base.check_logits(logits, 1)
        label_ids = self._label_ids(logits, labels)
        unweighted, weights = self._unweighted_loss_and_weights(logits, label_ids, features)
        class_ids, logistic = predictions[P.CLASS_IDS], predictions[P.LOGISTIC]
        key, m = self._summary_key, eval_metrics
        ops = {
            key(K.LOSS_MEAN): _base.feed_values(m[key(K.LOSS_MEAN)], unweighted, weights),
            key(K.ACCURACY): _base.feed_pairs(m[key(K.ACCURACY)], label_ids, class_ids, weights),
            key(K.PRECISION): _base.feed_pairs(m[key(K.PRECISION)], label_ids, class_ids, weights),
            key(K.RECALL): _base.feed_pairs(m[key(K.RECALL)], label_ids, class_ids, weights),
            key(K.PREDICTION_MEAN): _base.feed_values(m[key(K.PREDICTION_MEAN)], logistic, weights),
            key(K.LABEL_MEAN): _base.feed_values(m[key(K.LABEL_MEAN)], label_ids, weights),
            # The baseline is the accuracy of always predicting the majority label.
            key(K.ACCURACY_BASELINE): _base.feed_values(
                m[key(K.ACCURACY_BASELINE)], label_ids, weights, lambda mean: max(mean.result(), 1 - mean.result())),
            key(K.AUC): _base.feed_pairs(m[key(K.AUC)], label_ids, logistic, weights),
            key(K.AUC_PR): _base.feed_pairs(m[key(K.AUC_PR)], label_ids, logistic, weights),
        }
        self._feed_regularization(ops, m, regularization_losses)
        ops.update(_base.feed_threshold_metrics(m, key, self._thresholds, label_ids, logistic, weights))
        return ops


class MultiClassHead(_ClassHead):
    """``n_classes`` > 2 exclusive classes: softmax cross-entropy (``tf.estimator.MultiClassHead``).

    Labels are class ids in ``[0, n_classes)`` or, with ``label_vocabulary``, strings from it.
    """

    def __init__(self, n_classes: int, weight_column: Any = None, label_vocabulary: Sequence[str] | None = None,
                 loss_reduction: str = _base.SUM_OVER_BATCH_SIZE, loss_fn: Callable | None = None,
                 name: str | None = None) -> None:
        if n_classes is None:
            raise ValueError("n_classes cannot be None")
        if label_vocabulary is not None and not isinstance(label_vocabulary, (list, tuple)):
            raise ValueError(f"label_vocabulary should be a list or a tuple. Given type: {type(label_vocabulary)}")
        if label_vocabulary is not None and len(label_vocabulary) != n_classes:
            raise ValueError(
                '"label_vocabulary" does not have "n_classes" items. '
                f"len(label_vocabulary)={len(label_vocabulary)}, n_classes={n_classes}, "
                f"label_vocabulary={label_vocabulary}"
            )
        if isinstance(n_classes, int) and n_classes <= 2:
            raise ValueError(f"n_classes must be > 2: {n_classes}.")
        super().__init__(weight_column, label_vocabulary, loss_reduction, loss_fn, name)
        self._n_classes = n_classes

    @property
    def logits_dimension(self) -> int:
        return self._n_classes

    def _label_ids(self, logits, labels):
        ids = super()._label_ids(logits, labels)
        if not ids.dtype.is_integer:
            raise ValueError(f"Labels dtype should be integer. Instead got {ids.dtype}.")
        return _base.check_label_range(tf.cast(ids, tf.int64), self._n_classes)

    def _default_loss(self, label_ids, logits):
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.squeeze(label_ids, -1), logits=logits)
        return loss[..., tf.newaxis]

    _KEYS = (P.LOGITS, P.PROBABILITIES, P.CLASS_IDS, P.CLASSES, P.ALL_CLASS_IDS, P.ALL_CLASSES)

    def predictions(self, logits, keys=None):
        keys = self._check_keys(keys, self._KEYS)
        logits = _base.check_logits(logits, self._n_classes)
        with tf.name_scope("predictions"):
            out = {}
            if P.LOGITS in keys:
                out[P.LOGITS] = logits
            if P.PROBABILITIES in keys:
                out[P.PROBABILITIES] = tf.nn.softmax(logits, name=P.PROBABILITIES)
            class_ids = tf.argmax(logits, axis=-1)[..., tf.newaxis]
            out.update(self._class_outputs(class_ids, logits, keys))
            return out

    def _export_outputs(self, predictions):
        return _base.class_export_outputs(predictions, self._n_classes, self._label_vocabulary)

    def metrics(self, regularization_losses=None):
        from bridge.metrics import Accuracy, Mean

        metrics = {
            self._summary_key(K.LOSS_MEAN): Mean(name=K.LOSS_MEAN),
            self._summary_key(K.ACCURACY): Accuracy(name=K.ACCURACY),
        }
        self._regularization_metric(metrics, regularization_losses)
        return metrics

    def update_metrics(self, eval_metrics, features, logits, labels, regularization_losses=None):
        class_ids = self.predictions(logits, [P.CLASS_IDS])[P.CLASS_IDS]
        logits = _base.check_logits(logits, self._n_classes)
        label_ids = self._label_ids(logits, labels)
        unweighted, weights = self._unweighted_loss_and_weights(logits, label_ids, features)
        key, m = self._summary_key, eval_metrics
        ops = {
            key(K.LOSS_MEAN): _base.feed_values(m[key(K.LOSS_MEAN)], unweighted, weights),
            key(K.ACCURACY): _base.feed_pairs(m[key(K.ACCURACY)], label_ids, class_ids, weights),
        }
        self._feed_regularization(ops, m, regularization_losses)
        return ops
