"""Serving outputs a model_fn declares in ``EstimatorSpec.export_outputs``.

Each class validates its tensors when constructed, as tf.estimator did, and
exposes them as ``outputs`` (signature output name -> tensor) together with
the TensorFlow Serving ``method_name`` of the signature it stands for.

``ExportOutput.signature(receiver_tensors)`` gives the inputs and outputs of the
SignatureDef an export writes for it (``bridge._export``), with the rules of
tf.estimator: a predict signature takes every receiver tensor; classify and
regress signatures take exactly one string receiver tensor, exposed as
``inputs``, and are servable only with float32 scores/values (and string
classes), as TensorFlow Serving requires.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping, Union

import tensorflow as tf

__all__ = [
    "ExportOutput",
    "PredictOutput",
    "ClassificationOutput",
    "RegressionOutput",
    "EvalOutput",
]

# Joins the parts of a tuple key (multi-head models) into one output name.
_KEY_SEPARATOR = "/"


class ExportOutput(abc.ABC):
    """Base class of the outputs a model can serve under one signature."""

    #: The TensorFlow Serving method of the signature (set by each subclass).
    method_name: str = ""

    @property
    @abc.abstractmethod
    def outputs(self) -> dict[str, tf.Tensor]:
        """The signature's outputs: name -> tensor."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.outputs!r})"

    def signature(self, receiver_tensors: Mapping[str, tf.Tensor]) -> "Signature":
        """The signature serving these outputs from ``receiver_tensors`` (name -> tensor).

        Raises ValueError when these outputs cannot be served from those inputs.
        """
        return Signature(dict(receiver_tensors), self.outputs, self.method_name)

    def as_signature_def(self, receiver_tensors: Mapping[str, tf.Tensor]) -> Any:
        """The ``SignatureDef`` proto serving these outputs from ``receiver_tensors``, as 2.15 built it.

        For graph tensors (a v1 graph or a trace), as tf.estimator's; ValueError when these
        outputs cannot be served from those inputs.
        """
        from tensorflow.core.protobuf import meta_graph_pb2

        signature = self.signature(receiver_tensors)
        proto = meta_graph_pb2.SignatureDef(method_name=signature.method_name)
        for target, tensors in ((proto.inputs, signature.inputs), (proto.outputs, signature.outputs)):
            for key, tensor in tensors.items():
                target[key].CopyFrom(tf.compat.v1.saved_model.build_tensor_info(tensor))
        return proto


class Signature:
    """Inputs, outputs and method name of one SignatureDef (before it is saved)."""

    def __init__(self, inputs: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor], method_name: str) -> None:
        self.inputs, self.outputs, self.method_name = inputs, outputs, method_name

    def servable(self) -> bool:
        """Whether TensorFlow Serving can serve it (tf.saved_model's ``is_valid_signature`` rules)."""
        if not self.inputs or not self.outputs:
            return False
        if self.method_name in (PredictOutput.method_name, EvalOutput.method_name, SUPERVISED_TRAINING_METHOD):
            return True
        if self.method_name == ClassificationOutput.method_name:
            wanted = {"classes": tf.string, "scores": tf.float32}
        elif self.method_name == RegressionOutput.method_name:
            wanted = {"outputs": tf.float32}
        else:
            return False
        return (
            set(self.inputs) == {_EXAMPLES_INPUT}
            and self.inputs[_EXAMPLES_INPUT].dtype == tf.string
            and set(self.outputs) <= set(wanted)
            and all(tensor.dtype == wanted[name] for name, tensor in self.outputs.items())
        )

    def __repr__(self) -> str:
        return f"Signature(method_name={self.method_name!r}, inputs={sorted(self.inputs)}, outputs={sorted(self.outputs)})"


# The method of a TRAIN-mode export's signature (bridge._export), as 2.15 wrote it.
SUPERVISED_TRAINING_METHOD = "tensorflow/supervised/training"
# The one input of classify and regress signatures (serialized tf.Examples).
_EXAMPLES_INPUT = "inputs"


