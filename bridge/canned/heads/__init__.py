"""Heads: loss, predictions, metrics and serving outputs of a model's logits (``tf.estimator`` 2.15's).

The canned estimators and users' own model_fns share these classes.
"""

from bridge.canned.heads._base import Head, MetricKeys, PredictionKeys
from bridge.canned.heads._classification import BinaryClassHead, MultiClassHead
from bridge.canned.heads._multi_head import MultiHead
from bridge.canned.heads._multi_label import MultiLabelHead
from bridge.canned.heads._regression import LogisticRegressionHead, PoissonRegressionHead, RegressionHead

__all__ = [
    "BinaryClassHead",
    "Head",
    "LogisticRegressionHead",
    "MetricKeys",
    "MultiClassHead",
    "MultiHead",
    "MultiLabelHead",
    "PoissonRegressionHead",
    "PredictionKeys",
    "RegressionHead",
]
