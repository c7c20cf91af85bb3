"""Estimator.evaluate with eval_metric_ops: no metrics, five bridge.metrics host ops, the same five
as Keras metric objects, and Keras 3 model.evaluate with those metrics. One process, one model, one
in-memory dataset.

Model: 784-256-256-10 MLP (weights from one checkpoint, written once), softmax cross-entropy loss.
The five metrics:

* accuracy of the predicted class id;
* precision, recall, thresholded AUC (200 thresholds) and exact AUC of the one-hot labels against
  the softmax probabilities, flattened as tf.compat.v1.metrics does (10 scores per row).
  Precision and recall use the one-hot of the predicted class.

Keras has no exact AUC; its stand-in is ``keras.metrics.AUC(num_thresholds=2000)``. Keras's
``model.evaluate`` gets the same five (CategoricalAccuracy for the class id accuracy).

Steady-state steps/s is measured from two calls of different lengths,
(S_long - S_short) / (t_long - t_short), which removes each call's fixed cost (trace, restore,
summaries); rounds alternate the variants and the median is reported. The same difference of
process CPU time (all threads: TensorFlow's pool and the host-metrics worker) gives CPU ms per
step, which other processes on a shared machine disturb much less than wall time.

    .venv/bin/python benchmarks/evaluate.py [--batch 256] [--rounds 7] [--short 20] [--long 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bridge  # noqa: E402

ROWS = 16384
CLASSES = 10


def make_dataset(x: np.ndarray, y: np.ndarray, batch: int) -> tf.data.Dataset:
    options = tf.data.Options()
    options.autotune.enabled = False
    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch, drop_remainder=True).with_options(options)


def layers() -> list[keras.layers.Layer]:
    return [
        keras.layers.Dense(256, activation="relu", name="hidden1"),
        keras.layers.Dense(256, activation="relu", name="hidden2"),
        keras.layers.Dense(CLASSES, name="logits"),
    ]


def keras_metric_objects() -> list[keras.metrics.Metric]:
    return [
        keras.metrics.Accuracy(name="accuracy"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        keras.metrics.AUC(num_thresholds=200, name="auc"),
        keras.metrics.AUC(num_thresholds=2000, name="exact_auc"),
    ]


class FetchOnly:
    """A host op that fetches the five metrics' input tensors and does nothing with them.

    It separates what the metrics cost TensorFlow (computing softmax, argmax and one-hots, which a
    no-metric evaluate prunes, and returning them) from what bridge's host side adds.
    """

    __bridge_metric_op__ = True

    def __init__(self, **fetches):
        self.fetches = fetches

    def update(self, values):
        pass

    def result(self):
        return np.float64(0.0)


def model_fn(features, labels, mode, params):
    h = features
    for layer in layers():
        h = layer(h)
    logits = h
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    train_op = bridge.minimize(loss, keras.optimizers.SGD(1e-3))
    probabilities = tf.nn.softmax(logits)
    class_ids = tf.argmax(logits, axis=1, output_type=tf.int32)
    one_hot = tf.one_hot(labels, CLASSES)
    predicted = tf.one_hot(class_ids, CLASSES)
    kind = params["metrics"]
    if kind == "bridge":
        eval_metric_ops = {
            "accuracy": bridge.metrics.accuracy(labels, class_ids),
            "precision": bridge.metrics.precision(one_hot, predicted),
            "recall": bridge.metrics.recall(one_hot, predicted),
            "auc": bridge.metrics.auc(one_hot, probabilities),
            "exact_auc": bridge.metrics.exact_auc(one_hot, probabilities),
        }
    elif kind == "fetch_only":
        eval_metric_ops = {
            "inputs": FetchOnly(labels=labels, ids=class_ids, one_hot=one_hot, predicted=predicted, scores=probabilities)
        }
    elif kind == "keras":
        accuracy, precision, recall, auc, auc_2000 = keras_metric_objects()
        accuracy.update_state(labels, class_ids)
        precision.update_state(one_hot, predicted)
        recall.update_state(one_hot, predicted)
        auc.update_state(one_hot, probabilities)
        auc_2000.update_state(one_hot, probabilities)
        eval_metric_ops = {m.name: m for m in (accuracy, precision, recall, auc, auc_2000)}
    else:
        eval_metric_ops = {}
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, eval_metric_ops=eval_metric_ops)


def make_estimators(x, y, batch):
    """Three Estimators (none / bridge / keras metrics) on one checkpoint."""
    config = bridge.RunConfig(
        save_checkpoints_steps=1, log_step_count_steps=None, save_summary_steps=0, progress_bar=False
    )
    model_dir = tempfile.mkdtemp()
    bridge.Estimator(model_fn, model_dir=model_dir, config=config, params={"metrics": "none"}).train(
        lambda: make_dataset(x, y, batch), steps=1
    )
    return {
        kind: bridge.Estimator(model_fn, model_dir=model_dir, config=config, params={"metrics": kind})
        for kind in ("none", "fetch_only", "bridge", "keras")
    }


def timed(call):
    """(wall seconds, process CPU seconds, value) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = call()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def time_estimator(estimator, x, y, batch, short, long):
    input_fn = lambda: make_dataset(x, y, batch)  # noqa: E731
    first = timed(lambda: estimator.evaluate(input_fn, steps=short))
    second = timed(lambda: estimator.evaluate(input_fn, steps=long))
    return first, second


