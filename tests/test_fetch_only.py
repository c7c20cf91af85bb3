"""Evaluate and predict run only what their outputs need (issue 18; docs/design.md, "Only what
the outputs need runs").

A model_fn may build its train_op in every mode, as tf.estimator 2.15 allowed: a Session ran
only the fetched ops. The model_fns here do so in four 2.15 ways (v1 ``minimize`` with and
without ``global_step``, ``tf.group(minimize, update_ops)``, v1 Adam with slots) and through
Keras 3 optimizers; evaluate and predict give 2.15's recorded numbers on 2.15's own checkpoints
(tests/fixtures/legacy_2_15/fetch_only, written by its record.py) and leave the weights, the
optimizer state and the global step bit-identical, checked inside the step by a hook.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
import bridge._step

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "legacy_2_15", "fetch_only")
with open(os.path.join(FIXTURE, "facts.json")) as _handle:
    FACTS = json.load(_handle)
_spec = importlib.util.spec_from_file_location("fetch_only_record", os.path.join(FIXTURE, "record.py"))
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)
with open(os.path.join(FIXTURE, "keras_bridge_minimize.json")) as _handle:
    KERAS_FACTS = json.load(_handle)  # 2.15's evaluate of a checkpoint bridge trained with a Keras optimizer

X_EVAL = np.array(FACTS["x_eval"], np.float32)
Y_EVAL = np.array(FACTS["y_eval"], np.int64)
STATE = ("w", "b", "moving_mean", "global_step")


def legacy_model_dir(tmp_path, variant):
    target = str(tmp_path / variant)
    shutil.copytree(os.path.join(FIXTURE, "model_dirs", variant), target)
    return target


def eval_input_fn(unknown_size=False):
    def fn():
        ds = tf.data.Dataset.from_tensor_slices(({"x": X_EVAL}, Y_EVAL)).batch(FACTS["batch"])
        return ds.filter(lambda features, labels: True) if unknown_size else ds  # unknown size: grouped calls

    return fn


def predict_input_fn(unknown_size=False):
    def fn():
        ds = tf.data.Dataset.from_tensor_slices({"x": X_EVAL}).batch(FACTS["batch"])
        return ds.filter(lambda features: True) if unknown_size else ds

    return fn


def model_fn_for(make_train_op=None):
    def model_fn(features, labels, mode, params):
        return record.build(features, labels, mode, params, bridge.EstimatorSpec, make_train_op)

    return model_fn


class StateWatcher(bridge.SessionRunHook):
    """Fetches the model's variables on every step (inside the traced step, after the outputs)."""

    def __init__(self, names=STATE):
        self.names, self.seen = names, []

    def begin(self):
        variables = {v.name.split(":")[0]: v for v in tf.compat.v1.global_variables()}
        variables["global_step"] = tf.compat.v1.train.get_global_step()
        self._fetches = {name: tf.identity(variables[name]) for name in self.names}

    def before_run(self, run_context):
        return bridge.SessionRunArgs(self._fetches)

    def after_run(self, run_context, run_values):
        self.seen.append({name: np.array(value) for name, value in run_values.results.items()})


def assert_state_unchanged(watcher, checkpoint_values, steps):
    assert len(watcher.seen) == steps
    for seen in watcher.seen:
        for name, value in checkpoint_values.items():
            np.testing.assert_array_equal(seen[name], value, err_msg=name)  # bit-identical


def checkpoint_values(est, names=STATE):
    return {name: est.get_variable_value(name) for name in names}


def assert_2_15_evaluate(result, variant):
    expected = KERAS_FACTS["evaluate"] if variant == "keras_bridge_minimize" else FACTS["variants"][variant]["evaluate"]
    assert set(result) == set(expected)
    assert result["global_step"] == FACTS["train_steps"]
    for key in ("loss", "accuracy", "mean_probability"):
        np.testing.assert_allclose(result[key], expected[key], rtol=1e-6, err_msg=key)


