"""``DNNLinearCombined{Classifier,Regressor,Estimator}``: wide (linear) + deep (DNN) logits summed.

Each part trains with its own optimizer, as in tf.estimator 2.15: the DNN's (``'Adagrad'``,
learning rate 0.001) counts its steps in ``global_step``; the linear part's (``'Ftrl'``, learning
rate ``min(0.005, 1/sqrt(number of linear columns))``) keeps its own ``training/Ftrl/iter``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge.canned import _common, _feature_columns, _optimizers, _summaries
from bridge.canned.dnn import dnn_logits, validate_hidden_units
from bridge.canned.heads import Head
from bridge.canned.linear import linear_logits
from bridge.mode_keys import ModeKeys

DNN_LEARNING_RATE = 0.001
LINEAR_LEARNING_RATE = 0.005


def _combined_model_fn(head: Head, linear_columns: tuple, linear_optimizer: Any, dnn_columns: tuple,
                       dnn_optimizer: Any, hidden_units: tuple | None, activation_fn: Callable | None,
                       dropout: float | None, batch_norm: bool, sparse_combiner: str) -> Callable:
    def model_fn(features, labels, mode, config):
        parts, update_ops = [], []
        if dnn_columns:
            if hidden_units is None:
                raise ValueError("dnn_hidden_units must be defined when dnn_feature_columns is specified.")
            _feature_columns.create_shared_embeddings(dnn_columns)  # top level, untrained (2.15)
            logits, update_ops = dnn_logits(features, dnn_columns, hidden_units, head.logits_dimension,
                                            activation_fn, dropout, batch_norm, mode)
            parts.append(logits)
        if linear_columns:
            training = mode == ModeKeys.TRAIN
            parts.append(linear_logits(features, linear_columns, head.logits_dimension, sparse_combiner,
                                       summary_prefix="" if training else None))
            if training:
                _summaries.layer(parts[-1], "linear")
        logits = tf.add_n(parts) if len(parts) > 1 else parts[0]
        train_op_fn = None
        if mode == ModeKeys.TRAIN:
            dnn_opt = _optimizers.resolve(dnn_optimizer, DNN_LEARNING_RATE) if dnn_columns else None
            linear_opt = (_optimizers.resolve(
                linear_optimizer, _optimizers.linear_learning_rate(len(linear_columns), LINEAR_LEARNING_RATE))
                if linear_columns else None)

            def train_op_fn(loss):
                step = tf.compat.v1.train.get_global_step()
                ops = []
                with tf.name_scope("training"):
                    if dnn_opt is not None:
                        ops.append(_optimizers.apply(dnn_opt, loss, _feature_columns.trainable_variables("dnn"),
                                                     step, increment_global_step=False))
                    if linear_opt is not None:
                        # The global step counts in one optimizer only: the DNN's when there is one.
                        ops.append(_optimizers.apply(linear_opt, loss, _feature_columns.trainable_variables("linear"),
                                                     step, own_iterations=dnn_opt is not None,
                                                     increment_global_step=False))
                    with tf.control_dependencies(ops):
                        return step.assign_add(1, read_value=False)

        return head.create_estimator_spec(features=features, mode=mode, logits=logits, labels=labels,
                                          train_op_fn=train_op_fn, update_ops=update_ops or None)

    return model_fn


class DNNLinearCombinedEstimator(_common.CannedEstimator):
    """Wide-and-deep with any ``head`` (``tf.estimator.DNNLinearCombinedEstimator``).

    Args:
      head: a ``bridge.Head``.
      linear_feature_columns: columns of the linear (wide) part; any kind, crossed columns typical.
      linear_optimizer: the linear part's optimizer (``'Ftrl'``); name, Keras 3 optimizer or callable.
      dnn_feature_columns: dense columns of the DNN (deep) part (embedding, numeric, indicator).
      dnn_optimizer: the DNN part's optimizer (``'Adagrad'``).
      dnn_hidden_units: hidden layer sizes of the DNN part (required with dnn_feature_columns).
      dnn_activation_fn, dnn_dropout, batch_norm: as in ``DNNEstimator``.
      linear_sparse_combiner: as ``sparse_combiner`` in ``LinearEstimator``.
    """

    def __init__(self, head: Head, model_dir: Any = None, linear_feature_columns: Any = None,
                 linear_optimizer: Any = "Ftrl", dnn_feature_columns: Any = None, dnn_optimizer: Any = "Adagrad",
                 dnn_hidden_units: Sequence[int] | None = None, dnn_activation_fn: Callable | None = tf.nn.relu,
                 dnn_dropout: float | None = None, config: Any = None, batch_norm: bool = False,
                 linear_sparse_combiner: str = "sum", warm_start_from: Any = None) -> None:
        head = _common.check_head(head)
        linear_columns = _feature_columns.normalize_columns(linear_feature_columns, "linear_feature_columns")
        dnn_columns = _feature_columns.normalize_columns(dnn_feature_columns, "dnn_feature_columns")
        _feature_columns.warn_shared_embeddings_frozen(dnn_columns)
        if not linear_columns and not dnn_columns:
            raise ValueError("Either linear_feature_columns or dnn_feature_columns must be defined.")
        # 2.15 accepted missing dnn_hidden_units here and failed when the model was built.
        hidden_units = validate_hidden_units(dnn_hidden_units) if dnn_columns and dnn_hidden_units is not None else None
        model_fn = _combined_model_fn(head, linear_columns, linear_optimizer, dnn_columns, dnn_optimizer,
                                      hidden_units, dnn_activation_fn, dnn_dropout, batch_norm, linear_sparse_combiner)
        super().__init__(model_fn, head, model_dir, config, warm_start_from)


class DNNLinearCombinedClassifier(DNNLinearCombinedEstimator):
    """Wide-and-deep classifier (``tf.estimator.DNNLinearCombinedClassifier``)."""

    def __init__(self, model_dir: Any = None, linear_feature_columns: Any = None, linear_optimizer: Any = "Ftrl",
                 dnn_feature_columns: Any = None, dnn_optimizer: Any = "Adagrad",
                 dnn_hidden_units: Sequence[int] | None = None, dnn_activation_fn: Callable | None = tf.nn.relu,
                 dnn_dropout: float | None = None, n_classes: int = 2, weight_column: Any = None,
                 label_vocabulary: Sequence[str] | None = None, config: Any = None, warm_start_from: Any = None,
                 loss_reduction: str = _common.DEFAULT_LOSS_REDUCTION, batch_norm: bool = False,
                 linear_sparse_combiner: str = "sum") -> None:
        head = _common.classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(head, model_dir, linear_feature_columns, linear_optimizer, dnn_feature_columns,
                         dnn_optimizer, dnn_hidden_units, dnn_activation_fn, dnn_dropout, config, batch_norm,
                         linear_sparse_combiner, warm_start_from)


class DNNLinearCombinedRegressor(DNNLinearCombinedEstimator):
    """Wide-and-deep regressor (``tf.estimator.DNNLinearCombinedRegressor``)."""

    def __init__(self, model_dir: Any = None, linear_feature_columns: Any = None, linear_optimizer: Any = "Ftrl",
                 dnn_feature_columns: Any = None, dnn_optimizer: Any = "Adagrad",
                 dnn_hidden_units: Sequence[int] | None = None, dnn_activation_fn: Callable | None = tf.nn.relu,
                 dnn_dropout: float | None = None, label_dimension: int = 1, weight_column: Any = None,
                 config: Any = None, warm_start_from: Any = None,
                 loss_reduction: str = _common.DEFAULT_LOSS_REDUCTION, batch_norm: bool = False,
                 linear_sparse_combiner: str = "sum") -> None:
        head = _common.regression_head(label_dimension, weight_column, loss_reduction)
        super().__init__(head, model_dir, linear_feature_columns, linear_optimizer, dnn_feature_columns,
                         dnn_optimizer, dnn_hidden_units, dnn_activation_fn, dnn_dropout, config, batch_norm,
                         linear_sparse_combiner, warm_start_from)
