"""``warm_start_from``: initialise a fresh model from another checkpoint or SavedModel."""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Mapping, NamedTuple, Sequence, Union

import tensorflow as tf

logger = logging.getLogger("bridge")


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
    if settings.var_name_to_vocab_info:
        raise NotImplementedError(
            "var_name_to_vocab_info (vocabulary remapping) is not supported by bridge; warm-start "
            "embedding rows by name or remap the checkpoint beforehand."
        )
    return settings


def _checkpoint_prefix(path: str) -> str:
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise ValueError(f"warm_start_from: no checkpoint found in directory {path}")
        return latest
    return path


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
    wanted = {id(v) for v in spec}
    return {k: v for k, v in variables.items() if id(v) in wanted}


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


def apply(settings: WarmStartSettings, variables: Mapping[str, tf.Variable]) -> list[str]:
    """Copies the selected variables' values from the source checkpoint; returns their names."""
    prefix = _checkpoint_prefix(settings.ckpt_to_initialize_from)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    keys = _source_keys(prefix, shapes)
    renames = dict(settings.var_name_to_prev_var_name or {})
    selected = _selected(settings, variables)
    unused = set(renames) - set(selected)
    if unused:
        raise ValueError(
            f"var_name_to_prev_var_name entries were not used: {sorted(unused)}. Perhaps you misspelled them?"
        )
    for name, variable in selected.items():
        source = renames.get(name, name)
        if source not in keys:
            raise ValueError(f"Tensor {source} is not found in {prefix} checkpoint {sorted(keys)}")
        variable.assign(reader.get_tensor(keys[source]))
    logger.info("Warm-started %d variables from %s.", len(selected), prefix)
    return sorted(selected)
