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
variable objects, partitioned variables), for get_variable and Keras 3 variables alike, with
2.15's errors.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any, Iterator, Mapping

import tensorflow as tf

from bridge._checkpoints import slice_of
from bridge._model_fn_scopes import ModelFnCall, register
from bridge.compat._patching import attributes_set


def _name(variable: tf.Variable) -> str:
    return re.sub(r":\d+$", "", variable.name)


def _slice_info(variable: tf.Variable) -> Any:
    return getattr(variable, "_save_slice_info", None)


def _model_variables() -> tuple[dict[str, list[tf.Variable]], dict[str, tf.Variable]]:
    """This model_fn's variables as 2.15's store listed them, and every variable by its own name.

    The first maps a name to the variable, or to all parts of a partitioned variable under
    the partitioned variable's name (``x`` for ``x/part_0``, ``x/part_1``, ...). Metric state
    is left out, as it never was in TF1's store.
    """
    listed: dict[str, list[tf.Variable]] = {}
    by_name: dict[str, tf.Variable] = {}
    for variable in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES):
        if getattr(variable, "synchronization", None) == tf.VariableSynchronization.ON_READ:
            continue
        name = _name(variable)
        if name in by_name:
            continue
        by_name[name] = variable
        info = _slice_info(variable)
        listed.setdefault(info.full_name if info is not None else name, []).append(variable)
    return listed, by_name


def _as_variables(value: Any) -> list[tf.Variable] | None:
    """The variable(s) a map value names by object: a tf.Variable, a Keras 3 variable, a
    partitioned variable or a list of its parts; None for anything else."""
    if hasattr(value, "_get_variable_list"):  # tf.compat.v1's PartitionedVariable
        value = value._get_variable_list()
    if isinstance(value, (list, tuple)):
        found = [_as_variables(item) for item in value]
        return None if not found or any(v is None for v in found) else [v for vs in found for v in vs]
    if isinstance(value, tf.Variable):
        return [value]
    inner = getattr(value, "value", None)  # keras.Variable wraps a tf.Variable on the TF backend
    return [inner] if isinstance(inner, tf.Variable) else None


def _is_partitioned(variables: list[tf.Variable]) -> bool:
    """Whether ``variables`` are all the parts of one partitioned variable (not a part alone)."""
    infos = [_slice_info(v) for v in variables]
    if any(info is None for info in infos) or len({info.full_name for info in infos}) != 1:
        return False
    return sum(math.prod(info.var_shape) for info in infos) == math.prod(infos[0].full_shape)


def _check_shape(variables: list[tf.Variable], tensor_name: str, shape: list[int]) -> None:
    """2.15's errors: a ValueError for a variable, an InvalidArgumentError (raised when its
    restore op ran) for a partitioned one."""
    if _is_partitioned(variables):
        full = list(_slice_info(variables[0]).full_shape)
        if full != list(shape):
            raise tf.errors.InvalidArgumentError(
                None, None,
                f"tensor_name = {tensor_name}; shape in shape_and_slice spec [{','.join(map(str, full))}] does not "
                f"match the shape stored in checkpoint: [{','.join(map(str, shape))}]",
            )
        return
    for variable in variables:
        if not variable.shape.is_compatible_with(shape):
            raise ValueError(
                f"Shape of variable {variable.name} ({tuple(variable.shape)}) doesn't match with shape of "
                f"tensor {tensor_name} ({shape}) from checkpoint reader."
            )


def _plan(ckpt: str, shapes: Mapping[str, list[int]], assignment_map: Any) -> list[tuple[list[tf.Variable], str]]:
    """(variables, checkpoint tensor) pairs for ``assignment_map``; raises 2.15's errors."""
    variables, by_name = _model_variables()
    items = assignment_map.items() if isinstance(assignment_map, Mapping) else assignment_map
    pairs: list[tuple[list[tf.Variable], str]] = []
    for tensor_name, current in sorted(items, key=lambda item: item[0]):
        targets = _as_variables(current)
        if targets is None and isinstance(current, str):
            targets = variables.get(current) or ([by_name[current]] if current in by_name else None)
        if targets is not None:
            if tensor_name not in shapes:
                raise ValueError(f"Tensor {tensor_name} is not found in {ckpt} checkpoint {dict(shapes)}")
            _check_shape(targets, tensor_name, shapes[tensor_name])
            pairs.append((targets, tensor_name))
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
            _check_shape(variables[name], full, shapes[full])
            pairs.append((variables[name], full))
    return pairs


def init_from_checkpoint(ckpt_dir_or_file: str, assignment_map: Any) -> None:
    """Initialises model_fn's variables from a checkpoint (TF 2.15's ``assignment_map`` forms).

    Applies once, before the first step; a model_dir that has its own checkpoint is restored
    over these values, as in tf.estimator. Partitioned variables, on either side, are read
    and written whole: a checkpoint tensor initialises a partitioned variable in any number of
    parts, or a variable of the whole shape.
    """
    reader = tf.train.load_checkpoint(ckpt_dir_or_file)
    pairs = _plan(str(ckpt_dir_or_file), reader.get_variable_to_shape_map(), assignment_map)
    with tf.init_scope():
        for variables, tensor_name in pairs:
            value = reader.get_tensor(tensor_name)
            partitioned = _is_partitioned(variables)
            for variable in variables:
                part = slice_of(value, variable) if partitioned else value
                variable.assign(tf.cast(part, variable.dtype))


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Iterator[None]:
    with attributes_set(tf.compat.v1.train, {"init_from_checkpoint": init_from_checkpoint}):
        yield


register(_model_fn_scope)
