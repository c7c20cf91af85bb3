"""Issue 17 item 9: training stops soon after the weights go non-finite, never at (or after) a save.

A ReLU MLP fed a NaN feature gets NaN weights while its loss stays finite (the ReLU maps NaN
to 0 in the forward pass; the gradient carries the NaN into the weights).
"""

from __future__ import annotations

import ast
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from bridge import _train_loop
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
    config = bridge.RunConfig(**{"save_checkpoints_steps": 1000, "log_step_count_steps": None, **config})
    return bridge.Estimator(_relu_mlp_fn, model_dir=model_dir, config=config)


WINDOW = _train_loop.FiniteWeightsCheck.EVERY_STEPS


@pytest.mark.parametrize("max_steps_per_call", [1, 4])
def test_stops_within_the_check_window_with_a_finite_loss(model_dir, max_steps_per_call):
    est = _estimator(model_dir, max_steps_per_call=max_steps_per_call)
    with pytest.raises(bridge.NanLossDuringTrainingError) as info:
        est.train(_input_fn, steps=WINDOW + 8)
    message = str(info.value)
    # Checked after the call that reaches step 32 (not at the end of the call, step 40), naming
    # the window in which the weights went non-finite.
    assert f"after global step {WINDOW} (they were finite after step 0; the check runs every {WINDOW} steps" in message
    assert "hidden/kernel" in message and "check_finite_weights=False" in message
    assert checkpoint_steps(model_dir) == [0]  # the NaN weights never reached a checkpoint


@pytest.mark.parametrize("max_steps_per_call", [1, 4])
def test_checked_before_every_save(model_dir, max_steps_per_call):
    est = _estimator(model_dir, max_steps_per_call=max_steps_per_call, save_checkpoints_steps=5)
    with pytest.raises(bridge.NanLossDuringTrainingError) as info:
        est.train(_input_fn, steps=40)
    assert "after global step 10 (they were finite after step 5;" in str(info.value)
    assert checkpoint_steps(model_dir) == [0, 5]  # the step-10 save was not attempted


@pytest.mark.parametrize("max_steps_per_call", [1, 4])
def test_names_the_exact_step_when_every_step_is_checked(model_dir, max_steps_per_call):
    est = _estimator(model_dir, max_steps_per_call=max_steps_per_call, check_finite_weights=1)
    with pytest.raises(bridge.NanLossDuringTrainingError) as info:
        est.train(_input_fn, steps=40)
    message = str(info.value)
    assert f"after global step {NAN_AT + 1}: ['hidden/kernel'" in message and "finite after" not in message
    assert checkpoint_steps(model_dir) == [0]


def test_a_window_of_n_steps(model_dir):
    est = _estimator(model_dir, max_steps_per_call=4, check_finite_weights=5)
    with pytest.raises(bridge.NanLossDuringTrainingError, match="after global step 10 .they were finite after step 5; "
                                                                "the check runs every 5 steps"):
        est.train(_input_fn, steps=40)


def test_saves_are_checked_even_between_windows(model_dir):
    est = _estimator(model_dir, max_steps_per_call=1, save_checkpoints_steps=1)
    with pytest.raises(bridge.NanLossDuringTrainingError, match=f"after global step {NAN_AT + 1}: "):
        est.train(_input_fn, steps=40)
    assert checkpoint_steps(model_dir) == list(range(NAN_AT - 4, NAN_AT + 1))  # keep_checkpoint_max=5, up to step 7


def test_checked_when_training_ends(model_dir):
    est = _estimator(model_dir, max_steps_per_call=1)
    with pytest.raises(bridge.NanLossDuringTrainingError, match="after global step 12 "):
        est.train(_input_fn, steps=12)  # fewer steps than the window: the end-of-training check
    assert checkpoint_steps(model_dir) == [0]


def _adam_nan_fn(features, labels, mode):
    hidden = keras.layers.Dense(4, activation="relu", kernel_initializer="ones",
                                bias_initializer=keras.initializers.Constant(-10.0), name="hidden")(features["x"])
    predictions = keras.layers.Dense(1, name="out", kernel_initializer="ones")(hidden)
    loss = tf.reduce_mean(tf.square(predictions - labels))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.Adam(0.01)))


