"""Issue 17 items 5-8: the C++ metric engine never crashes, never returns a finite wrong value.

Item 5 (sizes), 6 (one rule for non-finite inputs: a ValueError naming the argument and the
element), 7 (mixed signed/unsigned labels compare by value), 8 (a rejected batch leaves the
state as it was, under threads too; set_state refuses arrays of mismatched lengths). The
crash-prone calls run in a subprocess first, so a regression shows as a failed test, not as a
dead test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import pytest

import bridge.metrics as bm

HUGE = [2**32, 3037000500, 2**31, 2**63, 2**64]


def _canary(code):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))  # the bridge under test, not a checkout in cwd
    # `python -c` puts cwd first on sys.path: run elsewhere so a checkout's bridge/ cannot shadow it
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tempfile.gettempdir())
    assert done.returncode == 0, f"crashed ({done.returncode}): {done.stderr[-3000:]}"
    return done.stdout


def test_unreasonable_sizes_fail_at_construction_in_a_subprocess():
    out = _canary(
        """
        import numpy as np, bridge.metrics as bm
        from bridge import _metrics_core as core
        calls = [
            lambda: bm.ConfusionMatrix(num_classes=2**32), lambda: bm.ConfusionMatrix(3037000500),
            lambda: bm.ExpectedCalibrationError(num_bins=1431655766), lambda: bm.AUC(num_thresholds=2**40),
            lambda: core.ConfusionState(3037000500), lambda: core.ConfusionState(2**32),
            lambda: core.ConfusionState(-5), lambda: core.CalibrationState(1431655766),
            lambda: core.CalibrationState(2**40), lambda: core.CalibrationState(0),
        ]
        for make in calls:
            try:
                m = make()
            except (ValueError, MemoryError, TypeError) as e:
                print(type(e).__name__)
                continue
            m.update([0], [1])  # reached only if construction wrongly succeeded
            print("constructed")
        """
    )
    assert out.split() == ["ValueError"] * 10


@pytest.mark.parametrize("size", HUGE)
def test_confusion_matrix_size_is_checked(size):
    with pytest.raises(ValueError, match="num_classes.*too large"):
        bm.ConfusionMatrix(num_classes=size)


def test_calibration_bins_are_checked():
    with pytest.raises(ValueError, match="num_bins.*too large"):
        bm.ExpectedCalibrationError(num_bins=1431655766)


# -- 6. one rule for non-finite inputs --------------------------------------------------------------
def _all_metric_calls():
    """(metric factory, y_true, y_pred) of valid finite batches; y_pred is the float argument."""
    p = np.array([0.2, 0.7, 0.9])
    lab = np.array([0, 1, 1])
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    logits = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    return [
        (bm.Accuracy, p, p), (bm.BinaryAccuracy, lab, p), (bm.CategoricalAccuracy, probs, probs),
        (bm.SparseCategoricalAccuracy, lab, probs), (lambda: bm.SparseTopKCategoricalAccuracy(k=1), lab, probs),
        (bm.Precision, lab, p), (bm.Recall, lab, p), (bm.F1Score, lab, probs), (lambda: bm.F1Score(threshold=0.5), lab, p),
        (lambda: bm.ConfusionMatrix(2), lab, probs), (bm.AUC, lab, p), (lambda: bm.AUC(num_thresholds=None), lab, p),
        (lambda: bm.AUC(from_logits=True), lab, logits[:, 0]), (bm.MeanSquaredError, p, p), (bm.MeanAbsoluteError, p, p),
        (bm.RootMeanSquaredError, p, p), (bm.BinaryCrossentropy, lab, p),
        (lambda: bm.BinaryCrossentropy(from_logits=True), lab, logits[:, 0]),
        (bm.SparseCategoricalCrossentropy, lab, probs),
        (lambda: bm.SparseCategoricalCrossentropy(from_logits=True), lab, logits),
        (bm.ExpectedCalibrationError, lab, probs),
    ]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("case", range(21))
def test_non_finite_scores_are_refused_by_every_metric(case, bad):
    make, y_true, y_pred = _all_metric_calls()[case]
    metric = make()
    metric.update_state(y_true, y_pred)  # finite batch: accepted
    before = metric.get_state()
    for where in (0, -1):
        hostile = np.array(y_pred, dtype=np.float64)
        hostile.flat[where] = bad
        with pytest.raises(ValueError, match=r"must hold finite numbers \(no NaN or inf\)\. Received: y_pred\["):
            metric.update_state(y_true, hostile)
        weights = np.ones(len(y_pred))
        weights[where] = bad
        with pytest.raises(ValueError, match="sample_weight"):
            metric.update_state(y_true, y_pred, weights)
    after = metric.get_state()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_sparse_crossentropy_from_logits_with_nan_is_refused():
    metric = bm.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(ValueError, match=r"y_pred\[0, 1\]=nan"):
        metric.update_state([0], [[0.0, np.nan]])
    assert metric.result() == 0.0


def test_non_finite_float_targets_are_refused():
    for metric in (bm.MeanSquaredError(), bm.MeanAbsoluteError(), bm.Accuracy(), bm.CategoricalAccuracy()):
        with pytest.raises(ValueError, match="y_true"):
            metric.update_state(np.array([[np.nan, 1.0]]), np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="y_true"):
        bm.BinaryCrossentropy().update_state(np.array([np.nan]), np.array([0.5]))
    with pytest.raises(ValueError, match="values"):
        bm.Mean().update_state(np.array([1.0, np.inf]))


# -- 7. signed/unsigned labels compare by value -----------------------------------------------------
def test_accuracy_compares_uint64_and_int64_by_value():
    metric = bm.Accuracy()
    metric.update_state(np.array([2**64 - 1], np.uint64), np.array([-1], np.int64))
    assert metric.result() == 0.0
    metric = bm.Accuracy()
    metric.update_state(np.array([3, 2**63, 7], np.uint64), np.array([3, -(2**63), 7], np.int64))
    assert metric.result() == pytest.approx(2 / 3)
    metric = bm.Accuracy()
    metric.update_state(np.array([2**64 - 1, 5], np.dtype(">u8")), np.array([2**64 - 1, 4], np.uint64))
    assert metric.result() == 0.5
    metric = bm.Accuracy()  # uint64 against int32 and bool, in both argument orders
    metric.update_state(np.array([1, 0, 2**64 - 2], np.uint64), np.array([True, False, True]))
    metric.update_state(np.array([-2, 5], np.int32), np.array([2**64 - 2, 5], np.uint64))
    assert metric.result() == pytest.approx(3 / 5)


def test_uint64_class_indices_beyond_int64_are_refused_naming_the_value():
    with pytest.raises(ValueError, match=r"y_true\.max\(\)=18446744073709551615"):
        bm.SparseCategoricalAccuracy().update_state(np.array([2**64 - 1], np.uint64), [[0.1, 0.9]])


# -- 8. rejected batches under threads; set_state lengths -----------------------------------------
def test_rejected_first_batch_does_not_wipe_a_concurrent_valid_update():
    rows = 2_000_000  # long enough to be counting (GIL released) when the valid batch arrives
    bad_labels = np.zeros((rows, 3), np.int64)
    bad_labels[-1, 0] = 7  # rejected, but only after the whole batch was read
    scores = np.random.RandomState(0).rand(rows, 3)
    good_labels = np.eye(3, dtype=np.int64)[[0, 1, 2, 1]]
    good_scores = np.random.RandomState(1).rand(4, 3)
    reference = bm.F1Score(threshold=0.5)
    reference.update_state(good_labels, good_scores)
    expected = reference.get_state()
    for _ in range(10):
        metric = bm.F1Score(threshold=0.5)
        start = threading.Barrier(2)
        errors = []

        def rejected():
            start.wait()
            try:
                metric.update_state(bad_labels, scores)
            except ValueError as error:
                errors.append(error)

        def valid():
            start.wait()
            time.sleep(0.005)  # the rejected first batch is being counted by now
            metric.update_state(good_labels, good_scores)

        threads = [threading.Thread(target=rejected), threading.Thread(target=valid)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(errors) == 1
        state = metric.get_state()
        assert all(np.array_equal(state[k], expected[k]) for k in expected)


def test_f1_set_state_with_mismatched_lengths_is_refused():
    metric = bm.F1Score()
    with pytest.raises(ValueError, match="four arrays of one length"):
        metric.set_state({"true_positives": np.ones(3), "false_positives": np.ones(5),
                          "false_negatives": np.ones(4), "support": np.ones(4)})
    assert metric.get_state()["true_positives"].shape == (0,)


def test_fixed_size_set_state_is_not_re_split():
    metric = bm.Precision(thresholds=[0.3, 0.6])
    with pytest.raises(ValueError, match="sizes"):
        metric.set_state({"true_positives": np.ones(1), "false_positives": np.ones(3),
                          "true_negatives": np.ones(2), "false_negatives": np.ones(2)})


@pytest.mark.parametrize("case", range(21))
def test_rejected_batches_never_change_state_under_threads(case):
    """4 threads alternate a valid batch and a rejected one (NaN in its last score) on one metric:
    the state ends exactly as the valid batches alone make it, whatever the interleaving."""
    make, y_true, y_pred = _all_metric_calls()[case]
    hostile = np.array(y_pred, dtype=np.float64)
    hostile.flat[-1] = np.nan
    metric, reference = make(), make()
    threads_n, rounds = 4, 30
    for _ in range(threads_n * rounds):
        reference.update_state(y_true, y_pred)
    start = threading.Barrier(threads_n)
    rejected = []

    def worker():
        start.wait()
        for _ in range(rounds):
            metric.update_state(y_true, y_pred)
            try:
                metric.update_state(y_true, hostile)
            except ValueError:
                rejected.append(1)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rejected) == threads_n * rounds
    got, want = metric.get_state(), reference.get_state()
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(np.sort(np.ravel(got[key])), np.sort(np.ravel(want[key])), err_msg=key)
