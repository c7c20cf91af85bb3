"""The base of bridge's ``tf.compat.v1.layers``: TF1's layer contract and the helpers the layers share.

A layer opens ``tf.compat.v1.variable_scope(name, default_name=<layer kind>)`` and creates its
weights there with ``tf.compat.v1.get_variable``, which gives TF1's names, reuse rules and
collections (see ``bridge.compat.layers``).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import tensorflow as tf


def _snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _tuple(value: int | Sequence[int], rank: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * rank
    value = tuple(int(v) for v in value)
    if len(value) != rank:
        raise ValueError(f"The `{what}` argument must be a tuple of {rank} integers. Received: {value}")
    return value


def _padding(padding: str) -> str:
    padding = padding.upper()
    if padding not in ("VALID", "SAME"):
        raise ValueError(f"padding must be 'valid' or 'same' (any case). Received: {padding!r}")
    return padding


def _channels_first(data_format: str) -> bool:
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first'. Received: {data_format!r}")
    return data_format == "channels_first"


def _nn_format(rank: int, channels_first: bool) -> str:
    spatial = {1: "W", 2: "HW", 3: "DHW"}[rank]
    return f"NC{spatial}" if channels_first else f"N{spatial}C"


def _static_bool(value: Any) -> bool | None:
    """A Python bool for ``training`` when it is known before running (TF1's smart_cond)."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    static = tf.get_static_value(value)
    return None if static is None else bool(static)


def _cond(training: Any, if_true: Callable[[], Any], if_false: Callable[[], Any]) -> Any:
    known = _static_bool(training)
    if known is None:
        return tf.cond(tf.cast(training, tf.bool), if_true, if_false)
    return if_true() if known else if_false()


class Layer:
    """TF1's layer contract: variables under ``variable_scope(name, default_name=kind)``.

    The scope is opened on the first call and re-entered (with reuse) on later calls, so one
    instance called twice shares its variables, as in TF1. Subclasses implement ``build(shape)``
    (creating weights with ``add_weight``) and ``call(inputs, ...)``.
    """

    def __init__(
        self,
        trainable: bool = True,
        name: str | None = None,
        dtype: Any = None,
        activity_regularizer: Callable | None = None,
        _reuse: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments: {sorted(kwargs)}")
        self.trainable = trainable
        self._name = name
        self.dtype = tf.as_dtype(dtype) if dtype is not None else None
        self.activity_regularizer = activity_regularizer
        self._reuse = _reuse
        self._scope: Any = None
        self.built = False
        self._trainable_weights: list[tf.Variable] = []
        self._non_trainable_weights: list[tf.Variable] = []
        self.updates: list[Any] = []
        self.losses: list[tf.Tensor] = []
        self.input_spec: InputSpec | list[InputSpec] | None = None

    @property
    def name(self) -> str:
        if self._name is None and self._scope is not None:
            return self._scope.name.split("/")[-1]
        return self._name or _snake_case(type(self).__name__)

    @property
    def scope_name(self) -> str | None:
        return None if self._scope is None else self._scope.name

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return list(self._trainable_weights) if self.trainable else []

    @property
    def non_trainable_variables(self) -> list[tf.Variable]:
        if self.trainable:
            return list(self._non_trainable_weights)
        return self._trainable_weights + self._non_trainable_weights

    trainable_weights = trainable_variables
    non_trainable_weights = non_trainable_variables

    @property
    def variables(self) -> list[tf.Variable]:
        return self._trainable_weights + self._non_trainable_weights

    weights = variables

    def add_weight(
        self,
        name: str,
        shape: Sequence[int],
        dtype: Any = None,
        initializer: Any = None,
        regularizer: Callable | None = None,
        trainable: bool | None = None,
        constraint: Callable | None = None,
        use_resource: bool | None = None,
        synchronization: tf.VariableSynchronization = tf.VariableSynchronization.AUTO,
        aggregation: tf.VariableAggregation = tf.VariableAggregation.NONE,
        partitioner: Callable | None = None,
        **kwargs: Any,
    ) -> tf.Variable:
        """A weight of this layer: ``get_variable(name, ...)`` in the layer's variable scope.

        TF1's signature and rules: ``trainable`` defaults to True (False for ``ON_READ``
        synchronization), a regularizer's penalty goes to ``REGULARIZATION_LOSSES`` once.
        """
        if kwargs.get("getter") is not None:
            raise NotImplementedError(
                "add_weight(getter=...) is not supported by bridge's tf.compat.v1.layers.Layer; wrap the layer call "
                "in tf.compat.v1.variable_scope(..., custom_getter=...) instead (its getter sees every weight)."
            )
        unknown = set(kwargs) - {"getter", "experimental_autocast", "caching_device"}  # the last two: no effect here
        if unknown:
            raise TypeError(f"add_weight got unexpected keyword arguments: {sorted(unknown)}")
        if trainable is None:
            trainable = synchronization != tf.VariableSynchronization.ON_READ
        variable = tf.compat.v1.get_variable(
            name,
            shape=shape,
            dtype=dtype or self.dtype,
            initializer=initializer,
            regularizer=regularizer,
            trainable=trainable and self.trainable,
            constraint=constraint,
            use_resource=use_resource,
            synchronization=synchronization,
            aggregation=aggregation,
            partitioner=partitioner,
        )
        # a partitioned variable (partitioner=, or the variable scope's) counts as its parts
        parts = variable._get_variable_list() if hasattr(variable, "_get_variable_list") else [variable]
        (self._trainable_weights if trainable else self._non_trainable_weights).extend(parts)
        return variable

    # TF1's older name for add_weight
    add_variable = add_weight

    def add_loss(self, losses: Any, inputs: Any = None) -> None:
        """Adds loss tensors to this layer and to ``REGULARIZATION_LOSSES``, as TF1 layers did."""
        for loss in tf.nest.flatten(losses):
            if loss is None:
                continue
            self.losses.append(loss)
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES, loss)

    def add_update(self, updates: Any, inputs: Any = None) -> None:
        """Adds update ops to this layer and to ``UPDATE_OPS`` (run when the model_fn fetches them)."""
        for update in tf.nest.flatten(updates):
            self.updates.append(update)
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, update)

    def build(self, input_shape: tf.TensorShape) -> None:
        pass

    def call(self, inputs: tf.Tensor, **kwargs: Any) -> tf.Tensor:
        raise NotImplementedError

    def _open_scope(self) -> Any:
        if self._scope is None:
            return tf.compat.v1.variable_scope(self._name, default_name=_snake_case(type(self).__name__), reuse=self._reuse)
        return tf.compat.v1.variable_scope(self._scope, reuse=True, auxiliary_name_scope=True)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        with self._open_scope() as scope:
            if self._scope is None:
                self._scope = scope
            inputs = tf.nest.map_structure(tf.convert_to_tensor, inputs)
            flat = tf.nest.flatten(inputs)
            if self.dtype is None:  # TF1: the first input's dtype (an integer one too)
                self.dtype = flat[0].dtype.base_dtype if flat else tf.float32
            # As TF1's layers: floating inputs are computed in the layer's dtype, others (ids) kept.
            inputs = tf.nest.map_structure(
                lambda t: tf.cast(t, self.dtype) if t.dtype.is_floating and t.dtype != self.dtype else t, inputs
            )
            _check_input_spec(self, tf.nest.flatten(inputs))
            if not self.built:
                self.build(tf.nest.map_structure(lambda t: t.shape, inputs))
                self.built = True
            outputs = self.call(inputs, *args, **kwargs)
            if self.activity_regularizer is not None:
                # TF1 layers divided the activity penalty by the batch size.
                batch = tf.cast(tf.shape(outputs)[0], outputs.dtype)
                loss = self.activity_regularizer(outputs) / batch
                self.losses.append(loss)
                tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES, loss)
        return outputs

    def apply(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return self(inputs, *args, **kwargs)


class InputSpec:
    """What a layer accepts (TF1's ``tf.compat.v1.layers.InputSpec``), checked on every call."""

    def __init__(
        self,
        dtype: Any = None,
        shape: Sequence[int | None] | None = None,
        ndim: int | None = None,
        max_ndim: int | None = None,
        min_ndim: int | None = None,
        axes: dict[int, int] | None = None,
        allow_last_axis_squeeze: bool = False,
        name: str | None = None,
    ) -> None:
        self.dtype = tf.as_dtype(dtype).name if dtype is not None else None
        self.shape = tuple(shape) if shape is not None else None
        self.ndim = len(self.shape) if self.shape is not None else ndim
        self.max_ndim, self.min_ndim, self.name = max_ndim, min_ndim, name
        self.axes = {int(k): v for k, v in (axes or {}).items()}
        self.allow_last_axis_squeeze = allow_last_axis_squeeze

    def __repr__(self) -> str:
        fields = ("dtype", "shape", "ndim", "max_ndim", "min_ndim", "axes")
        return "InputSpec(" + ", ".join(f"{f}={getattr(self, f)}" for f in fields if getattr(self, f)) + ")"


def _check_input_spec(layer: Layer, inputs: list[tf.Tensor]) -> None:
    """Raises TF1's ValueError when an input does not match the layer's ``input_spec``."""
    specs = layer.input_spec
    if specs is None:
        return
    specs = tf.nest.flatten(specs)
    if len(specs) != len(inputs):
        raise ValueError(f'Layer "{layer.name}" expects {len(specs)} input(s), but it received {len(inputs)} input tensors.')
    for index, (spec, tensor) in enumerate(zip(specs, inputs)):
        if spec is None:
            continue
        shape, rank = tensor.shape, tensor.shape.rank
        where = f'Input {index} of layer "{layer.name}" is incompatible with the layer'
        full = f"Full shape received: {tuple(shape.as_list()) if rank is not None else None}"
        if spec.ndim is not None and rank is not None and rank != spec.ndim:
            raise ValueError(f"{where}: expected ndim={spec.ndim}, found ndim={rank}. {full}")
        if spec.max_ndim is not None and rank is not None and rank > spec.max_ndim:
            raise ValueError(f"{where}: expected max_ndim={spec.max_ndim}, found ndim={rank}")
        if spec.min_ndim is not None and rank is not None and rank < spec.min_ndim:
            raise ValueError(f"{where}: expected min_ndim={spec.min_ndim}, found ndim={rank}. {full}")
        if spec.dtype is not None and tensor.dtype.name != spec.dtype:
            raise ValueError(f"{where}: expected dtype={spec.dtype}, found dtype={tensor.dtype.name}")
        for axis, value in spec.axes.items():
            size = shape[axis] if rank is not None and -rank <= axis < rank else None
            if value is not None and size is not None and size not in (value,):
                raise ValueError(f"{where}: expected axis {axis} of input shape to have value {value}, but received input with shape {tuple(shape.as_list())}")
        if spec.shape is not None and rank is not None:
            for expected, got in zip(spec.shape, shape.as_list()):
                if expected is not None and got is not None and expected != got:
                    raise ValueError(f"{where}: expected shape={spec.shape}, found shape={tuple(shape.as_list())}")
