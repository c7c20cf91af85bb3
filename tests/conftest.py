"""Shared fixtures for the Estimator runtime tests: tiny data, classic model_fns, input_fns.

Everything here is deliberately small (3 features, 20 examples, Dense(1)) so that each
Estimator call costs one trace of a tiny model_fn.
"""

from __future__ import annotations

import glob
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge

N_EXAMPLES = 20
BATCH = 5
X = np.random.RandomState(0).randn(N_EXAMPLES, 3).astype(np.float32)
Y = (X @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.5).astype(np.float32)
CLASSES = (Y[:, 0] > 0.5).astype(np.int64)


# -- input_fns --------------------------------------------------------------------------------
def make_input_fn(x=X, y=Y, batch_size=BATCH, epochs=1, features_as_dict=True):
    """A Dataset of (features, labels) batches; ``epochs=None`` repeats forever."""

    def input_fn():
        features = {"x": x} if features_as_dict else x
        ds = tf.data.Dataset.from_tensor_slices((features, y) if y is not None else features)
        return ds.repeat(epochs).batch(batch_size)

    return input_fn


@pytest.fixture
def train_input_fn():
    return make_input_fn(epochs=None)


@pytest.fixture
def eval_input_fn():
    return make_input_fn()


@pytest.fixture
def predict_input_fn():
    return make_input_fn(y=None)


# -- model_fns --------------------------------------------------------------------------------
def keras_model_fn(features, labels, mode, params):
    """The classic model_fn of the tutorial: Keras 3 layers, loss, metrics and train_op inside."""
    x = features["x"] if isinstance(features, dict) else features
    layer = keras.layers.Dense(1, kernel_initializer="zeros", name="dense")
    predictions = layer(x)
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(
            mode, predictions={"y": predictions, "twice": 2.0 * predictions}
        )
    loss = tf.reduce_mean(tf.square(predictions - labels))
    mse = keras.metrics.MeanSquaredError(name="mse")
    mse.update_state(labels, predictions)
    train_op = bridge.minimize(loss, keras.optimizers.Adam(params.get("learning_rate", 0.1)))
    return bridge.EstimatorSpec(
        mode,
        loss=loss,
        train_op=train_op,
        eval_metric_ops={"mse": mse, "mean_prediction": tf.compat.v1.metrics.mean(predictions)},
    )


def v1_model_fn(features, labels, mode):
    """A tf.estimator 1.x-style model_fn: GradientDescentOptimizer.minimize(global_step=...)."""
    predictions = keras.layers.Dense(1, kernel_initializer="zeros", name="dense")(features["x"])
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions=predictions)
    loss = tf.reduce_mean(tf.square(predictions - labels))
    train_op = None
    if mode == bridge.ModeKeys.TRAIN:
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.05).minimize(
            loss, global_step=tf.compat.v1.train.get_global_step()
        )
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op)


@pytest.fixture
def model_dir(tmp_path):
    return str(tmp_path / "model")


@pytest.fixture
def estimator(model_dir):
    return bridge.Estimator(keras_model_fn, model_dir=model_dir, params={"learning_rate": 0.1})


# -- hooks ------------------------------------------------------------------------------------
class Recorder(bridge.SessionRunHook):
    """Fetches the global step every step and records every callback."""

    def __init__(self):
        self.calls, self.steps = [], []

    def begin(self):
        self.calls.append("begin")
        self._step = tf.compat.v1.train.get_global_step()

    def after_create_session(self, session, coord):
        self.calls.append("after_create_session")

    def before_run(self, run_context):
        self.calls.append("before_run")
        return bridge.SessionRunArgs({"step": self._step})

    def after_run(self, run_context, run_values):
        self.calls.append("after_run")
        self.steps.append(int(run_values.results["step"]))

    def end(self, session):
        self.calls.append("end")


# -- helpers ----------------------------------------------------------------------------------
def checkpoint_steps(model_dir: str) -> list[int]:
    """Global steps of the checkpoints present on disk (by their .index files), sorted."""
    steps = []
    for path in glob.glob(os.path.join(model_dir, "model.ckpt-*.index")):
        steps.append(int(re.search(r"model\.ckpt-(\d+)\.index$", path).group(1)))
    return sorted(steps)


def global_step_of(estimator) -> int:
    return int(estimator.get_variable_value("global_step"))
