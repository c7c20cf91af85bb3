"""``warm_start_from``: initialise a fresh model from another checkpoint or SavedModel."""

from __future__ import annotations

import glob
import logging
import os
import re
from typing import Any, Mapping, NamedTuple, Sequence, Union

import numpy as np
import tensorflow as tf

from bridge import _checkpoints, _name_mapping

logger = logging.getLogger("bridge")


# tf.estimator.VocabInfo was tf.compat.v1.train.VocabInfo; it still is the same class here:
# (new_vocab, new_vocab_size, num_oov_buckets, old_vocab, old_vocab_size=-1,
#  backup_initializer=None, axis=0), axis 0 (rows) or 1 (columns).
VocabInfo = tf.compat.v1.train.VocabInfo


class WarmStartSettings(NamedTuple):
    """Which checkpoint to start from and which variables to take from it.

    ``vars_to_warm_start``: a regex string selects *trainable* variables whose name matches
    (default ``'.*'``: all trainable ones, so optimizer slots and the global step start
    fresh); a list of regex strings selects any variable; ``None`` selects none.
    ``var_name_to_prev_var_name`` maps a current name to its name in the source checkpoint.
    """

    ckpt_to_initialize_from: str
    vars_to_warm_start: Union[str, Sequence[str], None] = ".*"
    var_name_to_vocab_info: Mapping[str, Any] | None = None
    var_name_to_prev_var_name: Mapping[str, str] | None = None


def normalize(warm_start_from: Any) -> WarmStartSettings | None:
    """Turns the Estimator's ``warm_start_from`` argument into settings (or None)."""
    if warm_start_from is None:
        return None
    if isinstance(warm_start_from, (str, bytes, os.PathLike)):
        path = os.fsdecode(warm_start_from)
        saved_model_vars = os.path.join(path, "variables", "variables")
        if tf.io.gfile.exists(saved_model_vars + ".index"):
            path = saved_model_vars
        settings = WarmStartSettings(path)
    elif isinstance(warm_start_from, WarmStartSettings):
        settings = warm_start_from
    else:
        raise ValueError(f"warm_start_from must be a string or a WarmStartSettings, instead got {type(warm_start_from)}")
    if not settings.ckpt_to_initialize_from:
        raise ValueError("`ckpt_to_initialize_from` MUST be set in WarmStartSettings")
    for name, info in (settings.var_name_to_vocab_info or {}).items():
        if not isinstance(info, VocabInfo):
            raise TypeError(f"var_name_to_vocab_info[{name!r}] must be a VocabInfo, given: {info!r}")
    return settings


_WARM_START_ADVICE = (
    "Cannot warm-start from it: point warm_start_from at an intact checkpoint prefix "
    "(a model.ckpt-<step> whose .index and .data files are complete) or at another model_dir."
)


def source_checkpoint(path: str) -> str:
    """The checkpoint prefix to read for ``path``: a model_dir's newest intact one, or ``path`` itself.

    A model_dir is read with training's recovery rule (``bridge._checkpoints.find_checkpoint``):
    a damaged newest checkpoint is skipped with a WARNING naming it; when checkpoint files exist
    but none is intact, ``CheckpointRecoveryError`` names them. A checkpoint prefix that cannot be
    read is refused naming the file, before any variable is touched.
    """
    path = os.fsdecode(path)
    if os.path.isdir(path):
        try:
            latest = _checkpoints.find_checkpoint(path)
        except _checkpoints.CheckpointRecoveryError as error:
            raise error.with_advice(_WARM_START_ADVICE) from None
    elif tf.io.gfile.isdir(path):  # a filesystem only TensorFlow reaches (gs://, hdfs://): no recovery
        latest = tf.train.latest_checkpoint(path)
    else:
        if os.path.exists(path + ".index") or glob.glob(glob.escape(path) + ".data-*"):
            problem = _checkpoints.checkpoint_problem(path)
            if problem is not None:
                raise ValueError(f"warm_start_from: checkpoint {path} cannot be read: {problem}.")
        return path
    if latest is None:
        raise ValueError(f"warm_start_from: no checkpoint found in directory {path}")
    return latest


class _Partitioned:
    """The parts of one partitioned variable (``x/part_0``, ...), warm-started as one variable
    ``x``, as 2.15 did: selected and renamed by that name, read whole, each part given its slice."""

    def __init__(self, parts: list[tf.Variable]) -> None:
        self.parts = parts
        info = parts[0]._save_slice_info  # pylint: disable=protected-access
        self.shape = tf.TensorShape(info.full_shape)
        self.dtype = parts[0].dtype
        self.trainable = parts[0].trainable

    def assign(self, value: Any) -> None:
        for part in self.parts:
            part.assign(_checkpoints.slice_of(np.asarray(value), part))


def _by_saved_name(variables: Mapping[str, tf.Variable]) -> dict[str, Any]:
    """The variables by the name a checkpoint holds them under: partitioned ones as one."""
    named: dict[str, Any] = {}
    for key, variable in variables.items():
        saved = _checkpoints.saved_as(key, variable)
        if saved.name == key:
            named[key] = variable
        elif saved.name in named:
            named[saved.name].parts.append(variable)
        else:
            named[saved.name] = _Partitioned([variable])
    return named


def _selected(settings: WarmStartSettings, variables: Mapping[str, tf.Variable]) -> dict[str, tf.Variable]:
    spec = settings.vars_to_warm_start
    if spec is None:
        return {}
    if isinstance(spec, str):
        pattern = re.compile(spec)
        return {k: v for k, v in variables.items() if v.trainable and pattern.match(k)}
    if all(isinstance(s, str) for s in spec):
        patterns = [re.compile(s) for s in spec]
        return {k: v for k, v in variables.items() if any(p.match(k) for p in patterns)}
    wanted = {id(v) for item in spec for v in (item._get_variable_list() if hasattr(item, "_get_variable_list") else [item])}
    parts = lambda v: v.parts if isinstance(v, _Partitioned) else [v]  # noqa: E731
    return {k: v for k, v in variables.items() if any(id(p) in wanted for p in parts(v))}


