"""Name-based checkpoints in model_dir: saved so that a kill never loses one, and recovered
from damaged model_dirs without starting over silently.

Format: TensorFlow's V2 checkpoint (``model.ckpt-<step>.index`` / ``.data-*``), keyed by
variable name as tf.estimator's Saver wrote them, so ``tf.train.load_checkpoint`` and
``tf.train.list_variables`` read them.

Save order (each step leaves a model_dir that restores the newest finished checkpoint):
TensorFlow's ``SaveV2`` writes the data and index under temporary names and renames them;
then the ``checkpoint`` state file is replaced atomically (temporary file + ``os.replace``)
naming the new checkpoint; only then are checkpoints beyond ``max_to_keep`` deleted.

Recovery (``find_checkpoint``): the checkpoint the state file names, when it is intact;
otherwise the newest intact ``model.ckpt-*`` with a WARNING naming what was skipped and why;
when checkpoint files exist but none is intact, a ``CheckpointRecoveryError`` that says how to
proceed, never a silent start from step 0. See docs/design.md, "Checkpoints".
"""

from __future__ import annotations

import glob
import logging
import os
import re
import tempfile
import time
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState  # the state file's schema

from bridge import _name_mapping
from bridge._trainer_lock import TrainerLock

logger = logging.getLogger("bridge")

CHECKPOINT_BASENAME = "model.ckpt"
STATE_FILE = "checkpoint"

__all__ = [
    "CHECKPOINT_BASENAME",
    "CheckpointRecoveryError",
    "CheckpointWriter",
    "TrainerLock",
    "assert_finite",
    "find_checkpoint",
    "latest_checkpoint",
    "listed_checkpoints",
    "read_global_step",
    "restore",
    "saved_as",
    "slice_of",
]


RESUME_ADVICE = (
    "Refusing to start from scratch, which would replace the trained model. To start over, "
    "move these files out of model_dir (or use a new model_dir); to start from weights you "
    "have elsewhere, pass warm_start_from=<checkpoint> explicitly."
)


READ_ADVICE = (
    "Nothing was read. Pass checkpoint_path=<an intact checkpoint prefix> (a model.ckpt-<step> whose "
    ".index and .data files are complete) to read that one, or move the damaged files out of model_dir."
)


class CheckpointRecoveryError(RuntimeError):
    """model_dir holds checkpoint files, but none of them can be restored.

    The message names every file skipped and why, then ``advice``: how the caller (training by
    default; warm start and export say their own) can proceed.
    """

    def __init__(self, model_dir: str, problems: Sequence[str], advice: str = RESUME_ADVICE) -> None:
        self.model_dir, self.problems = model_dir, list(problems)
        super().__init__(
            f"model_dir {model_dir} holds checkpoint files, but none of them can be restored: "
            + "; ".join(self.problems) + ". " + advice
        )

    def with_advice(self, advice: str) -> "CheckpointRecoveryError":
        """The same refusal, ending with another caller's advice."""
        return CheckpointRecoveryError(self.model_dir, self.problems, advice)


class _State(NamedTuple):
    """What the ``checkpoint`` state file says, or why it could not be read."""

    latest: str | None  # full prefix
    all: list[str]  # full prefixes, oldest first
    problem: str | None


def _step_of(prefix: str) -> int | None:
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else None


