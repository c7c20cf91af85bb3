"""``tf.compat.v1.estimator``'s canned classes: the TF1 flavour of DNN, Linear, combined and Baseline.

tf.estimator 2.15 exported two sets of canned estimators. ``tf.estimator.DNNClassifier`` (bridge's
``bridge.DNNClassifier``) trains with Keras optimizers and averages the loss over the batch;
``tf.compat.v1.estimator.DNNClassifier`` (this module) is the TF1 estimator the 1.x tutorials
used. Same networks and variable names (``dnn/hiddenlayer_0/kernel``,
``linear/linear_model/<column>/weights``, ``baseline/bias``), but, as measured on 2.15
(tests/fixtures/legacy_2_15/canned/v1_*):

* the training loss is the **sum** over the batch (``loss_reduction=tf.compat.v1.losses.Reduction.SUM``),
  so evaluate's ``loss`` is the mean per-batch sum and ``average_loss`` the per-example mean;
* optimizers are ``tf.compat.v1.train`` ones: a name (``'Adagrad'``, ``'Adam'``, ``'Ftrl'``,
  ``'RMSProp'``, ``'SGD'``) with the estimator's learning rate (DNN 0.05, Linear 0.2, combined
  DNN 0.001 and linear ``min(0.005, 1/sqrt(#columns))``, Baseline 0.3), an instance, or a
  callable returning one;
* their slots are named as TF1 optimizers name them after the (in 2.15 partitioned) variable:
  ``dnn/hiddenlayer_0/kernel/t_0/Adagrad`` in a DNN, ``linear/linear_model/x/weights/part_0/Ftrl``
  (and ``Ftrl_1``) in a linear model, ``<variable>/Adagrad`` and ``<variable>/Ftrl`` in the
  combined model and the baseline; there are no ``training/...`` hyper-parameter variables;
* shared embeddings are trained, under ``dnn/input_from_feature_columns/``;
* a binary classifier's ``auc`` and ``auc_precision_recall`` are ``tf.compat.v1.metrics.auc``'s
  (trapezoidal rule), not Keras's.

A 2.15 model_dir of these classes evaluates, predicts, exports and continues training here with
2.15's numbers. ``input_layer_partitioner`` / ``partitioner`` are accepted and not used (no
partitioned variables on TF2: a model_dir written with several partitions cannot be read).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge.canned import _common, _feature_columns, _summaries
from bridge.canned.baseline import baseline_logits
from bridge.canned.dnn import dnn_network, validate_hidden_units
from bridge.canned.heads import BinaryClassHead, Head, MultiClassHead, RegressionHead
from bridge.canned.heads._base import SUM, example_weights
from bridge.canned.linear import linear_logits
from bridge.mode_keys import ModeKeys

DNN_LEARNING_RATE = 0.05
LINEAR_LEARNING_RATE = 0.2
COMBINED_DNN_LEARNING_RATE = 0.001
COMBINED_LINEAR_LEARNING_RATE = 0.005
BASELINE_LEARNING_RATE = 0.3

# Where 2.15's TF1 optimizers put their slots, relative to the variable they belong to.
DNN_SLOT_PREFIX = "t_0"
LINEAR_SLOT_PREFIX = "part_0"

_OPTIMIZER_NAMES = ("Adagrad", "Adam", "Ftrl", "RMSProp", "SGD")

# tf.compat.v1.losses.Reduction's values -> the heads' (tf.losses.Reduction) names.
_V1_REDUCTIONS = {
    "weighted_sum": SUM,
    "weighted_sum_over_batch_size": "sum_over_batch_size",
    "weighted_mean": "weighted_mean",
    "weighted_sum_by_nonzero_weights": "weighted_sum_by_nonzero_weights",
}
DEFAULT_LOSS_REDUCTION = "weighted_sum"  # tf.compat.v1.losses.Reduction.SUM


def _head_reduction(loss_reduction: Any) -> Any:
    """The head's name for a ``tf.compat.v1.losses.Reduction`` (v2 names pass through)."""
    return _V1_REDUCTIONS.get(loss_reduction, loss_reduction)