VARIANTS = tuple(FACTS["variants"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_train_op_built_in_every_mode_evaluates_as_2_15_without_changing_the_model(tmp_path, variant):
    model_dir = legacy_model_dir(tmp_path, variant)
    est = bridge.Estimator(model_fn_for(), model_dir=model_dir, params={"variant": variant})
    before = checkpoint_values(est)
    watcher = StateWatcher()
    result = est.evaluate(eval_input_fn(), hooks=[watcher])
    assert_2_15_evaluate(result, variant)
    batches = len(X_EVAL) // FACTS["batch"]
    assert_state_unchanged(watcher, before, batches)
    for name, value in checkpoint_values(est).items():
        np.testing.assert_array_equal(value, before[name])
    # The slots a v1 optimizer builds in EVAL are restored and left alone too.
    slots = [name for name in FACTS["variants"][variant]["variables"] if name not in STATE]
    if slots:
        slot_watcher = StateWatcher(slots)
        est.evaluate(eval_input_fn(), hooks=[slot_watcher])
        assert_state_unchanged(slot_watcher, checkpoint_values(est, slots), batches)


@pytest.mark.parametrize("variant", VARIANTS)
def test_train_op_built_in_every_mode_predicts_as_2_15_without_changing_the_model(tmp_path, variant):
    model_dir = legacy_model_dir(tmp_path, variant)
    est = bridge.Estimator(model_fn_for(), model_dir=model_dir, params={"variant": variant})
    before = checkpoint_values(est)
    watcher = StateWatcher()
    predictions = list(est.predict(predict_input_fn(), hooks=[watcher]))
    expected = FACTS["variants"][variant]
    np.testing.assert_allclose([p["probabilities"] for p in predictions], expected["probabilities"], rtol=1e-6)
    assert [int(p["class_ids"]) for p in predictions] == expected["class_ids"]
    assert_state_unchanged(watcher, before, len(X_EVAL) // FACTS["batch"])


@pytest.mark.parametrize("variant", ["v1_minimize_global_step", "group_minimize_update_ops"])
def test_grouped_evaluate_and_predict_leave_the_model_alone(tmp_path, variant, monkeypatch):
    """Grouped calls (no hooks, input of unknown size) run model_fn's step inside a loop."""
    calls = []
    original = bridge._step.TracedStep.run
    monkeypatch.setattr(bridge._step.TracedStep, "run", lambda self, *a, **k: calls.append(self.iterations) or original(self, *a, **k))
    model_dir = legacy_model_dir(tmp_path, variant)
    config = bridge.RunConfig(max_steps_per_call=2)
    est = bridge.Estimator(model_fn_for(), model_dir=model_dir, config=config, params={"variant": variant})
    result = est.evaluate(eval_input_fn(unknown_size=True))
    assert set(calls) == {2}  # grouped
    assert_2_15_evaluate(result, variant)
    predictions = list(est.predict(predict_input_fn(unknown_size=True)))
    np.testing.assert_allclose(
        [p["probabilities"] for p in predictions], FACTS["variants"][variant]["probabilities"], rtol=1e-6
    )


def keras_apply_gradients(loss, global_step, update_ops):
    """A Keras 3 optimizer applied directly (not through bridge.minimize), plus the step increment."""
    variables = tf.compat.v1.trainable_variables()
    optimizer = keras.optimizers.SGD(0.5, momentum=0.9)
    optimizer.apply_gradients(zip(tf.gradients(loss, variables), variables))
    return tf.compat.v1.assign_add(global_step, 1)


def bridge_minimize(loss, global_step, update_ops):
    """The Keras 3 train_op record_keras.py trained the keras_bridge_minimize checkpoint with."""
    return tf.group(bridge.minimize(loss, keras.optimizers.SGD(0.5, momentum=0.9)), update_ops)


def test_keras_optimizer_through_bridge_minimize_evaluates_and_predicts_as_2_15(tmp_path):
    """bridge trained this checkpoint with a Keras 3 optimizer; 2.15 evaluated it (record_keras.py)."""
    variant = "keras_bridge_minimize"
    est = bridge.Estimator(model_fn_for(bridge_minimize), model_dir=legacy_model_dir(tmp_path, variant), params={"variant": variant})
    optimizer_state = [name for name in est.get_variable_names() if name.startswith("sgd/")]
    assert optimizer_state  # the Keras optimizer's iteration, learning rate and momentums
    before = checkpoint_values(est)
    watcher = StateWatcher()
    assert_2_15_evaluate(est.evaluate(eval_input_fn(), hooks=[watcher]), variant)
    assert_state_unchanged(watcher, before, len(X_EVAL) // FACTS["batch"])
    predictions = list(est.predict(predict_input_fn()))
    np.testing.assert_allclose([p["probabilities"] for p in predictions], KERAS_FACTS["probabilities"], rtol=1e-6)


@pytest.mark.parametrize("make_train_op", [bridge_minimize, keras_apply_gradients], ids=["bridge_minimize", "apply_gradients"])
def test_keras_optimizer_built_in_every_mode_trains_evaluates_and_predicts(tmp_path, make_train_op):
    """Train with bridge, then evaluate/predict leave weights, optimizer state and step alone."""
    est = bridge.Estimator(
        model_fn_for(make_train_op), model_dir=str(tmp_path / "model"), params={"variant": "unused"}
    )

    def train_input_fn():
        x, y = record.data(48, 0)
        return tf.data.Dataset.from_tensor_slices(({"x": x}, y)).repeat().batch(8)

    est.train(train_input_fn, steps=5)
    assert int(est.get_variable_value("global_step")) == 5
    assert np.any(est.get_variable_value("moving_mean") != 0) == (make_train_op is bridge_minimize)
    names = [n for n in est.get_variable_names() if n not in ("global_step",)]
    optimizer_state = [n for n in names if n.startswith("sgd/")]
    assert optimizer_state  # Keras optimizer state is in the checkpoint
    before = checkpoint_values(est, STATE)
    watcher = StateWatcher()
    result = est.evaluate(eval_input_fn(), hooks=[watcher])
    assert result["global_step"] == 5
    assert_state_unchanged(watcher, before, 3)
    predict_watcher = StateWatcher()
    list(est.predict(predict_input_fn(), hooks=[predict_watcher]))
    assert_state_unchanged(predict_watcher, before, 3)


def test_prediction_that_depends_on_a_write_is_still_refused(tmp_path):
    """A train_op the outputs wait for (tf.control_dependencies) would change the model: refused."""
    variant = "v1_minimize_global_step"

    def model_fn(features, labels, mode, params):
        spec = record.build(features, labels, mode, params, bridge.EstimatorSpec)
        with tf.control_dependencies([spec.train_op]):
            probabilities = tf.identity(spec.predictions["probabilities"])
        if mode == bridge.ModeKeys.PREDICT:
            return bridge.EstimatorSpec(mode, predictions={"probabilities": probabilities})
        return bridge.EstimatorSpec(mode, loss=spec.loss, eval_metric_ops={"p": tf.compat.v1.metrics.mean(probabilities)})

    est = bridge.Estimator(model_fn, model_dir=legacy_model_dir(tmp_path, variant), params={"variant": variant})
    written = r"change model variables: \['b', 'global_step', 'w'\]"
    with pytest.raises(ValueError, match=r"In eval mode the outputs of model_fn .*" + written):
        est.evaluate(eval_input_fn())
    with pytest.raises(ValueError, match=r"In infer mode the outputs .*" + written):
        list(est.predict(predict_input_fn()))


def test_an_assign_whose_value_is_predicted_is_refused(tmp_path):
    def model_fn(features, labels, mode):
        counter = tf.compat.v1.get_variable("counter", [], initializer=tf.compat.v1.zeros_initializer())
        x = keras.layers.Dense(1, name="dense")(features["x"])
        return bridge.EstimatorSpec(mode, predictions={"x": x, "calls": tf.compat.v1.assign_add(counter, 1.0) + 0 * x[:, 0]})

    est = bridge.Estimator(model_fn, model_dir=str(tmp_path / "model"))
    with pytest.raises(ValueError, match=r"change model variables: \['counter'\]"):
        list(est.predict(predict_input_fn()))


def test_train_runs_train_op_but_not_eval_metric_ops(tmp_path, monkeypatch):
    """TRAIN runs train_op, loss and hook fetches; metric updates nothing fetches are left out."""
    hidden = []
    original = bridge._step.TracedStep._run_only_needed

    def record_hidden(self, graph, first, flat):
        original(self, graph, first, flat)
        hidden.append(graph.get_operations())

    monkeypatch.setattr(bridge._step.TracedStep, "_run_only_needed", record_hidden)
    est = bridge.Estimator(model_fn_for(), model_dir=str(tmp_path / "model"), params={"variant": "group_minimize_update_ops"})

    def train_input_fn():
        x, y = record.data(48, 0)
        return tf.data.Dataset.from_tensor_slices(({"x": x}, y)).repeat().batch(8)

    est.train(train_input_fn, steps=3)
    assert int(est.get_variable_value("global_step")) == 3
    assert np.any(est.get_variable_value("moving_mean") != 0)  # update_ops grouped into train_op ran
    assert np.any(est.get_variable_value("w/Momentum") != 0)
    run_in_train = hidden[0]
    # The v1 metrics' update ops (AssignAddVariableOp on their local total/count) are not in the step.
    metric_writes = [op for op in run_in_train if op.type == "AssignAddVariableOp" and "mean" in op.name]
    assert not metric_writes
    assert any(op.type == "ResourceApplyMomentum" for op in run_in_train)


def test_keras_metric_object_updates_run_in_eval_but_not_in_train(tmp_path):
    """A Keras metric updates in update_state and reads in result(): the update runs when fetched."""
    x, y = record.data(48, 0)

    def model_fn(features, labels, mode):
        logits = keras.layers.Dense(3, name="dense")(features["x"])
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="acc")
        accuracy.update_state(labels, logits)
        return bridge.EstimatorSpec(
            mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.1)), eval_metric_ops={"acc": accuracy}
        )

    est = bridge.Estimator(model_fn, model_dir=str(tmp_path / "model"))
    est.train(lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).repeat().batch(8), steps=4)
    result = est.evaluate(lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(8))
    kernel, bias = est.get_variable_value("dense/kernel"), est.get_variable_value("dense/bias")
    expected = np.mean(np.argmax(x @ kernel + bias, 1) == y)
    np.testing.assert_allclose(result["acc"], expected, rtol=1e-6)


