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
from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge._model_fn_scopes import ModelFnCall, register
from bridge.compat._batch_norm import BatchNormalization
from bridge.compat._core_layers import (
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from bridge.compat._layer_base import InputSpec, Layer, _snake_case
from bridge.compat._patching import attributes_set
from bridge.compat._update_ops import deferred_updates

__all__ = [
    "InputSpec",
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


def _functional(cls: type, call_args: Sequence[str] = (), refused: Sequence[str] = ()) -> Callable[..., tf.Tensor]:
    """The functional form TF1 offered for a layer class: build the layer, apply it once.

    ``refused``: arguments of the class that TF1's functional form did not have (a TypeError, as there).
    """

    def apply(inputs: Any, *args: Any, name: str | None = None, reuse: Any = None, **kwargs: Any) -> tf.Tensor:
        for argument in refused:
            if argument in kwargs:
                raise TypeError(f"{apply.__name__}() got an unexpected keyword argument '{argument}'")
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
conv2d_transpose = _functional(Conv2DTranspose, refused=("dilation_rate",))
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


def install_classes() -> None:
    """Makes ``tf.compat.v1.layers.Layer``, ``Dense``, ... bridge's classes everywhere, for good.

    Part of ``bridge.install_as_tf_estimator()``: legacy code subclasses them in class statements
    that run at import time, outside any model_fn. The functional forms (``dense``, ...) stay
    scoped to model_fn calls.
    """
    for name, value in public_names().items():
        if isinstance(value, type):
            vars(tf.compat.v1.layers)[name] = value


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Any:
    with attributes_set(tf.compat.v1.layers, public_names()), deferred_updates(call):
        yield


register(_model_fn_scope)
