"""A first ``train`` call that fails leaves model_dir as it found it.

tf.estimator 2.15 wrote model_dir before the first training step ran (the step-0 checkpoint,
the ``checkpoint`` state file, an events file), so a call that failed on bad input (a label out
of range, a feature missing from input_fn, an unknown optimizer name) left a model_dir that
looked trained: the next call, with the input fixed, silently restored those untrained weights
instead of initialising (and a changed model failed to restore them at all).

``FirstCallUndo`` snapshots model_dir's entries before a call that starts without a checkpoint;
if the call raises before its first training step succeeded (and no checkpoint past step 0
exists), ``undo`` removes exactly the entries that were not there before: the files the call wrote at model_dir's top level (where
training writes: checkpoints, state file, events, lock file), directories it created that are
left empty, and model_dir itself (and its parents) when the call created it. Nothing that existed before the call
is touched, and a call that trained (a step succeeded: its loss curve is in the events file, a
later NaN is worth debugging) keeps everything it wrote, as 2.15 did. Files other
writers (an evaluator, an exporter) put in model_dir's subdirectories are not touched either.
"""

from __future__ import annotations

import logging
import os

from bridge import _checkpoints

logger = logging.getLogger("bridge")


def _entries(model_dir: str) -> set[str]:
    try:
        return set(os.listdir(model_dir))
    except OSError:
        return set()


class FirstCallUndo:
    """What a train call on a model_dir without a checkpoint may take back if it fails."""

    def __init__(self, model_dir: str) -> None:
        self._model_dir = model_dir
        self._before = _entries(model_dir)
        self._stepped = False
        # model_dir and the parents of it that the call will create (deepest first)
        self._created_dirs: list[str] = []
        path = os.path.abspath(model_dir)
        while not os.path.exists(path) and os.path.dirname(path) != path:
            self._created_dirs.append(path)
            path = os.path.dirname(path)

    @staticmethod
    def applies(model_dir: str | None, resume_from: str | None) -> bool:
        """Only for a local model_dir that holds no checkpoint to resume from."""
        return bool(model_dir) and resume_from is None and "://" not in str(model_dir)

    def note_step(self, global_step: int) -> None:
        """The training loop's report that a step ran without error."""
        self._stepped = True

    def _trained_checkpoint_written(self) -> bool:
        try:
            latest = _checkpoints.latest_checkpoint(self._model_dir)
        except Exception:  # noqa: BLE001 - a damaged checkpoint of this call is not a trained one
            return False
        return latest is not None and _checkpoints.read_global_step(latest) > 0

    def undo(self) -> None:
        """Removes what the failed call added (see the module docstring); never raises."""
        if self._stepped or self._trained_checkpoint_written():
            return
        removed = []
        for name in sorted(_entries(self._model_dir) - self._before):
            path = os.path.join(self._model_dir, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)  # only if empty: a subdirectory with others' files stays
                else:
                    os.remove(path)
                removed.append(name)
            except OSError as error:
                logger.warning("After the failed train call, could not remove %s: %s", path, error)
        for path in self._created_dirs:
            try:
                os.rmdir(path)
            except OSError:
                break
        if removed:
            logger.info("The train call failed before saving a trained checkpoint; removed what it wrote to %s: %s",
                        self._model_dir, removed)
