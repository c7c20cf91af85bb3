"""Evaluation results read back from an eval directory's event files, as tf.estimator did.

``evaluate`` (in this process, or an ``evaluator`` task of a cluster) writes each result as
scalar summaries at the evaluated global step. Early stopping reads them back from there, so
every evaluation counts wherever it ran. Scalars written as ``simple_value`` (tf.estimator,
``tf.compat.v1.summary``) and as TF2 scalar tensors (``tf.summary.scalar``) are both read.

Reading is incremental: a file whose size has not changed since the last read is not
parsed again, so a check between two evaluations costs one directory listing.
"""

from __future__ import annotations

import collections
import logging
import os

import numpy as np
import tensorflow as tf

logger = logging.getLogger("bridge")

EVENT_FILE_GLOB_PATTERN = "events.out.tfevents.*"


def _scalars(event: tf.compat.v1.Event) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for value in event.summary.value:
        if value.HasField("simple_value"):
            metrics[value.tag] = float(np.float32(value.simple_value))
        elif value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
            array = tf.make_ndarray(value.tensor)
            if array.ndim == 0 and array.dtype.kind in "fiub":
                metrics[value.tag] = float(np.float32(array))
    return metrics


def _read_file(path: str) -> list[tuple[int, dict[str, float]]]:
    out = []
    try:
        for event in tf.compat.v1.train.summary_iterator(path):
            if event.HasField("summary"):
                metrics = _scalars(event)
                if metrics:
                    out.append((event.step, metrics))
    except tf.errors.DataLossError as error:  # a file being written, or damaged: keep what was read
        logger.warning("Skipping the rest of %s: %s", path, error)
    return out


class EvalMetricsReader:
    """``read()`` -> {global step: {metric: value}}, steps ascending; re-parses only changed files."""

    def __init__(self, eval_dir: str) -> None:
        self.eval_dir = os.fsdecode(eval_dir)
        self._files: dict[str, tuple[int, list]] = {}  # path -> (size read, events)

    def read(self) -> collections.OrderedDict:
        if tf.io.gfile.isdir(self.eval_dir):
            for path in sorted(tf.io.gfile.glob(os.path.join(self.eval_dir, EVENT_FILE_GLOB_PATTERN))):
                try:
                    size = tf.io.gfile.stat(path).length
                except tf.errors.NotFoundError:
                    continue
                cached = self._files.get(path)
                if cached is None or cached[0] != size:
                    self._files[path] = (size, _read_file(path))
        by_step: dict[int, dict[str, float]] = collections.defaultdict(dict)
        for _, events in (self._files[path] for path in sorted(self._files)):
            for step, metrics in events:
                by_step[step].update(metrics)
        return collections.OrderedDict(sorted(by_step.items()))


def read_eval_metrics(eval_dir: str) -> collections.OrderedDict:
    """Every evaluation result in ``eval_dir``: {global step: {metric: value}}, steps ascending."""
    return EvalMetricsReader(eval_dir).read()
