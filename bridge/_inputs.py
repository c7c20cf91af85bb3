"""Calling input_fn and turning what it returns into a dataset of (features, labels) pairs."""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any, Callable, NamedTuple

import tensorflow as tf

from bridge._extensions import Registry
from bridge._fn_args import fn_args

logger = logging.getLogger("bridge")


class Input(NamedTuple):
    """A dataset whose elements hold features (and labels when ``has_labels``)."""

    dataset: tf.data.Dataset
    has_labels: bool
    endless: bool  # True for constant tensors, which tf.estimator repeated forever
    plain: tuple = ()  # (position among the element's leaves, Python value) handed to model_fn as given

    def split(self, element: Any) -> tuple[Any, Any]:
        """(features, labels) of one dataset element; labels is None when there are none."""
        if self.plain:
            leaves = tf.nest.flatten(element)
            for position, value in self.plain:
                leaves[position] = value
            element = tf.nest.pack_sequence_as(element, leaves)
        if self.has_labels:
            return element[0], element[1]
        return element, None


class InputFnCall:
    """One input_fn call, as extensions see it: ``result`` is what input_fn returned (replaceable)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.result: Any = None


# Extensions (bridge.compat) register ``factory(call) -> context manager``, entered around every
# input_fn call; on exit a scope may replace ``call.result`` (e.g. iterator outputs -> dataset).
_input_fn_scopes: Registry[Callable[[InputFnCall], contextlib.AbstractContextManager]] = Registry(("bridge.compat",))


def register_input_fn_scope(factory: Callable[[InputFnCall], contextlib.AbstractContextManager]) -> None:
    _input_fn_scopes.register(factory)


def call_input_fn(input_fn: Callable, mode: str, params: dict, config: Any, input_context: Any = None) -> Any:
    """Calls input_fn with the arguments it declares among mode, params, config, input_context.

    Registered extensions' scopes are entered around the call (see ``register_input_fn_scope``).
    """

    declared = fn_args(input_fn)
    kwargs: dict[str, Any] = {}
    if "mode" in declared:
        kwargs["mode"] = mode
    if "params" in declared:
        kwargs["params"] = copy.deepcopy(params)
    if "config" in declared:
        kwargs["config"] = copy.deepcopy(config)
    if "input_context" in declared and input_context is not None:
        kwargs["input_context"] = input_context
    call = InputFnCall(mode)
    with tf.device("/cpu:0"), contextlib.ExitStack() as stack:
        for factory in _input_fn_scopes.items():
            stack.enter_context(factory(call))
        call.result = input_fn(**kwargs)
    return call.result


def _is_pair(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError("input_fn should return (features, labels) as a len 2 tuple.")
        return True
    return False


def make_input(result: Any) -> Input:
    """Normalises what input_fn returned, following tf.estimator's accepted forms.

    * a ``tf.data.Dataset`` of ``(features, labels)`` tuples or of features alone;
    * a ``(features, labels)`` tuple or a features tensor/dict (numpy arrays accepted): a
      single constant batch, repeated forever as tf.estimator did.
    """
    if isinstance(result, tf.data.Dataset):
        # Each element is parsed as tf.estimator parsed iterator.get_next(): a tuple must be a pair.
        has_labels = _is_pair(result.element_spec)
        return Input(result, has_labels, endless=False)
    has_labels = _is_pair(result)
    if has_labels:
        features, labels = result
        value = (features, labels) if labels is not None else features
        has_labels = labels is not None
    else:
        value = result
    # Plain Python values (an int, a float, a string) reach model_fn as given, as in 2.15 where
    # input_fn's result went straight to model_fn; the dataset carries a placeholder for them.
    leaves = tf.nest.flatten(value)
    plain = tuple((i, leaf) for i, leaf in enumerate(leaves) if isinstance(leaf, _PLAIN_TYPES))
    with tf.device("/cpu:0"):
        dataset = tf.data.Dataset.from_tensors(value)
        if plain and len(tf.nest.flatten(dataset.element_spec)) == len(leaves):
            # (not when lists inside the value became tensors: leaf positions would differ)
            positions = {i for i, _ in plain}
            stand_ins = [0 if i in positions else leaf for i, leaf in enumerate(leaves)]
            dataset = tf.data.Dataset.from_tensors(tf.nest.pack_sequence_as(value, stand_ins))
        else:
            plain = ()
    return Input(dataset.repeat(), has_labels, endless=True, plain=plain)


_PLAIN_TYPES = (bool, int, float, str, bytes)
