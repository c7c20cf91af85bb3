"""input_fns returning a tf.compat.v1.data iterator's get_next(): 2.15's batches, never one repeated."""

from __future__ import annotations

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge

FACTS = json.loads((pathlib.Path(__file__).parents[1] / "fixtures/legacy_2_15/iterators/facts.json").read_text())
X = np.arange(14, dtype=np.float32).reshape(7, 2)
Y = np.arange(7, dtype=np.int64)


def dataset():
    return tf.compat.v1.data.Dataset.from_tensor_slices(({"x": X}, Y)).batch(2)


def one_shot_input_fn():
    return tf.compat.v1.data.make_one_shot_iterator(dataset()).get_next()


def initializable_input_fn():
    iterator = tf.compat.v1.data.make_initializable_iterator(dataset())
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.TABLE_INITIALIZERS, iterator.initializer)
    features, labels = iterator.get_next()
    return features, labels


def method_input_fn():
    return dataset().make_one_shot_iterator().get_next()


INPUT_FNS = {"one_shot": one_shot_input_fn, "initializable": initializable_input_fn, "dataset_method": method_input_fn}


class Seen(bridge.SessionRunHook):
    def __init__(self, labels, log):
        self.labels, self.log = labels, log

    def before_run(self, run_context):
        return bridge.SessionRunArgs(self.labels)

    def after_run(self, run_context, run_values):
        self.log.append(run_values.results.tolist())


def make_model_fn(log):
    def model_fn(features, labels, mode):
        predictions = keras.layers.Dense(1)(features["x"])
        loss = tf.reduce_mean(tf.square(tf.cast(labels, tf.float32)[:, None] - predictions))
        hooks = [Seen(labels, log)]
        if mode == bridge.ModeKeys.TRAIN:
            train_op = bridge.minimize(loss, keras.optimizers.SGD(0.001))
            return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, training_hooks=hooks)
        return bridge.EstimatorSpec(mode, loss=loss, evaluation_hooks=hooks)

    return model_fn


@pytest.mark.parametrize("kind", sorted(INPUT_FNS))
def test_successive_batches_ending_with_the_data(kind, tmp_path):
    fact = FACTS[kind]
    train_log, eval_log, capped = [], [], []
    bridge.Estimator(make_model_fn(train_log), model_dir=str(tmp_path / "a")).train(INPUT_FNS[kind])
    result = bridge.Estimator(make_model_fn(eval_log), model_dir=str(tmp_path / "a")).evaluate(INPUT_FNS[kind])
    assert train_log == fact["train_labels"]
    assert eval_log == fact["evaluate_labels"]
    assert result["global_step"] == fact["global_step"]
    bridge.Estimator(make_model_fn(capped), model_dir=str(tmp_path / "b")).train(INPUT_FNS[kind], steps=2)
    assert capped == fact["train_steps_2_labels"]


def test_rearranged_parts_and_features_only(tmp_path):
    seen = []

    def input_fn():
        features, labels = tf.compat.v1.data.make_one_shot_iterator(dataset()).get_next()
        return {"x": features["x"]}, labels  # a new dict of the same tensors: fine

    bridge.Estimator(make_model_fn(seen), model_dir=str(tmp_path)).train(input_fn)
    assert seen == FACTS["one_shot"]["train_labels"]

    def predict_input_fn():
        return tf.compat.v1.data.make_one_shot_iterator(tf.data.Dataset.from_tensor_slices({"x": X}).batch(3)).get_next()

    def model_fn(features, labels, mode):
        return bridge.EstimatorSpec(mode, predictions={"x0": features["x"][:, 0]})

    est = bridge.Estimator(model_fn, model_dir=str(tmp_path))
    assert [p["x0"] for p in est.predict(predict_input_fn)] == list(X[:, 0])


def test_computing_on_get_next_outputs_is_a_clear_error(tmp_path):
    def input_fn():
        features, labels = tf.compat.v1.data.make_one_shot_iterator(dataset()).get_next()
        return {"x": features["x"] * 2.0}, labels

    with pytest.raises(ValueError, match="returned tensors computed from its get_next"):
        bridge.Estimator(make_model_fn([]), model_dir=str(tmp_path)).train(input_fn)


def test_nothing_patched_outside_input_fn():
    assert "make_one_shot_iterator" not in vars(tf.compat.v1.data) or (
        tf.compat.v1.data.make_one_shot_iterator.__module__.startswith("tensorflow")
    )
    iterator = tf.compat.v1.data.make_one_shot_iterator(dataset())
    assert type(iterator).__module__.startswith("tensorflow")
