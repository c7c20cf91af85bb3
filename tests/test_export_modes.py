"""export_saved_model(experimental_mode=EVAL / TRAIN) and experimental_export_all_saved_models (issue 20).

Facts: tests/fixtures/legacy_2_15/export_modes/facts.json (record.py there): 2.15's MetaGraph
tags, signature keys, method names, inputs and outputs, and one signature call on 16 examples
of the recorder's model (trained here the same way, so the weights are 2.15's). Each export is
reloaded with tf.saved_model.load (and a v1 Session, as 2.15's consumers did) and its metrics
are checked against evaluate.
"""

from __future__ import annotations

import json
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import bridge
from tests.conftest import make_input_fn

FACTS = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "legacy_2_15", "export_modes", "facts.json")))
RNG = np.random.RandomState(0)
X = RNG.rand(64, 1).astype(np.float32)
Y = 2 * X


def model_fn(features, labels, mode, params):
    w = tf.compat.v1.get_variable("w", [1], initializer=tf.compat.v1.zeros_initializer())
    b = tf.compat.v1.get_variable("b", [1], initializer=tf.compat.v1.constant_initializer(0.5))
    pred = features["x"] * w + b
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions={"y": pred})
    loss = tf.compat.v1.losses.mean_squared_error(labels, pred)
    train_op = tf.compat.v1.train.GradientDescentOptimizer(0.05).minimize(loss, tf.compat.v1.train.get_global_step())
    metrics = {"mse": tf.compat.v1.metrics.mean_squared_error(labels, pred), "mean_w": tf.compat.v1.metrics.mean(w)}
    if params.get("keras_metric"):
        mae = keras.metrics.MeanAbsoluteError()
        mae.update_state(labels, pred)
        metrics["mae"] = mae
    if params.get("host_metric"):
        metrics["host_mae"] = bridge.metrics.mean_absolute_error(labels, pred)
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, predictions={"y": pred, "y2": pred * 2},
                                eval_metric_ops=metrics)


def _trained(tmp_path, **params):
    estimator = bridge.Estimator(model_fn, model_dir=str(tmp_path / "model"), params=params,
                                 config=bridge.RunConfig(log_step_count_steps=None))
    estimator.train(make_input_fn(x=X, y=Y, batch_size=8, epochs=None), steps=5)
    return estimator


def _receiver_fn():
    return bridge.experimental.build_raw_supervised_input_receiver_fn({"x": tf.constant(X[:1])}, tf.constant(Y[:1]))


def _meta_graphs(path):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return [{
        "tags": list(graph.meta_info_def.tags),
        "signatures": {key: {"method_name": sig.method_name, "inputs": sorted(sig.inputs), "outputs": sorted(sig.outputs)}
                       for key, sig in graph.signature_def.items() if key != "__saved_model_init_op"},
    } for graph in proto.meta_graphs]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _trained(tmp_path_factory.mktemp("export_modes"), keras_metric=True)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_layout_is_2_15s(trained, tmp_path, mode):
    path = trained.export_saved_model(str(tmp_path), _receiver_fn(), experimental_mode=mode).decode()
    (graph,) = _meta_graphs(path)
    (expected,) = FACTS[mode]["meta_graphs"]
    assert graph["tags"] == expected["tags"] == [mode]
    signature = graph["signatures"][mode]
    assert set(graph["signatures"]) == set(expected["signatures"]) == {mode}
    assert signature["method_name"] == expected["signatures"][mode]["method_name"]
    assert signature["inputs"] == expected["signatures"][mode]["inputs"] == ["label", "x"]
    # 2.15's outputs, plus this model's Keras metric object (not in the recorder's model_fn)
    assert signature["outputs"] == sorted(expected["signatures"][mode]["outputs"] + ["metrics/mae/update_op", "metrics/mae/value"])


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_a_call_gives_2_15s_loss_and_updates_and_streams_to_evaluates_metrics(trained, tmp_path, mode):
    path = trained.export_saved_model(str(tmp_path), _receiver_fn(), experimental_mode=mode).decode()
    signature = tf.saved_model.load(path, tags=[mode]).signatures[mode]
    first = {k: v.numpy() for k, v in signature(x=tf.constant(X[:16]), label=tf.constant(Y[:16])).items()}
    recorded = FACTS[mode]["first_call_on_16"]
    for key in ("loss", "metrics/mse/update_op", "metrics/mean_w/update_op"):
        np.testing.assert_allclose(first[key], recorded[key], rtol=1e-5, err_msg=key)
    # bridge reads a metric's value after the call's update (2.15's Session read it in no set order: 0.0 here)
    np.testing.assert_allclose(first["metrics/mse/value"], recorded["metrics/mse/update_op"], rtol=1e-5)
    for i in range(1, 4):
        last = signature(x=tf.constant(X[16 * i:16 * i + 16]), label=tf.constant(Y[16 * i:16 * i + 16]))
    expected = trained.evaluate(make_input_fn(x=X, y=Y, batch_size=16))
    for name in ("mse", "mean_w", "mae"):
        np.testing.assert_allclose(last[f"metrics/{name}/value"].numpy(), expected[name], rtol=1e-5, err_msg=name)
    assert trained.get_variable_value("global_step") == 5  # the train signature did not train


