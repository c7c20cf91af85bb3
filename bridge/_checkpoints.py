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
import time
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
    """Saves numbered checkpoints and keeps the ``max_to_keep`` newest (0/None keeps all).

    Also keeps one checkpoint every ``keep_checkpoint_every_n_hours`` for good, as tf.estimator's
    Saver did. Works for plain and distributed (``tf.distribute``) variables alike: values are
    read in cross-replica context and written with TensorFlow's ``SaveV2`` op, which writes to
    temporary files and renames them; the state file is then replaced atomically.
    """

    def __init__(
        self,
        model_dir: str,
        variables: Mapping[str, tf.Variable],
        max_to_keep: int | None = 5,
        keep_checkpoint_every_n_hours: float | None = 10000,
    ) -> None:
        self._model_dir = model_dir
        self._prefix = os.path.join(model_dir, CHECKPOINT_BASENAME)
        self._variables = dict(variables)
        self._max_to_keep = max_to_keep or None
        self._keep_every_secs = (keep_checkpoint_every_n_hours or 0) * 3600 or None
        state = tf.train.get_checkpoint_state(model_dir)
        self._kept: list[str] = []
        if state is not None:
            self._kept = [
                path if os.path.isabs(path) else os.path.join(model_dir, path)
                for path in state.all_model_checkpoint_paths
            ]
        self._next_permanent = time.time() + self._keep_every_secs if self._keep_every_secs else None
        self.last_saved_step: int | None = None

    def save(self, step: int) -> str:
        path = f"{self._prefix}-{step}"
        keys = list(self._variables)
        tf.raw_ops.SaveV2(
            prefix=path,
            tensor_names=keys,
            shape_and_slices=[""] * len(keys),
            tensors=[self._variables[k].read_value() for k in keys],
        )
        if path in self._kept:
            self._kept.remove(path)
        self._kept.append(path)
        self._retire_old()
        # Relative paths, so that a copied or moved model_dir still works. (TensorFlow logs a
        # deprecation notice for this function; it is still the writer of the state file.)
        tf_logger = tf.get_logger()
        level = tf_logger.level
        tf_logger.setLevel(logging.ERROR)
        try:
            tf.compat.v1.train.update_checkpoint_state(
                self._model_dir,
                os.path.basename(path),
                all_model_checkpoint_paths=[os.path.basename(p) for p in self._kept],
            )
        finally:
            tf_logger.setLevel(level)
        self.last_saved_step = step
        logger.info("Saving checkpoints for %d into %s.", step, self._prefix)
        return path

    def _retire_old(self) -> None:
        while self._max_to_keep is not None and len(self._kept) > self._max_to_keep:
            oldest = self._kept.pop(0)
            written = os.path.getmtime(oldest + ".index") if os.path.exists(oldest + ".index") else 0.0
            if self._next_permanent is not None and written >= self._next_permanent:
                self._next_permanent += self._keep_every_secs
                continue  # kept for good; no longer tracked
            for name in tf.io.gfile.glob(oldest + ".*"):
                tf.io.gfile.remove(name)


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
