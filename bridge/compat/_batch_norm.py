"""TF1's batch normalization: moving statistics updated only through ``UPDATE_OPS``."""

from __future__ import annotations

from typing import Any, Callable, Sequence

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
