"""Streaming evaluation with bridge.metrics: no TensorFlow needed.

Simulates a classifier evaluated over a stream of batches, as an Estimator's
eval loop would feed it, and shows the parts of the API that matter in practice:

* ``update_state`` per batch, ``result`` at the end;
* exact AUC (``num_thresholds=None``) next to Keras's 200-bucket AUC, on scores
  that crowd near 1, where the buckets are too coarse;
* two "workers" evaluating halves of the data, combined with ``merge_state`` and,
  equivalently, by summing ``get_state()`` dicts (what a distributed job ships);
* pickling a metric mid-stream;
* a bad batch raising a clear error and leaving the metric untouched.

Run: ``python examples/streaming_metrics.py``
"""

from __future__ import annotations

import pickle

import numpy as np

import bridge.metrics as bm


def make_stream(n_batches: int = 50, batch: int = 4096, classes: int = 10, seed: int = 0):
    """Yields (labels, logits, binary labels, binary scores) per batch."""
    rng = np.random.default_rng(seed)
    for _ in range(n_batches):
        labels = rng.integers(0, classes, batch)
        logits = rng.normal(size=(batch, classes)).astype(np.float32)
        logits[np.arange(batch), labels] += 1.5  # a half-decent model
        y = rng.integers(0, 2, batch)
        z = rng.normal(size=batch) + 1.5 * y
        scores = (1 - (1 - 1 / (1 + np.exp(-z))) ** 8).astype(np.float32)  # crowded near 1
        yield labels, logits, y, scores


def build_metrics() -> dict[str, bm.StreamingMetric]:
    return {
        "accuracy": bm.SparseCategoricalAccuracy(),
        "top3": bm.SparseTopKCategoricalAccuracy(k=3),
        "log_loss": bm.SparseCategoricalCrossentropy(from_logits=True),
        "macro_f1": bm.F1Score(average="macro"),
        "confusion": bm.ConfusionMatrix(num_classes=10),
        "auc_200": bm.AUC(num_thresholds=200),
        "auc_exact": bm.AUC(num_thresholds=None),
        "pr_auc_exact": bm.AUC(num_thresholds=None, curve="PR"),
        "ece": bm.ExpectedCalibrationError(num_bins=15),
    }


def update(metrics: dict[str, bm.StreamingMetric], batch) -> None:
    labels, logits, y, scores = batch
    for name, m in metrics.items():
        if name in ("auc_200", "auc_exact", "pr_auc_exact", "ece"):
            m.update_state(y, scores)  # binary labels and probabilities
        else:
            m.update_state(labels, logits)  # class indices and per-class scores


def main() -> None:
    stream = list(make_stream())

    # One pass over the whole stream.
    metrics = build_metrics()
    for batch in stream:
        update(metrics, batch)
    print("one pass over", sum(len(b[0]) for b in stream), "rows")
    for name, m in metrics.items():
        value = m.result()
        shown = f"{value:.6f}" if np.ndim(value) == 0 else f"trace/sum={np.trace(value) / value.sum():.6f}"
        print(f"  {name:<13} {shown}")
    gap = metrics["auc_exact"].result() - metrics["auc_200"].result()
    print(f"  exact minus 200-bucket ROC AUC: {gap:+.4f} (scores crowd near 1)")

    # Two workers, each with half of the batches, merged.
    half = len(stream) // 2
    worker_a, worker_b = build_metrics(), build_metrics()
    for batch in stream[:half]:
        update(worker_a, batch)
    for batch in stream[half:]:
        update(worker_b, batch)
    merged = build_metrics()
    for name in merged:
        merged[name].merge_state([worker_a[name], worker_b[name]])
    assert np.allclose(merged["accuracy"].result(), metrics["accuracy"].result(), rtol=1e-12)
    assert np.allclose(merged["auc_exact"].result(), metrics["auc_exact"].result(), rtol=1e-12)

    # The same through plain numpy state (what a distributed job would send around).
    states = [worker_a["log_loss"].get_state(), worker_b["log_loss"].get_state()]
    summed = {k: states[0][k] + states[1][k] for k in states[0]}
    fresh = bm.SparseCategoricalCrossentropy(from_logits=True)
    fresh.set_state(summed)
    assert np.isclose(fresh.result(), metrics["log_loss"].result(), rtol=1e-12)
    print("merge_state and summed get_state() agree with the single pass")

    # Pickle mid-stream (e.g. to checkpoint an evaluation).
    restored = pickle.loads(pickle.dumps(worker_a["top3"]))
    assert restored.result() == worker_a["top3"].result()
    print("pickled metric restored:", restored.get_config())

    # Bad input: a clear exception, and the metric keeps its state.
    before = metrics["accuracy"].result()
    labels, logits, _, _ = stream[0]
    bad = logits.copy()
    bad[3, 2] = np.nan
    try:
        metrics["accuracy"].update_state(labels, bad)
    except ValueError as err:
        print("rejected:", err)
    try:
        metrics["accuracy"].update_state(labels.astype(np.float32), logits)
    except TypeError as err:
        print("rejected:", str(err).split(";")[0])
    assert metrics["accuracy"].result() == before


if __name__ == "__main__":
    main()
