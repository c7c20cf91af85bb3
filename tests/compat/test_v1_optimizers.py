"""tf.compat.v1.train optimizers with Keras 3 variables in model_fn (var_list=model.trainable_variables)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge


def _model_fn(form, optimizer_fn):
    def model_fn(features, labels, mode):
        model = keras.Sequential([keras.layers.Dense(1, kernel_initializer="ones")])
        loss = tf.reduce_mean(tf.square(model(features["x"]) - labels))
        optimizer = optimizer_fn()
        step = tf.compat.v1.train.get_global_step()
        if form == "minimize":
            train_op = optimizer.minimize(loss, global_step=step, var_list=model.trainable_variables)
        else:
            pairs = optimizer.compute_gradients(loss, var_list=model.trainable_variables)
            train_op = optimizer.apply_gradients(pairs, global_step=step)
        return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op)

    return model_fn


def _train(tmp_path, form, optimizer_fn):
    estimator = bridge.Estimator(_model_fn(form, optimizer_fn), str(tmp_path), bridge.RunConfig(log_step_count_steps=None))
    data = ({"x": np.ones((1, 2), np.float32)}, np.zeros((1, 1), np.float32))
    estimator.train(lambda: tf.data.Dataset.from_tensors(data), steps=1)
    return estimator


@pytest.mark.parametrize("form", ["minimize", "compute_and_apply"])
def test_v1_optimizer_trains_keras_variables(tmp_path, form):
    # y = 2 with kernel ones, bias 0: d(y^2)/dkernel = 2 * y * x = 4, so 1 - 0.1 * 4 = 0.6
    estimator = _train(tmp_path, form, lambda: tf.compat.v1.train.GradientDescentOptimizer(0.1))
    np.testing.assert_allclose(estimator.get_variable_value("sequential/dense/kernel"), [[0.6], [0.6]], rtol=1e-6)
    assert estimator.get_variable_value("global_step") == 1


def test_slots_are_named_after_the_keras_variable_as_tf1_named_them(tmp_path):
    estimator = _train(tmp_path, "minimize", lambda: tf.compat.v1.train.MomentumOptimizer(0.1, 0.9))
    names = estimator.get_variable_names()
    assert "sequential/dense/kernel/Momentum" in names and "sequential/dense/bias/Momentum" in names
