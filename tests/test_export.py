"""Estimator.export_saved_model and bridge.export: reload every export and serve what predict gives."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.tools import saved_model_utils

import bridge
from bridge import _export
from bridge.export import (
    ClassificationOutput,
    PredictOutput,
    RegressionOutput,
    ServingInputReceiver,
    TensorServingInputReceiver,
    build_parsing_serving_input_receiver_fn,
    build_raw_serving_input_receiver_fn,
)
from tests.conftest import X, keras_model_fn, make_input_fn

LABELS = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
CLASS_NAMES = ["neg", "pos"]
FEATURE_SPEC = {"x": tf.io.FixedLenFeature([3], tf.float32)}


@pytest.fixture(autouse=True)
def fast_clock(monkeypatch):
    """Export directories are named by the second; a counter keeps tests from sleeping."""
    clock = itertools.count(1_700_000_000)
    monkeypatch.setattr(_export, "_now", lambda: next(clock))


def classifier_model_fn(features, labels, mode):
    """A 2-class model_fn with classify, regress and predict export outputs."""
    logits = keras.layers.Dense(2, name="logits")(features["x"])
    probabilities = tf.nn.softmax(logits)
    class_ids = tf.argmax(logits, axis=1)
    if mode == bridge.ModeKeys.PREDICT:
        classes = tf.gather(tf.constant(CLASS_NAMES), class_ids)
        predictions = {"probabilities": probabilities, "class_ids": class_ids}
        return bridge.EstimatorSpec(
            mode,
            predictions=predictions,
            export_outputs={
                "serving_default": ClassificationOutput(scores=probabilities, classes=tf.expand_dims(classes, 1)),
                "classification": ClassificationOutput(scores=probabilities),
                "regression": RegressionOutput(probabilities[:, 1]),
                "predict": PredictOutput(predictions),
            },
        )
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.Adam(0.1)))


@pytest.fixture
def trained(estimator):
    estimator.train(make_input_fn(epochs=None), steps=6)
    return estimator


@pytest.fixture
def classifier(tmp_path):
    est = bridge.Estimator(classifier_model_fn, model_dir=str(tmp_path / "classifier"))
    est.train(make_input_fn(y=LABELS, epochs=None), steps=8)
    return est


def serialized_examples(x):
    return tf.constant(
        [
            tf.train.Example(
                features=tf.train.Features(feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=row))})
            ).SerializeToString()
            for row in x
        ]
    )


def predictions_by_key(estimator, **kwargs):
    rows = list(estimator.predict(make_input_fn(y=None), **kwargs))
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def signature_defs(export_dir):
    return saved_model_utils.get_meta_graph_def(os.fsdecode(export_dir), "serve").signature_def


# -- round trips -----------------------------------------------------------------------------------
def test_raw_receiver_export_serves_the_predictions(trained, tmp_path):
    path = trained.export_saved_model(str(tmp_path / "export"), build_raw_serving_input_receiver_fn({"x": X[:1]}))
    assert isinstance(path, bytes)
    loaded = tf.saved_model.load(os.fsdecode(path))
    assert sorted(loaded.signatures) == ["serving_default"]
    served = loaded.signatures["serving_default"](x=tf.constant(X))
    expected = predictions_by_key(trained)
    assert sorted(served) == ["twice", "y"]
    np.testing.assert_allclose(served["y"].numpy(), expected["y"], rtol=1e-6)
    np.testing.assert_allclose(served["twice"].numpy(), expected["twice"], rtol=1e-6)
    signature = signature_defs(path)["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert list(signature.inputs) == ["x"]
    assert signature.inputs["x"].tensor_shape.dim[0].size == -1


def test_tf_example_request_through_the_parsing_receiver(classifier, tmp_path):
    path = classifier.export_saved_model(str(tmp_path / "export"), build_parsing_serving_input_receiver_fn(FEATURE_SPEC))
    signatures = signature_defs(path)
    assert {key: sig.method_name for key, sig in signatures.items() if not key.startswith("__")} == {
        "serving_default": "tensorflow/serving/classify",
        "classification": "tensorflow/serving/classify",
        "regression": "tensorflow/serving/regress",
        "predict": "tensorflow/serving/predict",
    }
    assert list(signatures["serving_default"].inputs) == ["inputs"]
    assert sorted(signatures["serving_default"].outputs) == ["classes", "scores"]
    assert list(signatures["regression"].outputs) == ["outputs"]
    assert list(signatures["predict"].inputs) == ["examples"]

    expected = predictions_by_key(classifier)
    loaded = tf.saved_model.load(os.fsdecode(path))
    request = serialized_examples(X)
    classify = loaded.signatures["serving_default"](inputs=request)
    np.testing.assert_allclose(classify["scores"].numpy(), expected["probabilities"], rtol=1e-5)
    names = np.array(CLASS_NAMES, dtype=object)[expected["class_ids"]]
    assert [c.decode() for c in classify["classes"].numpy()[:, 0]] == list(names)
    regress = loaded.signatures["regression"](inputs=request)
    np.testing.assert_allclose(regress["outputs"].numpy(), expected["probabilities"][:, 1], rtol=1e-5)
    predict = loaded.signatures["predict"](examples=request)
    np.testing.assert_array_equal(predict["class_ids"].numpy(), expected["class_ids"])


def test_classify_and_regress_signatures_need_a_single_string_input(classifier, tmp_path):
    # Over a raw float receiver only the predict signature is servable, as in tf.estimator.
    path = classifier.export_saved_model(str(tmp_path / "export"), build_raw_serving_input_receiver_fn({"x": X[:1]}))
    signatures = signature_defs(path)
    assert sorted(k for k in signatures if not k.startswith("__")) == ["predict"]
    loaded = tf.saved_model.load(os.fsdecode(path))
    out = loaded.signatures["predict"](x=tf.constant(X))
    np.testing.assert_array_equal(out["class_ids"].numpy(), predictions_by_key(classifier)["class_ids"])


def test_saved_model_cli_lists_the_signatures(classifier, tmp_path):
    path = classifier.export_saved_model(str(tmp_path / "export"), build_parsing_serving_input_receiver_fn(FEATURE_SPEC))
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        pytest.skip("saved_model_cli is not installed next to this Python")
    out = subprocess.run([cli, "show", "--dir", os.fsdecode(path), "--all"], capture_output=True, text=True, check=True).stdout
    assert "MetaGraphDef with tag-set: 'serve'" in out
    for name in ("serving_default", "classification", "regression", "predict"):
        assert f"signature_def['{name}']" in out
    assert "Method name is: tensorflow/serving/classify" in out
    assert "Method name is: tensorflow/serving/regress" in out


def test_tensor_serving_input_receiver_and_alternatives(tmp_path):
    def model_fn(features, labels, mode):
        prediction = keras.layers.Dense(1, name="dense", kernel_initializer="ones")(features)
        return bridge.EstimatorSpec(mode, predictions=prediction, loss=tf.reduce_mean(prediction), train_op=tf.no_op())

    est = bridge.Estimator(model_fn, model_dir=str(tmp_path / "m"))
    est.train(make_input_fn(features_as_dict=False, epochs=1), steps=1)

    def receiver_fn():
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="examples")
        x = tf.io.parse_example(serialized, FEATURE_SPEC)["x"]
        return TensorServingInputReceiver(x, serialized, receiver_tensors_alternatives={"raw": {"x": x}})

    path = est.export_saved_model(str(tmp_path / "export"), receiver_fn)
    loaded = tf.saved_model.load(os.fsdecode(path))
    assert sorted(loaded.signatures) == ["raw:serving_default", "serving_default"]
    expected = np.stack(list(est.predict(make_input_fn(y=None, features_as_dict=False))))
    by_example = loaded.signatures["serving_default"](input=serialized_examples(X))["output"]
    by_raw = loaded.signatures["raw:serving_default"](x=tf.constant(X))["output"]
    np.testing.assert_allclose(by_example.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(by_raw.numpy(), expected, rtol=1e-6)


def test_checkpoint_path_selects_the_exported_weights(estimator, tmp_path):
    estimator.train(make_input_fn(epochs=None), steps=2)
    first = estimator.latest_checkpoint()
    estimator.train(make_input_fn(epochs=None), steps=4)
    receiver = build_raw_serving_input_receiver_fn({"x": X[:1]})
    old = estimator.export_saved_model(str(tmp_path / "export"), receiver, checkpoint_path=first)
    new = estimator.export_saved_model(str(tmp_path / "export"), receiver)
    served_old = tf.saved_model.load(os.fsdecode(old)).signatures["serving_default"](x=tf.constant(X))["y"]
    served_new = tf.saved_model.load(os.fsdecode(new)).signatures["serving_default"](x=tf.constant(X))["y"]
    np.testing.assert_allclose(served_old.numpy(), predictions_by_key(estimator, checkpoint_path=first)["y"], rtol=1e-6)
    np.testing.assert_allclose(served_new.numpy(), predictions_by_key(estimator)["y"], rtol=1e-6)
    assert not np.allclose(served_old.numpy(), served_new.numpy())


def test_export_falls_back_to_the_warm_start_source(trained, tmp_path):
    warm = bridge.Estimator(keras_model_fn, model_dir=str(tmp_path / "warm"), params={}, warm_start_from=trained.model_dir)
    path = warm.export_saved_model(str(tmp_path / "export"), build_raw_serving_input_receiver_fn({"x": X[:1]}))
    served = tf.saved_model.load(os.fsdecode(path)).signatures["serving_default"](x=tf.constant(X))["y"]
    np.testing.assert_allclose(served.numpy(), predictions_by_key(trained)["y"], rtol=1e-6)


def test_as_text_assets_extra_and_variable_keys(trained, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\n")
    path = trained.export_saved_model(
        str(tmp_path / "export"),
        build_raw_serving_input_receiver_fn({"x": X[:1]}),
        assets_extra={"nested/vocab.txt": str(vocab)},
        as_text=True,
    )
    path = os.fsdecode(path)
    assert os.path.exists(os.path.join(path, "saved_model.pbtxt"))
    assert not os.path.exists(os.path.join(path, "saved_model.pb"))
    assert (tmp_path / "export" / os.path.basename(path) / "assets.extra" / "nested" / "vocab.txt").read_text() == "a\nb\n"
    served = tf.saved_model.load(path).signatures["serving_default"](x=tf.constant(X))["y"]
    np.testing.assert_allclose(served.numpy(), predictions_by_key(trained)["y"], rtol=1e-6)
    keys = _export.saved_model_variable_keys(path)
    assert {"global_step", "dense/kernel", "dense/bias"} <= set(keys)
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    np.testing.assert_array_equal(reader.get_tensor(keys["dense/kernel"]), trained.get_variable_value("dense/kernel"))


# -- directory naming and atomicity ---------------------------------------------------------------
def test_export_directory_is_a_timestamp_written_atomically(trained, tmp_path, monkeypatch):
    base = tmp_path / "export"
    receiver = build_raw_serving_input_receiver_fn({"x": X[:1]})
    clock = iter([1_700_000_100, 1_700_000_100, 1_700_000_101])
    monkeypatch.setattr(_export, "_now", lambda: next(clock))
    monkeypatch.setattr(_export.time, "sleep", lambda secs: None)
    os.makedirs(base / "1700000100")  # taken: the exporter waits for the next second
    path = trained.export_saved_model(str(base), receiver)
    assert path == os.fsencode(str(base / "1700000101"))
    assert sorted(os.listdir(base)) == ["1700000100", "1700000101"]
    assert os.path.exists(os.path.join(os.fsdecode(path), "saved_model.pb"))


def test_failed_export_leaves_nothing_under_the_final_name(trained, tmp_path):
    base = tmp_path / "export"
    with pytest.raises(Exception):
        trained.export_saved_model(
            str(base), build_raw_serving_input_receiver_fn({"x": X[:1]}), assets_extra={"f.txt": str(tmp_path / "missing")}
        )
    assert not base.exists() or os.listdir(base) == []


def test_unique_directory_gives_up_after_ten_attempts(tmp_path, monkeypatch):
    monkeypatch.setattr(_export, "_now", lambda: 1_700_000_200)
    monkeypatch.setattr(_export.time, "sleep", lambda secs: None)
    os.makedirs(tmp_path / "1700000200")
    with pytest.raises(RuntimeError, match="unique export directory"):
        _export.timestamped_export_dir(str(tmp_path))


# -- errors ---------------------------------------------------------------------------------------
def test_export_needs_a_receiver_fn_and_a_trained_model(estimator, tmp_path):
    with pytest.raises(ValueError, match="An input_receiver_fn must be defined"):
        estimator.export_saved_model(str(tmp_path / "e"), None)
    with pytest.raises(ValueError, match="Couldn't find trained model at"):
        estimator.export_saved_model(str(tmp_path / "e"), build_raw_serving_input_receiver_fn({"x": X[:1]}))


def test_receiver_fn_must_return_a_receiver(trained, tmp_path):
    with pytest.raises(TypeError, match="ServingInputReceiver"):
        trained.export_saved_model(str(tmp_path / "e"), lambda: {"x": tf.compat.v1.placeholder(tf.float32, [None, 3])})


def test_train_and_eval_modes_need_a_supervised_receiver(trained, tmp_path):
    # EVAL / TRAIN exports themselves: tests/test_export_modes.py
    with pytest.raises(TypeError, match="SupervisedInputReceiver"):
        trained.export_saved_model(
            str(tmp_path / "e"), build_raw_serving_input_receiver_fn({"x": X[:1]}), experimental_mode=bridge.ModeKeys.TRAIN
        )


# -- receivers ------------------------------------------------------------------------------------
def test_serving_input_receiver_wraps_and_checks():
    t = tf.constant([[1.0]])
    receiver = ServingInputReceiver(t, t)
    assert set(receiver.features) == {"feature"} and set(receiver.receiver_tensors) == {"input"}
    assert receiver.receiver_tensors_alternatives is None
    assert set(ServingInputReceiver({1: t}, {"a": t}).features) == {1}
    with pytest.raises(ValueError, match="receiver_tensor keys must be strings"):
        ServingInputReceiver(t, {1: t})
    with pytest.raises(ValueError, match="must be a Tensor"):
        ServingInputReceiver({"a": [1.0]}, t)
    with pytest.raises(ValueError, match="receiver_tensors_alternatives must be a dict"):
        ServingInputReceiver(t, t, receiver_tensors_alternatives=[t])
    with pytest.raises(ValueError, match="features must be defined"):
        TensorServingInputReceiver(None, t)
    assert TensorServingInputReceiver(t, t).features is t


def test_receiver_fn_builders_make_placeholders():
    graph = tf.Graph()
    with graph.as_default():
        receiver = build_parsing_serving_input_receiver_fn(FEATURE_SPEC, default_batch_size=4)()
        examples = receiver.receiver_tensors["examples"]
        assert examples.op.name == "input_example_tensor" and examples.shape.as_list() == [4]
        assert examples.dtype == tf.string and set(receiver.features) == {"x"}
        raw = build_raw_serving_input_receiver_fn(
            {"x": X[:2], "n": np.zeros([2], np.int64), "s": tf.TensorSpec([None, 2], tf.int32)}
        )()
        assert raw.features is raw.receiver_tensors
        assert raw.receiver_tensors["x"].shape.as_list() == [None, 3]
        assert raw.receiver_tensors["n"].dtype == tf.int64
        assert raw.receiver_tensors["s"].shape.as_list() == [None, 2] and raw.receiver_tensors["s"].op.name == "s"
    with pytest.raises(ValueError, match="dict of feature name"):
        build_raw_serving_input_receiver_fn(X)


def test_warm_start_from_an_export_directory(trained, tmp_path):
    """§13: a SavedModel path warm-starts by variable name, although bridge exports are object-based."""
    path = trained.export_saved_model(str(tmp_path / "export"), build_raw_serving_input_receiver_fn({"x": X[:1]}))
    fresh = bridge.Estimator(keras_model_fn, model_dir=str(tmp_path / "fresh"), warm_start_from=path)
    np.testing.assert_allclose(predictions_by_key(fresh)["y"], predictions_by_key(trained)["y"], rtol=1e-6)
