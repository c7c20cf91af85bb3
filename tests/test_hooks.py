"""Hooks: the SessionRunHook protocol on bridge's traced step, and the stock hooks."""

from __future__ import annotations

import logging
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.conftest import Recorder, keras_model_fn, make_input_fn


def test_custom_hook_sees_values_in_after_run(estimator, train_input_fn):
    hook = Recorder()
    estimator.train(train_input_fn, steps=3, hooks=[hook])
    assert hook.steps == [0, 1, 2]  # the step each batch trains at, read before its update (2.15)
    # tf.estimator 2.15's order: before_run exactly once per run (tests/compat/test_hooks.py).
    assert hook.calls == ["begin", "after_create_session"] + ["before_run", "after_run"] * 3 + ["end"]


def test_hook_fetching_model_tensors_through_spec(model_dir, train_input_fn):
    seen = []

    class LossHook(bridge.SessionRunHook):
        def __init__(self, loss):
            self._loss = loss

        def before_run(self, run_context):
            return bridge.SessionRunArgs([self._loss])

        def after_run(self, run_context, run_values):
            seen.append(run_values.results)

    def model_fn(features, labels, mode, params):
        spec = keras_model_fn(features, labels, mode, params)
        return spec._replace(training_hooks=[LossHook(spec.loss)])

    est = bridge.Estimator(model_fn, model_dir=model_dir, params={})
    est.train(train_input_fn, steps=4)
    assert len(seen) == 4
    assert all(isinstance(v, list) and len(v) == 1 and np.isfinite(v[0]) for v in seen)


def test_training_chief_hooks_run(model_dir, train_input_fn):
    hook = Recorder()

    def model_fn(features, labels, mode, params):
        return keras_model_fn(features, labels, mode, params)._replace(training_chief_hooks=[hook])

    bridge.Estimator(model_fn, model_dir=model_dir, params={}).train(train_input_fn, steps=2)
    assert hook.steps == [0, 1]


def test_hook_request_stop_ends_training(estimator, train_input_fn):
    class StopAt2(bridge.SessionRunHook):
        def begin(self):
            self._step = tf.compat.v1.train.get_global_step()

        def before_run(self, run_context):
            return bridge.SessionRunArgs(self._step)

        def after_run(self, run_context, run_values):
            if run_values.results >= 2:
                run_context.request_stop()

    estimator.train(train_input_fn, hooks=[StopAt2()])
    # The fetched step is the one each batch trains at (0, 1, 2), as in 2.15: the third stops.
    assert int(estimator.get_variable_value("global_step")) == 3


def test_stop_at_step_hook_last_step(estimator, train_input_fn):
    estimator.train(train_input_fn, hooks=[bridge.StopAtStepHook(last_step=4)])
    assert int(estimator.get_variable_value("global_step")) == 4


def test_stop_at_step_hook_num_steps_is_relative(estimator, train_input_fn):
    estimator.train(train_input_fn, steps=2)
    estimator.train(train_input_fn, hooks=[bridge.StopAtStepHook(num_steps=3)])
    assert int(estimator.get_variable_value("global_step")) == 5


def test_stop_at_step_hook_argument_errors():
    with pytest.raises(ValueError, match="One of num_steps or last_step must be specified"):
        bridge.StopAtStepHook()
    with pytest.raises(ValueError, match="Only one of num_steps or last_step can be specified"):
        bridge.StopAtStepHook(num_steps=1, last_step=2)


def test_logging_tensor_hook_every_n_iter(model_dir, train_input_fn, caplog):
    def model_fn(features, labels, mode, params):
        spec = keras_model_fn(features, labels, mode, params)
        hook = bridge.LoggingTensorHook(
            {"the_loss": spec.loss, "the_step": tf.compat.v1.train.get_global_step()}, every_n_iter=2
        )
        return spec._replace(training_hooks=[hook])

    config = bridge.RunConfig(log_step_count_steps=None)
    est = bridge.Estimator(model_fn, model_dir=model_dir, params={}, config=config)
    with caplog.at_level(logging.INFO, logger="bridge"):
        est.train(train_input_fn, steps=5)
    lines = [r.getMessage() for r in caplog.records if "the_loss = " in r.getMessage()]
    # local iterations 0, 2, 4: the global steps those batches trained at (2.15); tags in sorted order.
    assert [int(re.search(r"the_step = (\d+)", line).group(1)) for line in lines] == [0, 2, 4]
    assert all(line.index("the_loss") < line.index("the_step") for line in lines)


def test_logging_tensor_hook_at_end_and_formatter(model_dir, train_input_fn, caplog):
    def model_fn(features, labels, mode, params):
        spec = keras_model_fn(features, labels, mode, params)
        hook = bridge.LoggingTensorHook(
            {"s": tf.compat.v1.train.get_global_step()}, at_end=True, formatter=lambda v: f"final step {v['s']}"
        )
        return spec._replace(training_hooks=[hook])

    est = bridge.Estimator(model_fn, model_dir=model_dir, params={})
    with caplog.at_level(logging.INFO, logger="bridge"):
        est.train(train_input_fn, steps=3)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("final step")] == ["final step 3"]