def make_keras_model(estimator) -> keras.Model:
    model = keras.Sequential([keras.Input((784,)), *layers(), keras.layers.Softmax()])
    reader = tf.train.load_checkpoint(estimator.latest_checkpoint())
    names = {name for name, _ in tf.train.list_variables(estimator.latest_checkpoint())}
    for layer in model.layers[:3]:
        kernel = [n for n in names if n.startswith(layer.name) and n.endswith("kernel")]
        bias = [n for n in names if n.startswith(layer.name) and n.endswith("bias")]
        if kernel and bias:
            layer.set_weights([reader.get_tensor(kernel[0]), reader.get_tensor(bias[0])])
    metrics = keras_metric_objects()
    metrics[0] = keras.metrics.CategoricalAccuracy(name="accuracy")
    model.compile(loss=keras.losses.CategoricalCrossentropy(), metrics=metrics)
    return model


def time_keras(model, x, y, batch, short, long):
    dataset = make_dataset(x, keras.utils.to_categorical(y, CLASSES).astype(np.float32), batch)
    first = timed(lambda: model.evaluate(dataset, steps=short, verbose=0, return_dict=True))
    second = timed(lambda: model.evaluate(dataset, steps=long, verbose=0, return_dict=True))
    return first, second


def load_average() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return "load average unavailable"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--short", type=int, default=20)
    parser.add_argument("--long", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((ROWS, 784), dtype=np.float32)
    y = rng.integers(0, CLASSES, ROWS).astype(np.int32)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, batch {args.batch}, "
          f"steps {args.short}/{args.long}, rounds {args.rounds}; before: {load_average()}", flush=True)
    estimators = make_estimators(x, y, args.batch)
    keras_model = make_keras_model(estimators["none"])
    variants = {
        "evaluate, no metrics": lambda s, l: time_estimator(estimators["none"], x, y, args.batch, s, l),
        "evaluate, metric inputs fetched, no metric work": lambda s, l: time_estimator(
            estimators["fetch_only"], x, y, args.batch, s, l
        ),
        "evaluate, 5 bridge.metrics": lambda s, l: time_estimator(estimators["bridge"], x, y, args.batch, s, l),
        "evaluate, 5 Keras metric objects": lambda s, l: time_estimator(estimators["keras"], x, y, args.batch, s, l),
        "Keras model.evaluate, 5 metrics": lambda s, l: time_keras(keras_model, x, y, args.batch, s, l),
    }
    for run in variants.values():  # warm-up: lazy initialisation, first traces
        run(2, 4)
    print(f"after warm-up: {load_average()}", flush=True)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    cpu_ms: dict[str, list[float]] = {name: [] for name in variants}
    calls: dict[str, list[float]] = {name: [] for name in variants}
    results: dict[str, dict] = {}
    steps = args.long - args.short
    for _ in range(args.rounds):
        for name, run in variants.items():
            (wall_short, cpu_short, _), (wall_long, cpu_long, result) = run(args.short, args.long)
            rates[name].append(steps / (wall_long - wall_short))
            cpu_ms[name].append(1e3 * (cpu_long - cpu_short) / steps)
            calls[name].append(wall_long)
            results[name] = result
    print(f"after: {load_average()}")
    median = {name: statistics.median(rates[name]) for name in variants}
    best = {name: max(rates[name]) for name in variants}
    cpu = {name: statistics.median(cpu_ms[name]) for name in variants}
    call = {name: statistics.median(calls[name]) for name in variants}
    none = "evaluate, no metrics"
    print(f"| variant | steps/s (median) | time/step vs no metrics | steps/s (best) | best vs no metrics | "
          f"CPU ms/step | CPU vs no metrics | {args.long}-step call, s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in variants:
        print(f"| {name} | {median[name]:.1f} | {median[none] / median[name]:.3f} | {best[name]:.1f} | "
              f"{best[none] / best[name]:.3f} | {cpu[name]:.2f} | {cpu[name] / cpu[none]:.3f} | {call[name]:.2f} |")
    ours, objects, fit = "evaluate, 5 bridge.metrics", "evaluate, 5 Keras metric objects", "Keras model.evaluate, 5 metrics"
    for label, table in (("median wall", median), ("best wall", best)):
        overhead = table[none] / table[ours] - 1.0
        print(f"bridge metrics add {100 * overhead:+.1f}% to the no-metric evaluate time per step ({label}; "
              f"target <= +10%): {'met' if overhead <= 0.10 else 'NOT met'}")
    print(f"bridge metrics add {100 * (cpu[ours] / cpu[none] - 1):+.1f}% CPU time per step")
    fetched = "evaluate, metric inputs fetched, no metric work"
    print(f"of which computing and fetching the inputs in TensorFlow: {100 * (median[none] / median[fetched] - 1):+.1f}% "
          f"wall, {100 * (cpu[fetched] / cpu[none] - 1):+.1f}% CPU; bridge's host side on top: "
          f"{100 * (median[fetched] / median[ours] - 1):+.1f}% wall, {100 * (cpu[ours] / cpu[fetched] - 1):+.1f}% CPU")
    print(f"ratio steps/s, bridge metrics / Keras metric objects in evaluate: {median[ours] / median[objects]:.2f}")
    print(f"ratio steps/s, bridge metrics evaluate / Keras model.evaluate: {median[ours] / median[fit]:.2f}")
    print(f"ratio steps/s, no-metric evaluate / Keras model.evaluate: {median[none] / median[fit]:.2f}")
    print("values of the last long call (bridge / Keras objects / model.evaluate):")
    for key in ("accuracy", "precision", "recall", "auc", "exact_auc"):
        print(f"  {key}: {float(results['evaluate, 5 bridge.metrics'][key]):.6f} / "
              f"{float(results['evaluate, 5 Keras metric objects'][key]):.6f} / "
              f"{float(results['Keras model.evaluate, 5 metrics'][key]):.6f}")


if __name__ == "__main__":
    main()
