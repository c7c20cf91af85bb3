"""Estimator.train: tf.estimator 2.15's steps / max_steps / input exhaustion / NaN semantics."""

from __future__ import annotations

import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.conftest import (
    X,
    Y,
    checkpoint_steps,
    global_step_of,
    keras_model_fn,
    make_input_fn,
    v1_model_fn,
)


def test_train_returns_self_and_writes_global_step(estimator, train_input_fn):
    assert estimator.train(train_input_fn, steps=3) is estimator
    assert global_step_of(estimator) == 3
    assert estimator.latest_checkpoint() == os.path.join(estimator.model_dir, "model.ckpt-3")


def test_steps_are_relative(estimator, train_input_fn):
    estimator.train(train_input_fn, steps=5)
    estimator.train(train_input_fn, steps=5)
    assert global_step_of(estimator) == 10


def test_max_steps_is_absolute(estimator, train_input_fn):
    estimator.train(train_input_fn, steps=3)
    estimator.train(train_input_fn, max_steps=7)
    assert global_step_of(estimator) == 7


def test_steps_and_max_steps_together_is_value_error(estimator, train_input_fn):
    with pytest.raises(ValueError, match="Can not provide both steps and max_steps"):
        estimator.train(train_input_fn, steps=1, max_steps=2)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"steps": 0}, "Must specify steps > 0, given: 0"), ({"max_steps": -1}, "Must specify max_steps > 0, given: -1")],
)
def test_non_positive_steps_rejected(estimator, train_input_fn, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        estimator.train(train_input_fn, **kwargs)


def test_max_steps_already_reached_trains_nothing(estimator, train_input_fn, caplog):
    estimator.train(train_input_fn, max_steps=4)
    before = sorted(os.listdir(estimator.model_dir))
    mtimes = {name: os.path.getmtime(os.path.join(estimator.model_dir, name)) for name in before}
    calls = []

    def counting_input_fn():
        calls.append(1)
        return train_input_fn()

    class BeginHook(bridge.SessionRunHook):
        def begin(self):
            calls.append("hook")

    with caplog.at_level(logging.INFO, logger="bridge"):
        assert estimator.train(counting_input_fn, max_steps=4, hooks=[BeginHook()]) is estimator
        estimator.train(counting_input_fn, max_steps=2)
    assert calls == []  # no input_fn, no graph, no hooks
    assert "Skipping training since max_steps has already saved" in caplog.text
    assert sorted(os.listdir(estimator.model_dir)) == before
    assert {n: os.path.getmtime(os.path.join(estimator.model_dir, n)) for n in before} == mtimes
    assert checkpoint_steps(estimator.model_dir) == [0, 4]


def test_training_stops_when_input_is_exhausted(estimator):
    # 20 examples, batch 5, one epoch: 4 batches although 100 steps were asked for.
    estimator.train(make_input_fn(epochs=1), steps=100)
    assert global_step_of(estimator) == 4
    assert checkpoint_steps(estimator.model_dir) == [0, 4]
    estimator.train(make_input_fn(epochs=1), max_steps=100)
    assert global_step_of(estimator) == 8


def test_no_steps_trains_until_input_exhausted(estimator):
    estimator.train(make_input_fn(epochs=2))
    assert global_step_of(estimator) == 8


def test_empty_input_warns_and_still_checkpoints(estimator, caplog):
    def empty_input_fn():
        return tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).take(0).batch(5)

    with caplog.at_level(logging.WARNING, logger="bridge"):
        estimator.train(empty_input_fn, steps=3)
    assert "Training with estimator made no steps" in caplog.text
    assert checkpoint_steps(estimator.model_dir) == [0]


def test_classic_keras_model_fn_learns(estimator, train_input_fn, eval_input_fn):
    before = estimator.evaluate(eval_input_fn)["loss"]
    estimator.train(train_input_fn, steps=60)
    after = estimator.evaluate(eval_input_fn)["loss"]
    assert after < 0.25 * before


def test_model_fn_traced_once_per_call(model_dir, train_input_fn):
    traces = []

    def model_fn(features, labels, mode, params):
        traces.append(mode)
        return keras_model_fn(features, labels, mode, params)

    est = bridge.Estimator(model_fn, model_dir=model_dir, params={})
    est.train(train_input_fn, steps=7)
    assert traces == ["train"]
    est.evaluate(make_input_fn())
    assert traces == ["train", "eval"]


def test_v1_optimizer_model_fn_trains_and_increments_global_step(model_dir, train_input_fn):
    est = bridge.Estimator(v1_model_fn, model_dir=model_dir)
    est.train(train_input_fn, steps=4)
    assert global_step_of(est) == 4
    names = est.get_variable_names()
    assert {"global_step", "dense/kernel", "dense/bias"} <= set(names)
    assert np.any(est.get_variable_value("dense/kernel") != 0)


