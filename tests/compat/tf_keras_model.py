"""Run by test_tf_keras.py in a subprocess with TF_USE_LEGACY_KERAS=1 (tf.keras is then tf_keras).

Trains a model_fn with tf_keras BatchNormalization (moving statistics are ON_READ variables
there) and a tf_keras metric, evaluates, and prints a JSON line: checkpoint keys, the moving
mean, training batch accuracy and evaluate's accuracy.
"""

import json
import sys
import tempfile

import numpy as np
import tensorflow as tf

import bridge


def model_fn(features, labels, mode):
    training = mode == bridge.ModeKeys.TRAIN
    x = tf.keras.layers.Dense(32, activation="relu")(features["x"])
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x, training=training)
    logits = tf.keras.layers.Dense(2)(x)
    classes = tf.argmax(logits, 1)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    if mode == bridge.ModeKeys.EVAL:
        accuracy = tf.keras.metrics.Accuracy()
        accuracy.update_state(labels, classes)
        return bridge.EstimatorSpec(mode, loss=loss, eval_metric_ops={"accuracy": accuracy})
    batch_accuracy = tf.reduce_mean(tf.cast(tf.equal(classes, tf.cast(labels, tf.int64)), tf.float32))
    optimizer = tf.compat.v1.train.GradientDescentOptimizer(0.1)
    update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
        train_op = optimizer.minimize(loss, global_step=tf.compat.v1.train.get_global_step())
    hook = bridge.LoggingTensorHook({"batch_accuracy": batch_accuracy}, every_n_iter=1)
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, training_hooks=[hook])


def main():
    rng = np.random.RandomState(0)
    x = (rng.randn(512, 4) * 3 + 5).astype(np.float32)  # far from the initial moving mean 0
    y = (x[:, 0] > 5).astype(np.int32)
    model_dir = tempfile.mkdtemp()
    estimator = bridge.Estimator(model_fn, model_dir, bridge.RunConfig(log_step_count_steps=None))
    train = lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).shuffle(512, seed=0).repeat().batch(64)  # noqa: E731
    estimator.train(train, steps=300)
    results = estimator.evaluate(lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(128))
    names = estimator.get_variable_names()
    moving = [n for n in names if n.endswith("moving_mean")]
    print(json.dumps({
        "keras": tf.keras.__name__ if hasattr(tf.keras, "__name__") else str(tf.keras),
        "names": names,
        "moving_mean": estimator.get_variable_value(moving[0]).tolist() if moving else None,
        "accuracy": float(results["accuracy"]),
    }))


if __name__ == "__main__":
    sys.exit(main())
