"""Keras 2 APIs that Keras 3 removed, used in legacy model_fns: errors that name the replacement.

Keras 3 answers them with a bare ``AttributeError``. While model_fn is traced, the same
``AttributeError`` says what to write instead (docs/migration.md has the table).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from bridge._model_fn_scopes import ModelFnCall, register
from bridge.compat._patching import attributes_set

REPLACEMENTS = {
    "get_losses_for": (
        "Keras 3 layers have no get_losses_for(); use `model.losses` (inside model_fn bridge also puts "
        "them into REGULARIZATION_LOSSES, so tf.compat.v1.losses.get_regularization_loss() sums them)."
    ),
    "get_updates_for": (
        "Keras 3 layers have no get_updates_for(): a Keras 3 layer updates its state (e.g. BatchNormalization's "
        "moving statistics) itself when called with training=True. Call the model with "
        "training=(mode == ModeKeys.TRAIN) and drop the update ops."
    ),
    "get_updates": (
        "Keras 3 optimizers have no get_updates(); build the train_op with "
        "bridge.minimize(loss, optimizer, var_list=model.trainable_variables)."
    ),
    "iterations": (
        "A Keras 3 optimizer's `iterations` cannot be replaced (Keras 2's `optimizer.iterations = global_step`). "
        "bridge.minimize(loss, optimizer) increments the Estimator's global step itself; read it with "
        "tf.compat.v1.train.get_global_step() (e.g. for a learning-rate schedule)."
    ),
    "DenseFeatures": (
        "tf.keras.layers.DenseFeatures is not in Keras 3; turn feature columns into a dense tensor with "
        "tf.compat.v1.feature_column.input_layer(features, feature_columns)."
    ),
}


def _refused(name: str) -> property:
    def get(self: Any) -> Any:
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'. {REPLACEMENTS[name]}")

    return property(get)


class DenseFeatures:
    """Stands for Keras 2's DenseFeatures inside model_fn: constructing it says what to use instead."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AttributeError(REPLACEMENTS["DenseFeatures"])


def _optimizer_setattr(original: Any) -> Any:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name == "iterations":
            raise AttributeError(REPLACEMENTS["iterations"])
        original(self, name, value)

    return __setattr__


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Iterator[None]:
    try:
        import keras
        import tensorflow as tf
    except ImportError:  # pragma: no cover - both are dependencies
        yield
        return
    optimizer = keras.optimizers.Optimizer
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            attributes_set(keras.layers.Layer, {n: _refused(n) for n in ("get_losses_for", "get_updates_for")})
        )
        stack.enter_context(
            attributes_set(
                optimizer, {"get_updates": _refused("get_updates"), "__setattr__": _optimizer_setattr(optimizer.__setattr__)}
            )
        )
        for layers_module in {id(m): m for m in (keras.layers, tf.keras.layers)}.values():
            if not hasattr(layers_module, "DenseFeatures"):
                stack.enter_context(attributes_set(layers_module, {"DenseFeatures": DenseFeatures}))
        yield


register(_model_fn_scope)
