"""Keras 3 layers under tf.compat.v1.variable_scope / tf.name_scope in model_fn: 2.15's checkpoint keys."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from compat._legacy import facts, module

FACTS = facts("keras_scopes")
CASES = module("keras_scopes", "cases")


@pytest.mark.parametrize("case", sorted(FACTS["cases"]))
def test_checkpoint_keys_carry_enclosing_scopes_as_in_2_15(tmp_path, case):
    def model_fn(features, labels, mode):
        CASES.CASES[case](keras, features["x"])
        loss = tf.add_n([tf.reduce_sum(v) for v in tf.compat.v1.trainable_variables()])
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.0)))

    estimator = bridge.Estimator(model_fn, str(tmp_path), bridge.RunConfig(log_step_count_steps=None))
    data = ({"x": np.ones((1, 4), np.float32)}, np.zeros((1, 1), np.float32))
    estimator.train(lambda: tf.data.Dataset.from_tensors(data), steps=1)
    names = sorted(n for n in estimator.get_variable_names() if n != "global_step" and not n.startswith("sgd"))
    assert names == FACTS["cases"][case]
