"""One traced step: model_fn on the next batch, plus the tensors the hooks fetch.

The step is traced exactly once per Estimator call into a ``tf.function`` concrete function.
Each call consumes the next batch(es) of the dataset iterator it is given.

With ``iterations`` > 1 (``RunConfig(iterations_per_loop=N)``, or grouped steps, see
docs/design.md), one call runs up to N steps in a ``tf.while_loop`` (model_fn is still traced
once, inside the loop body) and returns the last step's values, plus every step's value of the
outputs it collects; the loop ends early when the input runs out or, in training, when the loss
is not finite. Those values are kept in "stash" variables that belong to the loop, not the model.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.python.ops import list_ops, resource_variable_ops

from bridge._prune import (
    WRITE_OP_TYPES,
    captured_from_outside,
    function_without_outputs,
    run_only_needed,
    variable_handles,
    written_resources,
)
from bridge._variables import VariableStore
from bridge.hooks import SessionRunContext, SessionRunHook, SessionRunValues, _as_graph_element

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


def _stash_variable(initial_value: Callable[[], Any], shape: Any = None) -> tf.Variable:
    """A variable of the step's loop (not of the model), created outside the trace."""
    with tf.init_scope():
        variable = resource_variable_ops.ResourceVariable(initial_value(), shape=shape, trainable=False)
    variable._bridge_stash = True
    return variable


class _Collector:
    """Every step's value of one output, in two TensorList variables that outlive the loop.

    Each step pushes its value flattened to 1-D and its shape, so steps whose shapes differ
    (the last, partial batch; a sequence length that changes per batch) collect alike. A
    TensorList is a variant, which a variable can hold; its type is fixed here, once model_fn's
    output is known, which a loop variable's would have to be before the loop is traced.
    """

    def __init__(self, tensor: tf.Tensor) -> None:
        self.dtype, self.rank = tensor.dtype, tensor.shape.rank
        self.values = _stash_variable(lambda: list_ops.empty_tensor_list([-1], self.dtype))
        self.shapes = _stash_variable(lambda: list_ops.empty_tensor_list([self.rank], tf.int64))

    def push(self, tensor: tf.Tensor) -> list[tf.Operation]:
        return [
            self.values.assign(list_ops.tensor_list_push_back(self.values.read_value(), tf.reshape(tensor, [-1]))),
            self.shapes.assign(list_ops.tensor_list_push_back(self.shapes.read_value(), tf.shape(tensor, tf.int64))),
        ]

    def read(self) -> list[tf.Tensor]:
        """This call's values, concatenated (1-D), and the steps' shapes ([steps, rank])."""
        values = list_ops.tensor_list_concat(self.values.read_value(), self.dtype, element_shape=[-1])
        shapes = list_ops.tensor_list_stack(self.shapes.read_value(), tf.int64, element_shape=[self.rank])
        return [values, shapes]

    def empty(self) -> None:
        self.values.assign(list_ops.empty_tensor_list([-1], self.dtype))
        self.shapes.assign(list_ops.empty_tensor_list([self.rank], tf.int64))


def _split_steps(values: np.ndarray, shapes: np.ndarray) -> list[np.ndarray]:
    """Undoes ``_Collector``: one array per step, in its own shape."""
    sizes = np.prod(shapes, axis=1, dtype=np.int64) if shapes.shape[1] else np.ones(len(shapes), np.int64)
    return [part.reshape(shape) for part, shape in zip(np.split(values, np.cumsum(sizes)[:-1]), shapes)]


def _flat_caller(function: Any, iterator: Any, looped: bool, atomic: Any = None) -> Callable[..., list] | None:
    """A fast way to call ``function(iterator[, n])`` many times with the same iterator.

    ``ConcreteFunction.__call__`` binds and flattens its structured arguments on every call,
    which costs about as much as a small training step's Python side. The iterator's flat
    components and the captured variable handles do not change between calls, so they are
    flattened once and the underlying function is called with the flat list. Falls back to the
    public call where TensorFlow's internals differ. ``atomic``: another function taking the same
    flat arguments (``function_without_outputs``), called instead; None where that cannot be done.
    """
    try:
        atomic = atomic or function._inference_function  # pylint: disable=protected-access
        function_type = function.function_type
        sample = (iterator, tf.constant(1, tf.int32)) if looped else (iterator,)
        flat = list(function_type.unpack_inputs(function_type.bind(*sample)))
        prefix, captures = flat[:-1] if looped else flat, list(function.captured_inputs)
        atomic.call_flat  # noqa: B018 - probe
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - other TensorFlow versions
        if atomic is not None:
            return None
        return lambda *n: function(iterator, *(tf.constant(v, tf.int32) for v in n))
    counts: dict[int, tf.Tensor] = {}

    def call(*n: int) -> list:
        if not looped:
            return atomic.call_flat(*prefix, *captures)
        count = counts.get(n[0])
        if count is None:
            count = counts[n[0]] = tf.constant(n[0], tf.int32)
        return atomic.call_flat(*prefix, count, *captures)

    return call


