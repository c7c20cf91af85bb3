"""The training summaries tf.estimator 2.15's canned models wrote (TensorBoard), with its tags.

Written through ``tf.compat.v1.summary`` in TRAIN, so bridge's model_fn summaries seam merges and
writes them every ``save_summary_steps`` (tags recorded from 2.15: tests/fixtures/legacy_2_15/
canned/summaries.json):

* each DNN layer: ``<layer>/fraction_of_zero_values`` (scalar) and ``<layer>/activation``
  (histogram), e.g. ``dnn/hiddenlayer_0/...`` (``dnn/dnn/...`` for the tf.compat.v1 classes);
* a linear model: ``bias`` (its value, or a histogram with several logits) and
  ``fraction_of_zero_weights`` over its columns' weights (not the bias) (``linear/...`` for the tf.compat.v1 classes);
  in a combined model also the linear logits' ``linear/activation`` and
  ``linear/fraction_of_zero_values``;
* the tf.compat.v1 classes with a summed loss: ``average_loss``, the loss over the example weights.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def _absolute(tag_prefix: str):
    """The name scope ``tag_prefix`` itself (the root for ""), not one nested in the current scope."""
    return tf.compat.v1.get_default_graph().name_scope(f"{tag_prefix}/" if tag_prefix else "")


def layer(value: tf.Tensor, tag: str) -> None:
    """``<tag>/fraction_of_zero_values`` and ``<tag>/activation``."""
    with _absolute(tag):
        tf.compat.v1.summary.scalar("fraction_of_zero_values", tf.math.zero_fraction(value))
        tf.compat.v1.summary.histogram("activation", value)


def linear_weights(variables: Sequence[tf.Variable], tag_prefix: str) -> None:
    """``bias`` and ``fraction_of_zero_weights`` of a linear model's variables."""
    bias = next(v for v in variables if v.name.split(":")[0].endswith("/bias_weights"))
    weights = [v for v in variables if v is not bias]  # 2.15 counted the columns' weights only
    zeros = tf.add_n([tf.reduce_sum(tf.cast(tf.equal(v, 0.0), tf.float32)) for v in weights] or [tf.constant(0.0)])
    size = float(sum(v.shape.num_elements() for v in weights)) or 1.0
    with _absolute(tag_prefix):
        if bias.shape.num_elements() == 1:
            tf.compat.v1.summary.scalar("bias", tf.reshape(bias, [-1])[0])
        else:
            tf.compat.v1.summary.histogram("bias", bias)
        tf.compat.v1.summary.scalar("fraction_of_zero_weights", zeros / size)


def scalar(tag: str, value: tf.Tensor) -> None:
    with _absolute(""):
        tf.compat.v1.summary.scalar(tag, value)