def test_hook_fetching_an_operation_runs_it_and_gets_none(tmp_path):
    """A hook may fetch an Operation (as Session.run allowed): it runs, and its value is None."""
    x, y = record.data(48, 0)

    class OpFetcher(bridge.SessionRunHook):
        def begin(self):
            self.counter = tf.compat.v1.get_variable(
                "hook_counter", [], initializer=tf.compat.v1.zeros_initializer(), trainable=False,
                collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES],
                synchronization=tf.VariableSynchronization.ON_READ, aggregation=tf.VariableAggregation.SUM,
            )
            self.increment = self.counter.assign_add(1.0, read_value=False)
            self.value = self.counter.read_value()  # after the increment, in program order
            self.results = []

        def before_run(self, run_context):
            return bridge.SessionRunArgs({"op": self.increment, "value": self.value})

        def after_run(self, run_context, run_values):
            self.results.append(run_values.results)

    def model_fn(features, labels, mode):
        logits = keras.layers.Dense(3, name="dense")(features["x"])
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.1)))

    est = bridge.Estimator(model_fn, model_dir=str(tmp_path / "model"))
    hook = OpFetcher()
    est.evaluate(lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(16), hooks=[hook])
    assert [r["op"] for r in hook.results] == [None, None, None]
    assert [float(r["value"]) for r in hook.results] == [1.0, 2.0, 3.0]


