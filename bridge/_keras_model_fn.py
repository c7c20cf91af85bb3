"""The model_fn ``model_to_estimator`` generates from a compiled Keras 3 model.

What each mode builds (Keras 3 has no ``total_loss``, metric ``.updates`` or
``clone_and_build_model``, so the steps are written here, mirroring Keras's own
``train_step``/``test_step``/``predict_step``):

* TRAIN: forward pass with ``training=True``, ``model.compute_loss`` (compiled losses with
  ``loss_weights``, plus regularisation and ``add_loss`` losses), gradients with a tape, the
  compiled optimizer (rebuilt from its config) applies them, and the global step is
  incremented. N estimator steps equal N ``model.fit`` steps on the same batches.
* EVAL: forward pass with ``training=False``; ``loss`` is the compiled loss of the batch (the
  Estimator reports the mean over batches); ``eval_metric_ops`` holds every compiled metric
  under the name Keras reports it (``accuracy``, ``<output>_mae`` for several outputs),
  renamed by ``metric_names_map``. No optimizer update is built.
* PREDICT: ``training=False``; predictions are a dict keyed by output name even for a single
  output. ``export_outputs`` as in tf.estimator.

Features are a dict keyed by the model's input names (extra keys are ignored), a list in
input order, or a single tensor for a single-input model; labels likewise by output names.
``{'features': ..., 'sample_weights': ...}`` passes sample weights, as in Keras 2.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import re
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from bridge.estimator_spec import EstimatorSpec
from bridge.export_output import ExportOutput, PredictOutput
from bridge.mode_keys import ModeKeys


_SAMPLE_WEIGHT_KEYS = {"features", "sample_weights"}


class MissingKeysError(KeyError):
    """A features or labels dict lacks some of the model's input or output names."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


# -- conversion-time description of the model ---------------------------------------------------
@dataclasses.dataclass
class ModelSpec:
    """What the generated model_fn needs, captured eagerly from the Keras model at conversion."""

    model_config: dict  # serialized model, without compile (and, subclassed, build) config
    compile_config: dict  # serialized compile arguments
    custom_objects: dict
    kind: str  # "functional", "sequential" or "subclassed"
    input_names: list[str] | None  # None: pass features through unchanged
    input_structure: str | None  # "dict", "list" or "single"
    input_dtypes: list[str] | None
    input_signature: Any  # nest of tf.TensorSpec to build the model without data, or None
    output_names: list[str] | None
    weights: list[np.ndarray]
    optimizer_weights: list[np.ndarray] | None

    def deserialize(self) -> Any:
        import keras

        with keras.saving.custom_object_scope(self.custom_objects):
            # The config was serialized in this process from a live model (a .keras file is
            # loaded with Keras's safe mode first), so Lambda layers may be rebuilt.
            return keras.saving.deserialize_keras_object(
                copy.deepcopy(self.model_config), custom_objects=self.custom_objects, safe_mode=False
            )

    def deserialize_compile_config(self) -> dict:
        import keras

        with keras.saving.custom_object_scope(self.custom_objects):
            config = keras.saving.deserialize_keras_object(
                copy.deepcopy(self.compile_config), custom_objects=self.custom_objects
            )
        return dict(config)

    def dummy_inputs(self) -> Any:
        if self.input_signature is None:
            raise ValueError(
                "The model's input shapes are unknown: build the Keras model (call it once or "
                "call model.build) before converting it, or train the estimator first."
            )
        return tf.nest.map_structure(
            lambda s: tf.zeros([1 if d is None else d for d in s.shape], s.dtype), self.input_signature
        )


def _is_functional(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Sequential) or type(model).__name__ == "Functional" or (
        hasattr(model, "_inputs_struct") and getattr(model, "_nodes_by_depth", None) is not None
    )


