"""v1 regression metrics with float64 labels and a Keras 3 model's float32 predictions."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from compat._legacy import facts

FACTS = facts("metric_dtypes")


def _evaluate(metric_name, cast_labels):
    def model_fn(features, labels, mode):
        predictions = keras.layers.Dense(1, kernel_initializer="zeros")(features["x"])  # float32
        metric_labels = tf.cast(labels, tf.float64) if cast_labels == "float64" else tf.cast(labels, predictions.dtype)
        metric = getattr(tf.compat.v1.metrics, metric_name)(metric_labels, predictions)
        loss = tf.reduce_mean(tf.square(predictions - tf.cast(labels, tf.float32)))
        return bridge.EstimatorSpec(mode, loss=loss, eval_metric_ops={"metric": metric})

    data = ({"x": np.ones((2, 3), np.float64)}, np.full((2, 1), 2.0, np.float64))
    estimator = bridge.Estimator(model_fn, config=bridge.RunConfig(log_step_count_steps=None))
    return estimator.evaluate(lambda: tf.data.Dataset.from_tensors(data), steps=1)


@pytest.mark.parametrize("metric_name", sorted(FACTS["metrics"]))
def test_mixed_float_dtypes_raise_2_15s_type_error_naming_metric_and_dtypes(metric_name):
    assert FACTS["metrics"][metric_name]["error"] == "TypeError"
    with pytest.raises(TypeError, match=rf"{metric_name}: labels are float64 but predictions are float32.*tf\.cast"):
        _evaluate(metric_name, "float64")


def test_the_suggested_cast_works():
    assert _evaluate("root_mean_squared_error", "same")["metric"] == pytest.approx(2.0)
