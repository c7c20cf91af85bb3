"""Members of 2.15's classes a re-check of issue 20 found missing (facts: tests/fixtures/legacy_2_15/api_recheck).

``ExportOutput.as_signature_def``, ``SecondOrStepTimer.reset`` and ``Head.update_metrics``'s arguments.
"""

from __future__ import annotations

import inspect
import json
import os

import pytest
import tensorflow as tf

import bridge

FACTS = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "legacy_2_15", "api_recheck", "facts.json")))


def _signature_def(make_output, receiver):
    try:
        proto = make_output().as_signature_def(receiver())
    except ValueError as error:
        return {"error": ["ValueError", str(error)]}
    return {
        "method_name": proto.method_name,
        "inputs": {k: tf.as_dtype(v.dtype).name for k, v in proto.inputs.items()},
        "outputs": {k: tf.as_dtype(v.dtype).name for k, v in proto.outputs.items()},
    }


def test_as_signature_def_matches_2_15():
    export = bridge.export
    with tf.Graph().as_default():
        strings = lambda: {"examples": tf.compat.v1.placeholder(tf.string, [None])}  # noqa: E731
        floats = lambda: {"x": tf.compat.v1.placeholder(tf.float32, [None, 2]), "y": tf.compat.v1.placeholder(tf.int64, [None])}  # noqa: E731
        scores = tf.constant([[0.2, 0.8]])
        classes = tf.constant([["a", "b"]])
        value, update = tf.compat.v1.metrics.mean(tf.constant([1.0]))
        got = {
            "predict": _signature_def(lambda: export.PredictOutput({"p": scores, "q": classes}), floats),
            "classification": _signature_def(lambda: export.ClassificationOutput(scores=scores, classes=classes), strings),
            "classification_float_input": _signature_def(lambda: export.ClassificationOutput(scores=scores), floats),
            "regression": _signature_def(lambda: export.RegressionOutput(tf.constant([1.5])), strings),
            "eval": _signature_def(lambda: export.EvalOutput(loss=tf.constant(1.0), predictions={"p": scores},
                                                            metrics={"m": (value, update)}), floats),
        }
    expected = FACTS["as_signature_def"]
    error = got.pop("classification_float_input")["error"]
    assert error[0] == expected.pop("classification_float_input")["error"][0]
    assert "single tensor input of type tf.string" in error[1]
    assert got == expected


def test_second_or_step_timer_reset():
    facts = FACTS["timer"]
    timer = bridge.SecondOrStepTimer(every_steps=10)
    assert [timer.should_trigger_for_step(s) for s in (0, 5, 10)] == facts["before"]
    timer.update_last_triggered_step(10)
    assert [timer.should_trigger_for_step(s) for s in (10, 15, 20)] == facts["after_update_10"]
    timer.reset()
    assert timer.last_triggered_step() == facts["after_reset"]["last_triggered_step"]
    assert [timer.should_trigger_for_step(s) for s in (10, 15, 20)] == facts["after_reset"]["should_trigger"]


def test_head_update_metrics_takes_2_15s_arguments():
    params = [p for p in inspect.signature(bridge.Head.update_metrics).parameters if p != "self"]
    assert params == FACTS["head_update_metrics_args"]


@pytest.mark.parametrize("name", ["PredictOutput", "ClassificationOutput", "RegressionOutput", "EvalOutput"])
def test_every_export_output_has_as_signature_def(name):
    assert callable(getattr(getattr(bridge.export, name), "as_signature_def"))
