"""``tf.compat.v1.train.init_from_checkpoint`` inside model_fn: initial values, set once.

TF1's version replaced each variable's *initializer* with a restore from the checkpoint, so
it acted once, when a fresh model was initialised, and never when tf.estimator restored
model_dir's own checkpoint. TensorFlow 2's version builds an assignment op; in bridge's traced
step every op runs on every step, so the variable would be reset from the checkpoint at each
step (training frozen).

bridge creates model variables eagerly, before the first step, so this version simply assigns
the checkpoint values to them right away (outside the traced step). The runtime then restores
model_dir's latest checkpoint over them when there is one: the values from ``ckpt_dir_or_file``
count only for a model that starts fresh, as in TF1. Names are matched as in TF 2.15
(``'old/': 'new/'`` scopes, ``'/': 'new/'`` the whole checkpoint into a scope, single names or
variable objects), for get_variable and Keras 3 variables alike, with 2.15's errors.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator, Mapping

import tensorflow as tf

from bridge._model_fn_scopes import ModelFnCall, register
from bridge.compat._patching import attributes_set


def _name(variable: tf.Variable) -> str:
    return re.sub(r":\d+$", "", variable.name)


def _model_variables() -> dict[str, tf.Variable]:
    """Variables of this model_fn by name (metric state excluded, as it never was in TF1's store)."""
    found = {}
    for variable in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES):
        if getattr(variable, "synchronization", None) != tf.VariableSynchronization.ON_READ:
            found.setdefault(_name(variable), variable)
    return found


def _as_variable(value: Any) -> Any:
    """A tf.Variable (or a Keras 3 variable's), else None."""
    if isinstance(value, tf.Variable):
        return value
    inner = getattr(value, "value", None)  # keras.Variable wraps a tf.Variable on the TF backend
    return inner if isinstance(inner, tf.Variable) else None


def _plan(ckpt: str, shapes: Mapping[str, list[int]], assignment_map: Any) -> list[tuple[tf.Variable, str]]:
    """(variable, checkpoint tensor) pairs for ``assignment_map``; raises 2.15's ValueErrors."""
    variables = _model_variables()
    items = assignment_map.items() if isinstance(assignment_map, Mapping) else assignment_map
    pairs: list[tuple[tf.Variable, str]] = []
    for tensor_name, current in sorted(items, key=lambda item: item[0]):
        variable = _as_variable(current)
        if variable is None and isinstance(current, str):
            variable = variables.get(current)
        if variable is not None:
            if tensor_name not in shapes:
                raise ValueError(f"Tensor {tensor_name} is not found in {ckpt} checkpoint {dict(shapes)}")
            if not variable.shape.is_compatible_with(shapes[tensor_name]):
                raise ValueError(
                    f"Shape of variable {variable.name} ({tuple(variable.shape)}) doesn't match with shape of "
                    f"tensor {tensor_name} ({shapes[tensor_name]}) from checkpoint reader."
                )
            pairs.append((variable, tensor_name))
            continue
        if not isinstance(current, str):
            raise TypeError(f"assignment_map values must be variable names or variables; got {current!r}")
        scope = current[: current.rindex("/")] if "/" in current else ""
        if not tensor_name.endswith("/"):
            raise ValueError(
                f"Assignment map maps the checkpoint tensor {tensor_name!r} to {current!r}, which is no "
                f"variable of the model (scope {scope!r}). A scope maps only to a scope: 'scope/': 'other_scope/'."
            )
        for name in sorted(n for n in variables if not scope or n.startswith(scope + "/")):
            rest = name[len(scope) :]
            if current != "/":
                rest = rest[1:]
            full = rest if tensor_name == "/" else tensor_name + rest
            if full not in shapes:
                raise ValueError(f"Tensor {full} ({rest} in {tensor_name}) is not found in {ckpt} checkpoint")
            variable = variables[name]
            if not variable.shape.is_compatible_with(shapes[full]):
                raise ValueError(
                    f"Shape of variable {variable.name} ({tuple(variable.shape)}) doesn't match with shape of "
                    f"tensor {full} ({shapes[full]}) from checkpoint reader."
                )
            pairs.append((variable, full))
    return pairs


def init_from_checkpoint(ckpt_dir_or_file: str, assignment_map: Any) -> None:
    """Initialises model_fn's variables from a checkpoint (TF 2.15's ``assignment_map`` forms).

    Applies once, before the first step; a model_dir that has its own checkpoint is restored
    over these values, as in tf.estimator.
    """
    reader = tf.train.load_checkpoint(ckpt_dir_or_file)
    pairs = _plan(str(ckpt_dir_or_file), reader.get_variable_to_shape_map(), assignment_map)
    with tf.init_scope():
        for variable, tensor_name in pairs:
            variable.assign(tf.cast(reader.get_tensor(tensor_name), variable.dtype))


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Iterator[None]:
    with attributes_set(tf.compat.v1.train, {"init_from_checkpoint": init_from_checkpoint}):
        yield


register(_model_fn_scope)
