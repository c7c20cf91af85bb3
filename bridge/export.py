"""``bridge.export``: what a SavedModel export serves, as in ``tf.estimator.export``.

A ``serving_input_receiver_fn`` takes no arguments and returns a ``ServingInputReceiver``
(or ``TensorServingInputReceiver``): the tensors a request feeds (``receiver_tensors``,
usually ``tf.compat.v1.placeholder``s) and the features the model_fn gets from them.
``Estimator.export_saved_model`` calls it inside the trace that builds the serving graph, so
placeholders work there exactly as they did in a tf.estimator graph.

The export outputs a model_fn declares in ``EstimatorSpec(export_outputs=...)`` are defined
in ``bridge.export_output`` and re-exported here.
"""

from __future__ import annotations

import collections
import re
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from bridge.export_output import ClassificationOutput, EvalOutput, ExportOutput, PredictOutput, RegressionOutput

__all__ = [
    "ExportOutput",
    "PredictOutput",
    "ClassificationOutput",
    "RegressionOutput",
    "ServingInputReceiver",
    "TensorServingInputReceiver",
    "build_parsing_serving_input_receiver_fn",
    "build_raw_serving_input_receiver_fn",
    "EvalOutput",
    "SupervisedInputReceiver",
    "build_raw_supervised_input_receiver_fn",
]

# Keys a lone tensor gets when a dict is expected.
SINGLE_FEATURE_DEFAULT_NAME = "feature"
SINGLE_RECEIVER_DEFAULT_NAME = "input"
_SINGLE_NAMES = {
    "feature": SINGLE_FEATURE_DEFAULT_NAME,
    "receiver_tensor": SINGLE_RECEIVER_DEFAULT_NAME,
    "receiver_tensors_alternative": SINGLE_RECEIVER_DEFAULT_NAME,
}

_TENSOR_TYPES = (tf.Tensor, tf.SparseTensor, tf.RaggedTensor)


def _check_tensor(tensor: Any, name: Any, label: str) -> None:
    if not isinstance(tensor, _TENSOR_TYPES):
        where = f" {name}" if name is not None else ""
        raise ValueError(f"{label}{where} must be a Tensor, SparseTensor, or RaggedTensor; given: {tensor!r}.")


def _check_key(key: Any, label: str, allow_ints: bool) -> None:
    if isinstance(key, str):
        return
    if allow_ints and isinstance(key, int) and not isinstance(key, bool):
        return
    kinds = "strings or ints" if allow_ints else "strings"
    raise ValueError(f"{label} keys must be {kinds}: {key!r}.")


def _wrap_and_check(tensors: Any, label: str, allow_int_keys: bool = False) -> dict:
    """A dict of name -> tensor; a lone tensor gets the default name of ``label``."""
    if tensors is None:
        raise ValueError(f"{label}s must be defined.")
    if not isinstance(tensors, dict):
        tensors = {_SINGLE_NAMES[label]: tensors}
    for key, tensor in tensors.items():
        _check_key(key, label, allow_int_keys)
        _check_tensor(tensor, key, label)
    return tensors


class ServingInputReceiver(
    collections.namedtuple("ServingInputReceiver", ["features", "receiver_tensors", "receiver_tensors_alternatives"])
):
    """What a ``serving_input_receiver_fn`` returns.

    ``features``: a tensor or a dict (str or int keys) of tensors handed to the model_fn; a
    lone tensor becomes ``{'feature': tensor}`` (use ``TensorServingInputReceiver`` to pass
    it as is). ``receiver_tensors``: the tensors a request feeds, usually one string
    placeholder of serialized ``tf.Example``s; a lone tensor is named ``'input'``.
    ``receiver_tensors_alternatives``: optional dict of name -> other receiver tensors; each
    gives extra signatures named ``'<name>:<export output key>'``.
    """

    __slots__ = ()

    def __new__(
        cls, features: Any, receiver_tensors: Any, receiver_tensors_alternatives: Mapping[str, Any] | None = None
    ) -> ServingInputReceiver:
        features = _wrap_and_check(features, "feature", allow_int_keys=True)
        receiver_tensors = _wrap_and_check(receiver_tensors, "receiver_tensor")
        if receiver_tensors_alternatives is not None:
            if not isinstance(receiver_tensors_alternatives, dict):
                raise ValueError(f"receiver_tensors_alternatives must be a dict: {receiver_tensors_alternatives!r}.")
            receiver_tensors_alternatives = {
                name: _wrap_and_check(alternative, "receiver_tensors_alternative")
                for name, alternative in receiver_tensors_alternatives.items()
            }
        return super().__new__(cls, features, receiver_tensors, receiver_tensors_alternatives)