def test_v1_gradient_descent_matches_numpy(model_dir):
    """One SGD step on a zero-initialised Dense(1): w = -lr * dL/dw, computed by hand."""
    est = bridge.Estimator(v1_model_fn, model_dir=model_dir)
    est.train(make_input_fn(batch_size=20), steps=1)
    grad_w = (2.0 / 20) * X.T @ (0.0 - Y)
    grad_b = (2.0 / 20) * np.sum(0.0 - Y)
    np.testing.assert_allclose(est.get_variable_value("dense/kernel"), -0.05 * grad_w, rtol=1e-5)
    np.testing.assert_allclose(est.get_variable_value("dense/bias"), [-0.05 * grad_b], rtol=1e-5)


def test_get_global_step_answers_inside_model_fn(model_dir, train_input_fn):
    seen = []

    def model_fn(features, labels, mode, params):
        step = tf.compat.v1.train.get_global_step()
        seen.append((step.dtype, tuple(step.shape)))
        return keras_model_fn(features, labels, mode, params)

    bridge.Estimator(model_fn, model_dir=model_dir, params={}).train(train_input_fn, steps=1)
    assert seen == [(tf.int64, ())]


def test_train_op_not_incrementing_global_step_runs_until_input_exhausted(model_dir, caplog):
    def model_fn(features, labels, mode):
        predictions = keras.layers.Dense(1)(features["x"])
        loss = tf.reduce_mean(tf.square(predictions - labels))
        optimizer = keras.optimizers.SGD(0.01)
        variables = tf.compat.v1.trainable_variables()
        optimizer.apply_gradients(zip(tf.gradients(loss, variables), variables))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=tf.no_op())

    est = bridge.Estimator(model_fn, model_dir=model_dir)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        est.train(make_input_fn(epochs=1), steps=2)  # would stop at 2 if the step moved
    assert "global step did not move" in caplog.text
    assert global_step_of(est) == 0


def test_nan_loss_raises_and_leaves_no_nan_checkpoint(model_dir):
    x = X.copy()
    x[15, 0] = np.nan  # in the 4th batch of 5
    config = bridge.RunConfig(save_checkpoints_steps=1)
    est = bridge.Estimator(keras_model_fn, model_dir=model_dir, config=config, params={})
    with pytest.raises(bridge.NanLossDuringTrainingError, match="NaN loss during training"):
        est.train(make_input_fn(x=x), steps=10)
    assert checkpoint_steps(model_dir) == [0, 1, 2, 3]
    assert global_step_of(est) == 3
    for name in est.get_variable_names():
        value = est.get_variable_value(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.isfinite(value).all(), name


def test_nan_loss_with_default_config_keeps_only_start_checkpoint(model_dir):
    x = X.copy()
    x[7, 1] = np.nan  # in the 2nd batch
    est = bridge.Estimator(keras_model_fn, model_dir=model_dir, params={})
    with pytest.raises(bridge.NanLossDuringTrainingError):
        est.train(make_input_fn(x=x), steps=10)
    assert checkpoint_steps(model_dir) == [0]


def test_nan_loss_error_is_runtime_error_with_tf_message():
    assert issubclass(bridge.NanLossDuringTrainingError, RuntimeError)
    assert str(bridge.NanLossDuringTrainingError()) == "NaN loss during training."


def test_model_dir_and_config_model_dir_conflict(tmp_path):
    with pytest.raises(ValueError, match="set both in constructor and `RunConfig`"):
        bridge.Estimator(
            keras_model_fn, model_dir=str(tmp_path / "a"), config=bridge.RunConfig(model_dir=str(tmp_path / "b")), params={}
        )


def test_model_dir_from_config_and_temp_dir(tmp_path, caplog):
    est = bridge.Estimator(keras_model_fn, config=bridge.RunConfig(model_dir=str(tmp_path / "b")), params={})
    assert est.model_dir == str(tmp_path / "b")
    same = bridge.Estimator(keras_model_fn, model_dir=str(tmp_path / "b"), config=bridge.RunConfig(model_dir=str(tmp_path / "b")), params={})
    assert same.config.model_dir == str(tmp_path / "b")
    temp = bridge.Estimator(keras_model_fn, params={})
    assert temp.model_dir and os.path.isdir(temp.model_dir)


def test_train_wrong_task_type_rejected(model_dir, monkeypatch, train_input_fn):
    import json

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["host0:2222"]}, "task": {"type": "evaluator", "index": 0}}))
    est = bridge.Estimator(keras_model_fn, model_dir=model_dir, params={})
    with pytest.raises(ValueError, match="Train has been called wrong configuration"):
        est.train(train_input_fn, steps=1)


def test_params_are_deep_copied(model_dir, train_input_fn):
    params = {"learning_rate": 0.1, "seen": []}

    def model_fn(features, labels, mode, params):
        params["seen"].append(mode)
        return keras_model_fn(features, labels, mode, params)

    est = bridge.Estimator(model_fn, model_dir=model_dir, params=params)
    est.train(train_input_fn, steps=1)
    assert params["seen"] == [] and est.params["seen"] == []