def _custom_objects(model: Any, custom_objects: Mapping[str, Any] | None) -> dict:
    """The caller's custom objects plus every non-Keras class the model is made of."""
    found: dict[str, Any] = {}
    layers = [model]
    if hasattr(model, "_flatten_layers"):
        layers = list(model._flatten_layers(include_self=True))
    for layer in layers:
        cls = type(layer)
        if not cls.__module__.startswith("keras"):
            found.setdefault(cls.__name__, cls)
    found.update(dict(custom_objects or {}))
    return found


def _tensor_spec(shape: Any, dtype: Any, name: str | None = None) -> tf.TensorSpec:
    return tf.TensorSpec([None if d is None else int(d) for d in shape], tf.as_dtype(dtype or "float32"), name=name)


def _layer_name(tensor: Any) -> str:
    return tensor._keras_history.operation.name


def _input_description(model: Any, kind: str) -> tuple:
    """(names, structure, dtypes, signature) of the model's inputs; Nones for subclassed models."""
    if kind != "subclassed" and model.built:
        struct = getattr(model, "_inputs_struct", None)
        if struct is None and kind == "sequential":
            struct = model.inputs[0] if len(model.inputs) == 1 else list(model.inputs)
        if isinstance(struct, Mapping):
            names, tensors, structure = list(struct), list(struct.values()), "dict"
        elif isinstance(struct, (list, tuple)):
            tensors, structure = list(struct), "list"
            names = [_layer_name(t) for t in tensors]
        else:
            tensors, structure = [struct], "single"
            names = [_layer_name(struct)]
        if kind == "sequential":
            layer0 = model._layers[0] if getattr(model, "_layers", None) else None
            if layer0 is not None and type(layer0).__name__ == "InputLayer":
                names = [layer0.name]
        dtypes = [t.dtype for t in tensors]
        specs = [_tensor_spec(t.shape, t.dtype, n) for t, n in zip(tensors, names)]
        if structure == "dict":
            signature: Any = dict(zip(names, specs))
        elif structure == "list":
            signature = specs
        else:
            signature = specs[0]
        return names, structure, dtypes, signature
    signature = None
    build = model.get_build_config() if model.built and hasattr(model, "get_build_config") else None
    shapes = (build or {}).get("input_shape") if isinstance(build, Mapping) else None
    if shapes is not None:
        dtype = getattr(model, "input_dtype", None) or "float32"

        def is_shape(value):
            return isinstance(value, (list, tuple)) and all(d is None or isinstance(d, int) for d in value)

        if is_shape(shapes):
            signature = _tensor_spec(shapes, dtype)
        elif isinstance(shapes, Mapping):
            signature = {k: _tensor_spec(v, dtype) for k, v in shapes.items()}
        elif isinstance(shapes, (list, tuple)):
            signature = [_tensor_spec(v, dtype) for v in shapes]
    return None, None, None, signature


def _output_names(model: Any, kind: str) -> list[str] | None:
    if kind == "subclassed" or not model.built:
        return None
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, Mapping):
        return list(struct)
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    if kind == "sequential":
        return [model.layers[-1].name]
    return [_layer_name(t) for t in model.outputs]


