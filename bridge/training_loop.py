"""``train_and_evaluate`` with ``TrainSpec``/``EvalSpec``, and the exporters it runs.

Local semantics of tf.estimator 2.15 (no TF_CONFIG cluster):

* one ``Estimator.train`` call to ``TrainSpec.max_steps``; evaluation is driven by checkpoint
  saves through a ``CheckpointSaverListener``: the first save of the run (the step-0 or
  resume save) is skipped, later saves evaluate when ``throttle_secs`` have passed since
  the last evaluation (the first eligible save always does), and the end of training
  evaluates the final checkpoint unless that step was just evaluated;
* each evaluation runs ``Estimator.evaluate`` on the newest checkpoint, then every exporter
  into ``model_dir/export/<exporter name>``;
* returns ``(metrics of the last evaluation, its export results)``, or ``(None, None)``
  when ``max_steps`` was already reached and nothing ran.

``start_delay_secs`` only matters to a separate evaluator task. With a TF_CONFIG cluster each
process runs its role: the chief and the workers train in step (several of them need
``RunConfig(train_distribute=tf.distribute.MultiWorkerMirroredStrategy())``; only the chief
writes model_dir), and an ``evaluator`` task evaluates new checkpoints until ``max_steps`` (as
tf.estimator did: evaluation belongs to the evaluator task). Parameter-server clusters (``ps``
tasks) are refused.
"""

from __future__ import annotations

import abc
import collections
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import tensorflow as tf

from bridge._api_names import api_name
from bridge._fn_args import fn_args
from bridge.hooks import CheckpointSaverListener, SecondOrStepTimer, SessionRunHook

if TYPE_CHECKING:
    from bridge.estimator import Estimator

logger = logging.getLogger("bridge")

__all__ = [
    "TrainSpec",
    "EvalSpec",
    "train_and_evaluate",
    "Exporter",
    "LatestExporter",
    "BestExporter",
    "FinalExporter",
]


# -- specs ---------------------------------------------------------------------------------------
def _validate_input_fn(input_fn: Any) -> None:
    if not callable(input_fn):
        raise TypeError(f"`input_fn` must be callable, given: {input_fn}")


def _validate_all(items: Any, kind: type, what: str) -> tuple:
    items = tuple(items or ())
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(f"All {what} must be `{kind.__name__}` instances, given: {item}")
    return items


def _validate_hooks(hooks: Any) -> tuple:
    return _validate_all(hooks, SessionRunHook, "hooks")


def _validate_saving_listeners(listeners: Any) -> tuple:
    return _validate_all(listeners, CheckpointSaverListener, "saving_listeners")


def _validate_exporters(exporters: Any) -> tuple:
    if not exporters:
        return ()
    if isinstance(exporters, Exporter):
        exporters = [exporters]
    try:
        exporters = list(exporters)
    except TypeError:
        exporters = [exporters]
    if not all(isinstance(exporter, Exporter) for exporter in exporters):
        raise TypeError(f"`exporters` must be an Exporter, an iterable of Exporter, or `None`, found {exporters}.")
    names: list[str] = []
    for exporter in exporters:
        if not exporter.name:
            raise ValueError(
                "An Exporter cannot have a name that is `None` or empty. All exporter names: "
                f"{[e.name for e in exporters]}"
            )
        if not isinstance(exporter.name, str):
            raise ValueError(f"An Exporter must have a string name. Given: {type(exporter.name)}")
        if exporter.name in names:
            raise ValueError(
                "`exporters` must have unique names. Such a name cannot be `None`. All exporter names: "
                f"{[e.name for e in exporters]}"
            )
        names.append(exporter.name)
    return tuple(exporters)


