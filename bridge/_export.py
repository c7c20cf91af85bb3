"""``Estimator.export_saved_model``: a TF2 SavedModel serving the model_fn's PREDICT graph.

How it is built (same single-trace idea as train/evaluate/predict, docs/design.md):

1. ``serving_input_receiver_fn`` and ``model_fn(features, None, PREDICT)`` run once inside
   ``tf.compat.v1.wrap_function``, under a fresh ``VariableStore``: the receiver's
   ``tf.compat.v1.placeholder``s are ordinary graph inputs there, and the model's variables
   are created eagerly, outside the graph, exactly as in ``predict``.
2. The variables are restored from the checkpoint (the given one, the latest in model_dir,
   or the warm-start source).
3. Each signature is the traced graph pruned from its receiver tensors to its outputs, a
   concrete function whose arguments are the receiver tensors (keyed as tf.estimator keyed
   them). ``tf.saved_model.save`` writes it with the variables; the method names TF2's
   writer leaves as "predict" are then set to classify/regress where the export output is one.
4. Everything is written to ``<base>/temp-<timestamp>`` and renamed to ``<base>/<timestamp>``
   at the end, so a reader (a model server polling ``<base>``) never sees a partial export.

The SavedModel's variables are keyed by the object graph (TF2 format); the root object
tracks them as ``estimator_variables[<checkpoint key>]`` (see ``saved_model_variable_keys``).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Mapping

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.python.trackable import resource

from bridge import _checkpoints, warm_start
from bridge._variables import VariableStore
from bridge._api_names import api_name
from bridge._host_metrics import is_host_metric_op
from bridge.export import ServingInputReceiver, SupervisedInputReceiver, TensorServingInputReceiver
from bridge.export_output import SUPERVISED_TRAINING_METHOD, EvalOutput, ExportOutput, Signature
from bridge.mode_keys import ModeKeys

logger = logging.getLogger("bridge")

MAX_DIRECTORY_CREATION_ATTEMPTS = 10
_VARIABLES_ATTRIBUTE = "estimator_variables"
_SAVED_MODEL_PB = "saved_model.pb"
_SAVED_MODEL_PBTXT = "saved_model.pbtxt"
_ASSETS_EXTRA = "assets.extra"


def _now() -> float:
    """The clock export directories are named from (a function so tests can replace it)."""
    return time.time()


def timestamped_export_dir(export_dir_base: str) -> str:
    """``<base>/<seconds since epoch>`` that does not exist yet (waits a second on a clash)."""
    for attempt in range(1, MAX_DIRECTORY_CREATION_ATTEMPTS + 1):
        result = os.path.join(export_dir_base, str(int(_now())))
        if not tf.io.gfile.exists(result) and not tf.io.gfile.exists(temp_export_dir(result)):
            return result
        logger.warning(
            "Directory %s already exists; retrying (attempt %d/%d)", result, attempt, MAX_DIRECTORY_CREATION_ATTEMPTS
        )
        time.sleep(1)
    raise RuntimeError(
        f"Failed to obtain a unique export directory name after {MAX_DIRECTORY_CREATION_ATTEMPTS} attempts."
    )


def temp_export_dir(export_dir: str) -> str:
    """Where ``export_dir`` is written before it is renamed into place."""
    head, tail = os.path.split(export_dir)
    return os.path.join(head, "temp-" + tail)


_EXPORT_ADVICE = (
    "Cannot export from it: pass checkpoint_path=<an intact checkpoint prefix> (a model.ckpt-<step> "
    "whose .index and .data files are complete) to export that checkpoint."
)


def _resolve_checkpoint(estimator: Any, checkpoint_path: str | None) -> str:
    """The given checkpoint, else model_dir's newest intact one, else the warm-start source.

    model_dir is read with training's recovery rule (``Estimator.latest_checkpoint``): a
    damaged newest checkpoint is skipped with a WARNING; checkpoint files of which none is intact
    are refused (``CheckpointRecoveryError`` naming them), never exported from another source.
    """
    if checkpoint_path:
        return os.fsdecode(checkpoint_path)
    try:
        latest = estimator.latest_checkpoint()  # a subclass may redefine it, as in tf.estimator
    except _checkpoints.CheckpointRecoveryError as error:
        raise error.with_advice(_EXPORT_ADVICE) from None
    if latest:
        return latest
    settings = getattr(estimator, "_warm_start_settings", None)
    if settings is not None:
        return warm_start.source_checkpoint(settings.ckpt_to_initialize_from)
    raise ValueError(f"Couldn't find trained model at {estimator.model_dir}.")


class _TrainOutput(EvalOutput):
    """A TRAIN-mode export's outputs: EvalOutput's keys under 2.15's ``tensorflow/supervised/training``."""

    method_name = SUPERVISED_TRAINING_METHOD