def _source_keys(prefix: str, shapes: Mapping[str, Any]) -> dict[str, str]:
    """Variable name -> key in the source checkpoint.

    Name-based checkpoints (model_dir) are keyed by name already. A bridge SavedModel stores
    its variables object-based; its object graph gives each variable's name back.
    """
    if "_CHECKPOINTABLE_OBJECT_GRAPH" in shapes and prefix.endswith(os.path.join("variables", "variables")):
        from bridge._export import saved_model_variable_keys

        names = saved_model_variable_keys(os.path.dirname(os.path.dirname(prefix)))
        if names:
            return names
    return {key: key for key in shapes}


def apply(
    settings: WarmStartSettings, variables: Mapping[str, tf.Variable], state_owners: Sequence[Any] = ()
) -> list[str]:
    """Copies the selected variables' values from the source checkpoint; returns their names.

    A variable named in ``var_name_to_vocab_info`` gets its rows (or columns) remapped from the
    old vocabulary to the new one (``remap_vocab``). Selected variables the source lacks by name
    go through the name-mapping seam (``bridge._name_mapping``), as on restore: e.g. a Keras 3
    optimizer's state taken from the slots a ``tf.compat.v1.train`` optimizer wrote, following
    ``var_name_to_prev_var_name``.
    """
    prefix = source_checkpoint(settings.ckpt_to_initialize_from)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    keys = _source_keys(prefix, shapes)
    renames = dict(settings.var_name_to_prev_var_name or {})
    vocab_infos = dict(settings.var_name_to_vocab_info or {})
    selected = _selected(settings, _by_saved_name(variables))
    for what, mapping in (("var_name_to_prev_var_name", renames), ("var_name_to_vocab_info", vocab_infos)):
        unused = set(mapping) - set(selected)
        if unused:
            raise ValueError(f"{what} entries were not used: {sorted(unused)}. Perhaps you misspelled them?")
    absent = {
        name: v for name, v in selected.items()
        if renames.get(name, name) not in keys and not isinstance(v, _Partitioned)
    }
    mapped = {}
    if absent:
        request = _name_mapping.MappingRequest(prefix, reader, shapes, absent, variables, state_owners, renames)
        mapped = _name_mapping.mapped_values(request)
    for name, variable in selected.items():
        if name in mapped:
            variable.assign(mapped[name])
            continue
        source = renames.get(name, name)
        if source not in keys:
            raise ValueError(f"Tensor {source} is not found in {prefix} checkpoint {sorted(keys)}")
        value = reader.get_tensor(keys[source])
        if name in vocab_infos:
            value = remap_vocab(value, vocab_infos[name], variable.shape, variable.dtype, name)
        variable.assign(value)
    logger.info("Warm-started %d variables from %s.", len(selected), prefix)
    return sorted(selected)


def _vocab(path: Any, size: int, what: str) -> list[str]:
    with tf.io.gfile.GFile(os.fsdecode(path)) as f:
        tokens = [line.rstrip("\n") for line in f]
    if size is not None and size >= 0:
        if size > len(tokens):
            raise ValueError(f"VocabInfo: {what}_vocab_size={size} but {path} has only {len(tokens)} entries.")
        tokens = tokens[:size]
    return tokens


def remap_vocab(old: np.ndarray, info: Any, shape: tf.TensorShape, dtype: tf.DType, name: str) -> np.ndarray:
    """``old`` (rows, or columns for ``axis=1``, in ``info.old_vocab``'s order) in ``info.new_vocab``'s order.

    A token of the new vocabulary found in the old one gets its old row; new tokens and the
    ``num_oov_buckets`` OOV rows get ``info.backup_initializer`` (zeros when None), as
    tf.compat.v1.train.warm_start did.
    """
    axis = info.axis
    new_tokens = _vocab(info.new_vocab, info.new_vocab_size, "new")
    old_tokens = _vocab(info.old_vocab, info.old_vocab_size, "old")
    shape = tf.TensorShape(shape).as_list()
    rows = len(new_tokens) + info.num_oov_buckets
    if shape[axis] != rows:
        raise ValueError(
            f"Warm-starting {name} with a vocabulary: its shape {shape} has {shape[axis]} entries along axis "
            f"{axis}, but new_vocab_size + num_oov_buckets = {rows}."
        )
    old = np.moveaxis(np.asarray(old), axis, 0)
    rest = [d for i, d in enumerate(shape) if i != axis]
    if list(old.shape[1:]) != rest:
        raise ValueError(f"Warm-starting {name} with a vocabulary: checkpoint shape {list(np.moveaxis(old, 0, axis).shape)} "
                         f"does not match {shape} outside axis {axis}.")
    position = {}
    for i, token in enumerate(old_tokens[: old.shape[0]]):
        position.setdefault(token, i)
    found = [position.get(token) for token in new_tokens] + [None] * info.num_oov_buckets
    out = np.zeros([rows, *rest], dtype.as_numpy_dtype)
    missing = [i for i, source in enumerate(found) if source is None]
    for i, source in enumerate(found):
        if source is not None:
            out[i] = old[source]
    if missing and info.backup_initializer is not None:
        count = len(missing) * int(np.prod(rest, dtype=np.int64))
        values = np.asarray(info.backup_initializer(shape=[count], dtype=dtype))
        out[missing] = values.reshape([len(missing), *rest])
    return np.moveaxis(out, 0, axis)
