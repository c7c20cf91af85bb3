"""A model_fn written with tf.compat.v1.layers vs the same model with Keras 3 layers, on bridge.

Model: 16x16x1 images -> conv 3x3x32 + batch norm + relu -> max pool 2 -> conv 3x3x64 + batch
norm + relu -> max pool 2 -> flatten -> dense 128 relu -> dropout 0.3 -> dense 10; sparse softmax
cross-entropy, tf.compat.v1.train.MomentumOptimizer(0.01, 0.9) in both (it takes Keras 3
variables inside a bridge model_fn), batch-norm updates through UPDATE_OPS (v1) or inside the layer
call (Keras). Steady steps/s from two calls of different lengths, (L - S) / (t_long - t_short),
which removes each call's fixed cost (trace, restore, save). Rounds alternate the two forms; each
form gets a fresh Estimator (model_dir) per round.

    PYTHONPATH=. .venv/bin/python benchmarks/v1_layers.py [--batch 128] [--rounds 5] [--short 100 --long 600]
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

ROWS = 4096


def v1_model_fn(features, labels, mode):
    layers = tf.compat.v1.layers
    training = mode == bridge.ModeKeys.TRAIN
    x = layers.conv2d(features, 32, 3, padding="same", use_bias=False)
    x = tf.nn.relu(layers.batch_normalization(x, training=training))
    x = layers.max_pooling2d(x, 2, 2)
    x = layers.conv2d(x, 64, 3, padding="same", use_bias=False)
    x = tf.nn.relu(layers.batch_normalization(x, training=training))
    x = layers.max_pooling2d(x, 2, 2)
    x = layers.dense(layers.flatten(x), 128, activation=tf.nn.relu)
    logits = layers.dense(layers.dropout(x, 0.3, training=training), 10)
    return _spec(mode, labels, logits, tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS), None)


def keras_model_fn(features, labels, mode):
    training = mode == bridge.ModeKeys.TRAIN
    model = keras.Sequential(
        [
            keras.layers.Conv2D(32, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2, 2),
            keras.layers.Conv2D(64, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2, 2),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10),
        ]
    )
    logits = model(features, training=training)
    return _spec(mode, labels, logits, [], model.trainable_variables)


def _spec(mode, labels, logits, update_ops, var_list):
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
    optimizer = tf.compat.v1.train.MomentumOptimizer(0.01, 0.9)
    with tf.control_dependencies(update_ops):
        train_op = optimizer.minimize(loss, global_step=tf.compat.v1.train.get_global_step(), var_list=var_list)
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op)


MODEL_FNS = {"v1 layers": v1_model_fn, "Keras 3 layers": keras_model_fn}


def steady_rate(model_fn, x, y, batch, short, long):
    config = bridge.RunConfig(
        save_checkpoints_steps=None, save_checkpoints_secs=None, log_step_count_steps=None, save_summary_steps=0, progress_bar=False
    )
    estimator = bridge.Estimator(model_fn, model_dir=tempfile.mkdtemp(), config=config)
    options = tf.data.Options()
    options.autotune.enabled = False

    def input_fn():
        return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch, drop_remainder=True).with_options(options)

    estimator.train(input_fn, steps=short)  # warm-up
    times = {}
    for steps in (short, long):
        start = time.perf_counter()
        estimator.train(input_fn, steps=steps)
        times[steps] = time.perf_counter() - start
    return (long - short) / (times[long] - times[short])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--long", type=int, default=600)
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    x = rng.rand(ROWS, 16, 16, 1).astype(np.float32)
    y = rng.randint(0, 10, ROWS).astype(np.int32)
    rates: dict[str, list[float]] = {name: [] for name in MODEL_FNS}
    for round_index in range(args.rounds):
        order = list(MODEL_FNS) if round_index % 2 == 0 else list(reversed(MODEL_FNS))
        for name in order:
            rates[name].append(steady_rate(MODEL_FNS[name], x, y, args.batch, args.short, args.long))
        print(f"round {round_index + 1}: " + ", ".join(f"{n} {rates[n][-1]:.1f} steps/s" for n in MODEL_FNS), flush=True)
    ratios = [v1 / k for v1, k in zip(rates["v1 layers"], rates["Keras 3 layers"])]
    print(f"\nbatch {args.batch}, {args.rounds} rounds, steady steps/s (median): "
          + ", ".join(f"{n} {statistics.median(r):.1f}" for n, r in rates.items()))
    print(f"v1 / Keras 3: median {statistics.median(ratios):.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
