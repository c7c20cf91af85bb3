"""TF1's core and convolution layers: Dense, Conv1D-3D, Conv2DTranspose, pooling, Flatten, Dropout."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge.compat._layer_base import Layer, _channels_first, _cond, _nn_format, _padding, _tuple


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
        if not self.dtype.is_floating:
            raise TypeError(
                f"A {type(self).__name__} layer can only be built with a floating-point dtype. Received: dtype={self.dtype}"
            )
        self.kernel = self.add_weight(
            "kernel", kernel_shape, initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", [units], initializer=self.bias_initializer, regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
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
    """Transposed 2-D convolution; kernel ``[height, width, filters, in_channels]`` as in TF1.

    ``dilation_rate`` (class form only, as in 2.15) must be the same on both axes and cannot be
    combined with ``strides > 1``: 2.15's ValueErrors.
    """

    _rank = 2

    def __init__(self, filters: int, kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1, **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, **kwargs)
        if self.dilation_rate[0] != self.dilation_rate[1]:
            raise ValueError(
                "Expected the 2 dimensions of the `dilation_rate` argument to be equal to each other. "
                f"Received: dilation_rate={self.dilation_rate}"
            )
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}"
            )

    def build(self, input_shape: tf.TensorShape) -> None:
        channels = tf.compat.dimension_value(input_shape[1 if self.channels_first else -1])
        if channels is None:
            raise ValueError("The channel dimension of the inputs should be defined. Found `None`.")
        self._build_kernel_and_bias([*self.kernel_size, self.filters, channels], self.filters)

    def _output_size(self, size: Any, kernel: int, stride: int) -> Any:
        # TF1's rule: 'same' multiplies by the stride; 'valid' also adds what the (dilated)
        # kernel overhangs.
        kernel = kernel + (kernel - 1) * (self.dilation_rate[0] - 1)
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
            data_format="NCHW" if self.channels_first else "NHWC", dilations=self.dilation_rate,
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