def _v1_optimizer_class(name: str) -> type:
    train = tf.compat.v1.train
    return {"Adagrad": train.AdagradOptimizer, "Adam": train.AdamOptimizer, "Ftrl": train.FtrlOptimizer,
            "RMSProp": train.RMSPropOptimizer, "SGD": train.GradientDescentOptimizer}[name]


def resolve_optimizer(optimizer: Any, learning_rate: float, slot_prefix: str | None = None,
                      own_variables_scope: str = "head") -> Any:
    """A ``tf.compat.v1.train.Optimizer`` for this model_fn trace (2.15's rules and messages).

    A given instance is copied without its slots: each trace creates the variables it trains,
    so an instance reused by a later ``train`` call gets that call's variables. The optimizer's
    own variables (Adam's ``beta1_power``...) are named in ``own_variables_scope``, where 2.15's
    TF1 heads created them (``dnn/head/beta1_power``).
    """
    if isinstance(optimizer, str):
        if optimizer not in _OPTIMIZER_NAMES:
            raise ValueError(f"Unsupported optimizer name: {optimizer}. Supported names are: {_OPTIMIZER_NAMES}")
        result = _v1_optimizer_class(optimizer)(learning_rate=learning_rate)
    else:
        if callable(optimizer) and not isinstance(optimizer, tf.compat.v1.train.Optimizer):
            optimizer = optimizer()
        if not isinstance(optimizer, tf.compat.v1.train.Optimizer):
            raise ValueError(
                f"The given object is not an Optimizer instance. Given: {optimizer} (tf.compat.v1.estimator's "
                "canned classes train with tf.compat.v1.train optimizers; tf.estimator's take Keras ones).")
        result = copy.copy(optimizer)
        result._slots = {}  # pylint: disable=protected-access
        result._non_slot_dict = {}  # pylint: disable=protected-access
        result._deferred_slot_restorations = {}  # pylint: disable=protected-access
    if slot_prefix:
        result._name = f"{slot_prefix}/{result._name}"  # pylint: disable=protected-access
    create_own = result._create_non_slot_variable  # pylint: disable=protected-access

    def scoped_name(next_creator, **kwargs):
        return next_creator(**{**kwargs, "name": f"{own_variables_scope}/{kwargs.get('name')}"})

    def create_own_in_scope(initial_value, name, colocate_with):
        with tf.variable_creator_scope(scoped_name):
            return create_own(initial_value, name, colocate_with)

    result._create_non_slot_variable = create_own_in_scope  # pylint: disable=protected-access
    return result


def _minimize(optimizer: Any, loss: tf.Tensor, var_list: Sequence[tf.Variable], global_step: Any) -> Any:
    """``optimizer.minimize`` (call at the top-level variable and name scope: slots are named
    after their variable, ``dnn/logits/kernel/t_0/Adagrad``)."""
    if not var_list:
        raise ValueError("No variables to optimize.")
    return optimizer.minimize(loss, global_step=global_step, var_list=list(var_list))


def _declare_loss_reduction(head: Head) -> None:
    """Records the head's reduction where tf.distribute looks for the last TF1 loss reduction.

    2.15's TF1 heads reduced their loss with ``tf.compat.v1.losses.compute_weighted_loss``, which
    records it: under a distribution strategy a summed loss is then not divided by the number of
    replicas before the gradients are summed, and is reported summed over them.
    """
    v1_name = {v: k for k, v in _V1_REDUCTIONS.items()}.get(head.loss_reduction, head.loss_reduction)
    tf.compat.v1.get_default_graph()._last_loss_reduction = v1_name  # pylint: disable=protected-access


def _average_loss_summary(head: Head, features: Any, logits: tf.Tensor, loss: tf.Tensor) -> None:
    """2.15's TF1 heads with a summed loss wrote ``average_loss``: the loss over the example weights."""
    if head.loss_reduction != SUM or not isinstance(head, (BinaryClassHead, MultiClassHead, RegressionHead)):
        return
    weights = example_weights(features, head._weight_column, logits)  # pylint: disable=protected-access
    examples = tf.cast(tf.shape(logits)[0], tf.float32) if weights is None else tf.reduce_sum(weights)
    losses_per_example = head.logits_dimension if isinstance(head, RegressionHead) else 1
    _summaries.scalar("average_loss", loss / (examples * losses_per_example))


