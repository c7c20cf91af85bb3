"""Canned estimators: bridge vs tf.estimator 2.15 on the same tabular data, same window.

Model: ``DNNLinearCombinedClassifier`` (binary), the wide part over two categorical columns and
their crossed column, the deep part over 3 numeric columns and 3 embedding columns (dim 8) with
hidden units [64, 32]; default optimizers (Adagrad / Ftrl). Data: 100,000 rows (numpy
RandomState(0), learnable labels) in memory: 3 float columns and 3 string columns
(vocabulary lists of 50 and 500 entries, and a hashed column of ~5,000 values), fed through
``from_tensor_slices -> batch`` by both systems.

Each call is timed whole (model_fn trace, restore, every step, checkpoint save) on one pass over
the 100,000 rows: ``train`` (one epoch), ``evaluate``, ``predict`` (all predictions consumed).
Each system runs in its own fresh process per round (bridge here on TF 2.21, the legacy twin in
the legacy venv on TF 2.15), alternating which goes first; figures are medians over rounds, in
examples per second.

    PYTHONPATH=. .venv/bin/python benchmarks/canned.py [--rounds 3] [--batch 512] [--rows 100000]
        [--legacy-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_LEGACY_PYTHON = os.path.expanduser("~/.cache/estimator-bridge/legacy-venv/bin/python")


def make_data(rows: int):
    """Three numeric and three string columns; the label depends on all of them."""
    import numpy as np

    rs = np.random.RandomState(0)
    numeric = rs.standard_normal((rows, 3)).astype(np.float32)
    colors = np.array([f"c{i}" for i in range(50)])
    items = np.array([f"item{i}" for i in range(500)])
    color_id = rs.randint(0, 50, rows)
    item_id = rs.randint(0, 500, rows)
    user_id = rs.randint(0, 5000, rows)
    score = numeric @ np.array([1.0, -0.5, 0.3]) + np.sin(color_id) + np.cos(item_id / 7.0) + (user_id % 3 - 1) * 0.5
    features = {
        "n0": numeric[:, 0:1], "n1": numeric[:, 1:2], "n2": numeric[:, 2:3],
        "color": colors[color_id].reshape(-1, 1),
        "item": items[item_id].reshape(-1, 1),
        "user": np.array([f"u{i}" for i in user_id]).reshape(-1, 1),
    }
    labels = (score > np.median(score)).astype(np.int64).reshape(-1, 1)
    return features, labels, list(colors), list(items)


def build(namespace, model_dir: str, colors, items):
    """The same estimator from ``tf.estimator`` (legacy) or ``bridge``."""
    import tensorflow as tf

    fc = tf.feature_column
    color = fc.categorical_column_with_vocabulary_list("color", colors)
    item = fc.categorical_column_with_vocabulary_list("item", items)
    user = fc.categorical_column_with_hash_bucket("user", 5000)
    wide = [color, item, fc.crossed_column([color, item], 10000)]
    deep = [fc.numeric_column(k) for k in ("n0", "n1", "n2")] + [
        fc.embedding_column(c, 8) for c in (color, item, user)]
    return namespace.DNNLinearCombinedClassifier(
        model_dir=model_dir, linear_feature_columns=wide, dnn_feature_columns=deep, dnn_hidden_units=[64, 32],
        config=namespace.RunConfig(tf_random_seed=0, save_summary_steps=1000, log_step_count_steps=1000))


def worker(system: str, rows: int, batch: int) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    if system == "bridge":
        import bridge as namespace
    else:
        tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
        namespace = tf.estimator
    features, labels, colors, items = make_data(rows)

    def input_fn():
        return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch)

    est = build(namespace, tempfile.mkdtemp(), colors, items)
    timings = {}
    start = time.perf_counter()
    est.train(input_fn)
    timings["train"] = time.perf_counter() - start
    start = time.perf_counter()
    result = est.evaluate(input_fn)
    timings["evaluate"] = time.perf_counter() - start
    start = time.perf_counter()
    count = sum(1 for _ in est.predict(input_fn, predict_keys=["class_ids", "logistic"]))
    timings["predict"] = time.perf_counter() - start
    assert count == rows, count
    return {"seconds": timings, "auc": float(result["auc"]), "steps": int(result["global_step"])}


def run(system: str, python: str, rows: int, batch: int) -> dict:
    env = dict(os.environ, PYTHONPATH=REPO if system == "bridge" else "", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([python, HERE, "--worker", system, "--rows", str(rows), "--batch", str(batch)],
                          env=env, capture_output=True, text=True, timeout=1800)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{system} worker failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["bridge", "legacy"], help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--legacy-python", default=os.environ.get("LEGACY_PYTHON", DEFAULT_LEGACY_PYTHON))
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.rows, args.batch)))
        return
    systems = {"bridge": sys.executable}
    if os.path.exists(args.legacy_python):
        systems["legacy"] = args.legacy_python
    else:
        print(f"legacy venv not found at {args.legacy_python}: bridge only "
              "(create it with benchmarks/legacy/setup_legacy_venv.sh)")
    runs: dict[str, list[dict]] = {name: [] for name in systems}
    for round_ in range(args.rounds):
        order = list(systems) if round_ % 2 == 0 else list(reversed(systems))
        for name in order:
            runs[name].append(run(name, systems[name], args.rows, args.batch))
            seconds = runs[name][-1]["seconds"]
            print(f"round {round_ + 1} {name:>6}: " + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
                  + f", auc {runs[name][-1]['auc']:.4f}", flush=True)
    print(f"\n{args.rows:,} rows, batch {args.batch}, {args.rounds} rounds; whole calls, examples/s (median):")
    header = f"| call | {' | '.join(systems)} |" + (" bridge / legacy (per-round range) |" if "legacy" in systems else "")
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for call in ("train", "evaluate", "predict"):
        rates = {name: [args.rows / r["seconds"][call] for r in runs[name]] for name in systems}
        cells = [f"{statistics.median(rates[name]):,.0f}" for name in systems]
        if "legacy" in systems:
            ratios = [b / l for b, l in zip(rates["bridge"], rates["legacy"])]
            cells.append(f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
        print(f"| {call} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
