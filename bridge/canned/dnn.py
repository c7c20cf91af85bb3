"""``DNNClassifier``, ``DNNRegressor``, ``DNNEstimator``: a feed-forward network over feature columns.

Variables carry tf.estimator 2.15's names (``dnn/hiddenlayer_<i>/{kernel,bias}``,
``dnn/hiddenlayer_<i>/batchnorm_<i>/...``, ``dnn/logits/{kernel,bias}``), so 2.15 model_dirs load.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge.canned import _common, _feature_columns, _summaries
from bridge.canned.heads import Head
from bridge.mode_keys import ModeKeys

_BATCH_NORM_MOMENTUM = 0.999  # 2.15's canned DNN
_BATCH_NORM_EPSILON = 1e-3  # Keras's default


def _dense(inputs: tf.Tensor, units: int, activation: Callable | None) -> tf.Tensor:
    """A Keras-style Dense layer (glorot-uniform kernel, zero bias) with 2.15's variable names."""
    kernel = tf.compat.v1.get_variable(
        "kernel", [inputs.shape[-1], units], initializer=tf.compat.v1.glorot_uniform_initializer(), use_resource=True)
    bias = tf.compat.v1.get_variable("bias", [units], initializer=tf.compat.v1.zeros_initializer(), use_resource=True)
    outputs = tf.nn.bias_add(tf.matmul(inputs, kernel), bias)
    return activation(outputs) if activation is not None else outputs


def _batch_norm(inputs: tf.Tensor, name: str, training: bool) -> tuple[tf.Tensor, list]:
    """Keras BatchNormalization (momentum 0.999) with 2.15's names; returns (outputs, update ops)."""
    units = inputs.shape[-1]
    with tf.compat.v1.variable_scope(name):
        gamma = tf.compat.v1.get_variable("gamma", [units], initializer=tf.compat.v1.ones_initializer(), use_resource=True)
        beta = tf.compat.v1.get_variable("beta", [units], initializer=tf.compat.v1.zeros_initializer(), use_resource=True)
        moving_mean = tf.compat.v1.get_variable(
            "moving_mean", [units], initializer=tf.compat.v1.zeros_initializer(), trainable=False, use_resource=True)
        moving_variance = tf.compat.v1.get_variable(
            "moving_variance", [units], initializer=tf.compat.v1.ones_initializer(), trainable=False, use_resource=True)
    if not training:
        return tf.nn.batch_normalization(inputs, moving_mean, moving_variance, beta, gamma, _BATCH_NORM_EPSILON), []
    mean, variance = tf.nn.moments(inputs, axes=[0])
    outputs = tf.nn.batch_normalization(inputs, mean, variance, beta, gamma, _BATCH_NORM_EPSILON)
    decay = 1.0 - _BATCH_NORM_MOMENTUM
    updates = [
        moving_mean.assign_sub((moving_mean - mean) * decay, read_value=False),
        moving_variance.assign_sub((moving_variance - variance) * decay, read_value=False),
    ]
    return outputs, updates


def validate_hidden_units(hidden_units: Any) -> tuple[int, ...]:
    if hidden_units is None:
        raise ValueError("hidden_units must be a list of layer sizes, e.g. [64, 32]. Given: None")
    try:
        units = tuple(int(u) for u in hidden_units)
    except (TypeError, ValueError):
        raise ValueError(f"hidden_units must be a list of positive integers. Given: {hidden_units!r}") from None
    if any(u <= 0 for u in units):
        raise ValueError(f"hidden_units must be a list of positive integers. Given: {hidden_units!r}")
    return units


def dnn_network(features: Any, feature_columns: tuple, hidden_units: Sequence[int], units: int,
                activation_fn: Callable | None, dropout: float | None, batch_norm: bool,
                mode: str, summary_prefix: str | None = None) -> tuple[tf.Tensor, list]:
    """input_from_feature_columns -> hiddenlayer_<i> ... -> logits, in the caller's variable scope.

    In TRAIN each layer writes 2.15's summaries, tagged ``<summary_prefix>/hiddenlayer_<i>/...``
    (default: the current name scope).
    """
    _feature_columns.validate_features(features)
    training = mode == ModeKeys.TRAIN
    if summary_prefix is None:
        summary_prefix = tf.compat.v1.get_default_graph().get_name_scope()
    tag = f"{summary_prefix}/" if summary_prefix else ""
    update_ops: list = []
    net = _feature_columns.dense_input(features, feature_columns)
    for i, width in enumerate(hidden_units):
        with tf.compat.v1.variable_scope(f"hiddenlayer_{i}"):
            net = _dense(net, width, activation_fn)
            if dropout is not None and training:
                net = tf.nn.dropout(net, rate=dropout)
            if batch_norm:
                net, updates = _batch_norm(net, f"batchnorm_{i}", training)
                update_ops += updates
        if training:
            _summaries.layer(net, f"{tag}hiddenlayer_{i}")
    with tf.compat.v1.variable_scope("logits"):
        logits = _dense(net, units, None)
    if training:
        _summaries.layer(logits, f"{tag}logits")
    return logits, update_ops


def dnn_logits(features: Any, feature_columns: tuple, hidden_units: Sequence[int], units: int,
               activation_fn: Callable | None, dropout: float | None, batch_norm: bool,
               mode: str) -> tuple[tf.Tensor, list]:
    """Logits of the network under ``dnn/``, and the batch-norm update ops of a training step."""
    with tf.compat.v1.variable_scope("dnn"):
        return dnn_network(features, feature_columns, hidden_units, units, activation_fn, dropout, batch_norm, mode,
                           summary_prefix="dnn")


