"""The legacy twin of the bridge benchmark: tf.estimator 2.15 on TF 2.15 (graph + Session).

Runs in the venv made by ``setup_legacy_venv.sh`` (tensorflow-cpu 2.15.1, tensorflow-estimator
2.15.0, keras 2.15.0); it imports nothing from bridge. ``benchmarks/estimator_vs_legacy.py``
starts it as a subprocess with a JSON plan and reads the ``RESULT {...}`` line it prints.

Same model, data and optimizer as the bridge side: 784-256-256-10 MLP (relu, logits), Adam(1e-3),
sparse softmax cross-entropy, ``tf.compat.v1.metrics.accuracy`` for evaluate, predictions
``{"logits": ...}``. Data: the same numpy arrays (RandomState(0)), in memory, through
``from_tensor_slices -> repeat -> batch(drop_remainder)`` with tf.data autotune off. The arrays are
fed through placeholders by an initializer hook (``after_create_session``), so they are not
embedded in the GraphDef as constants (that costs 10-40 s per call at 200 MB).

    <legacy-venv>/bin/python benchmarks/legacy/legacy_twin.py --check
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

FEATURES = 784
CLASSES = 10


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable synthetic data, bit-identical on numpy 1.x and 2.x (RandomState is frozen)."""
    rs = np.random.RandomState(seed)
    x = rs.random_sample((rows, FEATURES)).astype(np.float32)
    w = rs.standard_normal((FEATURES, CLASSES))
    y = np.argmax((x.astype(np.float64) - 0.5) @ w, axis=1).astype(np.int32)
    return x, y


def timed(fn, cpu: list | None = None) -> float:
    """Wall seconds of ``fn()``; appends this process's CPU seconds to ``cpu`` when given."""
    cpu0 = time.process_time()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    if cpu is not None:
        cpu.append(time.process_time() - cpu0)
    return wall


def measure(short_fn, long_fn, pairs: int) -> dict:
    """First call (warm-up, timed), then ``pairs`` (short, long) pairs: wall and CPU seconds."""
    first = timed(short_fn)
    out, cpu = [], []
    for _ in range(pairs):
        c: list = []
        out.append([timed(short_fn, c), timed(long_fn, c)])
        cpu.append(c)
    return {"first": first, "pairs": out, "cpu_pairs": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", help="JSON plan (see estimator_vs_legacy.py)")
    parser.add_argument("--check", action="store_true", help="a short run that prints the results")
    args = parser.parse_args()
    if args.check:
        plan = {"rows": 4096, "batch": 128, "pairs": 1, "threads": 2,
                "train": [8, 40], "eval": [8, 40], "predict": [8, 40]}
    else:
        plan = json.loads(args.plan)

    t0 = time.perf_counter()
    import tensorflow as tf

    import_s = time.perf_counter() - t0
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    threads = plan.get("threads", 2)

    x, y = make_data(plan["rows"])
    batch = plan["batch"]

    class FeedHook(tf.compat.v1.train.SessionRunHook):
        """Initialises the input iterator with the in-memory arrays, fed through placeholders."""

        def __init__(self):
            self.initializer = None
            self.feed = None

        def after_create_session(self, session, coord):
            session.run(self.initializer, feed_dict=self.feed)

    def input_fn_and_hook(steps: int | None, with_labels: bool = True):
        hook = FeedHook()

        def input_fn():
            x_ph = tf.compat.v1.placeholder(tf.float32, [None, FEATURES])
            y_ph = tf.compat.v1.placeholder(tf.int32, [None])
            dataset = tf.data.Dataset.from_tensor_slices((x_ph, y_ph) if with_labels else x_ph)
            dataset = dataset.repeat().batch(batch, drop_remainder=True)
            if steps is not None:
                dataset = dataset.take(steps)
            options = tf.data.Options()
            options.autotune.enabled = False
            dataset = dataset.with_options(options)
            iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
            hook.initializer = iterator.initializer
            hook.feed = {x_ph: x, y_ph: y} if with_labels else {x_ph: x}
            return iterator.get_next()

        return input_fn, hook

    def model_fn(features, labels, mode):
        h = tf.keras.layers.Dense(256, activation="relu")(features)
        h = tf.keras.layers.Dense(256, activation="relu")(h)
        logits = tf.keras.layers.Dense(CLASSES)(h)
        if mode == tf.estimator.ModeKeys.PREDICT:
            return tf.estimator.EstimatorSpec(mode, predictions={"logits": logits})
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
        if mode == tf.estimator.ModeKeys.EVAL:
            accuracy = tf.compat.v1.metrics.accuracy(labels, tf.argmax(logits, axis=1, output_type=tf.int32))
            return tf.estimator.EstimatorSpec(mode, loss=loss, eval_metric_ops={"accuracy": accuracy})
        train_op = tf.compat.v1.train.AdamOptimizer(1e-3).minimize(
            loss, global_step=tf.compat.v1.train.get_global_step()
        )
        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

    session_config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads
    )
    nockpt = tf.estimator.RunConfig(
        session_config=session_config, save_checkpoints_steps=None, save_checkpoints_secs=None,
        save_summary_steps=0, log_step_count_steps=None,
    )
    default = tf.estimator.RunConfig(session_config=session_config)

    def train_call(estimator, steps):
        input_fn, hook = input_fn_and_hook(None)
        return lambda: estimator.train(input_fn, hooks=[hook], steps=steps)

    results: dict = {"system": "legacy", "batch": batch, "import_s": import_s,
                     "versions": {"tensorflow": tf.__version__, "python": sys.version.split()[0]}}
    s, l = plan["train"]
    est = tf.estimator.Estimator(model_fn, model_dir=tempfile.mkdtemp(), config=nockpt)
    results["train_ipl1"] = measure(train_call(est, s), train_call(est, l), plan["pairs"])

    # Default RunConfig (checkpoints at start and end, summaries, step counter): the
    # checkpoints this writes are what evaluate and predict restore.
    est = tf.estimator.Estimator(model_fn, model_dir=tempfile.mkdtemp(), config=default)
    short = train_call(est, s)
    results["train_default"] = {"first": timed(short), "short": [timed(short) for _ in range(plan["pairs"])]}

    s, l = plan["eval"]
    last_eval = {}

    def eval_call(steps):
        input_fn, hook = input_fn_and_hook(None)

        def run():
            last_eval.update(est.evaluate(input_fn, steps=steps, hooks=[hook]))

        return run

    results["evaluate"] = measure(eval_call(s), eval_call(l), plan["pairs"])
    results["eval_result"] = {k: float(v) for k, v in last_eval.items()}

    s, l = plan["predict"]

    def predict_call(steps, single):
        input_fn, hook = input_fn_and_hook(steps, with_labels=False)

        def run():
            if single:
                count = 0
                for _ in est.predict(input_fn, hooks=[hook]):
                    count += 1
                assert count == steps * batch, count
            else:
                logits = np.concatenate(
                    [p["logits"] for p in est.predict(input_fn, hooks=[hook], yield_single_examples=False)]
                )
                assert logits.shape == (steps * batch, CLASSES), logits.shape

        return run

    results["predict_batch"] = measure(predict_call(s, False), predict_call(l, False), plan["pairs"])
    results["predict_single"] = measure(predict_call(s, True), predict_call(l, True), plan["pairs"])
    line = json.dumps(results)
    if args.check:
        print(json.dumps(results, indent=1))
    print("RESULT " + line, flush=True)


if __name__ == "__main__":
    main()
