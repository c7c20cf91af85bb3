"""Fuzz: thousands of hostile calls into every metric never crash and never lie.

Hypothesis drives every metric's constructor, ``update_state``, ``merge_state`` and
``set_state`` with hostile sizes, dtypes (uint64, big-endian, float16, complex, strings),
layouts (Fortran order, strided, reversed, read-only) and non-finite values. Each case runs
in-process; ``test_crash_prone_paths_in_a_subprocess`` replays the paths that crashed the
interpreter before (sizes that overflow, set_state and merge with hostile arrays) in a child
process, so that a regression there is a failed test and not a dead test run.

The rules checked for every case:
* a call succeeds, or raises TypeError/ValueError (MemoryError for sizes) and then leaves
  the state exactly as it was;
* non-finite inputs are refused: an accepted update had only finite floats in every
  argument (one rule for all metrics: no NaN/inf is ever turned into a finite number);
* results stay finite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import bridge.metrics as bm  # noqa: E402

# >= 5,000 cases in all: 3,000 updates, 1,000 constructors, 1,000 merge/set_state.
UPDATE_CASES, CONSTRUCTOR_CASES, STATE_CASES = 3000, 1000, 1000

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

DTYPES = ["bool", "int8", "uint8", "int32", "int64", "uint64", ">u8", ">i8", "float16", "float32", ">f4",
          "float64", ">f8", "complex64", "object", "U3", "datetime64[s]"]
SPECIALS = [0.0, 1.0, -1.0, 0.5, 2.0, 3.0, np.nan, np.inf, -np.inf, 1e30, -0.0, 65504.0, 2.0**63, 2.0**64]
HOSTILE_SIZES = [-1, 0, 1, 2, 3, 2**31 - 1, 2**31, 2**32, 3037000500, 1431655766, 2**63, 2**64, 1.5, True, None,
                 "3", np.int64(3), np.uint64(2**63), np.int32(-7), float("nan")]
HOSTILE_FLOATS = [-1.0, 0.0, 0.5, 1.0, 1.5, np.nan, np.inf, None, "0.5", True, 1e300]


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
    layout = draw(st.sampled_from(["c", "f", "strided", "reversed", "readonly"]))
    if layout == "f" and arr.ndim == 2:
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim >= 1:
        arr = np.repeat(arr, 2, axis=-1)[..., ::2]
    elif layout == "reversed" and arr.ndim >= 1:
        arr = arr[::-1]
    elif layout == "readonly":
        arr = arr.copy()
        arr.setflags(write=False)
    return arr.tolist() if kind == "list" and arr.dtype.kind in "biuf" else arr


def _snapshot(metric):
    return {k: np.array(v, copy=True) for k, v in metric.get_state().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _has_non_finite(value):
    """Whether an argument holds a NaN/inf float (as numpy reads it)."""
    if value is None or isinstance(value, str):
        return False
    with np.errstate(all="ignore"):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError):
            return False
        return arr.dtype.kind in "fc" and not np.all(np.isfinite(arr))


def _result_is_finite(metric):
    if isinstance(metric, bm.AUC) and metric.exact:
        return np.isfinite(metric.result())
    return np.all(np.isfinite(np.asarray(metric.result(), dtype=np.float64)))


@settings(max_examples=UPDATE_CASES, suppress_health_check=list(HealthCheck))
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
    else:
        arguments = [y_pred, weights] if which >= len(METRICS) else [y_true, y_pred, weights]
        assert not any(_has_non_finite(a) for a in arguments), "a non-finite input was accepted"
    assert _result_is_finite(metric)


# -- constructors ----------------------------------------------------------------------------------
CONSTRUCTORS = {
    bm.ConfusionMatrix: {"num_classes": HOSTILE_SIZES, "threshold": HOSTILE_FLOATS},
    bm.ExpectedCalibrationError: {"num_bins": HOSTILE_SIZES},
    bm.AUC: {"num_thresholds": HOSTILE_SIZES, "thresholds": [None, [], [np.nan], [0.5, 2.0], [0.1, 0.9]],
             "from_logits": [True, False]},
    bm.Precision: {"thresholds": HOSTILE_FLOATS + [[], [0.2, 0.7], [np.nan]], "class_id": HOSTILE_SIZES},
    bm.Recall: {"thresholds": HOSTILE_FLOATS + [[0.5]], "class_id": HOSTILE_SIZES},
    bm.FBetaScore: {"beta": HOSTILE_FLOATS, "threshold": HOSTILE_FLOATS,
                    "average": [None, "micro", "macro", "weighted", "bogus", 3]},
    bm.SparseTopKCategoricalAccuracy: {"k": HOSTILE_SIZES},
    bm.BinaryAccuracy: {"threshold": HOSTILE_FLOATS},
    bm.BinaryCrossentropy: {"label_smoothing": HOSTILE_FLOATS, "from_logits": [True, False]},
    bm.SparseCategoricalCrossentropy: {"axis": [-1, 0, 1, 2, None], "from_logits": [True, False]},
}
SAMPLE_BATCHES = [  # (y_true, y_pred): one of them suits each constructed metric
    (np.array([0, 1, 1]), np.array([0.2, 0.7, 0.9])),
    (np.array([0, 1, 2]), np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])),
]


@st.composite
def constructor_calls(draw):
    cls = draw(st.sampled_from(sorted(CONSTRUCTORS, key=lambda c: c.__name__)))
    names = draw(st.sets(st.sampled_from(sorted(CONSTRUCTORS[cls]))))
    return cls, {name: draw(st.sampled_from(CONSTRUCTORS[cls][name])) for name in sorted(names)}


@settings(max_examples=CONSTRUCTOR_CASES, suppress_health_check=list(HealthCheck))
@given(call=constructor_calls())
def test_fuzz_constructors(call):
    cls, kwargs = call
    try:
        metric = cls(**kwargs)
    except (TypeError, ValueError, MemoryError):
        return
    for y_true, y_pred in SAMPLE_BATCHES:
        try:
            metric.update_state(y_true, y_pred)
        except (TypeError, ValueError):
            pass
    assert _result_is_finite(metric)
    clone = type(metric).from_config(metric.get_config())
    clone.set_state(metric.get_state())
    assert _same(_snapshot(clone), _snapshot(metric))


# -- merge_state and set_state ------------------------------------------------------------------------
@st.composite
def hostile_states(draw, names):
    state = {}
    for name in names:
        if draw(st.integers(0, 9)) == 0:
            continue  # a missing key
        state[name] = draw(arrays())
    if draw(st.booleans()):
        state["unexpected"] = np.zeros(2)
    return state


@settings(max_examples=STATE_CASES, suppress_health_check=list(HealthCheck))
@given(which=st.integers(0, len(FACTORIES) - 1), data=st.data())
def test_fuzz_set_state_and_merge(which, data):
    metric = FACTORIES[which]()
    for y_true, y_pred in SAMPLE_BATCHES:
        try:
            metric.update_state(y_true, y_pred)
        except (TypeError, ValueError):
            pass
    names = sorted(metric.get_state())
    hostile = data.draw(hostile_states(names))
    before = _snapshot(metric)
    try:
        metric.set_state(hostile)
    except (TypeError, ValueError):
        assert _same(before, _snapshot(metric)), "a refused set_state changed the state"
    else:
        assert not any(_has_non_finite(hostile.get(n)) for n in names), "set_state accepted non-finite values"
    assert _result_is_finite(metric)
    other = data.draw(st.sampled_from([FACTORIES[which](), METRICS[which], METRICS[(which + 1) % len(METRICS)]]))
    before = _snapshot(metric)
    try:
        metric.merge_state(other)
    except (TypeError, ValueError):
        assert _same(before, _snapshot(metric)), "a refused merge changed the state"
    assert _result_is_finite(metric)


# -- the crash-prone paths, in a child process ---------------------------------------------------------
_CANARY = r"""
import itertools, threading
import numpy as np
import bridge.metrics as bm
from bridge import _metrics_core as core

