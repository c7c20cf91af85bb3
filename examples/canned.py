"""A canned wide-and-deep model over feature columns, as written for tf.estimator 2.15.

``bridge.DNNLinearCombinedClassifier`` on scikit-learn's bundled breast-cancer data (569
tumours, no download), presented as a tabular frame: numeric measurements, a bucketized one, a
string column (a size grade) with a vocabulary, an embedded string column and a crossed column.
Only the import differs from a tf.estimator 2.15 script (``bridge.X`` for ``tf.estimator.X``).

It trains, evaluates on a held-out split (accuracy, AUC...), predicts, exports a SavedModel
with 2.15's classification/regression/predict signatures over tf.Examples, and checks that the
exported model classifies like ``predict()``. Exits with status 1 if the model is no better than
the majority class or the export disagrees.

    .venv/bin/python examples/canned.py [--model-dir DIR] [--steps N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import bridge  # noqa: E402

NUMERIC = ["mean radius", "mean texture", "mean smoothness", "mean concavity", "worst area", "worst concave points"]


def load_frame() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The data as named columns, with two string columns derived from the measurements."""
    data = load_breast_cancer()
    columns = {name: data.data[:, list(data.feature_names).index(name)].astype(np.float32) for name in data.feature_names}
    frame = {name.replace(" ", "_"): columns[name] for name in NUMERIC}
    frame["size_grade"] = np.where(columns["mean area"] < 500, "small",
                                   np.where(columns["mean area"] < 900, "medium", "large"))
    symmetry = np.digitize(columns["mean symmetry"], np.quantile(columns["mean symmetry"], [0.2, 0.4, 0.6, 0.8]))
    frame["symmetry_code"] = np.array([f"S{int(s)}" for s in symmetry])
    return frame, data.target.astype(np.int64)  # 1 = benign


def feature_columns(train: dict[str, np.ndarray]):
    fc = tf.feature_column
    numeric = []
    for name in NUMERIC:
        key = name.replace(" ", "_")
        mean, std = float(train[key].mean()), float(train[key].std())
        numeric.append(fc.numeric_column(key, normalizer_fn=lambda x, m=mean, s=std: (x - m) / s))
    radius_buckets = fc.bucketized_column(fc.numeric_column("mean_radius"), [10.0, 12.0, 14.0, 16.0, 20.0])
    grade = fc.categorical_column_with_vocabulary_list("size_grade", ["small", "medium", "large"])
    symmetry = fc.categorical_column_with_hash_bucket("symmetry_code", 20)
    cross = fc.crossed_column([radius_buckets, grade], hash_bucket_size=30)
    wide = [radius_buckets, grade, cross]
    deep = numeric + [fc.embedding_column(symmetry, 3), fc.indicator_column(grade)]
    return wide, deep


def input_fn(features, labels, batch_size=32, epochs=1, shuffle=False):
    def fn():
        ds = tf.data.Dataset.from_tensor_slices((features, labels))
        if shuffle:
            ds = ds.shuffle(len(labels), seed=0)
        return ds.repeat(epochs).batch(batch_size)

    return fn


def to_examples(features: dict[str, np.ndarray], rows: int) -> list[bytes]:
    out = []
    for i in range(rows):
        example = tf.train.Example()
        for key, values in features.items():
            if values.dtype.kind == "f":
                example.features.feature[key].float_list.value.append(float(values[i]))
            else:
                example.features.feature[key].bytes_list.value.append(str(values[i]).encode())
        out.append(example.SerializeToString())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    model_dir = args.model_dir or tempfile.mkdtemp(prefix="canned_")

    frame, labels = load_frame()
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(index, test_size=0.25, random_state=0, stratify=labels)
    train = {k: v[train_idx] for k, v in frame.items()}
    test = {k: v[test_idx] for k, v in frame.items()}
    wide, deep = feature_columns(train)

    estimator = bridge.DNNLinearCombinedClassifier(
        model_dir=model_dir,
        linear_feature_columns=wide,
        dnn_feature_columns=deep,
        dnn_hidden_units=[32, 16],
        dnn_optimizer="Adam",
        config=bridge.RunConfig(tf_random_seed=0, save_summary_steps=100),
    )
    estimator.train(input_fn(train, labels[train_idx], epochs=None, shuffle=True), steps=args.steps)
    result = estimator.evaluate(input_fn(test, labels[test_idx]))
    for key in sorted(result):
        print(f"{key:>22}: {result[key]}")

    predictions = list(estimator.predict(input_fn(test, labels[test_idx])))
    predicted = np.array([p["class_ids"][0] for p in predictions])
    print("first predictions:", [p["classes"][0].decode() for p in predictions[:8]])

    spec = tf.feature_column.make_parse_example_spec(wide + deep)
    export_dir = estimator.export_saved_model(
        os.path.join(model_dir, "export"), bridge.export.build_parsing_serving_input_receiver_fn(spec))
    served = tf.saved_model.load(export_dir.decode()).signatures["predict"]
    served_ids = served(examples=tf.constant(to_examples(test, 20)))["class_ids"].numpy().reshape(-1)
    print("exported to", export_dir.decode())

    majority = max(labels[test_idx].mean(), 1 - labels[test_idx].mean())
    ok = True
    if not result["accuracy"] > majority + 0.1 or not result["auc"] > 0.9:
        print(f"FAIL: accuracy {result['accuracy']:.3f} (majority {majority:.3f}), auc {result['auc']:.3f}")
        ok = False
    if not np.array_equal(served_ids, predicted[:20]):
        print("FAIL: the exported model classifies differently from predict():", served_ids, predicted[:20])
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
