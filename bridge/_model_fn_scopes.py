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
from typing import Any, Callable, ContextManager, Iterator

from bridge._extensions import Registry

# bridge.compat is imported (and so registered) before the first model_fn trace.
_factories: Registry[Callable[["ModelFnCall"], ContextManager[Any]]] = Registry(("bridge.compat",))


@dataclasses.dataclass
class ModelFnCall:
    """One model_fn call, as extensions see it."""

    mode: str
    config: Any
    summary_writer: Any = None  # bridge._summaries.SummaryWriter of a chief's TRAIN call, else None
    spec: Any = None  # set once model_fn has returned


def register(factory: Callable[[ModelFnCall], ContextManager[Any]]) -> None:
    """Adds ``factory``; its context manager is entered around every model_fn call (once)."""
    _factories.register(factory)


@contextlib.contextmanager
def model_fn_scopes(call: ModelFnCall) -> Iterator[ModelFnCall]:
    """Enters every registered extension's scope, in registration order, around model_fn."""
    with contextlib.ExitStack() as stack:
        for factory in _factories.items():
            stack.enter_context(factory(call))
        yield call