def describe(model: Any, custom_objects: Mapping[str, Any] | None) -> ModelSpec:
    """Validates a compiled model and captures everything the generated model_fn needs."""
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"keras_model must be a keras.Model, given: {type(model).__name__}")
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise ValueError(
            "The given keras model has not been compiled yet. Please compile the model with "
            "`model.compile()` before calling `model_to_estimator()`."
        )
    objects = _custom_objects(model, custom_objects)
    kind = "sequential" if isinstance(model, keras.Sequential) else ("functional" if _is_functional(model) else "subclassed")
    if kind == "subclassed":
        try:
            with keras.saving.custom_object_scope(objects):
                type(model).from_config(model.get_config())
        except Exception as error:  # any failure means the model cannot be rebuilt per trace
            raise ValueError(
                "Subclassed `Model`s passed to `model_to_estimator` must implement `get_config` and "
                "`from_config` (Keras 3 provides both when the constructor only takes plain Python "
                f"values). Rebuilding {type(model).__name__} from its config failed: {error}"
            ) from error
    try:
        config = keras.saving.serialize_keras_object(model)
        compile_config = model.get_compile_config()
    except Exception as error:
        raise ValueError(f"model_to_estimator could not serialize the Keras model: {error}") from error
    config.pop("compile_config", None)
    if isinstance(compile_config, Mapping) and isinstance(compile_config.get("optimizer"), Mapping):
        compile_config = dict(compile_config, optimizer=_auto_named(compile_config["optimizer"]))
    if kind == "subclassed":
        # Built by its first call inside model_fn, so its variables get Keras paths as keys.
        config.pop("build_config", None)
    names, structure, dtypes, signature = _input_description(model, kind)
    optimizer = model.optimizer
    optimizer_weights = None
    if getattr(optimizer, "built", False) and optimizer.variables:
        optimizer_weights = [np.array(v.numpy()) for v in optimizer.variables]
    return ModelSpec(
        model_config=config,
        compile_config=compile_config,
        custom_objects=objects,
        kind=kind,
        input_names=names,
        input_structure=structure,
        input_dtypes=[str(d) for d in dtypes] if dtypes else None,
        input_signature=signature,
        output_names=_output_names(model, kind),
        weights=[np.array(v.numpy()) for v in model.weights],
        optimizer_weights=optimizer_weights,
    )


def assign_eagerly(variables: Sequence[Any], values: Sequence[np.ndarray], what: str) -> None:
    if len(variables) != len(values):
        raise ValueError(f"{what}: the rebuilt model has {len(variables)} variables, the Keras model {len(values)}.")
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(
                f"{what}: variable '{variable.path}' has shape {tuple(variable.shape)} in the rebuilt "
                f"model but {tuple(value.shape)} in the Keras model."
            )
    with tf.init_scope():
        for variable, value in zip(variables, values):
            variable.assign(value)


def _missing_keys_message(what: str, names: Sequence[str], given: Sequence[str], missing: Sequence[str]) -> str:
    return (
        f"The dictionary passed into {what} does not have the expected {'inputs' if what == 'features' else 'outputs'} keys "
        f"defined in the keras model.\n\tExpected keys: {set(names)}\n\t{what} keys: {set(given)}\n\t"
        f"Missed keys: {set(missing)}"
    )


def _by_names(values: Any, names: list[str], what: str) -> list[Any]:
    """Orders features (or labels) by the model's input (or output) names."""
    if isinstance(values, Mapping):
        missing = [n for n in names if n not in values]
        if missing:
            raise MissingKeysError(_missing_keys_message(what, names, list(values), missing))
        return [values[n] for n in names]
    if isinstance(values, (list, tuple)):
        if len(values) != len(names):
            raise ValueError(f"The model has {len(names)} {what} entries {names}, but {len(values)} were given.")
        return list(values)
    if len(names) != 1:
        kind = "inputs" if what == "features" else "outputs"
        raise ValueError(
            f"The model has {len(names)} {kind} {names}: {what} must be a dict keyed by these names "
            f"(or a list in this order), not a single tensor."
        )
    return [values]


def _restructure(values: list[Any], names: list[str], structure: str) -> Any:
    if structure == "dict":
        return dict(zip(names, values))
    if structure == "list":
        return list(values)
    return values[0]


@contextlib.contextmanager
def keras_path_names() -> Iterator[None]:
    """Names variables that Keras initialises late by their Keras path.

    A subclassed model without ``build()`` is built by a symbolic run of ``call``; Keras then
    creates its variables afterwards, outside the sublayers' name scopes, so the store would
    key them ``sub/kernel``, ``sub/kernel_1``. Keras's pending list tells which variable is
    being created: its path (``sub/dense/kernel``) becomes the name, hence the key.
    """
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - Keras internals moved: keep the default keys
        yield
        return

    def creator(next_creator, **kwargs):
        pending = global_state.get_global_attribute("uninitialized_variables") or []
        name = kwargs.get("name")
        for variable in pending:
            if getattr(variable, "_value", 0) is None:
                if name is not None and variable.name == str(name) and variable.path != variable.name:
                    kwargs["name"] = variable.path
                break
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield


