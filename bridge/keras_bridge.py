"""``model_to_estimator`` for Keras 3, and ``estimator_to_keras``, the way back.

``model_to_estimator(keras_model)`` returns a :class:`bridge.Estimator` whose model_fn is
generated from a compiled Keras 3 model (Sequential, functional with one or several named
inputs/outputs, subclassed, or a ``.keras`` file). ``estimator_to_keras(estimator)`` returns
a compiled Keras model carrying the weights (and, when present, optimizer state) of the
estimator's latest checkpoint. tf.estimator's Keras 2 version had no way back.

Design: a fresh clone per trace, starting weights injected at creation
----------------------------------------------------------------------
The generated model_fn rebuilds the model from its Keras config on every trace, as Keras 2's
``clone_and_build_model`` did in every new graph. The clone's variables are created by the
runtime's ``VariableStore`` like those of any hand-written model_fn, so they get the same
stable, Keras-path checkpoint keys (``dense/kernel``, ``adam/dense_kernel_momentum``), each
Estimator call owns its variables, and the store can create them through a distribution
strategy later. We did not adopt the caller's model object into the store (the other
option): then train/evaluate would restore checkpoints into the user's own model, several
estimators made from one model would share variables, and variables built before the
strategy scope could never be distributed.

The Keras model's current weights, trainable and non-trainable (BatchNorm moving statistics
included), are snapshotted at conversion and written into the clone's variables right after
they are created (eagerly, under ``tf.init_scope``; the traced step holds no assignment). The
runtime then restores the latest checkpoint over them when model_dir has one, so the
snapshot is the starting point exactly when tf.estimator warm-started from Keras. When the
compiled optimizer has already been built (the model was trained with ``fit``), its state
(iteration count, slots) is carried over too. Unlike a warm-start checkpoint, this needs no
prediction of the clone's checkpoint keys and does not depend on warm-start filters (Keras
2's warm start copied only trainable variables, so BatchNorm statistics restarted from 0).

The model (architecture, starting weights, compile config) is also saved as
``model_dir/keras/keras_model.keras`` by the chief, so ``estimator_to_keras(model_dir)``
works in a new process.

What each mode builds is described in ``bridge/_keras_model_fn.py``.

Differences from the Keras 2 version (forced or deliberate): checkpoints are always bridge's
name-based ones (``checkpoint_format`` accepts ``'checkpoint'`` and ``'saver'`` and writes the
same files; Keras 3 ``load_weights`` reads no TF checkpoints, ``estimator_to_keras`` is the way
back), so ``global_step`` stays under its usual key; subclassed models are supported in both
formats; non-trainable state is part of the starting point. A compiled metric that the C++
engine offers (``bridge.metrics`` class of the same name and configuration: accuracy variants,
AUC, precision, recall, MSE, MAE, ...) is computed by it on the host; the others by their Keras
metric object (see ``bridge._keras_model_fn._compiled_metric_ops``).
"""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
from typing import Any, Mapping

import tensorflow as tf

from bridge import _checkpoints
from bridge._backend import require_tensorflow_backend
from bridge._variables import VariableStore, _fresh_keras_names
from bridge._keras_model_fn import (
    MissingKeysError,
    KerasModelFn,
    assign_eagerly,
    check_export_outputs,
    describe,
    keras_path_names,
)
from bridge.estimator import Estimator
from bridge.export_output import ExportOutput
from bridge.mode_keys import ModeKeys
from bridge.run_config import RunConfig
from bridge.training import model_fn_mode

__all__ = ["model_to_estimator", "estimator_to_keras", "KERAS_MODEL_FILE", "MissingKeysError"]

logger = logging.getLogger("bridge")

