"""``call_logit_fn``: calls a logit_fn with the arguments it declares, as tf.estimator did."""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from bridge._fn_args import fn_args


def call_logit_fn(logit_fn: Callable, features: Any, mode: str, params: Any, config: Any) -> Any:
    """``logit_fn(features=..., [mode, params, config])``: the logits, a Tensor or a dict of str -> Tensor.

    Passes ``mode``, ``params`` and ``config`` only when logit_fn declares them; raises
    ValueError when logit_fn returns anything else than logits.
    """
    declared = fn_args(logit_fn)
    kwargs = {name: value for name, value in (("mode", mode), ("params", params), ("config", config)) if name in declared}
    logits = logit_fn(features=features, **kwargs)
    valid_dict = isinstance(logits, dict) and all(
        isinstance(key, str) and isinstance(value, tf.Tensor) for key, value in logits.items()
    )
    if not (valid_dict or isinstance(logits, tf.Tensor)):
        raise ValueError(
            "logit_fn should return a Tensor or a dictionary mapping strings to Tensors.  "
            f"logit_fn returned: {logits}"
        )
    return logits
