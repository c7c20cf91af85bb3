"""Same results as Keras 3's metric of the same name (rtol 1e-6), bucketed AUC included."""

from __future__ import annotations

import numpy as np
import pytest

import bridge.metrics as bm

keras = pytest.importorskip("keras")

RTOL = 1e-6


def both(ours, theirs, y_true, y_pred, w=None, batch=509):
    """Streams the same batches into our metric and the Keras one; returns both results."""
    for i in range(0, len(y_pred), batch):
        sw = None if w is None else w[i : i + batch]
        ours.update_state(y_true[i : i + batch], y_pred[i : i + batch], sw)
        theirs.update_state(y_true[i : i + batch], y_pred[i : i + batch], sample_weight=sw)
    return ours.result(), np.asarray(theirs.result(), dtype=np.float64)


def crowded(data, kind):
    """Scores that crowd near 0 or 1, where 200 buckets are coarse."""
    s = data.scores.astype(np.float64)
    return {"plain": s, "near0": s**8, "near1": 1 - (1 - s) ** 8}[kind].astype(np.float32)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("curve", ["ROC", "PR"])
@pytest.mark.parametrize("method", ["interpolation", "minoring", "majoring"])
@pytest.mark.parametrize("kind", ["plain", "near0", "near1"])
def test_bucketed_auc(data, weighted, curve, method, kind):
    w = data.weights.astype(np.float32) if weighted else None
    s = crowded(data, kind)
    ours, theirs = both(bm.AUC(curve=curve, summation_method=method),
                        keras.metrics.AUC(curve=curve, summation_method=method), data.labels, s, w)
    assert ours == pytest.approx(float(theirs), rel=RTOL, abs=1e-7)


def test_bucketed_auc_options(data):
    ours, theirs = both(bm.AUC(num_thresholds=17, from_logits=True), keras.metrics.AUC(num_thresholds=17, from_logits=True),
                        data.labels, data.logits[:, 0])
    assert ours == pytest.approx(float(theirs), rel=RTOL)
    ths = [0.1, 0.35, 0.4, 0.8]
    ours, theirs = both(bm.AUC(thresholds=ths, curve="PR"), keras.metrics.AUC(thresholds=ths, curve="PR"),
                        data.labels, data.scores)
    assert ours == pytest.approx(float(theirs), rel=RTOL)
    ties = bm.AUC()
    k = keras.metrics.AUC()
    ours, theirs = both(ties, k, data.labels, data.tied)
    assert ours == pytest.approx(float(theirs), rel=RTOL)
    cm = ties.confusion_at_thresholds()
    np.testing.assert_allclose(cm["true_positives"], np.asarray(k.true_positives), rtol=RTOL)
    np.testing.assert_allclose(cm["false_negatives"], np.asarray(k.false_negatives), rtol=RTOL)


