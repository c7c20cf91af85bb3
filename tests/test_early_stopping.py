"""Early stopping (bridge.experimental.stop_if_* hooks) against tf.estimator 2.15's recorded behaviour.

Facts: tests/fixtures/legacy_2_15/api/early_stopping.json (recorded by record.py there).
"""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
import tensorflow as tf

import bridge
from bridge import _eval_events, training_loop
from bridge._summaries import SummaryWriter

from tests.conftest import keras_model_fn, make_input_fn

FACTS = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "legacy_2_15", "api", "early_stopping.json")))
SIGNATURES = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "legacy_2_15", "api", "signatures.json")))
HISTORY = [(10, {"loss": 5.0, "acc": 0.5}), (20, {"loss": 4.0, "acc": 0.6}), (30, {"loss": 4.5, "acc": 0.55}),
           (40, {"loss": 4.2, "acc": 0.62}), (50, {"loss": 4.3, "acc": 0.61})]


def _write_simple_values(eval_dir, history):
    """Event files as tf.estimator 2.15 wrote them: one event per evaluation, simple_value scalars."""
    os.makedirs(eval_dir, exist_ok=True)
    with tf.Graph().as_default():
        writer = tf.compat.v1.summary.FileWriter(eval_dir)
        for step, metrics in history:
            summary = tf.compat.v1.Summary(
                value=[tf.compat.v1.Summary.Value(tag=k, simple_value=v) for k, v in metrics.items()]
            )
            writer.add_summary(summary, step)
        writer.close()


def _write_with_bridge(eval_dir, history):
    """Event files as bridge's evaluate writes them."""
    for step, metrics in history:
        writer = SummaryWriter(eval_dir)
        writer.write_eval_results({**metrics, "global_step": step}, step, "model.ckpt-%d" % step)
        writer.close()


@pytest.fixture(params=["tf_estimator_2_15_events", "bridge_events"])
def estimator_with_history(request, tmp_path):
    estimator = bridge.Estimator(keras_model_fn, model_dir=str(tmp_path), params={})
    writer = _write_simple_values if request.param == "tf_estimator_2_15_events" else _write_with_bridge
    writer(estimator.eval_dir(), HISTORY)
    return estimator


def test_signatures_match_2_15():
    import inspect

    for name in ("stop_if_higher_hook", "stop_if_lower_hook", "stop_if_no_increase_hook", "stop_if_no_decrease_hook",
                 "make_early_stopping_hook", "make_stop_at_checkpoint_step_hook", "InMemoryEvaluatorHook"):
        target = getattr(bridge.experimental, name)
        target = target.__init__ if inspect.isclass(target) else target
        params = [p for p in inspect.signature(target).parameters.values() if p.name != "self"]
        got = [[p.name, None if p.default is inspect.Parameter.empty else repr(p.default)] for p in params]
        assert got == SIGNATURES[f"experimental.{name}"], name


def test_eval_results_read_back_as_2_15_read_them(estimator_with_history):
    read = _eval_events.read_eval_metrics(estimator_with_history.eval_dir())
    expected = {int(step): metrics for step, metrics in FACTS["read_eval_metrics"].items()}
    assert list(read) == sorted(expected)
    for step, metrics in expected.items():
        assert {k: v for k, v in read[step].items() if k in metrics} == metrics  # float32 values, as 2.15 read them


@pytest.mark.parametrize("case", FACTS["decisions"], ids=lambda c: "-".join(map(str, c)))
def test_stop_decisions_match_2_15(estimator_with_history, case):
    fn_name, metric, arg, min_steps, expected = case
    hook = getattr(bridge.experimental, fn_name)(estimator_with_history, metric, arg, min_steps=min_steps)
    assert hook._should_stop_fn() is expected


def test_missing_metric_and_missing_eval_dir(estimator_with_history, tmp_path):
    hook = bridge.experimental.stop_if_lower_hook(estimator_with_history, "nope", 1.0)
    with pytest.raises(KeyError):  # 2.15: KeyError
        hook._should_stop_fn()
    assert FACTS["missing_metric_error"][0] == "KeyError"
    empty = bridge.Estimator(keras_model_fn, model_dir=str(tmp_path / "empty"), params={})
    assert bridge.experimental.stop_if_lower_hook(empty, "loss", 100.0)._should_stop_fn() is FACTS["no_eval_dir_decision"]


def test_bad_arguments_raise_2_15_classes(tmp_path):
    estimator = bridge.Estimator(keras_model_fn, model_dir=str(tmp_path), params={})
    errors = FACTS["errors"]
    cases = {
        "not_an_estimator": lambda: bridge.experimental.make_early_stopping_hook(object(), lambda: True),
        "secs_and_steps": lambda: bridge.experimental.make_early_stopping_hook(
            estimator, lambda: True, run_every_secs=10, run_every_steps=10),
        "not_callable": lambda: bridge.experimental.make_early_stopping_hook(estimator, 3),
        "neither_secs_nor_steps": lambda: bridge.experimental.make_early_stopping_hook(
            estimator, lambda: True, run_every_secs=None, run_every_steps=None),
    }
    for name, call in cases.items():
        with pytest.raises(Exception) as info:
            call()
        assert type(info.value).__name__ == errors[name][0], name
    with pytest.raises(TypeError, match="estimator"):
        cases["not_an_estimator"]()
    with pytest.raises(ValueError, match="run_every_secs"):
        cases["secs_and_steps"]()


