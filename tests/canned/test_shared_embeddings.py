"""Shared embedding columns in the canned DNNs, trained from scratch (2.15 model_dirs with them:
test_legacy_model_dirs.py, cases *_shared and v1_dnn_classifier*)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

import bridge
import bridge.compat.v1.estimator as V1
import legacy_cases as L


def _values(checkpoint_path, key):
    return tf.train.load_checkpoint(checkpoint_path).get_tensor(key)


def test_tf2_dnn_keeps_its_shared_embedding_untrained_as_2_15(tmp_path, caplog):
    c = L.columns()
    model_dir = str(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        est = bridge.DNNClassifier([3], [c["x"], c["age_b"], c["color_shared"], c["city_shared"]],
                                   model_dir=model_dir, config=bridge.RunConfig(save_checkpoints_steps=100))
    est.train(L.input_fn("dnn_classifier"), steps=3)
    assert "do not train the shared embedding city_color_shared_embedding" in caplog.text
    assert "city_color_shared_embedding" in est.get_variable_names()  # top level, as 2.15 named it
    first, last = os.path.join(model_dir, "model.ckpt-0"), est.latest_checkpoint()
    assert last.endswith("model.ckpt-3")
    np.testing.assert_array_equal(_values(first, "city_color_shared_embedding"),
                                  _values(last, "city_color_shared_embedding"))
    assert not np.array_equal(_values(first, "dnn/logits/kernel"), _values(last, "dnn/logits/kernel"))


@pytest.mark.parametrize("v1_columns", [True, False])
def test_tf1_dnn_trains_its_shared_embedding(v1_columns, tmp_path):
    c = L.columns()
    suffix = "_v1" if v1_columns else ""
    model_dir = str(tmp_path)
    est = V1.DNNClassifier([3], [c["x"], c["color_shared" + suffix], c["city_shared" + suffix]], model_dir=model_dir)
    est.train(L.input_fn("dnn_classifier"), steps=3)
    key = ("dnn/input_from_feature_columns/input_layer/city_color_shared_embedding/embedding_weights" if v1_columns
           else "dnn/input_from_feature_columns/city_color_shared_embedding")
    assert key + "/t_0/Adagrad" in est.get_variable_names()
    first, last = os.path.join(model_dir, "model.ckpt-0"), est.latest_checkpoint()
    assert not np.array_equal(_values(first, key), _values(last, key))


@pytest.mark.parametrize("v1_columns", [True, False])
def test_shared_columns_parse_and_serve(v1_columns, tmp_path):
    """classifier_parse_example_spec takes shared columns of either API; the export serves them."""
    c = L.columns()
    suffix = "_v1" if v1_columns else ""
    columns = [c["x"], c["color_shared" + suffix], c["city_shared" + suffix]]
    spec = bridge.classifier_parse_example_spec(columns, "label")
    assert spec["color"] == tf.io.VarLenFeature(tf.string) and spec["city"] == tf.io.VarLenFeature(tf.string)
    est = V1.DNNClassifier([3], columns, model_dir=str(tmp_path / "m"))
    est.train(L.input_fn("dnn_classifier"), steps=2)
    del spec["label"]
    path = est.export_saved_model(str(tmp_path / "export"), bridge.export.build_parsing_serving_input_receiver_fn(spec))
    served = tf.saved_model.load(path.decode()).signatures["predict"](
        examples=tf.constant(L.record.example_bytes("dnn_classifier", slice(0, 4))))
    predicted = [p["logits"] for p in est.predict(L.input_fn("dnn_classifier", slice(0, 4)))]
    np.testing.assert_allclose(served["logits"].numpy(), np.stack(predicted), rtol=1e-5, atol=1e-6)
