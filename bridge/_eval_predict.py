"""What evaluate and predict do around the traced step: the write check, metric values, the eval loop, examples.

``Estimator.evaluate`` / ``predict`` build the traced step; the helpers here turn its outputs
into tf.estimator 2.15's results (metric values as float32, nested metric values repacked,
host metrics fed on the C++ engine, predictions split into examples).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterable, Mapping

import numpy as np
import tensorflow as tf

from bridge._console import evaluation_progress
from bridge._host_metrics import HostMetricFeeder, is_host_metric_op, merge_across_workers
from bridge._step import InputExhausted, TracedStep
from bridge._variables import VariableStore
from bridge.hooks import NO_SESSION
from bridge.mode_keys import ModeKeys

logger = logging.getLogger("bridge")


def refuse_writes(step: TracedStep, store: VariableStore, mode: str) -> None:
    """EVAL and PREDICT must not change the model.

    Only what the outputs need runs (a train_op built in every mode is left out, as in
    tf.estimator), so a write that remains is one the outputs depend on.
    """
    written = step.written_variables(store.model_variables)
    if written:
        raise ValueError(
            f"In {mode} mode the outputs of model_fn (predictions, loss, eval_metric_ops or a hook's "
            f"fetches) depend on ops that change model variables: {written}. evaluate and predict do "
            "not change the model. A train_op that nothing fetches does not run; remove the "
            "dependency (e.g. a tf.control_dependencies on train_op, or an assign whose value is used), "
            "or build it only when mode == ModeKeys.TRAIN."
        )


def run_eval_loop(
    step: TracedStep,
    store: VariableStore,
    steps: int | None,
    strategy: Any = None,
):
    """Runs the eval step until the input or ``steps`` runs out; returns (batches, loss sum, last outputs)."""
    refuse_writes(step, store, ModeKeys.EVAL)
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
                feeder.submit_steps(host_values_per_step(outputs, host_ops, run.steps))
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
        last["metric/" + key] = as_float32(op.result())  # the C++ engine's float64, as 2.15's float32
    for hook in step.hooks:
        hook.end(NO_SESSION)
    return batches, loss_sum, last


NESTED_METRIC_PREFIX = "nested_metric/"  # evaluate's outputs for the leaves of a nested metric value


def eval_results(spec: Any, last: Mapping[str, Any], batches: int, loss_sum: float, store: VariableStore) -> dict[str, Any]:
    """evaluate's result: each metric's last value (nested values repacked), the mean loss, the global step."""
    results: dict[str, Any] = {}
    for key, metric in sorted(spec.eval_metric_ops.items()):
        results[key] = last.get("metric/" + key, np.float32(0.0))  # no batches: 0, as tf.estimator
        if isinstance(metric, tuple) and tf.nest.is_nested(metric[0]):
            leaves = tf.nest.flatten(metric[0])
            values = [last.get(f"{NESTED_METRIC_PREFIX}{key}/{i}", np.float32(0.0)) for i in range(len(leaves))]
            results[key] = tf.nest.pack_sequence_as(metric[0], values)
    results["loss"] = np.float32(loss_sum / batches) if batches else np.float32(0.0)
    results["global_step"] = np.int64(store.global_step.numpy())
    return results


@dataclasses.dataclass
class TracedEvaluation:
    """An evaluation's traced step with its input, which can run again over fresh input (no new trace).

    ``restart(variables_from, after_begin)`` prepares another run: the model variables take the
    values of ``variables_from`` (checkpoint key -> variable), metric state its initial values,
    and the step a new iterator over the same dataset (input_fn is not called again, as 2.15's
    InMemoryEvaluatorHook re-initialised its input); the hooks begin again
    (``TracedStep.begin_again``). It returns False when they cannot run on this trace; the
    caller then traces again. Under a strategy nothing is reused (``reusable``).
    """

    data: Any
    store: VariableStore
    step: TracedStep
    steps: int | None
    strategy: Any = None
    _initial_metric_state: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self._initial_metric_state = {k: v.numpy() for k, v in self.store.local_variables.items()}

    @property
    def reusable(self) -> bool:
        return self.strategy is None

    def restart(self, variables_from: Mapping[str, tf.Variable], after_begin: Any) -> bool:
        copy_variables(self.store, variables_from)
        for key, variable in self.store.local_variables.items():
            variable.assign(self._initial_metric_state[key])
        self.step.rebind(iter(self.data.dataset))
        return self.step.begin_again(after_begin) if self.step.hooks else True

    def release_input(self) -> None:
        """Drops the iterator between runs (the traced function stays)."""
        self.step.rebind(None)


def copy_variables(store: VariableStore, variables_from: Mapping[str, tf.Variable]) -> None:
    """Sets the store's model variables from ``variables_from`` (checkpoint key -> variable)."""
    for key, variable in store.model_variables.items():
        if key in variables_from:
            variable.assign(variables_from[key])


def metric_value(key: str, metric: Any) -> Any:
    """The tensor (or nest of tensors) holding a metric's value after this batch's update."""
    if isinstance(metric, tuple):
        value, update_op = metric
        with tf.control_dependencies([update_op]):
            return tf.nest.map_structure(tf.identity, value)
    if hasattr(metric, "result") and hasattr(metric, "update_state"):
        return metric.result()
    raise TypeError(f"eval_metric_ops['{key}'] of type {type(metric).__name__} is not supported yet.")


def as_float32(value: Any) -> Any:
    """A float64 metric value (scalar or array) as float32, the dtype tf.estimator's metrics returned."""
    array = np.asarray(value)
    if array.dtype != np.float64:
        return value
    return np.float32(array) if array.ndim == 0 else array.astype(np.float32)


def refuse_unupdated_keras_metrics(step: TracedStep) -> None:
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


def is_host_input(name: str) -> bool:
    """Evaluate's outputs that feed a host metric (collected for every batch of a grouped call)."""
    return name.startswith("host/")


def host_values_per_step(
    outputs: Mapping[str, Any], host_ops: Mapping[str, Any], steps: int
) -> list[dict[str, dict[str, Any]]]:
    """Each step's fetched values (outputs hold a list per host input), grouped by host metric op."""
    return [
        {key: {name: outputs[f"host/{key}/{name}"][i] for name in op.fetches} for key, op in host_ops.items()}
        for i in range(steps)
    ]


def every_output(name: str) -> bool:
    """Predict collects every prediction of every batch."""
    return True


def filter_predictions(predictions: Any, predict_keys: Any) -> Any:
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


def examples(batch: Mapping[str, np.ndarray]) -> Iterable[dict[str, Any]]:
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