# experimental_mode -> (MetaGraph tag and signature key, outputs class), as 2.15 wrote them
_SUPERVISED = {ModeKeys.EVAL: ("eval", EvalOutput), ModeKeys.TRAIN: ("train", _TrainOutput)}


def _supervised_outputs(mode: str, spec: Any) -> dict[str, ExportOutput]:
    """The one signature of an EVAL or TRAIN export: loss, predictions and eval_metric_ops.

    Metrics computed on the host (``bridge.metrics``) cannot be part of a SavedModel; they are
    left out with a WARNING naming them.
    """
    key, output_class = _SUPERVISED[mode]
    on_host = sorted(name for name, metric in spec.eval_metric_ops.items() if is_host_metric_op(metric))
    if on_host:
        logger.warning(
            "Export of %s mode leaves out the metrics bridge computes on the host (bridge.metrics): %s. "
            "tf.compat.v1.metrics or Keras metric objects in eval_metric_ops are exported.", mode, on_host
        )
    metrics = {name: metric for name, metric in spec.eval_metric_ops.items() if not is_host_metric_op(metric)}
    return {key: output_class(loss=spec.loss, predictions=spec.predictions, metrics=metrics or None)}


def _order_metric_state(graph: Any, first: int, metric_variables: Any) -> None:
    """Makes each op created since ``first`` that uses a metric variable wait for the earlier writes to it.

    A v1 graph has no automatic control dependencies: without this, ``metrics/<name>/value``
    could read the metric's state before or after the call's update. Model variables are left
    alone, so a train_op built in model_fn is not pulled into the signature.
    """
    from bridge._prune import captured_from_outside, variable_handles, written_resources

    handles = variable_handles(metric_variables)
    writes: dict[int, list[tf.Operation]] = {}
    for op in graph.get_operations()[first:]:
        used = {id(captured_from_outside(graph, t)) for t in op.inputs if t.dtype == tf.resource} & handles
        for handle in used:
            for write in writes.get(handle, ()):
                if write not in op.control_inputs:
                    op._add_control_input(write)  # pylint: disable=protected-access
        for tensor in written_resources(op):
            handle = id(captured_from_outside(graph, tensor))
            if handle in handles:
                writes.setdefault(handle, []).append(op)