def test_logging_tensor_hook_argument_errors():
    with pytest.raises(ValueError, match="exactly one of every_n_iter and every_n_secs"):
        bridge.LoggingTensorHook({"a": 1})
    with pytest.raises(ValueError, match="exactly one of every_n_iter and every_n_secs"):
        bridge.LoggingTensorHook({"a": 1}, every_n_iter=1, every_n_secs=1)
    with pytest.raises(ValueError, match="invalid every_n_iter=0"):
        bridge.LoggingTensorHook({"a": 1}, every_n_iter=0)


def test_builtin_loss_and_step_logging(model_dir, train_input_fn, caplog):
    config = bridge.RunConfig(log_step_count_steps=2)
    est = bridge.Estimator(keras_model_fn, model_dir=model_dir, params={}, config=config)
    with caplog.at_level(logging.INFO, logger="bridge"):
        est.train(train_input_fn, steps=6)
    steps = [int(m.group(1)) for r in caplog.records if (m := re.match(r"loss = [-\d.e+]+, step = (\d+)", r.getMessage()))]
    assert steps == [0, 2, 4]  # 2.15 logged the step each batch trained, before the increment
    assert any(r.getMessage().startswith("global_step/sec: ") for r in caplog.records)


def test_nan_tensor_hook_without_failing_requests_stop(model_dir, caplog):
    def model_fn(features, labels, mode):
        predictions = keras.layers.Dense(1)(features["x"])
        loss = tf.reduce_mean(tf.square(predictions - labels))
        step = tf.compat.v1.train.get_global_step()
        # NaN from the 3rd step on; the stock hook with fail_on_nan_loss=False only stops.
        watched = tf.where(step >= 2, tf.constant(np.nan), loss)
        return bridge.EstimatorSpec(
            mode,
            loss=loss,
            train_op=bridge.minimize(loss, keras.optimizers.SGD(0.01)),
            training_hooks=[bridge.NanTensorHook(watched, fail_on_nan_loss=False)],
        )

    est = bridge.Estimator(model_fn, model_dir=model_dir)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        est.train(make_input_fn(epochs=None), steps=10)
    assert "Model diverged with loss = NaN." in caplog.text
    assert int(est.get_variable_value("global_step")) == 3


def test_user_hooks_run_before_the_nan_check(model_dir):
    last = Recorder()
    x = np.ones((10, 3), np.float32)
    x[5:] = np.nan
    est = bridge.Estimator(keras_model_fn, model_dir=model_dir, params={})
    with pytest.raises(bridge.NanLossDuringTrainingError):
        est.train(lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, np.ones((10, 1), np.float32))).batch(5), hooks=[last])
    assert last.steps == [0, 1]  # the user hook saw the NaN step before the NaN hook raised


def test_non_hooks_rejected_with_type_error(estimator, train_input_fn):
    # tf.compat.v1.train hooks are accepted (tests/compat/test_hooks.py); anything else is not.
    with pytest.raises(TypeError, match="Hooks must be a SessionRunHook, given: 1"):
        estimator.train(train_input_fn, hooks=[1])
    with pytest.raises(TypeError, match="Hooks must be a SessionRunHook"):
        estimator.evaluate(make_input_fn(), hooks=[object()])


def test_hooks_given_to_evaluate_and_predict(estimator):
    eval_hook, predict_hook = Recorder(), Recorder()
    estimator.evaluate(make_input_fn(), hooks=[eval_hook])
    list(estimator.predict(make_input_fn(y=None), hooks=[predict_hook]))
    assert eval_hook.steps == [0] * 4 and predict_hook.steps == [0] * 4
    assert eval_hook.calls[-1] == "end" and predict_hook.calls[-1] == "end"


def test_second_or_step_timer():
    timer = bridge.SecondOrStepTimer(every_steps=3)
    assert timer.should_trigger_for_step(0)  # first query always triggers
    timer.update_last_triggered_step(0)
    assert not timer.should_trigger_for_step(0)
    assert not timer.should_trigger_for_step(2)
    assert timer.should_trigger_for_step(3)
    with pytest.raises(ValueError, match="Either every_secs or every_steps"):
        bridge.SecondOrStepTimer()
    with pytest.raises(ValueError, match="Either every_secs or every_steps"):
        bridge.SecondOrStepTimer(every_secs=1, every_steps=1)


def test_logging_tensor_hook_accepts_tensor_names(model_dir, train_input_fn, caplog):
    def model_fn(features, labels, mode, params):
        spec = keras_model_fn(features, labels, mode, params)
        return spec._replace(loss=tf.identity(spec.loss, name="my_loss"))

    config = bridge.RunConfig(log_step_count_steps=None)
    est = bridge.Estimator(model_fn, model_dir=model_dir, params={}, config=config)
    hook = bridge.LoggingTensorHook({"named": "my_loss:0", "short": "my_loss"}, every_n_iter=1)
    with caplog.at_level(logging.INFO, logger="bridge"):
        est.train(train_input_fn, steps=2, hooks=[hook])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("named = ")]
    assert len(lines) == 2
    values = [re.findall(r"(?:named|short) = ([-\d.e+]+)", line) for line in lines]
    assert all(len(v) == 2 and v[0] == v[1] and np.isfinite(float(v[0])) for v in values)
