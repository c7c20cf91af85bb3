"""tf.compat.v1.train.init_from_checkpoint in model_fn: 2.15's maps and errors, applied once."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from compat._legacy import FIXTURES, copy_model_dir, facts, module

FACTS = facts("init_from_checkpoint")
CASES = module("init_from_checkpoint", "cases")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return CASES.write_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "model.ckpt"))


@pytest.mark.parametrize("case", sorted(FACTS["cases"]))
def test_assignment_map_forms_and_errors_match_2_15(tmp_path, checkpoint, case):
    model_fn, names = CASES.make_model_fn(bridge.EstimatorSpec, case, checkpoint)
    estimator = bridge.Estimator(model_fn, str(tmp_path), bridge.RunConfig(log_step_count_steps=None))
    expected = FACTS["cases"][case]
    if "error" in expected:
        with pytest.raises(ValueError) as raised:
            estimator.train(CASES.input_fn, steps=2)
        # the checkpoint path differs; the names 2.15's message gives must be in ours
        for word in ("old/missing", "old/extra", "old/w", "doesn't match", "scope"):
            if word in expected["message"]:
                assert word in str(raised.value)
        return
    estimator.train(CASES.input_fn, steps=2)
    for name in names:
        np.testing.assert_array_equal(estimator.get_variable_value(name), expected["values"][name], err_msg=name)


def _keras_model_fn(checkpoint, learning_rate):
    def model_fn(features, labels, mode):
        with tf.compat.v1.variable_scope("old"):
            w = tf.compat.v1.get_variable("w", [2, 2], initializer=tf.compat.v1.zeros_initializer())
        dense = keras.layers.Dense(3, kernel_initializer="zeros", name="v")
        dense.build((None, 2))
        tf.compat.v1.train.init_from_checkpoint(checkpoint, {"old/": "old/", "other/v": dense.bias})
        y = dense(tf.matmul(features["x"], w))
        loss = tf.reduce_mean(tf.square(y - 1.0))
        step = tf.compat.v1.train.get_global_step()
        train_op = tf.compat.v1.train.GradientDescentOptimizer(learning_rate).minimize(loss, global_step=step)
        return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op)

    return model_fn


def _input_fn():
    return tf.data.Dataset.from_tensors(({"x": np.ones((1, 2), np.float32)}, np.zeros((1, 1), np.float32))).repeat()


def test_initialises_once_then_trains_and_resumes_from_model_dir(tmp_path, checkpoint):
    """Not re-assigned every step (training moves), and not applied over model_dir's own checkpoint."""
    config = bridge.RunConfig(log_step_count_steps=None)
    initial = bridge.Estimator(_keras_model_fn(checkpoint, 0.0), str(tmp_path / "frozen"), config)
    initial.train(_input_fn, steps=1)
    np.testing.assert_array_equal(initial.get_variable_value("v/bias"), [3.0, 3.0, 3.0])  # a Keras 3 variable
    np.testing.assert_array_equal(initial.get_variable_value("old/w"), np.ones((2, 2)))

    estimator = bridge.Estimator(_keras_model_fn(checkpoint, 0.05), str(tmp_path / "trained"), config)
    estimator.train(_input_fn, steps=3)
    after_first = estimator.get_variable_value("v/bias")
    assert not np.allclose(after_first, 3.0)  # trained away from the checkpoint values
    estimator.train(_input_fn, steps=3)
    after_second = estimator.get_variable_value("v/bias")
    assert np.all(after_second < after_first)  # continued from model_dir, not restarted from 3.0
    assert estimator.get_variable_value("global_step") == 6


PARTITIONED = facts("partitioned")
PARTITIONED_CASES = module("partitioned", "cases")
PARTITIONED_DIR = os.path.join(FIXTURES, "partitioned", "model_dir")


@pytest.mark.parametrize("case", sorted(PARTITIONED["init"]))
def test_partitioned_variables_in_assignment_maps_match_2_15(tmp_path, case):
    """A 2.15 checkpoint of a 3-part variable initialises a partitioned variable (any number of
    parts) or a whole one, with 2.15's errors for part names and shape mismatches."""
    model_fn = PARTITIONED_CASES.make_init_model_fn(bridge.EstimatorSpec, case, PARTITIONED_DIR)
    estimator = bridge.Estimator(model_fn, str(tmp_path), bridge.RunConfig(log_step_count_steps=None))
    expected = PARTITIONED["init"][case]
    if "error" in expected:
        error_class = getattr(tf.errors, expected["error"], None) or getattr(__builtins__, expected["error"], ValueError)
        with pytest.raises(error_class) as raised:
            estimator.train(PARTITIONED_CASES.input_fn, steps=2)
        message = expected["message"].split(" from checkpoint reader")[0].split(" is not found in")[0]
        assert message in str(raised.value)
        return
    estimator.train(PARTITIONED_CASES.input_fn, steps=2)
    assert sorted(estimator.get_variable_names()) == sorted(expected["values"])  # "y", not "y/part_0"
    for name, value in expected["values"].items():
        np.testing.assert_allclose(estimator.get_variable_value(name), value, rtol=1e-6, err_msg=name)


