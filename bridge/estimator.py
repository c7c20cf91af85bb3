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
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from bridge import _checkpoints, warm_start
from bridge._api_names import api_name
from bridge._console import ProgressBar, configure_bridge_logger, evaluation_progress
from bridge._backend import require_tensorflow_backend
from bridge._fn_args import fn_args
from bridge._host_metrics import HostMetricFeeder, is_host_metric_op, merge_across_workers
from bridge._inputs import Input, call_input_fn, make_input
from bridge._model_fn_scopes import ModelFnCall, model_fn_scopes
from bridge._step import WEIGHTS_FINITE, CannotGroup, InputExhausted, TracedStep, all_finite
from bridge._summaries import LossSummaryHook, SummaryWriter
from bridge._variables import VariableStore
from bridge._writer_hooks import CheckpointSaverHook
from bridge.estimator_spec import EstimatorSpec, validate_eval_metric_names
from bridge.hooks import (
    NO_COORDINATOR,
    NO_SESSION,
    CheckpointSaverListener,
    LoggingTensorHook,
    NanLossDuringTrainingError,
    NanTensorHook,
    SessionRunHook,
    StepCounterHook,
    StopAtStepHook,
    check_hooks,
    check_listeners,
    groupable,
    steps_until_trigger,
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

    def _require_checkpoint(self) -> str:
        path = self.latest_checkpoint()
        if not path:
            raise ValueError(f"Could not find trained model in model_dir: {self.model_dir}.")
        return path

    def _checkpoint_to_read(self, checkpoint_path: str | None) -> str | None:
        """The given checkpoint (which must exist, as tf.estimator checked), else the latest one."""
        if not checkpoint_path:
            return self.latest_checkpoint()
        if not tf.io.gfile.exists(os.fspath(checkpoint_path) + ".index"):
            raise ValueError(f"The passed save_path is not a valid checkpoint: {checkpoint_path}")
        return os.fspath(checkpoint_path)

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

    def _refuse_writes(self, step: TracedStep, store: VariableStore, mode: str) -> None:
        """EVAL and PREDICT must not change the model.

        Only what the outputs need runs (a train_op built in every mode is left out, as in
        tf.estimator), so a write that remains is one the outputs depend on.
        """
        written = step.written_variables(store.saveable)
        if written:
            raise ValueError(
                f"In {mode} mode the outputs of model_fn (predictions, loss, eval_metric_ops or a hook's "
                f"fetches) depend on ops that change model variables: {written}. evaluate and predict do "
                "not change the model. A train_op that nothing fetches does not run; remove the "
                "dependency (e.g. a tf.control_dependencies on train_op, or an assign whose value is used), "
                "or build it only when mode == ModeKeys.TRAIN."
            )

    def _restore_or_warm_start(self, store: VariableStore, checkpoint_path: str | None, purpose: str) -> None:
        if checkpoint_path:
            logger.info("Restoring parameters from %s", checkpoint_path)
            _checkpoints.restore(checkpoint_path, store.saveable, store.state_owners)
            return
        if self._warm_start_settings is not None:
            warm_start.apply(self._warm_start_settings, store.variables, store.state_owners)
        elif purpose:
            logger.info("Could not find trained model in model_dir: %s, running initialization to %s.", self.model_dir, purpose)

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
        os.makedirs(self.model_dir, exist_ok=True)
        with _checkpoints.TrainerLock(self.model_dir):
            loss = self._train(input_fn, user_hooks, steps, max_steps, listeners)
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
                        {"loss": spec.loss, "step": store.global_step}, every_n_iter=config.log_step_count_steps
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
            if config.check_finite_weights:
                outputs[WEIGHTS_FINITE] = all_finite(list(store.saveable.values()))
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
            saver = _CheckpointSaver(self, store, listeners, checkpoint)
        if saver is not None:
            saver.begin(start_step)
        progress = ProgressBar(config.progress_bar, max_steps or (start_step + steps if steps else None), "step")
        try:
            return self._run_train_steps(step, store, config, stop_hook, saver, progress, start_step)
        finally:
            progress.close()

    def _run_train_steps(self, step, store, config, stop_hook, saver, progress, start_step) -> float | None:
        """The step loop of ``train``: runs (grouped) steps until a stop; returns the last loss."""
        loss = None
        global_step = start_step
        stop = stop_hook is not None and start_step >= stop_hook.last_step
        warned_static = False
        # Traced for grouped steps (not iterations_per_loop): each call ends on the next step a
        # hook or the checkpoint policy needs, or runs one step when model_fn returned hooks
        # that see every step.
        looped_for_grouping = config.iterations_per_loop == 1 and step.iterations > 1
        grouped = looped_for_grouping and groupable(step.hooks)
        while not stop:
            remaining = None if stop_hook is None else stop_hook.last_step - global_step
            if looped_for_grouping:
                limit = 1
                if grouped:
                    limit = steps_until_trigger(step.hooks, global_step, step.iterations)
                    if saver is not None:
                        limit = min(limit, saver.steps_until_due(global_step) or limit)
                remaining = limit if remaining is None else min(remaining, limit)
            try:
                run = step.run(max_iterations=remaining, grouped=grouped)
            except InputExhausted:
                break
            outputs, context = run.outputs, run.context
            loss, new_step = outputs["loss"], int(outputs["global_step"])
            if not outputs.get(WEIGHTS_FINITE, True):
                _raise_if_weights_not_finite(store, new_step)
            if new_step == global_step and not warned_static:
                logger.warning(
                    "The global step did not move. Training stops only by input exhaustion or a hook: "
                    "build train_op with bridge.minimize(loss, optimizer) (or increment the global step)."
                )
                warned_static = True
            global_step = new_step
            progress.update(global_step, float(loss))
            stop = context.stop_requested
            if saver is not None and saver.after_step(global_step):
                stop = True
        if global_step == start_step:
            logger.warning("Training with estimator made no steps. Perhaps input is empty or misspecified.")
        for hook in step.hooks:
            hook.end(NO_SESSION)
        if saver is not None:
            saver.end(global_step)
        progress.update(global_step, None if loss is None else float(loss), force=True)
        return None if loss is None else float(loss)

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
        variables_from: Mapping[str, tf.Variable] | None = None,
    ) -> dict[str, Any]:
        """evaluate(); ``variables_from`` (checkpoint key -> live variable) replaces the checkpoint.

        ``bridge.experimental.InMemoryEvaluatorHook`` evaluates the training variables this way,
        without a checkpoint round trip.
        """
        if steps is not None and steps <= 0:
            raise ValueError(f"Must specify steps > 0, given: {steps}")
        user_hooks = check_hooks(hooks)
        if variables_from is None:
            checkpoint_path = self._checkpoint_to_read(checkpoint_path)
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
                    for index, leaf in enumerate(tf.nest.flatten(_metric_value(key, metric))):
                        outputs[f"{_NESTED_METRIC_PREFIX}{key}/{index}"] = leaf
                else:
                    outputs["metric/" + key] = _metric_value(key, metric)
            return spec, outputs, list(user_hooks) + list(spec.evaluation_hooks)

        grouped = self._groups_steps(ModeKeys.EVAL, strategy, data.dataset, steps) and not user_hooks
        iterations = self._config.max_steps_per_call if grouped else 1

        def on_session(hooks: Sequence[SessionRunHook]) -> None:
            if variables_from is None:
                self._restore_or_warm_start(store, checkpoint_path, purpose="evaluate")
            else:
                for key, variable in store.saveable.items():
                    if key in variables_from:
                        variable.assign(variables_from[key])
            _after_create_session(hooks)

        try:
            step = TracedStep(
                store, iterator, body, iterations=iterations, strategy=strategy, collect=_is_host_input, sum_loss=True,
                on_session=on_session,
            )
        except CannotGroup:  # an output of unknown rank: one batch per call
            store = VariableStore(strategy)
            step = TracedStep(
                store, iterator, body, strategy=strategy, collect=_is_host_input, sum_loss=True, on_session=on_session
            )
        del iterator
        _refuse_unupdated_keras_metrics(step)
        try:
            batches, loss_sum, last = self._evaluate_loop(step, store, steps, strategy)
        finally:
            step.close()
        results: dict[str, Any] = {}
        for key, metric in sorted(step.spec.eval_metric_ops.items()):
            results[key] = last.get("metric/" + key, np.float32(0.0))  # no batches: 0, as tf.estimator
            if isinstance(metric, tuple) and tf.nest.is_nested(metric[0]):
                leaves = tf.nest.flatten(metric[0])
                values = [last.get(f"{_NESTED_METRIC_PREFIX}{key}/{i}", np.float32(0.0)) for i in range(len(leaves))]
                results[key] = tf.nest.pack_sequence_as(metric[0], values)
        results["loss"] = np.float32(loss_sum / batches) if batches else np.float32(0.0)
        results["global_step"] = np.int64(store.global_step.numpy())
        logger.info(
            "Saving dict for global step %d: %s",
            results["global_step"],
            ", ".join(f"{k} = {v}" for k, v in sorted(results.items())),
        )
        # Under a multi-worker eval_distribute every worker holds the same results; one writes them.
        if getattr(getattr(strategy, "extended", None), "should_checkpoint", True):
            writer = SummaryWriter(self.eval_dir(name))
            writer.write_eval_results(results, int(results["global_step"]), checkpoint_path)
            writer.close()
        return results

    def _evaluate_loop(
        self,
        step: TracedStep,
        store: VariableStore,
        steps: int | None,
        strategy: Any = None,
    ):
        """Runs the eval step until the input or ``steps`` runs out; returns (batches, loss sum, last outputs)."""
        self._refuse_writes(step, store, ModeKeys.EVAL)
        host_ops = {k: op for k, op in step.spec.eval_metric_ops.items() if is_host_metric_op(op)}
        feeder = HostMetricFeeder(host_ops) if host_ops else None
        loss_sum, batches = 0.0, 0
        last: dict[str, Any] = {}
        per_step = 1 if step.hooks else step.iterations  # hooks see every batch
        try:
            while steps is None or batches < steps:
                limit = per_step if steps is None else min(per_step, steps - batches)
                try:
                    run = step.run(max_iterations=limit)
                except InputExhausted:
                    break
                outputs = run.outputs
                if feeder is not None:
                    feeder.submit_steps(_host_values_per_step(outputs, host_ops, run.steps))
                loss_sum += run.loss_sum
                batches += run.steps
                last = outputs
                if steps is not None:
                    for done in evaluation_progress(batches - run.steps, batches, steps):
                        logger.info("Evaluation [%d/%d]", done, steps)
                if run.context.stop_requested:
                    break
        except BaseException:
            if feeder is not None:
                feeder.abandon()
            raise
        if feeder is not None:
            feeder.finish()
            merge_across_workers(host_ops, strategy)
        for key, op in host_ops.items():
            last["metric/" + key] = _as_float32(op.result())  # the C++ engine's float64, as 2.15's float32
        for hook in step.hooks:
            hook.end(NO_SESSION)
        return batches, loss_sum, last

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
            predictions = _filter_predictions(spec.predictions, predict_keys)
            outputs = predictions if isinstance(predictions, dict) else {"": predictions}
            return spec, outputs, list(user_hooks) + list(spec.prediction_hooks)

        grouped = self._groups_steps(ModeKeys.PREDICT, None, data.dataset, None) and not user_hooks
        iterations = self._config.max_steps_per_call if grouped else 1

        def on_session(hooks: Sequence[SessionRunHook]) -> None:
            self._restore_or_warm_start(store, checkpoint_path, purpose="predict")
            _after_create_session(hooks)

        try:
            step = TracedStep(store, iterator, body, iterations=iterations, collect=_every_output, on_session=on_session)
        except CannotGroup:  # a prediction of unknown rank: one batch per call
            store = VariableStore()
            step = TracedStep(store, iterator, body, collect=_every_output, on_session=on_session)
        del iterator
        try:
            self._refuse_writes(step, store, ModeKeys.PREDICT)
            single = not isinstance(_filter_predictions(step.spec.predictions, predict_keys), dict)
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
                        yield from (_examples(outputs) if yield_single_examples else [outputs])
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
        """Writes a SavedModel of the PREDICT graph to ``export_dir_base/<timestamp>``; returns its path (bytes)."""
        from bridge._export import export_saved_model

        return export_saved_model(
            self, export_dir_base, serving_input_receiver_fn, assets_extra, as_text, checkpoint_path, experimental_mode
        )


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


