"""A TF 1.x tutorial script (the cnn_mnist kind), unchanged except for one line, run by bridge.

Everything below the marked line is written as TF 1.x-2.15 tutorials wrote it:
``tf.compat.v1.layers`` inside model_fn, ``tf.compat.v1.estimator.inputs.numpy_input_fn``,
a ``LoggingTensorHook`` logging a tensor by its name, ``tf.compat.v1.metrics``,
``tf.estimator.Estimator`` and ``export_savedmodel``. The data are scikit-learn's bundled 8x8
digits (no download) instead of MNIST. Exits with status 1 if the eval accuracy is below 0.90.

    python examples/legacy_script.py [--model-dir DIR] [--steps N]
"""

import bridge

bridge.install_as_tf_estimator()  # <- the one line: tf.estimator now resolves to bridge

# ---- the legacy script, as it was ------------------------------------------------------------
import argparse
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.INFO)


def cnn_model_fn(features, labels, mode):
    """Model function for CNN."""
    input_layer = tf.reshape(features["x"], [-1, 8, 8, 1])
    conv1 = tf.compat.v1.layers.conv2d(
        inputs=input_layer, filters=16, kernel_size=[3, 3], padding="same", activation=tf.nn.relu)
    pool1 = tf.compat.v1.layers.max_pooling2d(inputs=conv1, pool_size=[2, 2], strides=2)
    conv2 = tf.compat.v1.layers.conv2d(
        inputs=pool1, filters=32, kernel_size=[3, 3], padding="same", activation=tf.nn.relu)
    pool2 = tf.compat.v1.layers.max_pooling2d(inputs=conv2, pool_size=[2, 2], strides=2)
    pool2_flat = tf.reshape(pool2, [-1, 2 * 2 * 32])
    dense = tf.compat.v1.layers.dense(inputs=pool2_flat, units=128, activation=tf.nn.relu)
    dropout = tf.compat.v1.layers.dropout(
        inputs=dense, rate=0.4, training=mode == tf.estimator.ModeKeys.TRAIN)
    logits = tf.compat.v1.layers.dense(inputs=dropout, units=10)

    predictions = {
        "classes": tf.argmax(input=logits, axis=1),
        "probabilities": tf.nn.softmax(logits, name="softmax_tensor"),
    }
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode=mode, predictions=predictions)

    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)

    if mode == tf.estimator.ModeKeys.TRAIN:
        optimizer = tf.compat.v1.train.GradientDescentOptimizer(learning_rate=0.1)
        train_op = optimizer.minimize(loss=loss, global_step=tf.compat.v1.train.get_global_step())
        return tf.estimator.EstimatorSpec(mode=mode, loss=loss, train_op=train_op)

    eval_metric_ops = {
        "accuracy": tf.compat.v1.metrics.accuracy(labels=labels, predictions=predictions["classes"])
    }
    return tf.estimator.EstimatorSpec(mode=mode, loss=loss, eval_metric_ops=eval_metric_ops)


def serving_input_receiver_fn():
    x = tf.compat.v1.placeholder(tf.float32, [None, 64], name="x")
    return tf.estimator.export.ServingInputReceiver({"x": x}, {"x": x})


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", default=os.path.join(tempfile.gettempdir(), "digits_convnet_model"))
    parser.add_argument("--steps", type=int, default=800)
    args = parser.parse_args(argv)

    digits = load_digits()
    data = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    train_data, eval_data = data[:1400], data[1400:]
    train_labels, eval_labels = labels[:1400], labels[1400:]

    mnist_classifier = tf.estimator.Estimator(model_fn=cnn_model_fn, model_dir=args.model_dir)

    tensors_to_log = {"probabilities": "softmax_tensor"}
    logging_hook = tf.compat.v1.train.LoggingTensorHook(tensors=tensors_to_log, every_n_iter=200)

    train_input_fn = tf.compat.v1.estimator.inputs.numpy_input_fn(
        x={"x": train_data}, y=train_labels, batch_size=50, num_epochs=None, shuffle=True)
    mnist_classifier.train(input_fn=train_input_fn, steps=args.steps, hooks=[logging_hook])

    eval_input_fn = tf.compat.v1.estimator.inputs.numpy_input_fn(
        x={"x": eval_data}, y=eval_labels, num_epochs=1, shuffle=False)
    eval_results = mnist_classifier.evaluate(input_fn=eval_input_fn)
    print(eval_results)

    export_dir = mnist_classifier.export_savedmodel(
        os.path.join(args.model_dir, "export"), serving_input_receiver_fn, strip_default_attrs=True)
    print("exported to", export_dir.decode())
    return 0 if eval_results["accuracy"] >= 0.90 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
