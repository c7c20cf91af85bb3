"""Early stopping: hooks that end training when the evaluation results say so.

As in tf.estimator 2.15 the decision reads the evaluation results from the event files that
``evaluate`` writes into the eval directory, so an evaluation run anywhere counts: by
``train_and_evaluate`` in this process, or by a separate ``evaluator`` task of a cluster. The
check runs every ``run_every_secs`` seconds or ``run_every_steps`` global steps. Between two
checks the hook only compares the global step the training loop fetches anyway, and it lets
the runtime group steps (``RunConfig.max_steps_per_call``); a check re-reads only the event
files that grew since the last one.

Several workers (``MultiWorkerMirroredStrategy``): every worker checks at the same global
steps (``run_every_steps``; time-based checks are refused, as in 2.15, since workers'
clocks differ), and the workers agree through one all-reduce of their votes at those steps,
so they all stop at the same step: none is left waiting in a collective. ``train_and_evaluate``
then tells the evaluator task that training ended (see ``bridge.training_loop``), so it stops
after evaluating the last checkpoint instead of waiting for more.
"""

from __future__ import annotations

import logging
import operator
import time
from typing import Any, Callable

import tensorflow as tf

from bridge import _checkpoints
from bridge._api_names import api_name
from bridge._eval_events import EvalMetricsReader
from bridge.hooks import (
    SecondOrStepTimer,
    SessionRunArgs,
    SessionRunContext,
    SessionRunHook,
    SessionRunValues,
    StopAtStepHook,
    _global_step_tensor,
)

logger = logging.getLogger("bridge")

__all__ = [
    "make_early_stopping_hook",
    "stop_if_higher_hook",
    "stop_if_lower_hook",
    "stop_if_no_increase_hook",
    "stop_if_no_decrease_hook",
    "make_stop_at_checkpoint_step_hook",
]


def _is_multi_worker(strategy: Any) -> bool:
    from bridge.training_loop import _is_multi_worker as is_multi_worker

    return is_multi_worker(strategy)


def _check_estimator(estimator: Any) -> None:
    from bridge.estimator import Estimator

    if not isinstance(estimator, Estimator):
        raise TypeError(f"`estimator` must have type `{api_name('Estimator')}`. Got: {type(estimator)}")


class _GlobalStepHook(SessionRunHook):
    """Fetches the global step on every run (already an output of the training step: free)."""

    _bridge_fetches_updated_step = True  # written for the global step after the update (bridge._step)

    def begin(self) -> None:
        self._global_step = _global_step_tensor()

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._global_step)


class _StopOnPredicateHook(_GlobalStepHook):
    """Requests a stop when ``should_stop_fn()`` returns True, asked every N secs or steps."""

    # Groupable: it only reads the global step, and steps_until_trigger says when it must see it.
    _bridge_groupable = True

    def __init__(self, should_stop_fn: Callable[[], bool], run_every_secs: float | None = 60, run_every_steps: int | None = None) -> None:
        if not callable(should_stop_fn):
            raise TypeError("`should_stop_fn` must be callable.")
        self._should_stop_fn = should_stop_fn
        self._timer = SecondOrStepTimer(every_secs=run_every_secs, every_steps=run_every_steps)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        step = int(run_values.results)
        if not self._timer.should_trigger_for_step(step):
            return
        self._timer.update_last_triggered_step(step)
        if self._decide(step):
            logger.info("Requesting early stopping at global step %d", step)
            run_context.request_stop()

    def _decide(self, step: int) -> bool:
        return bool(self._should_stop_fn())

    def steps_until_trigger(self, global_step: int) -> int | None:
        return self._timer.steps_until_trigger(global_step + 1)


class _MultiWorkerEarlyStoppingHook(_StopOnPredicateHook):
    """Every worker asks ``should_stop_fn`` at the same steps; one all-reduce makes them agree."""

    _bridge_groupable = False  # under a strategy the runtime runs one step per call anyway

    def __init__(self, should_stop_fn: Callable[[], bool], run_every_steps: int | None, strategy: Any) -> None:
        super().__init__(should_stop_fn, run_every_secs=None, run_every_steps=run_every_steps)
        self._strategy = strategy

    def _decide(self, step: int) -> bool:
        vote = 1 if self._should_stop_fn() else 0
        votes = self._strategy.run(lambda: tf.constant(vote, tf.int32))
        total = int(self._strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None))
        if total and not vote:
            logger.info("Early stopping requested by another worker at global step %d.", step)
        return total > 0


def make_early_stopping_hook(
    estimator: Any, should_stop_fn: Callable[[], bool], run_every_secs: float | None = 60, run_every_steps: int | None = None
) -> SessionRunHook:
    """A hook that stops training when ``should_stop_fn()`` (no arguments) returns True.

    ``should_stop_fn`` is called every ``run_every_secs`` seconds (default 60) or every
    ``run_every_steps`` global steps: set exactly one. Under a ``MultiWorkerMirroredStrategy``
    only ``run_every_steps`` is allowed, and a stop any worker asks for stops all of them.
    """
    _check_estimator(estimator)
    if run_every_secs is not None and run_every_steps is not None:
        raise ValueError("Only one of `run_every_secs` and `run_every_steps` must be set.")
    strategy = estimator.config.train_distribute
    if _is_multi_worker(strategy):
        if run_every_secs:
            raise ValueError(
                "run_every_secs should not be set when using MultiWorkerMirroredStrategy: workers check at the "
                "same global steps, so pass run_every_secs=None and run_every_steps=N."
            )
        return _MultiWorkerEarlyStoppingHook(should_stop_fn, run_every_steps, strategy)
    return _StopOnPredicateHook(should_stop_fn, run_every_secs, run_every_steps)


