"""``EstimatorSpec``: what a ``model_fn`` returns, validated the way tf.estimator 2.15 did.

The Estimator runtime calls the model_fn inside one ``tf.function`` trace, so the
tensors a spec holds are symbolic tensors of that trace's FuncGraph. Validation
happens once, when the spec is built (and again on ``_replace``), so mistakes
surface as a clear error at the model_fn's return rather than deep in the runtime.

Differences from tf.estimator, all forced by TF2 / Keras 3:

* ``scaffold``: a ``tf.compat.v1.train.Scaffold`` whose ``init_fn`` runs without a Session
  (see ``bridge.compat.scaffold`` for what it supports).
* a Keras 3 ``Metric`` in ``eval_metric_ops`` is kept as the object (Keras 3
  metrics record no update ops); the runtime reads its ``result()``.
* objects marked ``__bridge_metric_op__`` (C++ host metrics) are accepted as
  metric values.
"""

from __future__ import annotations

import collections
from typing import Any, Iterable, Mapping, Optional, Union

import keras
import tensorflow as tf

from bridge.export_output import ExportOutput, PredictOutput
from bridge.mode_keys import ModeKeys

__all__ = ["EstimatorSpec", "validate_eval_metric_names"]

# What tf.estimator accepted as "a Tensor": graph and eager tensors and tf.Variables.
_TensorType = tf.__internal__.types.Tensor

_SERVING_KEY = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY

_RESERVED_METRIC_NAMES = ("loss", "global_step")

_FIELDS = (
    "mode",
    "predictions",
    "loss",
    "train_op",
    "eval_metric_ops",
    "export_outputs",
    "training_chief_hooks",
    "training_hooks",
    "scaffold",
    "evaluation_hooks",
    "prediction_hooks",
)

Predictions = Union[tf.Tensor, Mapping[str, tf.Tensor]]


class EstimatorSpec(collections.namedtuple("EstimatorSpec", _FIELDS)):
    """The ops and objects a ``model_fn`` returns, validated for ``mode``.

    Required per mode: TRAIN needs ``loss`` and ``train_op``, EVAL needs
    ``loss``, PREDICT needs ``predictions``. Any field may be filled in any
    mode; each Estimator method reads only what it uses.

    Normalisation: ``loss`` of shape ``[1]``/``[1, 1]`` becomes a scalar;
    ``predictions`` and ``eval_metric_ops`` default to ``{}``; hook fields
    become tuples; in PREDICT ``export_outputs`` defaults to
    ``{'serving_default': PredictOutput(predictions)}`` and a lone entry is
    also registered as ``'serving_default'``.

    ``eval_metric_ops`` values may be ``(value_tensor, update_op)`` tuples,
    Keras ``Metric`` objects (updated by the model_fn), or bridge host-metric
    ops. The names ``'loss'`` and ``'global_step'`` are rejected by the
    Estimator at evaluate time (see :func:`validate_eval_metric_names`).
    """

    __slots__ = ()

    def __new__(
        cls,
        mode: str,
        predictions: Optional[Predictions] = None,
        loss: Optional[tf.Tensor] = None,
        train_op: Union[tf.Operation, tf.Tensor, tf.Variable, None] = None,
        eval_metric_ops: Optional[Mapping[str, Any]] = None,
        export_outputs: Optional[Mapping[str, ExportOutput]] = None,
        training_chief_hooks: Optional[Iterable[Any]] = None,
        training_hooks: Optional[Iterable[Any]] = None,
        scaffold: Any = None,
        evaluation_hooks: Optional[Iterable[Any]] = None,
        prediction_hooks: Optional[Iterable[Any]] = None,
    ) -> "EstimatorSpec":
        # None when executing eagerly: eager tensors belong to no graph.
        graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
        train_op = _validate_train_op(train_op, mode, graph)
        loss = _validate_loss(loss, mode, graph)
        predictions = _validate_predictions(predictions, mode, graph)
        if mode == ModeKeys.PREDICT:
            export_outputs = _validate_export_outputs(export_outputs, predictions)
        return super().__new__(
            cls,
            mode=mode,
            predictions=predictions,
            loss=loss,
            train_op=train_op,
            eval_metric_ops=_validate_eval_metric_ops(eval_metric_ops, graph),
            export_outputs=export_outputs,
            training_chief_hooks=_validate_hooks(training_chief_hooks, "training_chief_hooks"),
            training_hooks=_validate_hooks(training_hooks, "training_hooks"),
            scaffold=_validate_scaffold(scaffold),
            evaluation_hooks=_validate_hooks(evaluation_hooks, "evaluation_hooks"),
            prediction_hooks=_validate_hooks(prediction_hooks, "prediction_hooks"),
        )

    def _replace(self, **changes: Any) -> "EstimatorSpec":
        """Returns a copy with ``changes`` applied, validated again; ``mode`` is fixed."""
        if "mode" in changes and changes["mode"] != self.mode:
            raise ValueError("mode of EstimatorSpec cannot be changed.")
        unknown = sorted(set(changes) - set(self._fields))
        if unknown:
            raise ValueError(f"EstimatorSpec has no field(s) {unknown}")
        fields = self._asdict()
        fields.update(changes)
        return type(self)(**fields)


