"""The model_dirs tf.estimator 2.15 wrote (tests/fixtures/legacy_2_15/model_dirs) and a bridge model_fn for them.

The fixtures' model_fn was two ``tf.compat.v1.layers.dense`` (4 -> 8 relu -> 3) with a
``tf.compat.v1.train`` optimizer; ``model_fn`` here builds the same network from Keras 3 layers
named like TF1's (``dense``, ``dense_1``), with either optimizer family.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

import bridge

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "legacy_2_15", "model_dirs")
V1_OPTIMIZERS = [
    "adam", "momentum", "nesterov", "adagrad", "rmsprop", "rmsprop_centered", "ftrl", "adagrad_da",
    "proximal_adagrad", "sgd",
]  # fmt: skip

with open(os.path.join(FIXTURES, "data.json")) as _f:
    DATA = {k: np.asarray(v, np.float32 if k.endswith("_x") else np.int32) for k, v in json.load(_f).items()}


def facts(name: str) -> dict[str, Any]:
    with open(os.path.join(FIXTURES, name, "facts.json")) as f:
        return json.load(f)


def copy_model_dir(name: str, tmp_path) -> str:
    """A writable copy of the 2.15 model_dir recorded with optimizer ``name``."""
    target = str(tmp_path / f"{name}_model_dir")
    shutil.copytree(os.path.join(FIXTURES, name, "model_dir"), target)
    return target


def v1_optimizer(name: str) -> tf.compat.v1.train.Optimizer:
    """The tf.compat.v1.train optimizer the fixture was recorded with (same hyperparameters)."""
    h = facts(name)["hyperparameters"]
    v1 = tf.compat.v1.train
    lr = h["learning_rate"]
    return {
        "adam": lambda: v1.AdamOptimizer(lr, h["beta1"], h["beta2"], h["epsilon"]),
        "momentum": lambda: v1.MomentumOptimizer(lr, h["momentum"]),
        "nesterov": lambda: v1.MomentumOptimizer(lr, h["momentum"], use_nesterov=True),
        "adagrad": lambda: v1.AdagradOptimizer(lr),
        "rmsprop": lambda: v1.RMSPropOptimizer(lr, momentum=h["momentum"]),
        "rmsprop_centered": lambda: v1.RMSPropOptimizer(lr, momentum=h["momentum"], centered=True),
        "ftrl": lambda: v1.FtrlOptimizer(lr),
        "adagrad_da": lambda: v1.AdagradDAOptimizer(
            lr, tf.compat.v1.train.get_global_step(), l1_regularization_strength=h["l1_regularization_strength"]
        ),
        "proximal_adagrad": lambda: v1.ProximalAdagradOptimizer(
            lr, l1_regularization_strength=h["l1_regularization_strength"],
            l2_regularization_strength=h["l2_regularization_strength"],
        ),  # fmt: skip
        "sgd": lambda: v1.GradientDescentOptimizer(lr),
    }[name]()


def model_fn(features, labels, mode, params):
    """4 -> 8 -> 3 MLP named as tf.compat.v1.layers.dense named it; ``params['optimizer']()`` trains it.

    ``params['names']`` renames the two layers (default: TF1's ``dense``, ``dense_1``).
    """
    names = params.get("names", ("dense", "dense_1"))
    hidden = keras.layers.Dense(8, activation="relu", name=names[0])(features["x"])
    logits = keras.layers.Dense(3, name=names[1])(hidden)
    probabilities = tf.nn.softmax(logits)
    class_ids = tf.argmax(logits, axis=1)
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions={"probabilities": probabilities, "class_ids": class_ids})
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    if mode == bridge.ModeKeys.EVAL:
        return bridge.EstimatorSpec(
            mode, loss=loss, eval_metric_ops={"accuracy": tf.compat.v1.metrics.accuracy(labels, class_ids)}
        )
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op(loss, params["optimizer"]()))


def train_op(loss: tf.Tensor, optimizer: Any) -> Any:
    """A v1 optimizer's own minimize (as in 2.15), or bridge.minimize for a Keras 3 optimizer."""
    if isinstance(optimizer, tf.compat.v1.train.Optimizer):
        return optimizer.minimize(loss, global_step=tf.compat.v1.train.get_global_step())
    return bridge.minimize(loss, optimizer)


def estimator(model_dir: str, optimizer: Callable[[], Any], names=("dense", "dense_1"), **kwargs) -> bridge.Estimator:
    return bridge.Estimator(model_fn, model_dir=model_dir, params={"optimizer": optimizer, "names": names}, **kwargs)


def input_fn(x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 16) -> Callable[[], tf.data.Dataset]:
    def fn():
        return tf.data.Dataset.from_tensor_slices(({"x": x}, y) if y is not None else {"x": x}).batch(batch_size)

    return fn


def one_step_batch() -> Callable[[], tf.data.Dataset]:
    """The batch 2.15 took its one recorded extra step on."""
    return input_fn(DATA["batch_x"], DATA["batch_y"])


def variables(model_dir: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(model_dir)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(model_dir)}
