"""``tf.compat.v1.train`` Session hooks and saving listeners, run by bridge.

Registered with the runtime (``bridge.hooks.register_adapter``): whenever a hook or saving
listener that is not bridge's reaches an Estimator call, it comes here.

* The built-in v1 hooks (``LoggingTensorHook``, ``StopAtStepHook``, ``NanTensorHook``,
  ``StepCounterHook``, ``CheckpointSaverHook``, ``SummarySaverHook``, ``ProfilerHook``,
  ``FinalOpsHook``) are translated into bridge's hooks of the same name with the same settings,
  so they behave as in 2.15 and step-counting ones still allow grouped steps. ``FeedFnHook``
  gets a clear error: TensorFlow 2 has no feeds.
* Any other ``tf.compat.v1.train.SessionRunHook`` subclass (a user's own hook) runs as
  written, in 2.15's call order. Its ``before_run`` may return ``tf.compat.v1.train.SessionRunArgs``;
  it cannot use a Session (``run_context.session``, the ``session`` argument): doing so raises
  ``bridge.hooks.NoSessionError`` naming what to use instead.
* ``tf.compat.v1.train.CheckpointSaverListener`` subclasses run as bridge listeners.

Reading the v1 hooks' settings uses their private attributes (TensorFlow gives no public way);
tests/compat/test_hooks.py pins every one of them on the installed TensorFlow.
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from bridge import _writer_hooks
from bridge import hooks as bridge_hooks

_v1 = tf.compat.v1.train


def _timer_settings(timer: Any) -> dict[str, Any]:
    return {"every_secs": timer._every_secs, "every_steps": timer._every_steps}  # pylint: disable=protected-access


def _logging_tensor_hook(hook: Any) -> bridge_hooks.LoggingTensorHook:
    tensors, order = hook._tensors, hook._tag_order  # pylint: disable=protected-access
    given: Any = {tag: tensors[tag] for tag in order} if order == sorted(tensors, key=str) else [tensors[t] for t in order]
    timer = hook._timer  # pylint: disable=protected-access
    at_end = hook._log_at_end  # pylint: disable=protected-access
    settings = _timer_settings(timer) if timer is not None and not _never(timer) else {}
    return bridge_hooks.LoggingTensorHook(
        given,
        every_n_iter=settings.get("every_steps"),
        every_n_secs=settings.get("every_secs"),
        at_end=at_end,
        formatter=hook._formatter,  # pylint: disable=protected-access
    )


def _never(timer: Any) -> bool:
    """v1 LoggingTensorHook(at_end=True) alone uses a timer that never fires."""
    return type(timer).__name__ == "NeverTriggerTimer"


def _stop_at_step_hook(hook: Any) -> bridge_hooks.StopAtStepHook:
    return bridge_hooks.StopAtStepHook(num_steps=hook._num_steps, last_step=hook._last_step)  # pylint: disable=protected-access


def _nan_tensor_hook(hook: Any) -> bridge_hooks.NanTensorHook:
    return _LossByName(hook._loss_tensor, hook._fail_on_nan_loss)  # pylint: disable=protected-access


class _LossByName(bridge_hooks.NanTensorHook):
    """NanTensorHook whose loss may be given by tensor name ("loss:0"), as v1 hooks accepted."""

    def begin(self) -> None:
        self._loss_tensor = bridge_hooks._as_graph_element(self._loss_tensor)  # pylint: disable=protected-access


def _step_counter_hook(hook: Any) -> bridge_hooks.StepCounterHook:
    settings = _timer_settings(hook._timer)  # pylint: disable=protected-access
    if settings["every_steps"] is None:
        raise ValueError(
            "StepCounterHook(every_n_secs=...) is not supported by bridge: use every_n_steps (the log and the "
            "global_step/sec summary then come every N steps)."
        )
    output_dir = hook._output_dir  # pylint: disable=protected-access
    callback = None
    if output_dir:
        from bridge._summaries import SummaryWriter

        writer = SummaryWriter(output_dir)

        def callback(step: int, rate: float) -> None:
            writer.scalar("global_step/sec", rate, step)
            writer.flush()

    return bridge_hooks.StepCounterHook(every_n_steps=settings["every_steps"], callback=callback)


def _checkpoint_saver_hook(hook: Any) -> _writer_hooks.CheckpointSaverHook:
    settings = _timer_settings(hook._timer)  # pylint: disable=protected-access
    return _writer_hooks.CheckpointSaverHook(
        hook._checkpoint_dir,  # pylint: disable=protected-access
        save_secs=settings["every_secs"],
        save_steps=settings["every_steps"],
        saver=hook._saver,  # pylint: disable=protected-access
        scaffold=hook._scaffold,  # pylint: disable=protected-access
        listeners=hook._listeners,  # pylint: disable=protected-access
    )


def _summary_saver_hook(hook: Any) -> _writer_hooks.SummarySaverHook:
    settings = _timer_settings(hook._timer)  # pylint: disable=protected-access
    return _writer_hooks.SummarySaverHook(
        save_steps=settings["every_steps"],
        save_secs=settings["every_secs"],
        output_dir=hook._output_dir,  # pylint: disable=protected-access
        scaffold=hook._scaffold,  # pylint: disable=protected-access
        summary_op=hook._summary_op,  # pylint: disable=protected-access
    )


def _final_ops_hook(hook: Any) -> Any:
    return _V1FinalOps(hook)


class _V1FinalOps(_writer_hooks.FinalOpsHook):
    """Fills the v1 hook's ``final_ops_values`` too, since the script reads it from the object it made."""

    def __init__(self, v1_hook: Any) -> None:
        super().__init__(v1_hook._final_ops, v1_hook._final_ops_feed_dict)  # pylint: disable=protected-access
        self._v1_hook = v1_hook

    def end(self, session: Any) -> None:
        super().end(session)
        self._v1_hook._final_ops_values = self.final_ops_values  # pylint: disable=protected-access


