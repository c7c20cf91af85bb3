"""Input handling: accepted dtypes and layouts, and a named exception for every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest

import bridge.metrics as bm

SCORES = np.array([0.1, 0.8, 0.4, 0.9], dtype=np.float32)
LABELS = np.array([0, 1, 1, 0])
LOGITS = np.array([[2.0, 1.0, 0.1], [0.2, 0.1, 3.0], [0.5, 2.5, 0.0]], dtype=np.float32)
CLS = np.array([0, 2, 0])


def auc_exact(y, s, w=None):
    m = bm.AUC(num_thresholds=None)
    m.update_state(y, s, w)
    return m.result()


@pytest.mark.parametrize("label_dtype", [np.bool_, np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint32,
                                         np.uint64, np.float32, np.float64])
@pytest.mark.parametrize("score_dtype", [np.float16, np.float32, np.float64, np.int32])
def test_dtype_matrix_binary(label_dtype, score_dtype):
    y = LABELS.astype(label_dtype)
    s = (SCORES * 10).astype(score_dtype) if score_dtype == np.int32 else SCORES.astype(score_dtype)
    assert auc_exact(y, s) == pytest.approx(auc_exact(LABELS, s.astype(np.float64)))


@pytest.mark.parametrize("label_dtype", [np.bool_, np.int8, np.uint16, np.int32, np.int64, np.uint64])
def test_dtype_matrix_class_index(label_dtype):
    y = np.array([0, 1, 1]).astype(label_dtype)
    m = bm.SparseCategoricalAccuracy()
    m.update_state(y, LOGITS)
    assert m.result() == pytest.approx(np.mean(LOGITS.argmax(1) == y.astype(int)))


@pytest.mark.parametrize("metric", [bm.SparseCategoricalAccuracy, bm.SparseCategoricalCrossentropy,
                                    lambda: bm.ConfusionMatrix(3), lambda: bm.SparseTopKCategoricalAccuracy(2)])
def test_float_class_indices_are_refused(metric):
    with pytest.raises(TypeError, match="class indices"):
        metric().update_state(CLS.astype(np.float32), LOGITS)


def test_non_contiguous_read_only_and_lists_match_contiguous():
    base = np.random.RandomState(0).rand(200, 3).astype(np.float32)
    y = (np.random.RandomState(1).rand(200) > 0.5).astype(np.int64)
    strided = base[:, 1]
    assert not strided.flags.c_contiguous
    ro = np.ascontiguousarray(strided)
    ro.setflags(write=False)
    fortran = np.asfortranarray(np.random.RandomState(2).rand(50, 4))
    want = auc_exact(y, np.ascontiguousarray(strided))
    assert auc_exact(y, strided) == want
    assert auc_exact(y, ro) == want
    assert auc_exact(y[::-1][::-1], strided[::-1][::-1]) == want
    assert auc_exact(list(y), strided.tolist()) == pytest.approx(want)
    big_endian = np.ascontiguousarray(strided).astype(">f4")
    assert auc_exact(y, big_endian) == want
    m1, m2 = bm.Mean(), bm.Mean()
    m1.update_state(fortran)
    m2.update_state(np.ascontiguousarray(fortran))
    assert m1.result() == m2.result()


def test_scalars_and_column_shapes():
    m = bm.Mean()
    m.update_state(3.0)
    m.update_state(np.float32(5.0), sample_weight=3)
    assert m.result() == pytest.approx((3 + 15) / 4)
    a, b = bm.BinaryAccuracy(), bm.BinaryAccuracy()
    a.update_state(LABELS[:, None], SCORES)  # (N, 1) vs (N,)
    b.update_state(LABELS, SCORES[:, None])
    assert a.result() == b.result() == 0.5
    c = bm.SparseCategoricalAccuracy()
    c.update_state(CLS[:, None], LOGITS, sample_weight=np.ones((3, 1)))
    assert c.result() == pytest.approx(2 / 3)


BAD = [
    # (metric factory, y_true, y_pred, sample_weight, exception, message fragment)
    (bm.Precision, LABELS, SCORES[:3], None, ValueError, "same shape"),
    (bm.SparseCategoricalAccuracy, CLS[:2], LOGITS, None, ValueError, "same number of rows"),
    (bm.SparseCategoricalAccuracy, CLS, LOGITS[:, 0], None, ValueError, r"\(batch_size, num_classes\)"),
    (bm.Precision, LABELS, SCORES.reshape(2, 2, 1), None, ValueError, "rank"),
    (bm.Precision, 1, 0.5, None, ValueError, "rank"),
    (bm.Precision, LABELS, np.array([0.1, np.nan, 0.2, 0.3]), None, ValueError, r"y_pred\[1\]=nan"),
    (bm.AUC, LABELS, np.array([0.1, np.inf, 0.2, 0.3]), None, ValueError, "finite"),
    (lambda: bm.AUC(num_thresholds=None), LABELS, np.array([0.1, -np.inf, 0.2, 0.3]), None, ValueError, "-inf"),
    (bm.AUC, LABELS, SCORES + 1, None, ValueError, "from_logits"),
    (bm.BinaryCrossentropy, LABELS, SCORES - 1, None, ValueError, "probabilities"),
    (bm.Recall, np.array([0, 1, 2, 0]), SCORES, None, ValueError, r"binary labels .*y_true\[2\]=2"),
    (bm.Recall, np.array([0, 1, -1, 0]), SCORES, None, ValueError, "binary labels"),
    (bm.Recall, np.array([0, 1, 0.5, 0]), SCORES, None, ValueError, "binary labels"),
    (bm.SparseCategoricalAccuracy, np.array([0, 3, 1]), LOGITS, None, ValueError, r"\[0, 3\).*y_true\[1\]=3"),
    (lambda: bm.SparseCategoricalCrossentropy(from_logits=True), np.array([0, -1, 1]), LOGITS, None, ValueError,
     "class indices"),
    (lambda: bm.ConfusionMatrix(3), CLS, np.array([0, 1, 5]), None, ValueError, r"y_pred\[2\]=5"),
    (lambda: bm.ConfusionMatrix(3), CLS, SCORES[:3], None, ValueError, "num_classes=3"),
    (bm.Precision, LABELS, SCORES, np.array([1.0, -1.0, 1.0, 1.0]), ValueError, "non-negative"),
    (bm.Precision, LABELS, SCORES, np.array([1.0, np.nan, 1.0, 1.0]), ValueError, "sample_weight"),
    (bm.Precision, LABELS, SCORES, np.ones(3), ValueError, "one weight per row"),
    (bm.Precision, LABELS, SCORES, np.array(["a"] * 4), TypeError, "dtype"),
    (bm.Precision, LABELS, np.array(["a", "b", "c", "d"]), None, TypeError, "dtype"),
    (bm.Precision, LABELS, np.array([0.1, 0.2, None, 0.4], dtype=object), None, TypeError, "object"),
    (bm.Precision, LABELS, np.array([1 + 1j] * 4), None, TypeError, "complex"),
    (bm.Precision, np.zeros(0, np.int64), np.zeros(0, np.float32), None, ValueError, "empty"),
    (bm.Precision, None, SCORES, None, TypeError, "None"),
    (bm.Precision, LABELS, "abcd", None, TypeError, "dtype"),
    (bm.Precision, LABELS, [[0.1], [0.2, 0.3]], None, TypeError, "array-like"),
    (bm.Accuracy, np.array([1, 2]), np.array([1.0, np.nan]), None, ValueError, "finite"),
    (bm.MeanSquaredError, np.array([1.0, np.nan]), np.array([1.0, 2.0]), None, ValueError, "y_true"),
    (lambda: bm.Precision(class_id=5), np.eye(3, dtype=int), np.eye(3, dtype=np.float32), None, ValueError,
     "class_id"),
    (bm.ExpectedCalibrationError, LABELS, SCORES * 2, None, ValueError, "probabilities"),
]


@pytest.mark.parametrize("make,y_true,y_pred,sw,exc,match", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_raises_and_leaves_state_unchanged(make, y_true, y_pred, sw, exc, match):
    m = make()
    good_y = CLS if isinstance(m, bm.SparseCategoricalAccuracy | bm.SparseCategoricalCrossentropy |
                               bm.ConfusionMatrix) else LABELS
    if isinstance(m, bm.Accuracy):
        m.update_state(np.array([1, 2]), np.array([1.0, 2.0]))
    elif isinstance(m, bm.MeanSquaredError):
        m.update_state(np.array([1.0, 3.0]), np.array([1.0, 2.0]))
    elif isinstance(m, bm.Precision) and m.class_id is not None:
        pass
    elif good_y is CLS:
        m.update_state(CLS, LOGITS)
    else:
        m.update_state(LABELS, SCORES)
    before = m.get_state()
    with pytest.raises(exc, match=match):
        m.update_state(y_true, y_pred, sw)
    after = m.get_state()
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_zero_copy_for_canonical_inputs():
    """Contiguous float32/float64 scores and int32/int64/bool labels are read in place: a
    batch far larger than free memory per call would otherwise show up as copies."""
    import tracemalloc

    y = (np.arange(2_000_000) % 2).astype(np.int32)
    s = np.linspace(0, 1, 2_000_000, dtype=np.float32)
    yb, s64 = y.astype(np.bool_), s.astype(np.float64)
    y64 = y.astype(np.int64)
    m = bm.BinaryAccuracy()
    tracemalloc.start()
    m.update_state(y, s)
    m.update_state(yb, s64)
    m.update_state(y64, s64)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 100_000  # numpy reports its allocations to tracemalloc; no 2M-element copy was made
