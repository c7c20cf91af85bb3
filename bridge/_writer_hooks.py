"""Hooks that write to disk or collect final values, under tf.estimator's names and arguments.

``CheckpointSaverHook`` (checkpoints of the model being trained, with listeners),
``SummarySaverHook`` (serialized ``Summary`` tensors into event files), ``ProfilerHook``
(TensorFlow profiler traces TensorBoard's Profile tab opens), ``FinalOpsHook`` (values of
tensors after the last step) and ``FeedFnHook`` (refused: TensorFlow 2 has no feeds).

They are bridge hooks like any other (``bridge.hooks``): they fetch through ``before_run`` and
need no Session. ``bridge.compat`` translates the ``tf.compat.v1.train`` classes of the same
names into these.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge import _checkpoints
from bridge._variables import active_store
from bridge.hooks import (
    CheckpointSaverListener,
    SecondOrStepTimer,
    SessionRunArgs,
    SessionRunContext,
    SessionRunHook,
    SessionRunValues,
    check_listeners,
)

logger = logging.getLogger("bridge")


def _global_step() -> tf.Variable:
    step = tf.compat.v1.train.get_global_step()
    if step is None:
        raise RuntimeError("Global step should be created to use this hook.")
    return step


class CheckpointSaverHook(SessionRunHook):
    """Saves ``checkpoint_dir/<checkpoint_basename>-<step>`` every N steps or seconds, at start and at end.

    As tf.estimator's: listeners' ``before_save`` / ``after_save`` run around each save, and an
    ``after_save`` returning True stops training. Passing one to ``train`` replaces the
    RunConfig's checkpoint policy for that call, as it did in 2.15. The checkpoints are
    bridge's (name-based, written so that a kill never loses one; the newest 5 are kept).
    """

    _bridge_fetches_updated_step = True  # written for the global step after the update (bridge._step)

    def __init__(
        self,
        checkpoint_dir: str,
        save_secs: float | None = None,
        save_steps: int | None = None,
        saver: Any = None,
        checkpoint_basename: str = "model.ckpt",
        scaffold: Any = None,
        listeners: Sequence[CheckpointSaverListener] | None = None,
        save_graph_def: bool = True,
    ) -> None:
        if saver is not None or scaffold is not None:
            raise ValueError(
                "CheckpointSaverHook: bridge writes its own name-based checkpoints; a tf.compat.v1.train.Saver or "
                "Scaffold cannot be used (TensorFlow 2 has no Session to run it). Leave saver and scaffold unset."
            )
        if checkpoint_basename != _checkpoints.CHECKPOINT_BASENAME:
            raise ValueError(
                f"CheckpointSaverHook: checkpoints are named {_checkpoints.CHECKPOINT_BASENAME}-<step> so that "
                f"Estimator finds them; checkpoint_basename={checkpoint_basename!r} is not supported."
            )
        self._timer = SecondOrStepTimer(every_secs=save_secs, every_steps=save_steps)
        self._checkpoint_dir = os.fspath(checkpoint_dir)
        self._listeners = check_listeners(listeners)
        self._writer: _checkpoints.CheckpointWriter | None = None

    def begin(self) -> None:
        store = active_store()
        if store is None:
            raise RuntimeError("CheckpointSaverHook runs only inside an Estimator call.")
        self._store = store
        self._global_step = _global_step()
        for listener in self._listeners:
            listener.begin()

    def after_create_session(self, session: Any, coord: Any) -> None:
        os.makedirs(self._checkpoint_dir, exist_ok=True)
        self._writer = _checkpoints.CheckpointWriter(self._checkpoint_dir, self._store.saveable)
        step = int(self._global_step.numpy())
        self._timer.update_last_triggered_step(step)
        self._save(step)

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._global_step)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        step = int(run_values.results)
        if self._timer.should_trigger_for_step(step):
            self._timer.update_last_triggered_step(step)
            if self._save(step):
                run_context.request_stop()

    def end(self, session: Any) -> None:
        step = int(self._global_step.numpy())
        if self._writer is not None and self._writer.last_saved_step != step:
            self._save(step)
        for listener in self._listeners:
            listener.end(session, step)

    def _save(self, step: int) -> bool:
        logger.info("Saving checkpoints for %d into %s.", step, os.path.join(self._checkpoint_dir, "model.ckpt"))
        return _checkpoints.save_with_listeners(self._writer, self._store.saveable, self._listeners, step)


class SummarySaverHook(SessionRunHook):
    """Writes serialized ``Summary`` tensors (v1 summary ops) to ``output_dir`` every N steps or seconds.

    ``summary_op`` is one string tensor or a list of them, as ``tf.compat.v1.summary.scalar`` /
    ``merge_all`` return; None takes ``tf.compat.v1.summary.merge_all()`` of model_fn's graph.
    """

    _bridge_fetches_updated_step = True  # written for the global step after the update (bridge._step)

    def __init__(
        self,
        save_steps: int | None = None,
        save_secs: float | None = None,
        output_dir: str | None = None,
        summary_writer: Any = None,
        scaffold: Any = None,
        summary_op: Any = None,
    ) -> None:
        if scaffold is not None:
            raise ValueError("SummarySaverHook: Scaffold is not supported in bridge; pass summary_op.")
        if summary_writer is not None:
            raise ValueError(
                "SummarySaverHook: a tf.compat.v1.summary.FileWriter needs graph mode; pass output_dir instead."
            )
        if output_dir is None:
            raise ValueError("SummarySaverHook needs output_dir.")
        self._timer = SecondOrStepTimer(every_secs=save_secs, every_steps=save_steps)
        self._output_dir = os.fspath(output_dir)
        self._summary_op = summary_op
        self._writer: Any = None

    def begin(self) -> None:
        if self._summary_op is None:
            self._summary_op = tf.compat.v1.summary.merge_all()
        self._ops = [] if self._summary_op is None else list(tf.nest.flatten(self._summary_op))
        self._request = SessionRunArgs({"step": _global_step(), "summaries": self._ops})
        self._writer = tf.summary.create_file_writer(self._output_dir)

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return self._request

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        step = int(run_values.results["step"])
        if self._timer.should_trigger_for_step(step):
            self._timer.update_last_triggered_step(step)
            with self._writer.as_default(step=step):
                for serialized in run_values.results["summaries"]:
                    tf.summary.experimental.write_raw_pb(tf.constant(serialized), step=step)
            self._writer.flush()

    def end(self, session: Any) -> None:
        if self._writer is not None:
            self._writer.close()


class ProfilerHook(SessionRunHook):
    """Profiles one step every N steps or seconds into ``output_dir/plugins/profile/<run>/``.

    tf.estimator 2.15 wrote Chrome-trace ``timeline-<step>.json`` files; bridge writes the
    TensorFlow 2 profiler's traces, which TensorBoard's Profile tab opens (``tensorboard
    --logdir output_dir``). ``show_dataflow`` and ``show_memory`` are accepted (the profiler
    records both).
    """

    _bridge_fetches_updated_step = True  # written for the global step after the update (bridge._step)

    def __init__(
        self,
        save_steps: int | None = None,
        save_secs: float | None = None,
        output_dir: str = "",
        show_dataflow: bool = True,
        show_memory: bool = False,
    ) -> None:
        self._timer = SecondOrStepTimer(every_secs=save_secs, every_steps=save_steps)
        self._output_dir = os.fspath(output_dir)
        self._tracing = False

    def begin(self) -> None:
        self._global_step = _global_step()
        self._next_step: int | None = None

    def after_create_session(self, session: Any, coord: Any) -> None:
        self._next_step = int(self._global_step.numpy()) + 1

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        if self._next_step is not None and self._timer.should_trigger_for_step(self._next_step) and not self._tracing:
            tf.profiler.experimental.start(self._output_dir)
            self._tracing = True
        return SessionRunArgs(self._global_step)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        step = int(run_values.results)
        if self._tracing:
            tf.profiler.experimental.stop()
            self._tracing = False
            self._timer.update_last_triggered_step(step)
            logger.info("Saved a profile of step %d in %s.", step, self._output_dir)
        self._next_step = step + 1

    def end(self, session: Any) -> None:
        if self._tracing:  # the input ran out during a profiled step
            tf.profiler.experimental.stop()
            self._tracing = False


class FinalOpsHook(SessionRunHook):
    """Keeps the values ``final_ops`` have after the last step in ``final_ops_values``.

    tf.estimator ran them once more at the end; bridge fetches them with every step and keeps
    the last values, which is the same for the usual use (metric values at the end of evaluate).
    """

    _bridge_fetches_updated_step = True  # written for the global step after the update (bridge._step)

    def __init__(self, final_ops: Any, final_ops_feed_dict: Any = None) -> None:
        if final_ops_feed_dict:
            raise ValueError(
                "FinalOpsHook: final_ops_feed_dict needs feeds, which TensorFlow 2 does not have. Compute the "
                "values inside model_fn instead."
            )
        self._final_ops = final_ops
        self._final_ops_values: Any = None
        self._last: Any = None

    @property
    def final_ops_values(self) -> Any:
        return self._final_ops_values

    def before_run(self, run_context: SessionRunContext) -> SessionRunArgs:
        return SessionRunArgs(self._final_ops)

    def after_run(self, run_context: SessionRunContext, run_values: SessionRunValues) -> None:
        self._last = run_values.results

    def end(self, session: Any) -> None:
        self._final_ops_values = self._last


class FeedFnHook(SessionRunHook):
    """Refused: ``feed_fn`` fed placeholders through ``Session.run``, which TensorFlow 2 does not have."""

    def __init__(self, feed_fn: Callable[[], Any]) -> None:
        raise ValueError(
            "FeedFnHook feeds placeholders through Session.run's feed_dict, which TensorFlow 2 does not have. "
            "Feed the data through input_fn instead (a tf.data.Dataset, e.g. tf.data.Dataset.from_generator "
            "for data made by Python code)."
        )


__all__ = ["CheckpointSaverHook", "FeedFnHook", "FinalOpsHook", "ProfilerHook", "SummarySaverHook"]
