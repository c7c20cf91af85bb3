"""Feature columns -> tensors, with the variable names tf.estimator 2.15 saved.

``tf.compat.v1.feature_column.input_layer`` and ``linear_model`` still ship with TensorFlow and
accept both ``tf.feature_column`` (v2) and ``tf.compat.v1.feature_column`` columns. Called under
the variable scopes 2.15's canned models used, they create exactly 2.15's checkpoint keys
(``dnn/input_from_feature_columns/input_layer/<column>_embedding/embedding_weights``,
``linear/linear_model/<column>/weights``, ``linear/linear_model/bias_weights``). Transformation
runs as TensorFlow ops inside the traced step (no per-example Python).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import tensorflow as tf


def normalize_columns(feature_columns: Iterable[Any] | None, argument: str = "feature_columns") -> tuple:
    """The columns as a tuple; a single column is accepted as 2.15 did."""
    if feature_columns is None:
        return ()
    if hasattr(feature_columns, "name") and not isinstance(feature_columns, (list, tuple)):
        return (feature_columns,)
    columns = tuple(feature_columns)
    for column in columns:
        if not hasattr(column, "name") or not hasattr(column, "parse_example_spec"):
            raise ValueError(f"Items of {argument} must be feature columns (tf.feature_column.*). Given: {column!r}")
    return columns


def validate_features(features: Any) -> None:
    if not isinstance(features, Mapping):
        raise ValueError(f"features should be a dictionary of `Tensor`s. Given type: {type(features)}")


def dense_input(features: Mapping[str, Any], feature_columns: tuple) -> tf.Tensor:
    """The DNN's input: every column's dense tensor, concatenated (``.../input_from_feature_columns``)."""
    with tf.compat.v1.variable_scope("input_from_feature_columns"):
        return tf.compat.v1.feature_column.input_layer(features, list(feature_columns))


def linear_logits(features: Mapping[str, Any], feature_columns: tuple, units: int, sparse_combiner: str) -> tf.Tensor:
    """Σ column weights + bias, ``linear/linear_model/...`` (call inside ``variable_scope('linear')``)."""
    if sparse_combiner not in ("mean", "sqrtn", "sum"):
        raise ValueError(f"sparse_combiner must be one of 'mean', 'sqrtn', 'sum'. Given: {sparse_combiner!r}")
    return tf.compat.v1.feature_column.linear_model(
        features, list(feature_columns), units=units, sparse_combiner=sparse_combiner)


def trainable_variables(scope: str) -> list[tf.Variable]:
    """The trainable variables this trace created under ``scope`` (e.g. ``'dnn'``, ``'linear'``)."""
    return tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES, scope=scope + "/")