def _single_string_input(receiver_tensors: Mapping[str, tf.Tensor], what: str) -> dict[str, tf.Tensor]:
    tensors = list(receiver_tensors.values())
    if len(tensors) != 1 or getattr(tensors[0], "dtype", None) != tf.string:
        raise ValueError(
            f"{what} signatures can only accept a single tensor input of type tf.string (serialized "
            "tf.Examples); use build_parsing_serving_input_receiver_fn, or a serving_input_receiver_fn "
            f"with one string placeholder that parses them. Received: {dict(receiver_tensors)}"
        )
    return {_EXAMPLES_INPUT: tensors[0]}


def _is_float_tensor(value: Any) -> bool:
    return isinstance(value, tf.Tensor) and value.dtype.is_floating


def _output_name(key: Any, label: str) -> str:
    """Returns ``key`` as an output name; a tuple key becomes 'a/b'."""
    if isinstance(key, tuple) and all(isinstance(part, str) for part in key):
        key = _KEY_SEPARATOR.join(key)
    if not isinstance(key, str):
        raise ValueError(f"{label} output key must be a string; got {key!r}.")
    return key


class PredictOutput(ExportOutput):
    """Generic prediction outputs (``tensorflow/serving/predict``).

    ``outputs`` is a Tensor, exposed under the name ``output``, or a dict of
    Tensors whose keys are strings or tuples of strings.
    """

    method_name = "tensorflow/serving/predict"
    SINGLE_OUTPUT_NAME = "output"

    def __init__(self, outputs: Union[tf.Tensor, Mapping[Any, tf.Tensor]]) -> None:
        if not isinstance(outputs, dict):
            outputs = {self.SINGLE_OUTPUT_NAME: outputs}
        checked: dict[str, tf.Tensor] = {}
        for key, value in outputs.items():
            name = _output_name(key, "Prediction")
            if not isinstance(value, tf.Tensor):
                raise ValueError(
                    f"Prediction output value must be a Tensor; got {value!r} "
                    f"for key {name!r}."
                )
            checked[name] = value
        self._outputs = checked

    @property
    def outputs(self) -> dict[str, tf.Tensor]:
        return dict(self._outputs)


class ClassificationOutput(ExportOutput):
    """Classifier outputs (``tensorflow/serving/classify``).

    ``scores`` is a float Tensor (one score per class), ``classes`` a string
    Tensor of class labels; at least one of them is required.
    """

    method_name = "tensorflow/serving/classify"

    def __init__(
        self, scores: tf.Tensor | None = None, classes: tf.Tensor | None = None
    ) -> None:
        if scores is not None and not _is_float_tensor(scores):
            raise ValueError(
                f"Classification scores must be a float Tensor; got {scores!r}."
            )
        if classes is not None and not (
            isinstance(classes, tf.Tensor) and classes.dtype == tf.string
        ):
            raise ValueError(
                f"Classification classes must be a string Tensor; got {classes!r}."
            )
        if scores is None and classes is None:
            raise ValueError(
                "ClassificationOutput needs at least one of `scores` and `classes`."
            )
        self._scores = scores
        self._classes = classes

    @property
    def scores(self) -> tf.Tensor | None:
        return self._scores

    @property
    def classes(self) -> tf.Tensor | None:
        return self._classes

    @property
    def outputs(self) -> dict[str, tf.Tensor]:
        found = {"classes": self._classes, "scores": self._scores}
        return {name: value for name, value in found.items() if value is not None}

    def signature(self, receiver_tensors: Mapping[str, tf.Tensor]) -> Signature:
        return Signature(_single_string_input(receiver_tensors, "Classification"), self.outputs, self.method_name)


class RegressionOutput(ExportOutput):
    """Regressor output (``tensorflow/serving/regress``): one float Tensor."""

    method_name = "tensorflow/serving/regress"

    def __init__(self, value: tf.Tensor) -> None:
        if not _is_float_tensor(value):
            raise ValueError(
                f"Regression output value must be a float Tensor; got {value!r}."
            )
        self._value = value

    @property
    def value(self) -> tf.Tensor:
        return self._value

    @property
    def outputs(self) -> dict[str, tf.Tensor]:
        return {"outputs": self._value}

    def signature(self, receiver_tensors: Mapping[str, tf.Tensor]) -> Signature:
        return Signature(_single_string_input(receiver_tensors, "Regression"), self.outputs, self.method_name)


