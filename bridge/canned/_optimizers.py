"""Optimizers of the canned estimators: 2.15's string names and defaults, 2.15's checkpoint state.

``resolve(optimizer, learning_rate)`` turns what a user passes (a name such as ``'Adagrad'``, a
Keras 3 optimizer, or a callable returning one) into a Keras 3 optimizer, with the learning-rate
rules of tf.estimator 2.15 (measured: a name gets the learning rate its estimator passes, or
Keras's default where the estimator passes none).

``apply(optimizer, pairs, global_step)`` builds the training update. For a plain Keras 3
``Adagrad``, ``Adam``, ``Ftrl``, ``RMSprop`` or ``SGD`` it keeps the optimizer state the way the
2.15 canned estimators saved it (Keras 2 "legacy" optimizers): slots named
``training/<Optimizer>/<variable>/<slot>``, hyper-parameters as variables
``training/<Optimizer>/learning_rate`` ..., the iteration count in ``global_step``. The update runs
on TensorFlow's fused training kernels, the ones those optimizers ran, so a model_dir written by
2.15 continues training here to the same numbers. Any other optimizer (or one with clipping,
weight decay, EMA, ...) goes through its own ``apply_gradients`` and keeps Keras 3's state names.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import weakref
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops

from bridge import _name_mapping, _variables

_RESOURCE_VARIABLE_ARGS = set(inspect.signature(resource_variable_ops.ResourceVariable.__init__).parameters) - {"self"}

# 2.15's accepted names -> Keras 3 class name.
_NAMES = {"Adagrad": "Adagrad", "Adam": "Adam", "Ftrl": "Ftrl", "RMSProp": "RMSprop", "SGD": "SGD"}
# Keras 3 class -> the name its Keras 2 counterpart used in checkpoints.
_STATE_NAMES = {"Adagrad": "Adagrad", "Adam": "Adam", "Ftrl": "Ftrl", "RMSprop": "RMSprop", "SGD": "SGD"}


@contextlib.contextmanager
def _own_variables() -> Iterator[None]:
    """Creates the optimizer's own bookkeeping variables directly, outside the model's checkpoint.

    A Keras 3 optimizer makes ``iterations`` and ``learning_rate`` variables when constructed. The
    2.15 state (below) keeps its own copies under 2.15's names, so these must not become
    checkpoint keys; an optimizer that trains through its own ``apply_gradients`` still has its
    variables saved, because the traced step captures them.
    """

    def creator(next_creator, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k in _RESOURCE_VARIABLE_ARGS}
        with tf.init_scope():
            return resource_variable_ops.ResourceVariable(**kwargs)

    with tf.init_scope(), tf.variable_creator_scope(creator):
        yield


def resolve(optimizer: Any, learning_rate: float | None = None) -> Any:
    """A Keras 3 optimizer for what the estimator was given.

    Args:
      optimizer: a name (``'Adagrad'``, ``'Adam'``, ``'Ftrl'``, ``'RMSProp'``, ``'SGD'``), a Keras 3
        optimizer instance, or a callable returning one.
      learning_rate: the learning rate a name gets (None: Keras's default for that optimizer).

    Raises:
      ValueError: an unknown name, or an object that is not an optimizer (2.15's messages).
    """
    import keras

    with _own_variables():
        if isinstance(optimizer, str):
            if optimizer not in _NAMES:
                raise ValueError(
                    f"Unsupported optimizer name: {optimizer}. Supported names are: {tuple(sorted(_NAMES))}"
                )
            cls = getattr(keras.optimizers, _NAMES[optimizer])
            return cls(learning_rate=learning_rate) if learning_rate else cls()
        if callable(optimizer) and not isinstance(optimizer, keras.optimizers.Optimizer):
            optimizer = optimizer()
    # A tf.compat.v1.train optimizer has apply_gradients too; 2.15 refused it here (the v1 classes take it).
    if isinstance(optimizer, tf.compat.v1.train.Optimizer) or (
        not isinstance(optimizer, keras.optimizers.Optimizer) and not hasattr(optimizer, "apply_gradients")
    ):
        raise ValueError(
            f"The given object is not a tf.keras.optimizers.Optimizer instance. Given: {optimizer} "
            "(tf.estimator's canned classes train with Keras optimizers, e.g. keras.optimizers.Adam; "
            "a tf.compat.v1.train optimizer goes to tf.compat.v1.estimator's classes)."
        )
    return optimizer


def linear_learning_rate(num_columns: int, ceiling: float) -> float:
    """2.15's rule for a linear model's default Ftrl: ``min(ceiling, 1 / sqrt(num_columns))``."""
    return min(ceiling, 1.0 / math.sqrt(max(num_columns, 1)))


# -- the 2.15-state update -----------------------------------------------------------------------

_UNSUPPORTED_OPTIONS = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "loss_scale_factor",
                        "gradient_accumulation_steps")


def _keeps_legacy_state(optimizer: Any) -> bool:
    """A plain Keras 3 optimizer whose update the legacy kernels compute exactly."""
    name = type(optimizer).__name__
    if type(optimizer).__module__.split(".")[0] != "keras" or name not in _STATE_NAMES:
        return False
    if any(getattr(optimizer, option, None) for option in _UNSUPPORTED_OPTIONS) or getattr(optimizer, "use_ema", False):
        return False
    return not (name == "Adam" and optimizer.amsgrad)


def _python_float(value: Any) -> float:
    with tf.init_scope():
        return float(tf.convert_to_tensor(value).numpy()) if not isinstance(value, (int, float)) else float(value)


class _LegacyState:
    """Hyper-parameter and slot variables of one optimizer, named as 2.15 saved them."""

    def __init__(self, optimizer: Any, own_iterations: bool, global_step: tf.Variable) -> None:
        self.optimizer = optimizer
        self.kind = type(optimizer).__name__
        self.prefix = f"training/{_STATE_NAMES[self.kind]}"
        self._hypers: dict[str, tf.Variable] = {}
        self.iterations = self._variable("iter", tf.int64, 0) if own_iterations else global_step
        schedule = getattr(optimizer, "_learning_rate", None)
        import keras

        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            self._learning_rate = schedule(self.iterations)
        else:
            self._learning_rate = self._hyper("learning_rate", optimizer.learning_rate)
        self.decay = self._hyper("decay", 0.0)

    def _variable(self, name: str, dtype: Any, value: Any) -> tf.Variable:
        return tf.compat.v1.get_variable(
            f"{self.prefix}/{name}", shape=[], dtype=dtype, initializer=tf.compat.v1.constant_initializer(value),
            trainable=False, use_resource=True,
        )

    def _hyper(self, name: str, value: Any) -> tf.Variable:
        """The hyper-parameter as a variable (created once), as Keras 2 saved it."""
        if name not in self._hypers:
            self._hypers[name] = self._variable(name, tf.float32, _python_float(value))
        return self._hypers[name]

    def slot(self, variable: tf.Variable, name: str, initial: float = 0.0) -> tf.Variable:
        key = variable.name.split(":")[0]
        return tf.compat.v1.get_variable(
            f"{self.prefix}/{key}/{name}", shape=variable.shape, dtype=variable.dtype.base_dtype,
            initializer=tf.compat.v1.constant_initializer(initial), trainable=False, use_resource=True,
        )

    def learning_rate(self) -> tf.Tensor:
        """Keras 2's time-based decay: lr / (1 + decay * iterations)."""
        lr = tf.convert_to_tensor(self._learning_rate, tf.float32)
        return lr / (1.0 + self.decay * tf.cast(self.iterations, tf.float32))


# The own variables (``iterations``, ``learning_rate``) of Keras optimizers whose update runs in
# 2.15's state form: unused, yet saved when model_fn created the optimizer, and absent from a
# 2.15 model_dir. Restoring keeps their values (they outlive the optimizer object in the trace).
_UNUSED_BOOKKEEPING: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()


def _unused_bookkeeping(request: _name_mapping.MappingRequest) -> dict[str, np.ndarray]:
    """Name-mapping seam: values for those bookkeeping variables that a checkpoint lacks."""
    return {key: np.asarray(variable.numpy()) for key, variable in request.missing.items()
            if _UNUSED_BOOKKEEPING.get(id(variable)) is variable}


_name_mapping.register(_unused_bookkeeping)


def note_optimizer(optimizer: Any) -> None:
    """Records an optimizer that trains (or, outside TRAIN, would train) in 2.15's state form."""
    if _keeps_legacy_state(optimizer):
        for variable in optimizer.variables:
            inner = getattr(variable, "value", variable)
            _UNUSED_BOOKKEEPING[id(inner)] = inner


def _dedup(grad: tf.IndexedSlices) -> tuple[tf.Tensor, tf.Tensor]:
    """Sums the rows of repeated indices (the sparse kernels expect unique indices)."""
    unique, positions = tf.unique(grad.indices)
    values = tf.math.unsorted_segment_sum(grad.values, positions, tf.shape(unique)[0])
    return values, unique


def _dense(grad: Any) -> tf.Tensor:
    return tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad


def _adagrad(state: _LegacyState, grad: Any, var: tf.Variable, lr: tf.Tensor) -> tf.Operation:
    opt = state.optimizer
    accum = state.slot(var, "accumulator", _python_float(opt.initial_accumulator_value))
    eps = tf.constant(_python_float(opt.epsilon), var.dtype)
    if isinstance(grad, tf.IndexedSlices):
        values, indices = _dedup(grad)
        return tf.raw_ops.ResourceSparseApplyAdagradV2(
            var=var.handle, accum=accum.handle, lr=lr, epsilon=eps, grad=values, indices=indices)
    return tf.raw_ops.ResourceApplyAdagradV2(var=var.handle, accum=accum.handle, lr=lr, epsilon=eps, grad=grad)


def _ftrl(state: _LegacyState, grad: Any, var: tf.Variable, lr: tf.Tensor) -> tf.Operation:
    opt = state.optimizer
    accum = state.slot(var, "accumulator", _python_float(opt.initial_accumulator_value))
    linear = state.slot(var, "linear")
    l1 = state._hyper("l1_regularization_strength", opt.l1_regularization_strength)
    l2 = state._hyper("l2_regularization_strength", opt.l2_regularization_strength)
    power = state._hyper("learning_rate_power", opt.learning_rate_power)
    beta = state._hyper("beta", opt.beta)
    args = dict(var=var.handle, accum=accum.handle, linear=linear.handle, lr=lr, l1=l1,
                l2=l2 + beta / (2.0 * lr), lr_power=power)
    shrinkage = _python_float(opt.l2_shrinkage_regularization_strength)
    if isinstance(grad, tf.IndexedSlices):
        values, indices = _dedup(grad)
        if shrinkage > 0:
            return tf.raw_ops.ResourceSparseApplyFtrlV2(grad=values, indices=indices, l2_shrinkage=shrinkage, **args)
        return tf.raw_ops.ResourceSparseApplyFtrl(grad=values, indices=indices, **args)
    if shrinkage > 0:
        return tf.raw_ops.ResourceApplyFtrlV2(grad=grad, l2_shrinkage=shrinkage, **args)
    return tf.raw_ops.ResourceApplyFtrl(grad=grad, **args)


def _adam(state: _LegacyState, grad: Any, var: tf.Variable, lr: tf.Tensor) -> tf.Operation:
    opt = state.optimizer
    m, v = state.slot(var, "m"), state.slot(var, "v")
    beta_1 = state._hyper("beta_1", opt.beta_1)
    beta_2 = state._hyper("beta_2", opt.beta_2)
    step = tf.cast(state.iterations + 1, tf.float32)
    return tf.raw_ops.ResourceApplyAdam(
        var=var.handle, m=m.handle, v=v.handle, beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
        lr=lr, beta1=beta_1, beta2=beta_2, epsilon=tf.constant(_python_float(opt.epsilon)), grad=_dense(grad))


def _rmsprop(state: _LegacyState, grad: Any, var: tf.Variable, lr: tf.Tensor) -> tf.Operation:
    opt = state.optimizer
    rms = state.slot(var, "rms")
    rho = state._hyper("rho", opt.rho)
    momentum_value = _python_float(opt.momentum)
    momentum = state._hyper("momentum", momentum_value)
    eps = tf.constant(_python_float(opt.epsilon))
    grad = _dense(grad)
    if momentum_value > 0 or opt.centered:
        mom = state.slot(var, "momentum")
        args = dict(var=var.handle, ms=rms.handle, mom=mom.handle, lr=lr, rho=rho, momentum=momentum,
                    epsilon=eps, grad=grad)
        if opt.centered:
            return tf.raw_ops.ResourceApplyCenteredRMSProp(mg=state.slot(var, "mg").handle, **args)
        return tf.raw_ops.ResourceApplyRMSProp(**args)
    rms_t = rho * rms + (1.0 - rho) * tf.square(grad)
    with tf.control_dependencies([rms.assign(rms_t)]):
        return var.assign_sub(lr * grad / (tf.sqrt(rms_t) + eps), read_value=False)


def _sgd(state: _LegacyState, grad: Any, var: tf.Variable, lr: tf.Tensor) -> tf.Operation:
    opt = state.optimizer
    momentum_value = _python_float(opt.momentum)
    momentum = state._hyper("momentum", momentum_value)
    if momentum_value > 0:
        accum = state.slot(var, "momentum")
        if isinstance(grad, tf.IndexedSlices):
            values, indices = _dedup(grad)
            return tf.raw_ops.ResourceSparseApplyKerasMomentum(
                var=var.handle, accum=accum.handle, lr=lr, grad=values, indices=indices, momentum=momentum,
                use_nesterov=bool(opt.nesterov))
        return tf.raw_ops.ResourceApplyKerasMomentum(
            var=var.handle, accum=accum.handle, lr=lr, grad=grad, momentum=momentum, use_nesterov=bool(opt.nesterov))
    if isinstance(grad, tf.IndexedSlices):
        return tf.raw_ops.ResourceScatterAdd(resource=var.handle, indices=grad.indices, updates=-lr * grad.values)
    return tf.raw_ops.ResourceApplyGradientDescent(var=var.handle, alpha=lr, delta=grad)


_UPDATES: dict[str, Callable[..., tf.Operation]] = {
    "Adagrad": _adagrad, "Ftrl": _ftrl, "Adam": _adam, "RMSprop": _rmsprop, "SGD": _sgd,
}


def apply(
    optimizer: Any,
    loss: tf.Tensor,
    var_list: Sequence[tf.Variable],
    global_step: tf.Variable,
    own_iterations: bool = False,
    increment_global_step: bool = True,
) -> tf.Operation:
    """The op that applies one step of ``optimizer`` to ``loss`` over ``var_list``.

    ``own_iterations``: the optimizer counts its steps in its own ``iter`` variable (2.15's linear
    optimizer in the combined estimator) instead of ``global_step``.
    """
    var_list = list(var_list)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = loss / replicas
    gradients = tf.gradients(loss, var_list)
    pairs = [(g, v) for g, v in zip(gradients, var_list) if g is not None]
    if not pairs:
        raise ValueError(f"No gradients provided for any variable: {[v.name for v in var_list]}.")
    if not _keeps_legacy_state(optimizer):
        _variables.add_state_owner(optimizer)  # its state may map from another optimizer family's checkpoint
        optimizer.apply_gradients(pairs)
        updates = [tf.no_op()]
    else:
        note_optimizer(optimizer)
        context = tf.distribute.get_replica_context()
        if replicas > 1 and context is not None:
            # Each replica applies the same summed gradient to its own copy, so copies stay equal
            # (the gradient of the global-batch mean: each loss was divided by the replicas).
            # Sparse rows differ per replica; the collective needs equal shapes (dense updates of a
            # zero row leave Adagrad/Ftrl/SGD state unchanged, so the result is the same).
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [_dense(g) for g, _ in pairs])
            pairs = list(zip(summed, [v for _, v in pairs]))
        state = _LegacyState(optimizer, own_iterations, global_step)
        lr = state.learning_rate()
        updates = [_UPDATES[state.kind](state, g, v, lr) for g, v in pairs]
        if own_iterations:
            with tf.control_dependencies(updates):
                updates = [state.iterations.assign_add(1, read_value=False)]
    if not increment_global_step:
        return tf.group(*updates)
    with tf.control_dependencies(updates):
        return global_step.assign_add(1, read_value=False)
