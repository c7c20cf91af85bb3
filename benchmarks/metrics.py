"""Throughput of bridge.metrics against Keras 3, torchmetrics, scikit-learn and numpy.

One process, the same data for every implementation. A timed pass is: reset, one
update per batch (batches prepared beforehand, as numpy views or tf/torch
tensors), then the final result. Figures are million rows per second, median of
``--repeats`` passes; scikit-learn is one call on the whole array. The ceiling
column is a multi-threaded ``np.sum`` over the same input bytes (what a
single-pass metric cannot beat). Ratios are bridge / other.

    python benchmarks/metrics.py                      # full run (several minutes)
    python benchmarks/metrics.py --quick              # 200k rows, bridge + numpy only
    python benchmarks/metrics.py --markdown out.md    # also write the tables

torch/torchmetrics and TensorFlow are optional: missing libraries are reported as
"not installed" and their columns are skipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402

import bridge.metrics as bm  # noqa: E402

IMPLS = ["bridge", "keras_eager", "keras_function", "torchmetrics", "sklearn", "numpy"]
LABELS = {
    "bridge": "bridge", "keras_eager": "Keras eager", "keras_function": "Keras tf.function",
    "torchmetrics": "torchmetrics", "sklearn": "sklearn (whole)", "numpy": "numpy per batch",
}


# -- data -------------------------------------------------------------------------------------
@dataclass
class Data:
    rows: int
    classes: int
    labels: np.ndarray  # int32 binary labels
    scores: np.ndarray  # float32 probabilities
    target: np.ndarray  # float32 regression target
    pred: np.ndarray  # float32 regression prediction
    cls: np.ndarray  # int32 class index
    cls_pred: np.ndarray  # int32 predicted class
    logits: np.ndarray  # float32 (rows, classes)
    cache: dict = field(default_factory=dict)


def make_data(rows: int, classes: int, multi_rows: int) -> Data:
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 2, rows).astype(np.int32)
    z = rng.randn(rows) + 1.5 * labels - 0.5
    scores = (1 / (1 + np.exp(-z))).astype(np.float32)
    target = rng.rand(rows).astype(np.float32)
    pred = np.clip(target + 0.6 * rng.randn(rows), 0, 1).astype(np.float32)
    cls = rng.randint(0, classes, multi_rows).astype(np.int32)
    logits = rng.randn(multi_rows, classes).astype(np.float32)
    logits[np.arange(multi_rows), cls] += 1.0
    cls_pred = logits.argmax(1).astype(np.int32)
    return Data(rows, classes, labels, scores, target, pred, cls, cls_pred, logits)


# -- metric specifications --------------------------------------------------------------------
@dataclass
class Spec:
    name: str
    inputs: Callable[[Data], tuple[np.ndarray, ...]]  # (y_true, y_pred)
    bridge: Callable[[], Any]
    numpy: tuple[Callable, Callable, Callable] | None = None  # init, update(state, y, p), finish(state)
    sklearn: Callable | None = None
    keras: Callable | None = None  # (keras, tf) -> (make metric or None, update(m, y, p) or None)
    keras_2d: bool = False  # feed Keras (B, 1) columns
    torch: Callable | None = None  # (torchmetrics, torch) -> (metric, update(m, y, p))
    multiclass: bool = False
    single_pass: bool = True  # numpy needs one pass over the inputs


def _bin(d: Data):
    return d.labels, d.scores


def _reg(d: Data):
    return d.target, d.pred


def _multi(d: Data):
    return d.cls, d.logits


def _counts_np():
    def update(st, y, p):
        pr = p > 0.5
        yb = y.astype(bool)
        st[0] += np.count_nonzero(pr & yb)
        st[1] += np.count_nonzero(pr)
        st[2] += np.count_nonzero(yb)
        st[3] += len(y)
    return (lambda: np.zeros(4, np.int64)), update


def _bucket_np(num=200):
    def init():
        return np.zeros((2, num))

    def update(st, y, p):
        b = np.maximum(np.ceil(p * np.float32(num - 1)) - 1, 0).astype(np.int64)
        pos = np.bincount(b, weights=y, minlength=num)
        st[1] += pos
        st[0] += np.bincount(b, minlength=num) - pos
    return init, update


def _np_auc_from_buckets(st, curve):
    neg, pos = st
    tp = np.cumsum(pos[::-1])[::-1]
    fp = np.cumsum(neg[::-1])[::-1]
    fn, tn = pos.sum() - tp, neg.sum() - fp
    with np.errstate(all="ignore"):
        if curve == "ROC":
            x, y = fp / (fp + tn), tp / (tp + fn)
            return float(np.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2))
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = np.where(dp > 0, dtp / np.maximum(dp, 1e-300), 0)
        inter = tp[1:] - slope * p[1:]
        ratio = np.where((p[:-1] > 0) & (p[1:] > 0), p[:-1] / np.maximum(p[1:], 1e-300), 1)
        den = tp[1:] + fn[1:]
        return float(np.sum(np.where(den > 0, slope * (dtp + inter * np.log(ratio)) / np.maximum(den, 1e-300), 0)))


def _np_exact(st, curve):
    y = np.concatenate(st[0])
    s = np.concatenate(st[1]).astype(np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[last].astype(np.float64)
    fps = (last + 1) - tps
    if curve == "ROC":
        fpr, tpr = np.r_[0, fps] / fps[-1], np.r_[0, tps] / tps[-1]
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


def _np_mean(kind):
    def update(st, y, p):
        if kind == "mse":
            d = (y.astype(np.float64) - p)
            st[0] += np.dot(d, d)
        elif kind == "mae":
            st[0] += np.abs(y.astype(np.float64) - p).sum()
        elif kind == "mean":
            st[0] += p.sum(dtype=np.float64)
        elif kind == "bce":
            q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
            st[0] -= np.log(np.where(y == 1, q, 1 - q)).sum()
        elif kind == "scce":
            x = p.astype(np.float64)
            m = x.max(1)
            st[0] += (np.log(np.exp(x - m[:, None]).sum(1)) + m - x[np.arange(len(y)), y]).sum()
        elif kind == "acc":
            st[0] += np.count_nonzero(y == p)
        elif kind == "bacc":
            st[0] += np.count_nonzero((p > 0.5) == y.astype(bool))
        elif kind == "sacc":
            st[0] += np.count_nonzero(p.argmax(1) == y)
        elif kind == "top5":
            top = np.argpartition(-p, 5, axis=1)[:, :5]
            st[0] += np.count_nonzero((top == y[:, None]).any(1))
        st[1] += len(p)
    return (lambda: np.zeros(2)), update, (lambda st: st[0] / st[1])


def _softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _keras_cm(keras, tf, classes):
    def make():
        return tf.Variable(tf.zeros((classes, classes), tf.int32))

    def update(v, y, p):
        v.assign_add(tf.math.confusion_matrix(y, p, num_classes=classes, dtype=tf.int32))
    return make, update


def specs(classes: int) -> list[Spec]:
    from sklearn import metrics as skm

    counts_init, counts_update = _counts_np()
    bucket_init, bucket_update = _bucket_np()

    def keep_init():
        return ([], [])

    def keep_update(st, y, p):
        st[0].append(y)
        st[1].append(p)

    out = [
        Spec("accuracy", lambda d: (d.cls, d.cls_pred), bm.Accuracy, _np_mean("acc"),
             lambda y, p: skm.accuracy_score(y, p), keras=lambda k, tf: (k.metrics.Accuracy, None),
             torch=lambda tm, t: (tm.classification.MulticlassAccuracy(classes, average="micro"), None),
             multiclass=True),
        Spec("binary_accuracy", _bin, bm.BinaryAccuracy, _np_mean("bacc"), lambda y, p: skm.accuracy_score(y, p > 0.5),
             keras=lambda k, tf: (k.metrics.BinaryAccuracy, None),
             torch=lambda tm, t: (tm.classification.BinaryAccuracy(), None)),
        Spec("sparse_categorical_accuracy", _multi, bm.SparseCategoricalAccuracy, _np_mean("sacc"),
             lambda y, p: skm.accuracy_score(y, p.argmax(1)),
             keras=lambda k, tf: (k.metrics.SparseCategoricalAccuracy, None),
             torch=lambda tm, t: (tm.classification.MulticlassAccuracy(classes, average="micro"), None),
             multiclass=True, single_pass=False),
        Spec("top5_accuracy", _multi, lambda: bm.SparseTopKCategoricalAccuracy(k=5), _np_mean("top5"),
             lambda y, p: skm.top_k_accuracy_score(y, p, k=5, labels=np.arange(classes)),
             keras=lambda k, tf: (lambda: k.metrics.SparseTopKCategoricalAccuracy(k=5), None),
             torch=lambda tm, t: (tm.classification.MulticlassAccuracy(classes, top_k=5, average="micro"), None),
             multiclass=True, single_pass=False),
        Spec("precision", _bin, bm.Precision, (counts_init, counts_update, lambda st: st[0] / st[1]),
             lambda y, p: skm.precision_score(y, p > 0.5), keras=lambda k, tf: (k.metrics.Precision, None),
             torch=lambda tm, t: (tm.classification.BinaryPrecision(), None)),
        Spec("recall", _bin, bm.Recall, (counts_init, counts_update, lambda st: st[0] / st[2]),
             lambda y, p: skm.recall_score(y, p > 0.5), keras=lambda k, tf: (k.metrics.Recall, None),
             torch=lambda tm, t: (tm.classification.BinaryRecall(), None)),
        Spec("f1", _bin, lambda: bm.F1Score(threshold=0.5), (counts_init, counts_update,
                                                             lambda st: 2 * st[0] / (st[1] + st[2])),
             lambda y, p: skm.f1_score(y, p > 0.5), keras=lambda k, tf: (lambda: k.metrics.F1Score(threshold=0.5), None),
             keras_2d=True, torch=lambda tm, t: (tm.classification.BinaryF1Score(), None)),
        Spec("confusion_matrix", lambda d: (d.cls, d.cls_pred), lambda: bm.ConfusionMatrix(classes),
             ((lambda: np.zeros(classes * classes, np.int64)),
              lambda st, y, p: st.__iadd__(np.bincount(y * classes + p, minlength=classes * classes)),
              lambda st: st),
             lambda y, p: skm.confusion_matrix(y, p, labels=np.arange(classes)),
             keras=lambda k, tf: _keras_cm(k, tf, classes),
             torch=lambda tm, t: (tm.classification.MulticlassConfusionMatrix(classes), None),
             multiclass=True, single_pass=False),
        Spec("roc_auc_exact", _bin, lambda: bm.AUC(num_thresholds=None),
             (keep_init, keep_update, lambda st: _np_exact(st, "ROC")), lambda y, p: skm.roc_auc_score(y, p),
             torch=lambda tm, t: (tm.classification.BinaryAUROC(thresholds=None), None), single_pass=False),
        Spec("roc_auc_t200", _bin, bm.AUC, (bucket_init, bucket_update, lambda st: _np_auc_from_buckets(st, "ROC")),
             keras=lambda k, tf: (k.metrics.AUC, None),
             torch=lambda tm, t: (tm.classification.BinaryAUROC(thresholds=200), None), single_pass=False),
        Spec("pr_auc_t200", _bin, lambda: bm.AUC(curve="PR"),
             (bucket_init, bucket_update, lambda st: _np_auc_from_buckets(st, "PR")),
             keras=lambda k, tf: (lambda: k.metrics.AUC(curve="PR"), None), single_pass=False),
        Spec("average_precision_exact", _bin, lambda: bm.AUC(num_thresholds=None, curve="PR"),
             (keep_init, keep_update, lambda st: _np_exact(st, "PR")), lambda y, p: skm.average_precision_score(y, p),
             torch=lambda tm, t: (tm.classification.BinaryAveragePrecision(thresholds=None), None),
             single_pass=False),
        Spec("mean", lambda d: (None, d.scores), bm.Mean, _np_mean("mean"),
             keras=lambda k, tf: (k.metrics.Mean, None), torch=lambda tm, t: (tm.MeanMetric(), None)),
        Spec("mse", _reg, bm.MeanSquaredError, _np_mean("mse"), lambda y, p: skm.mean_squared_error(y, p),
             keras=lambda k, tf: (k.metrics.MeanSquaredError, None), keras_2d=True,
             torch=lambda tm, t: (tm.MeanSquaredError(), None)),
        Spec("mae", _reg, bm.MeanAbsoluteError, _np_mean("mae"), lambda y, p: skm.mean_absolute_error(y, p),
             keras=lambda k, tf: (k.metrics.MeanAbsoluteError, None), keras_2d=True,
             torch=lambda tm, t: (tm.MeanAbsoluteError(), None)),
        Spec("log_loss_binary", _bin, bm.BinaryCrossentropy, _np_mean("bce"), lambda y, p: skm.log_loss(y, p),
             keras=lambda k, tf: (k.metrics.BinaryCrossentropy, None), keras_2d=True,
             torch=lambda tm, t: (tm.MeanMetric(), lambda m, y, p: m.update(
                 t.nn.functional.binary_cross_entropy(p, y.to(p.dtype), reduction="none")))),
        Spec("log_loss_multiclass", _multi, lambda: bm.SparseCategoricalCrossentropy(from_logits=True),
             _np_mean("scce"), lambda y, p: skm.log_loss(y, _softmax(p.astype(np.float64)), labels=np.arange(classes)),
             keras=lambda k, tf: (lambda: k.metrics.SparseCategoricalCrossentropy(from_logits=True), None),
             torch=lambda tm, t: (tm.MeanMetric(), lambda m, y, p: m.update(
                 t.nn.functional.cross_entropy(p, y.long(), reduction="none"))),
             multiclass=True, single_pass=False),
    ]
    return out


MULTI_AT_1000 = {"accuracy", "sparse_categorical_accuracy", "top5_accuracy", "confusion_matrix", "log_loss_multiclass"}


# -- timing -----------------------------------------------------------------------------------
def timed(fn: Callable[[], Any], repeats: int, max_seconds: float) -> tuple[float, int]:
    """Median seconds of ``repeats`` runs (fewer when one run exceeds max_seconds)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if times[-1] > max_seconds:
            break
    return statistics.median(times), len(times)


