"""``MultiLabelHead``: any subset of ``n_classes`` labels per example (tf.estimator 2.15 semantics)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge.canned.heads import _base
from bridge.canned.heads._base import MetricKeys as K
from bridge.canned.heads._base import PredictionKeys as P
from bridge.canned.heads._classification import label_ids_from_vocabulary


class MultiLabelHead(_base.Head):
    """Independent sigmoid per class; the loss is the mean over classes of sigmoid cross-entropy.

    Labels are a multi-hot ``[D0, ... DN, n_classes]`` tensor of 0/1, or a ``SparseTensor`` of class
    ids (or, with ``label_vocabulary``, of class strings).

    Args:
      n_classes: number of labels (> 1).
      weight_column: feature key (or numeric column) of per-example weights.
      thresholds: thresholds in (0, 1) for ``accuracy/positive_threshold_<t>`` and the like.
      label_vocabulary: the class strings, for string labels and ``all_classes``.
      loss_reduction: ``'sum_over_batch_size'`` (default) or ``'sum'``.
      loss_fn: ``loss_fn(labels, logits[, features])`` returning losses ``[D0, ... DN, 1]``.
      classes_for_class_based_metrics: class ids (or strings of ``label_vocabulary``) that get
        ``probability_mean``, ``auc`` and ``auc_precision_recall`` of their own.
      name: suffix of the metric keys and name scope.
      exact_auc: bridge's opt-in: every AUC over every distinct score instead of 200 thresholds.
    """

    def __init__(self, n_classes: int, weight_column: Any = None, thresholds: Sequence[float] | None = None,
                 label_vocabulary: Sequence[str] | None = None, loss_reduction: str = _base.SUM_OVER_BATCH_SIZE,
                 loss_fn: Callable | None = None, classes_for_class_based_metrics: Sequence[Any] | None = None,
                 name: str | None = None, exact_auc: bool = False) -> None:
        if n_classes is None or n_classes < 2:
            raise ValueError(f"n_classes must be > 1 for multi-label classification. Given: {n_classes}")
        thresholds = tuple(thresholds) if thresholds else ()
        for threshold in thresholds:
            if threshold <= 0.0 or threshold >= 1.0:
                raise ValueError(f"thresholds must be in (0, 1) range. Given: {threshold}")
        if label_vocabulary is not None:
            if not isinstance(label_vocabulary, (list, tuple)):
                raise ValueError(f"label_vocabulary must be a list or tuple. Given type: {type(label_vocabulary)}")
            if len(label_vocabulary) != n_classes:
                raise ValueError(
                    f"Length of label_vocabulary must be n_classes ({n_classes}). Given: {len(label_vocabulary)}")
        if loss_fn:
            _base.validate_loss_fn_args(loss_fn)
        _base.validate_loss_reduction(loss_reduction)
        self._class_metric_keys = self._class_metrics(classes_for_class_based_metrics, label_vocabulary, n_classes)
        self._n_classes = n_classes
        self._weight_column = weight_column
        self._thresholds = thresholds
        self._label_vocabulary = list(label_vocabulary) if label_vocabulary is not None else None
        self._loss_reduction = loss_reduction
        self._loss_fn = loss_fn
        self._name = name
        self._exact_auc = exact_auc

    @staticmethod
    def _class_metrics(classes: Any, vocabulary: Any, n_classes: int) -> list[tuple[int, str]]:
        """(class id, what its metric keys are suffixed with) for each class with metrics of its own."""
        out = []
        for value in tuple(classes or ()):
            if isinstance(value, str):
                if not vocabulary:
                    raise ValueError("label_vocabulary must be provided when classes_for_class_based_metrics are strings.")
                out.append((list(vocabulary).index(value), value))
            else:
                if value < 0 or value >= n_classes:
                    raise ValueError(
                        f"All classes_for_class_based_metrics must be in range [0, {n_classes - 1}]. Given: {value}")
                out.append((int(value), f"class{int(value)}"))
        return out

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def logits_dimension(self) -> int:
        return self._n_classes

    @property
    def loss_reduction(self) -> str:
        return self._loss_reduction

    def _processed_labels(self, logits: tf.Tensor, labels: Any) -> tf.Tensor:
        """Labels as an int64 multi-hot ``[D0, ... DN, n_classes]`` tensor."""
        if labels is None:
            return _base.dense_labels(labels, logits, self._n_classes)
        if isinstance(labels, tf.SparseTensor):
            values = labels.values
            if values.dtype == tf.string:
                if self._label_vocabulary is None:
                    _base.refuse_string_labels(values)
                values = label_ids_from_vocabulary(values, self._label_vocabulary)
            elif not values.dtype.is_integer:
                raise ValueError(f"Labels dtype should be integer. Instead got {values.dtype}.")
            values = _base.check_label_range(
                tf.cast(values, tf.int64), self._n_classes,
                message=f"labels must be an integer SparseTensor with values in [0, {self._n_classes})")
            ids = tf.SparseTensor(labels.indices, values, labels.dense_shape)
            labels = tf.cast(tf.sparse.to_indicator(ids, self._n_classes), tf.int64)
        else:
            labels = _base.check_label_range(
                tf.convert_to_tensor(labels), 2, message="labels must be an integer indicator Tensor with values in [0, 1]")
        return _base.dense_labels(labels, logits, self._n_classes)

    def _unweighted_loss_and_weights(self, logits, labels, features):
        if self._loss_fn:
            loss = _base.call_loss_fn(self._loss_fn, labels, logits, features, 1)
        else:
            loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32), logits=logits)
            loss = tf.reduce_mean(loss, axis=-1, keepdims=True)
        return loss, _base.example_weights(features, self._weight_column, logits)

    def loss(self, labels, logits, features=None, mode=None, regularization_losses=None):
        return _base.training_loss(self, labels, logits, features, regularization_losses, self._processed_labels)

    _KEYS = (P.LOGITS, P.PROBABILITIES, P.CLASSES)

    def predictions(self, logits, keys=None):
        keys = keys or self._KEYS
        for key in keys:
            if key not in self._KEYS:
                raise ValueError(f"Prediction key must be in PredictionKeys, given: {key}.Valid prediction keys include {list(self._KEYS)}.")
        logits = _base.check_logits(logits, self._n_classes)
        with tf.name_scope("predictions"):
            out = {}
            if P.LOGITS in keys:
                out[P.LOGITS] = logits
            if P.PROBABILITIES in keys:
                out[P.PROBABILITIES] = tf.sigmoid(logits, name=P.PROBABILITIES)
            if P.CLASSES in keys:
                out[P.CLASSES] = _base.all_classes(logits, self._n_classes, self._label_vocabulary)
            return out

    def _export_outputs(self, predictions):
        return _base.class_export_outputs(predictions, self._n_classes, self._label_vocabulary)

    def metrics(self, regularization_losses=None):
        from bridge.metrics import Mean

        key, exact = self._summary_key, self._exact_auc
        metrics = {
            key(K.LOSS_MEAN): Mean(name=K.LOSS_MEAN),
            key(K.AUC): _base.auc_metric(K.AUC, exact=exact),
            key(K.AUC_PR): _base.auc_metric(K.AUC_PR, "PR", exact=exact),
        }
        if regularization_losses:
            metrics[key(K.LOSS_REGULARIZATION)] = Mean(name=K.LOSS_REGULARIZATION)
        metrics.update(_base.threshold_metrics(key, self._thresholds))
        for _, suffix in self._class_metric_keys:
            metrics[key(f"probability_mean/{suffix}")] = Mean(name=f"probability_mean/{suffix}")
            metrics[key(f"auc/{suffix}")] = _base.auc_metric(f"auc/{suffix}", exact=exact)
            metrics[key(f"auc_precision_recall/{suffix}")] = _base.auc_metric(
                f"auc_precision_recall/{suffix}", "PR", exact=exact)
        return metrics

    def update_metrics(self, eval_metrics, features, logits, labels, regularization_losses=None):
        logits = _base.check_logits(logits, self._n_classes)
        labels = self._processed_labels(logits, labels)
        unweighted, weights = self._unweighted_loss_and_weights(logits, labels, features)
        probabilities = self.predictions(logits, [P.PROBABILITIES])[P.PROBABILITIES]
        key, m = self._summary_key, eval_metrics
        ops = {
            key(K.LOSS_MEAN): _base.feed_values(m[key(K.LOSS_MEAN)], unweighted, weights),
            key(K.AUC): _base.feed_pairs(m[key(K.AUC)], labels, probabilities, weights),
            key(K.AUC_PR): _base.feed_pairs(m[key(K.AUC_PR)], labels, probabilities, weights),
        }
        if regularization_losses and key(K.LOSS_REGULARIZATION) in m:
            ops[key(K.LOSS_REGULARIZATION)] = _base.feed_values(
                m[key(K.LOSS_REGULARIZATION)], tf.add_n(list(regularization_losses)))
        ops.update(_base.feed_threshold_metrics(m, key, self._thresholds, labels, probabilities, weights))
        for class_id, suffix in self._class_metric_keys:
            class_probabilities = probabilities[..., class_id:class_id + 1]
            class_labels = labels[..., class_id:class_id + 1]
            ops[key(f"probability_mean/{suffix}")] = _base.feed_values(
                m[key(f"probability_mean/{suffix}")], class_probabilities, weights)
            for name in ("auc", "auc_precision_recall"):
                ops[key(f"{name}/{suffix}")] = _base.feed_pairs(
                    m[key(f"{name}/{suffix}")], class_labels, class_probabilities, weights)
        return ops
