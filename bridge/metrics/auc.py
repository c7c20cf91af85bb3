"""AUC: Keras's thresholded ROC/PR area, or the exact area from every score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bridge.metrics._core import core
from bridge.metrics.base import StreamingMetric, check_positive_int

_EPSILON = 1e-7  # Keras's backend.epsilon(), padding the outer thresholds


class AUC(StreamingMetric):
    """Area under the ROC or precision-recall curve of binary scores.

    ``num_thresholds=200`` (default) reproduces ``keras.metrics.AUC``: scores
    are bucketed on evenly spaced thresholds (float32 arithmetic, like Keras)
    and the curve is summed with ``summation_method``. ``thresholds=[...]`` uses
    those thresholds instead (plus ``-eps`` and ``1 + eps``).

    ``num_thresholds=None`` gives the exact value: every score is kept (8 bytes
    per example, 16 with weights) and sorted when ``result()`` is called. ROC is
    then scikit-learn's ``roc_auc_score`` (ties interpolated) and PR is
    ``average_precision_score`` (step-wise, no interpolation); only
    ``summation_method="interpolation"`` applies. The exact mode ranks scores
    directly, so ``from_logits`` does not change it and scores need not lie in
    [0, 1]. The bucketed mode needs probabilities in [0, 1] unless ``from_logits``.

    ``summation_method="trapezoidal"`` is ``tf.compat.v1.metrics.auc``'s default (what TF1
    heads reported): the trapezoidal rule on rates padded with 1e-6, for ROC and PR alike.

    Undefined areas (no positives, or for ROC no negatives, or no updates) are
    0.0, as Keras returns. 2-D inputs are flattened (``multi_label=False``).

    Args:
        num_thresholds: integer > 1, or None for the exact area.
        curve: ``"ROC"`` or ``"PR"``.
        summation_method: ``"interpolation"``, ``"minoring"``, ``"majoring"`` or ``"trapezoidal"``.
        thresholds: explicit thresholds in [0, 1] (overrides ``num_thresholds``).
        from_logits: apply a sigmoid to ``y_pred`` first.
    """

    _summations = ("interpolation", "minoring", "majoring", "trapezoidal")

    def __init__(self, num_thresholds: int | None = 200, curve: str = "ROC",
                 summation_method: str = "interpolation", name: str = "auc", dtype: Any = None,
                 thresholds: Sequence[float] | None = None, multi_label: bool = False,
                 from_logits: bool = False) -> None:
        curve_u = str(curve).upper()
        if curve_u not in ("ROC", "PR"):
            raise ValueError(f"Invalid `curve` argument value. Expected 'ROC' or 'PR'. Received: curve={curve!r}")
        method = str(summation_method).lower()
        if method not in self._summations:
            raise ValueError(
                "Invalid `summation_method` argument value. Expected one of 'interpolation', 'minoring', "
                f"'majoring', 'trapezoidal'. Received: summation_method={summation_method!r}"
            )
        if multi_label:
            raise ValueError("multi_label=True is not supported by bridge.metrics.AUC; use one AUC per label.")
        self.curve = curve_u
        self.summation_method = method
        self.from_logits = bool(from_logits)
        self.multi_label = False
        self._init_thresholds = None if thresholds is None else [float(t) for t in thresholds]
        if self._init_thresholds is not None:
            t = sorted(self._init_thresholds)
            if not t or not all(0.0 <= v <= 1.0 for v in t):
                raise ValueError(f"Argument `thresholds` must be values in [0, 1]. Received: thresholds={thresholds!r}")
            self.num_thresholds: int | None = len(t) + 2
            self._thresholds = [0.0 - _EPSILON, *t, 1.0 + _EPSILON]
            self._core = core.BinnedCurveState(self._thresholds, uniform=False, from_logits=self.from_logits, name=name)
        elif num_thresholds is None:
            if method != "interpolation":
                raise ValueError(
                    "The exact AUC (num_thresholds=None) only supports summation_method='interpolation'. "
                    f"Received: summation_method={summation_method!r}"
                )
            self.num_thresholds = None
            self._thresholds = []
            self._core = core.ExactCurveState(name=name)
        else:
            n = check_positive_int(num_thresholds, "num_thresholds", minimum=2, per_entry=2)
            self.num_thresholds = n
            inner = [(i + 1) / (n - 1) for i in range(n - 2)]
            self._thresholds = [0.0 - _EPSILON, *inner, 1.0 + _EPSILON]
            self._core = core.BinnedCurveState(self._thresholds, uniform=True, from_logits=self.from_logits, name=name)
        super().__init__(name=name, dtype=dtype)

    @property
    def exact(self) -> bool:
        """True when every score is kept (``num_thresholds=None``)."""
        return self.num_thresholds is None

    @property
    def thresholds(self) -> list[float]:
        """The thresholds of the bucketed mode (empty in exact mode)."""
        return list(self._thresholds)

    def result(self) -> float:
        if self.exact:
            roc, ap = self._core.areas()
            return float(roc if self.curve == "ROC" else ap)
        if self.summation_method == "trapezoidal":
            return self._trapezoidal()
        return float(self._core.result(self.curve, self.summation_method))

    def _trapezoidal(self) -> float:
        """tf.compat.v1.metrics.auc's area (computed here in float64)."""
        tp, fp, tn, fn = (np.asarray(a, np.float64) for a in self._core.confusion())
        eps = 1.0e-6
        recall = (tp + eps) / (tp + fn + eps)
        if self.curve == "ROC":
            x, y = fp / (fp + tn + eps), recall
        else:
            x, y = recall, (tp + eps) / (tp + fp + eps)
        return float(np.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2.0))

    def confusion_at_thresholds(self) -> dict[str, np.ndarray]:
        """Cumulative tp, fp, tn, fn at each threshold (bucketed mode only), as Keras stores them."""
        if self.exact:
            raise ValueError("confusion_at_thresholds() needs a bucketed AUC (num_thresholds not None).")
        tp, fp, tn, fn = self._core.confusion()
        return {"true_positives": tp, "false_positives": fp, "true_negatives": tn, "false_negatives": fn}

    # Exact mode keeps variable-length arrays: they concatenate instead of adding.
    @property
    def _state_names(self) -> tuple[str, ...]:  # type: ignore[override]
        if self.exact:
            return ("positive_scores", "negative_scores", "positive_weights", "negative_weights")
        return ("positive_weights_per_bucket", "negative_weights_per_bucket")

    def _state_shapes(self) -> list[tuple[int, ...]]:
        return [(len(self._thresholds),)] * 2

    def get_state(self) -> dict[str, np.ndarray]:
        """Bucketed: per-bucket weights of positives and negatives (they add across workers).
        Exact: every score and weight, split by label (they concatenate across workers)."""
        if self.exact:
            return dict(self._core.state())
        return super().get_state()

    def set_state(self, state: Any) -> None:
        if self.exact:
            missing = [k for k in self._state_names if k not in state]
            if missing:
                raise ValueError(f"AUC.set_state needs the keys {list(self._state_names)}. Received: keys={sorted(state)}")
            self._core.set_state({k: np.asarray(state[k], dtype=np.float64).ravel() for k in self._state_names})
            return
        super().set_state(state)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_thresholds": self.num_thresholds if self._init_thresholds is None else len(self._init_thresholds) + 2,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "thresholds": None if self._init_thresholds is None else list(self._init_thresholds),
            "multi_label": False,
            "from_logits": self.from_logits,
        }
