"""``classifier_parse_example_spec`` / ``regressor_parse_example_spec``: tf.Example parsing specs.

The feature columns' own parsing spec (``tf.feature_column.make_parse_example_spec``) plus a
``FixedLenFeature`` for the label and, when given, one for the weight column, as tf.estimator
2.15 built them for canned estimators' input pipelines and ``build_parsing_serving_input_receiver_fn``.
"""

from __future__ import annotations

from typing import Any, Iterable

import tensorflow as tf

__all__ = ["classifier_parse_example_spec", "regressor_parse_example_spec"]


def _columns_spec(feature_columns: Iterable[Any]) -> dict:
    """The columns' parsing spec; TF2 columns through the TF2 function (which accepts
    ``tf.feature_column.shared_embeddings``), any TF1 column through the TF1 one."""
    columns = list(feature_columns)
    if columns and all(getattr(column, "_is_v2_column", False) for column in columns):
        return tf.feature_column.make_parse_example_spec(columns)
    return tf.compat.v1.feature_column.make_parse_example_spec(columns)


def _with_label_and_weight(parsing_spec: dict, label_key: str, label_spec: Any, weight_column: Any) -> dict:
    if label_key in parsing_spec:
        raise ValueError(
            f"label should not be used as feature. label_key: {label_key}, features: {parsing_spec.keys()}"
        )
    parsing_spec[label_key] = label_spec
    if weight_column is None:
        return parsing_spec
    if isinstance(weight_column, str):
        weight_column = tf.feature_column.numeric_column(weight_column)
    numeric_column = type(tf.feature_column.numeric_column("_"))
    if not isinstance(weight_column, numeric_column):
        raise ValueError(
            "weight_column should be an instance of tf.feature_column.numeric_column. "
            f"Given type: {type(weight_column)} value: {weight_column}"
        )
    if weight_column.key in parsing_spec:
        raise ValueError(
            f"weight_column should not be used as feature. weight_column: {weight_column.key}, "
            f"features: {parsing_spec.keys()}"
        )
    parsing_spec.update(weight_column.parse_example_spec)
    return parsing_spec


def classifier_parse_example_spec(
    feature_columns: Iterable[Any],
    label_key: str,
    label_dtype: tf.DType = tf.int64,
    label_default: Any = None,
    weight_column: Any = None,
) -> dict:
    """Parsing spec for a classifier: the columns' spec, ``label_key`` as a ``FixedLenFeature((1,))``
    of ``label_dtype`` (int64 class ids, or string with a label vocabulary), and the weight column.

    ValueError if the label or the weight column is also a feature, or the weight column is
    not a numeric column.
    """
    parsing_spec = _columns_spec(feature_columns)
    label_spec = tf.io.FixedLenFeature((1,), label_dtype, label_default)
    return _with_label_and_weight(parsing_spec, label_key, label_spec, weight_column)


def regressor_parse_example_spec(
    feature_columns: Iterable[Any],
    label_key: str,
    label_dtype: tf.DType = tf.float32,
    label_default: Any = None,
    label_dimension: int = 1,
    weight_column: Any = None,
) -> dict:
    """Parsing spec for a regressor: the columns' spec, ``label_key`` as a
    ``FixedLenFeature((label_dimension,))`` of ``label_dtype``, and the weight column."""
    parsing_spec = _columns_spec(feature_columns)
    label_spec = tf.io.FixedLenFeature((label_dimension,), label_dtype, label_default)
    return _with_label_and_weight(parsing_spec, label_key, label_spec, weight_column)
