"""The step loop of ``Estimator.train`` and its checkpoint policy.

``Estimator._train`` builds the traced step (model_fn, hooks, restore); this module drives it:
runs (grouped) steps until a hook, the step limit or the input stops it, checks the weights
are finite, and saves checkpoints at start, every N steps or seconds, and at the end, as
tf.estimator's CheckpointSaverHook did.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np

from bridge import _checkpoints
from bridge._console import ProgressBar
from bridge._step import WEIGHTS_FINITE, InputExhausted, TracedStep
from bridge._variables import VariableStore
from bridge.hooks import (
    NO_SESSION,
    CheckpointSaverListener,
    NanLossDuringTrainingError,
    StopAtStepHook,
    groupable,
    steps_until_trigger,
)
from bridge.run_config import RunConfig

logger = logging.getLogger("bridge")


def run_train_steps(
    step: TracedStep,
    store: VariableStore,
    config: RunConfig,
    stop_hook: StopAtStepHook | None,
    saver: "CheckpointSaver | None",
    progress: ProgressBar,
    start_step: int,
) -> float | None:
    """Runs (grouped) steps until a stop; ends the hooks and the saver; returns the last loss."""
    loss = None
    global_step = start_step
    stop = stop_hook is not None and start_step >= stop_hook.last_step
    warned_static = False
    # Traced for grouped steps (not iterations_per_loop): each call ends on the next step a
    # hook or the checkpoint policy needs, or runs one step when model_fn returned hooks
    # that see every step.
    looped_for_grouping = config.iterations_per_loop == 1 and step.iterations > 1
    grouped = looped_for_grouping and groupable(step.hooks)
    while not stop:
        remaining = None if stop_hook is None else stop_hook.last_step - global_step
        if looped_for_grouping:
            limit = 1
            if grouped:
                limit = steps_until_trigger(step.hooks, global_step, step.iterations)
                if saver is not None:
                    limit = min(limit, saver.steps_until_due(global_step) or limit)
            remaining = limit if remaining is None else min(remaining, limit)
        try:
            run = step.run(max_iterations=remaining, grouped=grouped)
        except InputExhausted:
            break
        outputs, context = run.outputs, run.context
        loss, new_step = outputs["loss"], int(outputs["global_step"])
        if not outputs.get(WEIGHTS_FINITE, True):
            raise_if_weights_not_finite(store, new_step)
        if new_step == global_step and not warned_static:
            logger.warning(
                "The global step did not move. Training stops only by input exhaustion or a hook: "
                "build train_op with bridge.minimize(loss, optimizer) (or increment the global step)."
            )
            warned_static = True
        global_step = new_step
        progress.update(global_step, float(loss))
        stop = context.stop_requested
        if saver is not None and saver.after_step(global_step):
            stop = True
    if global_step == start_step:
        logger.warning("Training with estimator made no steps. Perhaps input is empty or misspecified.")
    for hook in step.hooks:
        hook.end(NO_SESSION)
    if saver is not None:
        saver.end(global_step)
    progress.update(global_step, None if loss is None else float(loss), force=True)
    return None if loss is None else float(loss)


def raise_if_weights_not_finite(store: VariableStore, step: int) -> None:
    """Raises NanLossDuringTrainingError naming the variables that hold NaN/inf, if any do.

    Runs only when the traced step's fused check said so (its sum can also overflow for
    huge but finite weights; then nothing is raised and training goes on).
    """
    bad = [
        key for key, variable in store.model_variables.items()
        if variable.dtype.is_floating and not np.isfinite(variable.numpy()).all()
    ]
    if not bad:
        return
    logger.error("Model diverged: variables hold NaN or inf after global step %d: %s", step, bad)
    raise NanLossDuringTrainingError(
        f"Variables hold NaN or inf values after global step {step}: {bad}. No checkpoint of them was "
        "written. Look for NaN/inf in the input or a too-large learning rate; "
        "RunConfig(check_finite_weights=False) turns this check off."
    )


class CheckpointSaver:
    """tf.estimator's checkpoint policy: at start, every N steps or secs, and at the end."""

    def __init__(self, model_dir: str, config: RunConfig, store: VariableStore,
                 listeners: Sequence[CheckpointSaverListener], restored: str | None) -> None:
        self._variables = store.saveable
        keep_max, keep_hours = config.keep_checkpoint_max, config.keep_checkpoint_every_n_hours
        if store.checkpoint_policy is not None:  # model_fn's Scaffold(saver=...) replaces the RunConfig's
            keep_max = store.checkpoint_policy.max_to_keep
            keep_hours = store.checkpoint_policy.keep_checkpoint_every_n_hours
        self._writer = _checkpoints.CheckpointWriter(model_dir, self._variables, keep_max, keep_hours, restored=restored)
        self._every_steps = config.save_checkpoints_steps
        self._every_secs = config.save_checkpoints_secs
        self._listeners = list(listeners)
        self._last_time = time.monotonic()

    def begin(self, step: int) -> None:
        for listener in self._listeners:
            listener.begin()
        self._save(step)

    def steps_until_due(self, step: int) -> int | None:
        """Steps until the next step-based save (None for time-based saving)."""
        if self._every_steps is None:
            return None
        return max(1, self._writer.last_saved_step + self._every_steps - step)

    def after_step(self, step: int) -> bool:
        """Saves when the interval has elapsed; True when a listener asks to stop."""
        if self._every_steps is not None:
            due = step >= self._writer.last_saved_step + self._every_steps
        else:
            due = time.monotonic() - self._last_time >= self._every_secs
        return self._save(step) if due else False

    def end(self, step: int) -> None:
        if self._writer.last_saved_step != step:
            self._save(step)
        for listener in self._listeners:
            listener.end(None, step)

    def _save(self, step: int) -> bool:
        stop = _checkpoints.save_with_listeners(self._writer, self._variables, self._listeners, step)
        self._last_time = time.monotonic()
        return stop
