"""A compiled Keras 3 model trained through an Estimator, then handed back to Keras.

``bridge.model_to_estimator`` turns a functional model with a named input ("pixels") into an
Estimator: model_dir checkpoints, input_fns, hooks, evaluate/predict. The model is trained on
scikit-learn's bundled 8x8 digits (1797 images, no download), evaluated on a held-out split,
then ``bridge.estimator_to_keras`` returns a Keras model with the trained weights, which is
checked against the estimator's predictions and saved as a ``.keras`` file.
Exits with status 1 if the eval accuracy is below 0.90.

    .venv/bin/python examples/keras_to_estimator.py [--model-dir DIR] [--steps N]
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

logger = logging.getLogger("keras_to_estimator")

NUM_CLASSES = 10
SEED = 42
BATCH_SIZE = 64


def load_data():
    """Digits as float32 pixels in [0, 1], split 75/25 with a fixed seed (stratified)."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel values are 0..16
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)


def build_model() -> keras.Model:
    """A functional model whose input is named "pixels": features are {"pixels": ...}."""
    keras.utils.set_random_seed(SEED)
    pixels = keras.Input(shape=(64,), name="pixels")
    hidden = keras.layers.Dense(64, activation="relu", name="hidden")(pixels)
    hidden = keras.layers.Dropout(0.1, name="dropout")(hidden)  # active in TRAIN only
    probabilities = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="digit")(hidden)
    model = keras.Model(pixels, probabilities, name="digits")
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def make_input_fn(x, y=None, training=False):
    def input_fn():
        features = {"pixels": x}
        dataset = tf.data.Dataset.from_tensor_slices((features, y) if y is not None else features)
        if training:
            dataset = dataset.shuffle(len(x), seed=SEED).repeat()
        return dataset.batch(BATCH_SIZE)

    return input_fn


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None, help="checkpoint directory (default: a fresh temp dir)")
    parser.add_argument("--steps", type=int, default=600, help="training steps (default: 600)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model_dir = args.model_dir or tempfile.mkdtemp(prefix="keras_digits_")
    x_train, x_test, y_train, y_test = load_data()
    logger.info("digits: %d train / %d test examples, model_dir=%s", len(x_train), len(x_test), model_dir)

    # 1. Keras model -> Estimator. The model's current weights are the starting point.
    config = bridge.RunConfig(tf_random_seed=SEED, save_checkpoints_steps=200, log_step_count_steps=200)
    estimator = bridge.model_to_estimator(keras_model=build_model(), model_dir=model_dir, config=config)

    # 2. The Estimator workflow: train, evaluate (compiled metrics under Keras's names), predict.
    estimator.train(make_input_fn(x_train, y_train, training=True), steps=args.steps)
    metrics = estimator.evaluate(make_input_fn(x_test, y_test))
    logger.info(
        "eval: accuracy = %.4f, loss = %.4f, global_step = %d",
        metrics["accuracy"], metrics["loss"], metrics["global_step"],
    )
    predicted = np.stack([p["digit"] for p in estimator.predict(make_input_fn(x_test))])

    # 3. Estimator -> Keras: the latest checkpoint's weights in a compiled Keras model.
    trained = bridge.estimator_to_keras(estimator)
    keras_predicted = trained.predict(x_test, batch_size=BATCH_SIZE, verbose=0)
    max_diff = float(np.abs(keras_predicted - predicted).max())
    keras_accuracy = trained.evaluate(x_test, y_test, batch_size=BATCH_SIZE, return_dict=True, verbose=0)["accuracy"]
    logger.info("Keras model from the estimator: accuracy = %.4f, max |prediction difference| = %.2e", keras_accuracy, max_diff)

    saved = os.path.join(model_dir, "digits_trained.keras")
    trained.save(saved)
    reloaded = keras.saving.load_model(saved)
    logger.info("saved %s (%d bytes); reloaded model predicts digit %d for the first test image (label %d)",
                saved, os.path.getsize(saved), int(np.argmax(reloaded.predict(x_test[:1], verbose=0))), y_test[0])

    # 4. A SavedModel for serving, from the estimator's latest checkpoint; it must serve the same digits.
    serving_input_fn = bridge.export.build_raw_serving_input_receiver_fn(
        {"pixels": tf.TensorSpec([None, x_test.shape[1]], tf.float32)}
    )
    export_dir = estimator.export_saved_model(os.path.join(model_dir, "export"), serving_input_fn).decode()
    served = tf.saved_model.load(export_dir).signatures["serving_default"](pixels=tf.constant(x_test))["digit"]
    served_diff = float(np.abs(served.numpy() - predicted).max())
    logger.info("exported %s; max |served - estimator prediction| = %.2e", export_dir, served_diff)

    if max(max_diff, served_diff) > 1e-4:
        logger.error("Keras / SavedModel / estimator disagree (max differences %.2e, %.2e)", max_diff, served_diff)
        return 1
    if metrics["accuracy"] < 0.90:
        logger.error("accuracy %.4f is below 0.90", metrics["accuracy"])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
