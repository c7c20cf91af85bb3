"""Attributes set on TensorFlow's module objects for the duration of one model_fn call.

TensorFlow 2.16+ answers ``tf.compat.v1.layers.dense`` with "not available with Keras 3".
While bridge traces a model_fn, compat sets the missing names on those module objects (the
same objects that ``import tensorflow.compat.v1 as tf`` or ``layers = tf.compat.v1.layers``
captured), and removes them when model_fn returns: outside a bridge call TensorFlow looks
exactly as it does without bridge.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, Mapping

_MISSING = object()
_lock = threading.Lock()
_depth: dict[tuple[int, str], int] = {}
_previous: dict[tuple[int, str], Any] = {}


def _is_api_wrapper(target: Any) -> bool:
    """TensorFlow's API module wrapper (``tf.compat.v1.data``, ``tf.compat.v1.train``, ...).

    It caches what it hands out, so a name is set through its ``setattr`` (which updates the
    wrapped module and the cache), never only in its ``__dict__``.
    """
    return not isinstance(target, type) and "_tfmw_wrapped_module" in vars(target)


def _current(target: Any, name: str) -> Any:
    if _is_api_wrapper(target):
        return getattr(vars(target)["_tfmw_wrapped_module"], name, _MISSING)
    return vars(target).get(name, _MISSING)


def _put(target: Any, name: str, value: Any) -> None:
    if isinstance(target, type) or _is_api_wrapper(target):  # a class's __dict__ is read-only
        setattr(target, name, value)
    else:
        vars(target)[name] = value


def _remove(target: Any, name: str) -> None:
    if isinstance(target, type) or _is_api_wrapper(target):
        delattr(target, name)
    else:
        vars(target).pop(name, None)


@contextlib.contextmanager
def attributes_set(target: Any, values: Mapping[str, Any]) -> Iterator[None]:
    """Sets ``values`` as attributes of ``target`` (a module or module-like object) while open.

    Written straight into a module's ``__dict__``: TensorFlow's lazy module loaders would
    otherwise import (and, for Keras 3's missing legacy modules, refuse) on assignment. Classes
    and TensorFlow's API module wrappers are set through ``setattr`` (see ``_is_api_wrapper``).
    Nested or concurrent openings on the same names are counted: the names go away (or get
    their previous values back) when the outermost opening closes.
    """
    with _lock:
        for name, value in values.items():
            key = (id(target), name)
            if _depth.get(key, 0) == 0:
                _previous[key] = _current(target, name)
                _put(target, name, value)
            _depth[key] = _depth.get(key, 0) + 1
    try:
        yield
    finally:
        with _lock:
            for name in values:
                key = (id(target), name)
                _depth[key] -= 1
                if _depth[key] == 0:
                    del _depth[key]
                    old = _previous.pop(key)
                    if old is _MISSING:
                        _remove(target, name)
                    else:
                        _put(target, name, old)