def _spec(head: Head, features: Any, labels: Any, mode: str, logits: tf.Tensor, optimizer: Any,
          learning_rate: float, slot_prefix: str | None, own_variables_scope: str, update_ops: Sequence[Any] = ()):
    """The head's spec, trained by one TF1 optimizer over every trainable variable."""
    _declare_loss_reduction(head)
    train_op_fn = None
    if mode == ModeKeys.TRAIN:
        v1_optimizer = resolve_optimizer(optimizer, learning_rate, slot_prefix, own_variables_scope)

        def train_op_fn(loss):
            _average_loss_summary(head, features, logits, loss)
            return _minimize(v1_optimizer, loss, tf.compat.v1.trainable_variables(),
                             tf.compat.v1.train.get_global_step())

    return head.create_estimator_spec(features=features, mode=mode, logits=logits, labels=labels,
                                      train_op_fn=train_op_fn, update_ops=list(update_ops) or None)


class _V1Estimator(_common.CannedEstimator):
    """A canned TF1 estimator (a ``bridge.Estimator`` with a premade model_fn)."""


def _check_v1_head(head: Any) -> Head:
    return _common.check_head(head)


def _classification_head(n_classes: int, weight_column: Any, label_vocabulary: Any, loss_reduction: Any) -> Head:
    head = _common.classification_head(n_classes, weight_column, label_vocabulary, _head_reduction(loss_reduction))
    if isinstance(head, BinaryClassHead):
        head._auc_summation = "trapezoidal"  # pylint: disable=protected-access  # TF1 heads' AUC
    return head


def _regression_head(label_dimension: int, weight_column: Any, loss_reduction: Any) -> Head:
    return _common.regression_head(label_dimension, weight_column, _head_reduction(loss_reduction))


# -- DNN ------------------------------------------------------------------------------------------


class DNNEstimator(_V1Estimator):
    """``tf.compat.v1.estimator.DNNEstimator``: a feed-forward network with any head, TF1 training.

    Arguments as ``bridge.DNNEstimator``, plus ``input_layer_partitioner`` (accepted, unused); the
    optimizer is a ``tf.compat.v1.train`` one (``'Adagrad'`` with learning rate 0.05 by default).
    """

    def __init__(self, head: Head, hidden_units: Sequence[int], feature_columns: Any, model_dir: Any = None,
                 optimizer: Any = "Adagrad", activation_fn: Callable | None = tf.nn.relu,
                 dropout: float | None = None, input_layer_partitioner: Any = None, config: Any = None,
                 warm_start_from: Any = None, batch_norm: bool = False) -> None:
        del input_layer_partitioner
        head = _check_v1_head(head)
        units = validate_hidden_units(hidden_units)
        columns = _feature_columns.normalize_columns(feature_columns)

        def model_fn(features, labels, mode, config):
            with tf.compat.v1.variable_scope("dnn"):
                logits, update_ops = dnn_network(features, columns, units, head.logits_dimension, activation_fn,
                                                 dropout, batch_norm, mode, summary_prefix="dnn/dnn")
            return _spec(head, features, labels, mode, logits, optimizer, DNN_LEARNING_RATE, DNN_SLOT_PREFIX,
                         "dnn/head", update_ops)

        super().__init__(model_fn, head, model_dir, config, warm_start_from)


class DNNClassifier(DNNEstimator):
    """``tf.compat.v1.estimator.DNNClassifier`` (loss summed over the batch, TF1 optimizers)."""

    def __init__(self, hidden_units: Sequence[int], feature_columns: Any, model_dir: Any = None,
                 n_classes: int = 2, weight_column: Any = None, label_vocabulary: Sequence[str] | None = None,
                 optimizer: Any = "Adagrad", activation_fn: Callable | None = tf.nn.relu,
                 dropout: float | None = None, input_layer_partitioner: Any = None, config: Any = None,
                 warm_start_from: Any = None, loss_reduction: Any = DEFAULT_LOSS_REDUCTION,
                 batch_norm: bool = False) -> None:
        head = _classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(head, hidden_units, feature_columns, model_dir, optimizer, activation_fn, dropout,
                         input_layer_partitioner, config, warm_start_from, batch_norm)