SIZES = [-1, 0, 2**31, 2**32, 3037000500, 1431655766, 2**62, 2**63, 2**64]
makers = [core.ConfusionState, core.CalibrationState, lambda n: core.BinnedCurveState([0.5] * 3, True),
          bm.ConfusionMatrix, bm.ExpectedCalibrationError, lambda n: bm.AUC(num_thresholds=n),
          lambda n: bm.SparseTopKCategoricalAccuracy(k=n)]
for make, n in itertools.product(makers, SIZES):
    try:
        m = make(n)
    except (TypeError, ValueError, MemoryError, OverflowError):
        continue
    for y_true, y_pred in [([0, 1], [0.2, 0.9]), ([0, 1], [[0.3, 0.7], [0.6, 0.4]])]:
        try:
            (m.update if hasattr(m, "update") else m.update_state)(y_true, y_pred)
        except (TypeError, ValueError):
            pass

# set_state and merge with hostile arrays on every metric's core.
hostile = [np.zeros(0), np.zeros(1), np.zeros(7), np.full(4, np.nan), np.zeros((3, 3)), np.zeros(10**6),
           np.zeros(5, ">f8"), np.zeros(5, np.float16), np.arange(8, dtype=np.uint64), "x", None]
for metric in [bm.F1Score(), bm.ConfusionMatrix(3), bm.ExpectedCalibrationError(4), bm.AUC(), bm.Precision(),
               bm.AUC(num_thresholds=None), bm.Mean(), bm.SparseCategoricalCrossentropy()]:
    for value in hostile:
        try:
            metric._core.set_state(value)
        except (TypeError, ValueError):
            pass
        try:
            metric._core.merge(bm.F1Score()._core)
        except (TypeError, ValueError):
            pass

# Updates racing with set_state/merge/reset on one object, from 4 threads.
metric = bm.F1Score()
rng = np.random.RandomState(0)
def worker(seed):
    r = np.random.RandomState(seed)
    for i in range(200):
        op = r.randint(4)
        try:
            if op == 0:
                metric.update_state(r.randint(0, 3, 500), r.rand(500, 3))
            elif op == 1:
                metric.set_state({k: np.zeros(r.randint(1, 5)) for k in metric._state_names})
            elif op == 2:
                metric.reset_state()
            else:
                metric.update_state(r.randint(0, 4, 500), r.rand(500, 4))
        except (TypeError, ValueError):
            pass
threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("survived")
"""


def test_crash_prone_paths_in_a_subprocess():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))  # the bridge under test, not a checkout in cwd
    # `python -c` puts cwd first on sys.path: run elsewhere so a checkout's bridge/ cannot shadow it
    done = subprocess.run([sys.executable, "-c", _CANARY], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tempfile.gettempdir())
    assert done.returncode == 0 and done.stdout.strip() == "survived", (done.returncode, done.stderr[-3000:])
