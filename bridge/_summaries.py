"""TensorBoard event files in model_dir (training) and its eval directories.

Scalars are written as tf.estimator 2.15 wrote them: ``Summary.Value.simple_value`` in a v1
``Summary`` protocol buffer. TensorBoard plots them, and the classic readers that scripts use
(``EventAccumulator(...).Tags()["scalars"]``, ``tf.compat.v1.train.summary_iterator`` with
``value.simple_value``) see them; TF2 ``tf.summary.scalar`` tensors are invisible to both.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from bridge.hooks import SessionRunArgs, SessionRunHook

logger = logging.getLogger("bridge")


def scalar_summary(values: Mapping[str, float]) -> bytes:
    """A serialized v1 ``Summary`` holding each value as a ``simple_value`` scalar (one event for all)."""
    return tf.compat.v1.Summary(
        value=[tf.compat.v1.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in values.items()]
    ).SerializeToString()


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (bool, int, float, np.integer, np.floating)) or (
        isinstance(value, np.ndarray) and value.ndim == 0
    )


class SummaryWriter:
    """Writes plain Python/numpy values (and serialized v1 summaries) to one log directory."""

    def __init__(self, logdir: str) -> None:
        self._writer = tf.summary.create_file_writer(logdir)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.serialized(scalar_summary({tag: value}), step)

    def serialized(self, summary: bytes, step: int) -> None:
        """Writes a serialized ``Summary`` protocol buffer (what v1 summary ops produce) as it is."""
        with self._writer.as_default(step=step):
            tf.summary.experimental.write_raw_pb(summary, step=step)

    def write_eval_results(self, results: Mapping[str, Any], step: int, checkpoint_path: str | None) -> None:
        """Writes an evaluate() result dict as tf.estimator did: scalars in one event, tensors, checkpoint path."""
        scalars = {key: value for key, value in results.items() if key != "global_step" and _is_scalar(value)}
        if scalars:
            self.serialized(scalar_summary(scalars), step)
        with self._writer.as_default(step=step):
            for key, value in results.items():
                if key == "global_step" or key in scalars:
                    continue
                if isinstance(value, np.ndarray):
                    tf.summary.write(key, tf.constant(value))
                else:
                    logger.warning(
                        "Skipping summary for %s, cannot write a summary of type %s.", key, type(value).__name__
                    )
            if checkpoint_path:
                tf.summary.text("checkpoint_path", checkpoint_path)
        self._writer.flush()

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class LossSummaryHook(SessionRunHook):
    """Writes the ``loss`` scalar on the first step and then every ``every_steps`` global steps."""

    _bridge_fetches_updated_step = True  # written for the global step after the update (bridge._step)

    def __init__(self, writer: SummaryWriter, loss: Any, every_steps: int) -> None:
        self._writer, self._loss, self._every = writer, loss, every_steps
        self._last: int | None = None

    def begin(self) -> None:
        self._request = SessionRunArgs({"loss": self._loss, "step": tf.compat.v1.train.get_global_step()})

    def before_run(self, run_context: Any) -> SessionRunArgs:
        return self._request

    def after_run(self, run_context: Any, run_values: Any) -> None:
        step = int(run_values.results["step"])
        if self._last is None or step >= self._last + self._every:
            self._writer.scalar("loss", run_values.results["loss"], step)
            self._last = step

    _bridge_groupable = True  # see bridge.hooks: grouped steps

    def steps_until_trigger(self, global_step: int) -> int | None:
        return 1 if self._last is None else max(1, self._last + self._every - global_step)
