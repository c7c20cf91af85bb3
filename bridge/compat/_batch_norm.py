"""TF1's batch normalization: moving statistics updated only through ``UPDATE_OPS``.

Besides plain and fused batch normalization, TF1's options: batch renormalization (``renorm``,
``renorm_clipping``, ``renorm_momentum``: extra ``moving_stddev``, ``renorm_mean`` and
``renorm_stddev`` variables), ghost batches (``virtual_batch_size``: parameters get an extra
leading axis, as in 2.15's checkpoints) and ``adjustment``. As in 2.15, these never use the
fused kernel (``fused=True`` is ignored for them).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import math

import tensorflow as tf

from bridge.compat._layer_base import Layer, _cond, _static_bool
from bridge.compat._update_ops import add_update


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
        if renorm:
            unknown = set(renorm_clipping or {}) - {"rmax", "rmin", "dmax"}
            if unknown:
                raise ValueError(
                    f"Received invalid keys for `renorm_clipping` argument: {renorm_clipping}. "
                    "Supported values: ['rmax', 'rmin', 'dmax']."
                )
        self.renorm, self.renorm_clipping, self.renorm_momentum = renorm, dict(renorm_clipping or {}), renorm_momentum
        self.virtual_batch_size, self.adjustment = virtual_batch_size, adjustment
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
        if self.virtual_batch_size is not None:
            if self.virtual_batch_size <= 0:
                raise ValueError(
                    "`virtual_batch_size` must be a positive integer that divides the true batch size of the input "
                    f"tensor. Received: virtual_batch_size={self.virtual_batch_size}"
                )
            if 0 in self._axes:
                raise ValueError(
                    "When using `virtual_batch_size`, the batch dimension must be 0 and thus axis cannot include 0. "
                    f"Received axis={self._axes}"
                )
            if self.adjustment is not None:
                raise ValueError("When using `virtual_batch_size`, adjustment cannot be specified")
        self._extended = bool(self.renorm or self.virtual_batch_size is not None or self.adjustment is not None)
        param_shape = shape if len(shape) > 1 else shape[0:1]
        if self.virtual_batch_size is not None:
            # 2.15's shape: the input's rank plus the virtual-batch axis, sizes only on the normalised axes
            param_shape = [1, *[tf.compat.dimension_value(input_shape[a]) if a in self._axes else 1 for a in range(1, rank)]]
            param_shape.insert(0, 1)
            self._axes = [a + 1 for a in self._axes]
        self._use_fused = not self._extended and self.fused is not False and rank == 4 and self._axes in ([1], [3])
        if self.fused and not self._use_fused and not self._extended:
            raise ValueError(f"fused=True needs a 4-D input normalised over axis 1 or 3; got rank {rank}, axis {self.axis}.")
        param_dtype = tf.float32 if self.dtype in (tf.float16, tf.bfloat16) else self.dtype
        if self.scale:
            self.gamma = self.add_weight(
                "gamma", param_shape, param_dtype, self.gamma_initializer, self.gamma_regularizer,
                constraint=self.gamma_constraint,
            )
        if self.center:
            self.beta = self.add_weight(
                "beta", param_shape, param_dtype, self.beta_initializer, self.beta_regularizer,
                constraint=self.beta_constraint,
            )
        # Moving statistics are model state (saved in checkpoints), not trainable; under a
        # distribution strategy each replica's update is averaged, as TF1's were.
        mean = tf.VariableAggregation.MEAN
        self.moving_mean = self.add_weight(
            "moving_mean", param_shape, param_dtype, self.moving_mean_initializer, trainable=False, aggregation=mean
        )
        self.moving_variance = self.add_weight(
            "moving_variance", param_shape, param_dtype, self.moving_variance_initializer, trainable=False, aggregation=mean
        )
        if self.renorm:
            # Renorm tracks the moving standard deviation (moving_variance follows from it) and its own
            # averages of the batch moments, used for the corrections r and d while training.
            stddev_initializer = _square_root_of(self.moving_variance_initializer)
            self.moving_stddev = self.add_weight(
                "moving_stddev", param_shape, param_dtype, stddev_initializer, trainable=False, aggregation=mean
            )
            self.renorm_mean = self.add_weight(
                "renorm_mean", param_shape, param_dtype, self.moving_mean_initializer, trainable=False, aggregation=mean
            )
            self.renorm_stddev = self.add_weight(
                "renorm_stddev", param_shape, param_dtype, stddev_initializer, trainable=False, aggregation=mean
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
            return self._call_standard(inputs, training)
        # As TF1: 16-bit inputs are normalised in float32 (the parameters' dtype), then cast back.
        low_precision = inputs.dtype in (tf.float16, tf.bfloat16)
        x = tf.cast(inputs, tf.float32) if low_precision else inputs
        outputs = self._call_extended(x, training) if self._extended else self._call_standard(x, training)
        return tf.cast(outputs, inputs.dtype) if low_precision else outputs

    def _call_standard(self, inputs: tf.Tensor, training: Any) -> tf.Tensor:
        """Plain or fused batch normalization, with its two moving-average updates."""
        if self._use_fused:
            outputs, mean, variance = self._fused(inputs, training)
        else:
            outputs, mean, variance = self._plain(inputs, training)
        if _static_bool(training) is False:
            return outputs
        momentum = _cond(training, lambda: tf.constant(self.momentum, mean.dtype), lambda: tf.constant(1.0, mean.dtype))

        def update(variable: tf.Variable, value: tf.Tensor) -> Callable[[], Any]:
            # Read now, before any of the step's updates is built: in 2.15 every update read the
            # value the step started with, so a layer called twice moves by both calls' deltas.
            start = variable.read_value()

            def build():
                return variable.assign_sub((start - value) * (1.0 - momentum), read_value=False)

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

    # -- renorm, virtual batches, adjustment (never fused) ----------------------------------------
    def _call_extended(self, inputs: tf.Tensor, training: Any) -> tf.Tensor:
        known = _static_bool(training)
        x = inputs
        if self.virtual_batch_size is not None:
            # Ghost batches: [batch, ...] -> [virtual_batch_size, batch / virtual_batch_size, ...], each
            # virtual batch normalised on its own. As in 2.15 only for a Python True `training`; otherwise
            # one virtual batch of everything.
            rest = tf.shape(inputs)[1:]
            leading = [self.virtual_batch_size, -1] if known else [-1, 1]
            x = tf.reshape(inputs, tf.concat([tf.constant(leading), rest], 0))
        rank = x.shape.rank
        reduction = [a for a in range(rank) if a not in self._axes]
        if self.virtual_batch_size is not None:
            reduction.remove(1)

        def broadcast(value: Any) -> Any:
            if value is None or value.shape.rank == rank or self._axes == [rank - 1]:
                return value
            return self._broadcast(value, rank)

        scale, offset = broadcast(self.gamma), broadcast(self.beta)
        if known is False:
            outputs = tf.nn.batch_normalization(
                x, broadcast(self.moving_mean), broadcast(self.moving_variance), offset, scale, self.epsilon
            )
            return self._restore_shape(outputs, inputs)
        if self.adjustment is not None:
            adjust_scale, adjust_bias = self.adjustment(tf.shape(x))
            adjust_scale = _cond(training, lambda: adjust_scale, lambda: tf.ones_like(adjust_scale))
            adjust_bias = _cond(training, lambda: adjust_bias, lambda: tf.zeros_like(adjust_bias))
            scale, offset = _then(adjust_scale, adjust_bias, scale, offset)
        keep_dims = self.virtual_batch_size is not None or len(self._axes) > 1
        batch_mean, batch_variance = tf.nn.moments(x, reduction, keepdims=keep_dims)
        mean = _cond(training, lambda: batch_mean, lambda: tf.convert_to_tensor(self.moving_mean))
        variance = _cond(training, lambda: batch_variance, lambda: tf.convert_to_tensor(self.moving_variance))
        if self.virtual_batch_size is not None:
            # The moving statistics move towards the average over the virtual batches, in one step.
            new_mean = tf.reduce_mean(mean, axis=1, keepdims=True)
            new_variance = tf.reduce_mean(variance, axis=1, keepdims=True)
        else:
            new_mean, new_variance = mean, variance
        if self.renorm:
            r, d = self._renorm_corrections(new_mean, new_variance, training)
            scale, offset = _then(broadcast(r), broadcast(d), scale, offset)
        outputs = tf.nn.batch_normalization(x, broadcast(mean), broadcast(variance), offset, scale, self.epsilon)
        self._add_extended_updates(new_mean, new_variance, training)
        return self._restore_shape(outputs, inputs)

    def _restore_shape(self, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
        if self.virtual_batch_size is not None:
            outputs = tf.reshape(outputs, tf.shape(inputs))
        outputs.set_shape(inputs.shape)
        return outputs

    def _renorm_corrections(self, mean: tf.Tensor, variance: tf.Tensor, training: Any) -> tuple[tf.Tensor, tf.Tensor]:
        """Batch renormalization's r and d, from the renorm averages before this step's update."""
        stddev = tf.sqrt(variance + self.epsilon)
        renorm_stddev = tf.maximum(self.renorm_stddev, math.sqrt(self.epsilon))  # no division by ~0 early on
        r = stddev / renorm_stddev
        d = (mean - self.renorm_mean) / renorm_stddev
        if self.renorm_clipping.get("rmin") is not None:
            r = tf.maximum(r, self.renorm_clipping["rmin"])
        if self.renorm_clipping.get("rmax") is not None:
            r = tf.minimum(r, self.renorm_clipping["rmax"])
        if self.renorm_clipping.get("dmax") is not None:
            d = tf.clip_by_value(d, -self.renorm_clipping["dmax"], self.renorm_clipping["dmax"])
        r = _cond(training, lambda: r, lambda: tf.ones_like(r))
        d = _cond(training, lambda: d, lambda: tf.zeros_like(d))
        return tf.stop_gradient(r), tf.stop_gradient(d)

    def _add_extended_updates(self, mean: tf.Tensor, variance: tf.Tensor, training: Any) -> None:
        """The moving-average updates, through UPDATE_OPS: the mean's and the variance's (with renorm,
        both first update the renorm averages, once)."""
        dtype = self.moving_mean.dtype

        def rate(momentum: float) -> tf.Tensor:  # 1 - momentum while training, 0 (no change) otherwise
            return _cond(training, lambda: tf.constant(1.0 - momentum, dtype), lambda: tf.constant(0.0, dtype))

        def move(variable: tf.Variable, value: tf.Tensor, momentum: float, read_value: bool = False) -> Any:
            return variable.assign_sub((variable.read_value() - value) * rate(momentum), read_value=read_value)

        renorm_updates: list[Any] = []

        def renorm_first() -> Any:
            if self.renorm and not renorm_updates:
                stddev = tf.sqrt(variance + self.epsilon)
                renorm_updates.append(move(self.renorm_mean, mean, self.renorm_momentum))
                renorm_updates.append(move(self.renorm_stddev, stddev, self.renorm_momentum))
            return tf.control_dependencies(renorm_updates)

        def mean_update() -> Any:
            with renorm_first():
                return move(self.moving_mean, mean, self.momentum)

        def variance_update() -> Any:
            with renorm_first():
                if not self.renorm:
                    return move(self.moving_variance, variance, self.momentum)
                stddev = move(self.moving_stddev, tf.sqrt(variance + self.epsilon), self.momentum, read_value=True)
                return self.moving_variance.assign(tf.nn.relu(stddev * stddev - self.epsilon), read_value=False)

        for build, name in ((mean_update, "AssignMovingAvg"), (variance_update, "AssignMovingAvg_1")):
            self.updates.append(add_update(build, name=name))


def _then(scale: Any, offset: Any, then_scale: Any, then_offset: Any) -> tuple[Any, Any]:
    """``x * scale + offset`` followed by ``* then_scale + then_offset``, as one scale and offset."""
    if then_scale is not None:
        scale, offset = scale * then_scale, offset * then_scale
    if then_offset is not None:
        offset = offset + then_offset
    return scale, offset


def _square_root_of(initializer: Any) -> Callable[..., tf.Tensor]:
    """An initializer giving the square root of ``initializer``'s values (a stddev from a variance)."""

    def initialize(shape: Any, dtype: Any = tf.float32, partition_info: Any = None) -> tf.Tensor:
        if isinstance(initializer, type):
            return tf.sqrt(initializer()(shape, dtype=dtype))
        return tf.sqrt(initializer(shape, dtype=dtype))

    return initialize
