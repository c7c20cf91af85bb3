"""Log losses: binary and sparse categorical cross-entropy (Keras semantics)."""

from __future__ import annotations

from typing import Any

from bridge.metrics._mean_based import MeanBased


class BinaryCrossentropy(MeanBased):
    """Mean binary log loss (Keras ``BinaryCrossentropy`` metric).

    ``y_true`` holds 0/1 labels (bool or int) or soft targets in [0, 1] (float).
    Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` like Keras; with
    ``from_logits=True`` the loss is computed from logits without clipping.
    Rows of a 2-D batch are averaged before weighting.

    Args:
        from_logits: ``y_pred`` holds logits instead of probabilities.
        label_smoothing: targets become ``y * (1 - s) + s / 2``.
    """

    _kind = "binary_crossentropy"

    def __init__(self, name: str = "binary_crossentropy", dtype: Any = None, from_logits: bool = False,
                 label_smoothing: float = 0.0) -> None:
        s = float(label_smoothing)
        if not 0.0 <= s <= 1.0:
            raise ValueError(
                f"Argument `label_smoothing` must be in [0, 1]. Received: label_smoothing={label_smoothing!r}"
            )
        self.from_logits = bool(from_logits)
        self.label_smoothing = s
        super().__init__(name=name, dtype=dtype, from_logits=self.from_logits, label_smoothing=s)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class SparseCategoricalCrossentropy(MeanBased):
    """Mean multi-class log loss for integer labels (Keras ``SparseCategoricalCrossentropy`` metric).

    With ``from_logits=True`` the loss is ``logsumexp(row) - row[label]``.
    Otherwise probabilities are clipped to ``[1e-7, 1 - 1e-7]`` and each row is
    renormalised to sum to one, as Keras's TensorFlow backend does.
    """

    _kind = "sparse_crossentropy"

    def __init__(self, name: str = "sparse_categorical_crossentropy", dtype: Any = None,
                 from_logits: bool = False, axis: int = -1) -> None:
        if axis not in (-1, 1):
            raise ValueError(f"Argument `axis` must be -1 (the class axis of a 2-D batch). Received: axis={axis!r}")
        self.from_logits = bool(from_logits)
        super().__init__(name=name, dtype=dtype, from_logits=self.from_logits)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits, "axis": -1}