def _threshold_hook(estimator, metric_name, threshold, higher_is_better, eval_dir, min_steps, run_every_secs, run_every_steps):
    _check_estimator(estimator)
    reader = EvalMetricsReader(eval_dir if eval_dir is not None else estimator.eval_dir())
    crossed = operator.gt if higher_is_better else operator.lt
    relation = "greater than" if higher_is_better else "less than"

    def stop_if_threshold_crossed() -> bool:
        for step, metrics in reader.read().items():
            if step < min_steps:
                continue
            value = metrics[metric_name]
            if crossed(value, threshold):
                logger.info(
                    'At step %s, metric "%s" has value %s which is %s the configured threshold (%s) for early stopping.',
                    step, metric_name, value, relation, threshold,
                )
                return True
        return False

    return make_early_stopping_hook(estimator, stop_if_threshold_crossed, run_every_secs, run_every_steps)


def _no_improvement_hook(estimator, metric_name, max_steps, higher_is_better, eval_dir, min_steps, run_every_secs, run_every_steps):
    _check_estimator(estimator)
    reader = EvalMetricsReader(eval_dir if eval_dir is not None else estimator.eval_dir())
    better = operator.gt if higher_is_better else operator.lt
    change = "increase" if higher_is_better else "decrease"

    def stop_if_no_improvement() -> bool:
        best, best_step = None, None
        for step, metrics in reader.read().items():
            if step < min_steps:
                continue
            value = metrics[metric_name]
            if best is None or better(value, best):
                best, best_step = value, step
            if step - best_step >= max_steps:
                logger.info(
                    'No %s in metric "%s" for %s steps, which is greater than or equal to max steps (%s) '
                    "configured for early stopping.",
                    change, metric_name, step - best_step, max_steps,
                )
                return True
        return False

    return make_early_stopping_hook(estimator, stop_if_no_improvement, run_every_secs, run_every_steps)


def stop_if_higher_hook(
    estimator: Any,
    metric_name: str,
    threshold: float,
    eval_dir: str | None = None,
    min_steps: int = 0,
    run_every_secs: float | None = 60,
    run_every_steps: int | None = None,
) -> SessionRunHook:
    """Stops training once an evaluation at global step >= ``min_steps`` has ``metric_name`` > ``threshold``.

    ``eval_dir`` defaults to ``estimator.eval_dir()``; a result lacking ``metric_name`` raises KeyError.
    """
    return _threshold_hook(estimator, metric_name, threshold, True, eval_dir, min_steps, run_every_secs, run_every_steps)


def stop_if_lower_hook(
    estimator: Any,
    metric_name: str,
    threshold: float,
    eval_dir: str | None = None,
    min_steps: int = 0,
    run_every_secs: float | None = 60,
    run_every_steps: int | None = None,
) -> SessionRunHook:
    """Stops training once an evaluation at global step >= ``min_steps`` has ``metric_name`` < ``threshold``."""
    return _threshold_hook(estimator, metric_name, threshold, False, eval_dir, min_steps, run_every_secs, run_every_steps)


def stop_if_no_increase_hook(
    estimator: Any,
    metric_name: str,
    max_steps_without_increase: int,
    eval_dir: str | None = None,
    min_steps: int = 0,
    run_every_secs: float | None = 60,
    run_every_steps: int | None = None,
) -> SessionRunHook:
    """Stops training when ``metric_name`` has not risen above its best for ``max_steps_without_increase`` steps.

    Steps are global steps of the evaluations (from ``min_steps`` on), so the stop comes at
    an evaluation at least that many steps after the best one.
    """
    return _no_improvement_hook(
        estimator, metric_name, max_steps_without_increase, True, eval_dir, min_steps, run_every_secs, run_every_steps
    )


def stop_if_no_decrease_hook(
    estimator: Any,
    metric_name: str,
    max_steps_without_decrease: int,
    eval_dir: str | None = None,
    min_steps: int = 0,
    run_every_secs: float | None = 60,
    run_every_steps: int | None = None,
) -> SessionRunHook:
    """Stops training when ``metric_name`` has not fallen below its best for ``max_steps_without_decrease`` steps."""
    return _no_improvement_hook(
        estimator, metric_name, max_steps_without_decrease, False, eval_dir, min_steps, run_every_secs, run_every_steps
    )


class _StopAtCheckpointStepHook(_GlobalStepHook):
    """A non-chief's stop: at ``last_step``, waits until the chief's checkpoint reaches it."""

    def __init__(self, model_dir: str, last_step: int, wait_after_file_check_secs: float = 30) -> None:
        if last_step is None:
            raise ValueError("last_step must be specified.")
        if model_dir is None:
            raise ValueError("model_dir must be specified.")
        self._model_dir = model_dir
        self._last_step = last_step
        self._wait = wait_after_file_check_secs

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        if int(run_values.results) < self._last_step:
            return
        saved = _checkpoints.read_global_step(_checkpoints.latest_checkpoint(self._model_dir))
        if saved >= self._last_step:
            run_context.request_stop()
        else:
            time.sleep(self._wait)


def make_stop_at_checkpoint_step_hook(estimator: Any, last_step: int, wait_after_file_check_secs: float = 30) -> SessionRunHook:
    """Stops at global step ``last_step``; a non-chief also waits for the chief's checkpoint of that step.

    The chief (and every worker of a ``MultiWorkerMirroredStrategy``, whose workers step
    together) gets a ``StopAtStepHook(last_step=last_step)``.
    """
    config = estimator.config
    if config.is_chief or _is_multi_worker(config.train_distribute):
        return StopAtStepHook(last_step=last_step)
    return _StopAtCheckpointStepHook(estimator.model_dir, last_step, wait_after_file_check_secs)
