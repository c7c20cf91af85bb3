"""The model_fn's state: variables created once per Estimator call, during its single trace.

Keras 3 layers and optimizers create their variables lazily, the first time they run. A
classic model_fn builds those objects inside itself, so they come into being while bridge
traces the step function. ``VariableStore.scope()`` intercepts every ``tf.Variable`` creation
in that trace and creates the variable *eagerly* instead (under ``tf.init_scope``), outside
the ``tf.function``. The traced graph then only captures handles to them, so tf.function never
sees a variable being created, traces exactly once, and the variables live as long as the
Estimator call that owns the store.

Each variable gets a stable checkpoint key: the Keras path when Keras created it
(``dense/kernel``, ``adam/iteration``), else the TensorFlow name scope and name. Keras's
automatic layer names ("dense", "dense_1", ...) restart for every trace, as names restarted
with every new graph in tf.estimator, so train, evaluate and predict see the same keys.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import inspect
import re
import sys
import threading
from typing import Any, Callable, Iterator, Mapping

import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops

GLOBAL_STEP_KEY = "global_step"
_RESOURCE_VARIABLE_ARGS = set(inspect.signature(resource_variable_ops.ResourceVariable.__init__).parameters) - {"self"}


def _create_eagerly(kwargs: dict[str, Any], strategy: Any) -> tf.Variable:
    """Creates the variable in the eager context, outside every function being traced.

    The creator stack inside a trace (and inside while/cond bodies) only holds TensorFlow's
    "no variables here" guards, so the variable is built directly; under a distribution
    strategy it is built in the strategy's scope, which makes it a distributed variable.
    """
    kwargs = {k: v for k, v in kwargs.items() if k in _RESOURCE_VARIABLE_ARGS}
    kwargs["experimental_enable_variable_lifting"] = False
    with tf.init_scope(), tf.compat.v1.name_scope(None):  # the name given is the whole name
        if strategy is None:
            return resource_variable_ops.ResourceVariable(**kwargs)
        with strategy.scope():
            return tf.Variable(**kwargs)


def _replica_context() -> Any:
    """The replica context of ``strategy.run`` while a strategy traces model_fn, else None.

    Also with one replica in sync (a one-device MirroredStrategy, a one-worker cluster): the
    strategy's scope cannot be re-entered from inside ``strategy.run`` either way.
    """
    context = tf.distribute.get_replica_context()
    if context is None or not tf.distribute.has_strategy():
        return None
    return context


def _keras_path() -> str | None:
    """The Keras path of a variable being created, under the TF name scope Keras was entered in.

    Keras 3 names a layer's variables by its own path ("sequential/dense"); the TensorFlow name
    scopes around the outermost layer call (``tf.name_scope``, ``tf.compat.v1.variable_scope``)
    are not part of it. tf.estimator 2.15 (Keras 2, graph names) kept them ("net/sequential/
    dense/kernel"), so they are put back: each Keras scope entered one TF name scope, so the
    graph's name scope minus that many trailing components is what enclosed the Keras calls.
    """
    try:
        from keras.src.backend.common import global_state
        from keras.src.backend.common.name_scope import current_path
    except ImportError:  # pragma: no cover - Keras internals moved
        return None
    path = current_path()
    if not path:
        return None
    stack = global_state.get_global_attribute("name_scope_stack") or []
    keras_scopes = sum(1 for entry in stack if getattr(entry, "_pop_on_exit", False) and hasattr(entry, "_tf_name_scope"))
    graph_scope = tf.compat.v1.get_default_graph().get_name_scope()
    parts = graph_scope.split("/") if graph_scope else []
    outer = parts[: max(0, len(parts) - keras_scopes)]
    return "/".join([*outer, path])


@contextlib.contextmanager
def _fresh_keras_names() -> Iterator[None]:
    """Restart Keras's automatic object names ("dense", "dense_1", ...) for one trace."""
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - Keras internals moved
        yield
        return
    saved = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", saved)


def _tf_keras_path() -> str | None:
    """The layer path ("sequential/dense") when tf_keras (``TF_USE_LEGACY_KERAS=1``) creates the
    variable, "" when tf_keras creates it outside a layer (an optimizer), None otherwise.

    tf.estimator 2.15 built model_fn in a graph, where tf.keras named a variable by the name
    scopes of the layers being called ("sequential/dense/kernel"); tf_keras inside a
    ``tf.function`` uses the innermost layer's name only. The layers being called are on the
    Python stack, outermost last. tf_keras' legacy ``tf.compat.v1.layers`` are named by their
    variable scopes instead (None).
    """
    if "tf_keras" not in sys.modules:
        return None
    layers: list[Any] = []
    found = False
    frame: Any = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("tf_keras."):
            if "legacy_tf_layers" in module:
                return None
            found = True
            layer = frame.f_locals.get("self") if frame.f_code.co_name == "__call__" else None
            if layer is not None and hasattr(layer, "_maybe_build") and all(layer is not seen for seen in layers):
                layers.append(layer)
        frame = frame.f_back
    if not found:
        return None
    return "/".join(layer.name for layer in reversed(layers))


def _under_trace_scope(layer_path: str, graph: Any) -> str:
    """``layer_path`` under the TF name scopes (``variable_scope('net')``) the outermost tf_keras
    layer was called in, as 2.15's graph names had them.

    tf_keras builds a model's layers where those scopes are not in effect, but the traced graph is
    still inside the outermost layer's name scope ("net/sequential"): what precedes the layer path
    there is the enclosing scope.
    """
    scope = graph.get_name_scope().split("/") if graph is not None and graph.get_name_scope() else []
    layers = layer_path.split("/")
    for shared in range(min(len(scope), len(layers)), 0, -1):
        if scope[len(scope) - shared :] == layers[:shared]:
            return "/".join(scope[: len(scope) - shared] + layers)
    return layer_path


def _strip_suffix(name: str) -> str:
    return re.sub(r":\d+$", "", name)


_ACTIVE = threading.local()  # the store whose scope() this thread is in
_IN_SCOPE: list["VariableStore"] = []  # every store whose scope() is open, in any thread


def active_store() -> "VariableStore | None":
    """The store of the model_fn trace running in this thread, or None outside a trace.

    Hooks' ``begin()`` runs inside the trace, so a hook can find the model's variables by
    checkpoint key here (``bridge.experimental.InMemoryEvaluatorHook`` does).
    """
    return getattr(_ACTIVE, "store", None)


@dataclasses.dataclass
class CheckpointPolicy:
    """What model_fn asked of model_dir's checkpoints instead of the RunConfig's defaults.

    Set during the trace by an extension (``bridge.compat.scaffold``: a Scaffold's
    ``tf.compat.v1.train.Saver``). ``variables``: checkpoint key -> variable saved and restored
    (None: every model variable, keyed as usual); ``max_to_keep`` / ``keep_checkpoint_every_n_hours``:
    retention replacing ``RunConfig.keep_checkpoint_max`` / ``keep_checkpoint_every_n_hours``.
    """

    variables: Mapping[str, tf.Variable] | None = None
    max_to_keep: int | None = None
    keep_checkpoint_every_n_hours: float | None = None


def trace_store() -> "VariableStore | None":
    """The store of the model_fn trace running now, also from a strategy's replica thread.

    ``active_store()`` is per thread; a MirroredStrategy may run model_fn in a replica thread,
    where the store is the open one whose global step the trace's graph holds.
    """
    store = active_store()
    if store is not None:
        return store
    steps = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.GLOBAL_STEP)
    return next((s for s in list(_IN_SCOPE) if any(step is s.global_step for step in steps)), None)


