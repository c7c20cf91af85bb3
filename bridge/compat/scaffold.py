"""``EstimatorSpec(scaffold=tf.compat.v1.train.Scaffold(...))``: legacy initialisation, session-free.

Legacy model_fns used a Scaffold to initialise a fresh model (typically from a pretrained
checkpoint) and to choose what model_dir's checkpoints hold. bridge has no Session; it gives
each field tf.estimator 2.15's meaning (facts: tests/fixtures/legacy_2_15/scaffold/):

* When model_dir has **no checkpoint**, the model is initialised in 2.15's order: the
  variables' initial values, warm start (``warm_start_from``), then ``init_op``, then
  ``init_fn(scaffold, session)``. A custom ``init_op`` replaces the default initialisation,
  so, as in 2.15, ``warm_start_from`` is not applied (2.15's ``global_variables_initializer``
  built in model_fn predates the warm start): bridge says so in a WARNING. An ``init_op`` that
  leaves variables uninitialised (it neither depends on ``global_variables_initializer()`` nor
  assigns them) raises 2.15's RuntimeError naming them.
* When a checkpoint is restored, neither ``init_op`` nor ``init_fn`` runs.
* ``local_init_op`` runs after either, in every call (train, evaluate, predict).
* ``init_op``, ``local_init_op`` and whatever init_fn runs through ``session.run`` are ops
  model_fn built in the traced step; they run once, outside it (``bridge.compat._run_once``).
  init_fn's ``session`` is a stand-in: ``run`` of variables, tensors and ops built in model_fn
  (no ``feed_dict``); a ``tf.compat.v1.train.Saver`` built in model_fn restores by name, and so
  does ``scaffold.saver`` when the Scaffold has none (2.15's default Saver of every variable).
  Under a tf.distribute strategy with several replicas such ops are refused (run outside the
  step they would set one replica's copy); eager assignments in init_fn set every replica.
* ``saver=tf.compat.v1.train.Saver(...)`` decides model_dir's checkpoints: ``var_list`` (a list,
  or a dict of checkpoint names) is what is saved and restored, under those names;
  ``max_to_keep`` and ``keep_checkpoint_every_n_hours`` replace the RunConfig's. A var_list
  must hold the global step; restoring a checkpoint that leaves model variables out raises
  2.15's RuntimeError naming them.
* ``ready_op``, ``ready_for_local_init_op``, ``summary_op``, ``init_feed_dict`` and
  ``local_init_feed_dict`` are refused by name, as are Saver arguments bridge's checkpoints
  cannot follow (``saver_def``, ``builder``, ``pad_step_number``, ``filename``, V1 format).
"""

from __future__ import annotations

import contextlib
import logging
import re
import weakref
from typing import Any, Callable, Iterator

import numpy as np
import tensorflow as tf

from bridge._model_fn_scopes import ModelFnCall, register
from bridge._variables import CheckpointPolicy, trace_store
from bridge.compat._patching import attributes_set
from bridge.compat._run_once import closure, is_graph_value, run_once, written_handles

logger = logging.getLogger("bridge")

_REFUSED_FIELDS = {
    "ready_op": "bridge's variables are always initialised; remove it",
    "ready_for_local_init_op": "bridge's variables are always initialised; remove it",
    "summary_op": "tf.compat.v1.summary ops built in model_fn are written every RunConfig.save_summary_steps",
    "init_feed_dict": "build init_op from constants instead of placeholders",
    "local_init_feed_dict": "build local_init_op from constants instead of placeholders",
}
_REPLACEMENT = (
    "assign inside init_fn (variable.assign(value)), call tf.compat.v1.train.init_from_checkpoint(...) in "
    "model_fn, or pass Estimator(warm_start_from=...)"
)
# Saver arguments that change what is written; refused (with the fix) on a Scaffold's saver.
_REFUSED_SAVER_ARGS = {
    "saver_def": "bridge writes model_dir's checkpoints with its own ops; remove saver_def",
    "builder": "bridge writes model_dir's checkpoints with its own ops; remove builder",
    "pad_step_number": "bridge names checkpoints model.ckpt-<step> as RunConfig does; remove pad_step_number",
    "filename": "bridge writes model_dir/model.ckpt-<step>; remove filename",
    "write_version": "bridge writes the V2 checkpoint format; remove write_version",
}
_SAVER_DEFAULTS = {"saver_def": None, "builder": None, "pad_step_number": False, "filename": None}


