"""The one line that makes a legacy script's ``tf.estimator`` resolve to bridge.

``bridge.install_as_tf_estimator()``, called once at program start (before the script or a
library touches ``tf.estimator``), makes these resolve to bridge:

* ``tf.estimator.*`` and ``tf.compat.v1.estimator.*`` (``Estimator``, ``EstimatorSpec``,
  ``ModeKeys``, ``RunConfig``, the hooks, the canned estimators and heads, ``export``,
  ``inputs``, ``experimental``, ``train_and_evaluate`` ...);
* ``import tensorflow_estimator`` and any ``from tensorflow_estimator.python.estimator... import
  X`` that libraries use: every module under that package forwards its names to bridge;
* ``tf.compat.v1.train.LoggingTensorHook`` and ``ProfilerHook``, whose TensorFlow classes
  cannot work on TensorFlow 2 (the first refuses a list of graph tensors, the second cannot
  even be built eagerly): bridge's classes of the same name and arguments;
* the classes of ``tf.compat.v1.layers`` (``Layer``, ``Dense``, ``Conv2D``, ...), which Keras 3
  answers with "not available": bridge's, so legacy layers that subclass them at import time
  (``class MyLayer(tf.compat.v1.layers.Layer)``) work in model_fn with TF1's variable names.

Without the call nothing of TensorFlow is changed. Names bridge does not provide raise an
AttributeError that says so.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
from typing import Any

_PACKAGE = "tensorflow_estimator"
_V1 = "bridge.compat.v1.estimator"  # bridge's names, with the TF1 canned classes of tf.compat.v1.estimator
# Where a name used under tensorflow_estimator may live in bridge, in order. As in 2.15, the
# canned modules' plain names are the TF1 classes (``canned.dnn.DNNClassifier``) and their
# ``...V2`` names the TF2 ones (``canned.dnn.DNNClassifierV2``: bridge.DNNClassifier).
_SEARCHED = (_V1, "bridge.export", "bridge.inputs", "bridge.experimental", "bridge.hooks")
_V1_TRAIN_HOOKS = ("LoggingTensorHook", "ProfilerHook")


def _missing(what: str) -> AttributeError:
    return AttributeError(
        f"{what} is not provided by estimator-bridge (bridge.install_as_tf_estimator() maps tf.estimator to bridge). "
        "See docs/migration.md for what is supported and what replaces the rest."
    )


# The bridge module each namespace's names come from: the v1 API (tf.compat.v1.estimator, and
# tensorflow_estimator.estimator as in 2.15) has the TF1 canned classes.
_SOURCES = {"tf.compat.v1.estimator": _V1, f"{_PACKAGE}.estimator": _V1}


class EstimatorNamespace(types.ModuleType):
    """``tf.estimator`` / ``tf.compat.v1.estimator``: every name is bridge's of the same name."""

    def _source(self) -> Any:
        return importlib.import_module(_SOURCES.get(self.__name__, "bridge"))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return getattr(self._source(), name)
        except AttributeError:
            raise _missing(f"{self.__name__}.{name}") from None

    def __dir__(self) -> list[str]:
        return dir(self._source())


class _ForwardingModule(types.ModuleType):
    """A module under ``tensorflow_estimator``: its names are found in bridge (see ``_SEARCHED``)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self.__name__ == _PACKAGE and name == "estimator":
            return _namespace(f"{_PACKAGE}.estimator")
        if name.endswith("V2") and hasattr(importlib.import_module("bridge"), name[:-2]):
            return getattr(importlib.import_module("bridge"), name[:-2])
        for module_name in _SEARCHED:
            try:
                module = importlib.import_module(module_name)
            except ImportError:  # pragma: no cover - an optional part of bridge
                continue
            value = getattr(module, name, None)
            if value is not None and not isinstance(value, types.ModuleType):
                return value
        # Not a name bridge has: the import system then tries a submodule of that name.
        raise _missing(f"{self.__name__}.{name}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every import of ``tensorflow_estimator`` and its submodules with a forwarding module."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname == _PACKAGE or fullname.startswith(_PACKAGE + "."):
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        return _ForwardingModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # a package: submodules are found by this finder too


_namespaces: dict[str, EstimatorNamespace] = {}


def _namespace(name: str) -> EstimatorNamespace:
    if name not in _namespaces:
        _namespaces[name] = EstimatorNamespace(name, "tf.estimator's names, resolved to estimator-bridge.")
    return _namespaces[name]


def install_as_tf_estimator() -> None:
    """Makes ``tf.estimator``, ``tf.compat.v1.estimator`` and ``tensorflow_estimator`` resolve to bridge.

    Call once at program start, before the script or a library uses them. Idempotent. Without
    it, bridge changes nothing of TensorFlow.
    """
    import tensorflow as tf

    import bridge

    if _PACKAGE in sys.modules and not isinstance(sys.modules[_PACKAGE], _ForwardingModule):
        raise RuntimeError(
            "tensorflow_estimator (the real package) is already imported; call bridge.install_as_tf_estimator() "
            "before anything imports it, and uninstall tensorflow-estimator: it does not work with this TensorFlow."
        )
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    tf.estimator = _namespace("tf.estimator")
    tf.compat.v1.estimator = _namespace("tf.compat.v1.estimator")
    if hasattr(tf.compat, "v2"):
        tf.compat.v2.estimator = tf.estimator
    for name in _V1_TRAIN_HOOKS:
        setattr(tf.compat.v1.train, name, getattr(bridge, name))
    # tf.keras.estimator.model_to_estimator (tf.keras is Keras 3 here, which dropped it).
    keras_estimator = types.ModuleType("tf.keras.estimator", "tf.keras.estimator's names, resolved to estimator-bridge.")
    keras_estimator.model_to_estimator = bridge.model_to_estimator
    tf.keras.estimator = keras_estimator
    from bridge.compat import layers as v1_layers

    v1_layers.install_classes()


__all__ = ["install_as_tf_estimator"]
