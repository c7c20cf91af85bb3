"""numpy_input_fn / pandas_input_fn give TF 2.15's batches and errors (facts recorded from 2.15)."""

from __future__ import annotations

import builtins
import json
import pathlib

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import bridge
from bridge.inputs import numpy_input_fn, pandas_input_fn

FACTS = json.loads((pathlib.Path(__file__).parents[1] / "fixtures/legacy_2_15/inputs/facts.json").read_text())["cases"]

x10 = np.arange(10, dtype=np.float64)
x2d = np.arange(20, dtype=np.float32).reshape(10, 2)
y10 = np.arange(100, 110, dtype=np.int64)
N, P = numpy_input_fn, pandas_input_fn
frame = pd.DataFrame({"a": np.arange(7, dtype=np.float32), "b": np.arange(10, 17, dtype=np.int64)})
series = pd.Series(np.arange(7, dtype=np.int32) * 10)

# The same calls as tests/fixtures/legacy_2_15/inputs/record.py made on 2.15.
CASES = {
    "dict_x_y": lambda: N({"a": x10, "b": x2d}, y10, batch_size=4, shuffle=False),
    "array_x_no_y": lambda: N(x2d, batch_size=4, shuffle=False),
    "array_x_y": lambda: N(x2d, y10, batch_size=3, shuffle=False),
    "two_epochs": lambda: N({"a": x10}, y10, batch_size=4, shuffle=False, num_epochs=2),
    "endless": lambda: N({"a": x10}, y10, batch_size=4, shuffle=False, num_epochs=None),
    "batch_larger_than_data": lambda: N({"a": x10}, y10, batch_size=32, shuffle=False),
    "dict_y": lambda: N({"a": x10}, {"t1": y10, "t2": x10 * 2}, batch_size=5, shuffle=False),
    "int32_and_2d_y": lambda: N({"a": x10.astype(np.int32)}, x2d, batch_size=5, shuffle=False),
    "string_x": lambda: N({"s": np.array(["a", "b", "c"])}, batch_size=2, shuffle=False),
    "num_threads_2_eval": lambda: N({"a": x10}, y10, batch_size=4, shuffle=False, num_threads=2),
    "shuffle_none": lambda: N({"a": x10}, y10, batch_size=4),
    "shuffle_not_bool": lambda: N({"a": x10}, y10, batch_size=4, shuffle=1),
    "x_list": lambda: N([1.0, 2.0], batch_size=4, shuffle=False),
    "x_empty_dict": lambda: N({}, batch_size=4, shuffle=False),
    "x_lengths_differ": lambda: N({"a": x10, "b": np.arange(9)}, batch_size=4, shuffle=False),
    "x_y_lengths_differ": lambda: N({"a": x10}, np.arange(9), batch_size=4, shuffle=False),
    "y_dict_key_in_x": lambda: N({"a": x10}, {"a": y10}, batch_size=4, shuffle=False),
    "y_empty_dict": lambda: N({"a": x10}, {}, batch_size=4, shuffle=False),
    "num_epochs_zero": lambda: N({"a": x10}, y10, batch_size=4, shuffle=False, num_epochs=0),
    "num_epochs_negative": lambda: N({"a": x10}, y10, batch_size=4, shuffle=False, num_epochs=-1),
    "pandas_x_y": lambda: P(frame, series, batch_size=3, shuffle=False),
    "pandas_x_only": lambda: P(frame, batch_size=3, shuffle=False),
    "pandas_two_epochs": lambda: P(frame, series, batch_size=5, shuffle=False, num_epochs=2),
    "pandas_y_frame": lambda: P(frame, pd.DataFrame({"t1": series, "t2": series * 2}), batch_size=4, shuffle=False),
    "pandas_shuffle_none": lambda: P(frame, series, batch_size=3),
    "pandas_index_mismatch": lambda: P(frame, pd.Series(np.arange(7), index=np.arange(1, 8)), batch_size=3, shuffle=False),
    "pandas_target_in_x": lambda: P(frame.assign(target=1), series, batch_size=3, shuffle=False),
    "pandas_custom_target_in_x": lambda: P(frame, series, batch_size=3, shuffle=False, target_column="a"),
    "pandas_y_frame_target_collision": lambda: P(frame, pd.DataFrame({"a": series}), batch_size=3, shuffle=False),
}
# Where 2.15 crashed (IndexError / AttributeError deep in its feeding code), bridge raises a clear error.
CRASHED_IN_2_15 = {
    "batch_size_zero": (lambda: N({"a": x10}, y10, batch_size=0, shuffle=False), ValueError, "batch_size must be a positive integer"),
    "python_lists_in_dict": (lambda: N({"a": [1.0, 2.0, 3.0]}, batch_size=2, shuffle=False)(), TypeError, r"x\['a'\] must be a numpy array"),
    "y_list": (lambda: N({"a": np.arange(3.0)}, [1, 2, 3], batch_size=2, shuffle=False)(), TypeError, "y must be a numpy array"),
    "scalar_x_value": (lambda: N({"a": np.float32(3.0)}, batch_size=2, shuffle=False)(), TypeError, "must be a numpy array"),
    "pandas_x_not_frame": (lambda: P(np.arange(4.0), batch_size=2, shuffle=False), TypeError, "x must be a pandas DataFrame"),
}


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    value = value.numpy()
    if value.dtype.kind in "SO":
        return {"dtype": "string", "value": np.vectorize(lambda b: b.decode())(value).tolist()}
    return {"dtype": value.dtype.name, "value": value.tolist()}


