"""Hypothesis properties: batch splits, merges and batch order do not change any result."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import bridge.metrics as bm  # noqa: E402

FACTORIES = {
    "binary_accuracy": bm.BinaryAccuracy,
    "precision": lambda: bm.Precision(thresholds=[0.25, 0.5]),
    "recall": bm.Recall,
    "f1": lambda: bm.F1Score(threshold=0.5),
    "auc": bm.AUC,
    "auc_pr": lambda: bm.AUC(curve="PR", num_thresholds=33),
    "auc_exact": lambda: bm.AUC(num_thresholds=None),
    "ap_exact": lambda: bm.AUC(num_thresholds=None, curve="PR"),
    "bce": bm.BinaryCrossentropy,
    "mse": bm.MeanSquaredError,
    "mae": bm.MeanAbsoluteError,
    "ece": bm.ExpectedCalibrationError,
    "confusion": lambda: bm.ConfusionMatrix(2),
}
MULTI = {
    "sparse_accuracy": bm.SparseCategoricalAccuracy,
    "top2": lambda: bm.SparseTopKCategoricalAccuracy(k=2),
    "scce": lambda: bm.SparseCategoricalCrossentropy(from_logits=True),
    "f1_macro": lambda: bm.F1Score(average="macro"),
    "confusion4": lambda: bm.ConfusionMatrix(4),
}


@st.composite
def binary_stream(draw):
    n = draw(st.integers(1, 60))
    # Coarse grid: plenty of ties, exact 0 and 1, exact float32 values.
    scores = np.array(draw(st.lists(st.integers(0, 16), min_size=n, max_size=n)), dtype=np.float32) / 16
    labels = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.int64)
    weights = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=np.float64) / 2
    cuts = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=5))) - {n})
    return labels, scores, weights, cuts


@st.composite
def multi_stream(draw):
    n = draw(st.integers(1, 40))
    logits = np.array(draw(st.lists(st.integers(-3, 3), min_size=4 * n, max_size=4 * n)),
                      dtype=np.float32).reshape(n, 4)
    labels = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=np.int32)
    weights = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=np.float64)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=4))) - {n})
    return labels, logits, weights, cuts


def _segments(n, cuts):
    bounds = [0, *cuts, n]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9, atol=1e-12)


def _check(make, y, p, w, cuts, use_weights, order_seed):
    sw = w if use_weights else None
    one = make()
    one.update_state(y, p, sw)
    parts = []
    for s in _segments(len(p), cuts):
        m = make()
        m.update_state(y[s], p[s], None if sw is None else sw[s])
        parts.append(m)
    merged = make()
    merged.merge_state(parts)
    _close(merged.result(), one.result())
    # Same batches in another order into one metric.
    shuffled = make()
    segs = _segments(len(p), cuts)
    for i in np.random.RandomState(order_seed).permutation(len(segs)):
        s = segs[i]
        shuffled.update_state(y[s], p[s], None if sw is None else sw[s])
    _close(shuffled.result(), one.result())


@pytest.mark.parametrize("key", list(FACTORIES))
@settings(max_examples=80)
@given(stream=binary_stream(), use_weights=st.booleans(), order_seed=st.integers(0, 1000))
def test_binary_split_merge_and_order(key, stream, use_weights, order_seed):
    labels, scores, weights, cuts = stream
    _check(FACTORIES[key], labels, scores, weights, cuts, use_weights, order_seed)


@pytest.mark.parametrize("key", list(MULTI))
@settings(max_examples=80)
@given(stream=multi_stream(), use_weights=st.booleans(), order_seed=st.integers(0, 1000))
def test_multiclass_split_merge_and_order(key, stream, use_weights, order_seed):
    labels, logits, weights, cuts = stream
    _check(MULTI[key], labels, logits, weights, cuts, use_weights, order_seed)


@settings(max_examples=60)
@given(stream=binary_stream())
def test_exact_auc_matches_sklearn_on_ties(stream):
    skm = pytest.importorskip("sklearn.metrics")
    labels, scores, weights, _ = stream
    w = weights + 0.5
    if len(set(labels.tolist())) < 2:
        return
    m = bm.AUC(num_thresholds=None)
    m.update_state(labels, scores, w)
    assert m.result() == pytest.approx(skm.roc_auc_score(labels, scores, sample_weight=w), rel=1e-9)
    ap = bm.AUC(num_thresholds=None, curve="PR")
    ap.update_state(labels, scores, w)
    assert ap.result() == pytest.approx(skm.average_precision_score(labels, scores, sample_weight=w), rel=1e-9)
