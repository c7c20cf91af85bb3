"""input_fn forms and arguments, as tf.estimator 2.15 accepted them."""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf

import bridge
from tests.conftest import X, Y


def _recording_model_fn(record):
    def model_fn(features, labels, mode):
        record.append({"features": features, "labels": labels})
        x = features["x"] if isinstance(features, dict) else features
        predictions = keras.layers.Dense(1)(x)
        if mode == bridge.ModeKeys.PREDICT:
            return bridge.EstimatorSpec(mode, predictions=predictions)
        target = labels if labels is not None else tf.zeros_like(predictions)
        loss = tf.reduce_mean(tf.square(predictions - target))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.01)))

    return model_fn


def _train(model_dir, input_fn, steps=2):
    record = []
    est = bridge.Estimator(_recording_model_fn(record), model_dir=model_dir)
    est.train(input_fn, steps=steps)
    return est, record[0]


def test_dataset_of_features_and_labels(model_dir):
    est, seen = _train(model_dir, lambda: tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).batch(4))
    assert isinstance(seen["features"], dict) and seen["features"]["x"].shape.as_list() == [None, 3]
    assert seen["labels"].shape.as_list() == [None, 1]
    assert int(est.get_variable_value("global_step")) == 2


def test_dataset_of_features_alone(model_dir):
    est, seen = _train(model_dir, lambda: tf.data.Dataset.from_tensor_slices({"x": X}).batch(4))
    assert seen["labels"] is None
    assert int(est.get_variable_value("global_step")) == 2


def test_dataset_of_a_features_tensor(model_dir):
    est, seen = _train(model_dir, lambda: tf.data.Dataset.from_tensor_slices(X).batch(4))
    assert isinstance(seen["features"], tf.Tensor) and seen["labels"] is None


def test_tuple_of_numpy_features_and_labels_repeats(model_dir):
    est, seen = _train(model_dir, lambda: ({"x": X[:4]}, Y[:4]), steps=7)
    assert seen["labels"] is not None
    assert int(est.get_variable_value("global_step")) == 7  # a constant input never ends


def test_list_of_tensors(model_dir):
    est, seen = _train(model_dir, lambda: [tf.constant(X[:4]), tf.constant(Y[:4])], steps=1)
    assert isinstance(seen["features"], tf.Tensor) and seen["labels"] is not None


def test_features_dict_alone(model_dir):
    est, seen = _train(model_dir, lambda: {"x": tf.constant(X[:4])}, steps=3)
    assert seen["labels"] is None
    assert int(est.get_variable_value("global_step")) == 3


@pytest.mark.parametrize("value", [(X, Y, Y), [X], ()])
def test_tuple_of_other_length_rejected(model_dir, value):
    with pytest.raises(ValueError, match=r"input_fn should return \(features, labels\) as a len 2 tuple"):
        _train(model_dir, lambda: value)


def test_dataset_of_three_tuples_rejected(model_dir):
    # tf.estimator parsed each Dataset element with the same rule as a returned tuple.
    with pytest.raises(ValueError, match=r"input_fn should return \(features, labels\) as a len 2 tuple"):
        _train(model_dir, lambda: tf.data.Dataset.from_tensor_slices((X, Y, Y)).batch(4))


def test_input_fn_receives_declared_arguments(model_dir):
    calls = []

    def input_fn(mode, params, config):
        calls.append((mode, params, config))
        params["mutated"] = True  # a deep copy: must not leak into the Estimator
        ds = tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).batch(params["batch_size"])
        return ds if mode != bridge.ModeKeys.PREDICT else ds.map(lambda f, l: f)

    def model_fn(features, labels, mode, params):
        return _recording_model_fn([])(features, labels, mode)

    est = bridge.Estimator(model_fn, model_dir=model_dir, params={"batch_size": 10}, config=bridge.RunConfig(tf_random_seed=3))
    est.train(input_fn, steps=1)
    est.evaluate(input_fn)
    rows = list(est.predict(input_fn))
    assert len(rows) == 20
    assert [c[0] for c in calls] == ["train", "eval", "infer"]
    assert all(c[1]["batch_size"] == 10 for c in calls)
    assert all(isinstance(c[2], bridge.RunConfig) and c[2].tf_random_seed == 3 for c in calls)
    assert est.params == {"batch_size": 10}


def test_input_fn_with_only_mode(model_dir):
    modes = []

    def input_fn(mode):
        modes.append(mode)
        return tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).batch(5)

    est, _ = _train(model_dir, input_fn)
    assert modes == ["train"]


def test_input_fn_is_built_on_cpu(model_dir):
    devices = []

    def input_fn():
        devices.append(tf.constant(0.0).device)
        return tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).batch(5)

    _train(model_dir, input_fn, steps=1)
    assert "CPU" in devices[0].upper()