def validate_eval_metric_names(eval_metric_ops: Mapping[str, Any]) -> None:
    """Raises ValueError if a user metric uses a name the Estimator reserves.

    The Estimator itself reports ``loss`` (mean of the batch losses) and
    ``global_step`` from ``evaluate``; the runtime calls this before adding them.
    """
    if "loss" in eval_metric_ops:
        raise ValueError(
            'Metric with name "loss" is not allowed: evaluate() already reports '
            "the mean loss under that name. Rename your metric."
        )
    if "global_step" in eval_metric_ops:
        raise ValueError(
            "Metric with name `global_step` is not allowed: evaluate() already "
            "reports the global step under that name. Rename your metric."
        )


# --- helpers -------------------------------------------------------------


def _graph_of(value: Any) -> Optional[tf.Graph]:
    """The graph a tensor, operation or variable lives in; None if it is eager."""
    if isinstance(value, tf.Variable):
        value = value.handle
    try:
        return value.graph
    except AttributeError:  # eager tensors have no graph
        return None


def _name_of(value: Any) -> str:
    try:
        return value.name
    except AttributeError:  # eager tensors have no name
        return repr(value)


def _require_default_graph(value: Any, what: str, name: str, graph: Optional[tf.Graph]) -> None:
    """In graph mode, raises unless ``value`` was built in ``graph`` (the default graph)."""
    if graph is None or _graph_of(value) is graph:
        return
    raise ValueError(
        f'{what} with "{name}" must be from the default graph. It was built in '
        "another graph (or eagerly): typically it was created outside the model_fn "
        "(at module level, in input_fn) or kept from an earlier model_fn call. "
        "Create every tensor the EstimatorSpec returns inside the model_fn."
    )


def _require_tensor(value: Any, what: str) -> None:
    if not isinstance(value, _TensorType):
        raise TypeError(f"{what} must be Tensor, given: {value!r}")


# --- one validator per field ---------------------------------------------


def _validate_train_op(train_op: Any, mode: str, graph: Optional[tf.Graph]) -> Any:
    """Checks train_op is an Operation or Tensor of the default graph.

    A variable (e.g. the iterations counter Keras 3 ``apply_gradients``
    returns) stands for its op when it lives in the default graph, and for a
    read of it otherwise (a variable captured by the trace, or eager).
    """
    if train_op is None:
        if mode == ModeKeys.TRAIN:
            raise ValueError("Missing train_op.")
        return None
    if isinstance(train_op, keras.Variable):
        train_op = train_op.value  # the backing tf.Variable
    if not isinstance(train_op, (tf.Operation, _TensorType)):
        raise TypeError(f"train_op must be Operation or Tensor, given: {train_op!r}")
    if isinstance(train_op, tf.Variable):
        train_op = _variable_as_train_op(train_op, graph)
    _require_default_graph(train_op, "train_op", _name_of(train_op), graph)
    return train_op


def _variable_as_train_op(variable: tf.Variable, graph: Optional[tf.Graph]) -> Any:
    home = _graph_of(variable)
    if graph is not None and home is graph:
        return variable.op
    if graph is None or graph.building_function:
        return variable.read_value()  # eager, or captured into the trace
    # A plain graph cannot use a variable from elsewhere.
    _require_default_graph(variable, "train_op", variable.name, graph)
    return variable


def _validate_loss(loss: Any, mode: str, graph: Optional[tf.Graph]) -> Optional[tf.Tensor]:
    """Checks loss is a one-element Tensor of the default graph; returns it as a scalar."""
    if loss is None:
        if mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
            raise ValueError("Missing loss.")
        return None
    _require_tensor(loss, "loss")
    shape = loss.shape
    if shape.num_elements() not in (None, 1):
        raise ValueError(f"Loss must be scalar, given: {loss!r} of shape {shape}")
    _require_default_graph(loss, "loss", _name_of(loss), graph)
    if not shape.is_compatible_with(tf.TensorShape([])):
        loss = tf.reshape(loss, [])
    return loss


