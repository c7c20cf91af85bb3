"""bridge.install_as_tf_estimator(): tf.estimator and tensorflow_estimator resolve to bridge (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

import bridge

# the bridge under test (the installed package in CI, a source tree with its built extension in development)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(bridge.__file__)))


def _run(code: str) -> str:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300,
        cwd=tempfile.gettempdir(),  # `python -c` puts cwd first on sys.path: keep a checkout's bridge/ out
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_without_the_line_nothing_of_tensorflow_is_patched():
    out = _run(
        """
        import importlib.util, sys
        import tensorflow as tf
        import bridge
        v1_logging_hook = tf.compat.v1.train.LoggingTensorHook
        bridge.Estimator, bridge.inputs.numpy_input_fn, bridge.LoggingTensorHook  # bridge fully used
        import bridge.compat
        print(hasattr(tf, "estimator"), hasattr(tf.compat.v1, "estimator"))
        print(tf.compat.v1.train.LoggingTensorHook is v1_logging_hook, v1_logging_hook.__module__.startswith("tensorflow"))
        try:
            import tensorflow_estimator
            print("importable")
        except ImportError:
            print("not importable")
        """
    )
    assert out.split("\n")[:3] == ["False False", "True True", "not importable"]


def test_install_line_resolves_tf_estimator_and_tensorflow_estimator():
    out = _run(
        """
        import bridge
        import bridge.compat.v1.estimator
        bridge.install_as_tf_estimator()
        bridge.install_as_tf_estimator()  # idempotent
        import tensorflow as tf
        checks = [
            tf.estimator.Estimator is bridge.Estimator,
            tf.compat.v1.estimator.Estimator is bridge.Estimator,
            tf.estimator.EstimatorSpec is bridge.EstimatorSpec,
            tf.estimator.ModeKeys.TRAIN == "train",
            tf.estimator.RunConfig is bridge.RunConfig,
            tf.estimator.LoggingTensorHook is bridge.LoggingTensorHook,
            tf.estimator.DNNClassifier is bridge.DNNClassifier,
            tf.compat.v1.estimator.DNNClassifier is bridge.compat.v1.estimator.DNNClassifier,
            tf.compat.v1.estimator.LinearRegressor is bridge.compat.v1.estimator.LinearRegressor,
            tf.compat.v1.estimator.BinaryClassHead is bridge.BinaryClassHead,
            tf.estimator.export.ServingInputReceiver is bridge.export.ServingInputReceiver,
            tf.compat.v1.estimator.inputs.numpy_input_fn is bridge.inputs.numpy_input_fn,
            tf.estimator.inputs.pandas_input_fn is bridge.inputs.pandas_input_fn,
            tf.estimator.experimental.stop_if_no_decrease_hook is bridge.experimental.stop_if_no_decrease_hook,
            tf.estimator.train_and_evaluate is bridge.train_and_evaluate,
            tf.compat.v1.train.LoggingTensorHook is bridge.LoggingTensorHook,
            tf.compat.v1.train.ProfilerHook is bridge.ProfilerHook,
        ]
        import tensorflow_estimator as te
        from tensorflow_estimator.python.estimator import estimator as estimator_lib
        from tensorflow_estimator.python.estimator.inputs.numpy_io import numpy_input_fn
        from tensorflow_estimator.python.estimator.inputs import pandas_io
        from tensorflow_estimator.python.estimator.export import export_lib
        from tensorflow_estimator.python.estimator import model_fn as model_fn_lib
        from tensorflow_estimator.python.estimator.canned import dnn
        checks += [
            te.estimator.Estimator is bridge.Estimator,
            te.estimator.BinaryClassHead is bridge.BinaryClassHead,
            estimator_lib.Estimator is bridge.Estimator,
            numpy_input_fn is bridge.inputs.numpy_input_fn,
            pandas_io.pandas_input_fn is bridge.inputs.pandas_input_fn,
            export_lib.build_raw_serving_input_receiver_fn is bridge.export.build_raw_serving_input_receiver_fn,
            model_fn_lib.EstimatorSpec is bridge.EstimatorSpec,
            model_fn_lib.ModeKeys is bridge.ModeKeys,
            dnn.DNNClassifier is bridge.compat.v1.estimator.DNNClassifier,  # 2.15: the TF1 class
            dnn.DNNClassifierV2 is bridge.DNNClassifier,
            te.estimator.DNNClassifier is bridge.compat.v1.estimator.DNNClassifier,  # te.estimator: the v1 API
        ]
        print(checks)
        try:
            tf.estimator.tpu.TPUEstimator
        except AttributeError as error:
            print("error:", error)
        """
    )
    lines = out.splitlines()
    assert lines[0] == str([True] * 28)
    assert lines[1].startswith("error: tf.estimator.tpu is not provided by estimator-bridge")


def test_a_legacy_script_runs_after_the_install_line(tmp_path):
    """A TF 1.x-style script using only tf.* names, after the one line."""
    out = _run(
        f"""
        import bridge
        bridge.install_as_tf_estimator()
        import numpy as np
        import tensorflow as tf

        def model_fn(features, labels, mode):
            logits = tf.compat.v1.layers.dense(features["x"], 2)
            predictions = tf.argmax(logits, axis=1)
            if mode == tf.estimator.ModeKeys.PREDICT:
                return tf.estimator.EstimatorSpec(mode, predictions={{"classes": predictions}})
            loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
            if mode == tf.estimator.ModeKeys.TRAIN:
                train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(
                    loss, global_step=tf.compat.v1.train.get_global_step())
                return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)
            metrics = {{"accuracy": tf.compat.v1.metrics.accuracy(labels, predictions)}}
            return tf.estimator.EstimatorSpec(mode, loss=loss, eval_metric_ops=metrics)

        x = np.random.RandomState(0).randn(64, 3).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int32)
        # seeded (initial weights, shuffling): the accuracy check below must not depend on luck
        est = tf.estimator.Estimator(model_fn, model_dir={str(tmp_path)!r},
                                     config=tf.estimator.RunConfig(tf_random_seed=0))
        est.train(tf.compat.v1.estimator.inputs.numpy_input_fn({{"x": x}}, y, batch_size=16, num_epochs=5, shuffle=True),
                  hooks=[tf.estimator.LoggingTensorHook({{"step": "global_step:0"}}, every_n_iter=10)])
        result = est.evaluate(tf.compat.v1.estimator.inputs.numpy_input_fn({{"x": x}}, y, shuffle=False))
        print(result["global_step"], result["accuracy"] > 0.8, result["accuracy"])
        """
    )
    assert out.split()[:2] == ["20", "True"], out


def test_tf_keras_estimator_model_to_estimator_after_the_install_line(tmp_path):
    """2.15 scripts converted tf.keras models with tf.keras.estimator.model_to_estimator."""
    out = _run(
        f"""
        import numpy as np
        import tensorflow as tf
        print(hasattr(tf.keras, "estimator"))  # Keras 3: gone
        import bridge
        bridge.install_as_tf_estimator()
        inputs = tf.keras.Input(shape=(4,), name="feats")
        model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(inputs))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        est = tf.keras.estimator.model_to_estimator(keras_model=model, model_dir={str(tmp_path)!r})
        x, y = np.ones((8, 4), np.float32), np.zeros(8, np.int64)
        est.train(lambda: tf.data.Dataset.from_tensor_slices(({{"feats": x}}, y)).batch(4), steps=2)
        print(tf.keras.estimator.model_to_estimator is bridge.model_to_estimator, sorted(est.evaluate(
            lambda: tf.data.Dataset.from_tensor_slices(({{"feats": x}}, y)).batch(4))))
        """
    )
    assert out.splitlines() == ["False", "True ['accuracy', 'global_step', 'loss']"]
