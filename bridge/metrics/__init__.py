"""Streaming metrics computed in C++ from numpy batches (no TensorFlow needed).

Keras 3 names and semantics, with ``update_state(y_true, y_pred,
sample_weight=None)``, ``result()``, ``reset_state()``, ``merge_state(others)``,
``get_state()``/``set_state()`` (dicts of numpy arrays that add across
workers), pickling and ``get_config()``/``from_config()``. Input validation
raises TypeError/ValueError naming the argument; a rejected batch leaves the
metric unchanged, also while other threads update it. Non-finite inputs follow one
rule in every metric: a NaN or inf anywhere in ``y_pred``, in float ``y_true``/``values``
or in ``sample_weight`` is a ValueError naming the first offending element (Keras would
return NaN or a silently clipped number; a finite wrong value is never returned).
Sizes that cannot be allocated (``ConfusionMatrix(num_classes=2**32)``) are a
ValueError at construction. The GIL is released while a batch is processed and large
batches are split across cores (``set_num_threads``). One metric object may
be updated from several threads; updates are serialised per object.
"""

from __future__ import annotations

from bridge.metrics._core import get_num_threads, set_num_threads
from bridge.metrics.accuracy import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
)
from bridge.metrics.auc import AUC
from bridge.metrics.base import StreamingMetric
from bridge.metrics.calibration import ExpectedCalibrationError
from bridge.metrics.confusion import ConfusionMatrix, F1Score, FBetaScore, Precision, Recall
from bridge.metrics.probabilistic import BinaryCrossentropy, SparseCategoricalCrossentropy
from bridge.metrics.reduction import Mean, Sum
from bridge.metrics.regression import MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError

# tf.compat.v1.metrics-style constructors for eval_metric_ops. Imported last: ``accuracy`` and
# ``auc`` are also submodule names, and the functions are what users mean by them.
from bridge.metrics import ops as _ops  # noqa: E402
from bridge.metrics.ops import *  # noqa: E402,F401,F403  (the names in ops.__all__)

__all__ = [
    "AUC",
    "Accuracy",
    "BinaryAccuracy",
    "BinaryCrossentropy",
    "CategoricalAccuracy",
    "ConfusionMatrix",
    "ExpectedCalibrationError",
    "F1Score",
    "FBetaScore",
    "Mean",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Precision",
    "Recall",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy",
    "StreamingMetric",
    "Sum",
    "get_num_threads",
    "set_num_threads",
    *_ops.__all__,  # functional constructors for eval_metric_ops
]


def __dir__() -> list[str]:
    return __all__