def _read_state(model_dir: str) -> _State:
    path = os.path.join(model_dir, STATE_FILE)
    if not os.path.exists(path):
        return _State(None, [], f"the state file {path} is missing")
    try:
        with open(path, "rb") as f:
            state = text_format.Parse(f.read().decode("utf-8"), CheckpointState())
    except Exception as error:  # ParseError, UnicodeDecodeError, ...: the file is garbage
        return _State(None, [], f"the state file {path} cannot be parsed ({type(error).__name__}: {error})")
    if not state.model_checkpoint_path:
        return _State(None, [], f"the state file {path} names no checkpoint")

    def full(p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(model_dir, p)

    return _State(full(state.model_checkpoint_path), [full(p) for p in state.all_model_checkpoint_paths], None)


def listed_checkpoints(model_dir: str) -> list[str]:
    """The checkpoints the state file lists (full prefixes, oldest first); [] when it cannot be read."""
    return _read_state(model_dir).all


def checkpoint_problem(prefix: str) -> str | None:
    """Why the checkpoint at ``prefix`` cannot be restored, or None when it is intact.

    Cheap: parses the index, checks that the data shards exist and hold at least the bytes
    the index describes, and reads the global step; it does not read every tensor.
    """
    index = prefix + ".index"
    if not os.path.exists(index):
        return f"its index file {index} is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except Exception as error:
        return f"its index file {index} cannot be read ({type(error).__name__}: {error})"
    shards = sorted(glob.glob(glob.escape(prefix) + ".data-?????-of-?????"))
    expected = int(shards[0].rsplit("-of-", 1)[1]) if shards else 1
    if len(shards) != expected:
        missing = sorted({f"{prefix}.data-{i:05d}-of-{expected:05d}" for i in range(expected)} - set(shards))
        return f"its data files are incomplete ({len(shards)} of {expected}; missing: {', '.join(missing[:3])}" + (
            ", ...)" if len(missing) > 3 else ")"
        )
    needed = sum(int(np.prod(shapes[k], dtype=np.int64)) * dtypes[k].size for k in shapes if dtypes[k] != tf.string)
    held = sum(os.path.getsize(s) for s in shards)
    if held < needed:
        return f"its data file {shards[0]} is truncated ({held} bytes, the index describes {needed})"
    if "global_step" in shapes:
        try:
            reader.get_tensor("global_step")
        except Exception as error:
            return f"its data file {shards[0]} cannot be read ({type(error).__name__}: {error})"
    return None


def _prefixes_on_disk(model_dir: str) -> list[str]:
    """Every ``model.ckpt-<step>`` with an index or data file (complete or not), newest first."""
    names = glob.glob(os.path.join(glob.escape(model_dir), CHECKPOINT_BASENAME + "-*"))
    prefixes = set()
    for name in names:
        match = re.match(r"^(.*-\d+)\.(index|data-\d{5}-of-\d{5})$", name)
        if match:
            prefixes.add(match.group(1))
    return sorted(prefixes, key=lambda p: _step_of(p) or -1, reverse=True)


_warned: set[str] = set()


def find_checkpoint(model_dir: str | None) -> str | None:
    """The checkpoint to restore from ``model_dir``: see the module docstring for the rules.

    Returns None when model_dir holds no checkpoint files at all. Raises
    ``CheckpointRecoveryError`` when it holds some but none is intact.
    """
    if not model_dir or not os.path.isdir(model_dir):
        return None
    state = _read_state(model_dir)
    if state.latest is not None and checkpoint_problem(state.latest) is None:
        return state.latest
    skipped = [] if state.problem is None else [state.problem]
    candidates = _prefixes_on_disk(model_dir)
    if state.latest is not None and state.latest not in candidates:
        candidates.insert(0, state.latest)
    chosen = None
    for prefix in candidates:
        problem = checkpoint_problem(prefix)
        if problem is None:
            chosen = prefix
            break
        skipped.append(f"{prefix}: {problem}")
    if chosen is None:
        has_state_file = os.path.exists(os.path.join(model_dir, STATE_FILE))
        if not has_state_file and not any(os.path.exists(p + ".index") for p in candidates):
            # Data files without an index and no state file: a first save that was interrupted
            # (or is still being written by a trainer right now). No checkpoint was completed.
            if candidates:
                logger.warning(
                    "model_dir %s holds unfinished checkpoint data (%s) but no completed checkpoint; "
                    "treating it as holding none.", model_dir, ", ".join(candidates),
                )
            return None
        raise CheckpointRecoveryError(model_dir, skipped)
    if skipped:
        message = (
            f"Checkpoint recovery in {model_dir}: restoring {chosen}, the newest intact checkpoint. "
            "Skipped: " + "; ".join(skipped) + ". Checkpoints newer than it are left in place."
        )
        if message not in _warned:  # once per damage, not at every call that looks
            _warned.add(message)
            logger.warning(message)
    return chosen


def latest_checkpoint(model_dir: str | None) -> str | None:
    """Newest restorable checkpoint prefix in ``model_dir``, or None (see ``find_checkpoint``)."""
    return find_checkpoint(model_dir)


def read_global_step(checkpoint_path: str | None) -> int:
    """The global step stored in a checkpoint; 0 when there is none or it has no step."""
    if not checkpoint_path:
        return 0
    try:
        return int(tf.train.load_checkpoint(checkpoint_path).get_tensor("global_step"))
    except (tf.errors.NotFoundError, ValueError):
        return 0


class SavedAs(NamedTuple):
    """Where a variable lives in a checkpoint: tensor ``name``, and the ``slice`` spec of a part."""

    name: str
    slice: str  # "" for a whole variable; "7 2 0,3:0,2" for rows 0-2 of a [7, 2] tensor
    shape: list[int]  # the checkpoint tensor's shape (the whole variable's, for a part)


def saved_as(key: str, variable: tf.Variable) -> SavedAs:
    """How tf.estimator's Saver stored ``variable``: under its key, or as a slice of its whole.

    A part of a partitioned variable (``get_variable(..., partitioner=...)``: ``x/part_0``,
    ``x/part_1``, ...) was saved as one slice of the checkpoint tensor ``x`` with the whole
    variable's shape, so readers see ``x`` only. Parts carry that in their save-slice info.
    """
    info = getattr(variable, "_save_slice_info", None)
    if info is None:
        return SavedAs(key, "", variable.shape.as_list())
    return SavedAs(info.full_name, info.spec, list(info.full_shape))


def slice_of(value: np.ndarray, part: tf.Variable) -> np.ndarray:
    """The slice of a whole variable's ``value`` that one part of a partitioned variable holds."""
    info = part._save_slice_info  # pylint: disable=protected-access
    return value[tuple(slice(offset, offset + size) for offset, size in zip(info.var_offset, info.var_shape))]


def restore(checkpoint_path: str, variables: Mapping[str, tf.Variable], state_owners: Sequence[object] = ()) -> None:
    """Loads every variable from the checkpoint, or raises naming the keys that do not match.

    Keys the checkpoint lacks go through the name-mapping seam (``bridge._name_mapping``), which
    may derive them from what it holds (a v1 optimizer's slots for a Keras 3 optimizer's).
    ``state_owners``: the objects whose state the variables are (the trace's Keras optimizers).
    """
    try:
        reader = tf.train.load_checkpoint(checkpoint_path)
    except Exception as error:
        raise ValueError(
            f"Restoring from checkpoint {checkpoint_path} failed: its index file {checkpoint_path}.index "
            f"cannot be read ({type(error).__name__}: {error})."
        ) from error
    shapes = reader.get_variable_to_shape_map()
    saved = {key: saved_as(key, variable) for key, variable in variables.items()}
    missing = [key for key in variables if saved[key].name not in shapes]
    mapped = {}
    if missing:
        request = _name_mapping.MappingRequest(
            checkpoint_path, reader, shapes, {k: variables[k] for k in missing}, variables, state_owners
        )
        mapped = _name_mapping.mapped_values(request)
        missing = [key for key in missing if key not in mapped]
        shapes = {**shapes, **{key: list(np.shape(value)) for key, value in mapped.items()}}
        saved.update({key: SavedAs(key, "", variables[key].shape.as_list()) for key in mapped})
    if missing:
        raise ValueError(
            f"Restoring from checkpoint failed: {checkpoint_path} does not contain {sorted(missing)}. "
            "This is most likely due to a mismatch between the current model_fn and the one that "
            f"wrote the checkpoint. The checkpoint holds: {sorted(shapes)}."
        )
    for key, (name, _, shape) in saved.items():
        if list(shapes[name]) != shape:
            raise ValueError(
                f"Restoring from checkpoint failed: '{name}' has shape {shapes[name]} in "
                f"{checkpoint_path} but {shape} in the model_fn."
            )
    keys = [key for key in variables if key not in mapped]
    try:
        values = tf.raw_ops.RestoreV2(
            prefix=checkpoint_path,
            tensor_names=[saved[key].name for key in keys],
            shape_and_slices=[saved[key].slice for key in keys],
            dtypes=[variables[k].dtype for k in keys],
        ) if keys else []
    except tf.errors.OpError as error:
        raise ValueError(
            f"Restoring from checkpoint {checkpoint_path} failed while reading its data files "
            f"({checkpoint_path}.data-*): {error.message}"
        ) from error
    for key, value in [*zip(keys, values), *mapped.items()]:
        variables[key].assign(value)


def _write_state(model_dir: str, latest: str, kept: list[str]) -> None:
    """Replaces the ``checkpoint`` state file atomically (temporary file, fsync, ``os.replace``).

    Paths are written relative to model_dir, so that a copied or moved model_dir still works.
    """
    lines = [f'model_checkpoint_path: "{os.path.basename(latest)}"']
    lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in kept]
    handle, temp = tempfile.mkstemp(prefix=STATE_FILE + ".tmp", dir=model_dir)
    try:
        with os.fdopen(handle, "w") as out:
            out.write("\n".join(lines) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, os.path.join(model_dir, STATE_FILE))
    except Exception:  # a failed write leaves no temporary file (a killed one is cleaned up later)
        if os.path.exists(temp):
            os.remove(temp)
        raise


