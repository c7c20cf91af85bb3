"""Estimator details where bridge follows 2.15 exactly (facts in tests/fixtures/legacy_2_15/conformance)."""

from __future__ import annotations

import json
import logging
import os
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge

FACTS = json.loads((pathlib.Path(__file__).parents[1] / "fixtures/legacy_2_15/conformance/facts.json").read_text())
X = np.arange(12, dtype=np.float32).reshape(6, 2)
Y = np.arange(6, dtype=np.float32).reshape(6, 1)


def input_fn():
    return tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).batch(3)


def model_fn(features, labels, mode, params):
    predictions = keras.layers.Dense(1)(features["x"])
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions={"y": predictions})
    loss = tf.reduce_mean(tf.square(labels - predictions))
    metrics = {"mse": tf.compat.v1.metrics.mean_squared_error(labels, predictions)}
    if params.get("host_metric"):
        metrics["acc"] = bridge.metrics.accuracy(tf.cast(labels > 2, tf.int64), tf.cast(predictions > 2, tf.int64))
    if params.get("keras_metric") == "updated":
        metric = keras.metrics.Mean(name="mean_label")
        metric.update_state(labels)
        metrics["mean_label"] = metric
    elif params.get("keras_metric") == "not_updated":
        metrics["mean_label"] = keras.metrics.Mean(name="mean_label")
    return bridge.EstimatorSpec(
        mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.01)), eval_metric_ops=metrics
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("model"))
    bridge.Estimator(model_fn, model_dir=model_dir, params={}).train(input_fn, steps=2)
    return model_dir


def _types(results):
    return {k: f"{type(v).__name__}:{v.dtype}" for k, v in results.items()}


def test_evaluate_result_types_are_2_15s(trained):
    results = bridge.Estimator(model_fn, model_dir=trained, params={}).evaluate(input_fn)
    assert _types(results) == FACTS["evaluate_types"]
    keras_results = bridge.Estimator(model_fn, model_dir=trained, params={"keras_metric": "updated"}).evaluate(input_fn)
    assert _types(keras_results) == FACTS["evaluate_types_keras_metric"]
    # bridge's C++ host metrics compute in float64; evaluate returns float32 like tf.compat.v1.metrics did.
    host = bridge.Estimator(model_fn, model_dir=trained, params={"host_metric": True}).evaluate(input_fn)
    assert _types(host)["acc"] == "float32:float32"


def test_evaluate_missing_checkpoint_path_is_2_15s_value_error(trained):
    fact = FACTS["missing_checkpoint"]
    missing = os.path.join(trained, os.path.basename(fact["path"]))
    est = bridge.Estimator(model_fn, model_dir=trained, params={})
    with pytest.raises(ValueError) as raised:
        est.evaluate(input_fn, checkpoint_path=missing)
    assert str(raised.value) == fact["message"].replace(fact["path"], missing)
    assert fact["error"] == "ValueError"
    with pytest.raises(ValueError, match="not a valid checkpoint"):
        next(est.predict(input_fn, checkpoint_path=missing))
    # An existing one is used.
    assert est.evaluate(input_fn, checkpoint_path=est.latest_checkpoint())["global_step"] == 2


def test_unupdated_keras_metric_is_2_15s_value_error(trained):
    fact = FACTS["unupdated_keras_metric"]
    est = bridge.Estimator(model_fn, model_dir=trained, params={"keras_metric": "not_updated"})
    with pytest.raises(ValueError) as raised:
        est.evaluate(input_fn)
    assert (type(raised.value).__name__, str(raised.value)) == (fact["error"], fact["message"])


def test_export_savedmodel_alias_warns_like_2_15(trained, tmp_path, caplog):
    est = bridge.Estimator(model_fn, model_dir=trained, params={})

    def serving_input_receiver_fn():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        return bridge.export.ServingInputReceiver({"x": x}, {"x": x})

    with caplog.at_level(logging.WARNING, logger="bridge"):
        path = est.export_savedmodel(str(tmp_path), serving_input_receiver_fn, strip_default_attrs=True)
    assert type(path).__name__ == FACTS["export_savedmodel_returns"]
    expected = FACTS["export_savedmodel_warning"][0].replace("tensorflow_estimator.python.estimator.estimator", "bridge.estimator")
    assert expected in caplog.text
    loaded = tf.saved_model.load(path.decode())
    out = loaded.signatures["serving_default"](x=tf.constant(X))
    assert next(iter(out.values())).shape == (6, 1)
