"""``tf.compat.v1.layers`` for model_fns, on TensorFlow 2.16+ without tf_keras.

Written against TensorFlow's own v1 variable machinery rather than Keras: every layer opens
``tf.compat.v1.variable_scope(name, default_name=<layer kind>)`` and creates its weights with
``tf.compat.v1.get_variable``. That scope is what gave TF1 its names (``dense``, ``dense_1``,
``head/conv2d/kernel``), its ``reuse`` rules (``reuse=True``, ``AUTO_REUSE``, towers re-entering a
scope) and its collections (``GLOBAL_VARIABLES``, ``TRAINABLE_VARIABLES``,
``REGULARIZATION_LOSSES``), so names and reuse behave as in TF 1.x-2.15 by construction and
bridge's variable store keys checkpoints by those names. The maths are plain TensorFlow ops
with TF1's defaults (Glorot-uniform kernels, zero biases; batch normalization with momentum
0.99, epsilon 1e-3, the fused kernel for 4-D inputs). Batch normalization's moving-average
updates go to ``UPDATE_OPS`` with TF1's fetch semantics (``bridge.compat._update_ops``).

Inside a bridge model_fn these names are also reachable as ``tf.compat.v1.layers.<name>``
(installed on entry, removed on exit). Elsewhere, import them from here.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge._model_fn_scopes import ModelFnCall, register
from bridge.compat._patching import attributes_set
from bridge.compat._update_ops import add_update, deferred_updates

__all__ = [
    "Layer",
    "Dense",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv2DTranspose",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "Flatten",
    "Dropout",
    "BatchNormalization",
    "dense",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv2d_transpose",
    "max_pooling1d",
    "max_pooling2d",
    "max_pooling3d",
    "average_pooling1d",
    "average_pooling2d",
    "average_pooling3d",
    "flatten",
    "dropout",
    "batch_normalization",
]


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
        initializer: Any = None,
        regularizer: Callable | None = None,
        trainable: bool = True,
        constraint: Callable | None = None,
        dtype: Any = None,
        aggregation: tf.VariableAggregation = tf.VariableAggregation.NONE,
    ) -> tf.Variable:
        variable = tf.compat.v1.get_variable(
            name,
            shape=shape,
            dtype=dtype or self.dtype,
            initializer=initializer,
            regularizer=regularizer,
            trainable=trainable and self.trainable,
            constraint=constraint,
            aggregation=aggregation,
        )
        (self._trainable_weights if trainable else self._non_trainable_weights).append(variable)
        return variable

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
            inputs = tf.convert_to_tensor(inputs)
            if self.dtype is None:
                self.dtype = inputs.dtype if inputs.dtype.is_floating else tf.float32
            if inputs.dtype != self.dtype:
                inputs = tf.cast(inputs, self.dtype)
            if not self.built:
                self.build(inputs.shape)
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


class _KernelLayer(Layer):
    """A layer with a kernel, an optional bias and an activation (Dense and the convolutions)."""

    def __init__(
        self,
        activation: Callable | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = None,
        bias_initializer: Any = tf.compat.v1.zeros_initializer(),
        kernel_regularizer: Callable | None = None,
        bias_regularizer: Callable | None = None,
        kernel_constraint: Callable | None = None,
        bias_constraint: Callable | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.activation, self.use_bias = activation, use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer
        self.kernel_constraint, self.bias_constraint = kernel_constraint, bias_constraint
        self.kernel = self.bias = None

    def _build_kernel_and_bias(self, kernel_shape: list[int], units: int) -> None:
        self.kernel = self.add_weight(
            "kernel", kernel_shape, self.kernel_initializer, self.kernel_regularizer, constraint=self.kernel_constraint
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", [units], self.bias_initializer, self.bias_regularizer, constraint=self.bias_constraint
            )

    def _finish(self, outputs: tf.Tensor, data_format: str = "NHWC") -> tf.Tensor:
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias, data_format=data_format)
        return self.activation(outputs) if self.activation is not None else outputs


class Dense(_KernelLayer):
    """``outputs = activation(inputs @ kernel + bias)`` over the last axis (any input rank).

    Keyword arguments as TF1's: ``kernel_initializer`` (default Glorot uniform),
    ``bias_initializer`` (zeros), ``*_regularizer``, ``*_constraint``, ``activity_regularizer``,
    ``trainable``, ``name``.
    """

    def __init__(self, units: int, activation: Callable | None = None, use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(activation=activation, use_bias=use_bias, **kwargs)
        self.units = int(units)

    def build(self, input_shape: tf.TensorShape) -> None:
        last = tf.compat.dimension_value(input_shape[-1])
        if last is None:
            raise ValueError("The last dimension of the inputs to `Dense` should be defined. Found `None`.")
        self._build_kernel_and_bias([last, self.units], self.units)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if inputs.shape.rank == 2:
            outputs = tf.matmul(inputs, self.kernel)
        else:
            outputs = tf.tensordot(inputs, self.kernel, [[inputs.shape.rank - 1], [0]])
        return self._finish(outputs)


class _Conv(_KernelLayer):
    """N-D convolution with TF1's arguments (see Dense for the keyword arguments)."""

    _rank = 2

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str = "valid",
        data_format: str = "channels_last",
        dilation_rate: int | Sequence[int] = 1,
        activation: Callable | None = None,
        use_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(activation=activation, use_bias=use_bias, **kwargs)
        rank = self._rank
        self.filters = int(filters)
        self.kernel_size = _tuple(kernel_size, rank, "kernel_size")
        self.strides = _tuple(strides, rank, "strides")
        self.padding = _padding(padding)
        self.channels_first = _channels_first(data_format)
        self.dilation_rate = _tuple(dilation_rate, rank, "dilation_rate")

    def build(self, input_shape: tf.TensorShape) -> None:
        channels = tf.compat.dimension_value(input_shape[1 if self.channels_first else -1])
        if channels is None:
            raise ValueError("The channel dimension of the inputs should be defined. Found `None`.")
        self._build_kernel_and_bias([*self.kernel_size, channels, self.filters], self.filters)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        data_format = _nn_format(self._rank, self.channels_first)
        outputs = tf.nn.convolution(
            inputs, self.kernel, strides=self.strides, padding=self.padding, data_format=data_format, dilations=self.dilation_rate
        )
        return self._finish(outputs, "NCHW" if self.channels_first else "NHWC")


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution; kernel ``[height, width, filters, in_channels]`` as in TF1."""

    _rank = 2

    def build(self, input_shape: tf.TensorShape) -> None:
        channels = tf.compat.dimension_value(input_shape[1 if self.channels_first else -1])
        if channels is None:
            raise ValueError("The channel dimension of the inputs should be defined. Found `None`.")
        if self.dilation_rate != (1, 1):
            raise NotImplementedError("conv2d_transpose with dilation_rate is not provided; use keras.layers.Conv2DTranspose.")
        self._build_kernel_and_bias([*self.kernel_size, self.filters, channels], self.filters)

    def _output_size(self, size: Any, kernel: int, stride: int) -> Any:
        # TF1's rule: 'same' multiplies by the stride; 'valid' also adds what the kernel overhangs.
        return size * stride if self.padding == "SAME" else size * stride + max(kernel - stride, 0)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(inputs)
        spatial = (2, 3) if self.channels_first else (1, 2)
        height, width = (self._output_size(shape[a], k, s) for a, k, s in zip(spatial, self.kernel_size, self.strides))
        if self.channels_first:
            output_shape = tf.stack([shape[0], self.filters, height, width])
        else:
            output_shape = tf.stack([shape[0], height, width, self.filters])
        outputs = tf.nn.conv2d_transpose(
            inputs, self.kernel, output_shape, strides=self.strides, padding=self.padding,
            data_format="NCHW" if self.channels_first else "NHWC",
        )
        static = [tf.compat.dimension_value(inputs.shape[a]) for a in spatial]
        if all(size is not None for size in static):
            sizes = [self._output_size(size, k, st) for size, k, st in zip(static, self.kernel_size, self.strides)]
            batch = inputs.shape[0]
            outputs.set_shape([batch, self.filters, *sizes] if self.channels_first else [batch, *sizes, self.filters])
        return self._finish(outputs, "NCHW" if self.channels_first else "NHWC")


class Conv1D(_Conv):
    """1-D convolution; kernel ``[width, in_channels, filters]``."""

    _rank = 1


class Conv2D(_Conv):
    """2-D convolution; kernel ``[height, width, in_channels, filters]``."""

    _rank = 2


class Conv3D(_Conv):
    """3-D convolution; kernel ``[depth, height, width, in_channels, filters]``."""

    _rank = 3


class _Pooling(Layer):
    _rank = 2
    _kind = "MAX"

    def __init__(
        self,
        pool_size: int | Sequence[int],
        strides: int | Sequence[int],
        padding: str = "valid",
        data_format: str = "channels_last",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.pool_size = _tuple(pool_size, self._rank, "pool_size")
        self.strides = _tuple(strides, self._rank, "strides")
        self.padding = _padding(padding)
        self.channels_first = _channels_first(data_format)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.nn.pool(
            inputs,
            window_shape=self.pool_size,
            pooling_type="MAX" if self._kind == "MAX" else "AVG",
            strides=self.strides,
            padding=self.padding,
            data_format=_nn_format(self._rank, self.channels_first),
        )


class MaxPooling1D(_Pooling):
    _rank, _kind = 1, "MAX"


class MaxPooling2D(_Pooling):
    _rank, _kind = 2, "MAX"


class MaxPooling3D(_Pooling):
    _rank, _kind = 3, "MAX"


class AveragePooling1D(_Pooling):
    _rank, _kind = 1, "AVG"


class AveragePooling2D(_Pooling):
    _rank, _kind = 2, "AVG"


class AveragePooling3D(_Pooling):
    _rank, _kind = 3, "AVG"


class Flatten(Layer):
    """Collapses all but the batch axis (channels-first inputs are moved to channels-last first)."""

    def __init__(self, data_format: str = "channels_last", name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.channels_first = _channels_first(data_format)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.channels_first and inputs.shape.rank and inputs.shape.rank > 2:
            inputs = tf.transpose(inputs, [0, *range(2, inputs.shape.rank), 1])
        rest = inputs.shape[1:]
        if rest.is_fully_defined():
            width = 1
            for size in rest:
                width *= int(size)
            return tf.reshape(inputs, [-1, width])
        return tf.reshape(inputs, [tf.shape(inputs)[0], -1])


class Dropout(Layer):
    """Drops ``rate`` of the inputs when ``training`` (default False, as in TF1), scaling the rest."""

    def __init__(
        self, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None, name: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.rate, self.noise_shape, self.seed = rate, noise_shape, seed

    def call(self, inputs: tf.Tensor, training: Any = False) -> tf.Tensor:
        if isinstance(self.rate, (int, float)) and self.rate == 0:
            return tf.identity(inputs)
        return _cond(
            training,
            lambda: tf.nn.dropout(inputs, rate=self.rate, noise_shape=self.noise_shape, seed=self.seed),
            lambda: tf.identity(inputs),
        )


class BatchNormalization(Layer):
    """TF1 batch normalization: batch statistics when ``training``, moving statistics otherwise.

    The moving mean and variance are updated (``moving -= (moving - batch) * (1 - momentum)``)
    only through ``UPDATE_OPS``. 4-D inputs normalised over the channel axis use the fused
    kernel, whose batch variance for the moving average is Bessel-corrected, as TF1's did.
    """

    def __init__(
        self,
        axis: int | Sequence[int] = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = tf.compat.v1.zeros_initializer(),
        gamma_initializer: Any = tf.compat.v1.ones_initializer(),
        moving_mean_initializer: Any = tf.compat.v1.zeros_initializer(),
        moving_variance_initializer: Any = tf.compat.v1.ones_initializer(),
        beta_regularizer: Callable | None = None,
        gamma_regularizer: Callable | None = None,
        beta_constraint: Callable | None = None,
        gamma_constraint: Callable | None = None,
        renorm: bool = False,
        renorm_clipping: Any = None,
        renorm_momentum: float = 0.99,
        fused: bool | None = None,
        trainable: bool = True,
        virtual_batch_size: int | None = None,
        adjustment: Callable | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(trainable=trainable, name=name, **kwargs)
        unsupported = {
            "renorm": renorm,
            "virtual_batch_size": virtual_batch_size,
            "adjustment": adjustment,
        }
        used = [k for k, v in unsupported.items() if v]
        if used or renorm_clipping is not None:
            raise NotImplementedError(
                f"bridge's tf.compat.v1.layers.batch_normalization does not support {used or ['renorm_clipping']}; "
                "use keras.layers.BatchNormalization (Keras 3) for batch renormalization or virtual batches."
            )
        self.axis = axis
        self.momentum, self.epsilon = momentum, epsilon
        self.center, self.scale, self.fused = center, scale, fused
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.moving_mean_initializer, self.moving_variance_initializer = moving_mean_initializer, moving_variance_initializer
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer
        self.beta_constraint, self.gamma_constraint = beta_constraint, gamma_constraint
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def build(self, input_shape: tf.TensorShape) -> None:
        rank = input_shape.rank
        if rank is None:
            raise ValueError("Input to BatchNormalization has undefined rank.")
        axes = [self.axis] if isinstance(self.axis, int) else list(self.axis)
        self._axes = sorted(a % rank for a in axes)
        shape = [tf.compat.dimension_value(input_shape[a]) for a in self._axes]
        if any(size is None for size in shape):
            raise ValueError(f"Input has undefined dimension at axis {self.axis}: {input_shape}.")
        param_shape = shape if len(shape) > 1 else shape[0:1]
        self._use_fused = self.fused is not False and rank == 4 and self._axes in ([1], [3])
        if self.fused and not self._use_fused:
            raise ValueError(f"fused=True needs a 4-D input normalised over axis 1 or 3; got rank {rank}, axis {self.axis}.")
        param_dtype = tf.float32 if self.dtype in (tf.float16, tf.bfloat16) else self.dtype
        if self.scale:
            self.gamma = self.add_weight(
                "gamma", param_shape, self.gamma_initializer, self.gamma_regularizer, constraint=self.gamma_constraint, dtype=param_dtype
            )
        if self.center:
            self.beta = self.add_weight(
                "beta", param_shape, self.beta_initializer, self.beta_regularizer, constraint=self.beta_constraint, dtype=param_dtype
            )
        # Moving statistics are model state (saved in checkpoints), not trainable; under a
        # distribution strategy each replica's update is averaged, as TF1's were.
        mean = tf.VariableAggregation.MEAN
        self.moving_mean = self.add_weight(
            "moving_mean", param_shape, self.moving_mean_initializer, trainable=False, dtype=param_dtype, aggregation=mean
        )
        self.moving_variance = self.add_weight(
            "moving_variance", param_shape, self.moving_variance_initializer, trainable=False, dtype=param_dtype, aggregation=mean
        )

    def _broadcast(self, value: tf.Tensor | None, rank: int) -> tf.Tensor | None:
        if value is None or self._axes == [rank - 1]:
            return value
        shape = [1] * rank
        for a in self._axes:
            shape[a] = -1 if len(self._axes) == 1 else tf.compat.dimension_value(value.shape[self._axes.index(a)])
        return tf.reshape(value, shape)

    def call(self, inputs: tf.Tensor, training: Any = False) -> tf.Tensor:
        if self._use_fused:
            outputs, mean, variance = self._fused(inputs, training)
        else:
            outputs, mean, variance = self._plain(inputs, training)
        if _static_bool(training) is False:
            return outputs
        momentum = _cond(training, lambda: tf.constant(self.momentum, mean.dtype), lambda: tf.constant(1.0, mean.dtype))

        def update(variable: tf.Variable, value: tf.Tensor) -> Callable[[], Any]:
            def build():
                return variable.assign_sub((variable.read_value() - value) * (1.0 - momentum), read_value=False)

            return build

        for variable, value, name in ((self.moving_mean, mean, "AssignMovingAvg"), (self.moving_variance, variance, "AssignMovingAvg_1")):
            marker = add_update(update(variable, value), name=name)
            self.updates.append(marker)
        return outputs

    def _fused(self, inputs: tf.Tensor, training: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        channels = self.moving_mean.shape
        gamma = self.gamma if self.gamma is not None else tf.ones(channels, self.moving_mean.dtype)
        beta = self.beta if self.beta is not None else tf.zeros(channels, self.moving_mean.dtype)
        data_format = "NCHW" if self._axes == [1] else "NHWC"

        def batch_stats():
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, data_format=data_format, is_training=True
            )
            return y, mean, variance

        def moving_stats():
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                gamma,
                beta,
                mean=self.moving_mean,
                variance=self.moving_variance,
                epsilon=self.epsilon,
                data_format=data_format,
                is_training=False,
            )
            return y, tf.convert_to_tensor(self.moving_mean), tf.convert_to_tensor(self.moving_variance)

        return _cond(training, batch_stats, moving_stats)

    def _plain(self, inputs: tf.Tensor, training: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        rank = inputs.shape.rank
        reduction = [a for a in range(rank) if a not in self._axes]

        def batch_stats():
            mean, variance = tf.nn.moments(inputs, reduction)
            return mean, variance

        def moving_stats():
            return tf.convert_to_tensor(self.moving_mean), tf.convert_to_tensor(self.moving_variance)

        mean, variance = _cond(training, batch_stats, moving_stats)
        outputs = tf.nn.batch_normalization(
            inputs,
            self._broadcast(mean, rank),
            self._broadcast(variance, rank),
            self._broadcast(self.beta, rank),
            self._broadcast(self.gamma, rank),
            self.epsilon,
        )
        return outputs, mean, variance


def _functional(cls: type, call_args: Sequence[str] = ()) -> Callable[..., tf.Tensor]:
    """The functional form TF1 offered for a layer class: build the layer, apply it once."""

    def apply(inputs: Any, *args: Any, name: str | None = None, reuse: Any = None, **kwargs: Any) -> tf.Tensor:
        call_kwargs = {k: kwargs.pop(k) for k in call_args if k in kwargs}
        layer = cls(*args, name=name, _reuse=reuse, **kwargs)
        return layer(inputs, **call_kwargs)

    apply.__name__ = _snake_case(cls.__name__)
    apply.__doc__ = f"Functional form of :class:`{cls.__name__}`: ``{apply.__name__}(inputs, ...)``."
    return apply


dense = _functional(Dense)
conv1d = _functional(Conv1D)
conv2d = _functional(Conv2D)
conv3d = _functional(Conv3D)
conv2d_transpose = _functional(Conv2DTranspose)
max_pooling1d = _functional(MaxPooling1D)
max_pooling2d = _functional(MaxPooling2D)
max_pooling3d = _functional(MaxPooling3D)
average_pooling1d = _functional(AveragePooling1D)
average_pooling2d = _functional(AveragePooling2D)
average_pooling3d = _functional(AveragePooling3D)
batch_normalization = _functional(BatchNormalization, call_args=("training",))


def flatten(inputs: Any, name: str | None = None, data_format: str = "channels_last") -> tf.Tensor:
    """Functional form of :class:`Flatten`."""
    return Flatten(data_format=data_format, name=name)(inputs)


def dropout(
    inputs: Any, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None, training: Any = False, name: str | None = None
) -> tf.Tensor:
    """Functional form of :class:`Dropout`; ``training`` defaults to False, as in TF1."""
    return Dropout(rate, noise_shape, seed, name=name)(inputs, training=training)


# TF1 layers bridge does not reproduce, with the Keras 3 layer to use instead (its variables are
# named by Keras, not as TF1 named them).
NOT_PROVIDED = {
    "conv3d_transpose": "Conv3DTranspose",
    "separable_conv1d": "SeparableConv1D",
    "separable_conv2d": "SeparableConv2D",
    "Conv3DTranspose": "Conv3DTranspose",
    "SeparableConv1D": "SeparableConv1D",
    "SeparableConv2D": "SeparableConv2D",
}


def _not_provided(name: str, replacement: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"bridge does not provide tf.compat.v1.layers.{name} (it provides dense, conv1d-3d, conv2d_transpose, "
            f"pooling, flatten, dropout and batch_normalization); use keras.layers.{replacement} inside model_fn instead (its variables are "
            "named by Keras, so a TF1 checkpoint needs WarmStartSettings(var_name_to_prev_var_name=...))."
        )

    refuse.__name__ = name
    return refuse


def public_names() -> dict[str, Any]:
    """What ``tf.compat.v1.layers`` offers inside a bridge model_fn."""
    names: dict[str, Any] = {name: _not_provided(name, keras) for name, keras in NOT_PROVIDED.items()}
    names.update({name: globals()[name] for name in __all__})
    return names


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Any:
    with attributes_set(tf.compat.v1.layers, public_names()), deferred_updates(call):
        yield


register(_model_fn_scope)