class DNNRegressor(DNNEstimator):
    """``tf.compat.v1.estimator.DNNRegressor`` (loss summed over the batch, TF1 optimizers)."""

    def __init__(self, hidden_units: Sequence[int], feature_columns: Any, model_dir: Any = None,
                 label_dimension: int = 1, weight_column: Any = None, optimizer: Any = "Adagrad",
                 activation_fn: Callable | None = tf.nn.relu, dropout: float | None = None,
                 input_layer_partitioner: Any = None, config: Any = None, warm_start_from: Any = None,
                 loss_reduction: Any = DEFAULT_LOSS_REDUCTION, batch_norm: bool = False) -> None:
        head = _regression_head(label_dimension, weight_column, loss_reduction)
        super().__init__(head, hidden_units, feature_columns, model_dir, optimizer, activation_fn, dropout,
                         input_layer_partitioner, config, warm_start_from, batch_norm)


# -- Linear ---------------------------------------------------------------------------------------


class LinearEstimator(_V1Estimator):
    """``tf.compat.v1.estimator.LinearEstimator``: a linear model with any head, TF1 training.

    ``optimizer``: ``'Ftrl'`` (learning rate 0.2) by default; None gives Ftrl with
    ``min(0.2, 1/sqrt(#columns))``, as in 2.15. ``partitioner`` is accepted and not used.
    """

    def __init__(self, head: Head, feature_columns: Any, model_dir: Any = None, optimizer: Any = "Ftrl",
                 config: Any = None, partitioner: Any = None, sparse_combiner: str = "sum",
                 warm_start_from: Any = None) -> None:
        del partitioner
        head = _check_v1_head(head)
        columns = _feature_columns.normalize_columns(feature_columns)
        if optimizer is None:
            optimizer = lambda: tf.compat.v1.train.FtrlOptimizer(  # noqa: E731 - 2.15's default
                learning_rate=min(LINEAR_LEARNING_RATE, 1.0 / math.sqrt(max(len(columns), 1))))

        def model_fn(features, labels, mode, config):
            logits = linear_logits(features, columns, head.logits_dimension, sparse_combiner,
                                   summary_prefix="linear" if mode == ModeKeys.TRAIN else None)
            return _spec(head, features, labels, mode, logits, optimizer, LINEAR_LEARNING_RATE, LINEAR_SLOT_PREFIX,
                         "linear/head")

        super().__init__(model_fn, head, model_dir, config, warm_start_from)


class LinearClassifier(LinearEstimator):
    """``tf.compat.v1.estimator.LinearClassifier`` (loss summed over the batch, TF1 Ftrl)."""

    def __init__(self, feature_columns: Any, model_dir: Any = None, n_classes: int = 2, weight_column: Any = None,
                 label_vocabulary: Sequence[str] | None = None, optimizer: Any = "Ftrl", config: Any = None,
                 partitioner: Any = None, warm_start_from: Any = None,
                 loss_reduction: Any = DEFAULT_LOSS_REDUCTION, sparse_combiner: str = "sum") -> None:
        head = _classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(head, feature_columns, model_dir, optimizer, config, partitioner, sparse_combiner,
                         warm_start_from)


class LinearRegressor(LinearEstimator):
    """``tf.compat.v1.estimator.LinearRegressor`` (loss summed over the batch, TF1 Ftrl)."""

    def __init__(self, feature_columns: Any, model_dir: Any = None, label_dimension: int = 1,
                 weight_column: Any = None, optimizer: Any = "Ftrl", config: Any = None, partitioner: Any = None,
                 warm_start_from: Any = None, loss_reduction: Any = DEFAULT_LOSS_REDUCTION,
                 sparse_combiner: str = "sum") -> None:
        head = _regression_head(label_dimension, weight_column, loss_reduction)
        super().__init__(head, feature_columns, model_dir, optimizer, config, partitioner, sparse_combiner,
                         warm_start_from)