def test_partitioned_variable_checkpoints_are_2_15s(tmp_path):
    """get_variable(partitioner=...) in model_fn: a 2.15 model_dir continues with 2.15's values, and
    bridge writes what 2.15 wrote (one tensor ``x`` of the whole shape; slots likewise)."""
    model_dir = copy_model_dir("partitioned", str(tmp_path))
    config = bridge.RunConfig(log_step_count_steps=None)
    estimator = bridge.Estimator(PARTITIONED_CASES.make_model_fn(bridge.EstimatorSpec), model_dir, config)
    estimator.train(PARTITIONED_CASES.input_fn, steps=2)
    assert sorted(estimator.get_variable_names()) == sorted(PARTITIONED["continued"])
    for name, value in PARTITIONED["continued"].items():
        np.testing.assert_allclose(estimator.get_variable_value(name), value, rtol=1e-5, err_msg=name)

    momentum = bridge.Estimator(
        PARTITIONED_CASES.make_model_fn(bridge.EstimatorSpec, momentum=True), str(tmp_path / "momentum"), config
    )
    momentum.train(PARTITIONED_CASES.input_fn, steps=3)
    assert dict(tf.train.list_variables(momentum.model_dir)) == {"global_step": [], "x": [7, 2], "x/Momentum": [7, 2]}
    for name, value in PARTITIONED["momentum"].items():
        np.testing.assert_allclose(momentum.get_variable_value(name), value, rtol=1e-5, err_msg=name)
    # evaluate restores the parts from the slices
    assert momentum.evaluate(PARTITIONED_CASES.input_fn, steps=1)["global_step"] == 3


def test_v1_layer_under_a_partitioned_variable_scope_matches_2_15(tmp_path):
    """variable_scope(partitioner=...) around tf.compat.v1.layers.dense: kernel, bias and Momentum
    slots partitioned, saved whole, trained as in 2.15."""
    model_fn = PARTITIONED_CASES.make_layer_model_fn(bridge.EstimatorSpec)
    estimator = bridge.Estimator(model_fn, str(tmp_path), bridge.RunConfig(log_step_count_steps=None))
    estimator.train(PARTITIONED_CASES.input_fn, steps=3)
    expected = PARTITIONED["layer_under_partitioned_scope"]
    assert sorted(estimator.get_variable_names()) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(estimator.get_variable_value(name), value, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("case", sorted(PARTITIONED["warm_start"]))
def test_warm_start_of_partitioned_variables_matches_2_15(tmp_path, case):
    """WarmStartSettings selects and renames a partitioned variable by its name (``x``), as 2.15 did."""
    _, selection, renames = PARTITIONED_CASES.WARM_START_CASES[case]
    settings = bridge.WarmStartSettings(PARTITIONED_DIR, selection, var_name_to_prev_var_name=renames)
    model_fn = PARTITIONED_CASES.make_warm_start_model_fn(bridge.EstimatorSpec, case)
    estimator = bridge.Estimator(model_fn, str(tmp_path), bridge.RunConfig(log_step_count_steps=None), warm_start_from=settings)
    estimator.train(PARTITIONED_CASES.input_fn, steps=1)
    expected = PARTITIONED["warm_start"][case]["values"]
    assert sorted(estimator.get_variable_names()) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(estimator.get_variable_value(name), value, rtol=1e-6, err_msg=name)


def test_partitioned_variable_exports_and_serves_predict_values(tmp_path):
    def model_fn(features, labels, mode):
        x = tf.compat.v1.get_variable(
            "x", [7, 2], initializer=tf.compat.v1.ones_initializer(), partitioner=tf.compat.v1.fixed_size_partitioner(3)
        )
        y = tf.matmul(features["a"], tf.convert_to_tensor(x))
        if mode == bridge.ModeKeys.PREDICT:
            return bridge.EstimatorSpec(mode, predictions={"y": y}, export_outputs={"y": bridge.export.PredictOutput({"y": y})})
        loss = tf.reduce_sum(y)
        step = tf.compat.v1.train.get_global_step()
        return bridge.EstimatorSpec(mode, loss=loss, train_op=tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step))

    def serving_input_receiver_fn():
        a = tf.compat.v1.placeholder(tf.float32, [None, 7])
        return bridge.export.ServingInputReceiver({"a": a}, {"a": a})

    a = np.arange(14, dtype=np.float32).reshape(2, 7)
    estimator = bridge.Estimator(model_fn, str(tmp_path / "model"), bridge.RunConfig(log_step_count_steps=None))
    estimator.train(lambda: tf.data.Dataset.from_tensors(({"a": a}, np.zeros(2, np.float32))).repeat(), steps=2)
    export_dir = estimator.export_saved_model(str(tmp_path / "export"), serving_input_receiver_fn)
    served = tf.saved_model.load(export_dir).signatures["serving_default"](a=tf.constant(a))["y"].numpy()
    predicted = np.stack([row["y"] for row in estimator.predict(lambda: tf.data.Dataset.from_tensors({"a": a}))])
    np.testing.assert_allclose(served, predicted, rtol=1e-6)
    assert not np.allclose(predicted, a.sum(axis=1, keepdims=True))  # trained away from the ones it started from
