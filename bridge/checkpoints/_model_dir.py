"""What a model_dir holds, and a copy of it keyed for a Keras 3 optimizer.

``inspect_model_dir`` reads a model_dir (or one checkpoint prefix) without changing it: the
checkpoint bridge would restore, its step, every variable with shape and dtype, and which
optimizer wrote it, from the slot layout (``_v1_slots``) or a Keras 3 optimizer's variables.

``convert_model_dir`` writes a new model_dir whose checkpoint is keyed as bridge keys a model
trained by a Keras 3 optimizer through ``bridge.minimize``: the v1 slots become that
optimizer's state through the same mapping that restore uses (``_keras_state``). The copy is
built in a temporary directory beside the target and renamed into place when complete, so a
failure writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf

from bridge import _checkpoints, _name_mapping
from bridge._variables import GLOBAL_STEP_KEY, _fresh_keras_names
from bridge.checkpoints._keras_state import NO_SLOTS, keras_optimizer_prefixes
from bridge.checkpoints._v1_slots import V1_CLASSES, find_slots, non_slot_keys

KERAS_OPTIMIZERS = {
    "keras-adam": "Adam",
    "keras-sgd": "SGD",
    "keras-adagrad": "Adagrad",
    "keras-rmsprop": "RMSprop",
    "keras-ftrl": "Ftrl",
}
# The Keras optimizer (and settings) that continues each v1 layout.
KERAS_FOR_V1 = {
    "Adam": "keras-adam",
    "Momentum": "keras-sgd (momentum=..., nesterov as written)",
    "Adagrad": "keras-adagrad",
    "ProximalAdagrad": "keras-adagrad (carries the accumulator; Keras has no l1/l2 proximal step)",
    "RMSProp": "keras-rmsprop",
    "RMSProp (centered)": "keras-rmsprop (centered=True)",
    "Ftrl": "keras-ftrl",
    NO_SLOTS: "keras-sgd",
}


class ModelDirError(ValueError):
    """A model_dir that cannot be inspected or converted; the message says why and what to do."""


@dataclasses.dataclass
class Variable:
    key: str
    shape: list[int]
    dtype: str
    role: str  # what bridge sees it as: model variable, a slot, optimizer state, the global step


@dataclasses.dataclass
class ModelDirReport:
    """What ``python -m bridge.checkpoints inspect`` prints."""

    model_dir: str
    checkpoint: str
    step: int | None
    checkpoints: list[str]
    variables: list[Variable]
    optimizer: str  # which optimizer wrote it
    continues_with: list[str]  # the optimizers bridge can continue it with
    unknown_slots: dict[str, list[str]]  # model variable -> slot-like keys of no known layout

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    def to_text(self) -> str:
        lines = [
            f"model_dir:   {self.model_dir}",
            f"checkpoint:  {self.checkpoint}" + (f" (of {len(self.checkpoints)})" if len(self.checkpoints) > 1 else ""),
            f"global step: {self.step if self.step is not None else '(none)'}",
            f"optimizer:   {self.optimizer}",
        ]
        if self.continues_with:
            lines.append("continue with: " + "; ".join(self.continues_with))
        width = max((len(v.key) for v in self.variables), default=0)
        lines.append(f"variables ({len(self.variables)}):")
        for v in self.variables:
            lines.append(f"  {v.key:<{width}}  {str(v.shape):<12} {v.dtype:<8} {v.role}")
        for primary, keys in self.unknown_slots.items():
            lines.append(f"UNKNOWN slot layout for {primary}: {keys}")
        return "\n".join(lines)


def _resolve(path: str) -> tuple[str, str]:
    """(model_dir, checkpoint prefix) for a model_dir or a checkpoint prefix, or ModelDirError."""
    path = os.fspath(path)
    if os.path.isdir(path):
        try:
            prefix = _checkpoints.find_checkpoint(path)
        except _checkpoints.CheckpointRecoveryError as error:
            raise ModelDirError(str(error)) from None
        if prefix is None:
            raise ModelDirError(
                f"{path} is not a model_dir: it holds no checkpoint (no 'checkpoint' state file and no "
                "model.ckpt-<step>.index). Pass the model_dir an Estimator trained in, or a checkpoint prefix."
            )
        return path, prefix
    if os.path.exists(path + ".index"):
        problem = _checkpoints.checkpoint_problem(path)
        if problem is not None:
            raise ModelDirError(f"Checkpoint {path} cannot be read: {problem}.")
        return os.path.dirname(path) or ".", path
    raise ModelDirError(f"{path} is neither a model_dir nor a checkpoint prefix (no {path}.index).")


def _reader(prefix: str) -> Any:
    try:
        return tf.train.load_checkpoint(prefix)
    except Exception as error:  # a corrupt index: DataLossError, or a RuntimeError from the reader
        raise ModelDirError(f"Checkpoint {prefix} cannot be read: {type(error).__name__}: {error}") from None


def inspect_model_dir(path: str) -> ModelDirReport:
    """Reads what the model_dir (or checkpoint prefix) ``path`` holds; writes nothing."""
    model_dir, prefix = _resolve(path)
    reader = _reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    layout = find_slots(shapes)
    beta_powers = non_slot_keys(layout, shapes)
    keras_prefixes = keras_optimizer_prefixes(shapes)
    slot_of = {
        key: (primary, layout.layouts[primary], slot)
        for primary, slots in layout.slots.items() for slot, key in slots.items()
    }  # fmt: skip
    unknown_keys = {key for keys in layout.unknown.values() for key in keys}
    variables = []
    for key in sorted(shapes):
        if key == GLOBAL_STEP_KEY:
            role = "global step"
        elif key in slot_of:
            primary, name, slot = slot_of[key]
            role = f"slot '{slot}' of {primary} ({V1_CLASSES[name]})"
        elif key in beta_powers:
            role = "v1 Adam bias-correction state"
        elif key in unknown_keys:
            role = "UNKNOWN slot layout"
        elif any(key.startswith(p + "/") for p in keras_prefixes):
            role = "Keras 3 optimizer state"
        else:
            role = "model variable"
        variables.append(Variable(key, list(shapes[key]), dtypes[key].name, role))
    step = int(reader.get_tensor(GLOBAL_STEP_KEY)) if GLOBAL_STEP_KEY in shapes else None
    # The state file's list, read as training reads it (a damaged state file lists nothing).
    checkpoints = (_checkpoints.listed_checkpoints(model_dir) if os.path.isdir(model_dir) else []) or [prefix]
    optimizer, continues = _describe_optimizer(layout, keras_prefixes)
    return ModelDirReport(model_dir, prefix, step, checkpoints, variables, optimizer, continues, layout.unknown)


def _describe_optimizer(layout, keras_prefixes: list[str]) -> tuple[str, list[str]]:
    written = [f"tf.compat.v1.train.{V1_CLASSES[name]}" for name in layout.names]
    written += [f"a Keras 3 optimizer (bridge; variables under '{p}/')" for p in keras_prefixes]
    if layout.unknown:
        written.append("an optimizer of unknown slot layout")
    if not written:
        return "none found (tf.compat.v1.train.GradientDescentOptimizer keeps no slots)", [
            "tf.compat.v1.train.GradientDescentOptimizer", KERAS_FOR_V1[NO_SLOTS]
        ]
    continues = []
    if len(layout.names) == 1 and not keras_prefixes and not layout.unknown:
        name = layout.names[0]
        continues = [f"tf.compat.v1.train.{V1_CLASSES[name]} (as written)"]
        if name in KERAS_FOR_V1:
            continues.append(f"{KERAS_FOR_V1[name]} (state mapped by bridge)")
    elif keras_prefixes and not layout.names:
        continues = ["the same Keras 3 optimizer (bridge-native)"]
    return " + ".join(written), continues


def convert_model_dir(
    path: str, out_dir: str, optimizer: str = "keras-adam", optimizer_config: dict[str, Any] | None = None
) -> ModelDirReport:
    """Writes ``out_dir``: the checkpoint of ``path`` keyed for ``optimizer``; returns its report.

    ``optimizer``: ``keras-adam``, ``keras-sgd``, ``keras-adagrad``, ``keras-rmsprop``,
    ``keras-ftrl`` (``optimizer_config``: the Keras optimizer's arguments, as the model_fn will
    pass them: learning_rate, betas, momentum, centered...), or ``v1`` (the checkpoint as
    written, which bridge already reads: a verified copy of the newest checkpoint).
    Raises ModelDirError (nothing written) for unreadable input, an unknown slot layout, state
    that cannot be mapped, or an ``out_dir`` that exists and is not empty.
    """
    report = inspect_model_dir(path)
    if report.unknown_slots:
        raise ModelDirError(
            f"{report.checkpoint} holds optimizer slots of an unknown layout: {report.unknown_slots}. bridge "
            f"reads the slots of {', '.join(sorted(set(V1_CLASSES.values())))}; nothing was written."
        )
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise ModelDirError(f"{out_dir} exists and is not empty; choose a new directory (nothing was written).")
    if optimizer != "v1" and optimizer not in KERAS_OPTIMIZERS:
        raise ModelDirError(f"Unknown --optimizer {optimizer!r}: use one of {['v1', *KERAS_OPTIMIZERS]}.")
    reader = _reader(report.checkpoint)
    values = {v.key: reader.get_tensor(v.key) for v in report.variables}
    if optimizer != "v1":
        values = _keras_values(report, values, reader, KERAS_OPTIMIZERS[optimizer], optimizer_config or {})
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".bridge-convert-", dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # a model_dir, not a private temporary directory
        with tf.device("/cpu:0"):
            variables = {key: tf.Variable(value, name=key) for key, value in values.items()}
        step = report.step if report.step is not None else 0
        _checkpoints.CheckpointWriter(staging, variables, max_to_keep=None).save(step)
        if os.path.isdir(out_dir):
            os.rmdir(out_dir)  # empty, checked above
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return inspect_model_dir(out_dir)


def _keras_values(report: ModelDirReport, values: dict[str, np.ndarray], reader: Any, class_name: str,
                  config: dict[str, Any]) -> dict[str, np.ndarray]:  # fmt: skip
    """The checkpoint's values with the v1 optimizer state replaced by ``class_name``'s."""
    import keras

    try:
        optimizer_class = getattr(keras.optimizers, class_name)
    except AttributeError:  # pragma: no cover - every name above exists in Keras 3
        raise ModelDirError(f"keras.optimizers.{class_name} does not exist in this Keras") from None
    primaries = [v.key for v in report.variables if v.role == "model variable" and _is_float(v.dtype)]
    # Named as in a model_fn trace: the variables by their keys, Keras's automatic names fresh
    # ("adam", not "adam_1"), so each Keras variable's path is the key bridge gives it.
    model = {key: tf.Variable(values[key], name=key) for key in primaries}
    with _fresh_keras_names():
        try:
            optimizer = optimizer_class(**config)
        except (TypeError, ValueError) as error:
            raise ModelDirError(f"keras.optimizers.{class_name}(**{config}) is invalid: {error}") from None
        optimizer.build(list(model.values()))
    state = {v.path: v.value for v in optimizer.variables}
    request = _name_mapping.MappingRequest(
        report.checkpoint, reader, reader.get_variable_to_shape_map(), state, {**model, **state}, [optimizer]
    )
    try:
        mapped = _name_mapping.mapped_values(request)
    except ValueError as error:
        raise ModelDirError(f"{error}\nNothing was written.") from None
    unmapped = sorted(set(state) - set(mapped))
    if unmapped:
        raise ModelDirError(f"Could not derive {unmapped} from {report.checkpoint}; nothing was written.")
    v1_state = {v.key for v in report.variables if v.role.startswith(("slot '", "v1 Adam"))}
    kept = {k: v for k, v in values.items() if k not in v1_state}
    return {**kept, **{k: np.asarray(v, dtype=state[k].dtype.as_numpy_dtype) for k, v in mapped.items()}}


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat", "half", "double"))
