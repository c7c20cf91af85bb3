"""Where a training / predict step's time goes: input, kernels, the call, the Python loop.

Same model, data and settings as ``estimator_vs_legacy.py`` (784-256-256-10 MLP, Adam, in-memory
data, tf.data autotune off, 2 threads). For each batch size it measures, in one process, alternating
the variants over several rounds (medians, ms per step):

* ``input only``: a traced loop that only pulls batches from the dataset iterator.
* ``graph loop``: bridge's traced step run N steps per call in its ``tf.while_loop``
  (``iterations_per_loop``): input + kernels + the loop's own ops, no Python per step.
* ``flat call / step``: the one-step concrete function called once per step with pre-flattened
  arguments, outputs fetched: adds the per-call cost of TensorFlow's eager function call.
* ``estimator, 1 step/call``: ``Estimator.train`` with ``max_steps_per_call=1``: adds bridge's
  Python loop (hooks, stop/NaN checks, checkpoint policy).
* ``estimator, default``: grouped steps.
* ``legacy Session.run / step``: with ``--legacy-python``, the legacy twin's graph (TF 2.15) run
  by a bare ``Session.run`` loop, no Estimator: the kernels and launch cost tf.estimator had.

    PYTHONPATH=. .venv/bin/python benchmarks/step_breakdown.py [--batch 128 1024] [--rounds 5]
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "legacy"))
from estimator_vs_legacy import _dataset, bridge_model_fn  # noqa: E402
from legacy_twin import make_data  # noqa: E402

DEFAULT_LEGACY_PYTHON = os.path.expanduser("~/.cache/estimator-bridge/legacy-venv/bin/python")
ROWS = 65536

LEGACY_SESSION_LOOP = r"""
import json, sys, time, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, sys.argv[1])
import tensorflow as tf
from legacy_twin import make_data, CLASSES
tf.compat.v1.disable_eager_execution()
batch, steps, rounds = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x, y = make_data(65536)
out = {}
for mode in ("train", "predict"):
    g = tf.Graph()
    with g.as_default():
        x_ph = tf.compat.v1.placeholder(tf.float32, [None, 784]); y_ph = tf.compat.v1.placeholder(tf.int32, [None])
        ds = tf.data.Dataset.from_tensor_slices((x_ph, y_ph)).repeat().batch(batch, drop_remainder=True)
        opt = tf.data.Options(); opt.autotune.enabled = False
        it = tf.compat.v1.data.make_initializable_iterator(ds.with_options(opt))
        features, labels = it.get_next()
        h = tf.keras.layers.Dense(256, activation="relu")(features)
        h = tf.keras.layers.Dense(256, activation="relu")(h)
        logits = tf.keras.layers.Dense(CLASSES)(h)
        gs = tf.compat.v1.train.get_or_create_global_step()
        if mode == "train":
            loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
            fetch = [tf.compat.v1.train.AdamOptimizer(1e-3).minimize(loss, global_step=gs), loss]
        else:
            fetch = logits
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=2)
        with tf.compat.v1.Session(config=config) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(it.initializer, {x_ph: x, y_ph: y})
            for _ in range(20):
                sess.run(fetch)
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                for _ in range(steps):
                    sess.run(fetch)
                times.append((time.perf_counter() - start) / steps * 1e3)
            out[mode] = times