def test_optimizer_state_is_checked_too(model_dir):
    config = bridge.RunConfig(save_checkpoints_steps=1000, log_step_count_steps=None, max_steps_per_call=1)
    est = bridge.Estimator(_adam_nan_fn, model_dir=model_dir, config=config)
    with pytest.raises(bridge.NanLossDuringTrainingError) as info:
        est.train(_input_fn, steps=12)
    bad = ast.literal_eval(re.search(r": (\[.*?\])\. No checkpoint", str(info.value)).group(1))
    # The kernel's Adam moments went NaN with it; nothing else did.
    assert bad == ["hidden/kernel", "adam/hidden_kernel_0_momentum", "adam/hidden_kernel_0_velocity"]


def _huge_weights_fn(features, labels, mode):
    # Finite weights whose sum overflows float32: no false alarm (the check is exact per element).
    predictions = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(3e38), name="huge")(features["x"])
    loss = tf.reduce_mean(tf.square(tf.clip_by_value(predictions, -1.0, 1.0) - labels))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.0)))


def test_huge_finite_weights_are_not_a_false_alarm(model_dir):
    x = np.ones((8, 3), np.float32)
    config = bridge.RunConfig(save_checkpoints_steps=1, log_step_count_steps=None, max_steps_per_call=1)
    est = bridge.Estimator(_huge_weights_fn, model_dir=model_dir, config=config)
    est.train(lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, np.ones((8, 1), np.float32))).batch(2), steps=4)
    assert checkpoint_steps(model_dir) == [0, 1, 2, 3, 4]


def test_check_can_be_switched_off(model_dir):
    est = _estimator(model_dir, check_finite_weights=False)
    with pytest.raises(ValueError, match="refusing to save"):  # only the save-time check remains
        est.train(_input_fn, steps=40)


def test_run_config_validates_the_switch():
    assert bridge.RunConfig().check_finite_weights is True
    assert bridge.RunConfig(check_finite_weights=1).check_finite_weights == 1
    with pytest.raises(TypeError, match="check_finite_weights"):
        bridge.RunConfig(check_finite_weights="yes")
    with pytest.raises(ValueError, match="number of steps >= 1; got 0"):
        bridge.RunConfig(check_finite_weights=0)


def test_iterations_per_loop_calls_are_checked_after_the_call_that_reaches_the_window(model_dir):
    est = _estimator(model_dir, iterations_per_loop=5)
    with pytest.raises(bridge.NanLossDuringTrainingError, match=rf"after global step 35 \(they were finite after step 0; "
                                                                rf"the check runs every {WINDOW} steps"):
        est.train(_input_fn, steps=50)
    assert checkpoint_steps(model_dir) == [0]


def _shaped_fn(features, labels, mode, params):
    # Variables of the given shapes, in this order; the last one starts as NaN.
    for i, shape in enumerate(params["shapes"]):
        value = np.nan if i == len(params["shapes"]) - 1 and params["nan"] else 1.0
        tf.compat.v1.get_variable(f"v{i}", shape, initializer=tf.compat.v1.constant_initializer(value))
    step = tf.compat.v1.train.get_global_step()
    return bridge.EstimatorSpec(mode, loss=tf.constant(1.0), train_op=tf.compat.v1.assign_add(step, 1))


def test_models_of_other_shapes_reuse_the_check_correctly(tmp_path):
    # One traced check serves every model of the same variable shapes; models whose variables
    # have other ranks at the same positions get their own (a relaxed trace summed them wrongly).
    config = bridge.RunConfig(save_checkpoints_steps=None, save_checkpoints_secs=None, log_step_count_steps=None)
    x = np.ones((4, 3), np.float32)

    def input_fn():
        return tf.data.Dataset.from_tensor_slices(({"x": x}, x)).batch(2)

    for i, (shapes, nan) in enumerate([([[1, 3], []], False), ([[], [1, 3]], False), ([[2], [1, 3], [4, 1, 2]], False),
                                       ([[], [1, 3]], True), ([[3, 1], []], True)]):
        est = bridge.Estimator(_shaped_fn, model_dir=str(tmp_path / str(i)), config=config,
                               params={"shapes": shapes, "nan": nan})
        if not nan:
            est.train(input_fn, steps=1)
            continue
        with pytest.raises(bridge.NanLossDuringTrainingError, match=rf"after global step 1: \['v{len(shapes) - 1}'\]"):
            est.train(input_fn, steps=1)