class TrainSpec(collections.namedtuple("TrainSpec", ["input_fn", "max_steps", "hooks", "saving_listeners"])):
    """The training half of ``train_and_evaluate``: input, duration, hooks and saving listeners.

    ``max_steps=None`` trains until the input runs out (or forever on endless input).
    """

    __slots__ = ()

    def __new__(
        cls,
        input_fn: Callable[..., Any],
        max_steps: int | None = None,
        hooks: Iterable[SessionRunHook] | None = None,
        saving_listeners: Iterable[CheckpointSaverListener] | None = None,
    ) -> TrainSpec:
        _validate_input_fn(input_fn)
        if max_steps is not None and max_steps <= 0:
            raise ValueError(f"Must specify max_steps > 0, given: {max_steps}")
        return super().__new__(
            cls,
            input_fn=input_fn,
            max_steps=max_steps,
            hooks=_validate_hooks(hooks),
            saving_listeners=_validate_saving_listeners(saving_listeners),
        )


class EvalSpec(
    collections.namedtuple(
        "EvalSpec", ["input_fn", "steps", "name", "hooks", "exporters", "start_delay_secs", "throttle_secs"]
    )
):
    """The evaluation half: input, steps per evaluation, name, hooks, exporters and cadence.

    ``throttle_secs``: minimum seconds between two evaluations (0 evaluates every checkpoint).
    ``start_delay_secs``: how long a separate evaluator task waits before its first evaluation.
    """

    __slots__ = ()

    def __new__(
        cls,
        input_fn: Callable[..., Any],
        steps: int | None = 100,
        name: str | None = None,
        hooks: Iterable[SessionRunHook] | None = None,
        exporters: Exporter | Iterable[Exporter] | None = None,
        start_delay_secs: float = 120,
        throttle_secs: float = 600,
    ) -> EvalSpec:
        _validate_input_fn(input_fn)
        if steps is not None and steps <= 0:
            raise ValueError(f"Must specify steps > 0, given: {steps}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be string, given: {name}")
        hooks = _validate_hooks(hooks)
        exporters = _validate_exporters(exporters)
        if start_delay_secs < 0:
            raise ValueError(f"Must specify start_delay_secs >= 0, given: {start_delay_secs}")
        if throttle_secs < 0:
            raise ValueError(f"Must specify throttle_secs >= 0, given: {throttle_secs}")
        return super().__new__(
            cls,
            input_fn=input_fn,
            steps=steps,
            name=name,
            hooks=hooks,
            exporters=exporters,
            start_delay_secs=start_delay_secs,
            throttle_secs=throttle_secs,
        )


# -- exporters -----------------------------------------------------------------------------------
class Exporter(abc.ABC):
    """A kind of export ``train_and_evaluate`` runs after each evaluation.

    Subclasses define ``name`` (the directory under ``model_dir/export``) and ``export``.
    """

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Directory name of this exporter's exports; neither None nor empty."""

    @abc.abstractmethod
    def export(
        self, estimator: Any, export_path: str, checkpoint_path: str, eval_result: Mapping[str, Any], is_the_final_export: bool
    ) -> Any:
        """Exports ``checkpoint_path`` under ``export_path``; returns the export path or None if skipped.

        ``is_the_final_export`` is True for the evaluation at the end of training (never when
        ``TrainSpec.max_steps`` is None).
        """


class _SavedModelExporter(Exporter):
    """Exports a SavedModel on every call (the building block of the exporters below)."""

    def __init__(self, name: str, serving_input_receiver_fn: Callable, assets_extra: Mapping | None = None, as_text: bool = False) -> None:
        self._name = name
        self._serving_input_receiver_fn = serving_input_receiver_fn
        self._assets_extra = assets_extra
        self._as_text = as_text

    @property
    def name(self) -> str:
        return self._name

    def export(
        self, estimator: Any, export_path: str, checkpoint_path: str, eval_result: Mapping[str, Any], is_the_final_export: bool
    ) -> bytes | None:
        del eval_result, is_the_final_export
        return estimator.export_saved_model(
            export_path,
            self._serving_input_receiver_fn,
            assets_extra=self._assets_extra,
            as_text=self._as_text,
            checkpoint_path=checkpoint_path,
        )


