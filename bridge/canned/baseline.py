"""``BaselineClassifier``, ``BaselineRegressor``, ``BaselineEstimator``: one bias, features ignored.

The model learns the label distribution (classifier: the class prior's logits; regressor: the
weighted mean), a baseline to compare real models with. Its variable is ``baseline/bias``, as in
2.15; the default optimizer is Ftrl with learning rate 0.3. Unlike 2.15, training from scratch
works with any number of feature keys (2.15 failed with more than one).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import tensorflow as tf

from bridge.canned import _common
from bridge.canned.heads import Head

LEARNING_RATE = 0.3


def _batch_size(features: Any) -> tf.Tensor:
    values = list(features.values()) if isinstance(features, Mapping) else [features]
    for value in values:
        if isinstance(value, tf.SparseTensor):
            return value.dense_shape[0]
        if value is not None:
            return tf.shape(tf.convert_to_tensor(value), out_type=tf.int64)[0]
    raise ValueError("BaselineEstimator needs at least one feature to know the batch size. Given: no features.")


def baseline_logits(features: Any, units: int) -> tf.Tensor:
    with tf.compat.v1.variable_scope("baseline"):
        bias = tf.compat.v1.get_variable("bias", [units], initializer=tf.compat.v1.zeros_initializer(),
                                         use_resource=True)
    return tf.tile(bias[tf.newaxis], tf.stack([_batch_size(features), 1]))


def _baseline_model_fn(head: Head, optimizer: Any) -> Callable:
    def model_fn(features, labels, mode, config):
        logits = baseline_logits(features, head.logits_dimension)
        return _common.spec_with_optimizer(head, features, labels, mode, logits, optimizer, LEARNING_RATE,
                                           tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES,
                                                                       scope="baseline/"))

    return model_fn


class BaselineEstimator(_common.CannedEstimator):
    """A baseline with any ``head`` (``tf.estimator.BaselineEstimator``)."""

    def __init__(self, head: Head, model_dir: Any = None, optimizer: Any = "Ftrl", config: Any = None) -> None:
        head = _common.check_head(head)
        super().__init__(_baseline_model_fn(head, optimizer), head, model_dir, config, None)


class BaselineClassifier(BaselineEstimator):
    """Predicts the training labels' class distribution (``tf.estimator.BaselineClassifier``)."""

    def __init__(self, model_dir: Any = None, n_classes: int = 2, weight_column: Any = None,
                 label_vocabulary: Sequence[str] | None = None, optimizer: Any = "Ftrl", config: Any = None,
                 loss_reduction: str = _common.DEFAULT_LOSS_REDUCTION) -> None:
        head = _common.classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(head, model_dir, optimizer, config)


class BaselineRegressor(BaselineEstimator):
    """Predicts the training labels' mean (``tf.estimator.BaselineRegressor``)."""

    def __init__(self, model_dir: Any = None, label_dimension: int = 1, weight_column: Any = None,
                 optimizer: Any = "Ftrl", config: Any = None,
                 loss_reduction: str = _common.DEFAULT_LOSS_REDUCTION) -> None:
        head = _common.regression_head(label_dimension, weight_column, loss_reduction)
        super().__init__(head, model_dir, optimizer, config)
