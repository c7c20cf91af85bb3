"""Training hooks with tf.estimator's interface, driven by bridge's traced step loop.

tf.estimator's hooks talked to a ``tf.compat.v1.Session``: ``before_run`` returned graph
tensors to add to the next ``Session.run`` and ``after_run`` received their values. bridge
has no Session. It traces the model_fn step once into a ``tf.function``; hooks therefore
declare what they fetch *while that trace is built*:

The callbacks come in tf.estimator's order: ``begin``, ``after_create_session``, then
``before_run`` / ``after_run`` once per run, then ``end``.

* ``begin()`` runs inside the trace (graph-construction time, as in tf.estimator), so
  ``tf.compat.v1.train.get_global_step()`` and the model_fn's tensors are available.
* ``after_create_session(session, coord)`` runs next, still during the trace but eagerly
  (``tf.init_scope``), once the variables are created and restored from the checkpoint: a
  variable's ``.numpy()`` reads its restored value.
* The first ``before_run(run_context)`` also runs during the trace: the tensors it returns
  become outputs of the traced step, and its request serves the first run. Later calls come
  before every run as usual and may return any subset of those tensors (or ``None``).
* ``after_run(run_context, run_values)`` receives numpy values in ``run_values.results``.
  In training, a fetched global step is the step the batch trained at, read before train_op
  increments it (0 on the first step), as 2.15's Session gave it; bridge's own step-keeping
  hooks, written for the incremented value, declare ``_bridge_fetches_updated_step = True``.
* There is no Session: ``session`` and ``coord`` arguments, and ``run_context.session``,
  raise a clear error when used (``NoSessionError``), naming what to use instead.

With ``RunConfig(iterations_per_loop=N)`` one "run" is one traced call of up to N steps,
as with TPUEstimator: hooks see the values of the last step of each call.

Grouped steps. When every hook of a loop is one of bridge's own step-counting hooks
(``StopAtStepHook``, ``LoggingTensorHook``, ``StepCounterHook``, and the NaN check of the loss), the runtime
runs several steps per traced call without changing what the hooks observe: each hook says how
many steps may run before it must see a step's values (``steps_until_trigger``), every call ends
on such a step, and ``after_run`` learns how many steps the call covered from
``run_context.steps``. Any other hook gets one step per call, as in tf.estimator.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from bridge._api_names import api_name

logger = logging.getLogger("bridge")


class NanLossDuringTrainingError(RuntimeError):
    """Raised when the training loss becomes NaN; no checkpoint of the NaN weights is written."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "NaN loss during training."


class NoSessionError(RuntimeError):
    """A hook used the tf.compat.v1 Session (or Coordinator), which bridge does not have."""


def _no_session_message(what: str) -> str:
    return (
        f"{what}: bridge runs no tf.compat.v1.Session. Fetch tensors by returning "
        "SessionRunArgs(fetches) from before_run and read their values in after_run's run_values.results; "
        "read a variable with variable.numpy() (in after_create_session or end); stop with "
        f"run_context.request_stop(); save checkpoints with {api_name('CheckpointSaverHook')} or RunConfig."
    )