def _check_exports_to_keep(exports_to_keep: int | None) -> None:
    if exports_to_keep is not None and exports_to_keep <= 0:
        raise ValueError(f"`exports_to_keep`, if provided, must be a positive number. Got {exports_to_keep}")


_EXPORT_VERSION = re.compile(r"^\d{10}$")


def _garbage_collect_exports(export_dir_base: str, exports_to_keep: int | None) -> None:
    """Deletes all but the ``exports_to_keep`` newest ``<10-digit timestamp>`` exports."""
    if exports_to_keep is None or not tf.io.gfile.isdir(export_dir_base):
        return
    versions = sorted(
        int(name) for name in (n.rstrip("/") for n in tf.io.gfile.listdir(export_dir_base)) if _EXPORT_VERSION.match(name)
    )
    for version in versions[: max(0, len(versions) - exports_to_keep)]:
        path = os.path.join(export_dir_base, str(version))
        try:
            tf.io.gfile.rmtree(path)
        except tf.errors.NotFoundError as error:
            logger.warning("Can not delete %s recursively: %s", path, error)


class _SavedModelExporterBase(Exporter):
    """Shared by the exporters below: a named SavedModel export, then old exports collected."""

    def __init__(self, name, serving_input_receiver_fn, assets_extra, as_text, exports_to_keep) -> None:
        _check_exports_to_keep(exports_to_keep)
        self._saved_model_exporter = _SavedModelExporter(name, serving_input_receiver_fn, assets_extra, as_text)
        self._exports_to_keep = exports_to_keep

    @property
    def name(self) -> str:
        return self._saved_model_exporter.name

    def _export_and_collect(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        result = self._saved_model_exporter.export(estimator, export_path, checkpoint_path, eval_result, is_the_final_export)
        _garbage_collect_exports(export_path, self._exports_to_keep)
        return result


class LatestExporter(_SavedModelExporterBase):
    """Exports after every evaluation and keeps the ``exports_to_keep`` newest (None keeps all)."""

    def __init__(
        self,
        name: str,
        serving_input_receiver_fn: Callable,
        assets_extra: Mapping | None = None,
        as_text: bool = False,
        exports_to_keep: int | None = 5,
    ) -> None:
        super().__init__(name, serving_input_receiver_fn, assets_extra, as_text, exports_to_keep)

    def export(
        self, estimator: Any, export_path: str, checkpoint_path: str, eval_result: Mapping[str, Any], is_the_final_export: bool
    ) -> bytes | None:
        return self._export_and_collect(estimator, export_path, checkpoint_path, eval_result, is_the_final_export)


class FinalExporter(_SavedModelExporterBase):
    """Exports once, at the end of training (``is_the_final_export``)."""

    def __init__(self, name: str, serving_input_receiver_fn: Callable, assets_extra: Mapping | None = None, as_text: bool = False) -> None:
        super().__init__(name, serving_input_receiver_fn, assets_extra, as_text, exports_to_keep=None)

    def export(
        self, estimator: Any, export_path: str, checkpoint_path: str, eval_result: Mapping[str, Any], is_the_final_export: bool
    ) -> bytes | None:
        if not is_the_final_export:
            return None
        logger.info("Performing the final export in the end of training.")
        return self._export_and_collect(estimator, export_path, checkpoint_path, eval_result, is_the_final_export)


def _loss_smaller(best_eval_result: Mapping[str, Any], current_eval_result: Mapping[str, Any]) -> bool:
    """True when the current evaluation's ``loss`` is strictly smaller than the best one's."""
    if not best_eval_result or "loss" not in best_eval_result:
        raise ValueError("best_eval_result cannot be empty or no loss is found in it.")
    if not current_eval_result or "loss" not in current_eval_result:
        raise ValueError("current_eval_result cannot be empty or no loss is found in it.")
    return best_eval_result["loss"] > current_eval_result["loss"]


def _verify_compare_fn_args(compare_fn: Callable) -> None:
    args = set(fn_args(compare_fn))
    if "best_eval_result" not in args:
        raise ValueError(f"compare_fn ({compare_fn}) must include best_eval_result argument.")
    if "current_eval_result" not in args:
        raise ValueError(f"compare_fn ({compare_fn}) must include current_eval_result argument.")
    unexpected = sorted(args - {"best_eval_result", "current_eval_result"})
    if unexpected:
        raise ValueError(f"compare_fn ({compare_fn}) has following not expected args: {unexpected}")


class BestExporter(_SavedModelExporterBase):
    """Exports when the evaluation beats the best one so far (``compare_fn``; default: smaller loss).

    The first export of an exporter always happens. The best result so far is seeded from
    the evaluation event files matching ``event_file_pattern`` under model_dir (``None``
    disables seeding: the exporter then forgets its best after a restart). Keeps the
    ``exports_to_keep`` newest exports (None keeps all).
    """

    def __init__(
        self,
        name: str = "best_exporter",
        serving_input_receiver_fn: Callable | None = None,
        event_file_pattern: str | None = "eval/*.tfevents.*",
        compare_fn: Callable = _loss_smaller,
        assets_extra: Mapping | None = None,
        as_text: bool = False,
        exports_to_keep: int | None = 5,
    ) -> None:
        if compare_fn is None:
            raise ValueError("`compare_fn` must not be None.")
        _verify_compare_fn_args(compare_fn)
        super().__init__(name, serving_input_receiver_fn, assets_extra, as_text, exports_to_keep)
        self._compare_fn = compare_fn
        self._event_file_pattern = event_file_pattern
        self._model_dir: str | None = None
        self._best_eval_result: dict[str, Any] | None = None
        self._has_exported = False

    def export(
        self, estimator: Any, export_path: str, checkpoint_path: str, eval_result: Mapping[str, Any], is_the_final_export: bool
    ) -> bytes | None:
        if self._model_dir != estimator.model_dir and self._event_file_pattern:
            logger.info("Loading best metric from event files.")
            self._model_dir = estimator.model_dir
            self._best_eval_result = self._best_eval_result_from_events(
                os.path.join(self._model_dir, self._event_file_pattern)
            )
        if (
            self._best_eval_result is None
            or not self._has_exported
            or self._compare_fn(best_eval_result=self._best_eval_result, current_eval_result=eval_result)
        ):
            logger.info("Performing best model export.")
            self._best_eval_result = None if eval_result is None else dict(eval_result)
            result = self._export_and_collect(estimator, export_path, checkpoint_path, eval_result, is_the_final_export)
            self._has_exported = True
            return result
        return None

    def _best_eval_result_from_events(self, pattern: str) -> dict[str, Any] | None:
        """The best evaluation among the scalar summaries of the evaluation event files.

        One evaluation is the set of scalars written at one step (bridge writes each metric
        as its own event; tf.estimator wrote them in one).
        """
        candidates: list[dict[str, Any]] = []
        for path in sorted(tf.io.gfile.glob(pattern)):
            by_step: dict[int, dict[str, Any]] = {}
            for event in tf.compat.v1.train.summary_iterator(path):
                if not event.HasField("summary"):
                    continue
                for value in event.summary.value:
                    if value.HasField("simple_value"):
                        by_step.setdefault(event.step, {})[value.tag] = value.simple_value
                    elif value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                        by_step.setdefault(event.step, {})[value.tag] = tf.make_ndarray(value.tensor).item()
            candidates.extend(result for _, result in sorted(by_step.items()) if result)
        best = None
        for result in candidates:
            if best is None or self._compare_fn(best_eval_result=best, current_eval_result=result):
                best = result
        return best


# -- train_and_evaluate --------------------------------------------------------------------------
class _Evaluator:
    """Evaluates the newest checkpoint and runs the exporters (once per new checkpoint)."""

    def __init__(self, estimator: Any, eval_spec: EvalSpec, max_training_steps: int | None) -> None:
        self._estimator = estimator
        self._eval_spec = eval_spec
        self._max_training_steps = max_training_steps
        self._previous_checkpoint: str | None = None
        self.is_final_export_triggered = False

    def evaluate_and_export(self) -> tuple[dict | None, list | None, bool]:
        """(metrics, export results, evaluated?) for the newest checkpoint; skips a seen one."""
        checkpoint = self._estimator.latest_checkpoint()
        if not checkpoint or checkpoint == self._previous_checkpoint:
            return None, None, False
        metrics = self._estimator.evaluate(
            input_fn=self._eval_spec.input_fn,
            steps=self._eval_spec.steps,
            name=self._eval_spec.name,
            checkpoint_path=checkpoint,
            hooks=self._eval_spec.hooks,
        )
        if not isinstance(metrics, dict) or "global_step" not in metrics:
            raise ValueError(f"Internal error: `Estimator.evaluate` result should have `global_step`. Given {metrics}")
        is_final = bool(self._max_training_steps) and metrics["global_step"] >= self._max_training_steps
        export_results = self._export(metrics, checkpoint, is_final)
        if is_final:
            self.is_final_export_triggered = True
        self._previous_checkpoint = checkpoint
        return metrics, export_results, True

    def _export(self, metrics: dict, checkpoint: str, is_final: bool) -> list:
        base = os.path.join(os.fsdecode(self._estimator.model_dir), "export")
        return [
            exporter.export(
                estimator=self._estimator,
                export_path=os.path.join(base, exporter.name),
                checkpoint_path=checkpoint,
                eval_result=metrics,
                is_the_final_export=is_final,
            )
            for exporter in self._eval_spec.exporters
        ]


class _EvaluateOnCheckpointListener(CheckpointSaverListener):
    """Evaluates after checkpoint saves (throttled) and after the last one."""

    def __init__(self, evaluator: _Evaluator, throttle_secs: float) -> None:
        self._evaluator = evaluator
        self._throttle_secs = throttle_secs
        self.eval_result: dict | None = None
        self.export_results: list | None = None

    def begin(self) -> None:
        self._timer = SecondOrStepTimer(every_secs=self._throttle_secs)
        self._is_first_run = True

    def after_save(self, session, global_step_value):
        if self._is_first_run:  # the save at the start of training: nothing new to evaluate
            self._is_first_run = False
            return None
        if self._timer.should_trigger_for_step(global_step_value):
            self._evaluate(global_step_value)
        else:
            logger.info("Skip the current checkpoint eval due to throttle secs (%s secs).", self._throttle_secs)
        return None

    def end(self, session, global_step_value):
        if global_step_value != self._timer.last_triggered_step():
            self._evaluate(global_step_value)

    def _evaluate(self, global_step_value: int) -> None:
        self._timer.update_last_triggered_step(global_step_value)
        metrics, exports, evaluated = self._evaluator.evaluate_and_export()
        if not evaluated:
            raise RuntimeError("There was no new checkpoint after the training.")
        self.eval_result, self.export_results = metrics, exports


def _assert_eval_spec(eval_spec: Any) -> None:
    if not isinstance(eval_spec, EvalSpec):
        raise TypeError(f"`eval_spec` must have type `{api_name('EvalSpec')}`. Got: {type(eval_spec)}")


def train_and_evaluate(
    estimator: Estimator, train_spec: TrainSpec, eval_spec: EvalSpec
) -> tuple[dict[str, Any] | None, list[Any] | None]:
    """Trains ``estimator`` to ``train_spec.max_steps``, evaluating and exporting along the way.

    Locally: evaluation after each checkpoint save (no more often than
    ``eval_spec.throttle_secs``) and a final one at the end; returns ``(eval_result,
    export_results)`` of the last evaluation, ``(None, None)`` if max_steps was already reached.
    Checkpointing must be enabled in the RunConfig (evaluation follows the saves).
    """
    _assert_eval_spec(eval_spec)  # fail fast, as tf.estimator did
    from bridge.estimator import Estimator

    if not isinstance(estimator, Estimator):
        raise TypeError(f"`estimator` must have type `{api_name('Estimator')}`. Got: {type(estimator)}")
    if not isinstance(train_spec, TrainSpec):
        raise TypeError(f"`train_spec` must have type `{api_name('TrainSpec')}`. Got: {type(train_spec)}")
    config = estimator.config
    if config.task_type == "evaluator" and config.task_id > 0:
        raise ValueError(
            "For distributed training, there can only be one `evaluator` task (with task id 0).  "
            f"Given task id {config.task_id}"
        )
    if not config.cluster_spec and config.task_type != "evaluator":
        logger.info("Running training and evaluation locally (non-distributed).")
        return _run_local(estimator, train_spec, eval_spec)
    return _run_distributed(estimator, train_spec, eval_spec, config)


def _run_local(estimator: Any, train_spec: TrainSpec, eval_spec: EvalSpec) -> tuple[dict | None, list | None]:
    config = estimator.config
    logger.info(
        "Start train and evaluate loop. The evaluate will happen after every checkpoint. Checkpoint frequency is "
        "determined based on RunConfig arguments: save_checkpoints_steps %s or save_checkpoints_secs %s.",
        config.save_checkpoints_steps,
        config.save_checkpoints_secs,
    )
    evaluator = _Evaluator(estimator, eval_spec, train_spec.max_steps)
    listener = _EvaluateOnCheckpointListener(evaluator, eval_spec.throttle_secs)
    estimator.train(
        input_fn=train_spec.input_fn,
        max_steps=train_spec.max_steps,
        hooks=list(train_spec.hooks),
        saving_listeners=list(train_spec.saving_listeners) + [listener],
    )
    return listener.eval_result, listener.export_results


_SUPPORTED_TASK_TYPES = ("chief", "evaluator", "master", "ps", "worker")


def _run_distributed(estimator: Any, train_spec: TrainSpec, eval_spec: EvalSpec, config: Any) -> None:
    task_type = config.task_type
    if not task_type:
        raise ValueError(
            "`estimator.config` must have task_type set. This usually means TF_CONFIG environment is not set correctly."
        )
    if task_type == "local":
        raise ValueError(
            "`task.type` in TF_CONFIG cannot be `local`. Leaving `cluster` and `task` properties in TF_CONFIG "
            "absent triggers train and evaluate `Estimator` locally (non-distributed)."
        )
    if task_type not in _SUPPORTED_TASK_TYPES:
        raise ValueError(f"Task type {task_type} is not supported. Supported task types are {list(_SUPPORTED_TASK_TYPES)}")
    if task_type == "evaluator":
        _run_evaluator(estimator, train_spec, eval_spec)
        return None
    jobs = config.cluster_spec.as_dict()
    if task_type == "ps" or "ps" in jobs:
        raise NotImplementedError(
            f"train_and_evaluate as a '{task_type}' task: the cluster {sorted(jobs)} has 'ps' tasks, i.e. "
            "parameter-server training, which bridge does not support (tf.distribute's "
            "ParameterServerStrategy needs a coordinator-driven loop, not tf.estimator's between-graph one). "
            "Use chief/worker tasks with RunConfig(train_distribute=tf.distribute.MultiWorkerMirroredStrategy())."
        )
    trainers = sum(len(tasks) for job, tasks in jobs.items() if job in ("chief", "master", "worker"))
    if trainers > 1 and not _is_multi_worker(config.train_distribute):
        raise ValueError(
            f"train_and_evaluate as a '{task_type}' task of a cluster with {trainers} training tasks needs "
            "RunConfig(train_distribute=tf.distribute.MultiWorkerMirroredStrategy()), created at the start of "
            "every chief/worker process with this TF_CONFIG. Without it each process would train alone. "
            f"Given train_distribute={config.train_distribute!r}."
        )
    # Chief and workers train in step (the strategy's collectives); the chief alone writes
    # checkpoints and summaries. Evaluation is the evaluator task's job (tf.estimator's run_chief
    # and run_worker did the same).
    if config.is_chief:
        _clear_training_finished(estimator.model_dir)
    estimator.train(
        input_fn=train_spec.input_fn,
        max_steps=train_spec.max_steps,
        hooks=list(train_spec.hooks),
        saving_listeners=list(train_spec.saving_listeners),
    )
    if config.is_chief:
        _mark_training_finished(estimator.model_dir, estimator.latest_checkpoint())
    return None


# Written by the chief when its training ends (max_steps, input exhausted, or a hook's stop
# such as early stopping), so the evaluator task stops once it has evaluated the last
# checkpoint instead of waiting for one that will never come (tf.estimator's evaluator waited).
_TRAINING_FINISHED = ".bridge-training-finished"


def _clear_training_finished(model_dir: str) -> None:
    path = os.path.join(model_dir, _TRAINING_FINISHED)
    if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def _mark_training_finished(model_dir: str, checkpoint: str | None) -> None:
    from bridge import _checkpoints

    tf.io.gfile.makedirs(model_dir)
    step = _checkpoints.read_global_step(checkpoint)
    with tf.io.gfile.GFile(os.path.join(model_dir, _TRAINING_FINISHED), "w") as f:
        f.write(f"{step}\n")


def _training_finished_step(model_dir: str) -> int | None:
    """The final global step of a finished training run in model_dir, or None while it trains."""
    path = os.path.join(model_dir, _TRAINING_FINISHED)
    try:
        with tf.io.gfile.GFile(path) as f:
            return int(f.read().strip())
    except (tf.errors.NotFoundError, ValueError):
        return None


def _is_multi_worker(strategy: Any) -> bool:
    """Whether ``strategy`` synchronises several worker processes (MultiWorkerMirroredStrategy)."""
    if strategy is None:
        return False
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def _run_evaluator(estimator: Any, train_spec: TrainSpec, eval_spec: EvalSpec) -> None:
    """tf.estimator's evaluator task: evaluate each new checkpoint until one reaches max_steps."""
    if eval_spec.start_delay_secs:
        logger.info("Waiting %s secs before starting eval.", eval_spec.start_delay_secs)
        time.sleep(eval_spec.start_delay_secs)
    evaluator = _Evaluator(estimator, eval_spec, train_spec.max_steps)
    last_warning = 0.0
    if eval_spec.throttle_secs == 0:
        logger.warning("EvalSpec.throttle_secs is 0: the evaluator polls for new checkpoints continuously.")
    evaluated_step = -1
    while True:
        start = time.time()
        metrics, _, evaluated = evaluator.evaluate_and_export()
        if evaluated:
            last_warning = 0.0
            evaluated_step = int(metrics["global_step"])
            if train_spec.max_steps and metrics["global_step"] >= train_spec.max_steps:
                logger.info("Exiting evaluation, global_step=%s >= train max_steps=%s", metrics["global_step"], train_spec.max_steps)
                return
        finished = _training_finished_step(estimator.model_dir)
        if finished is not None and evaluated_step >= finished:
            logger.info("Exiting evaluation: training ended at global_step=%s, which has been evaluated.", finished)
            return
        elif time.time() - last_warning > 600:
            logger.warning("No new checkpoint ready for evaluation in %s; waiting.", estimator.model_dir)
            last_warning = time.time()
        remaining = eval_spec.throttle_secs - (time.time() - start)
        time.sleep(max(remaining, 1.0 if not evaluated else 0.0))
