"""Early stopping with train_and_evaluate, as tf.estimator 2.15 did it.

Trains an MLP on scikit-learn's bundled breast-cancer data (569 examples, no download) with
``train_and_evaluate``: a checkpoint and an evaluation every 50 steps, and
``bridge.experimental.stop_if_no_decrease_hook`` ending training once the evaluation loss has
not improved for 300 steps. A ``BestExporter`` keeps the SavedModel of the best evaluation.
Exits with status 1 if training ran to max_steps instead of stopping early, or the best
model's accuracy is below 0.9.

    .venv/bin/python examples/early_stopping.py [--model-dir DIR] [--max-steps N]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import bridge

logger = logging.getLogger("early_stopping")
SEED = 7


def load_data():
    """Standardised features (train statistics), 70/30 stratified split."""
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data.astype(np.float32), data.target.astype(np.int64), test_size=0.3, random_state=SEED, stratify=data.target
    )
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def model_fn(features, labels, mode, params):
    net = features["x"]
    for units in (128, 128):
        net = keras.layers.Dense(units, activation="relu")(net)
    logits = keras.layers.Dense(2)(net)
    predictions = {"class_ids": tf.argmax(logits, 1), "probabilities": tf.nn.softmax(logits)}
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(
            mode, predictions=predictions, export_outputs={"serving_default": bridge.export.PredictOutput(predictions)}
        )
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    accuracy = tf.compat.v1.metrics.accuracy(labels, predictions["class_ids"])
    train_op = bridge.minimize(loss, keras.optimizers.Adam(params["learning_rate"]))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, eval_metric_ops={"accuracy": accuracy})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--max-steps", type=int, default=5000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("bridge").setLevel(logging.WARNING)
    model_dir = args.model_dir or tempfile.mkdtemp(prefix="early_stopping_")
    x_train, x_test, y_train, y_test = load_data()

    def train_input_fn():
        ds = tf.data.Dataset.from_tensor_slices(({"x": x_train}, y_train))
        return ds.shuffle(len(x_train), seed=SEED).repeat().batch(32)

    def eval_input_fn():
        return tf.data.Dataset.from_tensor_slices(({"x": x_test}, y_test)).batch(len(x_test))

    config = bridge.RunConfig(model_dir=model_dir, save_checkpoints_steps=50, tf_random_seed=SEED, log_step_count_steps=None)
    estimator = bridge.Estimator(model_fn, config=config, params={"learning_rate": 3e-3})
    # Checked every 50 steps (right after each evaluation); between checks the hook costs nothing.
    early_stop = bridge.experimental.stop_if_no_decrease_hook(
        estimator, "loss", max_steps_without_decrease=300, run_every_secs=None, run_every_steps=50
    )
    serving = bridge.export.build_raw_serving_input_receiver_fn({"x": tf.TensorSpec([None, x_train.shape[1]], tf.float32)})
    result, _ = bridge.train_and_evaluate(
        estimator,
        bridge.TrainSpec(train_input_fn, max_steps=args.max_steps, hooks=[early_stop]),
        bridge.EvalSpec(eval_input_fn, steps=None, throttle_secs=0, exporters=[bridge.BestExporter("best", serving)]),
    )
    history = bridge.experimental.read_eval_metrics(estimator.eval_dir())  # {step: {metric: value}}
    best_step = min(history, key=lambda step: history[step]["loss"])
    logger.info("stopped at step %d of %d; best eval loss %.4f (accuracy %.3f) at step %d",
                result["global_step"], args.max_steps, history[best_step]["loss"], history[best_step]["accuracy"], best_step)
    if result["global_step"] >= args.max_steps:
        logger.error("training was not stopped early")
        return 1
    if history[best_step]["accuracy"] < 0.9:
        logger.error("best accuracy %.3f is below 0.9", history[best_step]["accuracy"])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