def _auto_named(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """Drops the process-dependent counter from an automatic optimizer name (``adam_3``).

    Keras numbers automatic names per process; the name prefixes the optimizer's checkpoint
    keys, which must not depend on how many optimizers a script created before.
    """
    inner = config.get("config") if isinstance(config, Mapping) else None
    if not isinstance(inner, Mapping) or not isinstance(inner.get("name"), str):
        return config
    try:
        from keras.src.utils.naming import to_snake_case
    except ImportError:  # pragma: no cover
        return config
    base = to_snake_case(str(config.get("class_name", "")))
    if base and re.fullmatch(re.escape(base) + r"(_\d+)?", inner["name"]):
        config = dict(config)
        config["config"] = dict(inner, name=base)
    return config


def check_export_outputs(export_outputs: Mapping[str, type], output_names: Sequence[str]) -> None:
    missing = [k for k in export_outputs if k not in output_names]
    if missing:
        raise MissingKeysError(
            "The given `export_outputs` does not cover requested outputs of the keras model.\n\t"
            f"Expected keys: {set(output_names)}\n\texport_outputs keys: {set(export_outputs)}\n\t"
            f"Missed keys: {set(missing)}"
        )


class KerasModelFn:
    """The model_fn ``model_to_estimator`` generates: ``(features, labels, mode, config)``."""

    def __init__(self, spec: ModelSpec, metric_names_map: Mapping[str, str] | None, export_outputs: Mapping[str, type] | None) -> None:
        self.spec = spec
        self.metric_names_map = dict(metric_names_map) if metric_names_map is not None else None
        self.export_outputs = dict(export_outputs or {})
        self.seen_input_signature = None  # features seen by the last trace, to rebuild without data

    # -- features, labels, predictions ------------------------------------------------------
    def _inputs(self, features: Any) -> Any:
        spec = self.spec
        if spec.input_names is None:
            return features
        values = _by_names(features, spec.input_names, "features")
        out = []
        for value, dtype in zip(values, spec.input_dtypes):
            value = tf.convert_to_tensor(value)
            target = tf.as_dtype(dtype)
            if value.dtype != target and value.dtype.is_floating and target.is_floating:
                value = tf.cast(value, target)
            out.append(value)
        return _restructure(out, spec.input_names, spec.input_structure)

    def _output_names(self, y_pred: Any) -> list[str]:
        if self.spec.output_names is not None:
            return self.spec.output_names
        if isinstance(y_pred, Mapping):
            return list(y_pred)
        if isinstance(y_pred, (list, tuple)):
            return [f"output_{i + 1}" for i in range(len(y_pred))]
        return ["output_1"]

    def _targets(self, labels: Any, y_pred: Any) -> Any:
        names = self._output_names(y_pred)
        if self.spec.output_names is None and not isinstance(y_pred, Mapping) and not isinstance(labels, Mapping):
            return labels
        values = _by_names(labels, names, "labels")
        if isinstance(y_pred, Mapping):
            return dict(zip(names, values))
        if isinstance(y_pred, (list, tuple)):
            return list(values)
        return values[0]

    def _sample_weights(self, sample_weights: Any, y_pred: Any) -> Any:
        if sample_weights is None or not isinstance(sample_weights, Mapping):
            return sample_weights
        names = self._output_names(y_pred)
        unknown = sorted(set(sample_weights) - set(names))
        if unknown:
            raise ValueError(f"sample_weights has keys {unknown} that are not output names of the model: {names}.")
        if isinstance(y_pred, Mapping):
            return {n: sample_weights.get(n) for n in names}
        if isinstance(y_pred, (list, tuple)):
            return [sample_weights.get(n) for n in names]
        return sample_weights.get(names[0])

    def _predictions(self, y_pred: Any) -> dict[str, tf.Tensor]:
        names = self._output_names(y_pred)
        if isinstance(y_pred, Mapping):
            return {n: y_pred[n] for n in names}
        if isinstance(y_pred, (list, tuple)):
            return dict(zip(names, y_pred))
        return {names[0]: y_pred}

    # -- the model_fn -----------------------------------------------------------------------
    def __call__(self, features, labels, mode, config):
        with keras_path_names():
            return self._model_fn(features, labels, mode)

    def _model_fn(self, features, labels, mode):
        sample_weights = None
        if isinstance(features, Mapping) and set(features) == _SAMPLE_WEIGHT_KEYS:
            sample_weights = features["sample_weights"]
            features = features["features"]
        x = self._inputs(features)
        self.seen_input_signature = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), x)
        model = self.spec.deserialize()
        takes_training = "training" in inspect.signature(model.call).parameters
        training = mode == ModeKeys.TRAIN

        def forward():
            return model(x, training=training) if takes_training else model(x)

        if mode == ModeKeys.PREDICT:
            y_pred = forward()
            self._set_starting_weights(model)
            predictions = self._predictions(y_pred)
            return EstimatorSpec(mode, predictions=predictions, export_outputs=self._export_outputs(predictions))

        compile_args = self.spec.deserialize_compile_config()
        model.compile(
            optimizer=compile_args.get("optimizer"),
            loss=compile_args.get("loss"),
            loss_weights=compile_args.get("loss_weights"),
            metrics=compile_args.get("metrics") if mode == ModeKeys.EVAL else None,
            weighted_metrics=compile_args.get("weighted_metrics") if mode == ModeKeys.EVAL else None,
            run_eagerly=False,
            jit_compile=False,
        )
        if mode == ModeKeys.TRAIN:
            with tf.GradientTape() as tape:
                y_pred = forward()
                with tape.stop_recording():
                    self._set_starting_weights(model)
                y = self._targets(labels, y_pred)
                sw = self._sample_weights(sample_weights, y_pred)
                loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw, training=True)
                # Under tf.distribute: the mean of the replicas' gradients (bridge's loss
                # semantics, see bridge._step.estimator_loss_semantics); the optimizer sums them.
                replicas = tf.distribute.get_strategy().num_replicas_in_sync
                scaled = loss / replicas if replicas > 1 else loss
                scaled = model.optimizer.scale_loss(scaled) if hasattr(model.optimizer, "scale_loss") else scaled
            weights = model.trainable_weights
            if not weights:
                raise ValueError("The Keras model has no trainable weights: there is nothing to train.")
            gradients = tape.gradient(scaled, weights)
            model.optimizer.apply_gradients(zip(gradients, weights))
            if self.spec.optimizer_weights is not None:
                assign_eagerly(model.optimizer.variables, self.spec.optimizer_weights, "optimizer state")
            global_step = tf.compat.v1.train.get_global_step()
            with tf.control_dependencies([g for g in gradients if g is not None]):
                train_op = global_step.assign_add(1, read_value=False)
            return EstimatorSpec(mode, loss=loss, train_op=train_op)

        # EVAL
        y_pred = forward()
        self._set_starting_weights(model)
        y = self._targets(labels, y_pred)
        sw = self._sample_weights(sample_weights, y_pred)
        loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw, training=False)
        return EstimatorSpec(mode, loss=loss, eval_metric_ops=self._metric_ops(model, y, y_pred, sw))

    def _set_starting_weights(self, model: Any) -> None:
        assign_eagerly(model.weights, self.spec.weights, "starting weights")

    def _metric_ops(self, model: Any, y: Any, y_pred: Any, sample_weight: Any) -> dict[str, Any]:
        """Every compiled metric, updated on this batch, under the name Keras reports it.

        A metric the C++ engine offers (same class, same configuration) becomes a host metric op
        (``bridge.metrics``), fed on the host while the next batch runs; any other stays a Keras
        metric object updated inside the traced step.
        """
        compiled = getattr(model, "_compile_metrics", None)
        results: dict[str, Any] = {} if compiled is None else _compiled_metric_ops(compiled, y, y_pred, sample_weight)
        names = list(results)
        renames = self.metric_names_map
        if renames is not None:
            missing = [n for n in names if n not in renames]
            if missing:
                raise ValueError(
                    f"Invalid `metric_names_map`. The following keras model metric names: {missing} do "
                    "not exist in the `metric_names_map` dictionary."
                )
            unexpected = [k for k in renames if k not in results]
            if unexpected:
                raise ValueError(
                    f"Invalid `metric_names_map`. There are unexpected keys in the `metric_names_map` "
                    f"dictionary: {unexpected}. Expected keys: {names}."
                )
        # Keras metric objects are read in cross-replica context under eval_distribute, where their
        # SyncOnRead state sums every replica; host metric ops receive every replica's rows.
        return {renames[name] if renames is not None else name: value for name, value in results.items()}

    def _export_outputs(self, predictions: dict[str, tf.Tensor]) -> dict[str, ExportOutput]:
        outputs: dict[str, ExportOutput] = {
            tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: PredictOutput(predictions)
        }
        check_export_outputs(self.export_outputs, list(predictions))
        for name, cls in self.export_outputs.items():
            outputs[name] = cls(predictions[name])
        return outputs


