"""estimator-bridge: tf.estimator's workflow on TensorFlow 2.16+ and Keras 3.

``import bridge`` is cheap: TensorFlow-dependent names are loaded on first use, so that
``bridge.metrics`` (the C++ metrics engine) works without importing TensorFlow at all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from bridge._console import configure_bridge_logger

configure_bridge_logger()  # bridge's log lines follow TensorFlow's verbosity, each shown once (bridge._console)

# public name -> module that defines it
_LAZY_NAMES = {
    "install_as_tf_estimator": "bridge.compat.namespace",
    "Estimator": "bridge.estimator",
    "EstimatorSpec": "bridge.estimator_spec",
    "ModeKeys": "bridge.mode_keys",
    "RunConfig": "bridge.run_config",
    "WarmStartSettings": "bridge.warm_start",
    "minimize": "bridge.training",
    "NanLossDuringTrainingError": "bridge.hooks",
    "SessionRunHook": "bridge.hooks",
    "SessionRunArgs": "bridge.hooks",
    "SessionRunContext": "bridge.hooks",
    "SessionRunValues": "bridge.hooks",
    "CheckpointSaverListener": "bridge.hooks",
    "LoggingTensorHook": "bridge.hooks",
    "NanTensorHook": "bridge.hooks",
    "StopAtStepHook": "bridge.hooks",
    "StepCounterHook": "bridge.hooks",
    "SecondOrStepTimer": "bridge.hooks",
    "CheckpointSaverHook": "bridge._writer_hooks",
    "SummarySaverHook": "bridge._writer_hooks",
    "ProfilerHook": "bridge._writer_hooks",
    "FinalOpsHook": "bridge._writer_hooks",
    "FeedFnHook": "bridge._writer_hooks",
    "TrainSpec": "bridge.training_loop",
    "EvalSpec": "bridge.training_loop",
    "train_and_evaluate": "bridge.training_loop",
    "Exporter": "bridge.training_loop",
    "LatestExporter": "bridge.training_loop",
    "BestExporter": "bridge.training_loop",
    "FinalExporter": "bridge.training_loop",
    "model_to_estimator": "bridge.keras_bridge",
    # issue 20 (api-rest): the rest of tf.estimator 2.15's top-level names
    "add_metrics": "bridge.extenders",
    "classifier_parse_example_spec": "bridge.parsing_utils",
    "regressor_parse_example_spec": "bridge.parsing_utils",
    "VocabInfo": "bridge.warm_start",
    "GlobalStepWaiterHook": "bridge.hooks",
    "estimator_to_keras": "bridge.keras_bridge",
    # canned estimators and heads (bridge/canned/)
    **{name: "bridge.canned" for name in (
        "DNNClassifier", "DNNRegressor", "DNNEstimator", "LinearClassifier", "LinearRegressor",
        "LinearEstimator", "DNNLinearCombinedClassifier", "DNNLinearCombinedRegressor",
        "DNNLinearCombinedEstimator", "BaselineClassifier", "BaselineRegressor", "BaselineEstimator",
        "Head", "BinaryClassHead", "MultiClassHead", "RegressionHead", "PoissonRegressionHead",
        "LogisticRegressionHead", "MultiLabelHead", "MultiHead")},
}
_LAZY_MODULES = {"metrics", "hooks", "export_output", "export", "inputs", "experimental"}

__all__ = sorted([*_LAZY_NAMES, *_LAZY_MODULES])


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value
        return value
    if name in _LAZY_MODULES:
        return importlib.import_module(f"bridge.{name}")
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # static tools (and py.typed users) see the real names; tests/test_typing.py checks
    from bridge import experimental, export, export_output, hooks, inputs, metrics
    from bridge._writer_hooks import (
        CheckpointSaverHook,
        FeedFnHook,
        FinalOpsHook,
        ProfilerHook,
        SummarySaverHook,
    )
    from bridge.canned import (
        BaselineClassifier,
        BaselineEstimator,
        BaselineRegressor,
        BinaryClassHead,
        DNNClassifier,
        DNNEstimator,
        DNNLinearCombinedClassifier,
        DNNLinearCombinedEstimator,
        DNNLinearCombinedRegressor,
        DNNRegressor,
        Head,
        LinearClassifier,
        LinearEstimator,
        LinearRegressor,
        LogisticRegressionHead,
        MultiClassHead,
        MultiHead,
        MultiLabelHead,
        PoissonRegressionHead,
        RegressionHead,
    )
    from bridge.compat.namespace import install_as_tf_estimator
    from bridge.estimator import Estimator
    from bridge.estimator_spec import EstimatorSpec
    from bridge.extenders import add_metrics
    from bridge.hooks import (
        CheckpointSaverListener,
        GlobalStepWaiterHook,
        LoggingTensorHook,
        NanLossDuringTrainingError,
        NanTensorHook,
        SecondOrStepTimer,
        SessionRunArgs,
        SessionRunContext,
        SessionRunHook,
        SessionRunValues,
        StepCounterHook,
        StopAtStepHook,
    )
    from bridge.keras_bridge import estimator_to_keras, model_to_estimator
    from bridge.mode_keys import ModeKeys
    from bridge.parsing_utils import classifier_parse_example_spec, regressor_parse_example_spec
    from bridge.run_config import RunConfig
    from bridge.training import minimize
    from bridge.training_loop import (
        BestExporter,
        EvalSpec,
        Exporter,
        FinalExporter,
        LatestExporter,
        TrainSpec,
        train_and_evaluate,
    )
    from bridge.warm_start import VocabInfo, WarmStartSettings
