"""Name-based checkpoints in model_dir, written so that a half-written one is never "latest".

Format: TensorFlow's V2 checkpoint (``model.ckpt-<step>.index`` / ``.data-*``), keyed by
variable name as tf.estimator's Saver wrote them, so ``tf.train.load_checkpoint`` and
``tf.train.list_variables`` read them. TensorFlow writes the data into a temporary
directory and renames it; the ``checkpoint`` state file is replaced atomically afterwards.
A process killed mid-save therefore leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from typing import Mapping

import numpy as np
import tensorflow as tf

logger = logging.getLogger("bridge")

CHECKPOINT_BASENAME = "model.ckpt"


def latest_checkpoint(model_dir: str | None) -> str | None:
    """Newest complete checkpoint prefix in ``model_dir``, or None."""
    if not model_dir:
        return None
    return tf.train.latest_checkpoint(model_dir)


def read_global_step(checkpoint_path: str | None) -> int:
    """The global step stored in a checkpoint; 0 when there is none or it has no step."""
    if not checkpoint_path:
        return 0
    try:
        return int(tf.train.load_checkpoint(checkpoint_path).get_tensor("global_step"))
    except (tf.errors.NotFoundError, ValueError):
        return 0


def restore(checkpoint_path: str, variables: Mapping[str, tf.Variable]) -> None:
    """Loads every variable from the checkpoint, or raises naming the keys that do not match."""
    reader = tf.train.load_checkpoint(checkpoint_path)
    shapes = reader.get_variable_to_shape_map()
    missing = [key for key in variables if key not in shapes]
    if missing:
        raise ValueError(
            f"Restoring from checkpoint failed: {checkpoint_path} does not contain {sorted(missing)}. "
            "This is most likely due to a mismatch between the current model_fn and the one that "
            f"wrote the checkpoint. The checkpoint holds: {sorted(shapes)}."
        )
    for key, variable in variables.items():
        if list(shapes[key]) != variable.shape.as_list():
            raise ValueError(
                f"Restoring from checkpoint failed: '{key}' has shape {shapes[key]} in "
                f"{checkpoint_path} but {variable.shape.as_list()} in the model_fn."
            )
    keys = list(variables)
    values = tf.raw_ops.RestoreV2(
        prefix=checkpoint_path,
        tensor_names=keys,
        shape_and_slices=[""] * len(keys),
        dtypes=[variables[k].dtype for k in keys],
    )
    for key, value in zip(keys, values):
        variables[key].assign(value)


class CheckpointWriter:
    """Saves numbered checkpoints and keeps ``max_to_keep`` of them (0/None keeps all)."""

    def __init__(
        self,
        model_dir: str,
        variables: Mapping[str, tf.Variable],
        max_to_keep: int | None = 5,
        keep_checkpoint_every_n_hours: float = 10000,
    ) -> None:
        self._prefix = os.path.join(model_dir, CHECKPOINT_BASENAME)
        tf_logger = tf.get_logger()
        level = tf_logger.level
        tf_logger.setLevel(logging.ERROR)  # the Saver's deprecation notice does not apply: keys are unique
        try:
            self._saver = tf.compat.v1.train.Saver(
                var_list=dict(variables),
                max_to_keep=max_to_keep or None,
                keep_checkpoint_every_n_hours=keep_checkpoint_every_n_hours,
                save_relative_paths=True,
            )
        finally:
            tf_logger.setLevel(level)
        state = tf.train.get_checkpoint_state(model_dir)
        if state is not None:
            self._saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
        self.last_saved_step: int | None = None

    def save(self, step: int) -> str:
        path = self._saver.save(None, self._prefix, global_step=step, write_meta_graph=False)
        self.last_saved_step = step
        logger.info("Saving checkpoints for %d into %s.", step, self._prefix)
        return path


def assert_finite(variables: Mapping[str, tf.Variable]) -> None:
    """Refuses to let NaN weights reach a checkpoint."""
    for key, variable in variables.items():
        if variable.dtype.is_floating and not np.isfinite(variable.numpy()).all():
            raise ValueError(f"Variable '{key}' holds NaN or inf values; refusing to save it.")


class TrainerLock:
    """An exclusive lock on model_dir for the duration of ``train``.

    Two independent trainers writing one model_dir would interleave checkpoints; the second
    gets a clear error instead. The lock is an OS file lock, released by the kernel when the
    process dies, so a killed trainer never leaves a stale lock behind.
    """

    def __init__(self, model_dir: str) -> None:
        self._path = os.path.join(model_dir, ".bridge-train.lock")
        self._file = None

    def __enter__(self) -> "TrainerLock":
        os.makedirs(os.path.dirname(self._path), exist_ok=True)
        handle = open(self._path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise RuntimeError(
                    f"Another trainer (pid {owner}) is already training in model_dir "
                    f"{os.path.dirname(self._path)}. Two independent trainers cannot share a "
                    "model_dir; use a different model_dir, or a tf.distribute cluster."
                ) from None
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
