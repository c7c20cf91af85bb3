"""Shared data and helpers for the bridge.metrics tests (no TensorFlow needed here)."""

from __future__ import annotations

import numpy as np
import pytest

try:  # CI profile: hypothesis without deadlines (first calls import numpy paths)
    from hypothesis import settings

    settings.register_profile("bridge-metrics", deadline=None, print_blob=True)
    settings.load_profile("bridge-metrics")
except ImportError:  # pragma: no cover
    pass


def stream(metric, y_true, y_pred, sample_weight=None, batch=97):
    """Feeds the arrays to ``metric`` in batches of ``batch`` rows; returns ``metric.result()``."""
    n = len(y_pred)
    for i in range(0, n, batch):
        sw = None if sample_weight is None else sample_weight[i : i + batch]
        metric.update_state(y_true[i : i + batch], y_pred[i : i + batch], sw)
    return metric.result()


@pytest.fixture
def feed():
    return stream


class Data:
    """Seeded random inputs: binary scores/labels, multi-class logits/probabilities, regression."""

    def __init__(self, seed: int = 0, n: int = 3001, classes: int = 7) -> None:
        rng = np.random.RandomState(seed)
        self.n, self.classes = n, classes
        self.labels = rng.randint(0, 2, n)
        z = rng.randn(n) + 1.2 * self.labels
        self.scores = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        self.weights = rng.rand(n) * 2.0
        self.weights[rng.rand(n) < 0.1] = 0.0
        self.cls = rng.randint(0, classes, n)
        self.logits = (rng.randn(n, classes) + 1.5 * np.eye(classes)[self.cls]).astype(np.float32)
        e = np.exp(self.logits.astype(np.float64) - self.logits.max(1, keepdims=True))
        self.probs = e / e.sum(1, keepdims=True)
        self.target = rng.randn(n).astype(np.float32)
        self.pred = (self.target + 0.5 * rng.randn(n)).astype(np.float32)
        # Coarse scores with many ties.
        self.tied = (np.round(self.scores * 8) / 8).astype(np.float32)


@pytest.fixture(scope="session")
def data() -> Data:
    return Data()
