"""``tf.compat.v1.estimator`` on bridge.

2.15's ``tf.compat.v1.estimator`` differs from ``tf.estimator`` in its canned classes (the TF1
ones: summed loss, ``tf.compat.v1.train`` optimizers; see ``bridge.canned.v1``); every other name
is the same object, here bridge's. ``bridge.install_as_tf_estimator()`` makes
``tf.compat.v1.estimator`` resolve through this module.
"""

from __future__ import annotations

from typing import Any

from bridge.canned.v1 import (
    BaselineClassifier,
    BaselineEstimator,
    BaselineRegressor,
    DNNClassifier,
    DNNEstimator,
    DNNLinearCombinedClassifier,
    DNNLinearCombinedEstimator,
    DNNLinearCombinedRegressor,
    DNNRegressor,
    LinearClassifier,
    LinearEstimator,
    LinearRegressor,
)

V1_NAMES = (
    "BaselineClassifier", "BaselineEstimator", "BaselineRegressor", "DNNClassifier", "DNNEstimator",
    "DNNLinearCombinedClassifier", "DNNLinearCombinedEstimator", "DNNLinearCombinedRegressor", "DNNRegressor",
    "LinearClassifier", "LinearEstimator", "LinearRegressor",
)


def __getattr__(name: str) -> Any:
    """Names 2.15 shared between tf.estimator and tf.compat.v1.estimator: bridge's."""
    if name.startswith("__"):
        raise AttributeError(name)
    import bridge

    try:
        return getattr(bridge, name)
    except AttributeError:
        raise AttributeError(f"module 'bridge.compat.v1.estimator' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    import bridge

    return sorted(set(dir(bridge)) | set(V1_NAMES))


__all__ = list(V1_NAMES)
