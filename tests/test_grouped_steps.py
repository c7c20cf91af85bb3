"""Grouped steps (``RunConfig.max_steps_per_call``): several steps or batches per traced call,
with exactly the results, logs, summaries and checkpoints of one step per call.

Every test compares a run that groups (a small group, to force many call boundaries on
small data) with the same run at ``max_steps_per_call=1``, which is tf.estimator's one
Session.run per step. A call groups only when it may run at least 4 groups of training steps
or 16 groups of evaluate/predict batches; these use batches of 4 (51 batches, the last of 3).
"""

from __future__ import annotations

import logging
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import bridge
import bridge._step
from tests.conftest import Recorder, checkpoint_steps, global_step_of

RNG = np.random.RandomState(3)
X = RNG.randn(203, 4).astype(np.float32)  # 203 = 12 batches of 16 and a partial batch of 11
Y = (X @ RNG.randn(4, 1) > 0).astype(np.int64)[:, 0]


def input_fn(epochs=1, batch=16, labels=True):
    def fn():
        ds = tf.data.Dataset.from_tensor_slices(({"x": X}, Y) if labels else {"x": X})
        return ds.repeat(epochs).batch(batch)

    return fn


def model_fn(features, labels, mode):
    hidden = keras.layers.Dense(8, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=1))
    out = keras.layers.Dense(2, kernel_initializer=keras.initializers.GlorotUniform(seed=2))
    logits = out(hidden(features["x"]))
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(
            mode, predictions={"logits": logits, "class": tf.argmax(logits, 1), "batch_max": tf.reduce_max(logits)}
        )
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    accuracy.update_state(labels, logits)
    eval_metric_ops = {
        "accuracy": accuracy,
        "host_auc": bridge.metrics.auc(labels, tf.nn.softmax(logits)[:, 1]),
        "host_mean_loss": bridge.metrics.mean(loss),  # a scalar per batch
        "v1_mean_logit": tf.compat.v1.metrics.mean(logits),  # (value, update_op), local variables
    }
    train_op = bridge.minimize(loss, keras.optimizers.Adam(0.05))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, eval_metric_ops=eval_metric_ops)


@pytest.fixture
def call_sizes(monkeypatch):
    """Records the number of steps each traced call ran."""
    sizes: list[int] = []
    original = bridge._step.TracedStep.run

    def run(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        sizes.append(result.steps)
        return result

    monkeypatch.setattr(bridge._step.TracedStep, "run", run)
    return sizes


def config(group, **kwargs):
    return bridge.RunConfig(max_steps_per_call=group, tf_random_seed=7, **kwargs)


def loss_summaries(model_dir):
    steps = {}
    for name in os.listdir(model_dir):
        if name.startswith("events.out.tfevents"):
            acc = event_accumulator.EventAccumulator(os.path.join(model_dir, name), size_guidance={"scalars": 0})
            acc.Reload()
            if "loss" in acc.Tags()["scalars"]:
                steps.update({e.step: e.value for e in acc.Scalars("loss")})
    return steps


def train_twice(tmp_path, caplog, **train_kwargs):
    """Trains with one step per call and grouped; returns both estimators and their logs."""
    runs = []
    for group in (1, 6):
        model_dir = str(tmp_path / f"group{group}")
        est = bridge.Estimator(
            model_fn,
            model_dir=model_dir,
            config=config(group, save_checkpoints_steps=25, save_summary_steps=10, log_step_count_steps=9),
        )
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="bridge"):
            est.train(input_fn(epochs=None), **train_kwargs)
        logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loss = ")]
        runs.append((est, model_dir, logged))
    return runs