print("RESULT " + json.dumps(out))
"""


def measure_bridge(batch: int, steps: int, rounds: int) -> dict[str, list[float]]:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    tf.get_logger().setLevel("ERROR")
    import bridge
    import bridge._step

    x, y = make_data(ROWS)

    def dataset():
        return _dataset(tf, x, y, batch)

    model_fn = bridge_model_fn()

    quiet = {"save_checkpoints_steps": None, "save_checkpoints_secs": None, "log_step_count_steps": None,
             "save_summary_steps": 0, "progress_bar": False}
    model_dir = tempfile.mkdtemp()

    def estimator(**extra):
        return bridge.Estimator(model_fn, model_dir=model_dir, config=bridge.RunConfig(**quiet, **extra))

    # The one-step concrete function, kept alive after train() returns.
    kept: dict = {}
    original_close = bridge._step.TracedStep.close

    def keep(self):
        if self.iterations == 1 and "call" not in kept:
            kept["call"], kept["iterator"] = self._call, self._iterator
        original_close(self)

    bridge._step.TracedStep.close = keep
    one_step, grouped, looped = estimator(max_steps_per_call=1), estimator(), estimator(iterations_per_loop=64)
    one_step.train(lambda: dataset(), steps=8)
    bridge._step.TracedStep.close = original_close
    flat_call = kept["call"]

    input_iterator = iter(dataset())

    @tf.function(autograph=False)
    def pull(iterator, n):
        def body(i, acc):
            features, labels = next(iterator)
            return i + 1, acc + features[0, 0] + tf.cast(labels[0], tf.float32)

        return tf.while_loop(lambda i, acc: i < n, body, [tf.constant(0), tf.constant(0.0)])[1]

    def per_step(fn, n):
        start = time.perf_counter()
        fn(n)
        return (time.perf_counter() - start) / n * 1e3

    def estimator_train(est):
        def run(n):
            est.train(lambda: dataset(), steps=n)

        return run

    def train_per_step(est, n):
        """Steady ms/step of ``est.train``: (long - short) call pair removes the fixed cost.

        The short call runs 128 steps, so that the default configuration groups both calls.
        """
        short = per_step(estimator_train(est), 128) * 128
        long = per_step(estimator_train(est), n + 128) * (n + 128)
        return (long - short) / n

    def flat(n):
        for _ in range(n):
            outputs = flat_call()
            [t.numpy() for t in outputs]

    pull(input_iterator, tf.constant(8))
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        results.setdefault("input only", []).append(per_step(lambda n: pull(input_iterator, tf.constant(n)).numpy(), steps))
        results.setdefault("graph loop (64 steps/call)", []).append(train_per_step(looped, steps))
        results.setdefault("flat call / step", []).append(per_step(flat, steps))
        results.setdefault("estimator, 1 step/call", []).append(train_per_step(one_step, steps))
        results.setdefault("estimator, default (grouped)", []).append(train_per_step(grouped, steps))
    return results


def measure_legacy(python: str, batch: int, steps: int, rounds: int) -> dict[str, list[float]]:
    proc = subprocess.run(
        [python, "-c", LEGACY_SESSION_LOOP, os.path.join(HERE, "legacy"), str(batch), str(steps), str(rounds)],
        capture_output=True, text=True, timeout=900, check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            data = json.loads(line[len("RESULT "):])
            return {"legacy Session.run / step (train)": data["train"],
                    "legacy Session.run / step (predict)": data["predict"]}
    raise RuntimeError(f"legacy run failed: {proc.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--legacy-python", default=os.environ.get("LEGACY_PYTHON", DEFAULT_LEGACY_PYTHON))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        steps = 1200 if args.worker <= 256 else 200
        print("RESULT " + json.dumps(measure_bridge(args.worker, steps, args.rounds)), flush=True)
        return
    print(f"| B | what | ms/step (median of {args.rounds}) | min | max |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for batch in args.batch:
        steps = 1200 if batch <= 256 else 200
        proc = subprocess.run([sys.executable, __file__, "--worker", str(batch), "--rounds", str(args.rounds)],
                              capture_output=True, text=True, check=False)
        rows = None
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                rows = json.loads(line[len("RESULT "):])
        if rows is None:
            raise RuntimeError(proc.stderr[-3000:])
        if os.path.exists(args.legacy_python):
            rows.update(measure_legacy(args.legacy_python, batch, steps, args.rounds))
        for name, values in rows.items():
            print(f"| {batch} | {name} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