KERAS_MODEL_FILE = os.path.join("keras", "keras_model.keras")
_CHECKPOINT_FORMATS = ("checkpoint", "saver")
def model_to_estimator(
    keras_model: Any = None,
    keras_model_path: str | os.PathLike | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    model_dir: str | os.PathLike | None = None,
    config: RunConfig | None = None,
    checkpoint_format: str = "checkpoint",
    metric_names_map: Mapping[str, str] | None = None,
    export_outputs: Mapping[str, type] | None = None,
) -> Estimator:
    """Returns a :class:`bridge.Estimator` that trains, evaluates and predicts a compiled Keras model.

    Args:
      keras_model: a compiled Keras 3 model (Sequential, functional or subclassed). Its current
        weights, trainable and non-trainable, are the estimator's starting point; the model
        object itself is never modified by the estimator.
      keras_model_path: path of a ``.keras`` file holding a compiled model, instead of
        ``keras_model``.
      custom_objects: custom classes and functions needed to rebuild the model (classes used
        by an in-memory model are found automatically).
      model_dir, config: as for :class:`bridge.Estimator`.
      checkpoint_format: ``'checkpoint'`` or ``'saver'``; both write bridge's name-based
        checkpoints (accepted for compatibility with tf.keras.estimator).
      metric_names_map: renames the compiled metrics in ``evaluate``'s results; it must map
        every metric name Keras reports, and nothing else.
      export_outputs: maps an output name to an ``ExportOutput`` class for an extra serving
        signature holding only that output.

    Raises:
      ValueError: both or neither of keras_model and keras_model_path, an uncompiled model, a
        non-TensorFlow Keras backend, an invalid checkpoint_format, a subclassed model that
        cannot be rebuilt from its config.
    """
    import keras

    if keras_model is None and keras_model_path is None:
        raise ValueError("Either `keras_model` or `keras_model_path` needs to be provided.")
    if keras_model is not None and keras_model_path is not None:
        raise ValueError(
            "Please specity either `keras_model` or `keras_model_path`, but not both."
        )
    require_tensorflow_backend("model_to_estimator")
    if checkpoint_format not in _CHECKPOINT_FORMATS:
        raise ValueError('Checkpoint format must be one of "checkpoint" or "saver". Given: ' + repr(checkpoint_format))
    if metric_names_map is not None:
        if not isinstance(metric_names_map, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metric_names_map.items()
        ):
            raise TypeError(f"metric_names_map must be a dict of str to str, given: {metric_names_map!r}")
    if export_outputs is not None:
        for name, cls in dict(export_outputs).items():
            if not (inspect.isclass(cls) and issubclass(cls, ExportOutput)):
                raise TypeError(f"export_outputs['{name}'] must be an ExportOutput class, given: {cls!r}")
    if keras_model_path is not None:
        path = os.fspath(keras_model_path)
        logger.info("Loading models from %s", path)
        keras_model = keras.saving.load_model(path, custom_objects=custom_objects, compile=True)
    spec = describe(keras_model, custom_objects)
    if export_outputs and spec.output_names is not None:
        check_export_outputs(export_outputs, spec.output_names)
    model_fn = KerasModelFn(spec, metric_names_map, export_outputs)
    estimator = Estimator(model_fn, model_dir=model_dir, config=config)
    if estimator.config.is_chief:
        _save_keras_model(keras_model, estimator.model_dir)
    return estimator


def _save_keras_model(model: Any, model_dir: str) -> None:
    """Writes the model (architecture, starting weights, compile config) for the way back."""
    target = os.path.join(model_dir, KERAS_MODEL_FILE)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    handle, temp = tempfile.mkstemp(suffix=".keras", dir=os.path.dirname(target))
    os.close(handle)
    try:
        model.save(temp)
        os.replace(temp, target)
    except Exception as error:  # the estimator still works; only estimator_to_keras(model_dir) needs it
        logger.warning("Could not save the Keras model to %s (%s); estimator_to_keras will need the Estimator object.", target, error)
        if os.path.exists(temp):
            os.remove(temp)


def _spec_of(estimator_or_model_dir: Any, custom_objects: Mapping[str, Any] | None) -> tuple[KerasModelFn, str]:
    import keras

    if isinstance(estimator_or_model_dir, Estimator):
        model_fn = estimator_or_model_dir._model_fn
        if not isinstance(model_fn, KerasModelFn):
            raise ValueError(
                "estimator_to_keras needs an Estimator created by bridge.model_to_estimator (or its model_dir)."
            )
        if custom_objects:
            model_fn.spec.custom_objects.update(custom_objects)
        return model_fn, estimator_or_model_dir.model_dir
    if isinstance(estimator_or_model_dir, (str, bytes, os.PathLike)):
        model_dir = os.fsdecode(estimator_or_model_dir)
        path = os.path.join(model_dir, KERAS_MODEL_FILE)
        if not os.path.exists(path):
            raise ValueError(
                f"No Keras model at {path}: model_dir was not written by bridge.model_to_estimator."
            )
        model = keras.saving.load_model(path, custom_objects=custom_objects, compile=True)
        return KerasModelFn(describe(model, custom_objects), None, None), model_dir
    raise TypeError(
        f"estimator_to_keras takes an Estimator or a model_dir, given: {type(estimator_or_model_dir).__name__}"
    )