def test_train_grouped_matches_one_step_per_call(tmp_path, caplog, call_sizes):
    (single, single_dir, single_log), (grouped, grouped_dir, grouped_log) = train_twice(tmp_path, caplog, steps=70)
    assert global_step_of(single) == global_step_of(grouped) == 70
    for name in single.get_variable_names():
        np.testing.assert_allclose(
            grouped.get_variable_value(name), single.get_variable_value(name), rtol=1e-5, atol=1e-6, err_msg=name
        )
    assert checkpoint_steps(grouped_dir) == checkpoint_steps(single_dir) == [0, 25, 50, 70]
    single_summaries, grouped_summaries = loss_summaries(single_dir), loss_summaries(grouped_dir)
    assert sorted(grouped_summaries) == sorted(single_summaries) == [1, 11, 21, 31, 41, 51, 61]
    np.testing.assert_allclose(
        [grouped_summaries[s] for s in sorted(grouped_summaries)],
        [single_summaries[s] for s in sorted(single_summaries)],
        rtol=1e-5,
    )
    # The logging hook logs the same steps (its iterations 0, 9, 18, ...) with the same values.
    def logged_steps(lines):
        return [int(re.search(r"step = (\d+)", line).group(1)) for line in lines]

    assert logged_steps(grouped_log) == logged_steps(single_log) == [0, 9, 18, 27, 36, 45, 54, 63]
    # The first run was one step per call; the second ran at most 6 per call, mostly more than 1.
    assert call_sizes[:70] == [1] * 70
    grouped_calls = call_sizes[70:]
    assert sum(grouped_calls) == 70 and max(grouped_calls) == 6 and len(grouped_calls) < 35


def test_train_max_steps_and_input_exhaustion_end_on_the_same_step(tmp_path, call_sizes):
    for group in (1, 4):
        est = bridge.Estimator(model_fn, model_dir=str(tmp_path / f"g{group}"), config=config(group))
        est.train(input_fn(epochs=1), max_steps=100)  # 13 batches: input runs out first
        assert global_step_of(est) == 13
        est.train(input_fn(epochs=None, batch=20), max_steps=40)
        assert global_step_of(est) == 40
    single, grouped = call_sizes[:13 + 27], call_sizes[13 + 27:]
    assert single == [1] * 40
    # The first call (13 batches) is too short to group; the second groups by 4 (the step
    # counter and logging hooks see its first step alone).
    assert grouped[:14] == [1] * 14 and sum(grouped) == 40 and max(grouped) == 4


def test_short_calls_run_one_step_per_call(tmp_path, call_sizes):
    est = bridge.Estimator(model_fn, model_dir=str(tmp_path), config=bridge.RunConfig())
    est.train(input_fn(epochs=None), steps=100)  # fewer than 4 x 32 steps
    est.evaluate(input_fn(epochs=9))  # 115 batches: fewer than 16 x 32
    list(est.predict(input_fn(labels=False), predict_keys="class"))  # 13 batches
    assert call_sizes == [1] * (100 + 115 + 13)
    est.train(input_fn(epochs=None), steps=200)
    assert max(call_sizes[228:]) == 32 and sum(call_sizes[228:]) == 200


def test_a_user_hook_gets_every_step(tmp_path, call_sizes):
    recorder = Recorder()
    est = bridge.Estimator(model_fn, model_dir=str(tmp_path), config=config(32))
    est.train(input_fn(epochs=None), steps=10, hooks=[recorder])
    assert recorder.steps == list(range(10))
    assert call_sizes == [1] * 10


def test_a_model_fn_training_hook_gets_every_step(tmp_path, call_sizes):
    recorder = Recorder()

    def hooked_model_fn(features, labels, mode):
        spec = model_fn(features, labels, mode)
        return spec._replace(training_hooks=[recorder])

    est = bridge.Estimator(hooked_model_fn, model_dir=str(tmp_path), config=config(3))
    est.train(input_fn(epochs=None), steps=12)
    assert recorder.steps == list(range(12)) and call_sizes == [1] * 12


def test_nan_loss_stops_a_grouped_call_at_its_step(tmp_path):
    def nan_model_fn(features, labels, mode):
        spec = model_fn(features, labels, mode)
        step = tf.compat.v1.train.get_global_step()
        loss = tf.where(step >= 4, tf.constant(np.nan), spec.loss)  # the 5th step's loss is NaN
        with tf.control_dependencies([spec.train_op]):
            loss = tf.identity(loss)
        return spec._replace(loss=loss)

    est = bridge.Estimator(nan_model_fn, model_dir=str(tmp_path), config=config(4))
    with pytest.raises(bridge.NanLossDuringTrainingError):
        est.train(input_fn(epochs=None), steps=20)
    assert checkpoint_steps(str(tmp_path)) == [0]  # the NaN weights were never saved
    assert int(tf.train.load_variable(str(tmp_path) + "/model.ckpt-0", "global_step")) == 0


