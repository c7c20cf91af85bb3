"""Legacy TF 1.x model_fns (cnn_mnist tutorial, official ResNet shape) train and evaluate unchanged.

tests/fixtures/legacy_2_15/end_to_end/models.py is the legacy source; the only edit is its
``estimator`` import, which the loader points at bridge. TF 2.15 ran the same file (record.py).
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

import bridge
from compat._legacy import facts, module

FACTS = facts("end_to_end")
MODELS = module("end_to_end", "models")
MODELS.estimator = bridge  # the import edit


@pytest.fixture(scope="module")
def digits():
    return MODELS.digits()


class _BatchAccuracy(bridge.SessionRunHook):
    """Records the training batches' accuracy (the model in training mode: batch statistics)."""

    def __init__(self, accuracy):
        self._accuracy, self.values = accuracy, []

    def before_run(self, run_context):
        return bridge.SessionRunArgs(self._accuracy)

    def after_run(self, run_context, run_values):
        self.values.append(float(run_values.results))


def _with_batch_accuracy(model_fn, recorders):
    def wrapped(features, labels, mode, params):
        spec = model_fn(features, labels, mode, params)
        if mode != bridge.ModeKeys.TRAIN:
            return spec
        correct = tf.equal(spec.predictions["classes"], tf.cast(labels, tf.int64))
        recorders.append(_BatchAccuracy(tf.reduce_mean(tf.cast(correct, tf.float32))))
        return spec._replace(training_hooks=[*spec.training_hooks, recorders[-1]])

    return wrapped


def _summary_tags(model_dir):
    tags = set()
    for path in glob.glob(os.path.join(model_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_cnn_mnist_style_model_fn_trains_and_evaluates_like_2_15(tmp_path, digits):
    x, y = digits
    config = bridge.RunConfig(tf_random_seed=0, log_step_count_steps=None, save_summary_steps=100)
    classifier = bridge.Estimator(MODELS.cnn_model_fn, str(tmp_path), config, params=MODELS.CNN_PARAMS)
    classifier.train(MODELS.train_input_fn(x, y), steps=MODELS.TRAIN_STEPS["cnn"])
    results = classifier.evaluate(MODELS.eval_input_fn(x, y))
    expected = FACTS["models"]["cnn"]
    assert sorted(classifier.get_variable_names()) == expected["variables"]
    assert results["accuracy"] > expected["accuracy"] - 0.05  # 2.15: 0.87-0.89 (initial values differ)
    assert _summary_tags(str(tmp_path)) == set(expected["summary_tags"])
    predictions = list(classifier.predict(MODELS.eval_input_fn(x[:5], y[:5])))
    assert [p["probabilities"].shape for p in predictions] == [(10,)] * 5


def test_resnet_style_model_fn_evaluates_as_it_trained(tmp_path, digits):
    """Moving statistics are updated through UPDATE_OPS and saved: eval accuracy matches training's."""
    x, y = digits
    recorders = []
    config = bridge.RunConfig(tf_random_seed=0, log_step_count_steps=None, save_summary_steps=100)
    model_fn = _with_batch_accuracy(MODELS.resnet_model_fn, recorders)
    classifier = bridge.Estimator(model_fn, str(tmp_path), config, params=MODELS.RESNET_PARAMS)
    classifier.train(MODELS.train_input_fn(x, y), steps=MODELS.TRAIN_STEPS["resnet"])
    results = classifier.evaluate(MODELS.eval_input_fn(x, y))
    expected = FACTS["models"]["resnet"]
    assert sorted(classifier.get_variable_names()) == expected["variables"]
    last_epoch = recorders[-1].values[-(len(x) // 64) :]
    training_accuracy = float(np.mean(last_epoch))
    assert results["accuracy"] == pytest.approx(training_accuracy, abs=0.02)
    assert results["accuracy"] > expected["accuracy"] - 0.03  # 2.15: 1.0
    moving_mean = classifier.get_variable_value("resnet_model/batch_normalization/moving_mean")
    assert np.any(moving_mean != 0.0)
    assert _summary_tags(str(tmp_path)) == set(expected["summary_tags"])  # TF1's uniquified tags too
