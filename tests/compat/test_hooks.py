"""tf.compat.v1.train hooks run by bridge: 2.15's call order, translated built-ins, clear errors."""

from __future__ import annotations

import glob
import json
import logging
import os
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from bridge.hooks import NoSessionError

FACTS = json.loads((pathlib.Path(__file__).parents[1] / "fixtures/legacy_2_15/conformance/facts.json").read_text())
X = np.arange(12, dtype=np.float32).reshape(6, 2)
Y = np.arange(6, dtype=np.float32).reshape(6, 1)
v1 = tf.compat.v1.train


def input_fn():
    return tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).batch(3)


def endless_input_fn():
    return input_fn().repeat()


def model_fn(features, labels, mode):
    predictions = keras.layers.Dense(1, kernel_initializer="zeros")(features["x"])
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions={"y": predictions})
    loss = tf.identity(tf.reduce_mean(tf.square(labels - predictions)), name="loss")
    tf.compat.v1.summary.scalar("my_loss", loss)
    return bridge.EstimatorSpec(
        mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.001)),
        eval_metric_ops={"mse": tf.compat.v1.metrics.mean_squared_error(labels, predictions)},
    )


class Recorder(v1.SessionRunHook):
    """A TF 1.x hook, written against tf.compat.v1.train as legacy scripts did."""

    def __init__(self, name, log):
        self.name, self.log = name, log

    def begin(self):
        self.log.append(f"{self.name}.begin")

    def after_create_session(self, session, coord):
        self.log.append(f"{self.name}.after_create_session")

    def before_run(self, run_context):
        self.log.append(f"{self.name}.before_run")

    def after_run(self, run_context, run_values):
        self.log.append(f"{self.name}.after_run")

    def end(self, session):
        self.log.append(f"{self.name}.end")


@pytest.fixture
def est(tmp_path):
    return bridge.Estimator(model_fn, model_dir=str(tmp_path / "model"))


@pytest.mark.parametrize("mode", ["train", "evaluate", "predict"])
def test_call_order_is_2_15s(est, mode):
    log = []
    hooks = [Recorder("a", log), Recorder("b", log)]
    if mode == "train":
        est.train(input_fn, hooks=hooks, steps=3)  # the input (2 batches) runs out first, as in the recording
    elif mode == "evaluate":
        est.train(input_fn, steps=1)
        est.evaluate(input_fn, hooks=hooks)
    else:
        est.train(input_fn, steps=1)
        list(est.predict(lambda: tf.data.Dataset.from_tensor_slices({"x": X}).batch(3), hooks=hooks))
    assert log == FACTS["call_order"][mode]


def test_v1_session_run_args_fetch_values(est):
    seen = []

    class StepAndLoss(v1.SessionRunHook):
        def begin(self):
            self._step = tf.compat.v1.train.get_global_step()

        def after_create_session(self, session, coord):
            seen.append(("restored", int(self._step.numpy())))

        def before_run(self, run_context):
            return v1.SessionRunArgs({"step": self._step, "loss": "loss:0"})

        def after_run(self, run_context, run_values):
            seen.append((int(run_values.results["step"]), float(run_values.results["loss"])))
            if run_values.results["step"] >= 3:
                run_context.request_stop()

    est.train(endless_input_fn, hooks=[StepAndLoss()])
    assert [s for s, _ in seen] == ["restored", 0, 1, 2, 3]  # 2.15: the step before its update
    est.train(endless_input_fn, hooks=[StepAndLoss()])
    assert seen[5] == ("restored", 4)  # after_create_session sees the restored variables


def test_v1_string_fetch_must_name_a_tensor(est):
    class Bad(v1.SessionRunHook):
        def before_run(self, run_context):
            return v1.SessionRunArgs("no_such_tensor:0")

    with pytest.raises((ValueError, KeyError), match="no_such_tensor"):
        est.train(input_fn, hooks=[Bad()], steps=1)


def test_session_use_raises_a_clear_error_only_when_used(est):
    class TouchesSession(v1.SessionRunHook):
        def after_run(self, run_context, run_values):
            run_context.session.run(tf.compat.v1.train.get_global_step())

    with pytest.raises(NoSessionError, match=r"run_context.session: bridge runs no tf.compat.v1.Session.*SessionRunArgs"):
        est.train(input_fn, hooks=[TouchesSession()], steps=1)

    class RunsInitializer(v1.SessionRunHook):
        def after_create_session(self, session, coord):
            session.run(tf.constant(1))

    with pytest.raises(NoSessionError, match=r"session.run: bridge runs no tf.compat.v1.Session"):
        est.train(input_fn, hooks=[RunsInitializer()], steps=1)

    class Polite(v1.SessionRunHook):  # receives the session arguments but never uses them
        def after_create_session(self, session, coord):
            self.got = (session, coord)

        def end(self, session):
            self.ended = True

    polite = Polite()
    est.train(input_fn, hooks=[polite], steps=1)
    assert polite.ended