class _NoSession:
    """Handed to hooks where tf.estimator handed a Session or Coordinator: using it raises."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise NoSessionError(_no_session_message(f"{self._what}.{name}"))

    def __repr__(self) -> str:
        return f"<no {self._what} in bridge>"


NO_SESSION = _NoSession("session")
NO_COORDINATOR = _NoSession("coord")


class SessionRunArgs(NamedTuple):
    """What a hook asks for in ``before_run``: ``fetches`` is a tensor, list or dict of tensors."""

    fetches: Any
    feed_dict: Optional[Mapping] = None
    options: Any = None


class SessionRunValues(NamedTuple):
    """What a hook receives in ``after_run``: ``results`` mirrors the structure of its fetches."""

    results: Any
    options: Any = None
    run_metadata: Any = None


class SessionRunContext:
    """Per-step context handed to hooks; ``request_stop()`` ends the loop after this step."""

    def __init__(self, original_args: SessionRunArgs | None = None, session: Any = None, steps: int = 1) -> None:
        self._original_args = original_args
        self.steps = steps  # steps this run covered (more than one only when the runtime groups steps)
        self._session = session
        self._stop_requested = False

    @property
    def original_args(self) -> SessionRunArgs | None:
        return self._original_args

    @property
    def session(self) -> Any:
        """Raises ``NoSessionError``: bridge has no Session to run extra ops in."""
        raise NoSessionError(_no_session_message("run_context.session"))

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def request_stop(self) -> None:
        self._stop_requested = True


class SessionRunHook:
    """Base class for hooks; every callback is optional (see the module docstring)."""

    def begin(self) -> None:
        """Called inside the step trace, before the loop starts."""

    def after_create_session(self, session: Any, coord: Any) -> None:
        """Called once variables are created and restored (``session``/``coord`` raise when used)."""

    def before_run(self, run_context: SessionRunContext) -> Optional[SessionRunArgs]:
        """Return ``SessionRunArgs(fetches)`` to receive their values in ``after_run``."""
        return None

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        """Called after each traced call with the fetched values."""

    def end(self, session: Any) -> None:
        """Called once at the end of the loop (not when it ends with an exception)."""


class CheckpointSaverListener:
    """Called around each checkpoint save during ``train``; ``after_save`` returning True stops training."""

    def begin(self) -> None:
        pass

    def before_save(self, session: Any, global_step_value: int) -> None:
        pass

    def after_save(self, session: Any, global_step_value: int) -> Optional[bool]:
        return None

    def end(self, session: Any, global_step_value: int) -> None:
        pass


class SecondOrStepTimer:
    """Fires every ``every_secs`` seconds or every ``every_steps`` steps (exactly one of them)."""

    def __init__(self, every_secs: float | None = None, every_steps: int | None = None) -> None:
        if (every_secs is None) == (every_steps is None):
            raise ValueError("Either every_secs or every_steps should be provided.")
        self._every_secs = every_secs
        self._every_steps = every_steps
        self._last_time: float | None = None
        self._last_step: int | None = None

    def should_trigger_for_step(self, step: int) -> bool:
        if self._last_step is None:
            return True
        if step == self._last_step:
            return False
        if self._every_secs is not None:
            return time.time() >= self._last_time + self._every_secs
        return step >= self._last_step + self._every_steps

    def update_last_triggered_step(self, step: int) -> tuple[float | None, int | None]:
        """Marks ``step`` as triggered; returns (elapsed seconds, elapsed steps) since the last trigger."""
        now = time.time()
        if self._last_time is None:
            elapsed = (None, None)
        else:
            elapsed = (now - self._last_time, step - self._last_step)
        self._last_time, self._last_step = now, step
        return elapsed

    def last_triggered_step(self) -> int | None:
        return self._last_step

    def reset(self) -> None:
        """Forgets the last trigger: the next step triggers."""
        self._last_time = self._last_step = None

    def steps_until_trigger(self, step: int) -> int | None:
        """How many more steps may run before one at which this timer fires, counting that one.

        ``step`` is the count the timer will be asked about after the next step. None when the
        timer fires on time, which no step count predicts.
        """
        if self._last_step is None:
            return 1
        if self._every_secs is not None:
            return None
        return max(1, self._last_step + self._every_steps - step + 1)


def _as_graph_element(obj: Any) -> Any:
    if not isinstance(obj, str):
        return obj
    import tensorflow as tf

    graph = tf.compat.v1.get_default_graph()
    name = obj if ":" in obj else obj + ":0"
    try:
        return graph.as_graph_element(name)
    except (KeyError, ValueError) as error:
        # A variable's name ("global_step:0", "dense/kernel:0") named its value in a TF1 graph;
        # bridge's variables live outside the traced graph, in the call's store.
        from bridge._variables import active_store

        store = active_store()
        variable = store.variables.get(name.rsplit(":", 1)[0]) if store is not None else None
        if variable is not None and name.endswith(":0"):
            return variable
        raise ValueError(f"Passed {obj!r} should be the name of a tensor in model_fn's graph: {error}") from None


def _global_step_tensor():
    import tensorflow as tf

    step = tf.compat.v1.train.get_global_step()
    if step is None:
        raise RuntimeError("Global step should be created to use this hook.")
    return step


class StopAtStepHook(SessionRunHook):
    """Requests a stop once the global step reaches ``last_step`` (or start + ``num_steps``)."""

    _bridge_fetches_updated_step = True  # written for the global step after the update (bridge._step)

    def __init__(self, num_steps: int | None = None, last_step: int | None = None) -> None:
        if num_steps is None and last_step is None:
            raise ValueError("One of num_steps or last_step must be specified.")
        if num_steps is not None and last_step is not None:
            raise ValueError("Only one of num_steps or last_step can be specified.")
        self._num_steps = num_steps
        self._last_step = last_step

    @property
    def last_step(self) -> int | None:
        return self._last_step

    def begin(self) -> None:
        self._global_step = _global_step_tensor()

    def after_create_session(self, session: Any, coord: Any) -> None:
        # As in tf.estimator: num_steps counts from the global step once variables are restored.
        self.resolve_start(int(self._global_step.numpy()))

    def resolve_start(self, start_step: int) -> None:
        """Fixes the relative target once the starting global step is known (bridge calls this)."""
        if self._last_step is None:
            self._last_step = start_step + self._num_steps

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._global_step)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        if int(run_values.results) >= self._last_step:
            run_context.request_stop()

    def steps_until_trigger(self, global_step: int) -> int | None:
        return None if self._last_step is None else max(1, self._last_step - global_step)


class NanTensorHook(SessionRunHook):
    """Stops (or raises ``NanLossDuringTrainingError``) when ``loss_tensor`` becomes NaN."""

    def __init__(self, loss_tensor: Any, fail_on_nan_loss: bool = True) -> None:
        self._loss_tensor = loss_tensor
        self._fail_on_nan_loss = fail_on_nan_loss

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._loss_tensor)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        if np.isnan(run_values.results).any():
            message = "Model diverged with loss = NaN."
            if self._fail_on_nan_loss:
                logger.error(message)
                raise NanLossDuringTrainingError
            logger.warning(message)
            run_context.request_stop()

    def steps_until_trigger(self, global_step: int) -> int | None:
        return None  # when it watches the loss: a grouped call ends at the first non-finite loss


class LoggingTensorHook(SessionRunHook):
    """Logs the given tensors every N iterations or seconds, and/or at the end."""

    def __init__(
        self,
        tensors: Union[Mapping[str, Any], Sequence[Any]],
        every_n_iter: int | None = None,
        every_n_secs: float | None = None,
        at_end: bool = False,
        formatter: Callable[[dict], str] | None = None,
    ) -> None:
        only_at_end = at_end and every_n_iter is None and every_n_secs is None
        if not only_at_end and (every_n_iter is None) == (every_n_secs is None):
            raise ValueError(
                "either at_end and/or exactly one of every_n_iter and every_n_secs must be provided."
            )
        if every_n_iter is not None and every_n_iter <= 0:
            raise ValueError(f"invalid every_n_iter={every_n_iter}.")
        if isinstance(tensors, Mapping):
            self._tags = sorted(tensors)
            self._tensors = dict(tensors)
        else:
            tensors = list(tensors)
            self._tags = [t if isinstance(t, str) else getattr(t, "name", str(i)) for i, t in enumerate(tensors)]
            self._tensors = dict(zip(self._tags, tensors))
        self._timer = (
            None if only_at_end else SecondOrStepTimer(every_secs=every_n_secs, every_steps=every_n_iter)
        )
        self._log_at_end = at_end
        self._formatter = formatter
        self._iter_count = 0
        self._last_values: dict | None = None

    def begin(self) -> None:
        self._iter_count = 0
        # Tensor names ("loss:0"), as tf.estimator accepted them, resolve in the traced step.
        self._current = {tag: _as_graph_element(tensor) for tag, tensor in self._tensors.items()}

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._current)

    def _log(self, values: Mapping[str, Any], elapsed: float | None = None) -> None:
        if self._formatter is not None:
            logger.info(self._formatter(dict(values)))
            return
        text = ", ".join(f"{tag} = {values[tag]}" for tag in self._tags)
        if elapsed is not None:
            text += f" ({elapsed:.3f} sec)"
        logger.info(text)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        self._last_values = run_values.results
        last_iteration = self._iter_count + run_context.steps - 1
        if self._timer is not None and self._timer.should_trigger_for_step(last_iteration):
            elapsed, _ = self._timer.update_last_triggered_step(last_iteration)
            self._log(run_values.results, elapsed)
        self._iter_count += run_context.steps

    def steps_until_trigger(self, global_step: int) -> int | None:
        return None if self._timer is None else self._timer.steps_until_trigger(self._iter_count)

    def end(self, session: Any) -> None:
        if self._log_at_end and self._last_values is not None:
            # 2.15 ran the tensors once more at the end: a variable (the global step) shows its final value.
            import tensorflow as tf

            values = dict(self._last_values)
            for tag, tensor in self._current.items():
                if isinstance(tensor, tf.Variable):
                    values[tag] = tensor.numpy()
            self._log(values)


class StepCounterHook(SessionRunHook):
    """Logs ``global_step/sec`` every N steps and hands it to ``callback`` (bridge writes the summary)."""

    _bridge_fetches_updated_step = True  # written for the global step after the update (bridge._step)

    def __init__(self, every_n_steps: int = 100, callback: Callable[[int, float], None] | None = None) -> None:
        self._timer = SecondOrStepTimer(every_steps=every_n_steps)
        self._callback = callback

    def begin(self) -> None:
        self._global_step = _global_step_tensor()

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._global_step)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        step = int(run_values.results)
        if self._timer.should_trigger_for_step(step):
            elapsed_secs, elapsed_steps = self._timer.update_last_triggered_step(step)
            if elapsed_secs:
                rate = elapsed_steps / elapsed_secs
                logger.info("global_step/sec: %g", rate)
                if self._callback is not None:
                    self._callback(step, rate)

    def steps_until_trigger(self, global_step: int) -> int | None:
        return self._timer.steps_until_trigger(global_step + 1)


class GlobalStepWaiterHook(SessionRunHook):
    """Holds back the first training step until the global step reaches ``wait_until_step``.

    tf.estimator used it to start non-chief workers after the chief's first steps. bridge
    reads the global step variable (``wait_until_step <= 0`` starts at once); something else
    must move it (another thread, or variables restored from a checkpoint at that step), or
    the wait never ends. Waiting is logged once a minute.
    """

    _bridge_fetches_updated_step = True  # written for the global step after the update (bridge._step)

    _bridge_groupable = True  # it acts before the first step only

    def __init__(self, wait_until_step: int) -> None:
        self._wait_until_step = wait_until_step

    def begin(self) -> None:
        self._worker_is_started = False
        self._global_step = _global_step_tensor()

    def before_run(self, run_context: SessionRunContext) -> None:
        import tensorflow as tf

        if self._worker_is_started or not tf.executing_eagerly():  # the trace: nothing to fetch
            return None
        if self._wait_until_step <= 0:
            self._worker_is_started = True
            return None
        logger.info("Waiting for global step %d before starting training.", self._wait_until_step)
        last_logged = time.monotonic()
        while True:
            step = int(self._global_step.numpy())
            if step >= self._wait_until_step:
                self._worker_is_started = True
                return None
            if time.monotonic() - last_logged >= 60:
                logger.info("Waiting for global step %d before starting training. Current step is %d.", self._wait_until_step, step)
                last_logged = time.monotonic()
            time.sleep(0.5)

    def steps_until_trigger(self, global_step: int) -> int | None:
        return None


# NanTensorHook is not here: a grouped call stops at the first non-finite *loss*, so only the
# runtime's own NaN hook on the loss is marked groupable (``_bridge_groupable``).
_GROUPABLE = (StopAtStepHook, LoggingTensorHook, StepCounterHook)


def groupable(hooks: Sequence[SessionRunHook]) -> bool:
    """Whether several steps may run per call without changing what ``hooks`` observe.

    Exactly bridge's step-counting hooks (a subclass may override ``after_run``), plus any
    hook that declares ``steps_until_trigger`` and reads ``run_context.steps``.
    """
    return all(type(hook) in _GROUPABLE or getattr(hook, "_bridge_groupable", False) for hook in hooks)


def steps_until_trigger(hooks: Sequence[SessionRunHook], global_step: int, limit: int) -> int:
    """The most steps (1..limit) the next call may run so that it ends on every hook's next trigger."""
    steps = limit
    for hook in hooks:
        until = hook.steps_until_trigger(global_step)
        if until is not None:
            steps = min(steps, until)
    return max(1, steps)


