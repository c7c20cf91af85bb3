"""A classic tf.estimator model_fn, run by bridge on TensorFlow 2.16+ and Keras 3.

Trains a small MLP on scikit-learn's bundled 8x8 digits (1797 images, no download),
evaluates it on a held-out split, predicts a few examples and lists the checkpoints.
Exits with status 1 if the eval accuracy is below 0.90.

    .venv/bin/python examples/custom_model_fn.py [--model-dir DIR] [--steps N]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import bridge

logger = logging.getLogger("custom_model_fn")

NUM_CLASSES = 10
SEED = 42


def load_data():
    """Digits as float32 pixels in [0, 1], split 75/25 with a fixed seed (stratified)."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel values are 0..16
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)


def make_input_fn(x, y=None, training=False):
    """An input_fn returning a tf.data.Dataset; the batch size comes from params."""

    def input_fn(params):
        features = {"pixels": x}
        data = (features, y) if y is not None else features
        dataset = tf.data.Dataset.from_tensor_slices(data)
        if training:
            dataset = dataset.shuffle(len(x), seed=SEED).repeat()
        return dataset.batch(params["batch_size"])

    return input_fn


def model_fn(features, labels, mode, params):
    """The model_fn: Keras 3 layers, a Keras optimizer via bridge.minimize, a Keras metric."""
    hidden = keras.layers.Dense(params["hidden_units"], activation="relu", name="hidden")(features["pixels"])
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(hidden)
    class_ids = tf.argmax(logits, axis=1)
    predictions = {"class_ids": class_ids, "probabilities": tf.nn.softmax(logits)}

    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions=predictions)

    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))

    accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    accuracy.update_state(labels, logits)
    eval_metric_ops = {
        "accuracy": accuracy,  # a Keras metric object, updated inside the traced step
        "top_2_accuracy": bridge.metrics.top_k_accuracy(labels, logits, k=2),  # bridge's C++ engine, on the host
    }

    if mode == bridge.ModeKeys.EVAL:
        return bridge.EstimatorSpec(mode, loss=loss, eval_metric_ops=eval_metric_ops)

    train_op = bridge.minimize(loss, keras.optimizers.Adam(params["learning_rate"]))
    batch_accuracy = tf.reduce_mean(tf.cast(tf.equal(class_ids, labels), tf.float32))
    # The runtime already logs loss and step every log_step_count_steps; this hook adds the batch accuracy.
    logging_hook = bridge.LoggingTensorHook({"batch_accuracy": batch_accuracy}, every_n_iter=params["log_every"])
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, training_hooks=[logging_hook])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None, help="checkpoint directory (default: a fresh temp dir)")
    parser.add_argument("--steps", type=int, default=600, help="training steps (default: 600)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model_dir = args.model_dir or tempfile.mkdtemp(prefix="digits_")

    x_train, x_test, y_train, y_test = load_data()
    logger.info("digits: %d train / %d test examples, model_dir=%s", len(x_train), len(x_test), model_dir)

    params = {"batch_size": 64, "hidden_units": 64, "learning_rate": 3e-3, "log_every": 100}
    config = bridge.RunConfig(tf_random_seed=SEED, save_checkpoints_steps=200, log_step_count_steps=100)
    estimator = bridge.Estimator(model_fn, model_dir=model_dir, config=config, params=params)

    estimator.train(make_input_fn(x_train, y_train, training=True), steps=args.steps)

    metrics = estimator.evaluate(make_input_fn(x_test, y_test))
    logger.info(
        "eval: accuracy = %.4f, top-2 accuracy = %.4f, loss = %.4f, global_step = %d",
        metrics["accuracy"], metrics["top_2_accuracy"], metrics["loss"], metrics["global_step"],
    )

    n_shown = 5
    predictions = list(estimator.predict(make_input_fn(x_test[:n_shown])))
    for i, prediction in enumerate(predictions):
        cls = int(prediction["class_ids"])
        logger.info(
            "example %d: label %d, predicted %d (p = %.3f)",
            i, y_test[i], cls, prediction["probabilities"][cls],
        )

    # Export a SavedModel for serving, reload it, and check it serves the same predictions.
    serving_input_fn = bridge.export.build_raw_serving_input_receiver_fn(
        {"pixels": tf.TensorSpec([None, x_test.shape[1]], tf.float32)}
    )
    export_dir = estimator.export_saved_model(os.path.join(model_dir, "export"), serving_input_fn).decode()
    served = tf.saved_model.load(export_dir).signatures["serving_default"](pixels=tf.constant(x_test[:n_shown]))
    agree = all(int(served["class_ids"][i]) == int(p["class_ids"]) for i, p in enumerate(predictions))
    logger.info("exported %s; the SavedModel agrees with Estimator.predict: %s", export_dir, agree)

    logger.info("latest checkpoint: %s", estimator.latest_checkpoint())
    for name in sorted(os.listdir(model_dir)):
        logger.info("  %s/%s", os.path.basename(model_dir), name)

    if not agree:
        logger.error("the exported SavedModel disagrees with Estimator.predict")
        return 1
    if metrics["accuracy"] < 0.90:
        logger.error("accuracy %.4f is below 0.90", metrics["accuracy"])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