def test_a_hook_fetch_left_out_of_a_call_is_not_computed(tmp_path):
    """Outputs fetched only on some steps (v1 summaries): the other calls skip their computation."""
    x, y = record.data(48, 0)
    computed = []

    def expensive(value):
        computed.append(float(value))
        return np.float32(value * 2)

    class EveryThirdStep(bridge.SessionRunHook):
        def begin(self):
            loss = tf.compat.v1.get_default_graph().get_tensor_by_name("my_loss:0")  # by name, as v1 hooks do
            doubled = tf.numpy_function(expensive, [loss], tf.float32, stateful=False)
            step = tf.compat.v1.train.get_global_step()
            self._due, self._other = bridge.SessionRunArgs({"doubled": doubled, "step": step}), bridge.SessionRunArgs({"step": step})
            self.calls, self.doubled, self.due_runs = 0, [], 0

        def before_run(self, run_context):
            self.calls += 1
            return self._due if self.calls % 3 == 1 else self._other

        def after_run(self, run_context, run_values):
            if "doubled" in run_values.results:
                self.doubled.append(float(run_values.results["doubled"]))

    def model_fn(features, labels, mode):
        logits = keras.layers.Dense(3, name="dense")(features["x"])
        loss = tf.identity(
            tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)), name="my_loss"
        )
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.1)))

    hook = EveryThirdStep()
    est = bridge.Estimator(model_fn, model_dir=str(tmp_path / "model"), config=bridge.RunConfig(max_steps_per_call=1))
    est.train(lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).repeat().batch(8), steps=7, hooks=[hook])
    assert int(est.get_variable_value("global_step")) == 7
    # The trace's before_run (call 1) declared both fetches; of the 7 steps, those whose request
    # asked for the value (every third call) computed it, and only those.
    due = sum(1 for call in range(hook.calls - 6, hook.calls + 1) if call % 3 == 1)  # the steps' calls
    assert len(hook.doubled) == due and 2 <= due < 7
    assert computed == [value / 2 for value in hook.doubled]