def test_a_check_between_evaluations_parses_no_event_file_again(estimator_with_history, monkeypatch):
    parsed = []
    original = _eval_events._read_file
    monkeypatch.setattr(_eval_events, "_read_file", lambda path: parsed.append(path) or original(path))
    hook = bridge.experimental.stop_if_no_decrease_hook(estimator_with_history, "loss", 1000)
    assert hook._should_stop_fn() is False
    first = len(parsed)
    assert first >= 1
    for _ in range(5):
        hook._should_stop_fn()
    assert len(parsed) == first  # unchanged files are not parsed again
    _write_with_bridge(estimator_with_history.eval_dir(), [(60, {"loss": 9.0, "acc": 0.1})])
    hook._should_stop_fn()
    assert len(parsed) == first + 1  # only the new file


def _linear_model_fn(features, labels, mode):
    import keras

    predictions = keras.layers.Dense(1, kernel_initializer="zeros", name="dense")(features["x"])
    loss = tf.reduce_mean(tf.square(predictions - labels))
    train_op = bridge.minimize(loss, keras.optimizers.SGD(0.05))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, predictions=predictions)


def test_train_and_evaluate_stops_early_as_2_15_did(tmp_path):
    config = bridge.RunConfig(model_dir=str(tmp_path), save_checkpoints_steps=10, log_step_count_steps=None)
    estimator = bridge.Estimator(_linear_model_fn, config=config)
    hook = bridge.experimental.stop_if_no_decrease_hook(estimator, "loss", 1, run_every_secs=None, run_every_steps=1)
    # The loss plateaus at once on noise-only labels: no decrease for 1 step after the best.
    rng = np.random.RandomState(0)
    x = rng.rand(64, 1).astype(np.float32)
    y = rng.rand(64, 1).astype(np.float32)
    result, _ = bridge.train_and_evaluate(
        estimator,
        bridge.TrainSpec(make_input_fn(x=x, y=y, batch_size=8, epochs=None), max_steps=1000, hooks=[hook]),
        bridge.EvalSpec(make_input_fn(x=x, y=y, batch_size=64), steps=None, throttle_secs=0),
    )
    assert FACTS["train_and_evaluate"]["stopped_before_max_steps"]
    assert int(result["global_step"]) < 1000
    assert sorted(result) == ["global_step", "loss"]
    history = _eval_events.read_eval_metrics(estimator.eval_dir())
    assert max(history) == int(result["global_step"])  # the last evaluation is the final checkpoint's


def test_an_early_stopping_hook_lets_the_runtime_group_steps(tmp_path):
    estimator = bridge.Estimator(_linear_model_fn, model_dir=str(tmp_path))
    hook = bridge.experimental.stop_if_lower_hook(estimator, "loss", 0.0, run_every_steps=50, run_every_secs=None)
    seen = []

    class Steps(bridge.SessionRunHook):
        _bridge_groupable = True

        def begin(self):
            self._step = tf.compat.v1.train.get_global_step()

        def before_run(self, run_context):
            return bridge.SessionRunArgs(self._step)

        def after_run(self, run_context, run_values):
            seen.append(int(run_values.results))

        def steps_until_trigger(self, global_step):
            return None

    estimator.train(make_input_fn(epochs=None), steps=200, hooks=[hook, Steps()])
    assert seen[-1] == 199  # the step the last batch trained at (read before its update, as 2.15)
    assert len(seen) < 200  # several steps per traced call
    assert 50 in seen and 100 in seen  # ... ending on the steps the hook checks


def test_evaluator_task_stops_after_the_last_checkpoint_of_a_finished_training(tmp_path):
    """With early stopping the chief's training ends before max_steps; the evaluator must not wait forever."""
    config = bridge.RunConfig(model_dir=str(tmp_path), save_checkpoints_steps=5, log_step_count_steps=None)
    estimator = bridge.Estimator(_linear_model_fn, config=config)
    estimator.train(make_input_fn(epochs=None), max_steps=5)
    training_loop._mark_training_finished(estimator.model_dir, estimator.latest_checkpoint())
    done = threading.Event()

    def run():
        training_loop._run_evaluator(
            estimator,
            bridge.TrainSpec(make_input_fn(epochs=None), max_steps=1000),
            bridge.EvalSpec(make_input_fn(), steps=None, start_delay_secs=0, throttle_secs=0),
        )
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert done.is_set(), "the evaluator kept waiting for a checkpoint that will never come"
    assert 5 in _eval_events.read_eval_metrics(estimator.eval_dir())


def test_stop_at_checkpoint_step_hook_for_the_chief_is_a_stop_at_step_hook(tmp_path):
    estimator = bridge.Estimator(_linear_model_fn, model_dir=str(tmp_path))
    hook = bridge.experimental.make_stop_at_checkpoint_step_hook(estimator, 7)
    assert type(hook).__name__ == FACTS["stop_at_checkpoint_step"]["chief_hook"]
    estimator.train(make_input_fn(epochs=None), hooks=[hook])
    assert estimator.get_variable_value("global_step") == 7
