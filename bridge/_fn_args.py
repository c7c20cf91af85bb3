"""Which arguments a user callable (model_fn, input_fn, metric_fn) declares."""

from __future__ import annotations

import functools
import inspect
from typing import Callable


def fn_args(fn: Callable) -> tuple[str, ...]:
    """Names of the parameters ``fn`` accepts by name.

    Works for functions, bound methods (``self`` is dropped), objects with ``__call__`` and
    ``functools.partial`` (arguments the partial already binds are not counted).
    ``*args``/``**kwargs`` are not expanded.
    """
    if isinstance(fn, functools.partial):
        bound = set(fn.keywords or {})
        names = fn_args(fn.func)[len(fn.args):]
        return tuple(name for name in names if name not in bound)
    if not inspect.isfunction(fn) and not inspect.ismethod(fn) and callable(fn):
        fn = fn.__call__
    parameters = inspect.signature(fn).parameters.values()
    return tuple(
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
