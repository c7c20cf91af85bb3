"""Keras 3 layer penalties reach REGULARIZATION_LOSSES inside model_fn (the v1 loss helpers)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from compat._legacy import facts, module

FACTS = facts("regularization")
RECORD = module("regularization", "record")


def _evaluate(model_fn):
    estimator = bridge.Estimator(model_fn, config=bridge.RunConfig(log_step_count_steps=None))
    data = ({"x": np.ones((2, 3), np.float32)}, np.zeros((2, 2), np.float32))
    return estimator.evaluate(lambda: tf.data.Dataset.from_tensors(data), steps=1)


def test_get_regularization_loss_returns_the_layer_penalties_2_15_computed():
    """The penalties equal 2.15's layer.losses (where 2.15's collection stayed empty and returned 0)."""
    seen = {}

    def model_fn(features, labels, mode):
        RECORD.build(keras, features["x"])  # one layer, called twice
        seen["count"] = len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES))
        loss = tf.compat.v1.losses.get_regularization_loss()
        return bridge.EstimatorSpec(mode, loss=loss)

    assert _evaluate(model_fn)["loss"] == pytest.approx(sum(FACTS["layer_losses"]), rel=1e-6)
    assert seen["count"] == len(FACTS["layer_losses"])  # the weight penalty once, activity per call


def test_get_total_loss_adds_them_to_the_v1_losses():
    def model_fn(features, labels, mode):
        model = keras.Sequential([keras.layers.Dense(2, kernel_initializer="ones", kernel_regularizer=keras.regularizers.l2(0.5))])
        predictions = model(features["x"])
        tf.compat.v1.losses.absolute_difference(labels, predictions)  # 3.0
        return bridge.EstimatorSpec(mode, loss=tf.compat.v1.losses.get_total_loss())

    assert _evaluate(model_fn)["loss"] == pytest.approx(3.0 + 0.5 * 6, rel=1e-6)


def test_keras_layers_are_untouched_outside_model_fn():
    original = keras.layers.Layer.__call__
    _evaluate(lambda features, labels, mode: bridge.EstimatorSpec(mode, loss=tf.reduce_sum(keras.layers.Dense(1)(features["x"]))))
    assert keras.layers.Layer.__call__ is original
