"""TF 1.x input_fns: ``numpy_input_fn`` / ``pandas_input_fn``, and input_fns returning a v1 iterator.

The second part (input_fns ending in ``make_one_shot_iterator(dataset).get_next()``) is at
the end of this module: a scope the runtime enters around every input_fn call.

``numpy_input_fn`` and ``pandas_input_fn`` take tf.estimator 2.15's arguments and give its batches.

tf.estimator fed these through queues and Python feeding threads, one batch at a time. Here
the whole arrays become tensors once, and a ``tf.data`` pipeline of row *indices* (range,
shuffle, repeat, batch) gathers each batch from them in one vectorised op: no Python per row
or per batch while the Estimator runs.

What carries over from 2.15 (recorded in tests/fixtures/legacy_2_15/inputs/):

* ``x`` is a dict of arrays (features come as a dict) or one array (features come as a
  tensor); ``y`` is None (input_fn returns features only), an array or a dict of arrays.
* Batches run across epoch boundaries (20 rows, ``batch_size=8``, two epochs: 8, 8, 8, 8, 8
  ... no short batch between epochs); only the very last batch may be partial.
  ``num_epochs=None`` repeats forever, ``num_epochs <= 0`` yields nothing.
* ``shuffle`` must be given explicitly as a bool. With ``shuffle=True`` each epoch is a fresh
  random permutation (2.15 mixed rows within a queue of ``queue_capacity``; here the whole
  epoch is shuffled, which is never less random).
* ``queue_capacity`` is accepted and checked (tf.data needs no queue; batches are gathered
  in parallel). ``num_threads`` > 1 with ``num_epochs`` set gave ``num_threads`` times the
  epochs in 2.15 (each feeding thread read every epoch; 2.15 warned): kept, with the warning,
  so training runs the same number of steps. The extra passes come in order.
* Dtypes are kept (float64 stays float64, strings become ``tf.string``); arrays are not copied
  or mutated.
* The same errors at the same time: ``shuffle`` when input_fn is built, the shape checks when
  it is called. Where 2.15 crashed (``batch_size=0``, lists or scalars instead of arrays, a
  non-DataFrame to pandas_input_fn) a clear error names the problem.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from bridge.compat._patching import attributes_set

logger = logging.getLogger("bridge")

_DIRECT_INPUT = "__direct_input__"


def _check_shuffle(shuffle: Any) -> None:
    if not isinstance(shuffle, bool):
        raise ValueError(
            "shuffle must be provided and explicitly set as boolean (it is recommended to set it as True for "
            f"training); got {shuffle}"
        )


def _check_counts(batch_size: Any, queue_capacity: Any, num_threads: Any) -> None:
    for name, value in (("batch_size", batch_size), ("queue_capacity", queue_capacity), ("num_threads", num_threads)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def _as_array(name: str, value: Any) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array; got {type(value).__name__}. Convert it with np.asarray(...) first."
        )
    if value.ndim == 0:
        raise ValueError(f"{name} must have a first (example) dimension; got a scalar array.")
    return value


def _arrays(x: Any, y: Any) -> tuple[dict[str, np.ndarray], Any]:
    """Validates x and y as 2.15 did; returns features and labels as dicts (or a direct array)."""
    if not isinstance(x, (dict, np.ndarray)):
        raise TypeError(f"x must be a dict or array; got {type(x).__name__}")
    if isinstance(x, dict):
        if not x:
            raise ValueError("x cannot be an empty dict")
        features = {key: _as_array(f"x[{key!r}]", value) for key, value in x.items()}
    else:
        features = {_DIRECT_INPUT: _as_array("x", x)}
    labels: Any = None
    if isinstance(y, dict):
        if not y:
            raise ValueError("y cannot be empty dict, use None instead.")
        labels = {key: _as_array(f"y[{key!r}]", value) for key, value in y.items()}
        duplicates = set(labels) & set(features)
        if duplicates:
            raise ValueError(f"{len(duplicates)} duplicate keys are found in both x and y: {duplicates}")
    elif y is not None:
        labels = _as_array("y", y)
    lengths = {len(a) for a in features.values()}
    lengths |= {len(a) for a in (labels.values() if isinstance(labels, dict) else [labels] if labels is not None else [])}
    if len(lengths) != 1:
        x_shapes = {k: v.shape for k, v in features.items()} if isinstance(x, dict) else x.shape
        if isinstance(labels, dict):
            y_shapes: Any = {k: v.shape for k, v in labels.items()}
        else:
            y_shapes = None if labels is None else labels.shape
        raise ValueError(
            "Length of tensors in x and y is mismatched. All elements in x and y must have the same length.\n"
            f"Shapes in x: {x_shapes}\nShapes in y: {y_shapes}\n"
        )
    return features, labels


def _dataset(features: Mapping[str, np.ndarray], labels: Any, batch_size: int, num_epochs: int | None,
             shuffle: bool, num_threads: int) -> Any:
    """(features, labels) batches gathered from the whole arrays by a pipeline of row indices."""
    import tensorflow as tf

    with tf.device("/cpu:0"):
        feature_tensors = {key: tf.convert_to_tensor(value) for key, value in features.items()}
        if isinstance(labels, dict):
            label_tensors: Any = {key: tf.convert_to_tensor(value) for key, value in labels.items()}
        else:
            label_tensors = None if labels is None else tf.convert_to_tensor(labels)
    rows = len(next(iter(features.values())))
    if num_epochs is not None and num_epochs > 0 and num_threads > 1:
        logger.warning(
            "num_threads=%d with num_epochs=%d reads the data %d times, as tf.estimator's feeding threads "
            "each read every epoch. Use num_threads=1 for exactly num_epochs epochs.",
            num_threads, num_epochs, num_epochs * num_threads,
        )
        num_epochs *= num_threads
    indices = tf.data.Dataset.range(rows)
    if shuffle:
        indices = indices.shuffle(max(rows, 1), reshuffle_each_iteration=True)
    if num_epochs is None:
        indices = indices.repeat()
    elif num_epochs <= 0:
        indices = indices.take(0)
    elif num_epochs > 1:
        indices = indices.repeat(num_epochs)
    indices = indices.batch(batch_size)
    direct = _DIRECT_INPUT in feature_tensors

    def gather(batch: Any) -> Any:
        taken = {key: tf.gather(value, batch) for key, value in feature_tensors.items()}
        batch_features = taken[_DIRECT_INPUT] if direct else taken
        if label_tensors is None:
            return batch_features
        return batch_features, tf.nest.map_structure(lambda value: tf.gather(value, batch), label_tensors)

    return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def numpy_input_fn(
    x: Any,
    y: Any = None,
    batch_size: int = 128,
    num_epochs: int | None = 1,
    shuffle: bool | None = None,
    queue_capacity: int = 1000,
    num_threads: int = 1,
) -> Callable[[], Any]:
    """An input_fn feeding dicts of numpy arrays (or one array) to an Estimator.

    Arguments and batches as ``tf.compat.v1.estimator.inputs.numpy_input_fn`` in TF 2.15 (see
    the module docstring). The returned input_fn returns a ``tf.data.Dataset`` of
    ``(features, labels)`` batches, or of features alone when ``y`` is None.
    """
    _check_shuffle(shuffle)
    _check_counts(batch_size, queue_capacity, num_threads)

    def input_fn() -> Any:
        features, labels = _arrays(x, y)
        return _dataset(features, labels, batch_size, num_epochs, shuffle, num_threads)

    return input_fn


def pandas_input_fn(
    x: Any,
    y: Any = None,
    batch_size: int = 128,
    num_epochs: int | None = 1,
    shuffle: bool | None = None,
    queue_capacity: int = 1000,
    num_threads: int = 1,
    target_column: str = "target",
) -> Callable[[], Any]:
    """An input_fn feeding a pandas DataFrame (features by column) and a Series or DataFrame (labels).

    As ``tf.compat.v1.estimator.inputs.pandas_input_fn`` in TF 2.15: features are a dict keyed
    by column name; a Series ``y`` gives a labels tensor, a DataFrame ``y`` a dict by column.
    ``x`` and ``y`` must share their index; ``target_column`` must not name a column of ``x``.
    """
    import pandas as pd

    if not isinstance(x, pd.DataFrame):
        raise TypeError(f"x must be a pandas DataFrame; got {type(x).__name__}.")
    _check_shuffle(shuffle)
    _check_counts(batch_size, queue_capacity, num_threads)
    if y is not None:
        if target_column in x:
            raise ValueError(
                f"Cannot use name {target_column} for target column: DataFrame already has a column with that name: "
                f"{x.columns}"
            )
        if not np.array_equal(x.index, y.index):
            raise ValueError(
                f"Index for x and y are mismatched.\nIndex for x: {x.index}\nIndex for y: {y.index}\n"
            )
    features = {column: x[column].to_numpy() for column in x.columns}
    labels: Any = None
    if isinstance(y, pd.DataFrame):
        labels = {column: y[column].to_numpy() for column in y.columns}
    elif y is not None:
        labels = np.asarray(y)

    def input_fn() -> Any:
        return _dataset(features, labels, batch_size, num_epochs, shuffle, num_threads)

    return input_fn


__all__ = ["numpy_input_fn", "pandas_input_fn"]


# -- input_fns returning an iterator's get_next() ----------------------------------------------
# TF 1.x input_fns often ended with ``tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()``
# (or ``make_initializable_iterator``, or the v1 Dataset methods of the same names). Eagerly that
# yields the first batch as constants, which the runtime would repeat forever. While bridge calls
# an input_fn, those functions hand out iterators that remember their dataset; when input_fn
# returns exactly (a rearrangement of) their get_next() values, bridge uses the dataset instead,
# so the batches succeed each other and end with the data, as in 2.15. An initializable
# iterator starts at the beginning of its data at every Estimator call, which is what running its
# initializer once did; ``iterator.initializer`` is a no-op.


class _RecordedIterator:
    """Stands for a v1 iterator during input_fn: ``get_next()`` returns placeholders of its element."""

    def __init__(self, dataset: Any) -> None:
        import tensorflow as tf

        self.dataset = dataset
        self.element = tf.nest.map_structure(
            lambda spec: tf.zeros([1 if d is None else d for d in spec.shape], spec.dtype), dataset.element_spec
        )

    def get_next(self, name: str | None = None) -> Any:
        return self.element

    @property
    def initializer(self) -> Any:
        return None  # the dataset restarts at every Estimator call

    @property
    def element_spec(self) -> Any:
        return self.dataset.element_spec

    @property
    def output_types(self) -> Any:
        import tensorflow as tf

        return tf.compat.v1.data.get_output_types(self.dataset)

    @property
    def output_shapes(self) -> Any:
        import tensorflow as tf

        return tf.compat.v1.data.get_output_shapes(self.dataset)


def _dataset_for(result: Any, iterators: list[_RecordedIterator]) -> Any:
    """The dataset that yields ``result``'s structure batch after batch, or ``result`` if no iterator was used."""
    import tensorflow as tf

    if not iterators:
        return result
    if isinstance(result, tf.data.Dataset):
        return result
    leaves = tf.nest.flatten(result)
    for iterator in iterators:
        element = tf.nest.flatten(iterator.element)
        positions = [next((i for i, e in enumerate(element) if e is leaf), None) for leaf in leaves]
        if leaves and None not in positions:
            if positions == list(range(len(element))) and _same_structure(result, iterator.element):
                return iterator.dataset  # get_next() returned as it is

            def rearrange(*args: Any, positions: list[int] = positions) -> Any:
                flat = tf.nest.flatten(args)
                return tf.nest.pack_sequence_as(result, [flat[p] for p in positions])

            return iterator.dataset.map(rearrange)
    raise ValueError(
        "input_fn made a tf.compat.v1.data iterator but returned tensors computed from its get_next(). "
        "In TensorFlow 2 they would hold only the first batch. Return iterator.get_next() as it is (or its "
        "parts rearranged), or apply the computation with dataset.map(...) and return the dataset."
    )


def _same_structure(a: Any, b: Any) -> bool:
    import tensorflow as tf

    try:
        tf.nest.assert_same_structure(a, b)
    except (ValueError, TypeError):
        return False
    return True


@contextlib.contextmanager
def _iterator_scope(call: Any) -> Iterator[None]:
    import tensorflow as tf
    from tensorflow.python.data.ops import dataset_ops

    iterators: list[_RecordedIterator] = []

    def make_iterator(dataset: Any, *args: Any, **kwargs: Any) -> _RecordedIterator:
        iterators.append(_RecordedIterator(dataset))
        return iterators[-1]

    def method(self: Any, *args: Any, **kwargs: Any) -> _RecordedIterator:
        return make_iterator(self)

    names = ("make_one_shot_iterator", "make_initializable_iterator")
    with attributes_set(tf.compat.v1.data, dict.fromkeys(names, make_iterator)), attributes_set(
        dataset_ops.DatasetV1, dict.fromkeys(names, method)
    ):
        yield
    call.result = _dataset_for(call.result, iterators)


def _register() -> None:
    from bridge._inputs import register_input_fn_scope

    register_input_fn_scope(_iterator_scope)


_register()