def _key(variable: Any) -> str:
    return re.sub(r":\d+$", "", variable.name)


class Saver:
    """What ``tf.compat.v1.train.Saver(...)`` is inside model_fn: settings plus a session-free restore."""

    def __init__(
        self,
        var_list: Any = None,
        reshape: bool = False,
        sharded: bool = False,
        max_to_keep: int | None = 5,
        keep_checkpoint_every_n_hours: float = 10000.0,
        name: str | None = None,
        restore_sequentially: bool = False,
        saver_def: Any = None,
        builder: Any = None,
        defer_build: bool = False,
        allow_empty: bool = False,
        write_version: int = 2,
        pad_step_number: bool = False,
        save_relative_paths: bool = False,
        filename: str | None = None,
    ) -> None:
        self.var_list = var_list
        self.reshape = reshape
        self.max_to_keep = max_to_keep
        self.keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
        self._settings = {"saver_def": saver_def, "builder": builder, "pad_step_number": pad_step_number,
                          "filename": filename, "write_version": write_version}
        with tf.init_scope():
            if var_list is None:
                variables = {_key(v): v for v in tf.compat.v1.global_variables()}
            elif isinstance(var_list, dict):
                variables = dict(var_list)
            else:
                variables = {_key(v): v for v in tf.nest.flatten(list(var_list))}
        self._variables = variables

    @property
    def variables(self) -> dict[str, Any]:
        """Checkpoint name -> variable, as this Saver saves and restores them."""
        return dict(self._variables)

    def refused_arguments(self) -> list[tuple[str, str]]:
        """(argument, fix) for each argument that would change what model_dir's checkpoints are."""
        refused = [(arg, fix) for arg, fix in _REFUSED_SAVER_ARGS.items()
                   if arg != "write_version" and self._settings[arg] != _SAVER_DEFAULTS[arg]]
        if self._settings["write_version"] != 2:  # tf.compat.v1.train.SaverDef.V2
            refused.append(("write_version", _REFUSED_SAVER_ARGS["write_version"]))
        return refused

    def restore(self, sess: Any, save_path: str) -> None:
        """Assigns every variable of this Saver from ``save_path`` (checkpoint names, as a v1 Saver)."""
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")
        reader = tf.train.load_checkpoint(save_path)
        missing = [name for name in self._variables if not reader.has_tensor(name)]
        if missing:
            raise tf.errors.NotFoundError(None, None, f"Key(s) {missing} not found in checkpoint {save_path}")
        with tf.init_scope():
            for name, variable in self._variables.items():
                value = reader.get_tensor(name)
                if self.reshape:
                    value = np.reshape(value, variable.shape)
                variable.assign(tf.cast(value, variable.dtype))

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "Saver.save inside model_fn or init_fn: bridge writes model_dir's checkpoints itself "
            "(RunConfig(save_checkpoints_steps=..., keep_checkpoint_max=...))."
        )


def _refuse_across_replicas(what: str, store: Any) -> None:
    """Ops run outside the step would set one replica's copy of a variable: refused with several."""
    replicas = getattr(store.strategy, "num_replicas_in_sync", 1)
    if replicas > 1:
        raise ValueError(
            f"{what} under a tf.distribute strategy with {replicas} replicas: bridge can run ops model_fn built "
            "only inside its step. Assign in init_fn instead (variable.assign(value) sets every replica)."
        )


def _run_model_fn_ops(fetches: Any, what: str, store: Any) -> Any:
    """``run_once``, refused across several replicas."""
    _refuse_across_replicas(what, store)
    return run_once(fetches, what)