def test_v1_feed_dict_is_refused(est):
    class Feeds(v1.SessionRunHook):
        def before_run(self, run_context):
            return v1.SessionRunArgs(tf.compat.v1.train.get_global_step(), feed_dict={"x:0": 1})

    with pytest.raises(ValueError, match="feed_dict: TensorFlow 2 has no feeds"):
        est.train(input_fn, hooks=[Feeds()], steps=1)


def test_logging_tensor_hook_by_name_and_by_tensor(est, caplog):
    with caplog.at_level(logging.INFO, logger="bridge"):
        est.train(endless_input_fn, steps=4, hooks=[v1.LoggingTensorHook({"the_loss": "loss:0"}, every_n_iter=2)])
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("the_loss = ")]
    assert len(logged) == 2  # steps 1 and 3, every 2 iterations

    def model_fn_with_hook(features, labels, mode):
        spec = model_fn(features, labels, mode)
        # By tensor in a dict. (A *list* of tensors fails in TensorFlow 2's own constructor, which
        # hashes them; bridge.install_as_tf_estimator() puts bridge's class at that name.)
        return spec._replace(training_hooks=[v1.LoggingTensorHook({"by_tensor": spec.loss}, every_n_iter=1)])

    caplog.clear()
    other = bridge.Estimator(model_fn_with_hook, model_dir=est.model_dir + "_2")
    with caplog.at_level(logging.INFO, logger="bridge"):
        other.train(endless_input_fn, steps=2)
    assert len([r for r in caplog.records if r.getMessage().startswith("by_tensor = ")]) == 2


def test_stop_at_step_and_nan_hooks(est):
    est.train(endless_input_fn, hooks=[v1.StopAtStepHook(num_steps=3)])
    assert est.get_variable_value("global_step") == 3
    est.train(endless_input_fn, hooks=[v1.StopAtStepHook(last_step=5)])
    assert est.get_variable_value("global_step") == 5

    def nan_model_fn(features, labels, mode):
        spec = model_fn(features, labels, mode)
        return spec._replace(loss=spec.loss * np.nan)

    with pytest.raises(bridge.NanLossDuringTrainingError):
        bridge.Estimator(nan_model_fn, model_dir=est.model_dir + "_nan").train(
            endless_input_fn, steps=3, hooks=[v1.NanTensorHook("loss:0")]
        )


