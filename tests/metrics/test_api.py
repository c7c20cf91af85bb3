"""The metric protocol: config round trips, pickling, state, merging, resets, threads, no TensorFlow."""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import bridge.metrics as bm

# (factory, how to make a batch from Data at rows [i, j))
METRICS = {
    "accuracy": (lambda: bm.Accuracy(), lambda d, s: (d.cls[s], d.logits[s].argmax(1))),
    "binary_accuracy": (lambda: bm.BinaryAccuracy(threshold=0.4), lambda d, s: (d.labels[s], d.scores[s])),
    "categorical_accuracy": (lambda: bm.CategoricalAccuracy(),
                             lambda d, s: (np.eye(d.classes)[d.cls[s]], d.probs[s])),
    "sparse_categorical_accuracy": (lambda: bm.SparseCategoricalAccuracy(), lambda d, s: (d.cls[s], d.logits[s])),
    "top_k": (lambda: bm.SparseTopKCategoricalAccuracy(k=2), lambda d, s: (d.cls[s], d.logits[s])),
    "precision": (lambda: bm.Precision(thresholds=[0.3, 0.6]), lambda d, s: (d.labels[s], d.scores[s])),
    "recall": (lambda: bm.Recall(), lambda d, s: (d.labels[s], d.scores[s])),
    "f1": (lambda: bm.F1Score(average="macro"), lambda d, s: (d.cls[s], d.probs[s])),
    "confusion_matrix": (lambda: bm.ConfusionMatrix(7), lambda d, s: (d.cls[s], d.logits[s])),
    "auc": (lambda: bm.AUC(curve="PR"), lambda d, s: (d.labels[s], d.scores[s])),
    "auc_exact": (lambda: bm.AUC(num_thresholds=None), lambda d, s: (d.labels[s], d.scores[s])),
    "mean": (lambda: bm.Mean(), lambda d, s: (d.target[s],)),
    "sum": (lambda: bm.Sum(), lambda d, s: (d.target[s],)),
    "mse": (lambda: bm.MeanSquaredError(), lambda d, s: (d.target[s], d.pred[s])),
    "mae": (lambda: bm.MeanAbsoluteError(), lambda d, s: (d.target[s], d.pred[s])),
    "rmse": (lambda: bm.RootMeanSquaredError(), lambda d, s: (d.target[s], d.pred[s])),
    "bce": (lambda: bm.BinaryCrossentropy(), lambda d, s: (d.labels[s], d.scores[s])),
    "scce": (lambda: bm.SparseCategoricalCrossentropy(from_logits=True), lambda d, s: (d.cls[s], d.logits[s])),
    "ece": (lambda: bm.ExpectedCalibrationError(num_bins=10), lambda d, s: (d.labels[s], d.scores[s])),
}
IDS = list(METRICS)


def fill(metric, batcher, data, start, stop, step=211, weighted=False):
    for i in range(start, stop, step):
        s = slice(i, min(i + step, stop))
        args = batcher(data, s)
        sw = data.weights[s] if weighted else None
        metric.update_state(*args, sample_weight=sw)
    return metric


def same(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("key", IDS)
def test_config_round_trip_and_pickle(key, data):
    make, batcher = METRICS[key]
    m = fill(make(), batcher, data, 0, 1000, weighted=True)
    clone = type(m).from_config(m.get_config())
    assert clone.get_config() == m.get_config()
    assert np.all(np.asarray(clone.result()) == 0) or key in ("rmse",)
    restored = pickle.loads(pickle.dumps(m))
    same(restored.result(), m.result())
    assert restored.get_config() == m.get_config()


@pytest.mark.parametrize("key", IDS)
def test_merge_equals_one_pass(key, data):
    make, batcher = METRICS[key]
    whole = fill(make(), batcher, data, 0, 3000, weighted=True)
    parts = [fill(make(), batcher, data, a, b, weighted=True) for a, b in [(0, 1000), (1000, 1700), (1700, 3000)]]
    merged = make()
    merged.merge_state(parts)
    same(merged.result(), whole.result())
    first = parts[0]
    first.merge_state(parts[1])
    first.merge_state([parts[2]])
    same(first.result(), whole.result())


@pytest.mark.parametrize("key", IDS)
def test_state_round_trip_and_sum_across_workers(key, data):
    make, batcher = METRICS[key]
    whole = fill(make(), batcher, data, 0, 2000)
    a = fill(make(), batcher, data, 0, 1200)
    b = fill(make(), batcher, data, 1200, 2000)
    sa, sb = a.get_state(), b.get_state()
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in sa.values())
    fresh = make()
    if key == "auc_exact":  # variable-length state: concatenate instead of adding
        combined = {k: np.concatenate([sa[k], sb[k]]) for k in sa}
    else:
        combined = {k: sa[k] + sb[k] for k in sa}
    fresh.set_state(combined)
    same(fresh.result(), whole.result())
    other = make()
    other.set_state(whole.get_state())
    same(other.result(), whole.result())