class _Session:
    """The ``session`` handed to init_fn: runs variables, tensors and ops built in model_fn, once."""

    graph = None

    def __init__(self, store: Any) -> None:
        self._store = store

    def run(self, fetches: Any, feed_dict: Any = None, options: Any = None, run_metadata: Any = None) -> Any:
        if feed_dict:
            raise ValueError(
                "Scaffold init_fn called session.run(..., feed_dict=...): bridge has no placeholders to feed there. "
                f"Instead, {_REPLACEMENT}."
            )
        flat = tf.nest.flatten(fetches)
        graph_items = []
        for index, item in enumerate(flat):
            parent = getattr(item, "_parent_op", None)  # an assign built in model_fn: runs, gives the new value
            if parent is not None:
                with parent.graph.as_default(), tf.control_dependencies([parent]):
                    flat[index] = item = tf.identity(item)
            if is_graph_value(item):
                graph_items.append(index)
            elif isinstance(item, tf.Variable):
                flat[index] = item.numpy()
            elif isinstance(item, tf.Tensor):
                flat[index] = item.numpy()
            else:
                raise TypeError(f"Scaffold init_fn called session.run({item!r}): not a tensor, op or variable.")
        if graph_items:
            values = _run_model_fn_ops([flat[i] for i in graph_items], "Scaffold init_fn's session.run", self._store)
            for index, value in zip(graph_items, values):
                flat[index] = value
        return tf.nest.pack_sequence_as(fetches, flat)


# The no-ops bridge's v1 initializers return -> ids of the variables they stand for (None: all).
# Weak keys: an entry lives as long as its graph. One map for every model_fn call, because
# replicas of a tf.distribute strategy trace model_fn at once in several threads.
_COVERS: "weakref.WeakKeyDictionary[tf.Operation, set[int] | None]" = weakref.WeakKeyDictionary()


class _Initializers:
    """Stand-ins for the v1 variable initializers.

    Variables are initialised when bridge creates them, so each returns a no-op; it records
    which variables it stands for (None: all), so that a custom init_op's coverage can be
    checked as 2.15's readiness check did.
    """

    def __init__(self) -> None:
        self.covers = _COVERS
        every = self._maker(lambda *args, **kwargs: None)
        local = self._maker(lambda *args, **kwargs: set())  # metric state: fresh per call anyway
        some = self._maker(lambda var_list=(), name="init": {id(v) for v in var_list})
        self.v1 = {
            "global_variables_initializer": every, "initialize_all_variables": every,
            "local_variables_initializer": local, "initialize_local_variables": local,
            "variables_initializer": some, "initialize_variables": some,
        }
        self.v1_initializers = {"global_variables": every, "local_variables": local, "variables": some}

    def _maker(self, covers: Callable[..., "set[int] | None"]) -> Callable[..., tf.Operation]:
        def make(*args: Any, **kwargs: Any) -> tf.Operation:
            op = tf.no_op(name=kwargs.get("name", "init"))
            self.covers[op] = covers(*args, **kwargs)
            return op

        return make


def _check(scaffold: Any, store: Any) -> None:
    for field, fix in _REFUSED_FIELDS.items():
        if getattr(scaffold, "_" + field, None) is not None:
            raise ValueError(f"Scaffold({field}=...) is not supported by bridge (no Session runs it): {fix}.")
    for field in ("init_op", "local_init_op"):
        op = getattr(scaffold, "_" + field, None)
        if op is not None and not is_graph_value(op):
            raise TypeError(f"Scaffold({field}=...) must be an op or tensor built in model_fn; got {op!r}.")
    saver = scaffold._saver
    if saver is None:
        return
    if not isinstance(saver, Saver):
        raise ValueError(
            "Scaffold(saver=...) must be a tf.compat.v1.train.Saver built inside model_fn; bridge writes model_dir's "
            "checkpoints itself (RunConfig(keep_checkpoint_max=..., keep_checkpoint_every_n_hours=...))."
        )
    for argument, fix in saver.refused_arguments():
        raise ValueError(f"Scaffold(saver=tf.compat.v1.train.Saver({argument}=...)) is not supported: {fix}.")
    if saver.var_list is not None and store is not None:
        step_keys = [key for key, variable in saver.variables.items() if variable is store.global_step]
        if not step_keys:
            raise ValueError(
                "Scaffold(saver=tf.compat.v1.train.Saver(var_list=...)) must include the global step "
                "(tf.compat.v1.train.get_global_step()): without it model_dir's checkpoints cannot be resumed or "
                "evaluated (tf.estimator 2.15 failed there with 'Variables not initialized: global_step')."
            )
        if step_keys != ["global_step"]:
            raise ValueError(
                f"Scaffold(saver=tf.compat.v1.train.Saver(var_list={{{step_keys[0]!r}: global_step, ...}})): the global "
                "step must keep its checkpoint name 'global_step', which resuming, max_steps and evaluate read."
            )


