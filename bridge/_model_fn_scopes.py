"""The one seam around model_fn: extensions enter their scopes while model_fn is traced.

The runtime knows nothing of what an extension does there. ``bridge.compat`` uses it to make
TF1 constructs (``tf.compat.v1.layers``, v1 summaries, ``init_from_checkpoint``...) work inside
model_fn only: whatever it installs is installed on entry and removed on exit, so nothing is
visible outside a bridge call.

An extension registers a factory ``factory(call) -> context manager``. ``call`` is a
:class:`ModelFnCall`: what the runtime tells about this model_fn call. When model_fn has
returned, ``call.spec`` holds its EstimatorSpec before the scopes exit; an extension may
replace it (e.g. add a training hook) on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from typing import Any, Callable, ContextManager, Iterator

# Extensions shipped with bridge, imported (and so registered) before the first model_fn trace.
_BUILT_IN_EXTENSIONS = ("bridge.compat",)
_factories: list[Callable[["ModelFnCall"], ContextManager[Any]]] = []
_loaded = False


@dataclasses.dataclass
class ModelFnCall:
    """One model_fn call, as extensions see it."""

    mode: str
    config: Any
    summary_writer: Any = None  # bridge._summaries.SummaryWriter of a chief's TRAIN call, else None
    spec: Any = None  # set once model_fn has returned


def register(factory: Callable[[ModelFnCall], ContextManager[Any]]) -> None:
    """Adds ``factory``; its context manager is entered around every model_fn call (once)."""
    if factory not in _factories:
        _factories.append(factory)


def _load_built_in() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in _BUILT_IN_EXTENSIONS:
            importlib.import_module(name)


@contextlib.contextmanager
def model_fn_scopes(call: ModelFnCall) -> Iterator[ModelFnCall]:
    """Enters every registered extension's scope, in registration order, around model_fn."""
    _load_built_in()
    with contextlib.ExitStack() as stack:
        for factory in list(_factories):
            stack.enter_context(factory(call))
        yield call