def _event_tags(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(directory, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in tags["scalars"]} | {
        tag: [e.step for e in acc.Tensors(tag)] for tag in tags["tensors"]
    }


def test_checkpoint_saver_hook_with_v1_listener(est, tmp_path):
    events = []

    class Listener(v1.CheckpointSaverListener):
        def before_save(self, session, global_step_value):
            events.append(("before", global_step_value))

        def after_save(self, session, global_step_value):
            events.append(("after", global_step_value))

    directory = str(tmp_path / "saved")
    est.train(endless_input_fn, steps=4, hooks=[v1.CheckpointSaverHook(directory, save_steps=2, listeners=[Listener()])])
    steps = sorted(int(p.split("-")[-1].split(".")[0]) for p in glob.glob(os.path.join(directory, "model.ckpt-*.index")))
    assert steps == [0, 2, 4]
    assert events == [(w, s) for s in (0, 2, 4) for w in ("before", "after")]
    assert tf.train.load_checkpoint(tf.train.latest_checkpoint(directory)).get_tensor("global_step") == 4
    # It replaced RunConfig's saving in model_dir, as in 2.15.
    assert not glob.glob(os.path.join(est.model_dir, "model.ckpt-*"))
    # saving_listeners given to train() join the user's saver.
    more = []

    class More(bridge.CheckpointSaverListener):
        def after_save(self, session, step):
            more.append(step)

    est2 = bridge.Estimator(model_fn, model_dir=str(tmp_path / "m2"))
    est2.train(endless_input_fn, steps=2, hooks=[bridge.CheckpointSaverHook(directory + "2", save_steps=1)], saving_listeners=[More()])
    assert more == [0, 1, 2]


def test_summary_saver_and_step_counter_write_event_files(est, tmp_path):
    out = str(tmp_path / "summaries")
    counter_dir = str(tmp_path / "counter")

    def model_fn_with_hook(features, labels, mode):
        spec = model_fn(features, labels, mode)
        hook = v1.SummarySaverHook(save_steps=2, output_dir=out, summary_op=tf.compat.v1.summary.merge_all())
        return spec._replace(training_hooks=[hook])

    bridge.Estimator(model_fn_with_hook, model_dir=str(tmp_path / "m")).train(
        endless_input_fn, steps=5, hooks=[v1.StepCounterHook(every_n_steps=2, output_dir=counter_dir)]
    )
    assert _event_tags(out)["my_loss"] == [1, 3, 5]
    assert _event_tags(counter_dir)["global_step/sec"] == [3, 5]


def test_profiler_hook_writes_a_tensorboard_profile(est, tmp_path):
    out = str(tmp_path / "profile")
    est.train(endless_input_fn, steps=3, hooks=[bridge.ProfilerHook(save_steps=2, output_dir=out)])
    traces = glob.glob(os.path.join(out, "plugins", "profile", "*", "*.xplane.pb"))
    assert traces and all(os.path.getsize(t) > 0 for t in traces)


def test_final_ops_hook_in_evaluate(est):
    est.train(input_fn, steps=1)

    def model_fn_with_hook(features, labels, mode):
        spec = model_fn(features, labels, mode)
        hook = v1.FinalOpsHook({"mse": spec.eval_metric_ops["mse"][0]})
        final_hooks.append(hook)
        return spec._replace(evaluation_hooks=[hook])

    final_hooks = []
    results = bridge.Estimator(model_fn_with_hook, model_dir=est.model_dir).evaluate(input_fn)
    assert final_hooks[0].final_ops_values["mse"] == pytest.approx(results["mse"])


def test_feed_fn_hook_is_refused_with_a_clear_error(est):
    with pytest.raises(ValueError, match="FeedFnHook feeds placeholders.*input_fn"):
        est.train(input_fn, hooks=[v1.FeedFnHook(lambda: {})], steps=1)
    with pytest.raises(ValueError, match="TensorFlow 2 does not have"):
        bridge.FeedFnHook(lambda: {})


def test_v1_hook_settings_are_read_from_this_tensorflow():
    """The translation reads v1 hooks' private settings: pin them on the installed TensorFlow."""
    from bridge.compat.hooks import adapt

    logging_hook = adapt(v1.LoggingTensorHook({"b": "x:0", "a": "y:0"}, every_n_secs=5, at_end=True))
    assert (logging_hook._tags, logging_hook._timer._every_secs, logging_hook._log_at_end) == (["a", "b"], 5, True)
    assert adapt(v1.LoggingTensorHook(["y:0", "x:0"], every_n_iter=3))._tags == ["y:0", "x:0"]
    assert adapt(v1.LoggingTensorHook({"a": "x:0"}, at_end=True))._timer is None
    assert adapt(v1.StopAtStepHook(num_steps=4))._num_steps == 4
    assert adapt(v1.StopAtStepHook(last_step=7)).last_step == 7
    nan = adapt(v1.NanTensorHook("loss:0", fail_on_nan_loss=False))
    assert (nan._loss_tensor, nan._fail_on_nan_loss) == ("loss:0", False)
    assert adapt(v1.StepCounterHook(every_n_steps=9))._timer._every_steps == 9
    saver = adapt(v1.CheckpointSaverHook("/tmp/x", save_secs=30))
    assert (saver._checkpoint_dir, saver._timer._every_secs) == ("/tmp/x", 30)
    summary = adapt(v1.SummarySaverHook(save_steps=3, output_dir="/tmp/y", summary_op=tf.constant(b"")))
    assert (summary._output_dir, summary._timer._every_steps) == ("/tmp/y", 3)
    assert type(adapt(v1.SessionRunHook())).__name__ == "V1Hook"
    assert adapt(object()) is None


def test_bridge_names_exist():
    for name in ("CheckpointSaverHook", "SummarySaverHook", "ProfilerHook", "FinalOpsHook", "FeedFnHook",
                 "LoggingTensorHook", "StopAtStepHook", "NanTensorHook", "StepCounterHook", "CheckpointSaverListener"):
        assert issubclass(getattr(bridge, name), (bridge.SessionRunHook, bridge.CheckpointSaverListener)), name