def _structure(spec):
    if isinstance(spec, tuple):
        return ["pair", _structure(spec[0]), _structure(spec[1])]
    if isinstance(spec, dict):
        return ["dict", sorted(spec)]
    return ["tensor"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_batches_and_errors_as_2_15(case):
    fact = FACTS[case]
    if "error" in fact and fact["when"] == "build":
        with pytest.raises(getattr(builtins, fact["error"])) as raised:
            CASES[case]()
        _assert_message(case, str(raised.value), fact["message"])
        return
    input_fn = CASES[case]()
    if "error" in fact:  # raised when input_fn is called, as in 2.15
        with pytest.raises(getattr(builtins, fact["error"])) as raised:
            input_fn()
        _assert_message(case, str(raised.value), fact["message"])
        return
    dataset = input_fn()
    assert _structure(dataset.element_spec) == fact["structure"]
    batches = [_plain(b) for b in dataset.take(len(fact["batches"]) + 1)]
    if case == "endless":
        batches = batches[: len(fact["batches"])]  # 2.15's recording stopped after 8 batches
    if case == "num_threads_2_eval":
        # Two feeding threads each read the whole epoch in 2.15, interleaved by timing: the same
        # batches' count and examples, in order here.
        assert len(batches) == len(fact["batches"])
        assert sorted(v for b in batches for v in b[1]["value"]) == sorted(v for b in fact["batches"] for v in b[1]["value"])
        return
    assert batches == fact["batches"]


def _assert_message(case, ours, theirs):
    if case.startswith("pandas_") and "Index" in theirs:
        # pandas' own repr of the columns/index differs between pandas versions; the text before it must not.
        cut = theirs.index("Index")
        assert ours[:cut] == theirs[:cut]
    else:
        assert ours == theirs


@pytest.mark.parametrize("case", sorted(CRASHED_IN_2_15))
def test_clear_error_where_2_15_crashed(case):
    assert FACTS[case]["error"] in ("IndexError", "AttributeError")
    call, error, message = CRASHED_IN_2_15[case]
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("epochs", [1, 2])
def test_shuffle_yields_every_example_once_per_epoch(epochs):
    fact = FACTS["shuffled_one_epoch" if epochs == 1 else "shuffled_two_epochs"]
    batches = list(N({"a": x10}, y10, batch_size=4, shuffle=True, num_epochs=epochs)())
    assert [len(labels) for _, labels in batches] == fact["batch_sizes"]
    assert sorted(float(v) for features, _ in batches for v in features["a"].numpy()) == fact["sorted_a"]
    for features, labels in batches:  # rows stay together
        np.testing.assert_array_equal(labels.numpy() - 100, features["a"].numpy())
    orders = {tuple(int(v) for b in N({"a": x10}, shuffle=True)() for v in b["a"].numpy()) for _ in range(3)}
    assert len(orders) > 1  # a new order each time


def test_public_paths():
    assert bridge.inputs.numpy_input_fn is numpy_input_fn
    assert bridge.inputs.pandas_input_fn is pandas_input_fn


def test_estimator_trains_to_the_end_of_the_data_and_evaluates(tmp_path):
    import keras

    def model_fn(features, labels, mode):
        predictions = keras.layers.Dense(1)(features["x"])
        loss = tf.reduce_mean(tf.square(predictions - labels))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.01)))

    x = {"x": np.random.RandomState(0).rand(50, 3).astype(np.float32)}
    y = np.ones((50, 1), np.float32)
    est = bridge.Estimator(model_fn, model_dir=str(tmp_path))
    est.train(N(x, y, batch_size=8, num_epochs=2, shuffle=True))
    assert int(est.get_variable_value("global_step")) == 13  # ceil(100 / 8): batches span epochs
    results = est.evaluate(N(x, y, batch_size=8, shuffle=False))
    assert results["global_step"] == 13