def batches(arrays: tuple, batch: int) -> list[tuple]:
    n = len(arrays[1])
    return [tuple(None if a is None else a[i : i + batch] for a in arrays) for i in range(0, n, batch)]


def run_bridge(spec, arrays, batch):
    bs = batches(arrays, batch)
    m = spec.bridge()
    if spec.name == "mean":
        def go():
            m.reset_state()
            for _, p in bs:
                m.update_state(p)
            return m.result()
    else:
        def go():
            m.reset_state()
            for y, p in bs:
                m.update_state(y, p)
            return m.result()
    return go


def run_numpy(spec, arrays, batch):
    init, update, finish = spec.numpy
    bs = batches(arrays, batch)

    def go():
        st = init()
        for y, p in bs:
            update(st, y, p)
        return finish(st)
    return go


def run_sklearn(spec, arrays, batch):
    y, p = arrays
    return lambda: spec.sklearn(y, p)


def run_keras(spec, arrays, batch, keras, tf, compiled):
    make, update = spec.keras(keras, tf)
    if make is None:
        return None
    conv = []
    for y, p in batches(arrays, batch):
        if spec.keras_2d:
            y, p = y.reshape(-1, 1), p.reshape(-1, 1)
        conv.append((None if y is None else tf.constant(y), tf.constant(p)))
    m = make()
    if update is None:
        def update(metric, y, p):
            if y is None:
                metric.update_state(p)
            else:
                metric.update_state(y, p)
    def eager_step(y, p):
        update(m, y, p)

    # The step has no Python control flow: AutoGraph has nothing to convert.
    step = tf.function(tf.autograph.experimental.do_not_convert(eager_step), jit_compile=False) if compiled \
        else eager_step
    first = conv[0]
    step(*first)  # build variables / trace outside the timed pass

    def go():
        if hasattr(m, "reset_state"):
            m.reset_state()
        else:
            m.assign(tf.zeros_like(m))
        for y, p in conv:
            step(y, p)
        return m.result() if hasattr(m, "result") else m.numpy()
    return go