def _validate_predictions(predictions: Any, mode: str, graph: Optional[tf.Graph]) -> Predictions:
    """Checks predictions is a Tensor or a dict of Tensors; None becomes {} outside PREDICT."""
    if predictions is None:
        if mode == ModeKeys.PREDICT:
            raise ValueError("Missing predictions.")
        return {}
    if not isinstance(predictions, dict):
        _require_tensor(predictions, "predictions")
        _require_default_graph(predictions, "prediction values", _name_of(predictions), graph)
        return predictions
    for key, value in predictions.items():
        _require_tensor(value, f"predictions[{key}]")
    for key, value in predictions.items():
        _require_default_graph(value, "prediction values", f"{key}: {_name_of(value)}", graph)
    return dict(predictions)


def _validate_export_outputs(export_outputs: Any, predictions: Predictions) -> dict[str, ExportOutput]:
    """PREDICT only: defaults to a PredictOutput of predictions; ensures a serving default."""
    if export_outputs is None:
        return {_SERVING_KEY: PredictOutput(predictions)}
    if not isinstance(export_outputs, dict):
        raise TypeError(f"`export_outputs` must be dict, given: {export_outputs!r}")
    for value in export_outputs.values():
        if not isinstance(value, ExportOutput):
            raise TypeError(
                "Values in `export_outputs` must be ExportOutput objects, "
                f"given: {export_outputs!r}"
            )
    export_outputs = dict(export_outputs)
    if len(export_outputs) == 1:
        (only,) = export_outputs.values()
        export_outputs.setdefault(_SERVING_KEY, only)
    elif len(export_outputs) > 1 and _SERVING_KEY not in export_outputs:
        raise ValueError(
            "Multiple `export_outputs` were provided, but none of them are specified "
            f"as the default: name one of them {_SERVING_KEY!r} "
            "(tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY)."
        )
    return export_outputs


def _is_metric_object(value: Any) -> bool:
    """A Keras 3 metric, or one of another Keras (tf_keras under TF_USE_LEGACY_KERAS=1)."""
    if isinstance(value, keras.metrics.Metric):
        return True
    return not isinstance(value, tuple) and callable(getattr(value, "result", None)) and callable(getattr(value, "update_state", None))


def _is_host_metric_op(value: Any) -> bool:
    return bool(getattr(value, "__bridge_metric_op__", False))


def _validate_eval_metric_ops(eval_metric_ops: Any, graph: Optional[tf.Graph]) -> dict[str, Any]:
    """Checks the metric dict: str keys; (value, update_op) tuples, Keras metrics or host ops."""
    if eval_metric_ops is None:
        return {}
    if not isinstance(eval_metric_ops, dict):
        raise TypeError(f"eval_metric_ops must be a dict, given: {eval_metric_ops!r}")
    for key, value in eval_metric_ops.items():
        if not isinstance(key, str):
            raise TypeError(f"eval_metric_ops keys must be str, given: {key!r}")
        if _is_metric_object(value) or _is_host_metric_op(value):
            continue
        if not isinstance(value, tuple) or len(value) != 2:
            raise TypeError(
                "Values of eval_metric_ops must be (metric_value, update_op) tuples, "
                f"given: {value!r} for key: {key}"
            )
        if graph is None:
            continue
        for part in tf.nest.flatten(value):
            if not isinstance(part, (tf.Operation, _TensorType)):
                raise TypeError(
                    f"eval_metric_ops[{key!r}] must hold Tensors or Operations, given: {part!r}"
                )
            _require_default_graph(part, "eval_metric_ops", f"{key}: {_name_of(part)}", graph)
    return dict(eval_metric_ops)


def _validate_hooks(hooks: Any, field: str) -> tuple:
    """Returns hooks as a tuple, raising TypeError for anything not a bridge SessionRunHook."""
    # Imported on use so this module never takes part in an import cycle with hooks.
    from bridge import hooks as hooks_module

    try:
        result = tuple(hooks or ())
    except TypeError:
        raise TypeError(
            f"All hooks must be SessionRunHook instances, given in {field} as a "
            f"non-iterable: {hooks!r} (pass a list of hooks)"
        ) from None
    adapted = []
    for hook in result:
        try:
            adapted.extend(hooks_module.check_hooks([hook]))  # a tf.compat.v1.train hook is adapted
        except TypeError:
            raise TypeError(f"All hooks must be SessionRunHook instances, given in {field}: {hook!r}") from None
    return tuple(adapted)


def _validate_scaffold(scaffold: Any) -> Any:
    """None, or a ``tf.compat.v1.train.Scaffold`` (its init_fn runs session-free: bridge.compat.scaffold)."""
    if scaffold is not None and not isinstance(scaffold, tf.compat.v1.train.Scaffold):
        raise TypeError(f"scaffold must be tf.compat.v1.train.Scaffold. Given: {scaffold!r}")
    return scaffold
