"""``tf.compat.v1.train`` optimizers on Keras 3 variables inside model_fn.

Keras 3 hands out its own ``keras.Variable`` objects (``model.trainable_variables``), which
wrap a ``tf.Variable`` on the TensorFlow backend. v1 optimizers only know ``tf.Variable``
(``'Variable' object has no attribute '_in_graph_mode'``). While model_fn is traced,
``compute_gradients`` and ``apply_gradients`` (and so ``minimize``) take Keras variables and use
the ``tf.Variable`` inside: same variable, same checkpoint key, slots named after it.

Slots of a partitioned variable's parts are saved as slices of one checkpoint tensor
(``x/Momentum``), as 2.15 saved them; TensorFlow's slot code would look up the graph op of the
part, which bridge's eagerly created variables do not have.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

import tensorflow as tf
from tensorflow.python.training import slot_creator

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


_create_slot_var = slot_creator._create_slot_var  # pylint: disable=protected-access


def _create_part_slot_var(primary: Any, *args: Any, **kwargs: Any) -> Any:
    """A slot of a partitioned variable's part: TF's, with the slice info set from the part's name."""
    info = getattr(primary, "_save_slice_info", None)
    if info is None:
        return _create_slot_var(primary, *args, **kwargs)
    primary._save_slice_info = None
    try:
        slot = _create_slot_var(primary, *args, **kwargs)
    finally:
        primary._save_slice_info = info
    slot_name = slot.name[len(primary.name[: -len(":0")]) + 1 : -len(":0")]  # "x/part_0/Momentum:0" -> "Momentum"
    rank = slot.shape.rank
    if rank is None or rank > 0:
        slot._set_save_slice_info(
            tf.Variable.SaveSliceInfo(
                f"{info.full_name}/{slot_name}", info.full_shape[:rank], info.var_offset[:rank], info.var_shape[:rank]
            )
        )
    return slot


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Iterator[None]:
    optimizer_class = tf.compat.v1.train.Optimizer
    with attributes_set(optimizer_class, _wrapped(optimizer_class)), attributes_set(
        slot_creator, {"_create_slot_var": _create_part_slot_var}
    ):
        yield


register(_model_fn_scope)