def run_torch(spec, arrays, batch, tm, torch):
    m, update = spec.torch(tm, torch)
    conv = [(None if y is None else torch.from_numpy(np.ascontiguousarray(y)), torch.from_numpy(p))
            for y, p in batches(arrays, batch)]
    if update is None:
        def update(metric, y, p):
            metric.update(p) if y is None else metric.update(p, y)

    def go():
        m.reset()
        for y, p in conv:
            update(m, y, p)
        return m.compute()
    return go


def read_ceiling(arrays: tuple, repeats: int, threads: int) -> float:
    """Seconds for a `threads`-way parallel np.sum over the bytes of `arrays` (median)."""
    parts = []
    for a in arrays:
        if a is None:
            continue
        flat = a.reshape(-1)
        step = -(-len(flat) // threads)
        parts += [flat[i : i + step] for i in range(0, len(flat), step)]
    with ThreadPoolExecutor(threads) as pool:
        def go():
            list(pool.map(np.sum, parts))
        go()
        return timed(go, max(repeats, 5), 1e9)[0]


# -- reporting --------------------------------------------------------------------------------
def fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.1f}×"


def table(rows: list[dict], impls: list[str], title: str) -> str:
    head = ["metric", *(LABELS[i] for i in impls), "read ceiling (2 thr)",
            "÷ Keras eager", "÷ tf.function", "÷ torchmetrics", "÷ numpy", "÷ sklearn", "% of ceiling"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + " --- |" + " ---: |" * (len(head) - 1)]
    for r in rows:
        b = r.get("bridge")
        cells = [r["metric"], *(fmt(r.get(i)) for i in impls), fmt(r.get("ceiling")),
                 ratio(b, r.get("keras_eager")), ratio(b, r.get("keras_function")), ratio(b, r.get("torchmetrics")),
                 ratio(b, r.get("numpy")), ratio(b, r.get("sklearn")),
                 "n/a" if b is None or not r.get("ceiling") else f"{100 * b / r['ceiling']:.0f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def single_row_cost(n_calls: int = 200_000) -> list[tuple[str, float]]:
    rng = np.random.RandomState(1)
    cases = [
        ("SparseCategoricalAccuracy (1x10)", bm.SparseCategoricalAccuracy(), (np.array([3]), rng.randn(1, 10).astype(np.float32))),
        ("AUC 200 thresholds", bm.AUC(), (np.array([1]), np.array([0.7], np.float32))),
        ("AUC exact", bm.AUC(num_thresholds=None), (np.array([1]), np.array([0.7], np.float32))),
        ("Precision", bm.Precision(), (np.array([1]), np.array([0.7], np.float32))),
        ("MeanSquaredError", bm.MeanSquaredError(), (np.array([1.0], np.float32), np.array([0.7], np.float32))),
        ("Mean", bm.Mean(), (np.array([0.7], np.float32),)),
        ("F1Score (1x10, macro)", bm.F1Score(average="macro"), (np.array([3]), rng.rand(1, 10).astype(np.float32))),
    ]
    out = []
    for name, m, args in cases:
        f = m.update_state
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(n_calls):
                f(*args)
            best = min(best, (time.perf_counter() - t) / n_calls * 1e6)
        out.append((name, best))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--rows-c1000", type=int, default=268_435)
    ap.add_argument("--batches", default="4096,65536")
    ap.add_argument("--classes", default="10,1000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=2.0, help="stop repeating a pass slower than this")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--metrics", default="", help="comma-separated subset")
    ap.add_argument("--quick", action="store_true", help="200k rows, bridge and numpy only")
    ap.add_argument("--markdown", default="", help="write the tables to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.rows_c1000, args.impls = 200_000, 40_000, "bridge,numpy,sklearn"
    impls = [i for i in args.impls.split(",") if i]
    wanted = set(filter(None, args.metrics.split(",")))
    threads = bm.get_num_threads()

    notes = []
    keras = tf = tm = torch = None
    if "keras_eager" in impls or "keras_function" in impls:
        try:
            import keras
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(2)
            tf.config.threading.set_inter_op_parallelism_threads(2)
            notes.append(f"tensorflow {tf.__version__}, keras {keras.__version__}")
        except ImportError:
            notes.append("TensorFlow/Keras: not installed (columns skipped)")
            impls = [i for i in impls if not i.startswith("keras")]
    if "torchmetrics" in impls:
        try:
            import torch
            import torchmetrics as tm

            torch.set_num_threads(2)
            notes.append(f"torch {torch.__version__}, torchmetrics {tm.__version__}")
        except ImportError:
            notes.append("torch/torchmetrics: not installed (column skipped)")
            impls = [i for i in impls if i != "torchmetrics"]
    print(f"# bridge.metrics benchmark: {args.rows:,} rows, threads={threads}, python {sys.version.split()[0]}, "
          f"numpy {np.__version__}; " + "; ".join(notes), flush=True)

    md = [f"Rows: {args.rows:,} (binary/regression and C = 10), {args.rows_c1000:,} at C = 1000; "
          f"median of {args.repeats} passes; bridge threads = {threads}. " + "; ".join(notes) + "."]
    for classes in [int(c) for c in args.classes.split(",")]:
        multi_rows = args.rows if classes <= 10 else args.rows_c1000
        data = make_data(args.rows, classes, multi_rows)
        for batch in [int(b) for b in args.batches.split(",")]:
            rows_out = []
            for spec in specs(classes):
                if wanted and spec.name not in wanted:
                    continue
                if classes > 10 and spec.name not in MULTI_AT_1000:
                    continue
                arrays = spec.inputs(data)
                n = len(arrays[1])
                row: dict[str, Any] = {"metric": spec.name}
                for impl in impls:
                    go = None
                    if impl == "bridge":
                        go = run_bridge(spec, arrays, batch)
                    elif impl == "numpy" and spec.numpy:
                        go = run_numpy(spec, arrays, batch)
                    elif impl == "sklearn" and spec.sklearn:
                        go = run_sklearn(spec, arrays, batch)
                    elif impl.startswith("keras") and spec.keras:
                        go = run_keras(spec, arrays, batch, keras, tf, impl == "keras_function")
                    elif impl == "torchmetrics" and spec.torch:
                        go = run_torch(spec, arrays, batch, tm, torch)
                    if go is None:
                        continue
                    go()  # warm-up
                    sec, _ = timed(go, args.repeats, args.max_seconds)
                    row[impl] = n / sec / 1e6
                row["ceiling"] = n / read_ceiling(arrays, args.repeats, 2) / 1e6
                rows_out.append(row)
                print(f"  C={classes:<5} B={batch:<6} {spec.name:<28} " +
                      " ".join(f"{i}={fmt(row.get(i))}" for i in impls) + f" ceiling={fmt(row['ceiling'])}", flush=True)
            title = f"B = {batch:,}, C = {classes} ({multi_rows:,} multi-class rows), M rows/s"
            text = table(rows_out, impls, title)
            print("\n" + text + "\n", flush=True)
            md.append(text)
    cost = single_row_cost()
    lines = ["### One `update_state` call on a 1-row batch (µs, best of 3 × 200k calls)", "",
             "| metric | µs per call |", "| --- | ---: |"] + [f"| {n} | {c:.2f} |" for n, c in cost]
    print("\n".join(lines))
    md.append("\n".join(lines))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