# Extensions (bridge.compat) register adapters turning objects written for another runtime (a
# tf.compat.v1.train Session hook or saving listener) into bridge's own; the runtime knows none of them.
_adapters: list[Callable[[Any], Any]] = []


def register_adapter(adapter: Callable[[Any], Any]) -> None:
    """Adds ``adapter(obj) -> bridge hook / CheckpointSaverListener, or None`` for foreign hooks."""
    if adapter not in _adapters:
        _adapters.append(adapter)


def _adapt(obj: Any) -> Any:
    from bridge._model_fn_scopes import _factories

    _factories.items()  # imports bridge's built-in extensions (bridge.compat registers the adapters)
    for adapter in _adapters:
        adapted = adapter(obj)
        if adapted is not None:
            return adapted
    return None


def check_hooks(hooks: Any, what: str = "Hooks") -> list[SessionRunHook]:
    """Returns ``hooks`` as a list of bridge hooks (foreign ones adapted), else raises TypeError."""
    result = []
    for hook in list(hooks or []):
        if not isinstance(hook, SessionRunHook):
            hook = _adapt(hook) or hook
        if not isinstance(hook, SessionRunHook):
            raise TypeError(f"{what} must be a SessionRunHook, given: {hook!r}")
        result.append(hook)
    return result


def check_listeners(listeners: Any) -> list[CheckpointSaverListener]:
    """Returns ``listeners`` as bridge CheckpointSaverListeners (foreign ones adapted), else raises TypeError."""
    result = []
    for listener in list(listeners or []):
        if not isinstance(listener, CheckpointSaverListener):
            listener = _adapt(listener) or listener
        if not isinstance(listener, CheckpointSaverListener):
            raise TypeError(f"saving_listeners must be a list of CheckpointSaverListener, given: {listener!r}")
        result.append(listener)
    return result


__all__ = [
    "CheckpointSaverListener",
    "GlobalStepWaiterHook",
    "LoggingTensorHook",
    "NanLossDuringTrainingError",
    "NanTensorHook",
    "SecondOrStepTimer",
    "SessionRunArgs",
    "SessionRunContext",
    "SessionRunHook",
    "SessionRunValues",
    "StepCounterHook",
    "StopAtStepHook",
    "check_hooks",
    "check_listeners",
    "register_adapter",
]
