"""Issue 17 item 9: training stops on the step the weights go non-finite, not at the next save.

A ReLU MLP fed a NaN feature gets NaN weights while its loss stays finite (the ReLU maps NaN
to 0 in the forward pass; the gradient carries the NaN into the weights).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.conftest import checkpoint_steps

NAN_AT = 7  # the first batch with a NaN feature (global step 7 -> 8)


def _input_fn():
    x = np.random.RandomState(0).rand(64, 3).astype(np.float32)
    x[NAN_AT, 0] = np.nan  # batch size 1: step NAN_AT + 1 sees it
    y = np.ones((64, 1), np.float32)
    return tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(1)


def _relu_mlp_fn(features, labels, mode):
    hidden = keras.layers.Dense(4, activation="relu", kernel_initializer="ones", bias_initializer=keras.initializers.Constant(-10.0),
                                name="hidden")(features["x"])
    predictions = keras.layers.Dense(1, name="out", kernel_initializer="ones")(hidden)
    loss = tf.reduce_mean(tf.square(predictions - labels))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.01)))


def _estimator(model_dir, **config):
    config = bridge.RunConfig(save_checkpoints_steps=1000, log_step_count_steps=None, **config)
    return bridge.Estimator(_relu_mlp_fn, model_dir=model_dir, config=config)


@pytest.mark.parametrize("max_steps_per_call", [1, 4])
def test_stops_on_the_step_weights_go_nan_with_a_finite_loss(model_dir, max_steps_per_call):
    est = _estimator(model_dir, max_steps_per_call=max_steps_per_call)
    with pytest.raises(bridge.NanLossDuringTrainingError) as info:
        est.train(_input_fn, steps=40)
    message = str(info.value)
    assert f"after global step {NAN_AT + 1}" in message
    assert "hidden/kernel" in message and "check_finite_weights=False" in message
    assert checkpoint_steps(model_dir) == [0]  # the NaN weights never reached a checkpoint


def test_check_can_be_switched_off(model_dir):
    est = _estimator(model_dir, check_finite_weights=False)
    with pytest.raises(ValueError, match="refusing to save"):  # only the save-time check remains
        est.train(_input_fn, steps=40)


def test_run_config_validates_the_switch():
    assert bridge.RunConfig().check_finite_weights is True
    with pytest.raises(TypeError, match="check_finite_weights"):
        bridge.RunConfig(check_finite_weights="yes")
