"""``add_metrics``: extend an Estimator's evaluation with more metrics, as tf.estimator 2.15 did."""

from __future__ import annotations

from typing import Any, Callable

from bridge._fn_args import fn_args
from bridge.mode_keys import ModeKeys

__all__ = ["add_metrics"]

_METRIC_FN_ARGS = {"features", "labels", "predictions", "config"}


def add_metrics(estimator: Any, metric_fn: Callable[..., dict]) -> Any:
    """A new Estimator whose evaluation also computes ``metric_fn``'s metrics.

    ``metric_fn`` takes any of ``features``, ``labels``, ``predictions`` (the model_fn's
    predictions in EVAL mode) and ``config``, and returns a dict of metric name -> metric (a
    ``(value, update_op)`` pair, a Keras metric object or a ``bridge.metrics`` op). Its metrics
    are added to the model_fn's ``eval_metric_ops``, replacing any of the same name. The new
    Estimator shares ``model_dir``, ``config`` and warm-start settings with ``estimator``; train
    and predict are unchanged.
    """
    from bridge.estimator import Estimator

    unexpected = sorted(set(fn_args(metric_fn)) - _METRIC_FN_ARGS)
    if unexpected:
        raise ValueError(f"metric_fn ({metric_fn}) has following not expected args: {unexpected}")
    model_fn = estimator.model_fn

    def model_fn_with_metrics(features, labels, mode, config):
        spec = model_fn(features, labels, mode, config)
        if mode != ModeKeys.EVAL:
            return spec
        available = {"features": features, "labels": labels, "predictions": spec.predictions, "config": config}
        metrics = metric_fn(**{name: available[name] for name in fn_args(metric_fn)})
        return spec._replace(eval_metric_ops={**(spec.eval_metric_ops or {}), **metrics})

    return Estimator(
        model_fn=model_fn_with_metrics,
        model_dir=estimator.model_dir,
        config=estimator.config,
        warm_start_from=estimator._warm_start_settings,
    )
