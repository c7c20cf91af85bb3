"""One task of a TF_CONFIG cluster: a classic model_fn trained with MultiWorkerMirroredStrategy.

Every process of the cluster runs this same program with its own TF_CONFIG (see README.md):

* ``chief`` and ``worker`` tasks create ``tf.distribute.MultiWorkerMirroredStrategy`` first thing
  and train in step; only the chief writes checkpoints and summaries into ``--model-dir``;
* the ``evaluator`` task evaluates every new checkpoint until training reaches ``--steps``.

Without TF_CONFIG it trains and evaluates locally (one process, no strategy).

Data: scikit-learn's bundled 8x8 digits (no download). The input_fn returns global batches of
``--batch-size``; the strategy splits each one across the workers.

    TF_CONFIG='{"cluster": {...}, "task": {"type": "worker", "index": 0}}' \\
        python examples/distributed/train.py --model-dir /shared/digits --steps 300
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def task_type() -> str | None:
    """This process's role from TF_CONFIG (None without a cluster)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    if not config.get("cluster"):
        return None
    return (config.get("task") or {}).get("type")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="checkpoints and summaries (shared by every task)")
    parser.add_argument("--steps", type=int, default=300, help="train until this global step")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--save-checkpoints-steps", type=int, default=100)
    args = parser.parse_args(argv)

    import tensorflow as tf

    role = task_type()
    # The strategy comes first: it configures TensorFlow's collective runtime for the cluster.
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if role in ("chief", "worker") else None

    import keras
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import bridge

    logging.basicConfig(level=logging.INFO, format=f"[{role or 'local'}] %(message)s")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=42, stratify=y)

    def train_input_fn():
        # Global batches; under the strategy each worker takes its share of every batch.
        dataset = tf.data.Dataset.from_tensor_slices(({"pixels": x_train}, y_train))
        return dataset.shuffle(len(x_train), seed=0).repeat().batch(args.batch_size)

    def eval_input_fn():
        return tf.data.Dataset.from_tensor_slices(({"pixels": x_test}, y_test)).batch(256)

    def model_fn(features, labels, mode, params):
        hidden = keras.layers.Dense(64, activation="relu", name="hidden")(features["pixels"])
        logits = keras.layers.Dense(10, name="logits")(hidden)
        if mode == bridge.ModeKeys.PREDICT:
            return bridge.EstimatorSpec(mode, predictions={"class": tf.argmax(logits, axis=1)})
        # Mean over this replica's share of the batch; bridge.minimize makes the update the mean
        # of all replicas' gradients, i.e. the gradient of the global-batch mean.
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        accuracy.update_state(labels, logits)
        train_op = bridge.minimize(loss, keras.optimizers.Adam(params["learning_rate"]))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, eval_metric_ops={"accuracy": accuracy})

    config = bridge.RunConfig(
        model_dir=args.model_dir,
        train_distribute=strategy,
        save_checkpoints_steps=args.save_checkpoints_steps,
        log_step_count_steps=50,
        tf_random_seed=0,
    )
    estimator = bridge.Estimator(model_fn, config=config, params={"learning_rate": args.learning_rate})
    result = bridge.train_and_evaluate(
        estimator,
        bridge.TrainSpec(train_input_fn, max_steps=args.steps),
        bridge.EvalSpec(eval_input_fn, steps=None, start_delay_secs=0, throttle_secs=0),
    )
    if role is None:  # local run: train_and_evaluate returned the last evaluation
        print(json.dumps({k: float(v) for k, v in result[0].items()}))
    elif role == "evaluator":
        final = estimator.evaluate(eval_input_fn)
        print(json.dumps({k: float(v) for k, v in final.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
