"""What the canned estimators share: their heads and how they become an ``Estimator``."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge._api_names import api_name
from bridge.canned import _optimizers
from bridge.canned.heads import BinaryClassHead, Head, MultiClassHead, RegressionHead
from bridge.canned.heads._base import SUM_OVER_BATCH_SIZE
from bridge.estimator import Estimator
from bridge.mode_keys import ModeKeys


def classification_head(n_classes: int, weight_column: Any, label_vocabulary: Sequence[str] | None,
                        loss_reduction: str) -> Head:
    """2.15's rule: two classes get one logit and a sigmoid, more get a softmax."""
    if n_classes == 2:
        return BinaryClassHead(weight_column=weight_column, label_vocabulary=label_vocabulary,
                               loss_reduction=loss_reduction)
    return MultiClassHead(n_classes, weight_column=weight_column, label_vocabulary=label_vocabulary,
                          loss_reduction=loss_reduction)


def regression_head(label_dimension: int, weight_column: Any, loss_reduction: str) -> Head:
    return RegressionHead(label_dimension=label_dimension, weight_column=weight_column, loss_reduction=loss_reduction)


def check_head(head: Any) -> Head:
    if not isinstance(head, Head):
        raise TypeError(f"head must be a {api_name('Head')} (e.g. {api_name('BinaryClassHead')}()). Given: {head!r}")
    return head


def spec_with_optimizer(head: Head, features: Any, labels: Any, mode: str, logits: tf.Tensor, optimizer: Any,
                        learning_rate: float | None, trainable: Sequence[tf.Variable],
                        update_ops: Sequence[Any] = ()):
    """The head's spec, training ``trainable`` with one optimizer that counts in ``global_step``."""
    train_op_fn = None
    if mode == ModeKeys.TRAIN:
        keras_optimizer = _optimizers.resolve(optimizer, learning_rate)

        def train_op_fn(loss):
            with tf.name_scope("training"):
                return _optimizers.apply(keras_optimizer, loss, trainable, tf.compat.v1.train.get_global_step())

    return head.create_estimator_spec(features=features, mode=mode, logits=logits, labels=labels,
                                      train_op_fn=train_op_fn, update_ops=list(update_ops) or None)


class CannedEstimator(Estimator):
    """An ``Estimator`` whose model_fn is a premade network over feature columns and a head."""

    _bridge_allows_overrides = True  # exempt from Estimator's no-override rule, as 2.15's canned classes

    def __init__(self, model_fn: Callable, head: Head, model_dir: Any, config: Any, warm_start_from: Any) -> None:
        self._head = head
        super().__init__(model_fn=model_fn, model_dir=model_dir, config=config, warm_start_from=warm_start_from)


DEFAULT_LOSS_REDUCTION = SUM_OVER_BATCH_SIZE
