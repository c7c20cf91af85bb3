"""Clear errors for v1 regression metrics given float labels and predictions of different dtypes.

A Keras 3 model computes in float32 (it casts float64 features), so a legacy
``tf.compat.v1.metrics.root_mean_squared_error(tf.cast(labels, tf.float64), predictions)``
mixes float64 and float32. TF 2.15 failed there too, with TensorFlow's bare
``Input 'y' of 'SquaredDifference' Op has type float32 ...``; inside a bridge model_fn the
same TypeError names the metric, both dtypes and the fix.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

import tensorflow as tf

from bridge._model_fn_scopes import ModelFnCall, register
from bridge.compat._patching import attributes_set

# The v1 metrics that subtract predictions from labels, so need one dtype for both.
_DIFFERENCE_METRICS = (
    "mean_absolute_error",
    "mean_squared_error",
    "root_mean_squared_error",
    "mean_relative_error",
    "mean_cosine_distance",
)


def _dtype(value: Any) -> tf.DType | None:
    dtype = getattr(value, "dtype", None)
    try:
        return tf.as_dtype(dtype) if dtype is not None else None
    except TypeError:
        return None


def _checked(name: str, metric: Callable) -> Callable:
    @functools.wraps(metric)
    def checked(labels, predictions, *args, **kwargs):
        label_dtype, prediction_dtype = _dtype(labels), _dtype(predictions)
        if (
            label_dtype is not None
            and prediction_dtype is not None
            and label_dtype.is_floating
            and prediction_dtype.is_floating
            and label_dtype != prediction_dtype
        ):
            raise TypeError(
                f"tf.compat.v1.metrics.{name}: labels are {label_dtype.name} but predictions are "
                f"{prediction_dtype.name}; both must have the same dtype. Keras 3 models compute in "
                f"float32 (float64 features are cast), so cast the labels instead: "
                f"tf.compat.v1.metrics.{name}(tf.cast(labels, predictions.dtype), predictions)."
            )
        return metric(labels, predictions, *args, **kwargs)

    return checked


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Iterator[None]:
    module = tf.compat.v1.metrics
    with attributes_set(module, {name: _checked(name, getattr(module, name)) for name in _DIFFERENCE_METRICS}):
        yield


register(_model_fn_scope)
