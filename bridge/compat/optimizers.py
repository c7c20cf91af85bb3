"""``tf.compat.v1.train`` optimizers on Keras 3 variables inside model_fn.

Keras 3 hands out its own ``keras.Variable`` objects (``model.trainable_variables``), which
wrap a ``tf.Variable`` on the TensorFlow backend. v1 optimizers only know ``tf.Variable``
(``'Variable' object has no attribute '_in_graph_mode'``). While model_fn is traced,
``compute_gradients`` and ``apply_gradients`` (and so ``minimize``) take Keras variables and use
the ``tf.Variable`` inside: same variable, same checkpoint key, slots named after it.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

import tensorflow as tf

from bridge._model_fn_scopes import ModelFnCall, register
from bridge.compat._patching import attributes_set


def as_tf_variable(variable: Any) -> Any:
    """The ``tf.Variable`` behind a Keras 3 variable; anything else unchanged."""
    if isinstance(variable, tf.Variable):
        return variable
    inner = getattr(variable, "value", None)
    if isinstance(inner, tf.Variable) and hasattr(variable, "path"):
        return inner
    return variable


def _wrapped(optimizer_class: type) -> dict[str, Any]:
    compute, apply = optimizer_class.compute_gradients, optimizer_class.apply_gradients

    @functools.wraps(compute)
    def compute_gradients(self, loss, var_list=None, *args, **kwargs):
        if var_list is not None:
            var_list = [as_tf_variable(v) for v in tf.nest.flatten(var_list)]
        return compute(self, loss, var_list, *args, **kwargs)

    @functools.wraps(apply)
    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        pairs = [(g, as_tf_variable(v)) for g, v in grads_and_vars]
        return apply(self, pairs, *args, **kwargs)

    return {"compute_gradients": compute_gradients, "apply_gradients": apply_gradients}


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Iterator[None]:
    optimizer_class = tf.compat.v1.train.Optimizer
    with attributes_set(optimizer_class, _wrapped(optimizer_class)):
        yield


register(_model_fn_scope)