class _ServingGraph:
    """The receiver + model_fn traced once (PREDICT, or EVAL/TRAIN), with the model's variables restored.

    For EVAL and TRAIN (``export_saved_model(experimental_mode=...)``) the receiver is a
    ``SupervisedInputReceiver`` (features and labels), and every op reading a metric variable
    runs after the writes to it that model_fn made before it (``_order_metric_state``), as in
    evaluate's step: ``metrics/<name>/value`` includes this call's batch.
    """

    def __init__(self, estimator: Any, serving_input_receiver_fn: Callable, checkpoint_path: str,
                 mode: str = ModeKeys.PREDICT) -> None:
        self.store = VariableStore()
        self.mode = mode
        found: dict[str, Any] = {}
        supervised = mode != ModeKeys.PREDICT

        def build():
            # tf_keras (TF_USE_LEGACY_KERAS=1) takes a graph named "wrapped_function..." for a TF1
            # graph and turns the layers a model calls there into TFOpLambda layers (a Sequential
            # with BatchNormalization then serves wrong numbers). Named otherwise, it traces the
            # model as in the training step's function.
            graph = tf.compat.v1.get_default_graph()
            graph.name = "bridge_serving_graph"
            with self.store.scope():
                receiver = serving_input_receiver_fn()
                if supervised and not isinstance(receiver, SupervisedInputReceiver):
                    raise TypeError(
                        f"An export of {mode} mode needs an input_receiver_fn returning a "
                        f"{api_name('export.SupervisedInputReceiver')} (features and labels), such as "
                        f"{api_name('experimental.build_raw_supervised_input_receiver_fn')}(...); it returned {receiver!r}."
                    )
                if not supervised and not isinstance(receiver, (ServingInputReceiver, TensorServingInputReceiver)):
                    raise TypeError(
                        f"serving_input_receiver_fn must return a {api_name('export.ServingInputReceiver')} or "
                        f"{api_name('export.TensorServingInputReceiver')}; it returned {receiver!r}."
                    )
                found["receiver"] = receiver
                if not supervised:
                    found["spec"] = estimator._call_model_fn(receiver.features, None, ModeKeys.PREDICT)
                    found["outputs"] = found["spec"].export_outputs
                    return []
                first = len(tf.compat.v1.get_default_graph().get_operations())
                found["spec"] = estimator._call_model_fn(receiver.features, receiver.labels, mode)
                found["outputs"] = _supervised_outputs(mode, found["spec"])
                _order_metric_state(tf.compat.v1.get_default_graph(), first, self.store.local_variables.values())
            return []

        seed = estimator.config.tf_random_seed
        if seed is not None:
            tf.random.set_seed(seed)
        # Lookup tables (vocabulary feature columns, tf.lookup in model_fn) are resources created
        # outside the traced graph; the SavedModel must track them to save and re-initialise them.
        self._resources = resource.ResourceTracker()
        with resource.resource_tracker_scope(self._resources):
            self.function = tf.compat.v1.wrap_function(build, signature=[])
        self.receiver: ServingInputReceiver = found["receiver"]
        self.spec = found["spec"]
        self.export_outputs: Mapping[str, ExportOutput] = found["outputs"]
        self.store.adopt(list(self.function.graph.variables))
        _checkpoints.restore(checkpoint_path, self.store.saveable)

    def signatures(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Signature key -> concrete function, and signature key -> method name.

        One signature per export output (``serving_default`` among them), plus
        ``'<alternative>:<key>'`` per receiver alternative. A signature that cannot be
        served (classify over a float input, an output needing an input it lacks) is left
        out and logged, as tf.estimator did.
        """
        groups = [(None, self.receiver.receiver_tensors)]
        for name, tensors in (getattr(self.receiver, "receiver_tensors_alternatives", None) or {}).items():
            groups.append((name, tensors))
        functions: dict[str, Any] = {}
        methods: dict[str, str] = {}
        excluded: dict[str, str] = {}
        for group_name, receiver_tensors in groups:
            for key, export_output in self.export_outputs.items():
                signature_key = key if group_name is None else f"{group_name}:{key}"
                try:
                    signature = self._signature(export_output, receiver_tensors)
                    functions[signature_key] = self._prune(signature_key, signature)
                except ValueError as error:
                    excluded[signature_key] = str(error)
                    continue
                methods[signature_key] = signature.method_name
        for key, reason in excluded.items():
            logger.info("Signature %r EXCLUDED from export: it cannot be served: %s", key, reason)
        if not functions:
            raise ValueError(
                "The export has no servable signature: "
                + "; ".join(f"{key}: {reason}" for key, reason in excluded.items())
            )
        if self.mode == ModeKeys.PREDICT and tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY not in functions:
            logger.warning("Export includes no default signature (%r)!", tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY)
        logger.info("Signatures INCLUDED in export: %s", sorted(functions))
        return functions, methods

    @staticmethod
    def _signature(export_output: ExportOutput, receiver_tensors: Mapping[str, Any]) -> Signature:
        signature = export_output.signature(receiver_tensors)
        if not signature.servable():
            raise ValueError(f"{signature} is not a valid {signature.method_name} signature.")
        return signature

    def _prune(self, signature_key: str, signature: Signature) -> Any:
        from tensorflow.python.eager import lift_to_graph  # for its error type only
        from tensorflow.python.framework import func_graph

        names = list(signature.inputs)
        feeds = [signature.inputs[name] for name in names]
        for name, tensor in zip(names, feeds):
            if not isinstance(tensor, tf.Tensor):
                raise ValueError(
                    f"receiver tensor {name!r} is a {type(tensor).__name__}; SavedModel signatures take "
                    "dense tensors (feed serialized tf.Examples or dense placeholders instead)."
                )
        outputs = {}
        for name, tensor in signature.outputs.items():
            if not isinstance(tensor, tf.Tensor):
                raise ValueError(f"output {name!r} is a {type(tensor).__name__}, not a dense Tensor.")
            outputs[name] = tensor
        input_signature = ((), func_graph.convert_structure_to_signature(dict(zip(names, feeds))))
        try:
            function = self.function.prune(
                feeds=feeds, fetches=outputs, input_signature=input_signature, are_keyword_args_also_positional=True
            )
        except lift_to_graph.UnliftableError as error:
            raise ValueError(
                f"an output of signature {signature_key!r} depends on a placeholder that is not one of its "
                f"inputs {names}: {error}"
            ) from None
        # The signature's arguments are named by receiver key, as in tf.estimator's SignatureDefs
        # (TensorFlow's own v1 SavedModel loader names pruned signatures the same way).
        function._arg_keywords = names  # pylint: disable=protected-access
        function._num_positional_args = 1 if len(names) == 1 else 0  # pylint: disable=protected-access
        return function

    def track(self, root: tf.Module, suffix: str = "") -> None:
        """Makes ``root`` track this graph's variables and resources (under names ending in ``suffix``)."""
        setattr(root, _VARIABLES_ATTRIBUTE + suffix, dict(self.store.variables))
        setattr(root, "estimator_resources" + suffix, list(self._resources.resources))


def _set_method_names(
    export_dir: str, methods: Mapping[str, str], as_text: bool, tags: Mapping[str, list[str]] | None = None
) -> None:
    """Writes the signatures' TF Serving method names (TF2's writer always says "predict").

    ``tags`` (signature key -> MetaGraph tags) splits TF2's one ``serve`` MetaGraph into one per
    set of tags, each with its own signatures, as 2.15 wrote ``eval`` / ``train`` exports. They
    share the graph and the variables; loaders pick a MetaGraph by its tags.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, _SAVED_MODEL_PB)
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as handle:
        proto.ParseFromString(handle.read())
    changed = False
    if tags and any(list(t) != [tf.saved_model.SERVING] for t in tags.values()):
        _split_meta_graph(proto, tags)
        changed = True
    for meta_graph in proto.meta_graphs:
        for key, method in methods.items():
            if key in meta_graph.signature_def and meta_graph.signature_def[key].method_name != method:
                meta_graph.signature_def[key].method_name = method
                changed = True
    fingerprint = os.path.join(export_dir, "fingerprint.pb")
    if as_text:
        with tf.io.gfile.GFile(os.path.join(export_dir, _SAVED_MODEL_PBTXT), "w") as handle:
            handle.write(text_format.MessageToString(proto))
        tf.io.gfile.remove(path)
        if tf.io.gfile.exists(fingerprint):  # it fingerprints saved_model.pb, which is gone
            tf.io.gfile.remove(fingerprint)
        return
    if not changed:
        return
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(proto.SerializeToString(deterministic=True))
    if tf.io.gfile.exists(fingerprint):
        try:
            from tensorflow.python.saved_model import fingerprinting_utils

            fingerprinting_utils.write_fingerprint(export_dir)
        except Exception:  # pragma: no cover - a stale fingerprint must not survive
            tf.io.gfile.remove(fingerprint)


def _split_meta_graph(proto: Any, tags: Mapping[str, list[str]]) -> None:
    """One MetaGraph per distinct tag list in ``tags`` (signature key -> tags), in first-seen order."""
    (single,) = proto.meta_graphs
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, key_tags in tags.items():
        groups.setdefault(tuple(key_tags), []).append(key)
    template = type(single)()
    template.CopyFrom(single)
    del proto.meta_graphs[:]
    for group_tags, keys in groups.items():
        meta_graph = proto.meta_graphs.add()
        meta_graph.CopyFrom(template)
        meta_graph.meta_info_def.tags[:] = list(group_tags)
        for key in list(meta_graph.signature_def):
            if key in tags and key not in keys:  # other modes' signatures (the init op's stays)
                del meta_graph.signature_def[key]


def _copy_assets_extra(export_dir: str, assets_extra: Mapping[str, str] | None) -> None:
    """Copies ``{destination relative to assets.extra: source path}`` into the export."""
    if not assets_extra:
        return
    base = os.path.join(export_dir, _ASSETS_EXTRA)
    for destination, source in assets_extra.items():
        destination = os.fsdecode(destination)
        if os.path.isabs(destination) or ".." in destination.split("/"):
            raise ValueError(f"assets_extra destination must be a path inside assets.extra; given {destination!r}.")
        target = os.path.join(base, destination)
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(os.fsdecode(source), target, overwrite=True)


def export_saved_model(
    estimator: Any,
    export_dir_base: str | bytes | os.PathLike,
    serving_input_receiver_fn: Callable,
    assets_extra: Mapping[str, str] | None = None,
    as_text: bool = False,
    checkpoint_path: str | None = None,
    experimental_mode: str = ModeKeys.PREDICT,
) -> bytes:
    """Exports the PREDICT (or EVAL / TRAIN) graph as a SavedModel in ``<export_dir_base>/<timestamp>``.

    Returns the export directory as bytes, as tf.estimator did. PREDICT: one signature per
    ``EstimatorSpec.export_outputs`` key (``serving_default`` always among them for the default
    export outputs), tag ``serve``. EVAL / TRAIN (``experimental_mode``), as 2.15 wrote them: one
    MetaGraph tagged ``eval`` / ``train`` with one signature of that key and method
    ``tensorflow/supervised/eval`` / ``training``, fed the receiver's features and labels
    (``build_raw_supervised_input_receiver_fn``), returning ``loss``, ``predictions/<key>``,
    ``metrics/<name>/value`` and ``metrics/<name>/update_op``. The metric state lives in the
    loaded object: each call adds its batch, so after feeding every batch of an evaluation the
    values equal ``evaluate``'s. A TRAIN export's signature does not train (2.15's did not run
    train_op either).
    """
    if not serving_input_receiver_fn:
        raise ValueError("An input_receiver_fn must be defined.")
    if experimental_mode not in (ModeKeys.PREDICT, ModeKeys.TRAIN, ModeKeys.EVAL):
        raise ValueError(f"experimental_mode must be one of {ModeKeys.TRAIN!r}, {ModeKeys.EVAL!r}, {ModeKeys.PREDICT!r}; given {experimental_mode!r}.")
    return export_all_saved_models(
        estimator, export_dir_base, {experimental_mode: serving_input_receiver_fn}, assets_extra, as_text, checkpoint_path
    )


def export_all_saved_models(
    estimator: Any,
    export_dir_base: str | bytes | os.PathLike,
    input_receiver_fn_map: Mapping[str, Callable],
    assets_extra: Mapping[str, str] | None = None,
    as_text: bool = False,
    checkpoint_path: str | None = None,
) -> bytes:
    """One SavedModel holding a MetaGraph per mode of ``input_receiver_fn_map`` (mode -> receiver fn).

    As 2.15's ``experimental_export_all_saved_models``: MetaGraphs in the order train, eval, serve,
    each with its mode's signatures; TRAIN and EVAL need supervised receivers. Each mode's graph
    is traced and restored on its own, so the variables are stored once per mode.
    """
    unknown = set(input_receiver_fn_map) - {ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT}
    if unknown or not input_receiver_fn_map:
        raise ValueError(
            f"input_receiver_fn_map must map some of {ModeKeys.TRAIN!r}, {ModeKeys.EVAL!r}, {ModeKeys.PREDICT!r} "
            f"to receiver fns; given keys {sorted(map(str, input_receiver_fn_map))}."
        )
    checkpoint_path = _resolve_checkpoint(estimator, checkpoint_path)
    export_dir_base = os.fsdecode(export_dir_base)
    root = tf.Module()
    functions: dict[str, Any] = {}
    methods: dict[str, str] = {}
    tags: dict[str, list[str]] = {}
    for mode in (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT):  # 2.15's MetaGraph order
        if input_receiver_fn_map.get(mode) is None:
            continue
        graph = _ServingGraph(estimator, input_receiver_fn_map[mode], checkpoint_path, mode)
        mode_functions, mode_methods = graph.signatures()
        clash = set(mode_functions) & set(functions)
        if clash:
            raise ValueError(f"Signature keys {sorted(clash)} of {mode} mode are used by another mode's export.")
        only_mode = len([m for m in input_receiver_fn_map if input_receiver_fn_map[m] is not None]) == 1
        graph.track(root, "" if mode == ModeKeys.PREDICT or only_mode else "_" + mode)
        functions.update(mode_functions)
        methods.update(mode_methods)
        mode_tags = [_SUPERVISED[mode][0]] if mode in _SUPERVISED else [tf.saved_model.SERVING]
        tags.update({key: mode_tags for key in mode_functions})

    export_dir = timestamped_export_dir(export_dir_base)
    temp_dir = temp_export_dir(export_dir)
    try:
        tf.saved_model.save(root, temp_dir, signatures=functions)
        _set_method_names(temp_dir, methods, as_text, tags)
        _copy_assets_extra(temp_dir, assets_extra)
        tf.io.gfile.rename(temp_dir, export_dir, overwrite=False)
    except BaseException:
        if tf.io.gfile.exists(temp_dir):
            tf.io.gfile.rmtree(temp_dir)
        raise
    logger.info("SavedModel written to: %s (from %s)", export_dir, checkpoint_path)
    return os.fsencode(export_dir)


def saved_model_variable_keys(export_dir: str | bytes) -> dict[str, str]:
    """Maps each estimator checkpoint key (``dense/kernel``) to its key in the export's variables.

    A bridge export stores variables in TF2's object-based format; this lets a name-based
    reader (warm-starting, ``tf.train.load_checkpoint``) find them.
    """
    prefix = os.path.join(os.fsdecode(export_dir), "variables", "variables")
    reader = tf.train.load_checkpoint(prefix)
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    root = graph.nodes[0]
    holder = next((child.node_id for child in root.children if child.local_name == _VARIABLES_ATTRIBUTE), None)
    if holder is None:
        return {}
    result = {}
    for child in graph.nodes[holder].children:
        node = graph.nodes[child.node_id]
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE":
                result[child.local_name] = attribute.checkpoint_key
    return result