_NESTED_METRIC_PREFIX = "nested_metric/"  # evaluate's outputs for the leaves of a nested metric value


def _metric_value(key: str, metric: Any) -> Any:
    """The tensor (or nest of tensors) holding a metric's value after this batch's update."""
    if isinstance(metric, tuple):
        value, update_op = metric
        with tf.control_dependencies([update_op]):
            return tf.nest.map_structure(tf.identity, value)
    if hasattr(metric, "result") and hasattr(metric, "update_state"):
        return metric.result()
    raise TypeError(f"eval_metric_ops['{key}'] of type {type(metric).__name__} is not supported yet.")


def _as_float32(value: Any) -> Any:
    """A float64 metric value (scalar or array) as float32, the dtype tf.estimator's metrics returned."""
    array = np.asarray(value)
    if array.dtype != np.float64:
        return value
    return np.float32(array) if array.ndim == 0 else array.astype(np.float32)


def _refuse_unupdated_keras_metrics(step: TracedStep) -> None:
    """A Keras metric object in eval_metric_ops whose update_state model_fn never called: 2.15's error.

    Its value would be a constant (usually 0) at every step, silently.
    """
    for key, metric in sorted(step.spec.eval_metric_ops.items()):
        if isinstance(metric, tuple) or not (hasattr(metric, "update_state") and getattr(metric, "variables", None)):
            continue
        try:
            written = step.written_variables({str(i): v for i, v in enumerate(metric.variables)})
        except (AttributeError, TypeError):  # distributed variables: not checked
            continue
        if not written:
            raise ValueError(f'Please call update_state(...) on the "{metric.name}" metric')