def _fetch_key(item: Any) -> Any:
    """Fetches are told apart by identity; a tensor name (str) by its text."""
    return ("name", item) if isinstance(item, str) else id(item)


# The output a training body may add: the global step read before train_op increments it.
STEP_BEFORE_UPDATE = "global_step_before_update"


def _sees_step_before_update(hook: SessionRunHook) -> bool:
    """Whether ``hook`` fetching the global step gets its value from before the step's update.

    In 2.15 a hook's fetch of the global step ran alongside train_op and read the value the batch
    trained at (0 on the first step), while the increment came later in the same Session.run.
    bridge's own step-keeping hooks are written for the incremented value and say so with
    ``_bridge_fetches_updated_step``.
    """
    return not getattr(hook, "_bridge_fetches_updated_step", False)


def _refuse_feeds(hook: SessionRunHook, request: Any) -> None:
    if getattr(request, "feed_dict", None):
        raise ValueError(
            f"{type(hook).__name__}.before_run returned a feed_dict: TensorFlow 2 has no feeds. Feed data "
            "through input_fn (a tf.data.Dataset), or compute the value inside model_fn."
        )


def _with_gaps(call: Callable[[], list], keep: list[int], size: int) -> Callable[[], list]:
    """``call``'s outputs placed at positions ``keep`` of a list of ``size`` (None elsewhere)."""

    def full() -> list:
        flat: list[Any] = [None] * size
        for position, value in zip(keep, call()):
            flat[position] = value
        return flat

    return full


class InputExhausted(Exception):
    """The step found no more input (the loop ends normally)."""


class CannotGroup(Exception):
    """A collected output has no static rank, so per-step values cannot be told apart."""


class StepRun(NamedTuple):
    """What one call of the traced step returns.

    ``outputs`` holds the last step's value of each named output, except collected outputs,
    which hold the list of every step's value. ``loss_sum`` is the sum of the loss over the
    call's steps when the step sums it, else None.
    """

    outputs: dict[str, Any]
    context: SessionRunContext
    steps: int
    loss_sum: float | None