def test_checkpoint_keys_do_not_depend_on_grouping(tmp_path):
    def v1_model_fn(features, labels, mode):
        with tf.compat.v1.variable_scope("scoped/dense"):
            kernel = tf.compat.v1.get_variable("kernel", [4, 2], initializer=tf.compat.v1.glorot_uniform_initializer())
            logits = tf.matmul(features["x"], kernel)
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
        train_op = tf.compat.v1.train.AdamOptimizer().minimize(loss, global_step=tf.compat.v1.train.get_global_step())
        return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op)

    names = []
    for group, loops in ((1, 1), (2, 1), (1, 4)):
        est = bridge.Estimator(
            v1_model_fn, model_dir=str(tmp_path / f"{group}-{loops}"), config=config(group, iterations_per_loop=loops)
        )
        names.append(est.train(input_fn(), steps=8).get_variable_names())
    assert names[0] == names[1] == names[2]
    assert "scoped/dense/kernel/Adam" in names[0] and "beta1_power" in names[0]


@pytest.fixture
def trained_dir(tmp_path):
    model_dir = str(tmp_path / "trained")
    bridge.Estimator(model_fn, model_dir=model_dir, config=config(32)).train(input_fn(epochs=None), steps=30)
    return model_dir


@pytest.mark.parametrize("steps", [None, 35])
def test_evaluate_grouped_matches_one_batch_per_call(trained_dir, call_sizes, steps):
    results = []
    for group in (1, 2):
        est = bridge.Estimator(model_fn, model_dir=trained_dir, config=config(group))
        results.append(est.evaluate(input_fn(batch=4), steps=steps, name=f"g{group}"))
    single, grouped = results
    assert set(single) == set(grouped) == {"accuracy", "host_auc", "host_mean_loss", "v1_mean_logit", "loss", "global_step"}
    for key in single:
        np.testing.assert_allclose(grouped[key], single[key], rtol=1e-6, err_msg=key)
    batches = 51 if steps is None else 35
    assert call_sizes[:batches] == [1] * batches
    assert call_sizes[batches:] == [2] * (batches // 2) + [1]
    # The loss is the mean of the per-batch losses, as tf.estimator computed it (the partial batch weighs one batch).
    np.testing.assert_allclose(single["loss"], single["host_mean_loss"], rtol=1e-6)


def test_evaluate_with_hooks_runs_one_batch_per_call(trained_dir, call_sizes):
    calls = []

    class Counter(bridge.SessionRunHook):
        def after_run(self, run_context, run_values):
            calls.append(1)

    bridge.Estimator(model_fn, model_dir=trained_dir, config=config(32)).evaluate(input_fn(), hooks=[Counter()])
    assert len(calls) == 13 and call_sizes == [1] * 13


@pytest.mark.parametrize("single_examples", [True, False])
def test_predict_grouped_matches_one_batch_per_call(trained_dir, call_sizes, single_examples):
    outputs = []
    keys = ["logits", "class"] if single_examples else None  # batch_max has no example dimension
    for group in (1, 3):
        est = bridge.Estimator(model_fn, model_dir=trained_dir, config=config(group))
        outputs.append(list(est.predict(input_fn(batch=4, labels=False), keys, yield_single_examples=single_examples)))
    single, grouped = outputs
    assert len(single) == len(grouped) == (203 if single_examples else 51)
    for a, b in zip(single, grouped):
        assert set(a) == set(b) == set(keys or ["logits", "class", "batch_max"])
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-6)
    if not single_examples:
        assert grouped[-1]["logits"].shape == (3, 2) and grouped[-1]["batch_max"].shape == ()
    assert call_sizes == [1] * 51 + [3] * 17


def test_a_scalar_prediction_cannot_be_split_into_examples(trained_dir):
    est = bridge.Estimator(model_fn, model_dir=trained_dir, config=config(4))
    with pytest.raises(ValueError, match="'batch_max' is a scalar per batch"):
        list(est.predict(input_fn(labels=False)))


def test_predict_is_lazy_per_group(trained_dir, call_sizes):
    est = bridge.Estimator(model_fn, model_dir=trained_dir, config=config(4))
    predictions = est.predict(input_fn(epochs=None, labels=False), predict_keys="class")
    first = [next(predictions) for _ in range(3)]
    assert [set(p) for p in first] == [{"class"}] * 3
    predictions.close()
    assert call_sizes == [4]


