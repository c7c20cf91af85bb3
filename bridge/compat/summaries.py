"""v1 and ``tf.summary`` summaries in model_fn, written as tf.estimator's SummarySaverHook did.

tf.estimator 2.15 merged the ``SUMMARIES`` collection (``tf.compat.v1.summary.merge_all()``) and
wrote it to model_dir every ``RunConfig.save_summary_steps`` training steps, starting with the
first, on the chief. bridge does the same: the v1 summary ops build serialized ``Summary``
protos inside the traced step, and on exit from model_fn a hook is added that fetches the
merged proto on the steps it is due and hands it to the runtime's summary writer unchanged, so
event files read back as 2.15's did (``simple_value`` scalars, histograms, images, text).

``tf.summary.scalar/histogram/image/text/audio`` (the TF2 API) wrote nothing from a 2.15
model_fn (no default writer in its graph). Inside a bridge model_fn they are routed to their
v1 forms, so they are written with the rest; their ``step`` argument is ignored (the global step
is used, as for every estimator summary).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import tensorflow as tf

from bridge._model_fn_scopes import ModelFnCall, register
from bridge.compat._patching import attributes_set
from bridge.hooks import SessionRunArgs, SessionRunHook


def _scalar(name, data, step=None, description=None):
    return tf.compat.v1.summary.scalar(name, data)


def _histogram(name, data, step=None, buckets=None, description=None):
    return tf.compat.v1.summary.histogram(name, data)


def _image(name, data, step=None, max_outputs=3, description=None):
    return tf.compat.v1.summary.image(name, data, max_outputs=max_outputs)


def _text(name, data, step=None, description=None):
    return tf.compat.v1.summary.text(name, data)


def _audio(name, data, sample_rate, step=None, max_outputs=3, encoding=None, description=None):
    return tf.compat.v1.summary.audio(name, data, sample_rate, max_outputs=max_outputs)


_V2_TO_V1 = {"scalar": _scalar, "histogram": _histogram, "image": _image, "text": _text, "audio": _audio}


class SummarySaverHook(SessionRunHook):
    """Writes a merged summary on the first step and then every ``every_steps`` global steps.

    The merged summary is requested only on calls that may end on a due step, so the summary
    ops need not run on the others.
    """

    _bridge_fetches_updated_step = True  # written for the global step after the update (bridge._step)

    _bridge_groupable = True  # triggers on step counts; see bridge.hooks (grouped steps)

    def __init__(self, writer: Any, summary: tf.Tensor, every_steps: int) -> None:
        self._writer, self._summary, self._every = writer, summary, every_steps
        self._last: int | None = None  # step last written
        self._seen: int | None = None  # last global step seen
        self._span = 1  # steps the next call may cover (told by steps_until_trigger)

    def begin(self) -> None:
        step = tf.compat.v1.train.get_global_step()
        self._with_summary = SessionRunArgs({"summary": self._summary, "step": step})
        self._step_only = SessionRunArgs({"step": step})
        self._first_request = True

    def _may_be_due(self) -> bool:
        return self._last is None or self._seen is None or self._seen + self._span >= self._last + self._every

    def before_run(self, run_context):
        if self._first_request:  # inside the trace: declare everything this hook may fetch
            self._first_request = False
            return self._with_summary
        request = self._with_summary if self._may_be_due() else self._step_only
        self._span = 1
        return request

    def after_run(self, run_context, run_values) -> None:
        results = run_values.results
        step = int(results["step"])
        self._seen = step
        if "summary" in results and (self._last is None or step >= self._last + self._every):
            self._writer.serialized(results["summary"], step)
            self._last = step

    def steps_until_trigger(self, global_step: int) -> int | None:
        steps = 1 if self._last is None else max(1, self._last + self._every - global_step)
        self._span = steps
        return steps


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Iterator[None]:
    with attributes_set(tf.summary, _V2_TO_V1):
        yield
        writer, every = call.summary_writer, getattr(call.config, "save_summary_steps", None)
        if call.spec is None or call.mode != "train" or writer is None or not every:
            return
        merged = tf.compat.v1.summary.merge_all()
        if merged is not None:
            hook = SummarySaverHook(writer, merged, every)
            call.spec = call.spec._replace(training_hooks=[*call.spec.training_hooks, hook])


register(_model_fn_scope)