def test_exact_auc_differs_from_bucketed_when_scores_crowd(data):
    """The reason to use num_thresholds=None: the 200-bucket value drifts when scores crowd near 1."""
    s = crowded(data, "near1")
    exact = bm.AUC(num_thresholds=None)
    exact.update_state(data.labels, s)
    bucketed = keras.metrics.AUC()
    bucketed.update_state(data.labels, s)
    assert abs(exact.result() - float(bucketed.result())) > 0.01


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_mean_based_metrics(data, weighted):
    w = data.weights.astype(np.float32) if weighted else None
    onehot = np.eye(data.classes, dtype=np.float32)[data.cls]
    probs32 = data.probs.astype(np.float32)
    t2 = np.stack([data.target, data.pred * 0.5], 1)
    p2 = np.stack([data.pred, data.target], 1)
    cases = [
        (bm.Accuracy(), keras.metrics.Accuracy(), data.cls, data.logits.argmax(1)),
        (bm.BinaryAccuracy(threshold=0.3), keras.metrics.BinaryAccuracy(threshold=0.3), data.labels, data.scores),
        (bm.CategoricalAccuracy(), keras.metrics.CategoricalAccuracy(), onehot, probs32),
        (bm.SparseCategoricalAccuracy(), keras.metrics.SparseCategoricalAccuracy(), data.cls, data.logits),
        (bm.SparseTopKCategoricalAccuracy(k=3), keras.metrics.SparseTopKCategoricalAccuracy(k=3), data.cls, data.logits),
        (bm.MeanSquaredError(), keras.metrics.MeanSquaredError(), t2, p2),
        (bm.MeanAbsoluteError(), keras.metrics.MeanAbsoluteError(), t2, p2),
        (bm.RootMeanSquaredError(), keras.metrics.RootMeanSquaredError(), data.target, data.pred),
        (bm.BinaryCrossentropy(), keras.metrics.BinaryCrossentropy(), data.labels[:, None].astype(np.float32),
         data.scores[:, None]),
        (bm.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
         keras.metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
         data.labels[:, None].astype(np.float32), data.logits[:, :1]),
        (bm.SparseCategoricalCrossentropy(), keras.metrics.SparseCategoricalCrossentropy(), data.cls, probs32),
        (bm.SparseCategoricalCrossentropy(from_logits=True),
         keras.metrics.SparseCategoricalCrossentropy(from_logits=True), data.cls, data.logits),
    ]
    for ours, theirs, y_true, y_pred in cases:
        got, want = both(ours, theirs, y_true, y_pred, w)
        assert got == pytest.approx(float(want), rel=RTOL), ours.name


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_confusion_metrics(data, weighted):
    w = data.weights.astype(np.float32) if weighted else None
    ths = [0.3, 0.5, 0.7]
    for ours, theirs in [(bm.Precision(thresholds=ths), keras.metrics.Precision(thresholds=ths)),
                         (bm.Recall(thresholds=ths), keras.metrics.Recall(thresholds=ths))]:
        got, want = both(ours, theirs, data.labels, data.scores, w)
        np.testing.assert_allclose(got, want, rtol=RTOL)
    onehot = np.eye(data.classes, dtype=np.float32)[data.cls]
    probs32 = data.probs.astype(np.float32)
    got, want = both(bm.Recall(class_id=3), keras.metrics.Recall(class_id=3), onehot, probs32, w)
    assert got == pytest.approx(float(want), rel=RTOL)
    for average in [None, "micro", "macro", "weighted"]:
        got, want = both(bm.F1Score(average=average), keras.metrics.F1Score(average=average), onehot, probs32, w)
        np.testing.assert_allclose(got, want, rtol=RTOL)
    got, want = both(bm.F1Score(threshold=0.5), keras.metrics.F1Score(threshold=0.5),
                     data.labels[:, None].astype(np.float32), data.scores[:, None], w)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    got, want = both(bm.FBetaScore(beta=0.5, average="macro", threshold=0.4),
                     keras.metrics.FBetaScore(beta=0.5, average="macro", threshold=0.4), onehot, probs32, w)
    np.testing.assert_allclose(got, want, rtol=RTOL)


def test_mean_and_sum_match_keras(data):
    for ours, theirs in [(bm.Mean(), keras.metrics.Mean()), (bm.Sum(), keras.metrics.Sum())]:
        x = np.stack([data.target, data.pred], 1)
        for i in range(0, data.n, 700):
            ours.update_state(x[i : i + 700], data.weights[i : i + 700])
            theirs.update_state(x[i : i + 700], sample_weight=data.weights[i : i + 700])
        assert ours.result() == pytest.approx(float(theirs.result()), rel=RTOL)


def test_names_and_configs_line_up_with_keras():
    pairs = [(bm.AUC(num_thresholds=50, curve="PR"), keras.metrics.AUC(num_thresholds=50, curve="PR")),
             (bm.Precision(thresholds=0.3, class_id=1), keras.metrics.Precision(thresholds=0.3, class_id=1)),
             (bm.SparseTopKCategoricalAccuracy(k=3), keras.metrics.SparseTopKCategoricalAccuracy(k=3)),
             (bm.F1Score(average="macro", threshold=0.5), keras.metrics.F1Score(average="macro", threshold=0.5))]
    for ours, theirs in pairs:
        kc = theirs.get_config()
        for key, value in ours.get_config().items():
            if key in kc and key not in ("dtype", "name"):  # Keras makes names unique
                assert kc[key] == value, (ours.name, key)
