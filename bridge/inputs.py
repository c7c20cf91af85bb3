"""``bridge.inputs``: the path of ``tf.estimator.inputs`` / ``tf.compat.v1.estimator.inputs``."""

from bridge.compat.inputs import numpy_input_fn, pandas_input_fn

__all__ = ["numpy_input_fn", "pandas_input_fn"]
