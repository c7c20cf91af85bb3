"""``EstimatorSpec(scaffold=tf.compat.v1.train.Scaffold(...))``: legacy initialisation, session-free.

Legacy model_fns used a Scaffold to initialise a fresh model, typically from a pretrained
checkpoint: ``Scaffold(init_fn=lambda scaffold, session: saver.restore(session, path))``.
tf.estimator ran ``init_fn`` once, when model_dir had no checkpoint to restore.

bridge has no Session. Its model variables exist (eagerly) as soon as model_fn has built them,
so when model_fn returns a Scaffold and model_dir has no checkpoint, ``init_fn(scaffold,
session)`` runs right away, outside the traced step, with a stand-in ``session``:

* ``session.run(variable)`` returns the variable's value; ``saver.restore(session, path)``
  restores by name, where ``saver`` is a ``tf.compat.v1.train.Saver`` built inside model_fn
  (bridge hands model_fn a session-free Saver: a real one would add restore ops that run at
  every step);
* assignments inside init_fn (``variable.assign(value)``) act at once;
* ``session.run`` of a graph tensor or op built in model_fn cannot run outside the step: a clear
  error names the replacement.

The runtime then warm-starts (``warm_start_from``) over these values. ``init_op`` may only be
a no-op (``tf.compat.v1.global_variables_initializer()``: bridge's variables are initialised
when created); ``saver`` may only ask for what RunConfig already does (every variable,
``keep_checkpoint_max``, ``keep_checkpoint_every_n_hours``); the other Scaffold fields are
refused by name.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Iterator

import tensorflow as tf

from bridge._model_fn_scopes import ModelFnCall, register

logger = logging.getLogger("bridge")

_REFUSED_FIELDS = (
    "ready_op",
    "ready_for_local_init_op",
    "local_init_op",
    "summary_op",
    "init_feed_dict",
    "local_init_feed_dict",
)
_REPLACEMENT = (
    "assign inside init_fn (variable.assign(value)), call tf.compat.v1.train.init_from_checkpoint(...) in "
    "model_fn, or pass Estimator(warm_start_from=...)"
)


def _key(variable: Any) -> str:
    return re.sub(r":\d+$", "", variable.name)


class Saver:
    """What ``tf.compat.v1.train.Saver(...)`` is inside model_fn: settings plus a session-free restore."""

    def __init__(self, var_list: Any = None, reshape: bool = False, sharded: bool = False, max_to_keep: int = 5,
                 keep_checkpoint_every_n_hours: float = 10000.0, name: str | None = None, **ignored: Any) -> None:
        self.var_list = var_list
        self.max_to_keep = max_to_keep
        self.keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
        with tf.init_scope():
            if var_list is None:
                variables = {_key(v): v for v in tf.compat.v1.global_variables()}
            elif isinstance(var_list, dict):
                variables = dict(var_list)
            else:
                variables = {_key(v): v for v in var_list}
        self._variables = variables

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
                variable.assign(tf.cast(reader.get_tensor(name), variable.dtype))

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "Saver.save inside model_fn or init_fn: bridge writes model_dir's checkpoints itself "
            "(RunConfig(save_checkpoints_steps=..., keep_checkpoint_max=...))."
        )


class _Session:
    """The ``session`` handed to init_fn: reads variables; graph ops cannot run outside the step."""

    graph = None

    def run(self, fetches: Any, feed_dict: Any = None, options: Any = None, run_metadata: Any = None) -> Any:
        def value(item: Any) -> Any:
            # An assign built in model_fn returns a variable-like "unread" result: it stands for an op.
            built_in_model_fn = type(item).__name__ == "_UnreadVariable"
            if isinstance(item, tf.Variable) and not built_in_model_fn:
                return item.numpy()
            if isinstance(item, tf.Tensor) and hasattr(item, "_numpy") and not built_in_model_fn:
                return item.numpy()  # an eager tensor
            raise RuntimeError(
                f"Scaffold init_fn called session.run({item!r}): bridge has no Session, and ops built in "
                f"model_fn run only inside its traced step. Instead, {_REPLACEMENT}."
            )

        with tf.init_scope():
            return tf.nest.map_structure(value, fetches)


@contextlib.contextmanager
def _set(module: Any, values: dict) -> Iterator[None]:
    """Replaces names that TensorFlow defines, for the duration of model_fn.

    Through ``setattr``: TensorFlow's API module wrappers cache attributes once read, so a
    value written into the module's ``__dict__`` would not be seen by ``tf.compat.v1.train.Saver``.
    """
    previous = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in previous.items():
            setattr(module, name, value)


def _check(scaffold: Any, config: Any) -> None:
    for field in _REFUSED_FIELDS:
        if getattr(scaffold, "_" + field, None) is not None:
            raise ValueError(f"Scaffold({field}=...) is not supported by bridge (no Session runs it). Instead, {_REPLACEMENT}.")
    init_op = scaffold._init_op
    if init_op is not None and not (getattr(init_op, "type", None) == "NoOp" and not init_op.control_inputs):
        raise ValueError(
            f"Scaffold(init_op={getattr(init_op, 'name', init_op)!r}) is not supported by bridge: an op built in model_fn "
            f"runs only inside its traced step. bridge initialises variables when it creates them; instead, {_REPLACEMENT}."
        )
    saver = scaffold._saver
    if saver is None:
        return
    if not isinstance(saver, Saver):
        raise ValueError(
            "Scaffold(saver=...) must be a tf.compat.v1.train.Saver built inside model_fn; bridge writes model_dir's "
            "checkpoints itself (RunConfig(keep_checkpoint_max=..., keep_checkpoint_every_n_hours=...))."
        )
    if saver.var_list is not None:
        raise ValueError(
            "Scaffold(saver=tf.compat.v1.train.Saver(var_list=...)): bridge's checkpoints hold every model variable, "
            "so resuming and evaluate see the whole model. To take only some variables from another checkpoint, use "
            "WarmStartSettings(vars_to_warm_start=...)."
        )
    if saver.max_to_keep != config.keep_checkpoint_max or (
        saver.keep_checkpoint_every_n_hours != config.keep_checkpoint_every_n_hours
    ):
        raise ValueError(
            f"Scaffold(saver=Saver(max_to_keep={saver.max_to_keep}, keep_checkpoint_every_n_hours="
            f"{saver.keep_checkpoint_every_n_hours})) differs from the RunConfig (keep_checkpoint_max="
            f"{config.keep_checkpoint_max}, keep_checkpoint_every_n_hours={config.keep_checkpoint_every_n_hours}): "
            "bridge's checkpoint policy comes from the RunConfig; set these there."
        )


def _initialise(scaffold: Any, config: Any) -> None:
    init_fn = getattr(scaffold, "_user_init_fn", None)
    if init_fn is None:
        return
    model_dir = getattr(config, "model_dir", None)
    if model_dir and tf.train.latest_checkpoint(model_dir):
        return  # model_dir's checkpoint is restored instead, as in tf.estimator
    logger.info("Running the Scaffold's init_fn (model_dir has no checkpoint).")
    with tf.init_scope():
        init_fn(scaffold, _Session())


@contextlib.contextmanager
def _model_fn_scope(call: ModelFnCall) -> Iterator[None]:
    no_op = lambda *args, **kwargs: tf.no_op(name="init")  # noqa: E731 - variables are initialised when created
    initializers = {"global_variables_initializer": no_op, "local_variables_initializer": no_op}
    with _set(tf.compat.v1.train, {"Saver": Saver}), _set(tf.compat.v1, initializers):
        yield
        scaffold = getattr(call.spec, "scaffold", None)
        if scaffold is not None:
            _check(scaffold, call.config)
            _initialise(scaffold, call.config)


register(_model_fn_scope)