def _is_host_input(name: str) -> bool:
    """Evaluate's outputs that feed a host metric (collected for every batch of a grouped call)."""
    return name.startswith("host/")


def _every_output(name: str) -> bool:
    """Predict collects every prediction of every batch."""
    return True


def _host_values_per_step(
    outputs: Mapping[str, Any], host_ops: Mapping[str, Any], steps: int
) -> list[dict[str, dict[str, Any]]]:
    """Each step's fetched values (outputs hold a list per host input), grouped by host metric op."""
    return [
        {key: {name: outputs[f"host/{key}/{name}"][i] for name in op.fetches} for key, op in host_ops.items()}
        for i in range(steps)
    ]


def _filter_predictions(predictions: Any, predict_keys: Any) -> Any:
    if predict_keys is None:
        return predictions
    if not isinstance(predictions, dict):
        raise ValueError("predict_keys argument is not valid in case of non-dict predictions.")
    filtered = {k: v for k, v in predictions.items() if k in predict_keys}
    if not filtered:
        raise ValueError(
            f"Expected to run at least one output from {list(predictions)}, provided {predict_keys}."
        )
    return filtered


def _examples(batch: Mapping[str, np.ndarray]) -> Iterable[dict[str, Any]]:
    for key, value in batch.items():
        if np.ndim(value) == 0:
            raise ValueError(
                f"Prediction '{key}' is a scalar per batch, so it cannot be split into examples. "
                "Give it a batch dimension, or predict with yield_single_examples=False."
            )
    sizes = {key: value.shape[0] for key, value in batch.items()}
    first = next(iter(batch))
    for key, size in sizes.items():
        if size != sizes[first]:
            raise ValueError(
                f"Batch length of predictions should be same. {key} has different batch length than others."
            )
    for i in range(sizes[first]):
        yield {key: value[i] for key, value in batch.items()}