# -- DNN + linear ---------------------------------------------------------------------------------


class DNNLinearCombinedEstimator(_V1Estimator):
    """``tf.compat.v1.estimator.DNNLinearCombinedEstimator``: wide-and-deep with any head, TF1 training.

    Each part has its own TF1 optimizer (DNN ``'Adagrad'`` 0.001, linear ``'Ftrl'``
    ``min(0.005, 1/sqrt(#linear columns))``); the global step counts once per step.
    """

    def __init__(self, head: Head, model_dir: Any = None, linear_feature_columns: Any = None,
                 linear_optimizer: Any = "Ftrl", dnn_feature_columns: Any = None, dnn_optimizer: Any = "Adagrad",
                 dnn_hidden_units: Sequence[int] | None = None, dnn_activation_fn: Callable | None = tf.nn.relu,
                 dnn_dropout: float | None = None, input_layer_partitioner: Any = None, config: Any = None,
                 linear_sparse_combiner: str = "sum", warm_start_from: Any = None,
                 batch_norm: bool = False) -> None:
        del input_layer_partitioner
        head = _check_v1_head(head)
        linear_columns = _feature_columns.normalize_columns(linear_feature_columns, "linear_feature_columns")
        dnn_columns = _feature_columns.normalize_columns(dnn_feature_columns, "dnn_feature_columns")
        if not linear_columns and not dnn_columns:
            raise ValueError("Either linear_feature_columns or dnn_feature_columns must be defined.")
        units = validate_hidden_units(dnn_hidden_units) if dnn_columns and dnn_hidden_units is not None else None
        linear_rate = min(COMBINED_LINEAR_LEARNING_RATE, 1.0 / math.sqrt(max(len(linear_columns), 1)))

        def model_fn(features, labels, mode, config):
            parts, update_ops = [], []
            if dnn_columns:
                if units is None:
                    raise ValueError("dnn_hidden_units must be defined when dnn_feature_columns is specified.")
                with tf.compat.v1.variable_scope("dnn"):
                    logits, update_ops = dnn_network(features, dnn_columns, units, head.logits_dimension,
                                                     dnn_activation_fn, dnn_dropout, batch_norm, mode,
                                                     summary_prefix="dnn/dnn")
                parts.append(logits)
            if linear_columns:
                training = mode == ModeKeys.TRAIN
                parts.append(linear_logits(features, linear_columns, head.logits_dimension, linear_sparse_combiner,
                                           summary_prefix="linear" if training else None))
                if training:
                    _summaries.layer(parts[-1], "linear/linear")
            logits = tf.add_n(parts) if len(parts) > 1 else parts[0]
            _declare_loss_reduction(head)
            train_op_fn = None
            if mode == ModeKeys.TRAIN:
                optimizers = []
                if dnn_columns:
                    optimizers.append(("dnn", resolve_optimizer(dnn_optimizer, COMBINED_DNN_LEARNING_RATE)))
                if linear_columns:
                    optimizers.append(("linear", resolve_optimizer(linear_optimizer, linear_rate)))

                def train_op_fn(loss):
                    _average_loss_summary(head, features, logits, loss)
                    step = tf.compat.v1.train.get_global_step()
                    ops = [_minimize(opt, loss, _feature_columns.trainable_variables(scope), None)
                           for scope, opt in optimizers]
                    with tf.control_dependencies(ops):
                        return step.assign_add(1, read_value=False)

            return head.create_estimator_spec(features=features, mode=mode, logits=logits, labels=labels,
                                              train_op_fn=train_op_fn, update_ops=update_ops or None)

        super().__init__(model_fn, head, model_dir, config, warm_start_from)


