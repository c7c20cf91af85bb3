"""TensorBoard event files, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import bridge
from tests.conftest import keras_model_fn, make_input_fn


def _scalars(logdir):
    """{tag: [(step, value), ...]} from every event file in logdir (TF2 writes scalars as tensors)."""
    acc = event_accumulator.EventAccumulator(logdir, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    result = {}
    for tag in acc.Tags()["tensors"]:
        result[tag] = [(e.step, tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
    return result


def test_loss_and_steps_per_sec_in_model_dir(model_dir, train_input_fn):
    config = bridge.RunConfig(save_summary_steps=10, log_step_count_steps=10)
    bridge.Estimator(keras_model_fn, model_dir=model_dir, config=config, params={}).train(train_input_fn, steps=31)
    scalars = _scalars(model_dir)
    # loss on the first step then every save_summary_steps global steps; steps/sec from the 2nd trigger.
    assert [step for step, _ in scalars["loss"]] == [1, 11, 21, 31]
    assert [step for step, _ in scalars["global_step/sec"]] == [11, 21, 31]
    assert all(np.isfinite(v) and v > 0 for _, v in scalars["global_step/sec"])
    assert all(v.dtype == np.float32 and v.shape == () for _, v in scalars["loss"])


def test_logged_loss_is_the_step_loss(model_dir):
    losses = []

    class LossHook(bridge.SessionRunHook):
        def __init__(self, loss):
            self._loss = loss

        def before_run(self, run_context):
            return bridge.SessionRunArgs(self._loss)

        def after_run(self, run_context, run_values):
            losses.append(float(run_values.results))

    def model_fn(features, labels, mode, params):
        spec = keras_model_fn(features, labels, mode, params)
        return spec._replace(training_hooks=[LossHook(spec.loss)])

    config = bridge.RunConfig(save_summary_steps=2)
    bridge.Estimator(model_fn, model_dir=model_dir, config=config, params={}).train(make_input_fn(epochs=None), steps=5)
    logged = _scalars(model_dir)["loss"]
    assert [s for s, _ in logged] == [1, 3, 5]
    np.testing.assert_allclose([float(v) for _, v in logged], [losses[0], losses[2], losses[4]], rtol=1e-6)


def test_save_summary_steps_zero_writes_no_loss(model_dir, train_input_fn):
    config = bridge.RunConfig(save_summary_steps=0, log_step_count_steps=None)
    bridge.Estimator(keras_model_fn, model_dir=model_dir, config=config, params={}).train(train_input_fn, steps=3)
    assert "loss" not in _scalars(model_dir)


def test_eval_metrics_in_eval_dir(estimator, train_input_fn):
    estimator.train(train_input_fn, steps=4)
    result = estimator.evaluate(make_input_fn())
    scalars = _scalars(os.path.join(estimator.model_dir, "eval"))
    for key in ("loss", "mse", "mean_prediction"):
        assert scalars[key] == [(4, pytest.approx(result[key]))], key
    assert "global_step" not in scalars
    acc = event_accumulator.EventAccumulator(os.path.join(estimator.model_dir, "eval"))
    acc.Reload()
    text = [e for e in acc.Tensors("checkpoint_path")]
    assert text and text[0].step == 4
    assert tf.make_ndarray(text[0].tensor_proto).item().decode().endswith("model.ckpt-4")


def test_named_eval_writes_eval_name_dir(estimator, train_input_fn):
    estimator.train(train_input_fn, steps=2)
    result = estimator.evaluate(make_input_fn(), name="holdout")
    estimator.train(train_input_fn, steps=2)
    second = estimator.evaluate(make_input_fn(), name="holdout")
    scalars = _scalars(os.path.join(estimator.model_dir, "eval_holdout"))
    assert scalars["loss"] == [(2, pytest.approx(result["loss"])), (4, pytest.approx(second["loss"]))]
    assert not os.path.exists(os.path.join(estimator.model_dir, "eval"))


def test_eval_without_checkpoint_writes_step_zero(estimator):
    result = estimator.evaluate(make_input_fn())
    scalars = _scalars(estimator.eval_dir())
    assert scalars["loss"] == [(0, pytest.approx(result["loss"]))]
    assert "checkpoint_path" not in scalars
