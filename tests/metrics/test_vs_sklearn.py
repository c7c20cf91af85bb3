"""Streaming results over many batches equal scikit-learn on the concatenated data (rtol 1e-9)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

import bridge.metrics as bm

RTOL = 1e-9
WEIGHTED = pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])


def _w(data, weighted):
    return data.weights if weighted else None


@WEIGHTED
def test_accuracy_metrics(data, feed, weighted):
    w = _w(data, weighted)
    pred_cls = data.logits.argmax(1)
    assert feed(bm.Accuracy(), data.cls, pred_cls, w) == pytest.approx(
        skm.accuracy_score(data.cls, pred_cls, sample_weight=w), rel=RTOL)
    assert feed(bm.SparseCategoricalAccuracy(), data.cls, data.logits, w) == pytest.approx(
        skm.accuracy_score(data.cls, pred_cls, sample_weight=w), rel=RTOL)
    onehot = np.eye(data.classes, dtype=np.float32)[data.cls]
    assert feed(bm.CategoricalAccuracy(), onehot, data.probs, w) == pytest.approx(
        skm.accuracy_score(data.cls, pred_cls, sample_weight=w), rel=RTOL)
    assert feed(bm.BinaryAccuracy(), data.labels, data.scores, w) == pytest.approx(
        skm.accuracy_score(data.labels, data.scores > 0.5, sample_weight=w), rel=RTOL)
    for k in (1, 3):
        assert feed(bm.SparseTopKCategoricalAccuracy(k=k), data.cls, data.logits, w) == pytest.approx(
            skm.top_k_accuracy_score(data.cls, data.logits, k=k, sample_weight=w,
                                     labels=np.arange(data.classes)), rel=RTOL)


@WEIGHTED
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_precision_recall_f1_binary(data, feed, weighted, threshold):
    w = _w(data, weighted)
    pred = data.scores > threshold
    kw = dict(sample_weight=w, zero_division=0)
    assert feed(bm.Precision(thresholds=threshold), data.labels, data.scores, w) == pytest.approx(
        skm.precision_score(data.labels, pred, **kw), rel=RTOL)
    assert feed(bm.Recall(thresholds=threshold), data.labels, data.scores, w) == pytest.approx(
        skm.recall_score(data.labels, pred, **kw), rel=RTOL)
    f1 = feed(bm.F1Score(threshold=threshold), data.labels, data.scores, w)
    assert f1[0] == pytest.approx(skm.f1_score(data.labels, pred, **kw), rel=RTOL)
    f2 = feed(bm.FBetaScore(beta=2.0, threshold=threshold, average="micro"), data.labels, data.scores, w)
    assert f2 == pytest.approx(skm.fbeta_score(data.labels, pred, beta=2.0, **kw), rel=RTOL)


def test_precision_recall_thresholds_list_and_class_id(data, feed):
    ths = [0.2, 0.5, 0.8]
    prec = feed(bm.Precision(thresholds=ths), data.labels, data.scores)
    rec = feed(bm.Recall(thresholds=ths), data.labels, data.scores)
    for i, t in enumerate(ths):
        assert prec[i] == pytest.approx(skm.precision_score(data.labels, data.scores > t), rel=RTOL)
        assert rec[i] == pytest.approx(skm.recall_score(data.labels, data.scores > t), rel=RTOL)
    onehot = np.eye(data.classes, dtype=np.int64)[data.cls]
    got = feed(bm.Precision(class_id=2), onehot, data.probs.astype(np.float32))
    assert got == pytest.approx(skm.precision_score(data.cls == 2, data.probs[:, 2].astype(np.float32) > 0.5),
                                rel=RTOL)


@WEIGHTED
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
def test_f1_multiclass(data, feed, weighted, average):
    w = _w(data, weighted)
    got = feed(bm.F1Score(average=average), data.cls, data.probs, w)
    want = skm.f1_score(data.cls, data.probs.argmax(1), average=average, sample_weight=w,
                        labels=np.arange(data.classes), zero_division=0)
    np.testing.assert_allclose(got, want, rtol=RTOL)


@WEIGHTED
def test_confusion_matrix(data, feed, weighted):
    w = _w(data, weighted)
    want = skm.confusion_matrix(data.cls, data.logits.argmax(1), labels=np.arange(data.classes), sample_weight=w)
    np.testing.assert_allclose(feed(bm.ConfusionMatrix(data.classes), data.cls, data.logits, w), want, rtol=RTOL)
    np.testing.assert_allclose(feed(bm.ConfusionMatrix(data.classes), data.cls, data.logits.argmax(1), w), want,
                               rtol=RTOL)
    binary = skm.confusion_matrix(data.labels, data.scores > 0.5, labels=[0, 1], sample_weight=w)
    np.testing.assert_allclose(feed(bm.ConfusionMatrix(2), data.labels, data.scores, w), binary, rtol=RTOL)


@WEIGHTED
@pytest.mark.parametrize("scores", ["scores", "tied"])
def test_exact_auc(data, feed, weighted, scores):
    w = _w(data, weighted)
    s = getattr(data, scores)
    roc = feed(bm.AUC(num_thresholds=None), data.labels, s, w)
    ap = feed(bm.AUC(num_thresholds=None, curve="PR"), data.labels, s, w)
    assert roc == pytest.approx(skm.roc_auc_score(data.labels, s, sample_weight=w), rel=RTOL)
    assert ap == pytest.approx(skm.average_precision_score(data.labels, s, sample_weight=w), rel=RTOL)


def test_exact_auc_logits_and_float64(data, feed):
    logit = np.log(data.scores / (1 - data.scores)).astype(np.float64)
    roc = feed(bm.AUC(num_thresholds=None, from_logits=True), data.labels, logit)
    assert roc == pytest.approx(skm.roc_auc_score(data.labels, logit), rel=RTOL)


@WEIGHTED
def test_regression(data, feed, weighted):
    w = _w(data, weighted)
    t, p = data.target.astype(np.float64), data.pred.astype(np.float64)
    mse = skm.mean_squared_error(t, p, sample_weight=w)
    assert feed(bm.MeanSquaredError(), data.target, data.pred, w) == pytest.approx(mse, rel=RTOL)
    assert feed(bm.RootMeanSquaredError(), data.target, data.pred, w) == pytest.approx(np.sqrt(mse), rel=RTOL)
    assert feed(bm.MeanAbsoluteError(), data.target, data.pred, w) == pytest.approx(
        skm.mean_absolute_error(t, p, sample_weight=w), rel=RTOL)
    two_d = np.stack([data.target, data.pred], 1)
    assert feed(bm.MeanSquaredError(), two_d, two_d[:, ::-1].copy(), w) == pytest.approx(mse, rel=RTOL)


@WEIGHTED
def test_log_losses(data, feed, weighted):
    w = _w(data, weighted)
    s64 = data.scores.astype(np.float64)
    assert feed(bm.BinaryCrossentropy(), data.labels, data.scores, w) == pytest.approx(
        skm.log_loss(data.labels, s64, sample_weight=w), rel=RTOL)
    assert feed(bm.BinaryCrossentropy(), data.labels.astype(np.float32), data.scores, w) == pytest.approx(
        skm.log_loss(data.labels, s64, sample_weight=w), rel=RTOL)
    logit = np.log(s64 / (1 - s64))
    assert feed(bm.BinaryCrossentropy(from_logits=True), data.labels, logit, w) == pytest.approx(
        skm.log_loss(data.labels, s64, sample_weight=w), rel=1e-8)
    labels = np.arange(data.classes)
    want = skm.log_loss(data.cls, data.probs, sample_weight=w, labels=labels)
    assert feed(bm.SparseCategoricalCrossentropy(), data.cls, data.probs, w) == pytest.approx(want, rel=RTOL)
    logits64 = data.logits.astype(np.float64)
    e = np.exp(logits64 - logits64.max(1, keepdims=True))
    want = skm.log_loss(data.cls, e / e.sum(1, keepdims=True), sample_weight=w, labels=labels)
    assert feed(bm.SparseCategoricalCrossentropy(from_logits=True), data.cls, data.logits, w) == pytest.approx(
        want, rel=RTOL)


@WEIGHTED
def test_mean_and_sum(data, weighted):
    w = _w(data, weighted)
    m, s = bm.Mean(), bm.Sum()
    for i in range(0, data.n, 500):
        sw = None if w is None else w[i : i + 500]
        m.update_state(data.target[i : i + 500], sw)
        s.update_state(data.target[i : i + 500], sw)
    t = data.target.astype(np.float64)
    assert m.result() == pytest.approx(np.average(t, weights=w), rel=RTOL)
    assert s.result() == pytest.approx(np.sum(t * (1 if w is None else w)), rel=RTOL)


def test_expected_calibration_error(data, feed):
    def reference(conf, hit, bins):
        idx = np.minimum((conf * bins).astype(int), bins - 1)
        gaps = [abs(hit[idx == b].sum() - conf[idx == b].sum()) for b in range(bins)]
        return sum(gaps) / len(conf)

    s64 = data.scores.astype(np.float64)
    assert feed(bm.ExpectedCalibrationError(10), data.labels, data.scores) == pytest.approx(
        reference(s64, data.labels.astype(float), 10), rel=RTOL)
    conf = data.probs.max(1)
    hit = (data.probs.argmax(1) == data.cls).astype(float)
    assert feed(bm.ExpectedCalibrationError(15), data.cls, data.probs) == pytest.approx(
        reference(conf, hit, 15), rel=RTOL)


# -- edge cases -------------------------------------------------------------------------------

def test_single_row_and_zero_weights():
    m = bm.AUC(num_thresholds=None)
    m.update_state([1], [0.7])
    m.update_state([0], [0.2])
    assert m.result() == 1.0
    m.update_state([0], [0.9], sample_weight=[0.0])
    assert m.result() == 1.0
    acc = bm.SparseCategoricalAccuracy()
    acc.update_state([2], [[0.1, 0.2, 0.7]])
    assert acc.result() == 1.0
    acc.update_state([0], [[0.1, 0.2, 0.7]], sample_weight=0.0)
    assert acc.result() == 1.0
    mean = bm.Mean()
    mean.update_state([5.0], sample_weight=[0.0])
    assert mean.result() == 0.0  # no weight seen: 0, as Keras


def test_undefined_results_follow_keras():
    for m in (bm.AUC(), bm.AUC(num_thresholds=None), bm.AUC(curve="PR"), bm.AUC(num_thresholds=None, curve="PR")):
        assert m.result() == 0.0  # no updates
        m.update_state([0, 0, 0], [0.1, 0.5, 0.9])
        assert m.result() == 0.0  # one class
    roc = bm.AUC(num_thresholds=None)
    roc.update_state([1, 1], [0.1, 0.9])
    assert roc.result() == 0.0  # no negatives: undefined ROC
    ap = bm.AUC(num_thresholds=None, curve="PR")
    ap.update_state([1, 1], [0.1, 0.9])
    assert ap.result() == pytest.approx(skm.average_precision_score([1, 1], [0.1, 0.9]))
    assert bm.Precision().result() == 0.0
    assert bm.Accuracy().result() == 0.0
    assert bm.F1Score(average="macro").result() == 0.0


def test_ties_at_threshold_and_first_argmax():
    p = bm.Precision(thresholds=0.5)
    p.update_state([1, 0], [0.5, 0.5])  # strict ">": neither is predicted positive
    assert p.result() == 0.0
    acc = bm.SparseCategoricalAccuracy()
    acc.update_state([0, 1], [[0.5, 0.5], [0.5, 0.5]])  # argmax picks index 0
    assert acc.result() == 0.5
    top = bm.SparseTopKCategoricalAccuracy(k=1)
    top.update_state([1], [[0.5, 0.5, 0.1]])  # in_top_k: ties count as inside
    assert top.result() == 1.0
