"""bridge Estimator.train vs Keras 3 model.fit: same MLP, data and optimizer, one process.

Model: 784-256-256-10 MLP, Adam(1e-3), sparse softmax cross-entropy, in-memory data through
the same tf.data pipeline (autotune off). Steady-state steps/s is measured from two calls of
different lengths, (S_long - S_short) / (t_long - t_short), which removes each call's fixed cost
(trace, restore, save); the fixed cost is reported separately. Rounds alternate the systems.

    .venv/bin/python benchmarks/train_loop.py [--batch 128 1024] [--rounds 3]
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


def make_dataset(x: np.ndarray, y: np.ndarray, batch: int) -> tf.data.Dataset:
    options = tf.data.Options()
    options.autotune.enabled = False
    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch, drop_remainder=True).with_options(options)


def mlp() -> keras.Model:
    return keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)]
    )


def model_fn(features, labels, mode):
    h = keras.layers.Dense(256, activation="relu")(features)
    h = keras.layers.Dense(256, activation="relu")(h)
    logits = keras.layers.Dense(10)(h)
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.Adam(1e-3)))


def time_bridge(x, y, batch, per_call, short, long):
    # max_steps_per_call=1: one step per traced call really is one (no grouped steps), as in
    # Keras's steps_per_execution=1.
    config = bridge.RunConfig(
        iterations_per_loop=per_call, max_steps_per_call=1, save_checkpoints_steps=None,
        save_checkpoints_secs=None, log_step_count_steps=None, save_summary_steps=0, progress_bar=False,
    )
    estimator = bridge.Estimator(model_fn, model_dir=tempfile.mkdtemp(), config=config)
    input_fn = lambda: make_dataset(x, y, batch)  # noqa: E731
    estimator.train(input_fn, steps=short)  # warm-up (first call in the process pays lazy init)
    start = time.perf_counter()
    estimator.train(input_fn, steps=short)
    t_short = time.perf_counter() - start
    start = time.perf_counter()
    estimator.train(input_fn, steps=long)
    t_long = time.perf_counter() - start
    return t_short, t_long


def time_keras(x, y, batch, per_call, short, long):
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=per_call)
    dataset = make_dataset(x, y, batch)
    model.fit(dataset, steps_per_epoch=short, epochs=1, verbose=0)  # warm-up: tracing
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=short, epochs=1, verbose=0)
    t_short = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=long, epochs=1, verbose=0)
    t_long = time.perf_counter() - start
    return t_short, t_long


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((ROWS, 784), dtype=np.float32)
    y = rng.integers(0, 10, ROWS).astype(np.int32)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, rounds={args.rounds}")
    print("| batch | steps per call | bridge steps/s | Keras fit steps/s | ratio bridge/Keras | bridge fixed s/call | Keras fixed s/call |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for batch in args.batch:
        short, long = (32, 640) if batch <= 256 else (32, 160)
        for per_call in (1, 32):
            rates = {"bridge": [], "keras": []}
            fixed = {"bridge": [], "keras": []}
            for _ in range(args.rounds):
                for name, fn in (("bridge", time_bridge), ("keras", time_keras)):
                    t_short, t_long = fn(x, y, batch, per_call, short, long)
                    rate = (long - short) / (t_long - t_short)
                    rates[name].append(rate)
                    fixed[name].append(t_short - short / rate)
            b, k = statistics.median(rates["bridge"]), statistics.median(rates["keras"])
            print(
                f"| {batch} | {per_call} | {b:.0f} | {k:.0f} | {b / k:.2f} | "
                f"{statistics.median(fixed['bridge']):.3f} | {statistics.median(fixed['keras']):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
