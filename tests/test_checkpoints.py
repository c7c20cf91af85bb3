"""Checkpoint policy (tf.estimator 2.15's CheckpointSaverHook + Saver), crash safety and the model_dir lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.conftest import checkpoint_steps, global_step_of, keras_model_fn, make_input_fn


def _estimator(model_dir, **config):
    return bridge.Estimator(keras_model_fn, model_dir=model_dir, config=bridge.RunConfig(**config), params={})


def test_default_policy_checkpoints_at_start_and_end(model_dir, train_input_fn):
    est = _estimator(model_dir)
    est.train(train_input_fn, steps=5)
    assert checkpoint_steps(model_dir) == [0, 5]
    est.train(train_input_fn, steps=2)
    assert checkpoint_steps(model_dir) == [0, 5, 7]


def test_save_checkpoints_steps(model_dir, train_input_fn):
    _estimator(model_dir, save_checkpoints_steps=2).train(train_input_fn, steps=5)
    assert checkpoint_steps(model_dir) == [0, 2, 4, 5]


def test_keep_checkpoint_max(model_dir, train_input_fn):
    est = _estimator(model_dir, save_checkpoints_steps=1, keep_checkpoint_max=2)
    est.train(train_input_fn, steps=5)
    assert checkpoint_steps(model_dir) == [4, 5]
    state = tf.train.get_checkpoint_state(model_dir)
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["model.ckpt-4", "model.ckpt-5"]
    # A second train() call keeps counting the checkpoints the first one left.
    est.train(train_input_fn, steps=2)
    assert checkpoint_steps(model_dir) == [6, 7]


def test_keep_checkpoint_max_zero_keeps_all(model_dir, train_input_fn):
    _estimator(model_dir, save_checkpoints_steps=1, keep_checkpoint_max=0).train(train_input_fn, steps=7)
    assert checkpoint_steps(model_dir) == list(range(8))


def test_checkpoint_state_uses_relative_paths(model_dir, train_input_fn):
    _estimator(model_dir).train(train_input_fn, steps=1)
    with open(os.path.join(model_dir, "checkpoint")) as f:
        text = f.read()
    assert 'model_checkpoint_path: "model.ckpt-1"' in text
    assert model_dir not in text


def test_save_checkpoints_secs(model_dir, train_input_fn):
    class Slow(bridge.SessionRunHook):
        def after_run(self, run_context, run_values):
            time.sleep(0.15)

    # keep every checkpoint: on a loaded machine the run takes longer and saves more often
    est = _estimator(model_dir, save_checkpoints_secs=0.4, keep_checkpoint_max=100)
    est.train(train_input_fn, steps=12, hooks=[Slow()])
    steps = checkpoint_steps(model_dir)
    assert steps[0] == 0 and steps[-1] == 12
    middle = steps[1:-1]
    assert len(middle) >= 2, steps  # >= 1.8 s of training, one save per ~0.4 s
    # timed saves are >= 0.4 s apart; the first step (it includes the trace) may alone outlast 0.4 s, and
    # the save at the end comes whatever the timer says
    assert all(b - a >= 2 for a, b in zip(middle[:-1], middle[1:])), steps


def test_no_checkpoints_when_both_intervals_are_none(model_dir, train_input_fn):
    est = _estimator(model_dir, save_checkpoints_steps=None, save_checkpoints_secs=None)
    est.train(train_input_fn, steps=3)
    assert checkpoint_steps(model_dir) == []
    assert est.latest_checkpoint() is None
    assert not os.path.exists(os.path.join(model_dir, "checkpoint"))
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(model_dir))
    with pytest.raises(ValueError, match="Could not find trained model in model_dir"):
        est.get_variable_names()


class Listener(bridge.CheckpointSaverListener):
    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def begin(self):
        self.calls.append("begin")

    def before_save(self, session, global_step_value):
        self.calls.append(("before_save", global_step_value))

    def after_save(self, session, global_step_value):
        self.calls.append(("after_save", global_step_value))
        return self.stop_at is not None and global_step_value >= self.stop_at

    def end(self, session, global_step_value):
        self.calls.append(("end", global_step_value))


def test_saving_listeners_called_around_each_save(model_dir, train_input_fn):
    listener = Listener()
    _estimator(model_dir, save_checkpoints_steps=2).train(train_input_fn, steps=3, saving_listeners=[listener])
    assert listener.calls == [
        "begin",
        ("before_save", 0), ("after_save", 0),
        ("before_save", 2), ("after_save", 2),
        ("before_save", 3), ("after_save", 3),
        ("end", 3),
    ]


def test_saving_listener_after_save_true_stops_training(model_dir, train_input_fn):
    listener = Listener(stop_at=4)
    est = _estimator(model_dir, save_checkpoints_steps=2)
    est.train(train_input_fn, steps=10, saving_listeners=[listener])
    assert global_step_of(est) == 4
    assert checkpoint_steps(model_dir) == [0, 2, 4]
    assert listener.calls[-1] == ("end", 4)


def test_saving_listener_errors(model_dir, train_input_fn):
    with pytest.raises(TypeError, match="saving_listeners must be a list of CheckpointSaverListener"):
        _estimator(model_dir).train(train_input_fn, steps=1, saving_listeners=[object()])
    est = _estimator(model_dir, save_checkpoints_steps=None, save_checkpoints_secs=None)
    with pytest.raises(ValueError, match="There should be a CheckpointSaverHook"):
        est.train(train_input_fn, steps=1, saving_listeners=[Listener()])


def test_get_variable_names_and_values(model_dir, train_input_fn):
    est = _estimator(model_dir)
    with pytest.raises(ValueError, match="Could not find trained model in model_dir"):
        est.get_variable_value("dense/kernel")
    est.train(train_input_fn, steps=2)
    names = est.get_variable_names()
    assert {"global_step", "dense/kernel", "dense/bias", "adam/iteration"} <= set(names)
    assert est.get_variable_value("dense/kernel").shape == (3, 1)
    assert est.get_variable_value("global_step") == 2
    assert est.get_variable_value("adam/iteration") == 2
    with pytest.raises(tf.errors.NotFoundError, match="not found in checkpoint"):
        est.get_variable_value("no/such/variable")


def test_variable_names_stable_across_train_evaluate_predict(model_dir, train_input_fn):
    import keras

    def model_fn(features, labels, mode):
        # Unnamed layers: Keras names them dense, dense_1 afresh in every trace.
        hidden = keras.layers.Dense(4, activation="relu")(features["x"])
        predictions = keras.layers.Dense(1)(hidden)
        if mode == bridge.ModeKeys.PREDICT:
            return bridge.EstimatorSpec(mode, predictions=predictions)
        loss = tf.reduce_mean(tf.square(predictions - labels))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.Adam(0.01)))

    est = bridge.Estimator(model_fn, model_dir=model_dir)
    est.train(train_input_fn, steps=2)
    names = est.get_variable_names()
    assert {"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"} <= set(names)
    keras.layers.Dense(1)  # bump Keras's global name counter between calls
    est.train(train_input_fn, steps=1)  # restores by name
    assert est.get_variable_names() == names
    assert est.evaluate(make_input_fn())["global_step"] == 3
    assert len(list(est.predict(make_input_fn(y=None)))) == 20
    assert est.get_variable_names() == names


def test_restore_mismatch_is_a_clear_error(model_dir, train_input_fn):
    import keras

    _estimator(model_dir).train(train_input_fn, steps=1)

    def other_model_fn(features, labels, mode):
        predictions = keras.layers.Dense(1, name="other")(features["x"])
        loss = tf.reduce_mean(tf.square(predictions - labels))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.1)))

    with pytest.raises(ValueError, match="Restoring from checkpoint failed.*mismatch between"):
        bridge.Estimator(other_model_fn, model_dir=model_dir).train(train_input_fn, steps=1)


# -- crash safety and the model_dir lock (subprocess trainers) ----------------------------------
_TRAINER = textwrap.dedent(
    """
    import sys, time
    import keras, numpy as np, tensorflow as tf
    import bridge

    class Slow(bridge.SessionRunHook):
        def after_run(self, run_context, run_values):
            time.sleep(0.05)

    def input_fn():
        x = np.random.RandomState(0).randn(64, 3).astype(np.float32)
        return tf.data.Dataset.from_tensor_slices(({"x": x}, x.sum(1, keepdims=True))).repeat().batch(4)

    def model_fn(features, labels, mode):
        predictions = keras.layers.Dense(1, name="dense")(features["x"])
        loss = tf.reduce_mean(tf.square(predictions - labels))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.Adam(0.01)))

    config = bridge.RunConfig(save_checkpoints_steps=3, keep_checkpoint_max=0, log_step_count_steps=None)
    bridge.Estimator(model_fn, model_dir=sys.argv[1], config=config).train(input_fn, steps=int(sys.argv[2]), hooks=[Slow()])
    """
)


def _start_trainer(tmp_path, model_dir, steps):
    script = tmp_path / "trainer.py"
    script.write_text(_TRAINER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), *sys.path]), TF_CPP_MIN_LOG_LEVEL="3")
    log = open(tmp_path / f"trainer-{steps}.log", "w+b")  # a file, so a chatty child never blocks
    proc = subprocess.Popen([sys.executable, str(script), model_dir, str(steps)], env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    proc.log = log
    return proc


def _log_tail(proc):
    proc.log.seek(0)
    return proc.log.read().decode(errors="replace")[-3000:]


def _wait_for_checkpoint(proc, model_dir, min_step, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early ({proc.returncode}): {_log_tail(proc)}")
        latest = tf.train.latest_checkpoint(model_dir) if os.path.isdir(model_dir) else None
        if latest and int(latest.rsplit("-", 1)[1]) >= min_step:
            return
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared in time")


def _all_checkpoints_complete(model_dir):
    for step in checkpoint_steps(model_dir):
        reader = tf.train.load_checkpoint(os.path.join(model_dir, f"model.ckpt-{step}"))
        assert int(reader.get_tensor("global_step")) == step
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)


def test_sigkill_mid_training_resumes_from_last_complete_checkpoint(tmp_path):
    model_dir = str(tmp_path / "model")
    proc = _start_trainer(tmp_path, model_dir, steps=100000)
    try:
        _wait_for_checkpoint(proc, model_dir, min_step=6)
        time.sleep(0.1)  # somewhere mid-run, possibly mid-save
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    latest = tf.train.latest_checkpoint(model_dir)
    assert latest is not None
    last = int(latest.rsplit("-", 1)[1])
    assert last >= 6
    _all_checkpoints_complete(model_dir)
    before = checkpoint_steps(model_dir)

    restart = _start_trainer(tmp_path, model_dir, steps=4)  # the lock died with the killed process
    try:
        restart.wait(timeout=90)
    finally:
        if restart.poll() is None:
            restart.kill()
            restart.wait()
    assert restart.returncode == 0, _log_tail(restart)
    after = checkpoint_steps(model_dir)
    new = [s for s in after if s not in before]
    # Resumed from the last complete checkpoint: saves at start (already there), every 3, at the end.
    assert new and new[-1] == last + 4, (before, after)
    assert all(s > last for s in new)
    assert after == sorted(set(after))
    assert int(tf.train.load_checkpoint(os.path.join(model_dir, f"model.ckpt-{last + 4}")).get_tensor("global_step")) == last + 4
    _all_checkpoints_complete(model_dir)


def test_two_trainers_on_one_model_dir(tmp_path, train_input_fn):
    model_dir = str(tmp_path / "model")
    proc = _start_trainer(tmp_path, model_dir, steps=100000)
    try:
        _wait_for_checkpoint(proc, model_dir, min_step=3)
        before = checkpoint_steps(model_dir)
        est = _estimator(model_dir)
        with pytest.raises(RuntimeError, match=rf"Another trainer \(pid {proc.pid}\) is already training in model_dir"):
            est.train(train_input_fn, steps=1)
        # The refused trainer wrote nothing: every checkpoint there is the first trainer's.
        assert set(before) <= set(checkpoint_steps(model_dir))
        _all_checkpoints_complete(model_dir)
        assert proc.poll() is None  # the first trainer keeps going
    finally:
        proc.kill()
        proc.wait()


def test_v1_optimizer_slots_keep_tf_estimator_checkpoint_keys(tmp_path):
    """A v1 Adam's slots are stored under 2.15's names, so 2.15 checkpoints restore into bridge."""
    import keras

    def input_fn():
        return tf.data.Dataset.from_tensors(({"x": np.ones((4, 3), "float32")}, np.zeros(4, "int64")))

    def model_fn(features, labels, mode):
        logits = keras.layers.Dense(2)(features["x"])
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
        optimizer = tf.compat.v1.train.AdamOptimizer()
        train_op = optimizer.minimize(loss, global_step=tf.compat.v1.train.get_global_step())
        return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op)

    names = bridge.Estimator(model_fn, str(tmp_path)).train(input_fn).get_variable_names()
    assert names == [
        "beta1_power", "beta2_power", "dense/bias", "dense/bias/Adam", "dense/bias/Adam_1",
        "dense/kernel", "dense/kernel/Adam", "dense/kernel/Adam_1", "global_step",
    ]