def dnn_logit_fn_builder(units: int, hidden_units: Sequence[int], feature_columns: Any,
                         activation_fn: Callable | None = tf.nn.relu, dropout: float | None = None,
                         input_layer_partitioner: Any = None, batch_norm: bool = False) -> Callable:
    """``tf.compat.v1.estimator.experimental.dnn_logit_fn_builder``: the canned DNN as ``logit_fn(features, mode)``.

    The logit_fn creates its variables (``input_from_feature_columns/...``, ``hiddenlayer_<i>/...``,
    ``logits/...``) in the caller's variable scope; batch-norm moving averages update in TRAIN
    through the ``UPDATE_OPS`` collection, as v1 layers did. ``input_layer_partitioner`` is
    accepted and ignored (no partitioned variables on TF2).
    """
    del input_layer_partitioner
    if not isinstance(units, int):
        raise ValueError(f"units must be an int.  Given type: {type(units)}")
    columns = _feature_columns.normalize_columns(feature_columns)
    widths = validate_hidden_units(hidden_units)

    def dnn_logit_fn(features, mode):
        logits, update_ops = dnn_network(features, columns, widths, units, activation_fn, dropout, batch_norm, mode)
        for op in update_ops:
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, op)
        return logits

    return dnn_logit_fn


def _dnn_model_fn(head: Head, hidden_units: tuple, feature_columns: tuple, optimizer: Any,
                  activation_fn: Callable | None, dropout: float | None, batch_norm: bool) -> Callable:
    def model_fn(features, labels, mode, config):
        _feature_columns.create_shared_embeddings(feature_columns)  # top level, untrained (2.15)
        logits, update_ops = dnn_logits(features, feature_columns, hidden_units, head.logits_dimension,
                                        activation_fn, dropout, batch_norm, mode)
        return _common.spec_with_optimizer(
            head, features, labels, mode, logits, optimizer, None,
            _feature_columns.trainable_variables("dnn"), update_ops)

    return model_fn


class DNNEstimator(_common.CannedEstimator):
    """A feed-forward network with any ``head`` (``tf.estimator.DNNEstimator``).

    Args:
      head: a ``bridge.Head`` (e.g. ``bridge.MultiLabelHead(n_classes=3)``).
      hidden_units: sizes of the hidden layers, e.g. ``[64, 32]`` (``[]``: no hidden layer).
      feature_columns: ``tf.feature_column`` columns (dense ones: numeric, embedding, indicator,
        bucketized...).
      optimizer: ``'Adagrad'`` (default, learning rate 0.001 as measured in 2.15), ``'Adam'``,
        ``'Ftrl'``, ``'RMSProp'``, ``'SGD'``, a Keras 3 optimizer, or a callable returning one.
      activation_fn: activation of the hidden layers (``tf.nn.relu``).
      dropout: probability of dropping a hidden unit in training, or None.
      batch_norm: batch normalization after each hidden layer.
    """

    def __init__(self, head: Head, hidden_units: Sequence[int], feature_columns: Any, model_dir: Any = None,
                 optimizer: Any = "Adagrad", activation_fn: Callable | None = tf.nn.relu,
                 dropout: float | None = None, config: Any = None, warm_start_from: Any = None,
                 batch_norm: bool = False) -> None:
        head = _common.check_head(head)
        columns = _feature_columns.normalize_columns(feature_columns)
        _feature_columns.warn_shared_embeddings_frozen(columns)
        model_fn = _dnn_model_fn(head, validate_hidden_units(hidden_units), columns, optimizer,
                                 activation_fn, dropout, batch_norm)
        super().__init__(model_fn, head, model_dir, config, warm_start_from)


class DNNClassifier(DNNEstimator):
    """A feed-forward classifier (``tf.estimator.DNNClassifier``); see ``DNNEstimator`` for the model.

    ``n_classes=2`` uses ``BinaryClassHead``, more classes ``MultiClassHead``; ``label_vocabulary``
    lists the label strings; ``weight_column`` names a per-example weight feature.
    """

    def __init__(self, hidden_units: Sequence[int], feature_columns: Any, model_dir: Any = None,
                 n_classes: int = 2, weight_column: Any = None, label_vocabulary: Sequence[str] | None = None,
                 optimizer: Any = "Adagrad", activation_fn: Callable | None = tf.nn.relu,
                 dropout: float | None = None, config: Any = None, warm_start_from: Any = None,
                 loss_reduction: str = _common.DEFAULT_LOSS_REDUCTION, batch_norm: bool = False) -> None:
        head = _common.classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(head, hidden_units, feature_columns, model_dir, optimizer, activation_fn, dropout,
                         config, warm_start_from, batch_norm)


class DNNRegressor(DNNEstimator):
    """A feed-forward regressor (``tf.estimator.DNNRegressor``); see ``DNNEstimator`` for the model."""

    def __init__(self, hidden_units: Sequence[int], feature_columns: Any, model_dir: Any = None,
                 label_dimension: int = 1, weight_column: Any = None, optimizer: Any = "Adagrad",
                 activation_fn: Callable | None = tf.nn.relu, dropout: float | None = None, config: Any = None,
                 warm_start_from: Any = None, loss_reduction: str = _common.DEFAULT_LOSS_REDUCTION,
                 batch_norm: bool = False) -> None:
        head = _common.regression_head(label_dimension, weight_column, loss_reduction)
        super().__init__(head, hidden_units, feature_columns, model_dir, optimizer, activation_fn, dropout,
                         config, warm_start_from, batch_norm)
