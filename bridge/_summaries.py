"""TensorBoard event files in model_dir (training) and its eval directories."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

logger = logging.getLogger("bridge")


class SummaryWriter:
    """A thin wrapper over ``tf.summary`` that writes plain Python/numpy values."""

    def __init__(self, logdir: str) -> None:
        self._writer = tf.summary.create_file_writer(logdir)

    def scalar(self, tag: str, value: float, step: int) -> None:
        with self._writer.as_default(step=step):
            tf.summary.scalar(tag, float(value))

    def serialized(self, summary: bytes, step: int) -> None:
        """Writes a serialized ``Summary`` protocol buffer (what v1 summary ops produce) as it is."""
        with self._writer.as_default(step=step):
            tf.summary.experimental.write_raw_pb(summary, step=step)

    def write_eval_results(self, results: Mapping[str, Any], step: int, checkpoint_path: str | None) -> None:
        """Writes an evaluate() result dict as tf.estimator did: scalars, tensors, checkpoint path."""
        with self._writer.as_default(step=step):
            for key, value in results.items():
                if key == "global_step":
                    continue
                if isinstance(value, (bool, int, float, np.integer, np.floating)) or (
                    isinstance(value, np.ndarray) and value.ndim == 0
                ):
                    tf.summary.scalar(key, float(value))
                elif isinstance(value, np.ndarray):
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
