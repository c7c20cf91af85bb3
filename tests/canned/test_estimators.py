"""Every canned estimator trains from scratch, evaluates, predicts and exports, with every kind of
feature column, keeping 2.15's keys, dtypes, variable names and default optimizer settings."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

import bridge
import legacy_cases as L

fc = tf.feature_column
N = 12
RNG = np.random.RandomState(3)
FEATURES = {
    "x": RNG.randn(N, 2).astype(np.float32),
    "age": RNG.uniform(10, 60, (N, 1)).astype(np.float32),
    "color": RNG.choice(["red", "green", "blue"], (N, 1)),
    "city": RNG.choice(["paris", "tokyo", "rome"], (N, 1)),
    "tags": RNG.choice(["t1", "t2", "t3", "t4"], (N, 2)),
    "slot": RNG.randint(0, 4, (N, 1)),
    "word": RNG.choice(["a", "b", "c"], (N, 2)),
    "word_w": RNG.uniform(0, 1, (N, 2)).astype(np.float32),
    "w": RNG.uniform(0.5, 2, (N, 1)).astype(np.float32),
}
LABELS = {
    "binary": RNG.randint(0, 2, (N, 1)),
    "strings": RNG.choice(["no", "yes", "maybe"], (N, 1)),
    "target": RNG.randn(N, 1).astype(np.float32),
}


@pytest.fixture(scope="module")
def columns(tmp_path_factory):
    """(dense columns for a DNN, columns of every kind for a linear model)."""
    vocab_file = tmp_path_factory.mktemp("vocab") / "cities.txt"
    vocab_file.write_text("paris\ntokyo\nlima\n")
    age_b = fc.bucketized_column(fc.numeric_column("age"), [20.0, 40.0])
    color = fc.categorical_column_with_vocabulary_list("color", ["red", "green", "blue"])
    city = fc.categorical_column_with_vocabulary_file("city", str(vocab_file), num_oov_buckets=1)
    tags = fc.categorical_column_with_hash_bucket("tags", 10)
    slot = fc.categorical_column_with_identity("slot", 4)
    word = fc.weighted_categorical_column(fc.categorical_column_with_vocabulary_list("word", ["a", "b", "c"]), "word_w")
    x = fc.numeric_column("x", shape=(2,), normalizer_fn=lambda t: t / 2.0)
    dense = [
        x, age_b, fc.indicator_column(slot), fc.indicator_column(word),
        fc.embedding_column(tags, 3, combiner="sqrtn",
                            initializer=tf.compat.v1.truncated_normal_initializer(stddev=0.1)),
        fc.embedding_column(city, 2, combiner="mean"),
        fc.embedding_column(fc.crossed_column([age_b, color], 7), 2),
    ]
    every_kind = [x, age_b, color, city, tags, slot, word, fc.crossed_column([age_b, color], 7)]
    return dense, every_kind


def input_fn(label="binary", epochs=1):
    def fn():
        return tf.data.Dataset.from_tensor_slices((FEATURES, LABELS[label])).repeat(epochs).batch(4)

    return fn


BINARY_EVAL_KEYS = {"accuracy", "accuracy_baseline", "auc", "auc_precision_recall", "average_loss", "global_step",
                    "label/mean", "loss", "precision", "prediction/mean", "recall"}
MULTI_EVAL_KEYS = {"accuracy", "average_loss", "global_step", "loss"}
REGRESSION_EVAL_KEYS = {"average_loss", "global_step", "label/mean", "loss", "prediction/mean"}
BINARY_PREDICT = {"logits": np.float32, "logistic": np.float32, "probabilities": np.float32,
                  "class_ids": np.int64, "classes": object, "all_class_ids": np.int32, "all_classes": object}
MULTI_PREDICT = {k: v for k, v in BINARY_PREDICT.items() if k != "logistic"}
REGRESSION_PREDICT = {"predictions": np.float32}


def make(kind, dense, every_kind, model_dir):
    head_binary = bridge.BinaryClassHead(weight_column="w")
    return {
        "DNNClassifier": lambda: bridge.DNNClassifier([5, 3], dense, model_dir=model_dir, weight_column="w",
                                                      dropout=0.1, batch_norm=True),
        "DNNRegressor": lambda: bridge.DNNRegressor([4], dense, model_dir=model_dir, optimizer="RMSProp"),
        "DNNEstimator": lambda: bridge.DNNEstimator(head_binary, [4], dense, model_dir=model_dir, optimizer="SGD"),
        "LinearClassifier": lambda: bridge.LinearClassifier(every_kind, model_dir=model_dir, n_classes=3,
                                                            label_vocabulary=["no", "yes", "maybe"]),
        "LinearRegressor": lambda: bridge.LinearRegressor(every_kind, model_dir=model_dir, weight_column="w",
                                                          sparse_combiner="mean"),
        "LinearEstimator": lambda: bridge.LinearEstimator(head_binary, every_kind, model_dir=model_dir),
        "DNNLinearCombinedClassifier": lambda: bridge.DNNLinearCombinedClassifier(
            model_dir=model_dir, linear_feature_columns=every_kind, dnn_feature_columns=dense,
            dnn_hidden_units=[4], dnn_optimizer="Adam"),
        "DNNLinearCombinedRegressor": lambda: bridge.DNNLinearCombinedRegressor(
            model_dir=model_dir, linear_feature_columns=every_kind, dnn_feature_columns=dense, dnn_hidden_units=[4]),
        "DNNLinearCombinedEstimator": lambda: bridge.DNNLinearCombinedEstimator(
            bridge.RegressionHead(), model_dir=model_dir, linear_feature_columns=every_kind),
        "BaselineClassifier": lambda: bridge.BaselineClassifier(model_dir=model_dir, n_classes=3,
                                                                label_vocabulary=["no", "yes", "maybe"]),
        "BaselineRegressor": lambda: bridge.BaselineRegressor(model_dir=model_dir, weight_column="w"),
        "BaselineEstimator": lambda: bridge.BaselineEstimator(bridge.BinaryClassHead(), model_dir=model_dir),
    }[kind]()


# class -> (labels, eval keys, prediction keys and dtypes, signature keys)
EXPECTED = {
    "DNNClassifier": ("binary", BINARY_EVAL_KEYS, BINARY_PREDICT),
    "DNNRegressor": ("target", REGRESSION_EVAL_KEYS, REGRESSION_PREDICT),
    "DNNEstimator": ("binary", BINARY_EVAL_KEYS, BINARY_PREDICT),
    "LinearClassifier": ("strings", MULTI_EVAL_KEYS, MULTI_PREDICT),
    "LinearRegressor": ("target", REGRESSION_EVAL_KEYS, REGRESSION_PREDICT),
    "LinearEstimator": ("binary", BINARY_EVAL_KEYS, BINARY_PREDICT),
    "DNNLinearCombinedClassifier": ("binary", BINARY_EVAL_KEYS, BINARY_PREDICT),
    "DNNLinearCombinedRegressor": ("target", REGRESSION_EVAL_KEYS, REGRESSION_PREDICT),
    "DNNLinearCombinedEstimator": ("target", REGRESSION_EVAL_KEYS, REGRESSION_PREDICT),
    "BaselineClassifier": ("strings", MULTI_EVAL_KEYS, MULTI_PREDICT),
    "BaselineRegressor": ("target", REGRESSION_EVAL_KEYS, REGRESSION_PREDICT),
    "BaselineEstimator": ("binary", BINARY_EVAL_KEYS, BINARY_PREDICT),
}
SIGNATURES = {
    "binary": {"serving_default", "classification", "regression", "predict"},
    "strings": {"serving_default", "classification", "predict"},
    "target": {"serving_default", "regression", "predict"},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_train_evaluate_predict_export(kind, columns, tmp_path):
    dense, every_kind = columns
    label, eval_keys, predict_dtypes = EXPECTED[kind]
    est = make(kind, dense, every_kind, str(tmp_path / "model"))
    assert isinstance(est, bridge.Estimator)
    est.train(input_fn(label, epochs=None), steps=4)

    result = est.evaluate(input_fn(label))
    assert set(result) == eval_keys
    assert result["global_step"] == 4
    assert all(np.isfinite(v) for v in result.values())

    predictions = list(est.predict(input_fn(label)))
    assert len(predictions) == N
    assert {k: v.dtype for k, v in predictions[0].items()} == {k: np.dtype(v) for k, v in predict_dtypes.items()}
    if "classes" in predict_dtypes and label == "strings":
        assert set(p["classes"][0] for p in predictions) <= {b"no", b"yes", b"maybe"}
        assert predictions[0]["all_classes"].tolist() == [b"no", b"yes", b"maybe"]

    spec = fc.make_parse_example_spec(dense + every_kind) if not kind.startswith("Baseline") else {
        "x": tf.io.FixedLenFeature([2], tf.float32)}
    path = est.export_saved_model(str(tmp_path / "export"), bridge.export.build_parsing_serving_input_receiver_fn(spec))
    loaded = tf.saved_model.load(path.decode())
    assert set(loaded.signatures) == SIGNATURES[label]
    example = tf.train.Example()
    for key, value in FEATURES.items():
        row = value[0].reshape(-1)
        feature = example.features.feature[key]
        if row.dtype.kind == "f":
            feature.float_list.value.extend(row.tolist())
        elif row.dtype.kind in "iu":
            feature.int64_list.value.extend(row.tolist())
        else:
            feature.bytes_list.value.extend([s.encode() for s in row])
    served = loaded.signatures["predict"](examples=tf.constant([example.SerializeToString()]))
    assert set(served) == set(predict_dtypes)
    if "probabilities" in served:
        np.testing.assert_allclose(served["probabilities"].numpy().sum(), 1.0, rtol=1e-5)


DEFAULT_OPTIMIZER_CASES = {
    # estimator -> 2.15 fixture whose checkpoint holds 2.15's default hyper-parameters
    "dnn_classifier": lambda d: bridge.DNNClassifier([2], [fc.numeric_column("x", shape=(2,))], model_dir=d),
    "linear_classifier": lambda d: bridge.LinearClassifier([fc.numeric_column("x", shape=(2,))], model_dir=d),
    "dnn_linear_combined_classifier": lambda d: bridge.DNNLinearCombinedClassifier(
        model_dir=d, dnn_feature_columns=[fc.numeric_column("x", shape=(2,))], dnn_hidden_units=[2],
        linear_feature_columns=[fc.numeric_column("x", shape=(2,)), fc.numeric_column("age"),
                                fc.numeric_column("y")]),
    "baseline_classifier": lambda d: bridge.BaselineClassifier(model_dir=d, n_classes=3),
    "dnn_regressor": lambda d: bridge.DNNRegressor([2], [fc.numeric_column("x", shape=(2,))], model_dir=d,
                                                   optimizer="Adam"),
}


@pytest.mark.parametrize("name", sorted(DEFAULT_OPTIMIZER_CASES))
def test_default_optimizer_settings_are_2_15s(name, tmp_path):
    """Learning rates and other hyper-parameters 2.15 saved (DNN Adagrad 0.001, Linear Ftrl 0.2, ...)."""
    recorded = L.facts(name)["before_step"]
    est = DEFAULT_OPTIMIZER_CASES[name](str(tmp_path))
    labels = np.array([[0], [1], [2], [1]]) if name == "baseline_classifier" else np.array([[0], [1], [0], [1]])
    feats = {"x": np.ones((4, 2), np.float32), "age": np.ones((4, 1), np.float32), "y": np.ones((4, 1), np.float32)}
    est.train(lambda: tf.data.Dataset.from_tensor_slices((feats, labels.astype(np.float32) if "regressor" in name
                                                          else labels)).batch(4), steps=1)
    hypers = {k: v for k, v in recorded.items() if k.startswith("training/") and k.count("/") == 2}
    assert hypers
    for key, fact in hypers.items():
        if key.endswith("/iter"):
            continue
        np.testing.assert_allclose(est.get_variable_value(key), L.value(fact), rtol=1e-7, err_msg=key)


def test_a_bridge_model_dir_has_2_15s_names_for_tf_train_readers(tmp_path):
    """Trained from scratch, the checkpoint holds exactly the keys and shapes 2.15 wrote."""
    recorded = L.facts("dnn_linear_combined_classifier")
    model_dir = str(tmp_path)
    est = L.build("dnn_linear_combined_classifier", model_dir)
    est.train(L.input_fn("dnn_linear_combined_classifier"), steps=2)
    shapes = {k: list(v) for k, v in tf.train.list_variables(model_dir)}
    assert shapes == recorded["variables"]
    assert tf.train.load_checkpoint(model_dir).get_tensor("training/Ftrl/iter") == 2
    assert os.path.exists(os.path.join(model_dir, "checkpoint"))


def test_head_based_estimator_with_multi_head_and_multi_label(columns, tmp_path):
    """DNNEstimator over a MultiHead (a multi-label and a regression head) trains, evaluates, predicts
    and exports with 2.15's keys."""
    dense, _ = columns
    head = bridge.MultiHead([bridge.MultiLabelHead(3, name="tags"), bridge.RegressionHead(name="score")])
    est = bridge.DNNEstimator(head, [4], dense, model_dir=str(tmp_path / "model"))
    labels = {"tags": RNG.randint(0, 2, (N, 3)), "score": RNG.randn(N, 1).astype(np.float32)}

    def fn():
        return tf.data.Dataset.from_tensor_slices((FEATURES, labels)).batch(4)

    est.train(fn, steps=3)
    result = est.evaluate(fn)
    assert set(result) == {"auc/tags", "auc_precision_recall/tags", "average_loss/tags", "loss/tags",
                           "average_loss/score", "label/mean/score", "prediction/mean/score", "loss/score",
                           "loss", "global_step"}
    prediction = next(est.predict(fn))
    assert set(prediction) == {("tags", "logits"), ("tags", "probabilities"), ("tags", "classes"),
                               ("score", "predictions")}
    spec = fc.make_parse_example_spec(dense)
    path = est.export_saved_model(str(tmp_path / "export"), bridge.export.build_parsing_serving_input_receiver_fn(spec))
    assert set(tf.saved_model.load(path.decode()).signatures) == {
        "serving_default", "tags", "tags/classification", "tags/predict", "score", "score/regression",
        "score/predict", "predict"}
