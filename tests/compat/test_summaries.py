"""v1 and tf.summary summaries inside model_fn: written every save_summary_steps, as TF 2.15 wrote them."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import bridge
from compat._legacy import facts, module

FACTS = facts("summaries")
MODEL = module("summaries")


def _train(model_dir, **config):
    settings = dict(save_summary_steps=FACTS["save_summary_steps"], log_step_count_steps=None)
    settings.update(config)
    estimator = bridge.Estimator(MODEL.make_model_fn(bridge.EstimatorSpec), model_dir, bridge.RunConfig(**settings))
    estimator.train(MODEL.input_fn, steps=FACTS["steps"])


def _events(model_dir):
    found = []
    for path in sorted(glob.glob(os.path.join(model_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.append((value.tag, event.step, value.WhichOneof("value"), value))
    return found


@pytest.mark.parametrize("max_steps_per_call", [1, 32])
def test_v1_summaries_written_at_2_15_steps_with_2_15_values(tmp_path, max_steps_per_call):
    _train(str(tmp_path), max_steps_per_call=max_steps_per_call)
    written = {(tag, step): (kind, value) for tag, step, kind, value in _events(str(tmp_path))}
    for expected in FACTS["events"]:
        kind, value = written[(expected["tag"], expected["step"])]
        if expected["tag"] == "loss":  # the runtime's own loss scalar (its encoding is tested elsewhere)
            number = value.simple_value if kind == "simple_value" else float(tf.make_ndarray(value.tensor))
            assert number == pytest.approx(expected["value"], rel=1e-5)
            continue
        assert kind == expected["kind"], expected
        if kind == "simple_value":
            assert value.simple_value == pytest.approx(expected["value"], rel=1e-5)
    v1_steps = sorted(step for tag, step in written if tag == "v1_scalar")
    assert v1_steps == sorted({e["step"] for e in FACTS["events"]})


def test_tf_summary_calls_are_written_with_the_v1_ones(tmp_path):
    """2.15 dropped tf.summary.* from a model_fn silently; bridge writes them at the same steps."""
    _train(str(tmp_path))
    accumulator = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    accumulator.Reload()
    scalars = {tag: {e.step: e.value for e in accumulator.Scalars(tag)} for tag in accumulator.Tags()["scalars"]}
    steps = sorted(scalars["v1_scalar"])
    assert sorted(scalars["v2_scalar"]) == steps
    for step in steps:
        assert scalars["v2_scalar"][step] == pytest.approx(2 * scalars["v1_scalar"][step], rel=1e-6)
    assert {"v1_histogram", "v2_histogram"} <= set(accumulator.Tags()["histograms"])
    assert len(accumulator.Images("v1_image/image/0")) == len(steps)


def test_no_summaries_without_save_summary_steps_or_outside_train(tmp_path):
    _train(str(tmp_path), save_summary_steps=None)
    assert not [e for e in _events(str(tmp_path)) if e[0].startswith("v")]


def test_tf_summary_is_untouched_outside_model_fn(tmp_path):
    original = tf.summary.scalar
    _train(str(tmp_path))
    assert tf.summary.scalar is original
    writer = tf.summary.create_file_writer(str(tmp_path / "eager"))
    with writer.as_default(step=3):
        assert tf.summary.scalar("eager", 1.0)  # the TF2 op, which returns True when it wrote
    writer.close()


def test_summary_is_fetched_only_on_calls_that_may_end_on_a_due_step():
    from bridge.compat.summaries import SummarySaverHook
    from bridge.hooks import SessionRunValues

    written = []

    class Writer:
        def serialized(self, summary, step):
            written.append(step)

    hook = SummarySaverHook(Writer(), summary="merged", every_steps=3)
    hook._with_summary = bridge.SessionRunArgs({"summary": "merged", "step": "s"})
    hook._step_only = bridge.SessionRunArgs({"step": "s"})
    hook._first_request = False
    fetched_at = []
    for step in range(1, 11):  # one step per call
        request = hook.before_run(None)
        results = {"step": step, **({"summary": b""} if "summary" in request.fetches else {})}
        if "summary" in request.fetches:
            fetched_at.append(step)
        hook.after_run(None, SessionRunValues(results))
    assert written == [1, 4, 7, 10] and fetched_at == written
    # grouped calls: the loop asks how far it may run, then runs that far
    span = hook.steps_until_trigger(10)
    assert span == 3 and "summary" in hook.before_run(None).fetches


def test_summary_tensors_are_computed_only_on_due_steps(tmp_path):
    """Like tf.estimator's Session, which ran the merged summary only on the steps it was due."""
    computed = []

    def counted(loss):
        computed.append(float(loss))
        return np.float32(len(computed))

    def model_fn(features, labels, mode):
        w = tf.compat.v1.get_variable("w", [2, 1], initializer=tf.compat.v1.zeros_initializer())
        loss = tf.reduce_mean(tf.square(tf.matmul(features["x"], w) - labels))
        # a stateless host op (as summary ops are): it runs only when something fetches it
        tf.compat.v1.summary.scalar("counted", tf.numpy_function(counted, [loss], tf.float32, stateful=False))
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=tf.compat.v1.train.get_global_step())
        return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op)

    config = bridge.RunConfig(save_summary_steps=3, log_step_count_steps=None, max_steps_per_call=1)
    bridge.Estimator(model_fn, str(tmp_path), config).train(MODEL.input_fn, steps=7)
    steps = sorted(step for tag, step, _, _ in _events(str(tmp_path)) if tag == "counted")
    assert steps == [1, 4, 7]
    assert len(computed) == 3
