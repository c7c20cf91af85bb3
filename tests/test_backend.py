"""bridge needs Keras' TensorFlow backend: anything else gets one clear error at construction."""

from __future__ import annotations

import keras
import pytest

import bridge


def model_fn(features, labels, mode):
    raise AssertionError("never called: the backend check comes first")


@pytest.mark.parametrize("backend", ["jax", "torch", "numpy"])
def test_estimator_refuses_a_non_tensorflow_backend(monkeypatch, tmp_path, backend):
    monkeypatch.setattr(keras.config, "backend", lambda: backend)
    monkeypatch.setenv("KERAS_BACKEND", backend)
    with pytest.raises(ValueError, match=rf"Estimator needs the TensorFlow Keras backend, but Keras is running on '{backend}' "
                       rf"\(from KERAS_BACKEND={backend}\)\. Set KERAS_BACKEND=tensorflow"):
        bridge.Estimator(model_fn, model_dir=str(tmp_path))
    assert not list(tmp_path.iterdir())  # refused before touching model_dir


def test_model_to_estimator_uses_the_same_check(monkeypatch):
    monkeypatch.setattr(keras.config, "backend", lambda: "torch")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="model_to_estimator needs the TensorFlow Keras backend.*'torch'"):
        bridge.model_to_estimator(model)


def test_tensorflow_backend_passes(tmp_path):
    assert keras.config.backend() == "tensorflow"
    bridge.Estimator(model_fn, model_dir=str(tmp_path))
