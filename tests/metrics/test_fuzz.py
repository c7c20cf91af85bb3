"""Fuzz: thousands of random (often malformed) calls never crash the process.

Every call must either succeed or raise TypeError/ValueError; a rejected call
must leave the metric's state untouched, and results stay finite.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import bridge.metrics as bm  # noqa: E402

FUZZ_CALLS = 2500

FACTORIES = [
    bm.Accuracy, bm.BinaryAccuracy, bm.CategoricalAccuracy, bm.SparseCategoricalAccuracy,
    lambda: bm.SparseTopKCategoricalAccuracy(k=2), bm.Precision, lambda: bm.Recall(thresholds=[0.2, 0.7]),
    lambda: bm.Recall(class_id=1), bm.F1Score, lambda: bm.F1Score(average="weighted", threshold=0.5),
    lambda: bm.ConfusionMatrix(3), lambda: bm.ConfusionMatrix(2), bm.AUC, lambda: bm.AUC(num_thresholds=None),
    lambda: bm.AUC(curve="PR", from_logits=True), bm.MeanSquaredError, bm.MeanAbsoluteError,
    bm.RootMeanSquaredError, bm.BinaryCrossentropy, lambda: bm.BinaryCrossentropy(from_logits=True),
    bm.SparseCategoricalCrossentropy, lambda: bm.SparseCategoricalCrossentropy(from_logits=True),
    bm.ExpectedCalibrationError,
]
# One long-lived instance per factory, so state persists across fuzz calls.
METRICS = [make() for make in FACTORIES]
MEANS = [bm.Mean(), bm.Sum()]

DTYPES = ["bool", "int8", "uint8", "int32", "int64", "uint64", "float16", "float32", "float64", ">f8",
          "complex64", "object", "U3", "datetime64[s]"]
SPECIALS = [0.0, 1.0, -1.0, 0.5, 2.0, 3.0, np.nan, np.inf, -np.inf, 1e30, -0.0]


@st.composite
def arrays(draw):
    kind = draw(st.sampled_from(["array", "array", "array", "list", "scalar", "none", "string"]))
    if kind == "none":
        return None
    if kind == "string":
        return draw(st.text(max_size=3))
    if kind == "scalar":
        return draw(st.sampled_from(SPECIALS + [1, 0, True]))
    ndim = draw(st.sampled_from([0, 1, 1, 2, 2, 3]))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    values = draw(st.lists(st.sampled_from(SPECIALS) | st.floats(-3, 3), min_size=int(np.prod(shape)),
                           max_size=int(np.prod(shape))))
    base = np.array(values, dtype=np.float64).reshape(shape)
    dtype = draw(st.sampled_from(DTYPES))
    with np.errstate(all="ignore"):
        try:
            arr = base.astype(dtype)
        except (ValueError, TypeError, OverflowError):
            arr = base
    layout = draw(st.sampled_from(["c", "f", "strided", "readonly"]))
    if layout == "f" and arr.ndim == 2:
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim >= 1:
        arr = np.repeat(arr, 2, axis=0)[::2]
    elif layout == "readonly":
        arr = arr.copy()
        arr.setflags(write=False)
    return arr.tolist() if kind == "list" and arr.dtype.kind in "biuf" else arr


def _snapshot(metric):
    return {k: v.copy() for k, v in metric.get_state().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@settings(max_examples=FUZZ_CALLS, suppress_health_check=list(HealthCheck))
@given(which=st.integers(0, len(METRICS) + len(MEANS) - 1), y_true=arrays(), y_pred=arrays(),
       weights=arrays() | st.none())
def test_fuzz_update_state(which, y_true, y_pred, weights):
    metric = (METRICS + MEANS)[which]
    before = _snapshot(metric)
    try:
        if which >= len(METRICS):
            metric.update_state(y_pred, sample_weight=weights)
        else:
            metric.update_state(y_true, y_pred, weights)
    except (TypeError, ValueError):
        assert _same(before, _snapshot(metric)), "a rejected batch changed the state"
    result = np.asarray(metric.result(), dtype=np.float64)
    assert np.all(np.isfinite(result))
