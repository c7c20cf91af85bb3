"""Keras-2-only APIs used in a model_fn: the error names the replacement (docs/migration.md's table)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge


def _train_with(body):
    def model_fn(features, labels, mode):
        model = keras.Sequential([keras.layers.Dense(1)])
        predictions = model(features["x"])
        loss = tf.reduce_mean(tf.square(predictions - labels))
        optimizer = keras.optimizers.Adam(0.1)
        body(model, optimizer, loss, features)
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, optimizer))

    data = ({"x": np.ones((2, 3), np.float32)}, np.zeros((2, 1), np.float32))
    estimator = bridge.Estimator(model_fn, config=bridge.RunConfig(log_step_count_steps=None))
    estimator.train(lambda: tf.data.Dataset.from_tensors(data), steps=1)


def _set_iterations(optimizer):
    optimizer.iterations = tf.compat.v1.train.get_global_step()


CASES = {
    "get_losses_for": (lambda m, o, loss, f: m.get_losses_for(None), r"model\.losses"),
    "get_updates_for": (lambda m, o, loss, f: m.get_updates_for(None), r"training=\(mode == ModeKeys.TRAIN\)"),
    "get_updates": (lambda m, o, loss, f: o.get_updates(loss, m.trainable_variables), r"bridge\.minimize\(loss, optimizer"),
    "iterations": (lambda m, o, loss, f: _set_iterations(o), r"increments the Estimator's global step"),
    "DenseFeatures": (lambda m, o, loss, f: tf.keras.layers.DenseFeatures([]), r"feature_column\.input_layer"),
}


@pytest.mark.parametrize("api", sorted(CASES))
def test_keras_2_api_error_names_the_replacement(api):
    body, replacement = CASES[api]
    with pytest.raises(AttributeError, match=replacement):
        _train_with(body)


def test_keras_classes_are_untouched_outside_model_fn():
    _train_with(lambda m, o, loss, f: None)
    assert not hasattr(keras.layers.Dense(1), "get_losses_for")
    assert "__setattr__" not in vars(keras.optimizers.Optimizer)
    assert not hasattr(tf.keras.layers, "DenseFeatures")
