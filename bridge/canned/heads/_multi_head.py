"""``MultiHead``: several named heads trained together on one network (tf.estimator 2.15 semantics)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import tensorflow as tf

from bridge import export_output
from bridge.canned.heads import _base
from bridge.canned.heads._base import MetricKeys as K
from bridge.estimator_spec import EstimatorSpec
from bridge.mode_keys import ModeKeys


class MultiHead(_base.Head):
    """Sums the (optionally weighted) losses of named heads.

    ``logits`` is a dict keyed by head name, or one tensor whose last dimension is split among the
    heads in order; ``labels`` is a dict keyed by head name. Predictions are keyed
    ``(head_name, key)``; metrics are each head's (suffixed ``/<head_name>``) plus ``loss/<head_name>``.
    The first head serves ``serving_default``; each head's outputs are exported as ``<head_name>`` and
    ``<head_name>/<key>``, and ``predict`` serves every head's predictions.
    """

    def __init__(self, heads: Sequence[_base.Head], head_weights: Sequence[float] | None = None) -> None:
        if not heads:
            raise ValueError(f"Must specify heads. Given: {heads}")
        if head_weights and len(head_weights) != len(heads):
            raise ValueError(
                "heads and head_weights must have the same size. "
                f"Given len(heads): {len(heads)}. Given len(head_weights): {len(head_weights)}.")
        for head in heads:
            if head.name is None:
                raise ValueError(f"All given heads must have name specified. Given: {head}")
        self._heads = tuple(heads)
        self._head_weights = tuple(head_weights) if head_weights else ()

    @property
    def name(self) -> str:
        return "_".join(h.name for h in self._heads)

    @property
    def logits_dimension(self) -> int:
        return sum(h.logits_dimension for h in self._heads)

    @property
    def loss_reduction(self) -> str:
        reductions = [h.loss_reduction for h in self._heads]
        if len(set(reductions)) > 1:
            raise ValueError(f"The loss_reduction must be the same for different heads. Given: {reductions}")
        return reductions[0]

    def _logits_by_head(self, logits: Any) -> dict[str, tf.Tensor]:
        names = [h.name for h in self._heads]
        if isinstance(logits, Mapping):
            missing = sorted(set(names) - set(logits))
            if missing:
                raise ValueError(f"logits has missing values for head(s): {missing}")
            return {name: logits[name] for name in names}
        logits = tf.convert_to_tensor(logits)
        sizes = [h.logits_dimension for h in self._heads]
        if logits.shape[-1] is not None and logits.shape[-1] != sum(sizes):
            raise ValueError(
                f"Could not split logits of shape {logits.shape.as_list()} among the heads with individual logits "
                f"dimensions: {sizes}. The last dimension of the logits tensor should equal {sum(sizes)} but is "
                f"{logits.shape[-1]}.")
        return dict(zip(names, tf.split(logits, sizes, axis=-1)))

    def _check_labels(self, labels: Any) -> None:
        if labels is None:
            return
        if not isinstance(labels, Mapping):
            raise ValueError(f"labels must be a dict. Given: {labels}")
        missing = sorted({h.name for h in self._heads} - set(labels))
        if missing:
            raise ValueError(f"labels has missing values for head(s): {missing}")

    def loss(self, labels, logits, features=None, mode=None, regularization_losses=None):
        self._check_labels(labels)
        by_head = self._logits_by_head(logits)
        losses = [h.loss(labels[h.name], by_head[h.name], features=features, mode=mode) for h in self._heads]
        with tf.name_scope("merge_losses"):
            if self._head_weights:
                losses = [loss * weight for loss, weight in zip(losses, self._head_weights)]
            loss = tf.add_n(losses)
            if regularization_losses:
                loss = loss + tf.add_n(list(regularization_losses))
            return loss

    def predictions(self, logits, keys=None):
        by_head = self._logits_by_head(logits)
        merged = {}
        for head in self._heads:
            for key, value in head.predictions(by_head[head.name]).items():
                merged[(head.name, key)] = value
        return merged

    def metrics(self, regularization_losses=None):
        from bridge.metrics import Mean

        metrics = {f"{K.LOSS}/{h.name}": Mean(name=f"{K.LOSS}/{h.name}") for h in self._heads}
        if regularization_losses:
            metrics[self._summary_key(K.LOSS_REGULARIZATION)] = Mean(name=K.LOSS_REGULARIZATION)
        return metrics

    def update_metrics(self, eval_metrics, features, logits, labels, regularization_losses=None):
        self._check_labels(labels)
        by_head = self._logits_by_head(logits)
        ops = {}
        key = self._summary_key(K.LOSS_REGULARIZATION)
        if regularization_losses and key in eval_metrics:
            ops[key] = _base.feed_values(eval_metrics[key], tf.add_n(list(regularization_losses)))
        for head in self._heads:
            head_loss = head.loss(labels[head.name], by_head[head.name], features=features)
            ops[f"{K.LOSS}/{head.name}"] = _base.feed_values(eval_metrics[f"{K.LOSS}/{head.name}"], head_loss)
            ops.update(head.update_metrics(head.metrics(), features, by_head[head.name], labels[head.name]))
        return ops

    def _export_outputs(self, predictions):
        by_head = {h.name: {k: v for (name, k), v in predictions.items() if name == h.name} for h in self._heads}
        outputs: dict[str, Any] = {}
        merged_predict = {}
        for i, head in enumerate(self._heads):
            for key, output in head._export_outputs(by_head[head.name]).items():  # pylint: disable=protected-access
                if i == 0 and key == _base.DEFAULT_SERVING_KEY:
                    outputs[_base.DEFAULT_SERVING_KEY] = output
                outputs[head.name if key == _base.DEFAULT_SERVING_KEY else f"{head.name}/{key}"] = output
                if key == _base.PREDICT_SERVING_KEY and isinstance(output, export_output.PredictOutput):
                    merged_predict.update({f"{head.name}/{k}": v for k, v in output.outputs.items()})
        outputs[_base.PREDICT_SERVING_KEY] = export_output.PredictOutput(merged_predict)
        return outputs

    def create_estimator_spec(self, features, mode, logits, labels=None, optimizer=None, trainable_variables=None,
                              train_op_fn=None, update_ops=None, regularization_losses=None) -> EstimatorSpec:
        self._check_labels(labels if mode != ModeKeys.PREDICT else None)
        return super().create_estimator_spec(features, mode, logits, labels, optimizer, trainable_variables,
                                             train_op_fn, update_ops, regularization_losses)
