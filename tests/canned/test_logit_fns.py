"""tf.compat.v1.estimator.experimental's logit_fn builders in a custom model_fn with a public head:
under the canned estimators' scopes they read 2.15's canned model_dirs to 2.15's numbers."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

import bridge
import legacy_cases as L


def _check_evaluate_and_one_step(name, model_fn, tmp_path):
    recorded = L.facts(name)
    model_dir = L.copy_model_dir(name, str(tmp_path))
    est = bridge.Estimator(model_fn, model_dir, config=bridge.RunConfig(save_summary_steps=1000))
    result = est.evaluate(L.input_fn(name))
    for key, fact in recorded["evaluate"].items():
        np.testing.assert_allclose(result[key], L.value(fact), rtol=1e-5, err_msg=key)
    est.train(L.input_fn(name, slice(0, L.BATCH)), steps=1)
    reader = tf.train.load_checkpoint(model_dir)
    for key, fact in recorded["after_step"].items():
        np.testing.assert_allclose(reader.get_tensor(key), L.value(fact), rtol=1e-5, atol=1e-6, err_msg=key)


def test_dnn_logit_fn_builder_reads_a_2_15_dnn_classifier(tmp_path):
    c = L.columns()
    logit_fn = bridge.experimental.dnn_logit_fn_builder(units=3, hidden_units=[3],
                                                        feature_columns=[c["x"], c["color_emb"]])
    head = bridge.MultiClassHead(3, label_vocabulary=["a", "b", "c"])

    def model_fn(features, labels, mode, config):
        with tf.compat.v1.variable_scope("dnn"):
            logits = bridge.experimental.call_logit_fn(logit_fn, features, mode, None, config)
        return head.create_estimator_spec(features, mode, logits, labels, optimizer=keras.optimizers.Adagrad(),
                                          trainable_variables=tf.compat.v1.trainable_variables())

    _check_evaluate_and_one_step("dnn_classifier_3", model_fn, tmp_path)


def test_linear_logit_fn_builder_reads_a_2_15_linear_classifier(tmp_path):
    c = L.columns()
    logit_fn = bridge.experimental.linear_logit_fn_builder(
        units=1, feature_columns=[c["x"], c["age_b"], c["color"], c["city"], c["cross"]])
    head = bridge.BinaryClassHead()

    def model_fn(features, labels, mode):
        with tf.compat.v1.variable_scope("linear"):
            logits = logit_fn(features=features)
        return head.create_estimator_spec(features, mode, logits, labels, optimizer=keras.optimizers.Ftrl(0.2),
                                          trainable_variables=tf.compat.v1.trainable_variables())

    _check_evaluate_and_one_step("linear_classifier", model_fn, tmp_path)


def test_warm_start_from_a_2_15_model_dir(tmp_path):
    """A new model_dir warm-started from 2.15's weights predicts what 2.15 predicted."""
    name = "dnn_classifier"
    source = L.copy_model_dir(name, str(tmp_path))
    c = L.columns()
    est = bridge.DNNClassifier([4, 3], [c["x"], c["age_b"], c["color_emb"], c["city_ind"]],
                               model_dir=str(tmp_path / "new"), warm_start_from=source)
    predictions = list(est.predict(L.input_fn(name, slice(0, 4))))
    np.testing.assert_allclose(np.stack([p["logits"] for p in predictions]),
                               L.value(L.facts(name)["predict"]["logits"]), rtol=1e-5)
