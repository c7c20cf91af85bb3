"""The canned-estimator cases recorded with tf.estimator 2.15 (tests/fixtures/legacy_2_15/canned/record.py),
rebuilt on bridge: same feature columns, data and settings."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import numpy as np
import tensorflow as tf

import bridge
import bridge.compat.v1.estimator as V1

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "legacy_2_15", "canned")
BATCH = 8
with open(os.path.join(FIXTURES, "data.json")) as f:
    DATA = json.load(f)

# The recording script defines the data, columns and inputs; 2.15 is not needed to import it.
_spec = importlib.util.spec_from_file_location("record_canned_2_15", os.path.join(FIXTURES, "record.py"))
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)
assert record.DATA == DATA, "data.json no longer matches record.py's data"
columns, labels = record.columns, record.labels


def features(rows=slice(None), keys=None):
    return {k: v for k, v in record.features(rows).items() if keys is None or k in keys}


def facts(name: str) -> dict:
    with open(os.path.join(FIXTURES, name, "facts.json")) as f:
        return json.load(f)


def errors() -> dict:
    with open(os.path.join(FIXTURES, "errors.json")) as f:
        return json.load(f)


def build(name: str, model_dir: str):
    c = columns()
    cfg = {"config": bridge.RunConfig(tf_random_seed=7, keep_checkpoint_max=1, save_summary_steps=1000)}
    builders = {
        "dnn_classifier": lambda: bridge.DNNClassifier(
            [4, 3], [c["x"], c["age_b"], c["color_emb"], c["city_ind"]], model_dir=model_dir, **cfg),
        "dnn_classifier_3": lambda: bridge.DNNClassifier(
            [3], [c["x"], c["color_emb"]], n_classes=3, label_vocabulary=["a", "b", "c"], model_dir=model_dir, **cfg),
        "linear_classifier": lambda: bridge.LinearClassifier(
            [c["x"], c["age_b"], c["color"], c["city"], c["cross"]], model_dir=model_dir, **cfg),
        "dnn_linear_combined_classifier": lambda: bridge.DNNLinearCombinedClassifier(
            linear_feature_columns=[c["age_b"], c["cross"], c["city"]],
            dnn_feature_columns=[c["x"], c["color_emb"]], dnn_hidden_units=[3], model_dir=model_dir, **cfg),
        "dnn_regressor": lambda: bridge.DNNRegressor(
            [4], [c["x"], c["color_emb"]], batch_norm=True, optimizer="Adam", model_dir=model_dir, **cfg),
        "linear_regressor": lambda: bridge.LinearRegressor(
            [c["x"], c["age_b"], c["color"]], weight_column="w", model_dir=model_dir, **cfg),
        "baseline_classifier": lambda: bridge.BaselineClassifier(n_classes=3, model_dir=model_dir, **cfg),
        "baseline_regressor": lambda: bridge.BaselineRegressor(model_dir=model_dir, **cfg),
        "dnn_classifier_shared": lambda: bridge.DNNClassifier(
            [3], [c["x"], c["color_shared"], c["city_shared"]], model_dir=model_dir, **cfg),
        "dnn_linear_combined_shared": lambda: bridge.DNNLinearCombinedClassifier(
            linear_feature_columns=[c["age_b"]], dnn_feature_columns=[c["x"], c["color_shared"], c["city_shared"]],
            dnn_hidden_units=[3], model_dir=model_dir, **cfg),
        "v1_dnn_classifier": lambda: V1.DNNClassifier(
            [4, 3], [c["x"], c["age_b"], c["city_ind"], c["color_shared_v1"], c["city_shared_v1"]],
            model_dir=model_dir, **cfg),
        "v1_dnn_classifier_v2_shared": lambda: V1.DNNClassifier(
            [3], [c["x"], c["color_shared"], c["city_shared"]], n_classes=3, label_vocabulary=["a", "b", "c"],
            model_dir=model_dir, **cfg),
        "v1_linear_classifier": lambda: V1.LinearClassifier(
            [c["x"], c["age_b"], c["color"], c["city"], c["cross"]], model_dir=model_dir, **cfg),
        "v1_dnn_linear_combined_classifier": lambda: V1.DNNLinearCombinedClassifier(
            linear_feature_columns=[c["age_b"], c["cross"], c["city"]],
            dnn_feature_columns=[c["x"], c["color_emb"]], dnn_hidden_units=[3], model_dir=model_dir, **cfg),
        "v1_dnn_regressor": lambda: V1.DNNRegressor(
            [4], [c["x"], c["color_emb"]], batch_norm=True, optimizer="Adam", model_dir=model_dir, **cfg),
        "v1_linear_regressor": lambda: V1.LinearRegressor(
            [c["x"], c["age_b"], c["color"]], weight_column="w", model_dir=model_dir, **cfg),
        "v1_baseline_classifier": lambda: V1.BaselineClassifier(n_classes=3, model_dir=model_dir, **cfg),
        "v1_baseline_regressor": lambda: V1.BaselineRegressor(model_dir=model_dir, **cfg),
    }
    return builders[name]()


CASES = ["dnn_classifier", "dnn_classifier_3", "linear_classifier", "dnn_linear_combined_classifier",
         "dnn_regressor", "linear_regressor", "baseline_classifier", "baseline_regressor",
         "dnn_classifier_shared", "dnn_linear_combined_shared"]
# tf.compat.v1.estimator's classes (bridge.compat.v1.estimator).
V1_CASES = ["v1_dnn_classifier", "v1_dnn_classifier_v2_shared", "v1_linear_classifier",
            "v1_dnn_linear_combined_classifier", "v1_dnn_regressor", "v1_linear_regressor",
            "v1_baseline_classifier", "v1_baseline_regressor"]
ALL_CASES = CASES + V1_CASES


def input_fn(name: str, rows=slice(None)):
    keys = record.feature_subset(name)
    kind = facts(name)["label"]

    def fn():
        return tf.data.Dataset.from_tensor_slices((features(rows, keys), labels(kind, rows))).batch(BATCH)

    return fn


def copy_model_dir(name: str, dest: str) -> str:
    path = os.path.join(dest, name)
    shutil.copytree(os.path.join(FIXTURES, name, "model_dir"), path)
    return path


def value(recorded: dict) -> np.ndarray:
    if recorded["dtype"] == "string":
        return np.asarray(recorded["value"], dtype=object)
    return np.asarray(recorded["value"], dtype=recorded["dtype"])


def parse_spec(name: str) -> dict:
    """The parsing spec of the columns the case uses (the one its 2.15 export was recorded with)."""
    used = record._used_columns(name)
    cols = [c for c in columns().values() if c.name in used]
    if not cols:
        return {"x": tf.io.FixedLenFeature([2], tf.float32)}
    return tf.feature_column.make_parse_example_spec(cols)
