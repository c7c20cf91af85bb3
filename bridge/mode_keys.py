"""The three modes a ``model_fn`` is called in, with tf.estimator's string values."""

from __future__ import annotations

__all__ = ["ModeKeys"]


class ModeKeys:
    """String constants naming the Estimator modes.

    The values are the ones tf.estimator used (``PREDICT`` is ``"infer"``), so a
    model_fn comparing ``mode`` against literals keeps working after migration.
    """

    TRAIN: str = "train"
    EVAL: str = "eval"
    PREDICT: str = "infer"
