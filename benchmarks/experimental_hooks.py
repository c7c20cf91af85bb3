"""Costs of bridge.experimental's hooks: InMemoryEvaluatorHook vs evaluate, early stopping between evaluations.

    PYTHONPATH=. .venv/bin/python benchmarks/experimental_hooks.py [--quick] [--evaluation-only]

1. One evaluation: ``Estimator.evaluate`` on the latest checkpoint vs one evaluation of an
   ``InMemoryEvaluatorHook`` during training (same model, input and steps): its first evaluation
   of a train call (input_fn and trace) and the later ones (the same trace again). Medians of several.
2. Training cost (CPU ms per step, grouped steps as by default) with no hook, with
   ``stop_if_no_decrease_hook`` checking every 60 s (2.15's default) and every 100 steps, the eval
   dir holding 50 earlier evaluations; plus the time of one check with and without new event files.

Model: the 784-256-256-10 MLP of benchmarks/estimator_vs_legacy.py on random data, batch 128.
Prints a table and the ratios; figures go to benchmarks/RESULTS.md with date and command.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bridge  # noqa: E402
from bridge._summaries import SummaryWriter  # noqa: E402
from bridge.experimental import _in_memory_evaluator  # noqa: E402

BATCH = 128
RNG = np.random.RandomState(0)
X = RNG.rand(8192, 784).astype(np.float32)
Y = RNG.randint(0, 10, 8192).astype(np.int64)


def model_fn(features, labels, mode):
    net = keras.layers.Dense(256, activation="relu")(features)
    net = keras.layers.Dense(256, activation="relu")(net)
    logits = keras.layers.Dense(10)(net)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    accuracy = tf.compat.v1.metrics.accuracy(labels, tf.argmax(logits, 1))
    train_op = bridge.minimize(loss, keras.optimizers.Adam(1e-3))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, eval_metric_ops={"accuracy": accuracy})


def train_input():
    return tf.data.Dataset.from_tensor_slices((X, Y)).repeat().batch(BATCH)


def eval_input():
    return tf.data.Dataset.from_tensor_slices((X[:4096], Y[:4096])).batch(BATCH)


def estimator(model_dir: str) -> bridge.Estimator:
    config = bridge.RunConfig(model_dir=model_dir, log_step_count_steps=None, save_summary_steps=1000,
                              save_checkpoints_steps=None, save_checkpoints_secs=10**6)
    return bridge.Estimator(model_fn, config=config)


def evaluations(repeats: int, eval_steps: int) -> tuple[list[float], list[float], list[float]]:
    """CPU seconds per evaluation: Estimator.evaluate on a checkpoint, and the in-memory hook's.

    Returns (evaluate, the hook's first evaluation of each train call, the hook's later ones).
    """
    model_dir = tempfile.mkdtemp(prefix="bench_eval_")
    est = estimator(model_dir)
    est.train(train_input, steps=20)
    plain = []
    for _ in range(repeats):
        start = time.process_time()
        est.evaluate(eval_input, steps=eval_steps)
        plain.append(time.process_time() - start)
    first: list[float] = []
    later: list[float] = []
    original = _in_memory_evaluator.InMemoryEvaluatorHook._evaluate

    def timed(self):
        samples = first if self._evaluation is None else later  # None: this evaluation traces
        start = time.process_time()
        result = original(self)
        samples.append(time.process_time() - start)
        return result

    _in_memory_evaluator.InMemoryEvaluatorHook._evaluate = timed
    try:
        hook = bridge.experimental.InMemoryEvaluatorHook(est, eval_input, steps=eval_steps, every_n_iter=10)
        est.train(train_input, steps=10 * repeats, hooks=[hook])  # evaluates at 0, 10, ..., and at the end
        for _ in range(repeats - 1):  # more first evaluations: each train call traces once
            est.train(train_input, steps=1, hooks=[hook])
    finally:
        _in_memory_evaluator.InMemoryEvaluatorHook._evaluate = original
    return plain, first, later[:repeats]


def training_rates(steps: int, repeats: int) -> dict[str, list[float]]:
    """CPU ms per training step without and with an early-stopping hook (50 evaluations in the eval dir).

    CPU time of the process (all threads), not wall time: the figures then hold on a loaded machine.
    """
    rates: dict[str, list[float]] = {"no hook": [], "stop_if_no_decrease_hook, every 60 s": [],
                                     "stop_if_no_decrease_hook, every 100 steps": []}
    for _ in range(repeats):
        for label in rates:
            model_dir = tempfile.mkdtemp(prefix="bench_es_")
            est = estimator(model_dir)
            _fill_eval_dir(est.eval_dir(), 50)
            hooks = []
            if "60 s" in label:
                hooks = [bridge.experimental.stop_if_no_decrease_hook(est, "loss", 10**9)]
            elif "100 steps" in label:
                hooks = [bridge.experimental.stop_if_no_decrease_hook(
                    est, "loss", 10**9, run_every_secs=None, run_every_steps=100)]
            est.train(train_input, steps=64)  # trace, warm-up and first checkpoint outside the timing
            start = time.process_time()
            est.train(train_input, steps=steps, hooks=hooks)
            rates[label].append((time.process_time() - start) / steps * 1000)
    return rates


def _fill_eval_dir(eval_dir: str, count: int) -> None:
    for i in range(count):
        writer = SummaryWriter(eval_dir)
        writer.write_eval_results({"loss": np.float32(1.0 + i), "accuracy": np.float32(0.1)}, 100 * (i + 1), None)
        writer.close()


def check_costs(repeats: int) -> tuple[float, float]:
    """Seconds of one should_stop check: first (parses 50 files) and later (nothing new)."""
    model_dir = tempfile.mkdtemp(prefix="bench_check_")
    est = estimator(model_dir)
    _fill_eval_dir(est.eval_dir(), 50)
    first, later = [], []
    for _ in range(repeats):
        hook = bridge.experimental.stop_if_no_decrease_hook(est, "loss", 10**9)
        start = time.process_time()
        hook._should_stop_fn()
        first.append(time.process_time() - start)
        start = time.process_time()
        hook._should_stop_fn()
        later.append(time.process_time() - start)
    return statistics.median(first), statistics.median(later)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--evaluation-only", action="store_true", help="only part 1")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    eval_steps = 32
    plain, first_evals, later_evals = evaluations(repeats, eval_steps)
    print(f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"\n1. One evaluation ({eval_steps} batches of {BATCH}), CPU time, median of {repeats}:")
    p, f, m = statistics.median(plain), statistics.median(first_evals), statistics.median(later_evals)

    def row(label: str, median: float, values: list[float]) -> None:
        print(f"   {label:41s}{median * 1000:8.1f} ms   (all: {', '.join(f'{v * 1000:.0f}' for v in values)})")

    row("Estimator.evaluate (checkpoint)", p, plain)
    row("InMemoryEvaluatorHook, first of a train", f, first_evals)
    row("InMemoryEvaluatorHook, later evaluations", m, later_evals)
    print(f"   in-memory / evaluate = {f / p:.2f} (first of a train call: input_fn and trace), {m / p:.2f} (later)")
    sys.stdout.flush()
    if args.evaluation_only:
        return
    rates = training_rates(steps=512 if args.quick else 2048, repeats=2 if args.quick else 3)
    first, later = check_costs(repeats)
    print("\n2. Training, CPU ms per step (batch 128, grouped steps), median:")
    base = statistics.median(rates["no hook"])
    for label, values in rates.items():
        cost = statistics.median(values)
        print(f"   {label:42s} {cost:8.3f}   ({cost / base:.3f} x no hook; all: {', '.join(f'{v:.3f}' for v in values)})")
    print(f"\n   one check, 50 evaluations in the eval dir (CPU): first {first * 1000:.1f} ms, "
          f"nothing new since {later * 1000:.2f} ms")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
