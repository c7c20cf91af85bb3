"""``InMemoryEvaluatorHook``: evaluate the weights being trained, inside the training process.

tf.estimator 2.15 built a second graph and fed it the training session's variable values.
bridge runs ``Estimator.evaluate``'s own loop (same metrics, hooks, eval summaries, result
logging), with every model variable copied from the live training variable of the same
checkpoint key instead of restored from a checkpoint, so no checkpoint is written or read.
It evaluates once when training starts, every ``every_n_iter`` training steps of this run,
and once at the end, writing ``model_dir/eval`` (or ``eval_<name>``) like ``evaluate``.

Like 2.15, which built its eval graph once, input_fn is called and model_fn traced for the
first evaluation of a ``train`` call only; later ones run the same traced step over a new
iterator of the same dataset, with the metric state reset (``TracedEvaluation.restart``).
Eval hooks (``hooks``, or model_fn's ``evaluation_hooks``) begin again for every evaluation,
as with 2.15's new session per evaluation, in the traced graph (so lookups by name find the
traced tensors); a hook that then asks for a fetch the trace does not return (one it built
anew in begin) makes that evaluation trace again, and so begins twice in it.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from bridge._eval_predict import TracedEvaluation, copy_variables
from bridge._variables import active_store
from bridge.hooks import NO_COORDINATOR, NO_SESSION, SecondOrStepTimer, SessionRunContext, SessionRunHook, SessionRunValues, check_hooks

logger = logging.getLogger("bridge")

__all__ = ["InMemoryEvaluatorHook"]


class InMemoryEvaluatorHook(SessionRunHook):
    """Evaluates the training model every ``every_n_iter`` steps, without checkpoints.

    ``estimator`` is the Estimator being trained; ``input_fn``, ``steps``, ``hooks`` and
    ``name`` are those of ``Estimator.evaluate``. Single-process training only (ValueError
    for a cluster config), as in tf.estimator.
    """

    # Groupable: its trigger is a step count (steps_until_trigger) and it counts
    # run_context.steps, so the runtime may run several training steps per call.
    _bridge_groupable = True

    def __init__(
        self,
        estimator: Any,
        input_fn: Callable,
        steps: int | None = None,
        hooks: Sequence[SessionRunHook] | None = None,
        name: str | None = None,
        every_n_iter: int = 100,
    ) -> None:
        if every_n_iter is None or every_n_iter <= 0:
            raise ValueError(f"invalid every_n_iter={every_n_iter}.")
        config = estimator.config
        if config.num_ps_replicas > 0 or config.num_worker_replicas > 1:
            raise ValueError("InMemoryEvaluator supports only single machine (aka Local) setting.")
        if steps is not None and steps <= 0:
            raise ValueError(f"Must specify steps > 0, given: {steps}")
        self._estimator = estimator
        self._input_fn = input_fn
        self._steps = steps
        self._name = name
        self._hooks = check_hooks(hooks)
        self._every_n_iter = every_n_iter
        self._timer = SecondOrStepTimer(every_steps=every_n_iter)
        self._iter_count = 0
        self._variables: dict[str, Any] = {}
        self._evaluation: TracedEvaluation | None = None  # kept between evaluations of one train call

    def begin(self) -> None:
        self._close()  # an evaluation kept by a train call that failed
        self._timer = SecondOrStepTimer(every_steps=self._every_n_iter)
        self._iter_count = 0
        store = active_store()
        if store is None:
            raise RuntimeError("InMemoryEvaluatorHook must be passed to Estimator.train (or TrainSpec.hooks).")
        self._variables = store.model_variables  # checkpoint key -> the live training variable

    def after_create_session(self, session: Any, coord: Any) -> None:
        self._evaluate()

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        self._iter_count += run_context.steps
        if self._timer.should_trigger_for_step(self._iter_count):
            self._evaluate()

    def steps_until_trigger(self, global_step: int) -> int | None:
        return self._timer.steps_until_trigger(self._iter_count + 1)

    def end(self, session: Any) -> None:
        try:
            self._evaluate()
        finally:
            self._close()

    def _evaluate(self) -> dict[str, Any]:
        self._timer.update_last_triggered_step(self._iter_count)
        estimator = self._estimator
        if self._evaluation is not None and not self._evaluation.restart(self._variables, _after_create_session):
            self._close()  # a hook asks for something the trace does not return: trace again
        if self._evaluation is None:
            self._evaluation = estimator._trace_evaluation(
                self._input_fn, self._steps, self._hooks,
                initialize=lambda store: copy_variables(store, self._variables),
            )
        try:
            return estimator._run_evaluation(self._evaluation, self._name, checkpoint_path=None)
        finally:
            if self._evaluation.reusable:
                self._evaluation.release_input()  # no input pipeline alive between evaluations
            else:
                self._close()

    def _close(self) -> None:
        if self._evaluation is not None:
            self._evaluation.step.close()
            self._evaluation = None


def _after_create_session(hooks: Sequence[SessionRunHook]) -> None:
    for hook in hooks:
        hook.after_create_session(NO_SESSION, NO_COORDINATOR)