def _remove_checkpoint(prefix: str) -> None:
    for name in glob.glob(glob.escape(prefix) + ".*"):
        os.remove(name)


def clean_interrupted_saves(model_dir: str) -> list[str]:
    """Deletes the temporary files of saves that were killed or failed; returns their names.

    Call only while holding the model_dir's ``TrainerLock``: another trainer's save in
    progress has the same kind of temporary files.
    """
    patterns = [STATE_FILE + ".tmp*", CHECKPOINT_BASENAME + "-*.tempstate*"]
    removed = []
    for pattern in patterns:
        for name in glob.glob(os.path.join(glob.escape(model_dir), pattern)):
            if os.path.isfile(name):
                os.remove(name)
                removed.append(name)
    if removed:
        logger.info("Removed temporary files of interrupted checkpoint saves: %s", removed)
    return removed


class CheckpointWriter:
    """Saves numbered checkpoints and keeps the ``max_to_keep`` newest (0/None keeps all).

    Also keeps one checkpoint every ``keep_checkpoint_every_n_hours`` for good, as tf.estimator's
    Saver did. Works for plain and distributed (``tf.distribute``) variables alike: values are
    read in cross-replica context and written with TensorFlow's ``SaveV2`` op.

    ``restored`` is the checkpoint training resumed from. Only checkpoints the state file lists
    up to that step are candidates for deletion: a damaged checkpoint newer than it is never
    deleted (a later save of the same step replaces it). Saving the restored step again writes
    nothing, so a model_dir on a full disk can still resume.
    """

    def __init__(
        self,
        model_dir: str,
        variables: Mapping[str, tf.Variable],
        max_to_keep: int | None = 5,
        keep_checkpoint_every_n_hours: float | None = 10000,
        restored: str | None = None,
    ) -> None:
        self._model_dir = model_dir
        self._prefix = os.path.join(model_dir, CHECKPOINT_BASENAME)
        self._variables = dict(variables)
        self._max_to_keep = max_to_keep or None
        self._keep_every_secs = (keep_checkpoint_every_n_hours or 0) * 3600 or None
        self._restored = restored
        restored_step = _step_of(restored) if restored else None
        state = _read_state(model_dir)
        self._state_latest = state.latest
        kept = [
            p for p in state.all
            if restored_step is not None and (_step_of(p) or 0) <= restored_step and glob.glob(glob.escape(p) + ".*")
        ]
        if restored and restored not in kept:
            kept.append(restored)
        self._kept: list[str] = sorted(kept, key=lambda p: _step_of(p) or 0)
        self._next_permanent = time.time() + self._keep_every_secs if self._keep_every_secs else None
        self.last_saved_step: int | None = None
        clean_interrupted_saves(model_dir)

    def save(self, step: int) -> str:
        path = f"{self._prefix}-{step}"
        if self.last_saved_step is None and path == self._restored:
            # Already on disk (training resumed from it): writing it again would need a whole
            # checkpoint's free space, and a full disk would then block every restart.
            if self._state_latest != path:
                _write_state(self._model_dir, path, self._kept)
            self.last_saved_step = step
            return path
        logger.info("Saving checkpoints for %d into %s.", step, self._prefix)
        keys = list(self._variables)
        saved = [saved_as(key, self._variables[key]) for key in keys]
        try:
            tf.raw_ops.SaveV2(
                prefix=path,
                tensor_names=[entry.name for entry in saved],
                shape_and_slices=[entry.slice for entry in saved],
                tensors=[self._variables[k].read_value() for k in keys],
            )
        except tf.errors.OpError as error:
            clean_interrupted_saves(self._model_dir)
            previous = self._kept[-1] if self._kept else None
            raise OSError(
                f"Could not save checkpoint {path}: {error.message}. "
                + (f"The previous checkpoint {previous} is intact; " if previous else "")
                + f"free space in {self._model_dir} (or fix the error) and train again: training "
                "resumes from the newest intact checkpoint."
            ) from error
        kept = [p for p in self._kept if p != path] + [path]
        retired = self._retire(kept)
        try:
            _write_state(self._model_dir, path, kept)  # the new checkpoint is "latest" before any deletion
        except OSError as error:
            raise OSError(
                f"Saved checkpoint {path} but could not update the state file "
                f"{os.path.join(self._model_dir, STATE_FILE)}: {error}. No checkpoint was deleted."
            ) from error
        self._kept = kept
        self._state_latest = path
        for old in retired:
            _remove_checkpoint(old)
        self.last_saved_step = step
        return path

    def _retire(self, kept: list[str]) -> list[str]:
        """Pops the checkpoints beyond max_to_keep off ``kept``; returns those to delete."""
        retired = []
        while self._max_to_keep is not None and len(kept) > self._max_to_keep:
            oldest = kept.pop(0)
            written = os.path.getmtime(oldest + ".index") if os.path.exists(oldest + ".index") else 0.0
            if self._next_permanent is not None and written >= self._next_permanent:
                self._next_permanent += self._keep_every_secs
                continue  # kept for good; no longer tracked
            retired.append(oldest)
        return retired


def assert_finite(variables: Mapping[str, tf.Variable]) -> None:
    """Refuses to let NaN weights reach a checkpoint."""
    for key, variable in variables.items():
        if variable.dtype.is_floating and not np.isfinite(variable.numpy()).all():
            raise ValueError(f"Variable '{key}' holds NaN or inf values; refusing to save it.")


def save_with_listeners(writer: CheckpointWriter, variables: Mapping[str, tf.Variable], listeners: Sequence, step: int) -> bool:
    """One save as tf.estimator's CheckpointSaverHook made it: listeners' before_save, the finite check,
    the save, listeners' after_save. True when a listener asks training to stop."""
    for listener in listeners:
        listener.before_save(None, step)
    assert_finite(variables)
    writer.save(step)
    stop = False
    for listener in listeners:
        if listener.after_save(None, step):
            logger.info("A CheckpointSaverListener requested that training be stopped. listener: %s", listener)
            stop = True
    return stop