def _checkpoint_keys(model_fn: KerasModelFn, inputs: Any) -> list[str]:
    """The checkpoint key of each model weight, found by tracing the model as model_fn does."""
    store = VariableStore()
    holder: dict[str, Any] = {}

    def trace():
        with store.scope(), model_fn_mode(ModeKeys.PREDICT), keras_path_names():
            model = model_fn.spec.deserialize()
            if "training" in inspect.signature(model.call).parameters:
                outputs = model(inputs, training=False)
            else:
                outputs = model(inputs)
            holder["model"] = model
            return tf.nest.flatten(outputs)

    tf.function(trace, autograph=False).get_concrete_function()
    key_of = {id(v): k for k, v in store.variables.items()}
    keys = []
    for weight in holder["model"].weights:
        key = key_of.get(id(weight.value))
        if key is None:
            raise RuntimeError(f"estimator_to_keras: no checkpoint key found for weight '{weight.path}'.")
        keys.append(key)
    return keys


def estimator_to_keras(
    estimator_or_model_dir: Any,
    checkpoint_path: str | os.PathLike | None = None,
    custom_objects: Mapping[str, Any] | None = None,
    compile: bool = True,  # noqa: A002 - same name as keras.saving.load_model's argument
) -> Any:
    """Returns a Keras model carrying the weights of an estimator made by ``model_to_estimator``.

    Args:
      estimator_or_model_dir: the Estimator returned by ``model_to_estimator``, or its
        model_dir (which holds ``keras/keras_model.keras``, written at conversion).
      checkpoint_path: the checkpoint to read; by default the latest in model_dir. Without
        any checkpoint the model has the starting weights (as ``predict`` would use).
      custom_objects: custom classes needed to load the model from model_dir.
      compile: compile the model as the original was compiled. The optimizer's state
        (iterations, slots) is restored from the checkpoint when it holds it, so
        ``model.fit`` continues where the estimator stopped.

    The returned model is a new object: trainable and non-trainable weights (BatchNorm
    statistics included) come from the checkpoint. Save it with ``model.save('x.keras')``.
    """
    require_tensorflow_backend("model_to_estimator")
    model_fn, model_dir = _spec_of(estimator_or_model_dir, custom_objects)
    spec = model_fn.spec
    if checkpoint_path is None:
        try:
            checkpoint_path = _checkpoints.latest_checkpoint(model_dir)
        except _checkpoints.CheckpointRecoveryError as error:
            raise error.with_advice(_checkpoints.READ_ADVICE) from None
    else:
        checkpoint_path = os.fspath(checkpoint_path)
    inputs_signature = spec.input_signature or model_fn.seen_input_signature
    inputs = None
    if inputs_signature is not None:
        inputs = tf.nest.map_structure(
            lambda s: tf.zeros([1 if d is None else d for d in s.shape], s.dtype), inputs_signature
        )
    with _fresh_keras_names():
        model = spec.deserialize()
        if not model.built:
            if inputs is None:
                spec.dummy_inputs()  # raises the "input shapes are unknown" error
            model(inputs, training=False) if "training" in inspect.signature(model.call).parameters else model(inputs)
        if compile:
            compile_args = spec.deserialize_compile_config()
            model.compile(**compile_args)
            model.optimizer.build(model.trainable_variables)
    if not checkpoint_path:
        logger.warning("No checkpoint in %s: the Keras model gets the starting weights.", model_dir)
        assign_eagerly(model.weights, spec.weights, "starting weights")
        if compile and spec.optimizer_weights is not None:
            assign_eagerly(model.optimizer.variables, spec.optimizer_weights, "optimizer state")
        return model
    keys = _checkpoint_keys(model_fn, inputs if inputs is not None else spec.dummy_inputs())
    _checkpoints.restore(checkpoint_path, {key: weight.value for key, weight in zip(keys, model.weights)})
    reader = tf.train.load_checkpoint(checkpoint_path)
    shapes = reader.get_variable_to_shape_map()
    if compile:
        variables = model.optimizer.variables
        if all(v.path in shapes and list(shapes[v.path]) == list(v.shape) for v in variables):
            assign_eagerly(variables, [reader.get_tensor(v.path) for v in variables], "optimizer state")
        else:
            logger.info("Checkpoint %s holds no complete optimizer state; the optimizer starts fresh.", checkpoint_path)
    return model
