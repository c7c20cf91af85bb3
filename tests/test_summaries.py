"""TensorBoard event files, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import glob
import json
import os
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import bridge
from tests.conftest import CLASSES, keras_model_fn, make_input_fn


def classifier_model_fn(features, labels, mode):
    """The fixture's model: a 2-class dense layer, accuracy as the eval metric."""
    logits = keras.layers.Dense(2)(features["x"])
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    accuracy.update_state(labels, logits)
    train_op = bridge.minimize(loss, keras.optimizers.SGD(0.1))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, eval_metric_ops={"accuracy": accuracy})


FACTS = json.loads((pathlib.Path(__file__).parent / "fixtures/legacy_2_15/console_and_events/facts.json").read_text())


def _scalars(logdir):
    """{tag: [(step, value), ...]} as TensorBoard's EventAccumulator reads scalars from logdir.

    Also checks the classic reader, tf.compat.v1.train.summary_iterator, finds the same
    ``simple_value`` scalars (the two readers scripts use; TF2 tensor summaries are invisible to both).
    """
    acc = event_accumulator.EventAccumulator(logdir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    result = {tag: [(e.step, np.float32(e.value)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert _simple_values(logdir) == result
    return result


def _simple_values(logdir):
    result = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    result.setdefault(value.tag, []).append((event.step, np.float32(value.simple_value)))
    return result


def test_loss_and_steps_per_sec_in_model_dir(model_dir, train_input_fn):
    config = bridge.RunConfig(save_summary_steps=10, log_step_count_steps=10)
    bridge.Estimator(keras_model_fn, model_dir=model_dir, config=config, params={}).train(train_input_fn, steps=31)
    scalars = _scalars(model_dir)
    # loss on the first step then every save_summary_steps global steps; steps/sec from the 2nd trigger.
    assert [step for step, _ in scalars["loss"]] == [1, 11, 21, 31]
    assert [step for step, _ in scalars["global_step/sec"]] == [11, 21, 31]
    assert all(np.isfinite(v) and v > 0 for _, v in scalars["global_step/sec"])


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


def test_scalar_tags_and_steps_match_tf_estimator_2_15(tmp_path):
    """The fixture's run on bridge: train 30 steps, resume for 10, evaluate(steps=200)."""
    model_dir = str(tmp_path / "model")
    config = bridge.RunConfig(save_summary_steps=10, log_step_count_steps=10, save_checkpoints_steps=20)
    estimator = bridge.Estimator(classifier_model_fn, model_dir=model_dir, config=config)
    estimator.train(make_input_fn(y=CLASSES, epochs=None), steps=30)
    estimator.train(make_input_fn(y=CLASSES, epochs=None), steps=10)
    estimator.evaluate(make_input_fn(y=CLASSES, epochs=None), steps=200)

    for run, logdir in (("train", model_dir), ("eval", os.path.join(model_dir, "eval"))):
        expected = {(e["tag"], e["step"]) for e in FACTS["events"][run] if e["kind"] == "simple_value"}
        got = {(tag, step) for tag, values in _scalars(logdir).items() for step, _ in values}
        assert got == expected, run


def test_eval_scalars_are_one_event_as_in_2_15(estimator, train_input_fn):
    estimator.train(train_input_fn, steps=2)
    estimator.evaluate(make_input_fn())
    (path,) = glob.glob(os.path.join(estimator.eval_dir(), "events.out.tfevents.*"))
    events = [e for e in tf.compat.v1.train.summary_iterator(path) if e.summary.value]
    tags = [[v.tag for v in e.summary.value if v.HasField("simple_value")] for e in events]
    assert sorted(tags[0]) == ["loss", "mean_prediction", "mse"]
