"""Keras 3 layer losses in ``REGULARIZATION_LOSSES``, so the v1 loss helpers see them.

TF1 code sums its penalties with ``tf.compat.v1.losses.get_regularization_loss()`` or
``get_total_loss()``, which read the ``REGULARIZATION_LOSSES`` collection. Keras 3 keeps a
layer's penalties on the layer (``layer.losses``) and never touches graph collections, so those
helpers returned 0 (as they did for tf.keras layers in 2.15, silently).

While model_fn is traced, every outermost Keras layer call adds the penalties it brought to the
collection: each regularized weight's penalty once (the first time its layer runs), and each
``add_loss`` / activity-regularizer loss of that call. ``tf.compat.v1.layers`` add theirs
themselves, as TF1's did.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

import tensorflow as tf

from bridge._model_fn_scopes import ModelFnCall, register
from bridge.compat._patching import attributes_set


def _collect(layer: Any, seen: set[int]) -> None:
    """Adds the penalties of ``layer`` (and its sublayers) not yet in the collection."""
    key = tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES
    for sublayer in layer._flatten_layers(include_self=True):  # pylint: disable=protected-access
        for variable in sublayer.trainable_weights:
            regularizer = getattr(variable, "regularizer", None)
            if regularizer is not None and id(variable) not in seen:
                seen.add(id(variable))
                tf.compat.v1.add_to_collection(key, regularizer(variable))
        for loss in sublayer._get_own_losses():  # pylint: disable=protected-access
            if id(loss) not in seen:
                seen.add(id(loss))
                tf.compat.v1.add_to_collection(key, loss)


def _in_layer_call() -> bool:
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("current_call_ctx") is not None


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Iterator[None]:
    try:
        import keras
    except ImportError:  # pragma: no cover - keras is a dependency
        yield
        return
    original = keras.layers.Layer.__call__
    seen: set[int] = set()

    @functools.wraps(original)
    def call_and_collect(self, *args, **kwargs):
        outermost = not _in_layer_call()
        outputs = original(self, *args, **kwargs)
        if outermost and not tf.executing_eagerly():
            _collect(self, seen)
        return outputs

    with attributes_set(keras.layers.Layer, {"__call__": call_and_collect}):
        yield


register(_model_fn_scope)
