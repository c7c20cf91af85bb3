"""Estimator.evaluate: loss averaging, metrics, global_step, checkpoints and eval dirs."""

from __future__ import annotations

import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.conftest import X, Y, keras_model_fn, v1_model_fn


def _batch_loss_model_fn(features, labels, mode):
    """loss = mean of the feature column, so each batch's loss is chosen by the data."""
    keras.layers.Dense(1, name="dense")(features["x"][:, None])  # a variable, for checkpoints
    loss = tf.reduce_mean(features["x"])
    return bridge.EstimatorSpec(mode, loss=loss, train_op=tf.no_op())


def _batches_5_and_3_input_fn():
    values = np.array([1.0] * 5 + [4.0] * 3, np.float32)
    return tf.data.Dataset.from_tensor_slices(({"x": values}, values)).batch(5)


def test_loss_is_unweighted_mean_of_batch_losses(model_dir):
    est = bridge.Estimator(_batch_loss_model_fn, model_dir=model_dir)
    result = est.evaluate(_batches_5_and_3_input_fn)
    assert result["loss"] == pytest.approx(2.5)  # not the per-example 2.125
    assert type(result["loss"]) is np.float32


def test_steps_limits_batches(model_dir):
    est = bridge.Estimator(_batch_loss_model_fn, model_dir=model_dir)
    assert est.evaluate(_batches_5_and_3_input_fn, steps=1)["loss"] == pytest.approx(1.0)
    # More steps than batches: stops at exhaustion, no error.
    assert est.evaluate(_batches_5_and_3_input_fn, steps=10)["loss"] == pytest.approx(2.5)


def test_steps_must_be_positive(estimator, eval_input_fn):
    with pytest.raises(ValueError, match="Must specify steps > 0, given: 0"):
        estimator.evaluate(eval_input_fn, steps=0)


def _classifier_model_fn(features, labels, mode):
    """Fixed predictions (x > 0) so that every metric has an exact expected value."""
    keras.layers.Dense(1, name="dense")(features["x"][:, None])
    predictions = tf.cast(features["x"] > 0, tf.int64)
    loss = tf.reduce_mean(tf.cast(tf.not_equal(predictions, labels), tf.float32))
    keras_accuracy = keras.metrics.Accuracy(name="keras_accuracy")
    keras_accuracy.update_state(labels, predictions)
    return bridge.EstimatorSpec(
        mode,
        loss=loss,
        train_op=tf.no_op(),
        eval_metric_ops={
            "keras_accuracy": keras_accuracy,
            "v1_accuracy": tf.compat.v1.metrics.accuracy(labels, predictions),
            "v1_mean": tf.compat.v1.metrics.mean(tf.cast(features["x"], tf.float32)),
        },
    )


_CLS_X = np.array([1.0, -1.0, 2.0, -2.0, 3.0, 1.0, -1.0, 0.5], np.float32)
_CLS_Y = np.array([1, 1, 1, 0, 0, 1, 0, 0], np.int64)  # correct: 1,0,1,1,0,1,1,0 -> 5/8


def _cls_input_fn():
    return tf.data.Dataset.from_tensor_slices(({"x": _CLS_X}, _CLS_Y)).batch(3)


def test_returns_loss_global_step_and_each_metric(model_dir):
    est = bridge.Estimator(_classifier_model_fn, model_dir=model_dir)
    result = est.evaluate(_cls_input_fn)
    assert set(result) == {"keras_accuracy", "v1_accuracy", "v1_mean", "loss", "global_step"}
    # Metrics stream over all 8 examples (batches of 3, 3, 2).
    assert result["keras_accuracy"] == pytest.approx(5 / 8)
    assert result["v1_accuracy"] == pytest.approx(5 / 8)
    assert result["v1_mean"] == pytest.approx(_CLS_X.mean())
    # loss: mean of the 3 per-batch error rates (1/3, 1/3, 1/2).
    assert result["loss"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3, rel=1e-6)
    assert result["global_step"] == 0
    assert type(result["global_step"]) is np.int64
    assert type(result["v1_accuracy"]) is np.float32
    assert type(result["keras_accuracy"]) is np.float32


def test_metrics_do_not_accumulate_across_calls(model_dir):
    est = bridge.Estimator(_classifier_model_fn, model_dir=model_dir)
    first = est.evaluate(_cls_input_fn)
    second = est.evaluate(_cls_input_fn, steps=1)  # first batch only: 2/3 correct
    assert first["v1_accuracy"] == pytest.approx(5 / 8)
    assert second["v1_accuracy"] == pytest.approx(2 / 3)
    assert second["keras_accuracy"] == pytest.approx(2 / 3)


def test_no_checkpoint_evaluates_initialised_variables(estimator, eval_input_fn, caplog):
    with caplog.at_level(logging.INFO, logger="bridge"):
        result = estimator.evaluate(eval_input_fn)
    assert "running initialization to evaluate" in caplog.text
    assert result["global_step"] == 0
    # kernel is zero-initialised: predictions 0, so loss = mean over batches of mean(y^2).
    expected = np.mean([np.mean(Y[i : i + 5] ** 2) for i in range(0, 20, 5)])
    assert result["loss"] == pytest.approx(expected, rel=1e-6)
    assert result["mse"] == pytest.approx(np.mean(Y**2), rel=1e-6)
    assert result["mean_prediction"] == 0.0
    assert estimator.latest_checkpoint() is None  # evaluate never writes checkpoints