def _not_initialized(names: list[str], what: str) -> RuntimeError:
    return RuntimeError(
        f"{what} did not initialize every model variable (as tf.estimator 2.15, which stopped with 'Init operations "
        f"did not make model ready'). Variables not initialized: {', '.join(names)}."
    )


def _run_init_op(init_op: Any, store: Any, has_init_fn: bool, initializers: _Initializers) -> None:
    """Runs a custom init_op once; refuses one that leaves model variables uninitialised (2.15's check)."""
    _refuse_across_replicas("Scaffold(init_op=...)", store)
    ops = closure([init_op if isinstance(init_op, tf.Operation) else init_op.op])
    covered: "set[int] | None" = set()
    for op in ops:
        if op in initializers.covers:
            if initializers.covers[op] is None:
                covered = None  # global_variables_initializer(): everything
                break
            covered |= initializers.covers[op]
    if covered is not None and not has_init_fn:  # init_fn may initialise the rest: 2.15 checked after it
        written = written_handles(ops)
        missing = [key for key, v in store.model_variables.items() if id(v) not in covered and id(v.handle) not in written]
        if missing:
            raise _not_initialized(missing, f"Scaffold(init_op={init_op.name!r})")
    _run_model_fn_ops(init_op, "Scaffold(init_op=...)", store)


def _initializer_for(scaffold: Any, store: Any, initializers: _Initializers) -> Callable[..., None]:
    init_op = scaffold._init_op
    local_init_op = scaffold._local_init_op
    init_fn = getattr(scaffold, "_user_init_fn", None)
    saver = scaffold._saver

    def initialize(restored: bool, default: Callable[[], None], warm_start: bool = False) -> None:
        if restored:
            default()
            if saver is not None and saver.var_list is not None:
                restored_ids = {id(v) for v in saver.variables.values()}
                missing = [key for key, v in store.model_variables.items() if id(v) not in restored_ids]
                if missing:
                    raise _not_initialized(missing, "Restoring model_dir's checkpoint through Scaffold(saver=Saver(var_list=...))")
        else:
            if init_op is None:
                default()
            else:
                if warm_start:
                    logger.warning(
                        "warm_start_from is not applied: the Scaffold's init_op replaces the default initialisation "
                        "(tf.estimator 2.15 did the same: its init_op predates the warm start). Remove init_op, or "
                        "do the initialisation in init_fn, which runs after the warm start."
                    )
                _run_init_op(init_op, store, init_fn is not None, initializers)
            if init_fn is not None:
                if scaffold._saver is None:  # 2.15's finalized Scaffold had a default Saver of every variable
                    scaffold._saver = Saver(var_list=store.model_variables)
                logger.info("Running the Scaffold's init_fn (model_dir has no checkpoint).")
                init_fn(scaffold, _Session(store))
        if local_init_op is not None:
            _run_model_fn_ops(local_init_op, "Scaffold(local_init_op=...)", store)

    return initialize


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Iterator[None]:
    initializers = _Initializers()
    with attributes_set(tf.compat.v1.train, {"Saver": Saver}), attributes_set(tf.compat.v1, initializers.v1), \
            attributes_set(tf.compat.v1.initializers, initializers.v1_initializers):
        yield
        scaffold = getattr(call.spec, "scaffold", None)
        if scaffold is None:
            return
        store = trace_store()
        _check(scaffold, store)
        if store is None:  # pragma: no cover - model_fn is always traced under a store
            raise RuntimeError("Scaffold: bridge could not find the model's variables of this model_fn call.")
        saver = scaffold._saver
        if saver is not None:
            store.checkpoint_policy = CheckpointPolicy(
                variables=saver.variables if saver.var_list is not None else None,
                max_to_keep=saver.max_to_keep,
                keep_checkpoint_every_n_hours=saver.keep_checkpoint_every_n_hours,
            )
        if any(getattr(scaffold, name, None) is not None for name in ("_init_op", "_local_init_op", "_user_init_fn", "_saver")):
            store.initialize = _initializer_for(scaffold, store, initializers)


register(_model_fn_scope)