@pytest.mark.parametrize("key", IDS)
def test_reset(key, data):
    make, batcher = METRICS[key]
    m = fill(make(), batcher, data, 0, 500)
    empty = make().result()
    m.reset_state()
    same(m.result(), empty)
    fill(m, batcher, data, 0, 500)
    same(m.result(), fill(make(), batcher, data, 0, 500).result())


def test_merge_rejects_other_types_and_configs():
    with pytest.raises(TypeError, match="merge_state"):
        bm.Precision().merge_state(bm.Recall())
    with pytest.raises(ValueError, match="same configuration"):
        bm.Precision(thresholds=0.3).merge_state(bm.Precision(thresholds=0.6))
    with pytest.raises(ValueError, match="keys"):
        bm.Mean().set_state({"total": 1.0})


def test_constructor_arguments_are_validated():
    with pytest.raises(ValueError, match="num_thresholds"):
        bm.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="curve"):
        bm.AUC(curve="XY")
    with pytest.raises(ValueError, match="summation_method"):
        bm.AUC(num_thresholds=None, summation_method="minoring")
    with pytest.raises(ValueError, match="average"):
        bm.F1Score(average="samples")
    with pytest.raises(ValueError, match="num_classes"):
        bm.ConfusionMatrix(1)
    with pytest.raises(ValueError, match="k"):
        bm.SparseTopKCategoricalAccuracy(k=0)
    with pytest.raises(ValueError, match="thresholds"):
        bm.Precision(thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="top_k"):
        bm.Precision(top_k=2)
    with pytest.raises(ValueError, match="multi_label"):
        bm.AUC(multi_label=True)


def test_large_batches_split_across_threads_give_the_same_result(data):
    rng = np.random.RandomState(5)
    n = 400_000
    logits = rng.randn(n, 10).astype(np.float32)
    labels = rng.randint(0, 10, n)
    results = []
    original = bm.get_num_threads()
    for threads in (1, 2):
        bm.set_num_threads(threads)
        try:
            m = bm.SparseCategoricalCrossentropy(from_logits=True)
            m.update_state(labels, logits)
            c = bm.ConfusionMatrix(10)
            c.update_state(labels, logits)
            results.append((m.result(), c.result()))
        finally:
            bm.set_num_threads(original)
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_array_equal(results[0][1], results[1][1])
    with pytest.raises(ValueError):
        bm.set_num_threads(0)


def test_concurrent_updates_from_python_threads(data):
    m = bm.AUC(num_thresholds=None)
    acc = bm.BinaryAccuracy()

    def work(k):
        for i in range(k * 300, (k + 1) * 300, 30):
            m.update_state(data.labels[i : i + 30], data.scores[i : i + 30])
            acc.update_state(data.labels[i : i + 30], data.scores[i : i + 30])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ref = bm.AUC(num_thresholds=None)
    ref.update_state(data.labels[:2400], data.scores[:2400])
    assert m.result() == pytest.approx(ref.result(), rel=1e-12)
    assert acc.result() == pytest.approx(np.mean((data.scores[:2400] > 0.5) == data.labels[:2400]), rel=1e-12)


def test_import_does_not_load_tensorflow(tmp_path):
    code = ("import sys, bridge.metrics as m; m.AUC().update_state([0, 1], [0.2, 0.8]); "
            "bad = [k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'keras', 'torch')]; "
            "assert not bad, bad")
    # Run outside the checkout, so the subprocess imports the installed package like this one.
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=tmp_path)


def test_public_names():
    assert set(bm.__all__) >= {
        "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
        "SparseTopKCategoricalAccuracy", "Precision", "Recall", "F1Score", "ConfusionMatrix", "AUC", "Mean",
        "Sum", "MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError", "BinaryCrossentropy",
        "SparseCategoricalCrossentropy", "ExpectedCalibrationError",
    }
    for name in bm.__all__:
        assert getattr(bm, name).__doc__