def predicting(make_predictions):
    """model_fn, with PREDICT's predictions replaced by ``make_predictions(logits)``."""

    def wrapped(features, labels, mode):
        spec = model_fn(features, labels, mode)
        if mode != bridge.ModeKeys.PREDICT:
            return spec
        return bridge.EstimatorSpec(mode, predictions=make_predictions(spec.predictions["logits"]))

    return wrapped


def test_predict_of_unknown_rank_falls_back_to_one_batch_per_call(trained_dir, call_sizes):
    unknown_rank_model_fn = predicting(
        lambda logits: {"twice": tf.numpy_function(lambda a: a * 2, [logits], tf.float32)}  # no static shape
    )
    est = bridge.Estimator(unknown_rank_model_fn, model_dir=trained_dir, config=config(3))
    batches = list(est.predict(input_fn(batch=4, labels=False), yield_single_examples=False))
    assert len(batches) == 51 and batches[-1]["twice"].shape == (3, 2)
    assert call_sizes == [1] * 51


def test_max_steps_per_call_is_validated():
    for bad in (0, -1, 2.0, True, None):
        with pytest.raises(ValueError, match="max_steps_per_call"):
            bridge.RunConfig(max_steps_per_call=bad)
    assert bridge.RunConfig().max_steps_per_call == 32
    assert bridge.RunConfig().replace(max_steps_per_call=1).max_steps_per_call == 1


def test_the_step_is_called_through_the_flat_path(tmp_path, monkeypatch):
    """Guards the fast call (pre-flattened arguments) against TensorFlow internals moving."""
    callers = []
    original = bridge._step._flat_caller

    def spy(function, iterator, looped):
        call = original(function, iterator, looped)
        callers.append(call.__name__)
        return call

    monkeypatch.setattr(bridge._step, "_flat_caller", spy)
    est = bridge.Estimator(model_fn, model_dir=str(tmp_path), config=config(2))
    est.train(input_fn(epochs=None), steps=3)  # one step per call
    est.train(input_fn(epochs=None), steps=9)  # grouped
    assert callers == ["call", "call"]  # not the fallback lambda
    assert global_step_of(est) == 12


def test_predictions_whose_shape_changes_per_batch_are_collected(trained_dir, call_sizes):
    """A per-batch sequence length (here 2 for full batches, 1 for the last) groups like the rest."""

    def ragged(logits):
        length = tf.shape(logits)[0] % 3 + 1  # batch 4 -> 2, batch 3 -> 1: static shape [None, None]
        return {"seq": tf.tile(logits[:, :1], [1, length]), "n": tf.shape(logits)[0]}

    ragged_model_fn = predicting(ragged)
    outputs = []
    for group in (1, 3):
        est = bridge.Estimator(ragged_model_fn, model_dir=trained_dir, config=config(group))
        outputs.append(list(est.predict(input_fn(batch=4, labels=False), yield_single_examples=False)))
    single, grouped = outputs
    assert [b["seq"].shape for b in grouped] == [(4, 2)] * 50 + [(3, 1)]
    assert [int(b["n"]) for b in grouped] == [4] * 50 + [3] and grouped[0]["n"].shape == ()
    for a, b in zip(single, grouped):
        np.testing.assert_allclose(b["seq"], a["seq"], rtol=1e-6)
    assert call_sizes == [1] * 51 + [3] * 17


def test_a_saving_listener_stops_a_grouped_run_on_its_checkpoint(tmp_path, call_sizes):
    class StopAtThirdSave(bridge.CheckpointSaverListener):
        def __init__(self):
            self.saved = []

        def after_save(self, session, global_step_value):
            self.saved.append(global_step_value)
            return len(self.saved) == 3  # the start (0), then 10, then 20

    listener = StopAtThirdSave()
    est = bridge.Estimator(model_fn, model_dir=str(tmp_path), config=config(4, save_checkpoints_steps=10))
    est.train(input_fn(epochs=None), steps=100, saving_listeners=[listener])
    assert listener.saved == [0, 10, 20] and global_step_of(est) == 20
    assert max(call_sizes) == 4 and sum(call_sizes) == 20