def _host_metric_for(metric: Any) -> Any:
    """The ``bridge.metrics`` twin of a Keras metric (same class name and configuration), or None."""
    try:
        import bridge.metrics as host_metrics
    except ImportError:  # the C++ extension is not built: Keras metrics it is
        return None
    twin = getattr(host_metrics, type(metric).__name__, None)
    if not (isinstance(twin, type) and issubclass(twin, host_metrics.StreamingMetric)):
        return None
    accepted = inspect.signature(twin.__init__).parameters
    config = metric.get_config()
    if any(key not in accepted and value not in (None, False) for key, value in config.items()):
        return None  # an option the C++ engine does not have (e.g. AUC label_weights)
    try:
        return twin(**{key: value for key, value in config.items() if key in accepted})
    except (TypeError, ValueError):
        return None


def _as_update_arguments(values: Mapping[str, Any]) -> dict[str, Any]:
    return {"y_true": values["y_true"], "y_pred": values["y_pred"], "sample_weight": values.get("sample_weight")}


def _compiled_metric_ops(compiled: Any, y: Any, y_pred: Any, sample_weight: Any) -> dict[str, Any]:
    """Each compiled metric as an eval_metric_ops value, in Keras's order and under Keras's names.

    Mirrors ``CompileMetrics.update_state``: one metric list per output, the weighted lists
    receiving the sample weights; the names come from ``CompileMetrics.result()``, whose order
    is the same.
    """
    from bridge.metrics.ops import HostMetricOp

    if not compiled.built:
        compiled.build(y, y_pred)
    y_true, y_pred = compiled._flatten_y(y), compiled._flatten_y(y_pred)  # pylint: disable=protected-access
    if sample_weight is None:
        weights = [None] * len(y_true)
    else:
        weights = compiled._flatten_y(sample_weight)  # pylint: disable=protected-access
        if len(weights) < len(y_true):
            weights = [weights[0]] * len(y_true)
    entries = []
    for lists, weighted in ((compiled._flat_metrics, False), (compiled._flat_weighted_metrics, True)):  # pylint: disable=protected-access
        for metric_list, y_t, y_p, s_w in zip(lists, y_true, y_pred, weights):
            if metric_list:
                entries.extend((metric, y_t, y_p, s_w if weighted else None) for metric in metric_list.metrics)
    values: dict[str, Any] = {}
    for name, (metric, y_t, y_p, s_w) in zip(list(compiled.result()), entries):
        twin = _host_metric_for(metric)
        if twin is not None:
            values[name] = HostMetricOp(twin, {"y_true": y_t, "y_pred": y_p, "sample_weight": s_w}, _as_update_arguments)
        else:
            metric.update_state(y_t, y_p, sample_weight=s_w)
            values[name] = metric
    return values


# -- public API ---------------------------------------------------------------------------------