class DNNLinearCombinedClassifier(DNNLinearCombinedEstimator):
    """``tf.compat.v1.estimator.DNNLinearCombinedClassifier`` (loss summed over the batch, TF1 optimizers)."""

    def __init__(self, model_dir: Any = None, linear_feature_columns: Any = None, linear_optimizer: Any = "Ftrl",
                 dnn_feature_columns: Any = None, dnn_optimizer: Any = "Adagrad",
                 dnn_hidden_units: Sequence[int] | None = None, dnn_activation_fn: Callable | None = tf.nn.relu,
                 dnn_dropout: float | None = None, n_classes: int = 2, weight_column: Any = None,
                 label_vocabulary: Sequence[str] | None = None, input_layer_partitioner: Any = None,
                 config: Any = None, warm_start_from: Any = None, loss_reduction: Any = DEFAULT_LOSS_REDUCTION,
                 batch_norm: bool = False, linear_sparse_combiner: str = "sum") -> None:
        head = _classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(head, model_dir, linear_feature_columns, linear_optimizer, dnn_feature_columns,
                         dnn_optimizer, dnn_hidden_units, dnn_activation_fn, dnn_dropout, input_layer_partitioner,
                         config, linear_sparse_combiner, warm_start_from, batch_norm)


class DNNLinearCombinedRegressor(DNNLinearCombinedEstimator):
    """``tf.compat.v1.estimator.DNNLinearCombinedRegressor`` (loss summed over the batch, TF1 optimizers)."""

    def __init__(self, model_dir: Any = None, linear_feature_columns: Any = None, linear_optimizer: Any = "Ftrl",
                 dnn_feature_columns: Any = None, dnn_optimizer: Any = "Adagrad",
                 dnn_hidden_units: Sequence[int] | None = None, dnn_activation_fn: Callable | None = tf.nn.relu,
                 dnn_dropout: float | None = None, label_dimension: int = 1, weight_column: Any = None,
                 input_layer_partitioner: Any = None, config: Any = None, warm_start_from: Any = None,
                 loss_reduction: Any = DEFAULT_LOSS_REDUCTION, batch_norm: bool = False,
                 linear_sparse_combiner: str = "sum") -> None:
        head = _regression_head(label_dimension, weight_column, loss_reduction)
        super().__init__(head, model_dir, linear_feature_columns, linear_optimizer, dnn_feature_columns,
                         dnn_optimizer, dnn_hidden_units, dnn_activation_fn, dnn_dropout, input_layer_partitioner,
                         config, linear_sparse_combiner, warm_start_from, batch_norm)


# -- Baseline -------------------------------------------------------------------------------------


class BaselineEstimator(_V1Estimator):
    """``tf.compat.v1.estimator.BaselineEstimator``: one bias per logit, TF1 Ftrl (learning rate 0.3)."""

    def __init__(self, head: Head, model_dir: Any = None, optimizer: Any = "Ftrl", config: Any = None) -> None:
        head = _check_v1_head(head)

        def model_fn(features, labels, mode, config):
            logits = baseline_logits(features, head.logits_dimension)
            return _spec(head, features, labels, mode, logits, optimizer, BASELINE_LEARNING_RATE, None, "head")

        super().__init__(model_fn, head, model_dir, config, None)


class BaselineClassifier(BaselineEstimator):
    """``tf.compat.v1.estimator.BaselineClassifier``: the training labels' class distribution."""

    def __init__(self, model_dir: Any = None, n_classes: int = 2, weight_column: Any = None,
                 label_vocabulary: Sequence[str] | None = None, optimizer: Any = "Ftrl", config: Any = None,
                 loss_reduction: Any = DEFAULT_LOSS_REDUCTION) -> None:
        head = _classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(head, model_dir, optimizer, config)


class BaselineRegressor(BaselineEstimator):
    """``tf.compat.v1.estimator.BaselineRegressor``: the training labels' mean."""

    def __init__(self, model_dir: Any = None, label_dimension: int = 1, weight_column: Any = None,
                 optimizer: Any = "Ftrl", config: Any = None, loss_reduction: Any = DEFAULT_LOSS_REDUCTION) -> None:
        head = _regression_head(label_dimension, weight_column, loss_reduction)
        super().__init__(head, model_dir, optimizer, config)


__all__ = [
    "BaselineClassifier", "BaselineEstimator", "BaselineRegressor",
    "DNNClassifier", "DNNEstimator", "DNNRegressor",
    "DNNLinearCombinedClassifier", "DNNLinearCombinedEstimator", "DNNLinearCombinedRegressor",
    "LinearClassifier", "LinearEstimator", "LinearRegressor",
]
