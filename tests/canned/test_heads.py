"""Public heads used from a custom model_fn give tf.estimator 2.15's losses, predictions, metrics and
export outputs on the same logits, labels and weights (recorded in canned_heads/heads.json)."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "legacy_2_15", "canned_heads", "heads.json")
with open(FIXTURE) as f:
    RECORDED = json.load(f)
WEIGHTS = np.asarray(RECORDED["weights"], np.float32)


def make_head(name, **kwargs):
    return {
        "binary": lambda: bridge.BinaryClassHead(weight_column="w", thresholds=[0.3, 0.7], **kwargs),
        "binary_vocabulary": lambda: bridge.BinaryClassHead(label_vocabulary=["neg", "pos"], **kwargs),
        "multi_class": lambda: bridge.MultiClassHead(3, weight_column="w", label_vocabulary=["a", "b", "c"], **kwargs),
        "regression": lambda: bridge.RegressionHead(label_dimension=2, weight_column="w", **kwargs),
        "poisson": lambda: bridge.PoissonRegressionHead(**kwargs),
        "logistic": lambda: bridge.LogisticRegressionHead(weight_column="w", **kwargs),
        "multi_label": lambda: bridge.MultiLabelHead(3, weight_column="w", thresholds=[0.5],
                                                     classes_for_class_based_metrics=[0, 2], **kwargs),
        "multi_head": lambda: bridge.MultiHead(
            [bridge.MultiClassHead(3, name="h1", **kwargs), bridge.BinaryClassHead(name="h2", **kwargs)],
            head_weights=[1.0, 2.0]),
    }[name]()


def labels_of(fact):
    labels = fact["labels"]
    if isinstance(labels, dict):
        return {k: np.asarray(v) for k, v in labels.items()}
    return np.asarray(labels)


def estimator(head, model_dir, regularization=True):
    def model_fn(features, labels, mode):
        shift = tf.compat.v1.get_variable("shift", [head.logits_dimension], initializer=tf.compat.v1.zeros_initializer())
        logits = features["logits"] + shift
        reg = [tf.constant(RECORDED["regularization"])] if regularization else None
        return head.create_estimator_spec(features, mode, logits, labels, optimizer=keras.optimizers.SGD(0.1),
                                          trainable_variables=[shift], regularization_losses=reg)

    return bridge.Estimator(model_fn, str(model_dir))


def input_fn(fact):
    features = {"logits": np.asarray(fact["logits"], np.float32), "w": WEIGHTS}
    return lambda: tf.data.Dataset.from_tensors((features, labels_of(fact)))


def check(got, recorded, what):
    want = np.asarray(recorded["value"], dtype=object if recorded["dtype"] == "string" else recorded["dtype"])
    if want.dtype == object:
        assert np.asarray(got).astype(str).tolist() == want.astype(str).tolist(), what
    else:
        assert np.asarray(got).dtype == want.dtype, what
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=what)


@pytest.mark.parametrize("name", sorted(RECORDED["cases"]))
def test_head_in_a_custom_model_fn_matches_2_15(name, tmp_path):
    fact = RECORDED["cases"][name]
    est = estimator(make_head(name), tmp_path / "model")

    result = est.evaluate(input_fn(fact), steps=1)
    assert set(result) == set(fact["metrics"]) | {"loss", "global_step"}
    for key, value in fact["metrics"].items():
        np.testing.assert_allclose(result[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(result["loss"], fact["loss"], rtol=1e-5)

    predictions = next(est.predict(input_fn(fact), yield_single_examples=False))
    flat = {"/".join(k) if isinstance(k, tuple) else k: v for k, v in predictions.items()}
    assert set(flat) == set(fact["predictions"])
    for key, recorded in fact["predictions"].items():
        check(flat[key], recorded, key)

    est.train(input_fn(fact), steps=1)  # optimizer + trainable_variables: one step, counted
    assert est.get_variable_value("global_step") == 1
    assert np.any(est.get_variable_value("shift") != 0.0)


@pytest.mark.parametrize("name", sorted(RECORDED["cases"]))
def test_loss_reduction_sum(name, tmp_path):
    fact = RECORDED["cases"][name]
    est = estimator(make_head(name, **({} if name == "multi_head" else {"loss_reduction": "sum"})),
                    tmp_path, regularization=False)
    if name == "multi_head":  # MultiHead takes the reduction of its heads
        est = estimator(make_head(name, loss_reduction="sum"), tmp_path, regularization=False)
    np.testing.assert_allclose(est.evaluate(input_fn(fact), steps=1)["loss"], fact["loss_sum"], rtol=1e-5)


@pytest.mark.parametrize("name", sorted(RECORDED["cases"]))
def test_export_outputs(name):
    fact = RECORDED["cases"][name]
    with tf.Graph().as_default():
        features = {"w": tf.constant(WEIGHTS)}
        spec = make_head(name).create_estimator_spec(features, bridge.ModeKeys.PREDICT,
                                                     tf.constant(np.asarray(fact["logits"], np.float32)))
        got = {k: sorted(v.outputs) for k, v in spec.export_outputs.items()}
    assert got == fact["export_outputs"]


def test_head_arguments_are_checked_as_in_2_15():
    with pytest.raises(ValueError, match=r"n_classes must be > 2: 2\."):
        bridge.MultiClassHead(2)
    with pytest.raises(ValueError, match="n_classes must be > 1 for multi-label classification"):
        bridge.MultiLabelHead(1)
    with pytest.raises(ValueError, match=r"thresholds not in \(0, 1\)"):
        bridge.BinaryClassHead(thresholds=[1.5])
    with pytest.raises(ValueError, match="Invalid loss_reduction: none"):
        bridge.RegressionHead(loss_reduction="none")
    with pytest.raises(ValueError, match="loss_fn must contain argument: logits"):
        bridge.BinaryClassHead(loss_fn=lambda labels: labels)
    with pytest.raises(ValueError, match="All given heads must have name specified"):
        bridge.MultiHead([bridge.BinaryClassHead()])


def test_train_op_fn_and_optimizer_are_exclusive(tmp_path):
    head = bridge.BinaryClassHead()

    def model_fn(features, labels, mode):
        shift = tf.compat.v1.get_variable("shift", [], initializer=tf.compat.v1.zeros_initializer())
        return head.create_estimator_spec(features, mode, features["logits"] + shift, labels,
                                          optimizer=keras.optimizers.SGD(0.1), trainable_variables=[shift],
                                          train_op_fn=lambda loss: tf.no_op())

    fact = RECORDED["cases"]["binary"]
    with pytest.raises(ValueError, match="train_op_fn and optimizer cannot both be set"):
        bridge.Estimator(model_fn, str(tmp_path)).train(input_fn(fact), steps=1)


def test_opt_in_exact_auc_matches_scikit_learn(tmp_path):
    from sklearn.metrics import average_precision_score, roc_auc_score

    fact = RECORDED["cases"]["binary"]
    head = bridge.BinaryClassHead(weight_column="w", exact_auc=True)
    result = estimator(head, tmp_path).evaluate(input_fn(fact), steps=1)
    labels = np.asarray(fact["labels"]).ravel()
    scores = 1 / (1 + np.exp(-np.asarray(fact["logits"], np.float64).ravel()))
    weights = WEIGHTS.ravel()
    np.testing.assert_allclose(result["auc"], roc_auc_score(labels, scores, sample_weight=weights), rtol=1e-6)
    np.testing.assert_allclose(result["auc_precision_recall"],
                               average_precision_score(labels, scores, sample_weight=weights), rtol=1e-6)


class _MeanAbsoluteHead(bridge.Head):
    """A user's head written against 2.15's interface, with Keras metric objects."""

    name = None
    logits_dimension = 1
    loss_reduction = "sum_over_batch_size"

    def loss(self, labels, logits, features=None, mode=None, regularization_losses=None):
        return tf.reduce_mean(tf.abs(tf.cast(labels, tf.float32) - logits))

    def predictions(self, logits, keys=None):
        return {"predictions": logits}

    def metrics(self, regularization_losses=None):
        return {"mae": keras.metrics.MeanAbsoluteError()}

    def update_metrics(self, eval_metrics, features, logits, labels, regularization_losses=None):
        eval_metrics["mae"].update_state(tf.cast(labels, tf.float32), logits)
        return eval_metrics


def test_a_user_subclass_of_head_drives_an_estimator(tmp_path):
    head = _MeanAbsoluteHead()
    fact = RECORDED["cases"]["poisson"]
    est = estimator(head, tmp_path, regularization=False)
    result = est.evaluate(input_fn(fact), steps=1)
    want = np.mean(np.abs(np.asarray(fact["labels"]) - np.asarray(fact["logits"])))
    np.testing.assert_allclose([result["mae"], result["loss"]], [want, want], rtol=1e-5)
    est.train(input_fn(fact), steps=1)
    assert est.get_variable_value("global_step") == 1
    path = est.export_saved_model(str(tmp_path / "export"), bridge.export.build_raw_serving_input_receiver_fn(
        {"logits": tf.TensorSpec([None, 1], tf.float32), "w": tf.TensorSpec([None, 1], tf.float32)}))
    assert set(tf.saved_model.load(path.decode()).signatures) == {"serving_default", "predict"}
