"""Feature columns -> tensors, with the variable names tf.estimator 2.15 saved.

``tf.compat.v1.feature_column.input_layer`` and ``linear_model`` still ship with TensorFlow and
accept both ``tf.feature_column`` (v2) and ``tf.compat.v1.feature_column`` columns. Called under
the variable scopes 2.15's canned models used, they create exactly 2.15's checkpoint keys
(``dnn/input_from_feature_columns/input_layer/<column>_embedding/embedding_weights``,
``linear/linear_model/<column>/weights``, ``linear/linear_model/bias_weights``). Transformation
runs as TensorFlow ops inside the traced step (no per-example Python).

``tf.feature_column.shared_embeddings`` columns are the exception: TensorFlow's ``input_layer``
refuses them, so their lookups are computed here through the columns' own v2 interface and
concatenated with ``input_layer``'s output in ``input_layer``'s order (columns sorted by name).
Their one shared variable is named after the columns (``<a>_<b>_shared_embedding``) and lives
where tf.estimator 2.15 put it: at the top level for the TF2 estimators (which, in 2.15, did not
train it), under ``dnn/input_from_feature_columns/`` for the ``tf.compat.v1`` ones.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import logging

import tensorflow as tf
from tensorflow.python.feature_column import feature_column_v2 as _fc_v2


def normalize_columns(feature_columns: Iterable[Any] | None, argument: str = "feature_columns") -> tuple:
    """The columns as a tuple; a single column is accepted as 2.15 did."""
    if feature_columns is None:
        return ()
    if hasattr(feature_columns, "name") and not isinstance(feature_columns, (list, tuple)):
        return (feature_columns,)
    columns = tuple(feature_columns)
    for column in columns:
        if not hasattr(column, "name") or not (hasattr(column, "parse_example_spec") or hasattr(column, "_parse_example_spec")):
            raise ValueError(f"Items of {argument} must be feature columns (tf.feature_column.*). Given: {column!r}")
    return columns


def validate_features(features: Any) -> None:
    if not isinstance(features, Mapping):
        raise ValueError(f"features should be a dictionary of `Tensor`s. Given type: {type(features)}")


def _is_shared_v2(column: Any) -> bool:
    return isinstance(column, _fc_v2.SharedEmbeddingColumn)


def create_shared_embeddings(feature_columns: tuple) -> list[tf.Variable]:
    """Creates, in the current variable scope, the variables of the columns' shared embeddings.

    A shared column creates its variable on first use in a graph, wherever that happens; calling
    this first fixes the name (``<scope>/<a>_<b>_shared_embedding``).
    """
    creators = {id(c.shared_embedding_column_creator): c.shared_embedding_column_creator
                for c in feature_columns if _is_shared_v2(c)}
    return [creator.embedding_weights for creator in creators.values()]


def warn_shared_embeddings_frozen(feature_columns: tuple) -> None:
    """Says, when a TF2 canned DNN is built with them, that its shared embeddings stay untrained."""
    names = sorted({c.shared_embedding_column_creator._name for c in feature_columns  # pylint: disable=protected-access
                    if _is_shared_v2(c)})
    if names:
        logging.getLogger("bridge").warning(
            "As in tf.estimator 2.15, the TF2 canned estimators do not train the shared embedding %s of "
            "tf.feature_column.shared_embeddings: it keeps its initial (or checkpointed) values. "
            "tf.compat.v1.estimator's classes train it.", ", ".join(names))


def dense_input(features: Mapping[str, Any], feature_columns: tuple) -> tf.Tensor:
    """The DNN's input: every column's dense tensor, concatenated (``.../input_from_feature_columns``)."""
    with tf.compat.v1.variable_scope("input_from_feature_columns"):
        shared = [c for c in feature_columns if _is_shared_v2(c)]
        if not shared:
            return tf.compat.v1.feature_column.input_layer(features, list(feature_columns))
        create_shared_embeddings(tuple(shared))  # here, unless the caller made them elsewhere
        others = [c for c in feature_columns if not _is_shared_v2(c)]
        outputs: dict = {}
        if others:
            tf.compat.v1.feature_column.input_layer(features, others, cols_to_output_tensors=outputs)
        cache = _fc_v2.FeatureTransformationCache(features)
        for column in shared:
            dense = column.get_dense_tensor(cache, None)
            outputs[column] = tf.reshape(dense, [-1, column.variable_shape.num_elements()])
        ordered = sorted(feature_columns, key=lambda c: c.name)
        return tf.concat([outputs[c] for c in ordered], axis=1)


def linear_logits(features: Mapping[str, Any], feature_columns: tuple, units: int, sparse_combiner: str) -> tf.Tensor:
    """Σ column weights + bias, ``linear/linear_model/...`` (call inside ``variable_scope('linear')``)."""
    if sparse_combiner not in ("mean", "sqrtn", "sum"):
        raise ValueError(f"sparse_combiner must be one of 'mean', 'sqrtn', 'sum'. Given: {sparse_combiner!r}")
    return tf.compat.v1.feature_column.linear_model(
        features, list(feature_columns), units=units, sparse_combiner=sparse_combiner)


def trainable_variables(scope: str) -> list[tf.Variable]:
    """The trainable variables this trace created under ``scope`` (e.g. ``'dnn'``, ``'linear'``)."""
    return tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES, scope=scope + "/")
