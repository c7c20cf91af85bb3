"""eval_metric_ops computed by bridge.metrics, next to scikit-learn's values.

A classic binary-classification model_fn (logistic regression on one Dense layer) on
scikit-learn's bundled breast-cancer data (569 tumours, 30 features, no download). Its
EVAL spec returns tf.compat.v1.metrics-style ops from ``bridge.metrics``:

    eval_metric_ops = {
        "accuracy": bridge.metrics.accuracy(labels, predicted_classes),
        "precision": bridge.metrics.precision(labels, predicted_classes),
        "recall": bridge.metrics.recall(labels, predicted_classes),
        "auc": bridge.metrics.auc(labels, probabilities),            # 200 thresholds, as v1
        "exact_auc": bridge.metrics.exact_auc(labels, probabilities),
    }

The Estimator feeds them on a host thread while the next batch runs. The script then predicts
the same held-out split and prints scikit-learn's values beside evaluate's; it exits with
status 1 if any pair disagrees (thresholded AUC is compared with scikit-learn on the scores
bucketed to v1's thresholds, the curve that metric samples).

    .venv/bin/python examples/breast_cancer_metrics.py [--model-dir DIR] [--steps N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn import metrics as skm  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import bridge  # noqa: E402

SEED = 0
BATCH = 64  # 143 held-out examples: the last eval batch has 15


def load_data():
    """Standardised features (train statistics), 75/25 stratified split, int64 labels (1 = benign)."""
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    scale = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return scale(x_train), scale(x_test), y_train.astype(np.int64), y_test.astype(np.int64)


def make_input_fn(x, y, training=False):
    def input_fn():
        dataset = tf.data.Dataset.from_tensor_slices(({"x": x}, y))
        if training:
            dataset = dataset.shuffle(len(x), seed=SEED).repeat()
        return dataset.batch(BATCH)

    return input_fn


def model_fn(features, labels, mode, params):
    logits = keras.layers.Dense(1, name="logistic")(features["x"])[:, 0]
    probabilities = tf.sigmoid(logits)
    predicted_classes = tf.cast(probabilities > 0.5, tf.int64)
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions={"probabilities": probabilities, "class_ids": predicted_classes})
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(labels, tf.float32), logits))
    train_op = bridge.minimize(loss, keras.optimizers.Adam(params["learning_rate"]))
    eval_metric_ops = {
        "accuracy": bridge.metrics.accuracy(labels, predicted_classes),
        "precision": bridge.metrics.precision(labels, predicted_classes),
        "recall": bridge.metrics.recall(labels, predicted_classes),
        "auc": bridge.metrics.auc(labels, probabilities),
        "exact_auc": bridge.metrics.exact_auc(labels, probabilities),
    }
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, eval_metric_ops=eval_metric_ops)


def v1_buckets(scores, num_thresholds=200):
    """How many of tf.compat.v1.metrics.auc's thresholds lie strictly below each (float32) score."""
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    thresholds = np.float32([-1e-7, *inner, 1 + 1e-7])
    return (np.asarray(scores, np.float32)[:, None] > thresholds[None, :]).sum(axis=1)


def sklearn_values(y, probabilities):
    predicted = (probabilities > 0.5).astype(np.int64)
    return {
        "accuracy": skm.accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted, zero_division=0),
        "recall": skm.recall_score(y, predicted, zero_division=0),
        "auc": skm.roc_auc_score(y, v1_buckets(probabilities)),
        "exact_auc": skm.roc_auc_score(y, probabilities),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=None, help="where checkpoints and eval summaries go (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (batches of 64)")
    args = parser.parse_args()
    x_train, x_test, y_train, y_test = load_data()
    model_dir = args.model_dir or tempfile.mkdtemp(prefix="breast_cancer_")
    config = bridge.RunConfig(tf_random_seed=SEED, log_step_count_steps=None, progress_bar=False)
    estimator = bridge.Estimator(model_fn, model_dir=model_dir, config=config, params={"learning_rate": 0.01})

    estimator.train(make_input_fn(x_train, y_train, training=True), steps=args.steps)
    results = estimator.evaluate(make_input_fn(x_test, y_test))
    probabilities = np.array([p["probabilities"] for p in estimator.predict(make_input_fn(x_test, y_test))])
    reference = sklearn_values(y_test, probabilities)

    print(f"breast cancer, {len(y_test)} held-out examples, global step {results['global_step']}, "
          f"eval loss {results['loss']:.4f}")
    print(f"{'metric':<10} {'bridge.metrics':>15} {'scikit-learn':>15}  agree")
    disagreements = []
    for key, expected in reference.items():
        # evaluate returns float32 like tf.estimator 2.15 (a relative error of ~6e-8); thresholded AUC
        # differs from the bucketed-score ROC AUC only by v1's 1e-6 division epsilon.
        tolerance = 1e-5 if key == "auc" else 1e-6
        agree = abs(float(results[key]) - expected) <= tolerance
        if not agree:
            disagreements.append(key)
        print(f"{key:<10} {float(results[key]):>15.6f} {expected:>15.6f}  {'yes' if agree else 'NO'}")
    print(f"eval summaries: {estimator.eval_dir()}")

    # A SavedModel for serving; it must serve the probabilities the estimator predicted.
    serving_input_fn = bridge.export.build_raw_serving_input_receiver_fn(
        {"x": tf.TensorSpec([None, x_test.shape[1]], tf.float32)}
    )
    export_dir = estimator.export_saved_model(os.path.join(model_dir, "export"), serving_input_fn).decode()
    served = tf.saved_model.load(export_dir).signatures["serving_default"](x=tf.constant(x_test, tf.float32))
    if not np.allclose(served["probabilities"].numpy(), probabilities, rtol=1e-5, atol=1e-6):
        disagreements.append("exported SavedModel")
    print(f"exported SavedModel: {export_dir}")
    if disagreements:
        print(f"DISAGREEMENT: {', '.join(disagreements)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
