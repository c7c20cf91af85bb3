"""train_and_evaluate: evaluation cadence, return value, spec validation and the exporters."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import bridge
from bridge import _export
from bridge.export import build_parsing_serving_input_receiver_fn, build_raw_serving_input_receiver_fn
from bridge.training_loop import _loss_smaller
from tests.conftest import X, keras_model_fn, make_input_fn


@pytest.fixture(autouse=True)
def fast_clock(monkeypatch):
    """Export directories are named by the second; a counter keeps tests from sleeping."""
    clock = itertools.count(1_700_000_000)
    monkeypatch.setattr(_export, "_now", lambda: next(clock))


class RecordingExporter(bridge.Exporter):
    """Records every call: (global_step, is_the_final_export)."""

    def __init__(self, name="recorder"):
        self._name = name
        self.calls = []

    @property
    def name(self):
        return self._name

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        self.calls.append((int(eval_result["global_step"]), is_the_final_export))
        assert checkpoint_path.endswith(f"model.ckpt-{int(eval_result['global_step'])}")
        assert export_path == os.path.join(estimator.model_dir, "export", self._name)
        return f"export-{eval_result['global_step']}"


def make_estimator(tmp_path, every=10, **config):
    run_config = bridge.RunConfig(save_checkpoints_steps=every, log_step_count_steps=None, **config)
    return bridge.Estimator(keras_model_fn, model_dir=str(tmp_path / "model"), config=run_config, params={})


TRAIN = make_input_fn(epochs=None)
EVAL = make_input_fn()
RAW_RECEIVER = build_raw_serving_input_receiver_fn({"x": X[:1]})


def exported_versions(estimator, name):
    base = os.path.join(estimator.model_dir, "export", name)
    return sorted(os.listdir(base)) if os.path.isdir(base) else []


# -- cadence and return value ---------------------------------------------------------------------
@pytest.mark.parametrize("throttle, expected", [(0, [10, 20, 30, 35]), (600, [10, 35])])
def test_evaluation_follows_checkpoint_saves(tmp_path, throttle, expected):
    est = make_estimator(tmp_path)
    recorder = RecordingExporter()
    result, exports = bridge.train_and_evaluate(
        est,
        bridge.TrainSpec(TRAIN, max_steps=35),
        bridge.EvalSpec(EVAL, steps=2, exporters=recorder, throttle_secs=throttle),
    )
    assert [step for step, _ in recorder.calls] == expected
    assert [final for _, final in recorder.calls] == [False] * (len(expected) - 1) + [True]
    assert result["global_step"] == 35 and set(result) >= {"loss", "mse", "mean_prediction", "global_step"}
    assert exports == ["export-35"]
    assert result == pytest.approx(est.evaluate(EVAL, steps=2))


def test_nothing_runs_when_max_steps_was_reached(tmp_path):
    est = make_estimator(tmp_path)
    est.train(TRAIN, max_steps=20)
    recorder = RecordingExporter()
    assert bridge.train_and_evaluate(
        est, bridge.TrainSpec(TRAIN, max_steps=20), bridge.EvalSpec(EVAL, exporters=recorder, throttle_secs=0)
    ) == (None, None)
    assert recorder.calls == []


def test_resumed_run_skips_the_resume_save_and_evaluates_new_checkpoints(tmp_path):
    est = make_estimator(tmp_path)
    est.train(TRAIN, max_steps=10)
    recorder = RecordingExporter()
    bridge.train_and_evaluate(
        est, bridge.TrainSpec(TRAIN, max_steps=25), bridge.EvalSpec(EVAL, steps=1, exporters=recorder, throttle_secs=0)
    )
    assert recorder.calls == [(20, False), (25, True)]


def test_no_max_steps_evaluates_at_input_exhaustion_without_a_final_export(tmp_path):
    est = make_estimator(tmp_path, every=3)
    recorder = RecordingExporter()
    result, _ = bridge.train_and_evaluate(
        est, bridge.TrainSpec(make_input_fn(epochs=2)), bridge.EvalSpec(EVAL, steps=1, exporters=recorder, throttle_secs=0)
    )
    assert recorder.calls == [(3, False), (6, False), (8, False)]
    assert result["global_step"] == 8


def test_train_hooks_and_listeners_run(tmp_path):
    class Listener(bridge.CheckpointSaverListener):
        saves = []

        def after_save(self, session, global_step_value):
            self.saves.append(global_step_value)

    class Hook(bridge.SessionRunHook):
        calls = 0

        def after_run(self, run_context, run_values):
            Hook.calls += 1

    est = make_estimator(tmp_path, every=5)
    bridge.train_and_evaluate(
        est,
        bridge.TrainSpec(TRAIN, max_steps=10, hooks=[Hook()], saving_listeners=[Listener()]),
        bridge.EvalSpec(EVAL, steps=1, throttle_secs=0, name="holdout"),
    )
    assert Listener.saves == [0, 5, 10] and Hook.calls == 10
    assert os.path.isdir(est.eval_dir("holdout"))


def test_checkpointing_must_be_enabled(tmp_path):
    config = bridge.RunConfig(save_checkpoints_steps=None, save_checkpoints_secs=None)
    est = bridge.Estimator(keras_model_fn, model_dir=str(tmp_path / "m"), config=config, params={})
    with pytest.raises(ValueError, match="CheckpointSaverHook"):
        bridge.train_and_evaluate(est, bridge.TrainSpec(TRAIN, max_steps=5), bridge.EvalSpec(EVAL))


# -- the done-when check: BestExporter exports serve the estimator's predictions -------------------
def test_best_exporter_saved_models_serve_the_estimator_predictions(tmp_path):
    est = make_estimator(tmp_path)
    feature_spec = {"x": tf.io.FixedLenFeature([3], tf.float32)}
    best = bridge.BestExporter(
        serving_input_receiver_fn=build_parsing_serving_input_receiver_fn(feature_spec), exports_to_keep=2
    )
    final = bridge.FinalExporter("final", RAW_RECEIVER)
    result, (best_path, final_path) = bridge.train_and_evaluate(
        est, bridge.TrainSpec(TRAIN, max_steps=30), bridge.EvalSpec(EVAL, exporters=[best, final], throttle_secs=0)
    )
    assert result["global_step"] == 30
    assert len(exported_versions(est, "best_exporter")) == 2  # 3 improving evaluations, 2 kept
    assert exported_versions(est, "final") == [os.path.basename(os.fsdecode(final_path))]
    expected = np.stack([row["y"] for row in est.predict(make_input_fn(y=None))])
    examples = tf.constant(
        [
            tf.train.Example(
                features=tf.train.Features(feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=row))})
            ).SerializeToString()
            for row in X
        ]
    )
    served = tf.saved_model.load(os.fsdecode(best_path)).signatures["serving_default"](examples=examples)["y"]
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-5)
    served = tf.saved_model.load(os.fsdecode(final_path)).signatures["serving_default"](x=tf.constant(X))["y"]
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-5)


# -- exporters ------------------------------------------------------------------------------------
@pytest.fixture
def trained(tmp_path):
    est = make_estimator(tmp_path, every=100)
    est.train(TRAIN, max_steps=2)
    return est


def test_latest_exporter_keeps_the_newest(trained, tmp_path):
    exporter = bridge.LatestExporter("latest", RAW_RECEIVER, exports_to_keep=2)
    base = str(tmp_path / "exports")
    paths = [exporter.export(trained, base, trained.latest_checkpoint(), {"loss": 1.0}, False) for _ in range(4)]
    assert sorted(os.listdir(base)) == [os.path.basename(os.fsdecode(p)) for p in paths[-2:]]
    keep_all = bridge.LatestExporter("all", RAW_RECEIVER, exports_to_keep=None)
    for _ in range(3):
        keep_all.export(trained, str(tmp_path / "all"), trained.latest_checkpoint(), {"loss": 1.0}, False)
    assert len(os.listdir(tmp_path / "all")) == 3


def test_gc_leaves_foreign_directories_alone(trained, tmp_path):
    base = tmp_path / "exports"
    os.makedirs(base / "notes")
    os.makedirs(base / "123")
    exporter = bridge.LatestExporter("latest", RAW_RECEIVER, exports_to_keep=1)
    path = exporter.export(trained, str(base), trained.latest_checkpoint(), {}, False)
    assert sorted(os.listdir(base)) == sorted(["123", "notes", os.path.basename(os.fsdecode(path))])


def test_best_exporter_exports_only_on_improvement(trained, tmp_path):
    exporter = bridge.BestExporter(serving_input_receiver_fn=RAW_RECEIVER, event_file_pattern=None, exports_to_keep=None)
    base = str(tmp_path / "best")
    ckpt = trained.latest_checkpoint()
    results = [exporter.export(trained, base, ckpt, {"loss": loss}, False) for loss in (3.0, 2.0, 2.5, 2.0, 1.0)]
    assert [r is not None for r in results] == [True, True, False, False, True]
    assert len(os.listdir(base)) == 3


def test_best_exporter_seeds_its_best_from_eval_events(tmp_path):
    est = make_estimator(tmp_path)
    est.train(TRAIN, max_steps=20)
    best_loss = est.evaluate(EVAL)["loss"]
    exporter = bridge.BestExporter(serving_input_receiver_fn=RAW_RECEIVER)
    base = str(tmp_path / "best")
    ckpt = est.latest_checkpoint()
    # The first export always happens; after it, the seeded best from the event files counts.
    assert exporter.export(est, base, ckpt, {"loss": best_loss + 1.0}, False) is not None
    assert exporter._best_eval_result["loss"] == pytest.approx(best_loss + 1.0)
    fresh = bridge.BestExporter(serving_input_receiver_fn=RAW_RECEIVER)
    fresh._has_exported = True  # as after a first export: compare with the best seen in the events
    assert fresh.export(est, base, ckpt, {"loss": best_loss + 1.0}, False) is None
    assert fresh._best_eval_result["loss"] == pytest.approx(best_loss, rel=1e-5)
    assert fresh.export(est, base, ckpt, {"loss": best_loss / 2}, False) is not None


def test_best_exporter_custom_compare_fn(trained, tmp_path):
    def higher_accuracy(best_eval_result, current_eval_result):
        return current_eval_result["accuracy"] > best_eval_result["accuracy"]

    exporter = bridge.BestExporter(serving_input_receiver_fn=RAW_RECEIVER, compare_fn=higher_accuracy, event_file_pattern=None)
    ckpt, base = trained.latest_checkpoint(), str(tmp_path / "b")
    flags = [exporter.export(trained, base, ckpt, {"accuracy": a}, False) is not None for a in (0.5, 0.4, 0.6)]
    assert flags == [True, False, True]


def test_final_exporter_exports_only_the_final(trained, tmp_path):
    exporter = bridge.FinalExporter("final", RAW_RECEIVER)
    ckpt = trained.latest_checkpoint()
    assert exporter.export(trained, str(tmp_path / "f"), ckpt, {}, False) is None
    assert exporter.export(trained, str(tmp_path / "f"), ckpt, {}, True) is not None


def test_exporter_argument_errors():
    with pytest.raises(ValueError, match="exports_to_keep"):
        bridge.LatestExporter("l", RAW_RECEIVER, exports_to_keep=0)
    with pytest.raises(ValueError, match="exports_to_keep"):
        bridge.BestExporter(serving_input_receiver_fn=RAW_RECEIVER, exports_to_keep=-1)
    with pytest.raises(ValueError, match="must not be None"):
        bridge.BestExporter(compare_fn=None)
    with pytest.raises(ValueError, match="must include current_eval_result"):
        bridge.BestExporter(compare_fn=lambda best_eval_result: True)
    with pytest.raises(ValueError, match="not expected args"):
        bridge.BestExporter(compare_fn=lambda best_eval_result, current_eval_result, other: True)
    with pytest.raises(ValueError, match="no loss is found"):
        _loss_smaller({"loss": 1.0}, {"accuracy": 1.0})
    with pytest.raises(TypeError):
        bridge.Exporter()


# -- spec validation ------------------------------------------------------------------------------
def test_train_spec_validation():
    spec = bridge.TrainSpec(TRAIN)
    assert spec.max_steps is None and spec.hooks == () and spec.saving_listeners == ()
    with pytest.raises(TypeError, match="`input_fn` must be callable"):
        bridge.TrainSpec(1)
    with pytest.raises(ValueError, match="Must specify max_steps > 0"):
        bridge.TrainSpec(TRAIN, max_steps=0)
    with pytest.raises(TypeError, match="SessionRunHook"):
        bridge.TrainSpec(TRAIN, hooks=[object()])
    with pytest.raises(TypeError, match="CheckpointSaverListener"):
        bridge.TrainSpec(TRAIN, saving_listeners=[object()])


def test_eval_spec_validation():
    spec = bridge.EvalSpec(EVAL)
    assert (spec.steps, spec.name, spec.exporters, spec.start_delay_secs, spec.throttle_secs) == (100, None, (), 120, 600)
    single = RecordingExporter()
    assert bridge.EvalSpec(EVAL, exporters=single).exporters == (single,)
    with pytest.raises(TypeError, match="`input_fn` must be callable"):
        bridge.EvalSpec(None)
    with pytest.raises(ValueError, match="Must specify steps > 0"):
        bridge.EvalSpec(EVAL, steps=0)
    with pytest.raises(TypeError, match="`name` must be string"):
        bridge.EvalSpec(EVAL, name=1)
    with pytest.raises(ValueError, match="start_delay_secs >= 0"):
        bridge.EvalSpec(EVAL, start_delay_secs=-1)
    with pytest.raises(ValueError, match="throttle_secs >= 0"):
        bridge.EvalSpec(EVAL, throttle_secs=-1)
    with pytest.raises(TypeError, match="an iterable of Exporter"):
        bridge.EvalSpec(EVAL, exporters=[single, "x"])
    with pytest.raises(ValueError, match="unique names"):
        bridge.EvalSpec(EVAL, exporters=[RecordingExporter("a"), RecordingExporter("a")])
    with pytest.raises(ValueError, match="cannot have a name that is `None` or empty"):
        bridge.EvalSpec(EVAL, exporters=[RecordingExporter("")])


def test_train_and_evaluate_argument_types(tmp_path):
    est = make_estimator(tmp_path)
    train_spec, eval_spec = bridge.TrainSpec(TRAIN, max_steps=1), bridge.EvalSpec(EVAL)
    with pytest.raises(TypeError, match="`eval_spec` must have type"):
        bridge.train_and_evaluate(object(), train_spec, None)  # eval_spec is checked first
    with pytest.raises(TypeError, match="`estimator` must have type"):
        bridge.train_and_evaluate(object(), train_spec, eval_spec)
    with pytest.raises(TypeError, match="`train_spec` must have type"):
        bridge.train_and_evaluate(est, eval_spec, eval_spec)


# -- TF_CONFIG clusters ---------------------------------------------------------------------------
def _with_tf_config(monkeypatch, tmp_path, task, cluster):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    return make_estimator(tmp_path)


def test_parameter_server_cluster_is_refused_naming_the_distribute_issue(tmp_path, monkeypatch):
    cluster = {"chief": ["h:1"], "worker": ["h:2"], "ps": ["h:3"]}
    est = _with_tf_config(monkeypatch, tmp_path, {"type": "worker", "index": 0}, cluster)
    with pytest.raises(NotImplementedError, match="tf.distribute"):
        bridge.train_and_evaluate(est, bridge.TrainSpec(TRAIN, max_steps=1), bridge.EvalSpec(EVAL))


def test_second_evaluator_is_refused(tmp_path, monkeypatch):
    est = _with_tf_config(monkeypatch, tmp_path, {"type": "evaluator", "index": 1}, {"chief": ["h:1"]})
    with pytest.raises(ValueError, match="only be one `evaluator` task"):
        bridge.train_and_evaluate(est, bridge.TrainSpec(TRAIN, max_steps=1), bridge.EvalSpec(EVAL))


def test_lone_chief_trains_and_evaluator_evaluates_its_checkpoints(tmp_path, monkeypatch):
    chief = _with_tf_config(monkeypatch, tmp_path, {"type": "chief", "index": 0}, {"chief": ["h:1"]})
    train_spec = bridge.TrainSpec(TRAIN, max_steps=20)
    recorder = RecordingExporter()
    eval_spec = bridge.EvalSpec(EVAL, steps=1, exporters=recorder, start_delay_secs=0, throttle_secs=0)
    assert bridge.train_and_evaluate(chief, train_spec, eval_spec) is None
    assert recorder.calls == []  # the chief does not evaluate
    evaluator = _with_tf_config(monkeypatch, tmp_path, {"type": "evaluator", "index": 0}, {"chief": ["h:1"]})
    assert bridge.train_and_evaluate(evaluator, train_spec, eval_spec) is None
    assert recorder.calls == [(20, True)]
