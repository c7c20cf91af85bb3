"""Run by test_tf_keras.py in a subprocess with TF_USE_LEGACY_KERAS=1 (tf.keras is then tf_keras).

Part 1: the 2.15 fixture's model_fn (tests/fixtures/legacy_2_15/tf_keras/model.py: a tf_keras
Sequential with BatchNormalization, a tf_keras metric in eval_metric_ops, a serving signature)
trains 3 steps, evaluates, predicts and is exported; the SavedModel is reloaded and served; a
tf_keras model called under TF name scopes trains a step (for its checkpoint keys).
Part 2: a model_fn that, like most TF2-era code, does not fetch ``model.updates``: the moving
statistics are saved and restored, so evaluate matches training.
Prints one JSON line with what the test compares.
"""

import json
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

import bridge

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "legacy_2_15", "tf_keras"))
import model as fixture  # noqa: E402


def _fixture_run():
    model_fn = fixture.make_model_fn(bridge.EstimatorSpec, bridge.ModeKeys, bridge.export.PredictOutput)
    estimator = bridge.Estimator(model_fn, tempfile.mkdtemp(), bridge.RunConfig(log_step_count_steps=None))
    estimator.train(fixture.input_fn, steps=3)
    result = {
        "after_3_steps": {n: estimator.get_variable_value(n).tolist() for n in estimator.get_variable_names()},
        "evaluate": {k: float(v) for k, v in estimator.evaluate(fixture.eval_input_fn).items()},
        "predictions": [row["probabilities"].tolist() for row in estimator.predict(fixture.predict_input_fn)],
    }

    def serving_input_receiver_fn():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        return bridge.export.ServingInputReceiver({"x": x}, {"x": x})

    export_dir = estimator.export_saved_model(tempfile.mkdtemp(), serving_input_receiver_fn)
    served = tf.saved_model.load(export_dir).signatures["serving_default"](x=tf.constant(fixture.FEATURES[:4]))
    result["served"] = served["probabilities"].numpy().tolist()
    scoped = bridge.Estimator(fixture.make_scoped_model_fn(bridge.EstimatorSpec), tempfile.mkdtemp(),
                              bridge.RunConfig(log_step_count_steps=None))
    scoped.train(fixture.input_fn, steps=1)
    result["scoped_names"] = scoped.get_variable_names()
    return result


def _statistics_model_fn(features, labels, mode):
    training = mode == bridge.ModeKeys.TRAIN
    x = tf.keras.layers.Dense(32, activation="relu")(features["x"])
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x, training=training)
    logits = tf.keras.layers.Dense(2)(x)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    if mode == bridge.ModeKeys.EVAL:
        accuracy = tf.keras.metrics.Accuracy()
        accuracy.update_state(labels, tf.argmax(logits, 1))
        return bridge.EstimatorSpec(mode, loss=loss, eval_metric_ops={"accuracy": accuracy})
    optimizer = tf.compat.v1.train.GradientDescentOptimizer(0.1)
    train_op = optimizer.minimize(loss, global_step=tf.compat.v1.train.get_global_step())
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op)


def _statistics_run():
    rng = np.random.RandomState(0)
    x = (rng.randn(512, 4) * 3 + 5).astype(np.float32)  # far from the initial moving mean 0
    y = (x[:, 0] > 5).astype(np.int32)
    estimator = bridge.Estimator(_statistics_model_fn, tempfile.mkdtemp(), bridge.RunConfig(log_step_count_steps=None))
    train = lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).shuffle(512, seed=0).repeat().batch(64)  # noqa: E731
    estimator.train(train, steps=300)
    results = estimator.evaluate(lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(128))
    names = estimator.get_variable_names()
    moving = [n for n in names if n.endswith("moving_mean")]
    return {
        "names": names,
        "moving_mean": estimator.get_variable_value(moving[0]).tolist() if moving else None,
        "accuracy": float(results["accuracy"]),
    }


def main():
    print(json.dumps({"keras": tf.keras.__name__, "fixture": _fixture_run(), "statistics": _statistics_run()}))


if __name__ == "__main__":
    sys.exit(main())
