"""``bridge.experimental``: tf.estimator 2.15's ``tf.estimator.experimental`` names.

Loaded lazily, like ``bridge`` itself: each name maps to the module that defines it.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_LAZY_NAMES = {
    "make_early_stopping_hook": "bridge.experimental._early_stopping",
    "stop_if_higher_hook": "bridge.experimental._early_stopping",
    "stop_if_lower_hook": "bridge.experimental._early_stopping",
    "stop_if_no_increase_hook": "bridge.experimental._early_stopping",
    "stop_if_no_decrease_hook": "bridge.experimental._early_stopping",
    "make_stop_at_checkpoint_step_hook": "bridge.experimental._early_stopping",
    "InMemoryEvaluatorHook": "bridge.experimental._in_memory_evaluator",
    "build_raw_supervised_input_receiver_fn": "bridge.export",
    "call_logit_fn": "bridge.experimental._logit_fn",
    "dnn_logit_fn_builder": "bridge.canned.dnn",  # tf.compat.v1.estimator.experimental
    "linear_logit_fn_builder": "bridge.canned.linear",  # tf.compat.v1.estimator.experimental
    # bridge's addition (2.15 had it in its early_stopping module, not in the public API)
    "read_eval_metrics": "bridge._eval_events",
}

__all__ = sorted(_LAZY_NAMES)


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bridge.experimental' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
