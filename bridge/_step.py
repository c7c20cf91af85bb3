"""One traced step: model_fn on the next batch, plus the tensors the hooks fetch.

The step is traced exactly once per Estimator call, into a ``tf.function`` concrete
function with no arguments: the dataset iterator is captured, so each call consumes the
next batch, and an exhausted input surfaces as ``tf.errors.OutOfRangeError``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from bridge._variables import VariableStore
from bridge.hooks import SessionRunContext, SessionRunHook, SessionRunValues


class TracedStep:
    """Traces ``body`` once and runs it, routing hook fetches in and out.

    ``body()`` runs inside the trace and returns ``(spec, outputs, hooks)``: the model_fn's
    EstimatorSpec, a dict of named tensors every call returns, and the hooks of this loop.
    Each hook's ``begin`` and a first ``before_run`` run inside the trace (see bridge.hooks).
    """

    def __init__(self, store: VariableStore, body: Callable[[], tuple[Any, dict, Sequence[SessionRunHook]]]) -> None:
        self.spec: Any = None
        self.hooks: list[SessionRunHook] = []
        self.output_names: list[str] = []
        self._fetch_index: dict[int, int] = {}
        self._fetched: list[Any] = []  # keeps fetched objects alive so their ids stay unique

        def traced() -> list[tf.Tensor]:
            with store.scope():
                spec, outputs, hooks = body()
                self.spec, self.hooks = spec, list(hooks)
                self.output_names = list(outputs)
                flat = [tf.convert_to_tensor(t) for t in outputs.values()]
                for hook in self.hooks:
                    hook.begin()
                context = SessionRunContext()
                for hook in self.hooks:
                    request = hook.before_run(context)
                    if request is not None:
                        for item in tf.nest.flatten(request.fetches):
                            if id(item) not in self._fetch_index:
                                self._fetch_index[id(item)] = len(flat)
                                self._fetched.append(item)
                                flat.append(tf.identity(item))
                return flat

        self._function = tf.function(traced, autograph=False).get_concrete_function()
        store.adopt(list(self._function.graph.variables))

    def run(self) -> tuple[dict[str, Any], SessionRunContext]:
        """Runs one step with the hooks; returns the named outputs (numpy) and the run context.

        Raises ``tf.errors.OutOfRangeError`` when the input is exhausted (no hook sees it).
        """
        context = SessionRunContext()
        requests = [hook.before_run(context) for hook in self.hooks]
        flat = self._function()
        cache: dict[int, Any] = {}

        def value(index: int) -> Any:
            if index not in cache:
                cache[index] = flat[index].numpy()
            return cache[index]

        for hook, request in zip(self.hooks, requests):
            results = None
            if request is not None:
                results = tf.nest.map_structure(lambda item: value(self._index_of(hook, item)), request.fetches)
            hook.after_run(context, SessionRunValues(results))
        named = {name: value(i) for i, name in enumerate(self.output_names)}
        return named, context

    def _index_of(self, hook: SessionRunHook, item: Any) -> int:
        try:
            return self._fetch_index[id(item)]
        except KeyError:
            raise RuntimeError(
                f"{type(hook).__name__}.before_run fetched {item!r}, which it did not fetch while the step "
                "was traced. bridge traces the step once: a hook must return every tensor it may fetch "
                "from its first before_run call (see bridge.hooks)."
            ) from None
