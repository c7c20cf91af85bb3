"""One traced step: model_fn on the next batch, plus the tensors the hooks fetch.

The step is traced exactly once per Estimator call into a ``tf.function`` concrete function.
Each call consumes the next batch(es) of the dataset iterator it is given.

With ``iterations`` > 1 (``RunConfig(iterations_per_loop=N)``), one call runs up to N steps
in a ``tf.while_loop`` (model_fn is still traced once, inside the loop body) and returns the
last step's values; the loop ends early when the input runs out or the loss is not finite.
The last step's outputs are kept in "stash" variables that belong to the loop, not the model.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops

from bridge._variables import VariableStore
from bridge.hooks import SessionRunContext, SessionRunHook, SessionRunValues

_WRITE_OPS = {"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp"}

Body = Callable[[Any], tuple[Any, dict, Sequence[SessionRunHook]]]


METRIC_PREFIX = "metric/"  # evaluate's output name for eval_metric_ops[key]


@contextlib.contextmanager
def estimator_loss_semantics(strategy: Any) -> Iterator[None]:
    """tf.estimator's loss semantics while model_fn is traced per replica (see docs/design.md).

    * ``spec.loss`` is each replica's mean over its own share of the batch, as written. Keras 3
      loss objects would pre-scale it by 1/num_replicas under tf.distribute (Keras's own
      convention for ``fit``); that scaling is switched off here, so a loss object gives the
      value it gives without a strategy.
    * The gradient applied is the mean of the replicas' gradients: ``bridge.minimize`` scales the
      loss it differentiates by 1/num_replicas, and ``tf.compat.v1.train`` optimizers do the
      same themselves in tf.estimator mode (``_scale_loss_for_estimator_enabled``), which
      tf.estimator also turned on. Cross-replica aggregation then sums the gradients.
    """
    with contextlib.ExitStack() as stack:
        if hasattr(strategy, "_scale_loss_for_estimator_enabled"):
            stack.enter_context(strategy._scale_loss_for_estimator_enabled())  # pylint: disable=protected-access
        try:
            from keras.src.losses import loss as keras_loss
        except ImportError:  # pragma: no cover - Keras internals moved
            keras_loss = None
        saved = {}
        if keras_loss is not None:
            for name in ("scale_loss_for_distribution", "unscale_loss_for_distribution"):
                if hasattr(keras_loss, name):
                    saved[name] = getattr(keras_loss, name)
                    setattr(keras_loss, name, _unchanged)
        try:
            yield
        finally:
            for name, function in saved.items():
                setattr(keras_loss, name, function)


def _unchanged(value: Any) -> Any:
    return value


class InputExhausted(Exception):
    """The step found no more input (the loop ends normally)."""


class TracedStep:
    """Traces ``body`` once and runs it, routing hook fetches in and out.

    ``body(element)`` runs inside the trace on one dataset element and returns ``(spec,
    outputs, hooks)``: the model_fn's EstimatorSpec, a dict of named tensors every call
    returns (the first one is the loss when ``iterations`` > 1), and the hooks of this loop.
    Each hook's ``begin`` and a first ``before_run`` run inside the trace (see bridge.hooks).
    """

    def __init__(
        self, store: VariableStore, iterator: Any, body: Body, iterations: int = 1, strategy: Any = None
    ) -> None:
        self.spec: Any = None
        self.hooks: list[SessionRunHook] = []
        self.output_names: list[str] = []
        self._fetch_index: dict[int, int] = {}
        self._loss_fetches: set[int] = set()  # output positions where a hook fetches spec.loss
        self._fetched: list[Any] = []  # keeps fetched objects alive so their ids stay unique
        self._plans: dict[int, tuple] = {}  # per hook: (fetches, output positions, shape of the result)
        self._store = store
        self._strategy = strategy
        self._iterations = iterations
        # The iterator is an argument, not a capture: the function must not keep the input
        # pipeline alive after close() (see close()).
        self._iterator = iterator
        if iterations == 1:
            self._function = tf.function(
                lambda it: self._trace_outputs(body, next(it)), autograph=False
            ).get_concrete_function(iterator)
        else:
            self._function = tf.function(
                lambda it, n: self._trace_loop(body, it, n), autograph=False
            ).get_concrete_function(iterator, tf.TensorSpec([], tf.int32))
        store.adopt([v for v in self._function.graph.variables if not getattr(v, "_bridge_stash", False)])

    # -- tracing -----------------------------------------------------------------------------
    def _trace_outputs(self, body: Body, element: Any) -> list[tf.Tensor]:
        if self._strategy is None:
            with self._store.scope():
                return self._replica_outputs(body, element)
        with self._strategy.scope(), self._store.scope(), estimator_loss_semantics(self._strategy):
            per_replica = self._strategy.run(lambda e: self._replica_outputs(body, e), args=(element,))
            return [self._reduce(i, value) for i, value in enumerate(per_replica)]

    def _reduce(self, index: int, value: Any) -> tf.Tensor:
        """The loss is averaged over replicas, host-metric inputs concatenated; the rest is replica 0's."""
        if (index == 0 and self.output_names[:1] == ["loss"]) or index in self._loss_fetches:
            return self._strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
        merged = self._merged_metric(index)
        if merged is not None:
            return merged
        local = self._strategy.experimental_local_results(value)
        if index < len(self.output_names) and self.output_names[index].startswith("host/"):
            return tf.concat(local, axis=0)
        return local[0]

    def _merged_metric(self, index: int) -> tf.Tensor | None:
        """A Keras metric object's value over every replica (and worker), or None for other outputs.

        Inside ``strategy.run`` a Keras metric's ``result()`` reads its replica's own state: its
        variables are SyncOnRead. Called again here, in cross-replica context and after every
        replica's update (the reads are created later, so automatic control dependencies order
        them after the updates), it reads the states summed by the strategy. ``tf.compat.v1.metrics``
        already aggregate across replicas in their value tensor, so replica 0's value is right.
        Host metrics (``host/...`` outputs) are merged by the evaluate loop through get_state /
        merge_state, not here.
        """
        if index >= len(self.output_names) or not self.output_names[index].startswith(METRIC_PREFIX):
            return None
        metrics = getattr(self.spec, "eval_metric_ops", None) or {}
        metric = metrics.get(self.output_names[index][len(METRIC_PREFIX):])
        if isinstance(metric, tuple) or not (hasattr(metric, "result") and hasattr(metric, "update_state")):
            return None
        return tf.convert_to_tensor(metric.result())

    def _replica_outputs(self, body: Body, element: Any) -> list[tf.Tensor]:
        """model_fn and hook fetches for one replica; the first replica's spec and hooks are kept.

        Under a strategy every replica runs model_fn and its own hooks' ``begin``/``before_run``
        in the same order, so output positions match across replicas.
        """
        spec, outputs, hooks = body(element)
        first = self.spec is None
        if first:
            self.spec, self.hooks = spec, list(hooks)
            self.output_names = list(outputs)
        flat = [tf.convert_to_tensor(t) for t in outputs.values()]
        seen: set[int] = set()
        for hook in hooks:
            hook.begin()
        context = SessionRunContext()
        for hook in hooks:
            request = hook.before_run(context)
            if request is None:
                continue
            for item in tf.nest.flatten(request.fetches):
                if id(item) in seen:
                    continue
                seen.add(id(item))
                if first:
                    self._fetch_index[id(item)] = len(flat)
                    if item is getattr(spec, "loss", None):  # hooks see the loss every worker sees
                        self._loss_fetches.add(len(flat))
                    self._fetched.append(item)
                flat.append(tf.identity(item))
        return flat

    def _trace_loop(self, body: Body, iterator: Any, n: tf.Tensor) -> list[tf.Tensor]:
        stash: list[tf.Variable] = []

        def run_one(optional):
            flat = self._trace_outputs(body, optional.get_value())
            for tensor in flat:
                with tf.init_scope():
                    variable = resource_variable_ops.ResourceVariable(
                        tf.zeros([], tensor.dtype), shape=tf.TensorShape(None), trainable=False
                    )
                variable._bridge_stash = True
                stash.append(variable)
            assigns = [v.assign(t) for v, t in zip(stash, flat)]
            with tf.control_dependencies(assigns):
                return tf.reduce_all(tf.math.is_finite(tf.cast(flat[0], tf.float32)))

        def cond(done, more):
            return tf.logical_and(done < n, more)

        def loop_body(done, more):
            optional = iterator.get_next_as_optional()
            finite = tf.cond(optional.has_value(), lambda: run_one(optional), lambda: tf.constant(False))
            ran = tf.cast(optional.has_value(), tf.int32)
            return done + ran, tf.logical_and(optional.has_value(), finite)

        done, _ = tf.while_loop(cond, loop_body, [tf.constant(0), tf.constant(True)])
        with tf.control_dependencies([done]):
            return [done] + [v.read_value() for v in stash]

    def close(self) -> None:
        """Drops the traced function, and with it the input iterator it captured.

        Done explicitly at the end of each Estimator call: left to the garbage collector, an
        iterator whose pipeline runs Python code (``tf.numpy_function``) can deadlock the
        interpreter at exit.
        """
        self._function = None
        self._iterator = None
        self._fetched = []
        self._fetch_index = {}

    # -- inspection --------------------------------------------------------------------------
    def written_variables(self, variables: dict[str, tf.Variable]) -> list[str]:
        """Keys of the given variables that the traced step writes to (assignments, optimizer updates)."""
        handle_to_key = {id(v.handle): k for k, v in variables.items()}
        placeholder_to_key = {
            internal.name: handle_to_key[id(external)]
            for external, internal in self._function.graph.captures
            if id(external) in handle_to_key
        }
        written = set()
        for op in self._function.graph.get_operations():
            if op.type in _WRITE_OPS or op.type.startswith(("ResourceApply", "ResourceScatter")):
                key = placeholder_to_key.get(op.inputs[0].name)
                if key is not None:
                    written.add(key)
        return sorted(written)

    # -- running -----------------------------------------------------------------------------
    def run(self, max_iterations: int | None = None) -> tuple[dict[str, Any], SessionRunContext]:
        """Runs one call (one step, or up to ``iterations``) with the hooks.

        Returns the named outputs (numpy) and the run context. Raises ``InputExhausted`` when
        no step could run.
        """
        context = SessionRunContext()
        requests = [hook.before_run(context) for hook in self.hooks]
        if self._iterations == 1:
            try:
                flat = self._function(self._iterator)
            except tf.errors.OutOfRangeError:
                raise InputExhausted from None
        else:
            n = self._iterations if max_iterations is None else max(1, min(self._iterations, max_iterations))
            result = self._function(self._iterator, tf.constant(n, tf.int32))
            if int(result[0]) == 0:  # steps run in this call
                raise InputExhausted
            flat = result[1:]
        cache: dict[int, Any] = {}

        def value(index: int) -> Any:
            if index not in cache:
                cache[index] = flat[index].numpy()
            return cache[index]

        for hook, request in zip(self.hooks, requests):
            results = None
            if request is not None:
                results = self._results_for(hook, request.fetches, value)
            hook.after_run(context, SessionRunValues(results))
        named = {name: value(i) for i, name in enumerate(self.output_names)}
        return named, context

    def _results_for(self, hook: SessionRunHook, fetches: Any, value: Callable[[int], Any]) -> Any:
        """The values of ``fetches``, in its structure.

        Hooks usually return the same fetches object every step, so the output positions are
        worked out once per object (this runs every step, in the Python loop).
        """
        plan = self._plans.get(id(hook))
        if plan is None or plan[0] is not fetches:
            flat = tf.nest.flatten(fetches)
            indices = [self._index_of(hook, item) for item in flat]
            single = len(flat) == 1 and flat[0] is fetches
            keys = None
            if isinstance(fetches, dict) and len(fetches) == len(flat):
                ordered = sorted(fetches)  # tf.nest's order for a dict
                if all(fetches[k] is item for k, item in zip(ordered, flat)):
                    keys = ordered
            plan = (fetches, indices, single, keys)
            self._plans[id(hook)] = plan
        _, indices, single, keys = plan
        if single:
            return value(indices[0])
        if keys is not None:
            return {key: value(index) for key, index in zip(keys, indices)}
        return tf.nest.pack_sequence_as(fetches, [value(index) for index in indices])

    def _index_of(self, hook: SessionRunHook, item: Any) -> int:
        try:
            return self._fetch_index[id(item)]
        except KeyError:
            raise RuntimeError(
                f"{type(hook).__name__}.before_run fetched {item!r}, which it did not fetch while the step "
                "was traced. bridge traces the step once: a hook must return every tensor it may fetch "
                "from its first before_run call (see bridge.hooks)."
            ) from None
