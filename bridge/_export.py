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
from bridge.export import ServingInputReceiver, TensorServingInputReceiver
from bridge.export_output import ExportOutput, Signature
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


class _ServingGraph:
    """The receiver + PREDICT model_fn traced once, with the model's variables restored."""

    def __init__(self, estimator: Any, serving_input_receiver_fn: Callable, checkpoint_path: str) -> None:
        self.store = VariableStore()
        found: dict[str, Any] = {}

        def build():
            with self.store.scope():
                receiver = serving_input_receiver_fn()
                if not isinstance(receiver, (ServingInputReceiver, TensorServingInputReceiver)):
                    raise TypeError(
                        "serving_input_receiver_fn must return a bridge.export.ServingInputReceiver or "
                        f"TensorServingInputReceiver; it returned {receiver!r}."
                    )
                found["receiver"] = receiver
                found["spec"] = estimator._call_model_fn(receiver.features, None, ModeKeys.PREDICT)
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
        for name, tensors in (self.receiver.receiver_tensors_alternatives or {}).items():
            groups.append((name, tensors))
        functions: dict[str, Any] = {}
        methods: dict[str, str] = {}
        excluded: dict[str, str] = {}
        for group_name, receiver_tensors in groups:
            for key, export_output in self.spec.export_outputs.items():
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
        if tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY not in functions:
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

    def trackable(self) -> tf.Module:
        root = tf.Module()
        setattr(root, _VARIABLES_ATTRIBUTE, dict(self.store.variables))
        root.estimator_resources = list(self._resources.resources)
        return root


def _set_method_names(export_dir: str, methods: Mapping[str, str], as_text: bool) -> None:
    """Writes the signatures' TF Serving method names (TF2's writer always says "predict")."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, _SAVED_MODEL_PB)
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as handle:
        proto.ParseFromString(handle.read())
    changed = False
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
    """Exports the PREDICT graph as a SavedModel in ``<export_dir_base>/<timestamp>``.

    Returns the export directory as bytes, as tf.estimator did. Signatures: one per
    ``EstimatorSpec.export_outputs`` key (``serving_default`` always among them for the
    default export outputs), tag ``serve``.
    """
    if not serving_input_receiver_fn:
        raise ValueError("An input_receiver_fn must be defined.")
    if experimental_mode != ModeKeys.PREDICT:
        if experimental_mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
            raise NotImplementedError(
                f"export_saved_model(experimental_mode={experimental_mode!r}) is not supported by bridge: "
                "TF2 SavedModels hold functions, not a train_op/metric graph to resume in a Session. "
                "Export the PREDICT graph (the default)."
            )
        raise ValueError(f"experimental_mode must be one of {ModeKeys.TRAIN!r}, {ModeKeys.EVAL!r}, {ModeKeys.PREDICT!r}; given {experimental_mode!r}.")
    checkpoint_path = _resolve_checkpoint(estimator, checkpoint_path)
    export_dir_base = os.fsdecode(export_dir_base)
    graph = _ServingGraph(estimator, serving_input_receiver_fn, checkpoint_path)
    functions, methods = graph.signatures()

    export_dir = timestamped_export_dir(export_dir_base)
    temp_dir = temp_export_dir(export_dir)
    try:
        tf.saved_model.save(
            graph.trackable(),
            temp_dir,
            signatures=functions,
        )
        _set_method_names(temp_dir, methods, as_text)
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