class TracedStep:
    """Traces ``body`` once and runs it, routing hook fetches in and out.

    ``body(element)`` runs inside the trace on one dataset element and returns ``(spec,
    outputs, hooks)``: the model_fn's EstimatorSpec, a dict of named outputs every call
    returns (the first one is the loss when the step loops and ``sum_loss`` is set), and the
    hooks of this loop. Each hook's ``begin`` and a first ``before_run`` run inside the trace
    (see bridge.hooks). An output or hook fetch that is a ``tf.Operation`` (a ``train_op``)
    is run for its effect and gives None, as ``Session.run`` gave.

    Only what the outputs and the hooks' fetches need runs (``bridge._prune``): an op that
    model_fn built but nothing fetched is not part of the traced function. With
    ``run_model_updates`` (training) every write to a model variable that a Keras 3 object
    created runs as well: Keras 3 layers and optimizers update their own state (a
    BatchNormalization's moving statistics, an optimizer's slots) with no update op that
    model_fn could fetch. Variables of tf.compat.v1 code keep the Session rule: their updates
    run when train_op (or another fetch) depends on them.

    With ``iterations`` > 1 the step is traced inside a ``tf.while_loop`` that runs up to that
    many steps per call (fewer when ``run`` is given ``max_iterations``, the input runs out, or
    the first output is not finite). Outputs named by ``collect`` then come back for every step
    of the call (evaluate's host-metric inputs, predict's predictions); ``sum_loss`` adds up
    the first output over the call's steps.
    """

    def __init__(
        self,
        store: VariableStore,
        iterator: Any,
        body: Body,
        iterations: int = 1,
        strategy: Any = None,
        collect: Callable[[str], bool] | None = None,
        sum_loss: bool = False,
        stop_if_loss_not_finite: bool = False,
        on_session: Callable[[Sequence[SessionRunHook]], None] | None = None,
        run_model_updates: bool = False,
    ) -> None:
        self.spec: Any = None
        self.hooks: list[SessionRunHook] = []
        self.output_names: list[str] = []
        self._fetch_index: dict[Any, int] = {}
        self._step_keys: set[Any] = set()  # fetch keys naming the global step (see _sees_step_before_update)
        self._loss_fetches: set[int] = set()  # output positions where a hook fetches spec.loss
        self._fetched: list[Any] = []  # keeps fetched objects alive so their ids stay unique
        self._plans: dict[int, tuple] = {}  # per hook: (fetches, output positions, shape of the result)
        self._store = store
        self._strategy = strategy
        self._iterations = iterations
        self._collect = collect or (lambda name: False)
        self._sum_loss = sum_loss
        self._stop_if_loss_not_finite = stop_if_loss_not_finite
        self._run_model_updates = run_model_updates
        self._run_only: list[tf.Operation] = []  # operations fetched for their effect (every replica's)
        self._none_outputs: list[str] = []  # names of the outputs that are operations
        self.hidden_ops = 0  # how many ops model_fn built that the step does not run
        self._model_graph: Any = None  # the graph model_fn was traced in
        # Called once with the hooks, between their begin and their first before_run (see
        # _replica_outputs): restores the variables and calls after_create_session.
        self._on_session = on_session
        self._first_run: tuple[SessionRunContext, list] | None = None  # the traced before_run requests
        self._num_outputs = 0  # named outputs plus the hooks' other fetches
        self._collected: set[int] = set()  # positions of the outputs named by ``collect``
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
        if self._on_session is not None:  # under a strategy: after the trace (hooks' order differs there)
            self._on_session(self.hooks)
            self._on_session = None
            self._first_run = None
        self._call = _flat_caller(self._function, iterator, looped=iterations > 1)
        # Hook fetches no named output shares: a call whose hooks do not ask for some of them runs
        # a function without them (one step per call, no strategy: every worker must run the same
        # collectives). See "Only what the outputs need runs" in docs/design.md.
        self._hook_only: set[int] = set()
        if iterations == 1 and strategy is None:
            self._hook_only = set(range(len(self.output_names), self._num_outputs))
        self._variants: dict[frozenset[int], Callable[..., list]] = {}
        # A looped call returns each collected output as two tensors (values, shapes): where
        # each output starts in the call's flat result.
        self._split = self._collected if iterations > 1 else set()
        self._positions: list[int] = []
        offset = 0
        for index in range(self._num_outputs):
            self._positions.append(offset)
            offset += 2 if index in self._split else 1

    @property
    def iterations(self) -> int:
        """The most steps one call runs."""
        return self._iterations

    # -- tracing -----------------------------------------------------------------------------
    def _trace_outputs(self, body: Body, element: Any) -> list[tf.Tensor]:
        graph = tf.compat.v1.get_default_graph()
        first = len(graph.get_operations())
        if self._strategy is None:
            with self._store.scope():
                flat = self._replica_outputs(body, element)
        else:
            with self._strategy.scope(), self._store.scope(), estimator_loss_semantics(self._strategy):
                per_replica = self._strategy.run(lambda e: self._replica_outputs(body, e), args=(element,))
                flat = [self._reduce(i, value) for i, value in enumerate(per_replica)]
        self._run_only_needed(graph, first, flat)
        return flat

    def _run_only_needed(self, graph: Any, first: int, flat: list[tf.Tensor]) -> None:
        """Takes out of the step every op since ``first`` that its outputs do not need (bridge._prune)."""
        local = variable_handles(self._store.local_variables.values())
        also_needed = None
        if self._run_model_updates:
            known = variable_handles(self._store.variables.values())
            keras = variable_handles(self._store.keras_variables.values())

            def also_needed(op, resource_of):
                """A write to a Keras 3 object's model variable, or to a variable the store does not know."""
                for tensor in written_resources(op):
                    handle = resource_of(tensor)
                    if handle is None or id(handle) in keras or id(handle) not in known:
                        return True
                return False

        hidden = run_only_needed(graph, first, flat + self._run_only, ordered_handles=local, also_needed=also_needed)
        self.hidden_ops += len(hidden)

    def _reduce(self, index: int, value: Any) -> tf.Tensor:
        """The loss is averaged over replicas (summed when model_fn's last TF1 loss reduction was
        SUM, as tf.estimator reported it), host-metric inputs concatenated; the rest is replica 0's."""
        if (index == 0 and self.output_names[:1] == ["loss"]) or index in self._loss_fetches:
            last = getattr(tf.compat.v1.get_default_graph(), "_last_loss_reduction", None)
            op = tf.distribute.ReduceOp.SUM if last in ("weighted_sum", "sum") else tf.distribute.ReduceOp.MEAN
            return self._strategy.reduce(op, value, axis=None)
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
            self._model_graph = tf.compat.v1.get_default_graph()
            self.spec, self.hooks = spec, list(hooks)
        operations = {name: value for name, value in outputs.items() if isinstance(value, tf.Operation)}
        if operations:
            self._run_only.extend(operations.values())
            outputs = {name: value for name, value in outputs.items() if name not in operations}
        if first:
            self._none_outputs = list(operations)
            self.output_names = list(outputs)
            self._collected = {i for i, name in enumerate(self.output_names) if self._collect(name)}
        values = list(outputs.values())
        flat = [tf.convert_to_tensor(t) for t in values]
        seen: set[Any] = set()
        names = list(outputs)
        step_at = before_at = None
        if "global_step" in names and STEP_BEFORE_UPDATE in names:
            step_at, before_at = names.index("global_step"), names.index(STEP_BEFORE_UPDATE)
        for hook in hooks:
            hook.begin()
        if first and self._on_session is not None and self._strategy is None:
            with tf.init_scope():  # eager: restore, then hooks' after_create_session
                self._on_session(self.hooks)
            self._on_session = None
        context = SessionRunContext()
        requests = [hook.before_run(context) for hook in hooks]
        if first:
            self._first_run = (context, requests)  # the first run's before_run is this one
        for hook, request in zip(hooks, requests):
            if request is None:
                continue
            _refuse_feeds(hook, request)
            for item in tf.nest.flatten(request.fetches):
                key = _fetch_key(item)
                if isinstance(item, str):  # a tensor's name, as Session.run accepted it
                    item = _as_graph_element(item)
                if step_at is not None and values[step_at] is item and _sees_step_before_update(hook):
                    self._step_keys.add(key)
                    key, item = ("before", key), values[before_at]
                if key in seen:
                    continue
                seen.add(key)
                if isinstance(item, tf.Operation):  # run for its effect; the hook gets None
                    self._run_only.append(item)
                    if first:
                        self._fetch_index[key] = -1
                        self._fetched.append(item)
                    continue
                existing = next((i for i, value in enumerate(values) if value is item), None)
                if existing is not None:  # already an output (the loss, the global step)
                    if first:
                        self._fetch_index[key] = existing
                        self._fetched.append(item)
                    continue
                if first:
                    self._fetch_index[key] = len(flat)
                    if item is getattr(spec, "loss", None):  # hooks see the loss every worker sees
                        self._loss_fetches.add(len(flat))
                    self._fetched.append(item)
                flat.append(tf.identity(item))
        if first:
            self._num_outputs = len(flat)
        return flat

    def _trace_loop(self, body: Body, iterator: Any, n: tf.Tensor) -> list[tf.Tensor]:
        """Up to ``n`` steps in a while_loop; returns [steps run, loss sum, outputs..., collected...].

        The loop cannot carry the outputs as loop variables: their types are known only once
        model_fn is traced, inside the loop body. The last step's values go to "stash" variables
        instead, and collected outputs to TensorList variables (``_Collector``), emptied at the
        end of each call.
        """
        stash: dict[int, tf.Variable] = {}
        lists: dict[int, _Collector] = {}

        def run_one(optional, done):
            # model_fn sees the root name scope, as without the loop ("while/cond/" would
            # otherwise prefix the checkpoint keys of variables named by their scope).
            with tf.compat.v1.get_default_graph().name_scope(""):
                flat = self._trace_outputs(body, optional.get_value())
            if not stash and not lists:
                for index, tensor in enumerate(flat):
                    if index in self._collected:
                        if tensor.shape.rank is None:
                            raise CannotGroup(self.output_names[index])
                        lists[index] = _Collector(tensor)
                    else:
                        stash[index] = _stash_variable(lambda dtype=tensor.dtype: tf.zeros([], dtype), shape=tf.TensorShape(None))
            writes = [stash[i].assign(t) for i, t in enumerate(flat) if i in stash]
            for index, collector in lists.items():
                writes.extend(collector.push(flat[index]))
            with tf.control_dependencies(writes):
                loss = tf.cast(flat[0], tf.float64) if self._sum_loss else tf.constant(0.0, tf.float64)
                go_on = tf.constant(True)
                if self._stop_if_loss_not_finite:
                    go_on = tf.reduce_all(tf.math.is_finite(tf.cast(flat[0], tf.float32)))
                return go_on, tf.reduce_sum(loss)

        def cond(done, more, loss_sum):
            return tf.logical_and(done < n, more)

        def loop_body(done, more, loss_sum):
            optional = iterator.get_next_as_optional()
            finite, loss = tf.cond(
                optional.has_value(),
                lambda: run_one(optional, done),
                lambda: (tf.constant(False), tf.constant(0.0, tf.float64)),
            )
            ran = tf.cast(optional.has_value(), tf.int32)
            return done + ran, tf.logical_and(optional.has_value(), finite), loss_sum + loss

        done, _, loss_sum = tf.while_loop(
            cond, loop_body, [tf.constant(0), tf.constant(True), tf.constant(0.0, tf.float64)]
        )
        results = [done, loss_sum]
        with tf.control_dependencies([done]):
            for index in range(len(stash) + len(lists)):
                if index in stash:
                    results.append(stash[index].read_value())
                    continue
                results.extend(lists[index].read())
        # Empty the lists for the next call once they are read (ordered after the reads by the
        # automatic control dependencies on each list variable).
        for collector in lists.values():
            collector.empty()
        return results

    def rebind(self, iterator: Any) -> None:
        """Runs the traced function over ``iterator`` from now on (None: none until the next rebind).

        ``iterator`` iterates the same dataset (same element spec) as the traced one: a repeated
        evaluation (``bridge._eval_predict.TracedEvaluation``) runs the same function again.
        """
        self._iterator = iterator
        self._variants = {}
        self._first_run = None
        self._call = None if iterator is None else _flat_caller(self._function, iterator, looped=self._iterations > 1)

    def begin_again(self, after_begin: Callable[[Sequence[SessionRunHook]], None]) -> bool:
        """Starts the hooks again for another pass of the same traced function (after ``rebind``).

        As a new Session did: each hook's ``begin`` (in the graph model_fn was traced in, so
        lookups by name find the traced tensors), ``after_begin(hooks)`` (after_create_session),
        and the first ``before_run``. False when a hook now asks for a fetch the trace does not
        return (one it built anew): the caller must trace again.
        """
        graph = self._model_graph or self._function.graph
        with graph.as_default():
            for hook in self.hooks:
                hook.begin()
        after_begin(self.hooks)
        context = SessionRunContext()
        with graph.as_default():
            requests = [hook.before_run(context) for hook in self.hooks]
        for hook, request in zip(self.hooks, requests):
            if request is None:
                continue
            _refuse_feeds(hook, request)
            if any(_fetch_key(item) not in self._fetch_index for item in tf.nest.flatten(request.fetches)):
                return False
        self._first_run = (context, requests)
        return True

    def close(self) -> None:
        """Drops the traced function, and with it the input iterator it captured.

        Done explicitly at the end of each Estimator call: left to the garbage collector, an
        iterator whose pipeline runs Python code (``tf.numpy_function``) can deadlock the
        interpreter at exit.
        """
        self._function = None
        self._iterator = None
        self._variants = {}
        self._fetched = []
        self._fetch_index = {}

    # -- inspection --------------------------------------------------------------------------
    def written_variables(self, variables: dict[str, tf.Variable]) -> list[str]:
        """Keys of the given variables that the traced step writes to (assignments, optimizer updates).

        Looks at the graph model_fn was traced in (inside the step's loop, when it has one) and
        follows each written handle through the captures of the enclosing graphs to the variable.
        """
        handle_to_key = {id(v.handle): k for k, v in variables.items()}
        graph = self._model_graph or self._function.graph
        captures = {id(internal): external for external, internal in graph.captures}
        written = set()
        for op in graph.get_operations():  # the ops the step runs (bridge._prune hid the others)
            if op.type in WRITE_OP_TYPES or op.type.startswith(("ResourceApply", "ResourceScatter")):
                key = handle_to_key.get(id(captured_from_outside(graph, op.inputs[0], captures)))
                if key is not None:
                    written.add(key)
        return sorted(written)

    # -- running -----------------------------------------------------------------------------
    def run(self, max_iterations: int | None = None, grouped: bool = False) -> StepRun:
        """Runs one call (one step, or up to ``iterations``) with the hooks.

        ``grouped`` tells the hooks (``run_context.steps``) how many steps the call covered;
        otherwise each call counts as one run, as TPUEstimator's loops did. Raises
        ``InputExhausted`` when no step could run.
        """
        if self._first_run is not None:
            context, requests = self._first_run
            self._first_run = None
        else:
            context = SessionRunContext()
            requests = [hook.before_run(context) for hook in self.hooks]
            for hook, request in zip(self.hooks, requests):
                if request is not None:
                    _refuse_feeds(hook, request)
        if self._iterations == 1:
            omitted = self._unrequested(requests) if self._hook_only else frozenset()
            try:
                flat = self._call_without(omitted) if omitted else self._call()
            except tf.errors.OutOfRangeError:
                raise InputExhausted from None
            steps, loss_sum = 1, None
        else:
            n = self._iterations if max_iterations is None else max(1, min(self._iterations, max_iterations))
            result = self._call(n)
            steps = int(result[0])
            if steps == 0:
                raise InputExhausted
            loss_sum = float(result[1]) if self._sum_loss else None
            flat = result[2:]
        if grouped:
            context.steps = steps
        values = self._values(flat)
        for hook, request in zip(self.hooks, requests):
            results = None
            if request is not None:
                results = self._results_for(hook, request.fetches, values)
            hook.after_run(context, SessionRunValues(results))
        named = {name: values(i) for i, name in enumerate(self.output_names)}
        for name in self._none_outputs:
            named[name] = None
        if self._iterations == 1:
            for index in self._collected:
                named[self.output_names[index]] = [named[self.output_names[index]]]
            if self._sum_loss:
                loss_sum = float(named[self.output_names[0]])
        return StepRun(named, context, steps, loss_sum)

    def _unrequested(self, requests: Sequence[Any]) -> frozenset[int]:
        """The hook-only outputs that no hook fetches on this call."""
        wanted = set()
        for request in requests:
            if request is not None:
                wanted.update(self._fetch_index.get(_fetch_key(item)) for item in tf.nest.flatten(request.fetches))
        return frozenset(self._hook_only - wanted)

    def _call_without(self, omitted: frozenset[int]) -> list:
        """One call of the step without the outputs ``omitted`` (None in their places)."""
        call = self._variants.get(omitted)
        if call is None:
            keep = [i for i in range(self._num_outputs) if i not in omitted]
            try:
                atomic = self._function._inference_function  # pylint: disable=protected-access
                name = f"{atomic.name.decode() if isinstance(atomic.name, bytes) else atomic.name}_without_{len(self._variants)}"
                variant = function_without_outputs(self._function.graph, keep, name)
                call = _flat_caller(self._function, self._iterator, looped=False, atomic=variant)
            except (AttributeError, TypeError, ValueError, ImportError):  # pragma: no cover - TF internals moved
                call = None
            if call is None:  # pragma: no cover
                call = self._variants[omitted] = lambda: self._call()
                return call()
            self._variants[omitted] = call = _with_gaps(call, keep, self._num_outputs)
        return call()

    def _values(self, flat: Sequence[Any]) -> Callable[[int], Any]:
        """Output position -> numpy value, converted once; collected outputs as per-step lists."""
        cache: dict[int, Any] = {}

        def value(index: int) -> Any:
            if index < 0:  # a fetched operation
                return None
            if index not in cache:
                at = self._positions[index]
                if index in self._split:
                    cache[index] = _split_steps(flat[at].numpy(), flat[at + 1].numpy())
                else:
                    cache[index] = flat[at].numpy()
            return cache[index]

        return value

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
        key = _fetch_key(item)
        if key in self._step_keys and _sees_step_before_update(hook):
            key = ("before", key)
        try:
            return self._fetch_index[key]
        except KeyError:
            raise RuntimeError(
                f"{type(hook).__name__}.before_run fetched {item!r}, which it did not fetch while the step "
                "was traced. bridge traces the step once: a hook must return every tensor it may fetch "
                "from its first before_run call (see bridge.hooks)."
            ) from None