class TensorServingInputReceiver(
    collections.namedtuple(
        "TensorServingInputReceiver", ["features", "receiver_tensors", "receiver_tensors_alternatives"]
    )
):
    """Like ``ServingInputReceiver``, for a model_fn whose features are one tensor, not a dict."""

    __slots__ = ()

    def __new__(
        cls, features: Any, receiver_tensors: Any, receiver_tensors_alternatives: Mapping[str, Any] | None = None
    ) -> TensorServingInputReceiver:
        if features is None:
            raise ValueError("features must be defined.")
        _check_tensor(features, None, "feature")
        receiver = ServingInputReceiver(features, receiver_tensors, receiver_tensors_alternatives)
        return super().__new__(
            cls,
            receiver.features[SINGLE_FEATURE_DEFAULT_NAME],
            receiver.receiver_tensors,
            receiver.receiver_tensors_alternatives,
        )


def build_parsing_serving_input_receiver_fn(
    feature_spec: Mapping[str, Any], default_batch_size: int | None = None
) -> Callable[[], ServingInputReceiver]:
    """A receiver fn fed serialized ``tf.Example``s, parsed with ``feature_spec``.

    The request tensor is a string placeholder of shape ``[default_batch_size]`` named
    ``input_example_tensor``, under the receiver key ``examples``; the features are the
    parsed tensors. This is the receiver classify and regress signatures need.
    """
    feature_spec = dict(feature_spec)

    def serving_input_receiver_fn() -> ServingInputReceiver:
        serialized = tf.compat.v1.placeholder(dtype=tf.string, shape=[default_batch_size], name="input_example_tensor")
        features = tf.io.parse_example(serialized, feature_spec)
        return ServingInputReceiver(features, {"examples": serialized})

    return serving_input_receiver_fn


def _placeholder_like(value: Any, key: str, default_batch_size: int | None) -> tf.Tensor:
    """A placeholder with the dtype and the non-batch shape of ``value``."""
    if isinstance(value, tf.TensorSpec):
        dtype, shape, name = value.dtype, value.shape, value.name
    elif isinstance(value, (tf.SparseTensor, tf.RaggedTensor)):
        raise ValueError(
            f"build_raw_serving_input_receiver_fn: feature {key!r} is a {type(value).__name__}; raw "
            "receivers feed dense tensors. Parse tf.Examples (build_parsing_serving_input_receiver_fn) "
            "or write a serving_input_receiver_fn that builds it from dense placeholders."
        )
    else:
        tensor = value if isinstance(value, tf.Tensor) else tf.convert_to_tensor(np.asarray(value))
        dtype, shape = tensor.dtype, tensor.shape
        try:
            name = tensor.op.name  # a graph tensor is named after its op, as tf.estimator did
        except AttributeError:  # eager tensors have no op
            name = None
    if shape.rank is None:  # as tf.estimator: a placeholder of unknown shape
        return tf.compat.v1.placeholder(dtype=dtype, shape=None, name=name or None)
    if shape.rank == 0:
        raise ValueError(
            f"build_raw_serving_input_receiver_fn: feature {key!r} is a scalar; give an example batch "
            "(the first dimension is the batch dimension)."
        )
    name = name or re.sub(r"[^A-Za-z0-9_.\-/]", "_", str(key)) or "input"
    shape = tf.TensorShape([default_batch_size]).concatenate(shape[1:])
    return tf.compat.v1.placeholder(dtype=dtype, shape=shape, name=name)


