"""``Estimator``: tf.estimator 2.15's train / evaluate / predict on TensorFlow 2 and Keras 3.

How one call works (the design is explained in docs/design.md):

1. input_fn is called and normalised into a dataset of (features, labels).
2. A fresh ``VariableStore`` (global step first) and one ``tf.function`` trace of the step:
   model_fn runs on the next batch inside the trace, creating its Keras layers, optimizer
   and metrics; their variables are created eagerly, outside the function, once.
3. The variables are restored from the latest checkpoint (or warm-started), then the traced
   step runs in a Python loop driven by hooks, checkpoints and summaries.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from bridge import _checkpoints, warm_start
from bridge._api_names import api_name
from bridge._console import ProgressBar, configure_bridge_logger
from bridge._backend import require_tensorflow_backend
from bridge._fn_args import fn_args
from bridge._eval_predict import (
    NESTED_METRIC_PREFIX,
    TracedEvaluation,
    eval_results,
    every_output,
    examples,
    filter_predictions,
    is_host_input,
    metric_value,
    refuse_unupdated_keras_metrics,
    refuse_writes,
    run_eval_loop,
)
from bridge._host_metrics import is_host_metric_op
from bridge._inputs import Input, call_input_fn, make_input
from bridge._model_fn_scopes import ModelFnCall, model_fn_scopes
from bridge._step import STEP_BEFORE_UPDATE, CannotGroup, InputExhausted, TracedStep
from bridge._summaries import LossSummaryHook, SummaryWriter
from bridge._model_dir_undo import FirstCallUndo
from bridge._train_loop import CheckpointSaver, run_train_steps
from bridge._variables import VariableStore
from bridge._writer_hooks import CheckpointSaverHook
from bridge.estimator_spec import EstimatorSpec, validate_eval_metric_names
from bridge.hooks import (
    NO_COORDINATOR,
    NO_SESSION,
    CheckpointSaverListener,
    LoggingTensorHook,
    NanTensorHook,
    SessionRunHook,
    StepCounterHook,
    StopAtStepHook,
    check_hooks,
    check_listeners,
    groupable,
)
from bridge.mode_keys import ModeKeys
from bridge.run_config import RunConfig, resolve_model_dir
from bridge.training import model_fn_mode

logger = configure_bridge_logger()  # again now that TensorFlow is imported: see bridge._console

_MODEL_FN_ARGS = {"features", "labels", "mode", "params", "config", "self"}

# A call groups steps only when it may run at least this many groups (see _groups_steps):
# measured break-even on the benchmark MLP (2 cores), where a training step saves more
# (0.3-0.7 ms) than an evaluate or predict batch (0.1-0.3 ms).
GROUPING_MIN_CALLS = {ModeKeys.TRAIN: 4, ModeKeys.EVAL: 16, ModeKeys.PREDICT: 16}


def _verify_model_fn_args(model_fn: Callable, params: Any) -> None:
    args = set(fn_args(model_fn))
    if "features" not in args:
        raise ValueError(f"model_fn ({model_fn}) must include features argument.")
    if params is not None and "params" not in args:
        raise ValueError(f"model_fn ({model_fn}) does not include params argument, but params ({params}) is passed to Estimator.")
    if params is None and "params" in args:
        logger.warning("Estimator's model_fn (%s) includes params argument, but params are not passed to Estimator.", model_fn)
    unexpected = sorted(args - _MODEL_FN_ARGS)
    if unexpected:
        raise ValueError(f"model_fn ({model_fn}) has following not expected args: {unexpected}")


def _set_random_seed(seed: int | None) -> None:
    if seed is not None:
        tf.random.set_seed(seed)
        try:
            import keras

            keras.utils.set_random_seed(seed)
        except ImportError:  # pragma: no cover - keras is a dependency
            pass


class Estimator:
    """Trains, evaluates and predicts with a ``model_fn(features, labels, mode, params, config)``.

    Same constructor and methods as ``tf.estimator.Estimator`` 2.15; see docs/migration.md
    for the few differences (hooks fetch through ``before_run``; no Scaffold/Session).
    """

    def __init__(
        self,
        model_fn: Callable[..., EstimatorSpec],
        model_dir: str | os.PathLike | None = None,
        config: RunConfig | None = None,
        params: Mapping[str, Any] | None = None,
        warm_start_from: Any = None,
    ) -> None:
        _refuse_overridden_members(self)
        require_tensorflow_backend("Estimator")
        self._config = resolve_model_dir(model_dir, config)
        if model_fn is None:
            raise ValueError("model_fn must be provided to Estimator.")
        _verify_model_fn_args(model_fn, params)
        self._model_fn = model_fn
        self._params = copy.deepcopy(dict(params or {}))
        self._warm_start_settings = warm_start.normalize(warm_start_from)

    # -- properties --------------------------------------------------------------------------
    @property
    def model_dir(self) -> str:
        return self._config.model_dir

    @property
    def config(self) -> RunConfig:
        return copy.deepcopy(self._config)

    @property
    def params(self) -> dict:
        return copy.deepcopy(self._params)

    @property
    def model_fn(self) -> Callable:
        """The model_fn with params bound: ``(features, labels, mode, config) -> EstimatorSpec``."""

        def public_model_fn(features, labels, mode, config):
            return self._call_model_fn(features, labels, mode, config)

        return public_model_fn

    def eval_dir(self, name: str | None = None) -> str:
        """Where evaluate() writes its summaries: ``model_dir/eval`` or ``model_dir/eval_<name>``."""
        return os.path.join(self.model_dir, "eval" if not name else "eval_" + name)

    # -- checkpoints -------------------------------------------------------------------------
    def latest_checkpoint(self) -> str | None:
        """Full path of the newest checkpoint in model_dir, or None."""
        return _checkpoints.latest_checkpoint(self.model_dir)

    def _resume_checkpoint(self) -> str | None:
        """The checkpoint train() resumes from (see docs/design.md, "Checkpoints").

        When model_dir holds only damaged checkpoints, training refuses to start from scratch,
        unless warm_start_from was given explicitly.
        """
        try:
            return self.latest_checkpoint()
        except _checkpoints.CheckpointRecoveryError as error:
            if self._warm_start_settings is None:
                raise
            logger.warning("%s Warm-starting from warm_start_from as asked; the damaged files stay.", error)
            return None

    def _latest_to_read(self) -> str | None:
        """The newest intact checkpoint, for a call that reads one (evaluate, predict, variables)."""
        try:
            return self.latest_checkpoint()
        except _checkpoints.CheckpointRecoveryError as error:
            raise error.with_advice(_checkpoints.READ_ADVICE) from None

    def _require_checkpoint(self) -> str:
        path = self._latest_to_read()
        if not path:
            raise ValueError(f"Could not find trained model in model_dir: {self.model_dir}.")
        return path

    def _checkpoint_to_read(self, checkpoint_path: str | None) -> str | None:
        """The given checkpoint (which must exist, as tf.estimator checked), else the latest one."""
        if not checkpoint_path:
            return self._latest_to_read()
        path = os.fspath(checkpoint_path)
        if not tf.io.gfile.exists(path + ".index"):
            raise ValueError(f"The passed save_path is not a valid checkpoint: {checkpoint_path}")
        problem = _checkpoints.checkpoint_problem(path) if os.path.exists(path + ".index") else None
        if problem is not None:
            raise ValueError(f"The passed checkpoint_path {path} cannot be read: {problem}.")
        return path

    def get_variable_names(self) -> list[str]:
        """Names of the variables in the latest checkpoint."""
        return [name for name, _ in tf.train.list_variables(self._require_checkpoint())]

    def get_variable_value(self, name: str) -> np.ndarray:
        """Value of one variable in the latest checkpoint (``NotFoundError`` if it has none)."""
        return tf.train.load_checkpoint(self._require_checkpoint()).get_tensor(name)

    # -- model_fn ----------------------------------------------------------------------------
    def _call_model_fn(
        self, features: Any, labels: Any, mode: str, config: RunConfig | None = None, summary_writer: Any = None
    ) -> EstimatorSpec:
        declared = fn_args(self._model_fn)
        kwargs: dict[str, Any] = {}
        if "labels" in declared:
            kwargs["labels"] = labels
        elif labels is not None:
            raise ValueError("model_fn does not take labels, but input_fn returns labels.")
        if "mode" in declared:
            kwargs["mode"] = mode
        if "params" in declared:
            kwargs["params"] = self.params
        if "config" in declared:
            kwargs["config"] = copy.deepcopy(config or self._config)
        # The graph-level seed model_fn sees is RunConfig.tf_random_seed (None when unset), as in
        # 2.15's fresh graph; a trace would otherwise inherit a process-wide tf.random.set_seed.
        tf.compat.v1.get_default_graph().seed = (config or self._config).tf_random_seed
        call = ModelFnCall(mode, config or self._config, summary_writer)
        with model_fn_mode(mode), model_fn_scopes(call):
            spec = self._model_fn(features=features, **kwargs)
            if not isinstance(spec, EstimatorSpec):
                raise ValueError(f"model_fn should return an EstimatorSpec. Given: {spec}")
            call.spec = spec
        return call.spec

    def _input(self, input_fn: Callable, mode: str, strategy: Any = None) -> Input:
        """input_fn's data; under a strategy ``dataset`` is the strategy's distributed dataset.

        An input_fn that declares ``input_context`` is called by the strategy once per input
        pipeline (``distribute_datasets_from_function``), as tf.estimator did: it returns
        per-replica batches and shards by ``input_context`` itself. Any other input_fn returns
        global batches, which the strategy splits across replicas (and, multi-worker,
        auto-shards across workers: each worker takes its slice of every global batch).
        """
        if strategy is None:
            return make_input(call_input_fn(input_fn, mode, self._params, self._config))
        if "input_context" not in fn_args(input_fn):
            data = make_input(call_input_fn(input_fn, mode, self._params, self._config))
            return data._replace(dataset=strategy.experimental_distribute_dataset(data.dataset))
        made: list[Input] = []

        def dataset_fn(input_context):
            made.append(make_input(call_input_fn(input_fn, mode, self._params, self._config, input_context)))
            return made[-1].dataset

        dataset = strategy.distribute_datasets_from_function(dataset_fn)
        return made[0]._replace(dataset=dataset)

    def _restore_or_warm_start(self, store: VariableStore, checkpoint_path: str | None, purpose: str) -> None:
        """Restores ``checkpoint_path`` or warm-starts; an extension may take this over (``store.initialize``)."""

        def default() -> None:
            if checkpoint_path:
                logger.info("Restoring parameters from %s", checkpoint_path)
                _checkpoints.restore(checkpoint_path, store.saveable, store.state_owners)
            elif self._warm_start_settings is not None:
                warm_start.apply(self._warm_start_settings, store.variables, store.state_owners)
            elif purpose:
                logger.info(
                    "Could not find trained model in model_dir: %s, running initialization to %s.", self.model_dir, purpose
                )

        if store.initialize is None:
            default()
        else:
            store.initialize(restored=bool(checkpoint_path), default=default, warm_start=self._warm_start_settings is not None)

    # -- train -------------------------------------------------------------------------------
    def train(
        self,
        input_fn: Callable,
        hooks: Sequence[SessionRunHook] | None = None,
        steps: int | None = None,
        max_steps: int | None = None,
        saving_listeners: Sequence[CheckpointSaverListener] | None = None,
    ) -> "Estimator":
        """Trains until input_fn is exhausted, ``steps`` more steps, or global step ``max_steps``.

        Returns self, for chaining.
        """
        if self._config.task_type in ("evaluator", "ps"):
            raise ValueError(
                f"Train has been called wrong configuration. Please use {api_name('train_and_evaluate')} which calls "
                f"proper API according to given configuration. Current task type is {self._config.task_type}."
            )
        if steps is not None and max_steps is not None:
            raise ValueError("Can not provide both steps and max_steps.")
        if steps is not None and steps <= 0:
            raise ValueError(f"Must specify steps > 0, given: {steps}")
        if max_steps is not None and max_steps <= 0:
            raise ValueError(f"Must specify max_steps > 0, given: {max_steps}")
        user_hooks = check_hooks(hooks)
        listeners = check_listeners(saving_listeners)
        user_saver = next((h for h in user_hooks if isinstance(h, CheckpointSaverHook)), None)
        if user_saver is not None:  # as in tf.estimator: it replaces RunConfig's saving and takes the listeners
            user_saver._listeners.extend(listeners)
            listeners = []
        elif listeners and not self._checkpointing_enabled():
            raise ValueError(
                "There should be a CheckpointSaverHook to use saving_listeners. Enable checkpoints with "
                "RunConfig(save_checkpoints_steps=...) or save_checkpoints_secs=..."
            )
        resume_from = self._resume_checkpoint()  # a damaged model_dir is refused before anything is written
        if max_steps is not None:
            start = _checkpoints.read_global_step(resume_from)
            if max_steps <= start:
                logger.info("Skipping training since max_steps has already saved.")
                return self
        if not self._is_chief_trainer():
            # A non-chief worker of a cluster trains in step with the chief but writes nothing
            # into model_dir (no lock, checkpoints, summaries or chief hooks).
            loss = self._train(input_fn, user_hooks, steps, max_steps, listeners)
            logger.info("Loss for final step: %s.", loss)
            return self
        # A first call that fails before a step succeeds leaves model_dir as it was (_model_dir_undo.py).
        self._first_call = FirstCallUndo(self.model_dir) if FirstCallUndo.applies(self.model_dir, resume_from) else None
        try:
            os.makedirs(self.model_dir, exist_ok=True)
            with _checkpoints.TrainerLock(self.model_dir):
                loss = self._train(input_fn, user_hooks, steps, max_steps, listeners)
        except Exception:
            if self._first_call is not None:
                self._first_call.undo()
            raise
        finally:
            self._first_call = None
        logger.info("Loss for final step: %s.", loss)
        return self

    def _is_chief_trainer(self) -> bool:
        """Whether this process writes model_dir while training: the chief of its cluster (or alone).

        TF_CONFIG decides (``RunConfig.is_chief``); a strategy that says it should not
        checkpoint (``MultiWorkerMirroredStrategy`` on a non-chief worker) also makes it a
        non-chief.
        """
        extended = getattr(self._config.train_distribute, "extended", None)
        return bool(self._config.is_chief and getattr(extended, "should_checkpoint", True))

    def _checkpointing_enabled(self) -> bool:
        return self._config.save_checkpoints_steps is not None or self._config.save_checkpoints_secs is not None

    def _train(self, input_fn, user_hooks, steps, max_steps, listeners) -> float | None:
        config = self._config
        _set_random_seed(config.tf_random_seed)
        strategy = config.train_distribute
        data = self._input(input_fn, ModeKeys.TRAIN, strategy)
        dataset = data.dataset
        iterator = iter(dataset)
        store = VariableStore(strategy)
        chief = self._is_chief_trainer()
        summary_writer = SummaryWriter(self.model_dir) if config.save_summary_steps and chief else None
        stop_hook = None
        if steps is not None:
            stop_hook = StopAtStepHook(num_steps=steps)
        elif max_steps is not None:
            stop_hook = StopAtStepHook(last_step=max_steps)

        def body(element):
            features, labels = data.split(element)
            # 2.15's loss log names the step a batch trains (read before train_op increments it):
            # step = 0, 10, 20 ... while summaries are written at the step after it.
            step_before = store.global_step.read_value()
            spec = self._call_model_fn(features, labels, ModeKeys.TRAIN, summary_writer=summary_writer)
            hooks = list(user_hooks)
            if stop_hook is not None:
                hooks.append(stop_hook)
            nan_hook = NanTensorHook(spec.loss)
            nan_hook._bridge_groupable = True  # it watches the loss, where a grouped call stops
            hooks.append(nan_hook)
            if config.log_step_count_steps is not None:
                hooks.append(
                    LoggingTensorHook(
                        {"loss": spec.loss, "step": step_before}, every_n_iter=config.log_step_count_steps
                    )
                )
            hooks.extend(spec.training_hooks)
            if chief:
                hooks.extend(spec.training_chief_hooks)
            if config.log_step_count_steps is not None:
                callback = (lambda step, rate: summary_writer.scalar("global_step/sec", rate, step)) if summary_writer else None
                hooks.append(StepCounterHook(config.log_step_count_steps, callback))
            if summary_writer is not None:
                hooks.append(LossSummaryHook(summary_writer, spec.loss, config.save_summary_steps))
            train_op = spec.train_op if isinstance(spec.train_op, tf.Operation) else spec.train_op.op
            outputs = {"loss": spec.loss, "global_step": store.global_step, "train_op": train_op}
            outputs[STEP_BEFORE_UPDATE] = step_before  # what a user's hook fetching the global step gets
            return spec, outputs, hooks

        iterations = config.iterations_per_loop
        limit = steps
        if max_steps is not None:
            limit = max_steps - _checkpoints.read_global_step(self._resume_checkpoint())
        if self._groups_steps(ModeKeys.TRAIN, strategy, dataset, limit) and groupable(user_hooks):
            iterations = config.max_steps_per_call
        checkpoint = self._resume_checkpoint()

        def on_session(hooks: Sequence[SessionRunHook]) -> None:
            self._restore_or_warm_start(store, checkpoint, purpose="")
            if stop_hook is not None:
                stop_hook.resolve_start(int(store.global_step.numpy()))
            _after_create_session(hooks)

        step = TracedStep(
            store,
            iterator,
            body,
            iterations=iterations,
            strategy=strategy,
            stop_if_loss_not_finite=True,
            run_model_updates=True,
            on_session=on_session,
        )
        del iterator, dataset  # the traced step owns the input now; step.close() releases it
        try:
            return self._train_loop(step, store, config, stop_hook, steps, max_steps, listeners, checkpoint)
        finally:
            step.close()
            if summary_writer is not None:
                summary_writer.close()

    def _groups_steps(self, mode: str, strategy: Any, dataset: Any, limit: int | None) -> bool:
        """Whether this call groups steps into traced calls (``RunConfig.max_steps_per_call``).

        A call known to run fewer than ``GROUPING_MIN_CALLS[mode]`` groups' worth of steps
        (``limit``, or the dataset's known cardinality) runs one step per call: tracing model_fn
        inside the loop costs tens of milliseconds more (trace, graph optimisation of the
        control flow), which a short call does not earn back.
        """
        config = self._config
        if config.max_steps_per_call == 1 or config.iterations_per_loop > 1 or strategy is not None:
            return False
        known = [] if limit is None else [limit]
        cardinality = int(dataset.cardinality()) if isinstance(dataset, tf.data.Dataset) else -2
        if cardinality >= 0:  # -1: infinite, -2: unknown
            known.append(cardinality)
        return not known or min(known) >= GROUPING_MIN_CALLS[mode] * config.max_steps_per_call

    def _train_loop(self, step, store, config, stop_hook, steps, max_steps, listeners, checkpoint) -> float | None:
        # Variables were restored and hooks' after_create_session called during the trace.
        start_step = int(store.global_step.numpy())
        # Only the chief saves. A non-chief's copy of the (mirrored) variables equals the chief's,
        # and the writer reads local copies only, so skipping needs no collective with the others.
        saver = None
        own_saver = any(isinstance(hook, CheckpointSaverHook) for hook in step.hooks)
        if self._checkpointing_enabled() and self._is_chief_trainer() and not own_saver:
            saver = CheckpointSaver(self.model_dir, self._config, store, listeners, checkpoint)
        if saver is not None:
            saver.begin(start_step)
        progress = ProgressBar(config.progress_bar, max_steps or (start_step + steps if steps else None), "step")
        try:
            first_call = getattr(self, "_first_call", None)
            return run_train_steps(step, store, config, stop_hook, saver, progress, start_step,
                                   on_step=first_call.note_step if first_call is not None else None)
        finally:
            progress.close()

    # -- evaluate ----------------------------------------------------------------------------
    def evaluate(
        self,
        input_fn: Callable,
        steps: int | None = None,
        hooks: Sequence[SessionRunHook] | None = None,
        checkpoint_path: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Evaluates the latest (or given) checkpoint; returns ``loss``, ``global_step`` and each metric.

        ``loss`` is the mean of the per-batch losses, as tf.estimator computed it.
        """
        return self._evaluate(input_fn, steps, hooks, checkpoint_path, name)

    def _evaluate(
        self,
        input_fn: Callable,
        steps: int | None,
        hooks: Sequence[SessionRunHook] | None,
        checkpoint_path: str | None,
        name: str | None,
    ) -> dict[str, Any]:
        user_hooks = check_hooks(hooks)
        if steps is not None and steps <= 0:
            raise ValueError(f"Must specify steps > 0, given: {steps}")
        checkpoint_path = self._checkpoint_to_read(checkpoint_path)
        evaluation = self._trace_evaluation(
            input_fn, steps, user_hooks,
            initialize=lambda store: self._restore_or_warm_start(store, checkpoint_path, purpose="evaluate"),
        )
        try:
            return self._run_evaluation(evaluation, name, checkpoint_path)
        finally:
            evaluation.step.close()

    def _trace_evaluation(
        self,
        input_fn: Callable,
        steps: int | None,
        user_hooks: Sequence[SessionRunHook],
        initialize: Callable[[VariableStore], None],
    ) -> TracedEvaluation:
        """input_fn's data and the traced eval step, its variables set by ``initialize(store)``.

        ``bridge.experimental.InMemoryEvaluatorHook`` keeps the result to evaluate again
        (``TracedEvaluation.restart``) without tracing model_fn again.
        """
        _set_random_seed(self._config.tf_random_seed)
        strategy = self._config.eval_distribute
        data = self._input(input_fn, ModeKeys.EVAL, strategy)
        iterator = iter(data.dataset)
        store = VariableStore(strategy)

        def body(element):
            features, labels = data.split(element)
            spec = self._call_model_fn(features, labels, ModeKeys.EVAL)
            validate_eval_metric_names(spec.eval_metric_ops)
            outputs = {"loss": spec.loss}
            for key, metric in sorted(spec.eval_metric_ops.items()):
                if is_host_metric_op(metric):
                    for name, tensor in metric.fetches.items():
                        outputs[f"host/{key}/{name}"] = tensor
                elif isinstance(metric, tuple) and tf.nest.is_nested(metric[0]):
                    # a nested value ((2.0, 1), 3.0): one output per leaf, repacked in the result
                    for index, leaf in enumerate(tf.nest.flatten(metric_value(key, metric))):
                        outputs[f"{NESTED_METRIC_PREFIX}{key}/{index}"] = leaf
                else:
                    outputs["metric/" + key] = metric_value(key, metric)
            return spec, outputs, list(user_hooks) + list(spec.evaluation_hooks)

        grouped = self._groups_steps(ModeKeys.EVAL, strategy, data.dataset, steps) and not user_hooks
        iterations = self._config.max_steps_per_call if grouped else 1
        stores = [store]

        def on_session(hooks: Sequence[SessionRunHook]) -> None:
            initialize(stores[-1])
            _after_create_session(hooks)

        try:
            step = TracedStep(
                store, iterator, body, iterations=iterations, strategy=strategy, collect=is_host_input, sum_loss=True,
                on_session=on_session,
            )
        except CannotGroup:  # an output of unknown rank: one batch per call
            stores.append(VariableStore(strategy))
            step = TracedStep(
                stores[-1], iterator, body, strategy=strategy, collect=is_host_input, sum_loss=True, on_session=on_session
            )
        del iterator
        refuse_unupdated_keras_metrics(step)
        return TracedEvaluation(data, stores[-1], step, steps, strategy)

    def _run_evaluation(self, evaluation: TracedEvaluation, name: str | None, checkpoint_path: str | None) -> dict[str, Any]:
        """Runs the eval loop of a traced evaluation; logs, writes (eval dir) and returns its results."""
        step, store = evaluation.step, evaluation.store
        batches, loss_sum, last = run_eval_loop(step, store, evaluation.steps, evaluation.strategy)
        results = eval_results(step.spec, last, batches, loss_sum, store)
        logger.info(
            "Saving dict for global step %d: %s",
            results["global_step"],
            ", ".join(f"{k} = {v}" for k, v in sorted(results.items())),
        )
        # Under a multi-worker eval_distribute every worker holds the same results; one writes them.
        if getattr(getattr(evaluation.strategy, "extended", None), "should_checkpoint", True):
            writer = SummaryWriter(self.eval_dir(name))
            writer.write_eval_results(results, int(results["global_step"]), checkpoint_path)
            writer.close()
        return results

    # -- predict -----------------------------------------------------------------------------
    def predict(
        self,
        input_fn: Callable,
        predict_keys: Sequence[str] | str | None = None,
        hooks: Sequence[SessionRunHook] | None = None,
        checkpoint_path: str | None = None,
        yield_single_examples: bool = True,
    ) -> Iterator[Any]:
        """Yields predictions one example (or one batch) at a time. Lazy: nothing runs until iterated."""
        user_hooks = check_hooks(hooks)
        checkpoint_path = self._checkpoint_to_read(checkpoint_path)
        _set_random_seed(self._config.tf_random_seed)
        data = self._input(input_fn, ModeKeys.PREDICT)
        if data.endless:
            logger.warning("Input graph does not use tf.data.Dataset or contain a QueueRunner. That means predict yields forever.")
        iterator = iter(data.dataset)
        store = VariableStore()

        def body(element):
            features, _ = data.split(element)
            spec = self._call_model_fn(features, None, ModeKeys.PREDICT)
            predictions = filter_predictions(spec.predictions, predict_keys)
            outputs = predictions if isinstance(predictions, dict) else {"": predictions}
            return spec, outputs, list(user_hooks) + list(spec.prediction_hooks)

        grouped = self._groups_steps(ModeKeys.PREDICT, None, data.dataset, None) and not user_hooks
        iterations = self._config.max_steps_per_call if grouped else 1

        def on_session(hooks: Sequence[SessionRunHook]) -> None:
            self._restore_or_warm_start(store, checkpoint_path, purpose="predict")
            _after_create_session(hooks)

        try:
            step = TracedStep(store, iterator, body, iterations=iterations, collect=every_output, on_session=on_session)
        except CannotGroup:  # a prediction of unknown rank: one batch per call
            store = VariableStore()
            step = TracedStep(store, iterator, body, collect=every_output, on_session=on_session)
        del iterator
        try:
            refuse_writes(step, store, ModeKeys.PREDICT)
            single = not isinstance(filter_predictions(step.spec.predictions, predict_keys), dict)
            per_step = 1 if step.hooks else step.iterations  # hooks see every batch
            while True:
                try:
                    run = step.run(max_iterations=per_step)
                except InputExhausted:
                    break
                for i in range(run.steps):
                    if single:
                        batch = run.outputs[""][i]
                        yield from (batch if yield_single_examples else [batch])
                    else:
                        outputs = {key: run.outputs[key][i] for key in step.output_names}
                        yield from (examples(outputs) if yield_single_examples else [outputs])
                if run.context.stop_requested:
                    break
            for hook in step.hooks:
                hook.end(NO_SESSION)
        finally:
            step.close()

    # -- export ------------------------------------------------------------------------------
    def export_savedmodel(
        self,
        export_dir_base: str | os.PathLike,
        serving_input_receiver_fn: Callable[[], Any],
        assets_extra: Mapping[str, str] | None = None,
        as_text: bool = False,
        checkpoint_path: str | None = None,
        strip_default_attrs: bool = False,
    ) -> bytes:
        """The TF 1.x name of :meth:`export_saved_model` (deprecated there too; same warning).

        ``strip_default_attrs`` is accepted: TensorFlow 2 SavedModels always strip default attrs.
        """
        logger.warning(
            "Estimator.export_savedmodel (from bridge.estimator) is deprecated and will be removed in a future "
            "version.\nInstructions for updating:\nThis function has been renamed, use `export_saved_model` instead."
        )
        return self.export_saved_model(
            export_dir_base, serving_input_receiver_fn, assets_extra, as_text, checkpoint_path
        )

    def export_saved_model(
        self,
        export_dir_base: str | os.PathLike,
        serving_input_receiver_fn: Callable[[], Any],
        assets_extra: Mapping[str, str] | None = None,
        as_text: bool = False,
        checkpoint_path: str | None = None,
        experimental_mode: str = ModeKeys.PREDICT,
    ) -> bytes:
        """Writes a SavedModel of the PREDICT (or EVAL / TRAIN) graph to ``export_dir_base/<timestamp>``; returns its path.

        See ``bridge._export.export_saved_model`` for the EVAL / TRAIN layout (2.15's).
        """
        from bridge._export import export_saved_model

        return export_saved_model(
            self, export_dir_base, serving_input_receiver_fn, assets_extra, as_text, checkpoint_path, experimental_mode
        )


    def experimental_export_all_saved_models(
        self,
        export_dir_base: str | os.PathLike,
        input_receiver_fn_map: Mapping[str, Callable[[], Any]],
        assets_extra: Mapping[str, str] | None = None,
        as_text: bool = False,
        checkpoint_path: str | None = None,
    ) -> bytes:
        """One SavedModel with a MetaGraph per mode of ``input_receiver_fn_map`` (``ModeKeys`` -> receiver fn)."""
        from bridge._export import export_all_saved_models

        return export_all_saved_models(self, export_dir_base, input_receiver_fn_map, assets_extra, as_text, checkpoint_path)


def _after_create_session(hooks: Sequence[SessionRunHook]) -> None:
    """tf.estimator called this once the session existed; bridge calls it once variables are restored."""
    for hook in hooks:
        hook.after_create_session(NO_SESSION, NO_COORDINATOR)


# Members a subclass may redefine (tf.estimator 2.15's list, in bridge's terms).
_OVERRIDABLE = {"model_fn", "latest_checkpoint"}


def _refuse_overridden_members(estimator: Estimator) -> None:
    """tf.estimator's rule: a subclass of Estimator may add members but not redefine Estimator's.

    Like 2.15, only the instance's own class is checked. A class that sets
    ``_bridge_allows_overrides = True`` (bridge's canned estimators) is exempt, and so are its
    subclasses, as 2.15's canned classes were.
    """
    cls = type(estimator)
    if cls is Estimator or getattr(cls, "_bridge_allows_overrides", False):
        return
    members = {name for name in dir(Estimator) if not name.startswith("__")} - _OVERRIDABLE
    overridden = sorted(
        name for name in members & set(vars(cls)) if getattr(Estimator, name) is not getattr(cls, name)
    )
    if overridden:
        raise ValueError(
            f"Subclasses of Estimator cannot override members of Estimator. {cls} does override {overridden}"
        )


