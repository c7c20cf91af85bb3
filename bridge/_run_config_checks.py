"""RunConfig's field checks: tf.estimator 2.15's validation errors, one field at a time.

Importing this module does not import TensorFlow; a strategy or ConfigProto check imports it.
"""

from __future__ import annotations

import inspect
import numbers
import os
from typing import Any, Callable, Mapping


class BadTypeError(TypeError, ValueError):
    """A wrong-typed value. Subclasses both TypeError and ValueError, because
    tf.estimator raised ValueError for some of these and TypeError is the honest name."""


def to_path_str(path: Any) -> Any:
    """str for an os.PathLike (bytes paths are decoded); anything else unchanged."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return path


def check_number(name: str, value: Any, minimum: float, strict: bool, message: str) -> None:
    """None passes; otherwise value must be a real number >= minimum (> if strict)."""
    if value is None:
        return
    if not isinstance(value, numbers.Real):
        raise BadTypeError(f"{message}; got {value!r} of type {type(value).__name__}.")
    if (value <= minimum) if strict else (value < minimum):
        raise ValueError(f"{message}; got {value!r}.")


def positional_arg_names(fn: Callable) -> list:
    """Names of fn's parameters, without ones already bound (method self, partial kwargs)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    bound = set(getattr(fn, "keywords", None) or {})
    kinds = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
    return [p.name for p in params if p.kind in kinds and p.name not in bound]


def check_strategy(name: str, strategy: Any) -> None:
    """None, or a tf.distribute strategy other than the v2 ParameterServerStrategy."""
    if strategy is None:
        return
    import tensorflow as tf  # Lazy: only needed when a strategy is given.

    if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        raise ValueError(
            "tf.distribute.experimental.ParameterServerStrategy (v2) cannot run an "
            "Estimator. Please use `tf.compat.v1.distribute.experimental."
            "ParameterServerStrategy` for parameter server strategy with estimator."
        )
    if not isinstance(strategy, (tf.distribute.Strategy, tf.compat.v1.distribute.Strategy)):
        raise TypeError(
            f"`{name}` must be None or a tf.distribute.Strategy instance; "
            f"got {strategy!r} of type {type(strategy).__name__}."
        )


def validate_fields(values: Mapping[str, Any]) -> None:
    """Raise the tf.estimator error for the first invalid field in `values`."""
    model_dir = values["model_dir"]
    if model_dir is not None:
        if not isinstance(model_dir, str):
            raise BadTypeError(f"model_dir must be a str or os.PathLike; got {model_dir!r}.")
        if not model_dir:
            raise ValueError("model_dir should be non-empty.")

    check_number("save_summary_steps", values["save_summary_steps"], 0, False,
                  "save_summary_steps should be >= 0")
    check_number("save_checkpoints_steps", values["save_checkpoints_steps"], 0, False,
                  "save_checkpoints_steps should be >= 0")
    check_number("save_checkpoints_secs", values["save_checkpoints_secs"], 0, False,
                  "save_checkpoints_secs should be >= 0")

    session_config = values["session_config"]
    if session_config is not None:
        import tensorflow as tf  # Lazy: only needed when a ConfigProto is given.

        if not isinstance(session_config, tf.compat.v1.ConfigProto):
            raise BadTypeError(
                "session_config must be instance of ConfigProto "
                f"(tf.compat.v1.ConfigProto) or None; got {type(session_config).__name__}."
            )

    check_number("keep_checkpoint_max", values["keep_checkpoint_max"], 0, False,
                  "keep_checkpoint_max should be >= 0")
    check_number("keep_checkpoint_every_n_hours", values["keep_checkpoint_every_n_hours"], 0,
                  True, "keep_checkpoint_every_n_hours should be > 0")
    check_number("log_step_count_steps", values["log_step_count_steps"], 0, True,
                  "log_step_count_steps should be > 0")

    seed = values["tf_random_seed"]
    if seed is not None and not isinstance(seed, int):
        raise ValueError(f"tf_random_seed must be integer. Got {seed!r}.")

    delay = values["experimental_max_worker_delay_secs"]
    if delay is not None and not isinstance(delay, int):
        raise ValueError(
            f"experimental_max_worker_delay_secs must be an integer if set. Got {delay!r}."
        )

    check_number("session_creation_timeout_secs", values["session_creation_timeout_secs"], 0,
                  True, "session_creation_timeout_secs should be > 0")

    device_fn = values["device_fn"]
    if device_fn is not None and not (
        callable(device_fn) and positional_arg_names(device_fn) == ["op"]
    ):
        raise ValueError('device_fn must be callable with exactly one argument "op".')

    if values["protocol"] not in (None, "grpc", "grpc+verbs"):
        raise ValueError(f"protocol should be grpc or grpc+verbs; got {values['protocol']!r}.")

    check_strategy("train_distribute", values["train_distribute"])
    check_strategy("eval_distribute", values["eval_distribute"])

    loops = values["iterations_per_loop"]
    if isinstance(loops, bool) or not isinstance(loops, int) or loops < 1:
        raise ValueError(f"iterations_per_loop must be an integer >= 1; got {loops!r}.")

    grouped = values["max_steps_per_call"]
    if isinstance(grouped, bool) or not isinstance(grouped, int) or grouped < 1:
        raise ValueError(f"max_steps_per_call must be an integer >= 1; got {grouped!r}.")

    finite = values["check_finite_weights"]
    if not isinstance(finite, int):
        raise BadTypeError(
            f"check_finite_weights must be True, False or a number of steps >= 1; got {finite!r}."
        )
    if not isinstance(finite, bool) and finite < 1:
        raise ValueError(f"check_finite_weights must be True, False or a number of steps >= 1; got {finite!r}.")

    if values["progress_bar"] is not None and not isinstance(values["progress_bar"], bool):
        raise BadTypeError(
            f"progress_bar must be None (auto), True or False; got {values['progress_bar']!r}."
        )
