"""The step loop of ``Estimator.train`` and its checkpoint policy.

``Estimator._train`` builds the traced step (model_fn, hooks, restore); this module drives it:
runs (grouped) steps until a hook, the step limit or the input stops it, checks the weights
are finite (``FiniteWeightsCheck``), and saves checkpoints at start, every N steps or seconds, and at the end, as
tf.estimator's CheckpointSaverHook did.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from bridge import _checkpoints
from bridge._console import ProgressBar
from bridge._step import InputExhausted, TracedStep
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
    on_step: Callable[[int], None] | None = None,
) -> float | None:
    """Runs (grouped) steps until a stop; ends the hooks and the saver; returns the last loss.

    ``on_step(global_step)`` is called after every call of the step that ran without error.
    """
    loss = None
    global_step = start_step
    stop = stop_hook is not None and start_step >= stop_hook.last_step
    warned_static = False
    # Traced for grouped steps (not iterations_per_loop): each call ends on the next step a
    # hook or the checkpoint policy needs, or runs one step when model_fn returned hooks
    # that see every step.
    looped_for_grouping = config.iterations_per_loop == 1 and step.iterations > 1
    grouped = looped_for_grouping and groupable(step.hooks)
    finite = None
    if config.check_finite_weights:
        every = config.check_finite_weights
        if every is True:  # the default window; a longer traced call is checked once, after its last step
            every = max(FiniteWeightsCheck.EVERY_STEPS, step.iterations)
        finite = FiniteWeightsCheck(store, start_step, every)
    while not stop:
        remaining = None if stop_hook is None else stop_hook.last_step - global_step
        if looped_for_grouping:
            limit = 1
            if grouped:
                limit = steps_until_trigger(step.hooks, global_step, step.iterations)
                if saver is not None:
                    limit = min(limit, saver.steps_until_due(global_step) or limit)
                if finite is not None:
                    limit = min(limit, finite.steps_until_due(global_step))
            remaining = limit if remaining is None else min(remaining, limit)
        try:
            run = step.run(max_iterations=remaining, grouped=grouped)
        except InputExhausted:
            break
        outputs, context = run.outputs, run.context
        loss, new_step = outputs["loss"], int(outputs["global_step"])
        if new_step == global_step and not warned_static:
            logger.warning(
                "The global step did not move. Training stops only by input exhaustion or a hook: "
                "build train_op with bridge.minimize(loss, optimizer) (or increment the global step)."
            )
            warned_static = True
        global_step = new_step
        if on_step is not None:
            on_step(global_step)
        progress.update(global_step, float(loss))
        stop = context.stop_requested
        saving = saver is not None and saver.due(global_step)
        if finite is not None and (saving or finite.due(global_step)):
            finite.check(global_step)  # before a save: no checkpoint of non-finite weights
        if saving and saver.save(global_step):
            stop = True
    if finite is not None:
        finite.check(global_step)  # before the final save and the hooks' end
    if global_step == start_step:
        logger.warning("Training with estimator made no steps. Perhaps input is empty or misspecified.")
    for hook in step.hooks:
        hook.end(NO_SESSION)
    if saver is not None:
        saver.end(global_step)
    progress.update(global_step, None if loss is None else float(loss), force=True)
    return None if loss is None else float(loss)


@tf.function(autograph=False)
def _variable_sums(variables: list[tf.Variable]) -> tf.Tensor:
    """One sum per variable (NaN and inf never sum to a finite number), in float32 at least so
    that float16 weights do not overflow it. Each is flattened first: the sum must not depend
    on the static shape a variable had when the function was traced."""
    flat = [tf.reshape(v, [-1]) for v in variables]
    wide = [v if v.dtype in (tf.float32, tf.float64) else tf.cast(v, tf.float32) for v in flat]
    return tf.stack([tf.cast(tf.reduce_sum(v), tf.float64) for v in wide])


class FiniteWeightsCheck:
    """``RunConfig(check_finite_weights=True)``: stop when a model variable holds NaN or inf.

    A NaN input to a ReLU network can turn weights NaN while the loss stays finite, so the loss
    check alone misses it. This reads every floating-point variable of the model (weights,
    optimizer slots, moving statistics) in one small traced function that returns one sum per
    variable; a non-finite sum is confirmed element-wise on the host before anything is raised.

    It runs every ``every`` steps (``EVERY_STEPS`` by default, N with ``check_finite_weights=N``;
    a grouped call ends where a check is due, so it is checked once, after its last step),
    before every checkpoint save, and when training ends: non-finite values never reach a
    checkpoint. Checking after every step reads all of the model's bytes every step (0.5 ms of
    CPU for a 270k-weight MLP with Adam, a third of its step, benchmarks/RESULTS.md); once per
    32 steps it is ~1 %. Gradient updates keep non-finite values non-finite, so the error
    names the window in which they appeared (the exact step with ``check_finite_weights=1``).
    """

    EVERY_STEPS = 32

    def __init__(self, store: VariableStore, start_step: int, every: int = EVERY_STEPS) -> None:
        self.every = every
        self._variables = {key: v for key, v in store.model_variables.items() if v.dtype.is_floating}
        # All of the model's variables, whatever a Saver's var_list saves. Arguments, not captures:
        # a model of the same shapes reuses the traced function (a new trace and its first run
        # cost ~50 ms per train call; this costs ~1 ms).
        self._arguments = list(self._variables.values())
        self._sums = _variable_sums.get_concrete_function(self._arguments) if self._arguments else None
        self.checked_step = start_step  # restored weights were finite when they were saved

    def due(self, step: int) -> bool:
        return step - self.checked_step >= self.every

    def steps_until_due(self, step: int) -> int:
        """Steps until the next check (a grouped call ends there)."""
        return max(1, self.checked_step + self.every - step)

    def check(self, step: int) -> None:
        """Raises NanLossDuringTrainingError naming the variables that hold NaN/inf after ``step``."""
        if self._sums is None or step == self.checked_step:
            return
        sums = self._sums(self._arguments).numpy()
        # A non-finite sum of finite values (overflow: weights near the float limit) is no alarm.
        bad = [
            key for (key, variable), total in zip(self._variables.items(), sums)
            if not np.isfinite(total) and not np.isfinite(variable.numpy()).all()
        ]
        if not bad:
            self.checked_step = step
            return
        when = f"global step {step}"
        if step - self.checked_step > 1:
            when += (
                f" (they were finite after step {self.checked_step}; the check runs every {self.every} "
                "steps, before every checkpoint save and when training ends)"
            )
        logger.error("Model diverged: variables hold NaN or inf after %s: %s", when, bad)
        raise NanLossDuringTrainingError(
            f"Variables hold NaN or inf values after {when}: {bad}. No checkpoint of them was written. "
            "Look for NaN/inf in the input or a too-large learning rate; "
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
        self.save(step)

    def steps_until_due(self, step: int) -> int | None:
        """Steps until the next step-based save (None for time-based saving)."""
        if self._every_steps is None:
            return None
        return max(1, self._writer.last_saved_step + self._every_steps - step)

    def due(self, step: int) -> bool:
        """Whether the interval has elapsed at ``step`` (then ``save`` it)."""
        if self._every_steps is not None:
            return step >= self._writer.last_saved_step + self._every_steps
        return time.monotonic() - self._last_time >= self._every_secs

    def end(self, step: int) -> None:
        if self._writer.last_saved_step != step:
            self.save(step)
        for listener in self._listeners:
            listener.end(None, step)

    def save(self, step: int) -> bool:
        """Saves ``step``; True when a listener asks to stop."""
        stop = _checkpoints.save_with_listeners(self._writer, self._variables, self._listeners, step)
        self._last_time = time.monotonic()
        return stop