def test_restores_latest_checkpoint(estimator, train_input_fn, eval_input_fn):
    estimator.train(train_input_fn, steps=6)
    result = estimator.evaluate(eval_input_fn)
    assert result["global_step"] == 6
    kernel = estimator.get_variable_value("dense/kernel")
    bias = estimator.get_variable_value("dense/bias")
    predictions = X @ kernel + bias
    assert result["mse"] == pytest.approx(np.mean((predictions - Y) ** 2), rel=1e-5)
    assert result["mean_prediction"] == pytest.approx(predictions.mean(), rel=1e-5, abs=1e-6)


def test_checkpoint_path_selects_the_checkpoint(model_dir, train_input_fn, eval_input_fn):
    config = bridge.RunConfig(save_checkpoints_steps=2)
    est = bridge.Estimator(keras_model_fn, model_dir=model_dir, config=config, params={})
    est.train(train_input_fn, steps=6)
    path = os.path.join(model_dir, "model.ckpt-2")
    old = est.evaluate(eval_input_fn, checkpoint_path=path)
    latest = est.evaluate(eval_input_fn)
    assert old["global_step"] == 2
    assert latest["global_step"] == 6
    assert old["loss"] != latest["loss"]


def test_name_selects_eval_dir(estimator, train_input_fn, eval_input_fn):
    estimator.train(train_input_fn, steps=1)
    estimator.evaluate(eval_input_fn)
    assert os.path.isdir(os.path.join(estimator.model_dir, "eval"))
    assert not os.path.exists(os.path.join(estimator.model_dir, "eval_holdout"))
    estimator.evaluate(eval_input_fn, name="holdout")
    assert os.listdir(os.path.join(estimator.model_dir, "eval_holdout"))
    assert estimator.eval_dir() == os.path.join(estimator.model_dir, "eval")
    assert estimator.eval_dir("holdout") == os.path.join(estimator.model_dir, "eval_holdout")


def test_saving_dict_is_logged(estimator, eval_input_fn, caplog):
    with caplog.at_level(logging.INFO, logger="bridge"):
        estimator.evaluate(eval_input_fn)
    assert "Saving dict for global step 0:" in caplog.text


@pytest.mark.parametrize("reserved, fragment", [("loss", 'Metric with name "loss"'), ("global_step", "Metric with name `global_step`")])
def test_reserved_metric_names_rejected(model_dir, eval_input_fn, reserved, fragment):
    def model_fn(features, labels, mode):
        predictions = keras.layers.Dense(1)(features["x"])
        loss = tf.reduce_mean(tf.square(predictions - labels))
        return bridge.EstimatorSpec(mode, loss=loss, eval_metric_ops={reserved: tf.compat.v1.metrics.mean(loss)})

    with pytest.raises(ValueError, match=fragment):
        bridge.Estimator(model_fn, model_dir=model_dir).evaluate(eval_input_fn)


def test_v1_optimizer_train_op_built_in_eval_does_not_run(model_dir, train_input_fn, eval_input_fn):
    """As in tf.estimator, a train_op nothing in EVAL fetches is not run (tests/test_fetch_only.py)."""

    def model_fn(features, labels, mode):
        predictions = keras.layers.Dense(1)(features["x"])
        loss = tf.reduce_mean(tf.square(predictions - labels))
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(
            loss, global_step=tf.compat.v1.train.get_global_step()
        )
        return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op)

    est = bridge.Estimator(model_fn, model_dir=model_dir)
    est.train(train_input_fn, steps=2)
    kernel = est.get_variable_value("dense/kernel")
    first = est.evaluate(eval_input_fn)
    assert first["global_step"] == 2
    assert est.evaluate(eval_input_fn) == first  # the same weights both times
    np.testing.assert_array_equal(est.get_variable_value("dense/kernel"), kernel)


def test_v1_model_fn_evaluates(model_dir, train_input_fn, eval_input_fn):
    est = bridge.Estimator(v1_model_fn, model_dir=model_dir)
    est.train(train_input_fn, steps=3)
    result = est.evaluate(eval_input_fn)
    assert result["global_step"] == 3
    assert set(result) == {"loss", "global_step"}


def test_evaluation_hooks_run(model_dir, eval_input_fn):
    calls = []

    class Recorder(bridge.SessionRunHook):
        def begin(self):
            calls.append("begin")

        def after_run(self, run_context, run_values):
            calls.append("after_run")

        def end(self, session):
            calls.append("end")

    def model_fn(features, labels, mode, params):
        spec = keras_model_fn(features, labels, mode, params)
        return spec._replace(evaluation_hooks=[Recorder()])

    bridge.Estimator(model_fn, model_dir=model_dir, params={}).evaluate(eval_input_fn)
    assert calls == ["begin"] + ["after_run"] * 4 + ["end"]


def test_user_hook_can_stop_evaluation(model_dir):
    class StopAfterFirst(bridge.SessionRunHook):
        def after_run(self, run_context, run_values):
            run_context.request_stop()

    est = bridge.Estimator(_batch_loss_model_fn, model_dir=model_dir)
    assert est.evaluate(_batches_5_and_3_input_fn, hooks=[StopAfterFirst()])["loss"] == pytest.approx(1.0)