class EvalOutput(ExportOutput):
    """An evaluation graph's outputs (``tensorflow/supervised/eval``): loss, predictions, metrics.

    ``loss`` and ``predictions``: a Tensor or a dict of them; their output names are prefixed
    ``loss/`` and ``predictions/`` (a lone Tensor is named ``loss`` / ``predictions``).
    ``metrics``: a dict of name -> ``(value, update_op)`` (or a Keras metric object), giving
    ``metrics/<name>/value`` and ``metrics/<name>/update_op``; an update Operation is wrapped in
    an empty Tensor that depends on it.
    """

    method_name = "tensorflow/supervised/eval"
    LOSS_NAME = "loss"
    PREDICTIONS_NAME = "predictions"
    METRICS_NAME = "metrics"
    METRIC_VALUE_SUFFIX = "value"
    METRIC_UPDATE_SUFFIX = "update_op"

    def __init__(self, loss: Any = None, predictions: Any = None, metrics: Mapping[str, Any] | None = None) -> None:
        self._loss = self._prefixed(loss, self.LOSS_NAME) if loss is not None else None
        self._predictions = self._prefixed(predictions, self.PREDICTIONS_NAME) if predictions is not None else None
        self._metrics = self._checked_metrics(metrics) if metrics is not None else None

    @staticmethod
    def _prefix(key: str, prefix: str) -> str:
        return key if key.startswith(prefix) else prefix + _KEY_SEPARATOR + key

    def _prefixed(self, values: Any, prefix: str) -> dict[str, tf.Tensor]:
        if not isinstance(values, dict):
            values = {prefix: values}
        out = {}
        for key, value in values.items():
            name = _output_name(key, prefix)
            if not isinstance(value, tf.Tensor):
                raise ValueError(f"{prefix} output value must be a Tensor; got {value!r}.")
            out[self._prefix(name, prefix)] = value
        return out

    def _checked_metrics(self, metrics: Any) -> dict[str, tf.Tensor]:
        if not isinstance(metrics, dict):
            metrics = {self.METRICS_NAME: metrics}
        out = {}
        for key, metric in metrics.items():
            if isinstance(metric, tuple):
                value, update_op = metric
            elif hasattr(metric, "result") and hasattr(metric, "update_state"):  # a Keras metric object
                value, update_op = metric.result(), tf.no_op()
            else:
                raise AttributeError(
                    f"EvalOutput metrics[{key!r}] must be a (value, update_op) pair or a Keras metric object; "
                    f"got {metric!r}."
                )
            name = self._prefix(_output_name(key, self.METRICS_NAME), self.METRICS_NAME)
            if not isinstance(value, tf.Tensor):
                raise ValueError(f"{name} output value must be a Tensor; got {value!r}.")
            if not isinstance(update_op, (tf.Tensor, tf.Operation)):
                raise ValueError(f"{name} update_op must be a Tensor or Operation; got {update_op!r}.")
            if isinstance(update_op, tf.Operation):
                with tf.control_dependencies([update_op]):
                    update_op = tf.constant([], name="metric_op_wrapper")
            out[f"{name}{_KEY_SEPARATOR}{self.METRIC_VALUE_SUFFIX}"] = value
            out[f"{name}{_KEY_SEPARATOR}{self.METRIC_UPDATE_SUFFIX}"] = update_op
        return out

    @property
    def loss(self) -> dict[str, tf.Tensor] | None:
        return self._loss

    @property
    def predictions(self) -> dict[str, tf.Tensor] | None:
        return self._predictions

    @property
    def metrics(self) -> dict[str, tf.Tensor] | None:
        return self._metrics

    @property
    def outputs(self) -> dict[str, tf.Tensor]:
        return {**(self._loss or {}), **(self._predictions or {}), **(self._metrics or {})}