def test_eval_export_runs_in_a_v1_session_as_2_15s_did(trained, tmp_path):
    path = trained.export_saved_model(str(tmp_path), _receiver_fn(), experimental_mode=bridge.ModeKeys.EVAL).decode()
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        signature = tf.compat.v1.saved_model.load(session, ["eval"], path).signature_def["eval"]
        tensor = session.graph.get_tensor_by_name
        fetch = {k: tensor(signature.outputs[k].name) for k in ("loss", "metrics/mse/value")}
        values = session.run(fetch, {tensor(signature.inputs["x"].name): X[:16], tensor(signature.inputs["label"].name): Y[:16]})
    np.testing.assert_allclose(values["loss"], FACTS["eval"]["first_call_on_16"]["loss"], rtol=1e-5)
    np.testing.assert_allclose(values["metrics/mse/value"], FACTS["evaluate_first_16"]["mse"], rtol=1e-5)


def test_export_all_writes_2_15s_meta_graphs_each_loadable_by_its_tags(trained, tmp_path):
    serving_fn = bridge.export.build_raw_serving_input_receiver_fn({"x": tf.constant(X[:1])})
    path = trained.experimental_export_all_saved_models(
        str(tmp_path), {"eval": _receiver_fn(), "train": _receiver_fn(), "infer": serving_fn}).decode()
    assert [{"tags": g["tags"], "signatures": sorted(g["signatures"])} for g in _meta_graphs(path)] == FACTS["export_all"]
    predictions = tf.saved_model.load(path, tags=["serve"]).signatures["serving_default"](x=tf.constant(X[:2]))
    expected = [p["y"] for p in trained.predict(make_input_fn(x=X[:2], y=None))]
    np.testing.assert_allclose(predictions["y"].numpy(), expected, rtol=1e-6)
    evaluation = tf.saved_model.load(path, tags=["eval"]).signatures["eval"](x=tf.constant(X[:16]), label=tf.constant(Y[:16]))
    np.testing.assert_allclose(evaluation["loss"].numpy(), FACTS["eval"]["first_call_on_16"]["loss"], rtol=1e-5)


def test_metrics_computed_on_the_host_are_left_out_with_a_warning(tmp_path, caplog):
    estimator = _trained(tmp_path, host_metric=True)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        path = estimator.export_saved_model(str(tmp_path / "e"), _receiver_fn(), experimental_mode="eval").decode()
    assert "host_mae" in caplog.text
    outputs = _meta_graphs(path)[0]["signatures"]["eval"]["outputs"]
    assert "metrics/mse/value" in outputs and not any("host_mae" in name for name in outputs)


def test_bad_receivers_and_modes_are_refused(trained, tmp_path):
    serving_fn = bridge.export.build_raw_serving_input_receiver_fn({"x": tf.constant(X[:1])})
    with pytest.raises(TypeError, match="build_raw_supervised_input_receiver_fn"):
        trained.export_saved_model(str(tmp_path), serving_fn, experimental_mode="eval")
    with pytest.raises(ValueError, match="experimental_mode"):
        trained.export_saved_model(str(tmp_path), serving_fn, experimental_mode="evaluate")
    with pytest.raises(ValueError, match="input_receiver_fn_map"):
        trained.experimental_export_all_saved_models(str(tmp_path), {"serve": serving_fn})
    assert not os.listdir(tmp_path)
