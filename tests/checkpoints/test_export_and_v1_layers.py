"""A 2.15 model_dir exports a SavedModel that serves 2.15's predictions; tf.compat.v1.layers model_fns resume it."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.checkpoints import legacy
from tests.checkpoints.test_keras_resume import SAME_UPDATE, WEIGHTS


@pytest.mark.parametrize("name", ["adam", "rmsprop_centered", "sgd"])
def test_export_from_a_2_15_model_dir_serves_2_15_predictions(name, tmp_path):
    est = legacy.estimator(legacy.copy_model_dir(name, tmp_path), SAME_UPDATE[name][0])
    receiver = bridge.export.build_raw_serving_input_receiver_fn({"x": tf.TensorSpec([None, 4], tf.float32)})
    path = os.fsdecode(est.export_saved_model(str(tmp_path / "export"), receiver))
    served = tf.saved_model.load(path).signatures["serving_default"](x=tf.constant(legacy.DATA["predict_x"]))
    facts = legacy.facts(name)["predictions"]
    np.testing.assert_allclose(served["probabilities"].numpy(), facts["probabilities"], rtol=1e-5)
    assert served["class_ids"].numpy().tolist() == facts["class_ids"]


def v1_layers_model_fn(features, labels, mode, params):
    """The fixtures' own model_fn, as 2.15 ran it: two tf.compat.v1.layers.dense."""
    hidden = tf.compat.v1.layers.dense(features["x"], 8, activation=tf.nn.relu)
    logits = tf.compat.v1.layers.dense(hidden, 3)
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions={"probabilities": tf.nn.softmax(logits)})
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=legacy.train_op(loss, params["optimizer"]()))


@pytest.mark.parametrize("family", ["v1", "keras"])
@pytest.mark.parametrize("name", ["adam", "momentum"])
def test_v1_layers_model_fn_resumes_with_either_optimizer_family(name, family, tmp_path):
    make = (lambda: legacy.v1_optimizer(name)) if family == "v1" else SAME_UPDATE[name][0]
    model_dir = legacy.copy_model_dir(name, tmp_path)
    est = bridge.Estimator(v1_layers_model_fn, model_dir=model_dir, params={"optimizer": make})
    est.train(legacy.one_step_batch(), steps=1)
    expected = legacy.facts(name)["after_one_step"]
    got = legacy.variables(model_dir)
    keys = list(expected) if family == "v1" else WEIGHTS + ["global_step"]
    for key in keys:
        np.testing.assert_allclose(got[key], np.asarray(expected[key]), rtol=1e-5, atol=1e-7, err_msg=key)


def test_keras_optimizer_with_keras_variables_passed_explicitly(tmp_path):
    """var_list=model.trainable_variables (Keras variables) maps the same state."""

    def model_fn(features, labels, mode):
        model = keras.Sequential([keras.layers.Dense(8, activation="relu", name="dense"), keras.layers.Dense(3, name="dense_1")])
        logits = model(features["x"])
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        return bridge.EstimatorSpec(
            mode, loss=loss, train_op=bridge.minimize(loss, SAME_UPDATE["adam"][0](), var_list=model.trainable_variables)
        )

    source = os.path.join(legacy.FIXTURES, "adam", "model_dir")
    renames = {f"sequential/{k}": k for k in WEIGHTS}
    settings = bridge.WarmStartSettings(source, vars_to_warm_start=[".*"], var_name_to_prev_var_name=renames)
    est = bridge.Estimator(model_fn, model_dir=str(tmp_path / "new"), warm_start_from=settings)
    est.train(legacy.one_step_batch(), steps=1)
    got = legacy.variables(est.model_dir)
    expected = legacy.facts("adam")["after_one_step"]
    for key in WEIGHTS:
        np.testing.assert_allclose(got[f"sequential/{key}"], expected[key], rtol=1e-5, atol=1e-7, err_msg=key)