def _feed_fn_hook(hook: Any) -> None:
    _writer_hooks.FeedFnHook(hook.feed_fn)  # raises the explanation


_TRANSLATIONS: dict[type, Callable[[Any], Any]] = {
    _v1.LoggingTensorHook: _logging_tensor_hook,
    _v1.StopAtStepHook: _stop_at_step_hook,
    _v1.NanTensorHook: _nan_tensor_hook,
    _v1.StepCounterHook: _step_counter_hook,
    _v1.CheckpointSaverHook: _checkpoint_saver_hook,
    _v1.SummarySaverHook: _summary_saver_hook,
    _v1.FinalOpsHook: _final_ops_hook,
    _v1.FeedFnHook: _feed_fn_hook,
}
# tf.compat.v1.train.ProfilerHook cannot even be built on TensorFlow 2 (its FileWriter needs graph
# mode): scripts use bridge.ProfilerHook, which bridge.install_as_tf_estimator() puts at its name.


class V1Hook(bridge_hooks.SessionRunHook):
    """Runs a user's ``tf.compat.v1.train.SessionRunHook`` subclass as a bridge hook."""

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def begin(self) -> None:
        self.hook.begin()

    def after_create_session(self, session: Any, coord: Any) -> None:
        self.hook.after_create_session(session, coord)

    def before_run(self, run_context: bridge_hooks.SessionRunContext) -> Any:
        return self.hook.before_run(run_context)

    def after_run(self, run_context: bridge_hooks.SessionRunContext, run_values: bridge_hooks.SessionRunValues) -> None:
        self.hook.after_run(run_context, run_values)

    def end(self, session: Any) -> None:
        self.hook.end(session)

    def __repr__(self) -> str:
        return f"V1Hook({self.hook!r})"


class V1Listener(bridge_hooks.CheckpointSaverListener):
    """Runs a ``tf.compat.v1.train.CheckpointSaverListener`` subclass as a bridge listener."""

    def __init__(self, listener: Any) -> None:
        self.listener = listener

    def begin(self) -> None:
        self.listener.begin()

    def before_save(self, session: Any, global_step_value: int) -> None:
        self.listener.before_save(bridge_hooks.NO_SESSION, global_step_value)

    def after_save(self, session: Any, global_step_value: int) -> Any:
        return self.listener.after_save(bridge_hooks.NO_SESSION, global_step_value)

    def end(self, session: Any, global_step_value: int) -> None:
        self.listener.end(bridge_hooks.NO_SESSION, global_step_value)


def adapt(obj: Any) -> Any:
    """The bridge hook or listener for a tf.compat.v1.train one, or None for anything else."""
    if isinstance(obj, _v1.CheckpointSaverListener):
        return V1Listener(obj)
    if not isinstance(obj, _v1.SessionRunHook):
        return None
    translate = _TRANSLATIONS.get(type(obj))
    return translate(obj) if translate is not None else V1Hook(obj)


bridge_hooks.register_adapter(adapt)
