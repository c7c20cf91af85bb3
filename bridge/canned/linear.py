"""``LinearClassifier``, ``LinearRegressor``, ``LinearEstimator``: weighted sums of feature columns.

Variables carry tf.estimator 2.15's names (``linear/linear_model/<column>/weights``,
``linear/linear_model/bias_weights``). The default optimizer is Ftrl with learning rate 0.2, as
2.15 measured (any optimizer name gets 0.2).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge.canned import _common, _feature_columns, _summaries
from bridge.canned.heads import Head
from bridge.mode_keys import ModeKeys

LEARNING_RATE = 0.2


def linear_logits(features: Any, feature_columns: tuple, units: int, sparse_combiner: str,
                  summary_prefix: str | None = None) -> tf.Tensor:
    """The model's logits under ``linear/``; with a ``summary_prefix`` (TRAIN) it writes 2.15's
    ``<prefix>/bias`` and ``<prefix>/fraction_of_zero_weights`` summaries."""
    _feature_columns.validate_features(features)
    with tf.compat.v1.variable_scope("linear"):
        logits = _feature_columns.linear_logits(features, feature_columns, units, sparse_combiner)
    if summary_prefix is not None:
        _summaries.linear_weights(_feature_columns.trainable_variables("linear"), summary_prefix)
    return logits


def linear_logit_fn_builder(units: int, feature_columns: Any, sparse_combiner: str = "sum") -> Callable:
    """``tf.compat.v1.estimator.experimental.linear_logit_fn_builder``: the canned linear model as
    ``logit_fn(features)``, its variables ``linear_model/<column>/weights`` in the caller's scope."""
    if not isinstance(units, int):
        raise ValueError(f"units must be an int.  Given type: {type(units)}")
    columns = _feature_columns.normalize_columns(feature_columns)

    def linear_logit_fn(features):
        _feature_columns.validate_features(features)
        return _feature_columns.linear_logits(features, columns, units, sparse_combiner)

    return linear_logit_fn


def _linear_model_fn(head: Head, feature_columns: tuple, optimizer: Any, sparse_combiner: str) -> Callable:
    def model_fn(features, labels, mode, config):
        logits = linear_logits(features, feature_columns, head.logits_dimension, sparse_combiner,
                               summary_prefix="" if mode == ModeKeys.TRAIN else None)
        return _common.spec_with_optimizer(head, features, labels, mode, logits, optimizer, LEARNING_RATE,
                                           _feature_columns.trainable_variables("linear"))

    return model_fn


class LinearEstimator(_common.CannedEstimator):
    """A linear model with any ``head`` (``tf.estimator.LinearEstimator``).

    Args:
      head: a ``bridge.Head``.
      feature_columns: ``tf.feature_column`` columns of any kind (categorical columns get one
        weight per bucket; crossed columns one per hashed cross).
      optimizer: ``'Ftrl'`` (default, learning rate 0.2), another name, a Keras 3 optimizer or a
        callable returning one.
      sparse_combiner: how a multivalent categorical column's weights combine: ``'sum'``,
        ``'mean'`` or ``'sqrtn'``.
    """

    def __init__(self, head: Head, feature_columns: Any, model_dir: Any = None, optimizer: Any = "Ftrl",
                 config: Any = None, sparse_combiner: str = "sum", warm_start_from: Any = None) -> None:
        head = _common.check_head(head)
        model_fn = _linear_model_fn(head, _feature_columns.normalize_columns(feature_columns), optimizer or "Ftrl",
                                    sparse_combiner)
        super().__init__(model_fn, head, model_dir, config, warm_start_from)


class LinearClassifier(LinearEstimator):
    """A linear classifier (``tf.estimator.LinearClassifier``): logistic regression for 2 classes."""

    def __init__(self, feature_columns: Any, model_dir: Any = None, n_classes: int = 2, weight_column: Any = None,
                 label_vocabulary: Sequence[str] | None = None, optimizer: Any = "Ftrl", config: Any = None,
                 warm_start_from: Any = None, loss_reduction: str = _common.DEFAULT_LOSS_REDUCTION,
                 sparse_combiner: str = "sum") -> None:
        head = _common.classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(head, feature_columns, model_dir, optimizer, config, sparse_combiner, warm_start_from)


class LinearRegressor(LinearEstimator):
    """A linear regressor (``tf.estimator.LinearRegressor``)."""

    def __init__(self, feature_columns: Any, model_dir: Any = None, label_dimension: int = 1,
                 weight_column: Any = None, optimizer: Any = "Ftrl", config: Any = None, warm_start_from: Any = None,
                 loss_reduction: str = _common.DEFAULT_LOSS_REDUCTION, sparse_combiner: str = "sum") -> None:
        head = _common.regression_head(label_dimension, weight_column, loss_reduction)
        super().__init__(head, feature_columns, model_dir, optimizer, config, sparse_combiner, warm_start_from)