def build_raw_serving_input_receiver_fn(
    features: Mapping[str, Any], default_batch_size: int | None = None
) -> Callable[[], ServingInputReceiver]:
    """A receiver fn fed the features directly: one placeholder per feature.

    ``features`` maps names to example tensors (a batch, numpy arrays or ``tf.TensorSpec``s
    work too); each placeholder has the same dtype and shape with the batch dimension set to
    ``default_batch_size``. The receiver tensors are the features themselves.
    """
    if not isinstance(features, Mapping):
        raise ValueError(
            "build_raw_serving_input_receiver_fn expects a dict of feature name -> tensor; given: "
            f"{features!r}. For a model_fn taking one tensor, return a TensorServingInputReceiver."
        )
    features = dict(features)

    def serving_input_receiver_fn() -> ServingInputReceiver:
        placeholders = {key: _placeholder_like(value, key, default_batch_size) for key, value in features.items()}
        return ServingInputReceiver(placeholders, placeholders)

    return serving_input_receiver_fn


# -- supervised receivers (tf.estimator.experimental.build_raw_supervised_input_receiver_fn) ----
SINGLE_LABEL_DEFAULT_NAME = "label"


class SupervisedInputReceiver(collections.namedtuple("SupervisedInputReceiver", ["features", "labels", "receiver_tensors"])):
    """Features and labels fed together (an eval or train graph's inputs), with the tensors fed.

    ``features`` and ``labels``: a tensor or a dict (str or int keys) of tensors;
    ``receiver_tensors``: a tensor or a dict of str -> tensor (a lone one is named ``input``).
    """

    __slots__ = ()

    def __new__(cls, features: Any, labels: Any, receiver_tensors: Any) -> SupervisedInputReceiver:
        for value, label in ((features, "feature"), (labels, "label")):
            if value is None:
                raise ValueError(f"{label}s must be defined.")
            for key, tensor in (value.items() if isinstance(value, dict) else [(None, value)]):
                if key is not None:
                    _check_key(key, label, allow_ints=True)
                _check_tensor(tensor, key, label)
        receiver_tensors = _wrap_and_check(receiver_tensors, "receiver_tensor")
        return super().__new__(cls, features=features, labels=labels, receiver_tensors=receiver_tensors)


def _supervised_placeholder(value: Any, default_batch_size: int | None) -> tf.Tensor:
    """A placeholder with ``value``'s dtype and non-batch shape (any rank), named after its op."""
    tensor = value if isinstance(value, tf.Tensor) else tf.convert_to_tensor(np.asarray(value))
    shape = tf.TensorShape([default_batch_size]).concatenate(tensor.shape[1:])
    try:
        name = tensor.op.name
    except AttributeError:
        name = None
    return tf.compat.v1.placeholder(dtype=tensor.dtype, shape=shape, name=name)


def build_raw_supervised_input_receiver_fn(
    features: Any, labels: Any, default_batch_size: int | None = None
) -> Callable[[], SupervisedInputReceiver]:
    """A receiver fn fed features and labels directly: one placeholder per tensor.

    ``features`` and ``labels`` are example tensors (or dicts of them); a lone features
    tensor is fed under ``input`` and a lone labels tensor under ``label``. Feature and label
    keys must differ (ValueError).
    """
    feature_keys = set(features) if isinstance(features, dict) else {SINGLE_RECEIVER_DEFAULT_NAME}
    label_keys = set(labels) if isinstance(labels, dict) else {SINGLE_LABEL_DEFAULT_NAME}
    overlap = feature_keys & label_keys
    if overlap:
        raise ValueError(f"Features and labels must have distinct keys. Found overlapping keys: {overlap}")

    def placeholders(value: Any, single_key: str) -> tuple[Any, dict]:
        if isinstance(value, dict):
            fed = {key: _supervised_placeholder(tensor, default_batch_size) for key, tensor in value.items()}
            return fed, fed
        tensor = _supervised_placeholder(value, default_batch_size)
        return tensor, {single_key: tensor}

    def supervised_input_receiver_fn() -> SupervisedInputReceiver:
        feature_tensors, fed_features = placeholders(features, SINGLE_RECEIVER_DEFAULT_NAME)
        label_tensors, fed_labels = placeholders(labels, SINGLE_LABEL_DEFAULT_NAME)
        return SupervisedInputReceiver(feature_tensors, label_tensors, {**fed_features, **fed_labels})

    return supervised_input_receiver_fn