def _is_metric_state(variable: tf.Variable, kwargs: dict[str, Any]) -> bool:
    """Whether a variable is metric state: fresh for every call and never saved.

    That is what ``tf.compat.v1.metrics`` put into the local/metric collections, and the
    ``ON_READ`` variables that Keras (3 and tf_keras) metric objects sum across replicas. An
    ``ON_READ`` variable averaged across replicas is model state (tf_keras'
    ``BatchNormalization`` keeps its moving statistics so) and is saved like any other.
    """
    collections = set(kwargs.get("collections") or ())
    if collections & {tf.compat.v1.GraphKeys.LOCAL_VARIABLES, tf.compat.v1.GraphKeys.METRIC_VARIABLES}:
        return True
    return (
        variable.synchronization == tf.VariableSynchronization.ON_READ
        and variable.aggregation != tf.VariableAggregation.MEAN
    )


class VariableStore:
    """Owns the variables one model_fn trace creates, keyed for checkpoints."""

    def __init__(self, strategy: Any = None) -> None:
        """``strategy``: the tf.distribute strategy the step runs under, if any.

        Under a strategy, model_fn runs once per replica inside ``strategy.run``; the
        strategy's own creators make each variable once, as a distributed variable, and hand
        it to every replica (only replica 0's creations reach this store).
        """
        self._strategy = strategy
        self._thread = threading.local()
        self._by_key: dict[str, tf.Variable] = {}
        self._local_keys: set[str] = set()
        # Objects whose state some of the variables are (the Keras optimizers bridge.minimize
        # applied), for checkpoints keyed differently (bridge._name_mapping).
        self.state_owners: list[Any] = []
        self._keras_keys: set[str] = set()  # created by a Keras 3 (or tf_keras) layer, optimizer or metric
        # Set by an extension while model_fn is traced (bridge.compat.scaffold), read by the runtime:
        # the checkpoint policy model_fn asked for, and ``initialize(restored=, default=, warm_start=)``,
        # which takes over initialising the model once it is built: ``default()`` restores the
        # checkpoint (``restored``) or warm-starts (``warm_start``: warm_start_from was given);
        # the extension calls it or not, then adds its own.
        self.checkpoint_policy: CheckpointPolicy | None = None
        self.initialize: Callable[..., None] | None = None
        self.global_step = self._create_global_step()

    def _create_global_step(self) -> tf.Variable:
        step = _create_eagerly(
            dict(
                initial_value=0,
                dtype=tf.int64,
                trainable=False,
                name=GLOBAL_STEP_KEY,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            ),
            self._strategy,
        )
        self._by_key[GLOBAL_STEP_KEY] = step
        return step

    # -- what the rest of the runtime reads -------------------------------------------------
    @property
    def strategy(self) -> Any:
        """The tf.distribute strategy the step runs under, or None."""
        return self._strategy

    @property
    def variables(self) -> dict[str, tf.Variable]:
        """Every variable by checkpoint key, in creation order (global step first)."""
        return dict(self._by_key)

    @property
    def saveable(self) -> dict[str, tf.Variable]:
        """The variables checkpoints carry: all but local metric state (or the checkpoint policy's)."""
        if self.checkpoint_policy is not None and self.checkpoint_policy.variables is not None:
            return dict(self.checkpoint_policy.variables)
        return self.model_variables

    @property
    def model_variables(self) -> dict[str, tf.Variable]:
        """Every variable but local metric state, by checkpoint key."""
        return {k: v for k, v in self._by_key.items() if k not in self._local_keys}

    @property
    def local_variables(self) -> dict[str, tf.Variable]:
        """Metric state (``synchronization=ON_READ``): fresh per call, never saved."""
        return {k: v for k, v in self._by_key.items() if k in self._local_keys}

    @property
    def keras_variables(self) -> dict[str, tf.Variable]:
        """Model variables a Keras 3 (or tf_keras) object created: it updates them itself (no update op to fetch)."""
        return {k: v for k, v in self._by_key.items() if k in self._keras_keys and k not in self._local_keys}

    def adopt(self, variables: list[tf.Variable]) -> None:
        """Registers variables the trace captured but did not create (built outside model_fn)."""
        known = {id(v) for v in self._by_key.values()}
        known |= {id(c) for v in self._by_key.values() for c in getattr(v, "values", ())}
        for variable in variables:
            if id(variable) not in known:
                self._by_key[self._unique(_strip_suffix(variable.name))] = variable

    def add_state_owner(self, owner: Any) -> None:
        """Records an object (a Keras optimizer) whose state the trace's variables hold."""
        if all(owner is not known for known in self.state_owners):
            self.state_owners.append(owner)

    # -- the creator ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Route variable creation in the enclosed trace through this store."""
        graph = tf.compat.v1.get_default_graph()
        outer_graph, self._trace_graph = getattr(self, "_trace_graph", None), graph
        # A FuncGraph shares the variable collections (and the v1 variable-scope store) of the
        # eager context; a model_fn trace starts from empty ones, as a new tf.Graph did.
        graph._collections = {}  # pylint: disable=protected-access
        graph.add_to_collection(tf.compat.v1.GraphKeys.GLOBAL_STEP, self.global_step)
        outer = getattr(_ACTIVE, "store", None)
        _ACTIVE.store = self
        _IN_SCOPE.append(self)
        try:
            with _fresh_keras_names(), tf.variable_creator_scope(self._create):
                yield
        finally:
            _ACTIVE.store = outer
            _IN_SCOPE.remove(self)
            self._trace_graph = outer_graph

    def _create(self, next_creator, **kwargs) -> tf.Variable:
        if getattr(self._thread, "inside", False):  # a strategy building a variable's components
            return next_creator(**kwargs)
        keras_path = _keras_path()  # set while a Keras 3 layer, optimizer or metric creates it
        tf_keras_path = None if keras_path else _tf_keras_path()
        if tf_keras_path:
            tf_keras_path = _under_trace_scope(tf_keras_path, getattr(self, "_trace_graph", None))
        key = self._unique(self._key_for(kwargs.get("name"), keras_path or tf_keras_path))
        # The variable's own name is its key: what a v1 optimizer names its slots after
        # ("dense_1/kernel/Adam", as TF1 wrote them) and Keras's slot names are built from.
        # The trace's name scope would say "dense_1_1" for the second Keras layer.
        kwargs["name"] = key
        initial_value = kwargs.get("initial_value")
        if isinstance(initial_value, tf.Tensor) and not hasattr(initial_value, "numpy"):
            static = tf.get_static_value(initial_value)
            if static is None:
                raise ValueError(
                    f"Variable '{key}' is initialised from a value computed from the input or "
                    "another tensor inside model_fn. bridge creates variables once, outside the "
                    "traced step: use an initializer (callable) or a constant initial value."
                )
            kwargs["initial_value"] = static
        if _replica_context() is None:
            # Under a strategy's scope (a v1 optimizer makes its slots in cross-replica context)
            # the strategy's creator calls back into this one: let that call through.
            self._thread.inside = True
            try:
                variable = _create_eagerly(kwargs, self._strategy)
            finally:
                self._thread.inside = False
        else:
            # Inside strategy.run: the strategy's own creators (next in the stack) make the
            # distributed variable on replica 0 and hand it to the other replicas.
            kwargs["experimental_enable_variable_lifting"] = False
            self._thread.inside = True
            try:
                with tf.init_scope(), tf.compat.v1.name_scope(None):
                    variable = next_creator(**kwargs)
            finally:
                self._thread.inside = False
        self._by_key[key] = variable
        if _is_metric_state(variable, kwargs):
            self._local_keys.add(key)
        if keras_path or tf_keras_path is not None:
            self._keras_keys.add(key)
        self._add_to_collections(variable)
        return variable

    @staticmethod
    def _add_to_collections(variable: tf.Variable) -> None:
        graph = tf.compat.v1.get_default_graph()
        graph.add_to_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, variable)
        if variable.trainable:
            graph.add_to_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES, variable)

    def _key_for(self, name: str | None, keras_path: str | None) -> str:
        name = _strip_suffix(name or "Variable")
        prefix = keras_path or tf.compat.v1.get_default_graph().get_name_scope()
        if prefix and not name.startswith(prefix + "/"):
            name = f"{prefix}/{name}"
        # v1 slot variables are created with an empty name inside their scope ("dense/kernel/Adam/");
        # tf.estimator's Saver stored them without the trailing slash.
        return name.rstrip("/") or "Variable"

    def _unique(self, key: str) -> str:
        """``key``, suffixed ``_1``, ``_2``... if a variable already has it."""
        unique, n = key, 0
        while unique in self._by_key:
            n += 1
            unique = f"{key}_{n}"
        return unique


def add_state_owner(owner: Any, variable: Any = None) -> None:
    """Tells the store of the model_fn being traced that ``owner`` holds state in it.

    The store is this thread's; in a replica thread of ``strategy.run`` (MirroredStrategy runs
    each device's replica in its own thread) it is the open store holding ``variable``, one of
    the owner's variables.
    """
    store = active_store()
    if store is None and variable is not None:
        inner = getattr(variable, "value", variable)  # a Keras variable's tf.Variable
        store = next((s for s in list(_IN_SCOPE) if any(v is inner for v in s._by_key.values())), None)
    if store is not None:
        store.add_state_owner(owner)
