"""The one check that Keras runs on TensorFlow: bridge traces model_fns into TensorFlow graphs."""

from __future__ import annotations

import os


def require_tensorflow_backend(caller: str) -> None:
    """Raises a ValueError naming the fix when Keras runs on JAX, PyTorch, NumPy or OpenVINO.

    Without this check a model_fn on another backend fails deep inside TensorFlow's tracing.
    """
    import keras

    backend = keras.config.backend()
    if backend != "tensorflow":
        source = f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}" if "KERAS_BACKEND" in os.environ else "keras.json"
        raise ValueError(
            f"{caller} needs the TensorFlow Keras backend, but Keras is running on '{backend}' "
            f"(from {source}). Set KERAS_BACKEND=tensorflow before Python first imports keras, "
            f'or "backend": "tensorflow" in ~/.keras/keras.json.'
        )