def _raise_if_weights_not_finite(store: VariableStore, step: int) -> None:
    """Raises NanLossDuringTrainingError naming the variables that hold NaN/inf, if any do.

    Runs only when the traced step's fused check said so (its sum can also overflow for
    huge but finite weights; then nothing is raised and training goes on).
    """
    bad = [
        key for key, variable in store.saveable.items()
        if variable.dtype.is_floating and not np.isfinite(variable.numpy()).all()
    ]
    if not bad:
        return
    logger.error("Model diverged: variables hold NaN or inf after global step %d: %s", step, bad)
    raise NanLossDuringTrainingError(
        f"Variables hold NaN or inf values after global step {step}: {bad}. No checkpoint of them was "
        "written. Look for NaN/inf in the input or a too-large learning rate; "
        "RunConfig(check_finite_weights=False) turns this check off."
    )


class _CheckpointSaver:
    """tf.estimator's checkpoint policy: at start, every N steps or secs, and at the end."""

    def __init__(self, estimator: Estimator, store: VariableStore, listeners: Sequence[CheckpointSaverListener],
                 restored: str | None) -> None:
        config = estimator._config
        self._variables = store.saveable
        self._writer = _checkpoints.CheckpointWriter(
            estimator.model_dir, self._variables, config.keep_checkpoint_max, config.keep_checkpoint_every_n_hours,
            restored=restored,
        )
        self._every_steps = config.save_checkpoints_steps
        self._every_secs = config.save_checkpoints_secs
        self._listeners = list(listeners)
        self._last_time = time.monotonic()

    def begin(self, step: int) -> None:
        for listener in self._listeners:
            listener.begin()
        self._save(step)

    def steps_until_due(self, step: int) -> int | None:
        """Steps until the next step-based save (None for time-based saving)."""
        if self._every_steps is None:
            return None
        return max(1, self._writer.last_saved_step + self._every_steps - step)

    def after_step(self, step: int) -> bool:
        """Saves when the interval has elapsed; True when a listener asks to stop."""
        if self._every_steps is not None:
            due = step >= self._writer.last_saved_step + self._every_steps
        else:
            due = time.monotonic() - self._last_time >= self._every_secs
        return self._save(step) if due else False

    def end(self, step: int) -> None:
        if self._writer.last_saved_step != step:
            self._save(step)
        for listener in self._listeners:
            listener.end(None, step)

    def _save(self, step: int) -> bool:
        for listener in self._listeners:
            listener.before_save(None, step)
        _checkpoints.assert_finite(self._variables)
        self._writer.save(step)
        self._last_time = time.monotonic()
        stop = False
        for listener in self._listeners:
            if listener.after_save(None, step):
                logger.info("A CheckpointSaverListener requested that training be stopped. listener: %s", listener)
                stop = True
        return stop
