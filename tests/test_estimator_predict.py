"""Estimator.predict: single examples vs batches, predict_keys, single tensor vs dict."""

from __future__ import annotations

import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.conftest import X, keras_model_fn, make_input_fn, v1_model_fn


def _expected(estimator):
    return X @ estimator.get_variable_value("dense/kernel") + estimator.get_variable_value("dense/bias")


@pytest.fixture
def trained(estimator, train_input_fn):
    return estimator.train(train_input_fn, steps=3)


def test_single_examples_from_dict_predictions(trained, predict_input_fn):
    rows = list(trained.predict(predict_input_fn))
    assert len(rows) == 20
    expected = _expected(trained)
    for i, row in enumerate(rows):
        assert set(row) == {"y", "twice"}
        assert row["y"].shape == (1,)
        np.testing.assert_allclose(row["y"], expected[i], rtol=1e-5)
        np.testing.assert_allclose(row["twice"], 2 * expected[i], rtol=1e-5)


def test_whole_batches_from_dict_predictions(trained, predict_input_fn):
    batches = list(trained.predict(predict_input_fn, yield_single_examples=False))
    assert len(batches) == 4
    for batch in batches:
        assert set(batch) == {"y", "twice"}
        assert batch["y"].shape == (5, 1)
    np.testing.assert_allclose(np.concatenate([b["y"] for b in batches]), _expected(trained), rtol=1e-5)


def test_single_tensor_predictions(model_dir, train_input_fn, predict_input_fn):
    est = bridge.Estimator(v1_model_fn, model_dir=model_dir)
    est.train(train_input_fn, steps=2)
    rows = list(est.predict(predict_input_fn))
    assert len(rows) == 20
    assert all(isinstance(r, np.ndarray) and r.shape == (1,) for r in rows)
    np.testing.assert_allclose(np.stack(rows), _expected(est), rtol=1e-5)
    batches = list(est.predict(predict_input_fn, yield_single_examples=False))
    assert [b.shape for b in batches] == [(5, 1)] * 4


def test_predict_keys_filters(trained, predict_input_fn):
    rows = list(trained.predict(predict_input_fn, predict_keys=["twice"]))
    assert len(rows) == 20 and all(set(r) == {"twice"} for r in rows)
    batches = list(trained.predict(predict_input_fn, predict_keys=["y"], yield_single_examples=False))
    assert all(set(b) == {"y"} for b in batches)


def test_predict_keys_bare_string_is_a_membership_test(trained, predict_input_fn):
    # tf.estimator's quirk: `key in predict_keys` with a string is a substring test.
    rows = list(trained.predict(predict_input_fn, predict_keys="twice"))
    assert set(rows[0]) == {"twice"}


def test_predict_keys_with_single_tensor_is_value_error(model_dir, predict_input_fn):
    est = bridge.Estimator(v1_model_fn, model_dir=model_dir)
    with pytest.raises(ValueError, match="not valid in case of non-dict predictions"):
        list(est.predict(predict_input_fn, predict_keys=["y"]))


def test_predict_keys_matching_nothing_is_value_error(estimator, predict_input_fn):
    with pytest.raises(ValueError, match="Expected to run at least one output") as info:
        list(estimator.predict(predict_input_fn, predict_keys=["nope"]))
    assert "twice" in str(info.value) and "nope" in str(info.value)


def test_no_checkpoint_predicts_with_initialised_variables(estimator, predict_input_fn, caplog):
    with caplog.at_level(logging.INFO, logger="bridge"):
        rows = list(estimator.predict(predict_input_fn))
    assert "running initialization to predict" in caplog.text
    assert len(rows) == 20
    assert all(float(r["y"][0]) == 0.0 for r in rows)  # zero kernel, zero bias


def test_checkpoint_path(model_dir, train_input_fn, predict_input_fn):
    config = bridge.RunConfig(save_checkpoints_steps=1)
    est = bridge.Estimator(keras_model_fn, model_dir=model_dir, config=config, params={})
    est.train(train_input_fn, steps=3)
    at_zero = list(est.predict(predict_input_fn, checkpoint_path=os.path.join(model_dir, "model.ckpt-0")))
    assert all(float(r["y"][0]) == 0.0 for r in at_zero)
    latest = list(est.predict(predict_input_fn))
    assert any(float(r["y"][0]) != 0.0 for r in latest)


def test_predict_is_lazy(estimator):
    calls = []

    def input_fn():
        calls.append(1)
        return make_input_fn(y=None)()

    generator = estimator.predict(input_fn)
    assert calls == []
    next(generator)
    assert calls == [1]


def test_labels_from_input_are_dropped(trained):
    seen = []

    def model_fn(features, labels, mode, params):
        seen.append(labels)
        return keras_model_fn(features, labels, mode, params)

    est = bridge.Estimator(model_fn, model_dir=trained.model_dir, params={})
    rows = list(est.predict(make_input_fn()))  # Dataset of (features, labels)
    assert len(rows) == 20
    assert seen == [None]


def test_unequal_batch_lengths_need_whole_batches(model_dir, predict_input_fn):
    def model_fn(features, mode):
        x = features["x"]
        return bridge.EstimatorSpec(mode, predictions={"a": x, "c": x[:2]})

    est = bridge.Estimator(model_fn, model_dir=model_dir)
    with pytest.raises(ValueError, match="Batch length of predictions should be same. c has different batch length"):
        list(est.predict(predict_input_fn))
    batches = list(est.predict(predict_input_fn, yield_single_examples=False))
    assert [b["c"].shape for b in batches] == [(2, 3)] * 4


def test_prediction_hooks_run(model_dir, predict_input_fn):
    calls = []

    class Recorder(bridge.SessionRunHook):
        def after_run(self, run_context, run_values):
            calls.append("after_run")

        def end(self, session):
            calls.append("end")

    def model_fn(features, mode):
        predictions = keras.layers.Dense(1)(features["x"])
        return bridge.EstimatorSpec(mode, predictions=predictions, prediction_hooks=[Recorder()])

    rows = list(bridge.Estimator(model_fn, model_dir=model_dir).predict(predict_input_fn))
    assert len(rows) == 20
    assert calls == ["after_run"] * 4 + ["end"]


def test_features_tensor_input_repeats_forever_with_warning(estimator, caplog):
    def input_fn():
        return tf.constant(X[:4])

    with caplog.at_level(logging.WARNING, logger="bridge"):
        generator = estimator.predict(input_fn)
        rows = [next(generator) for _ in range(10)]  # 4 per batch, 10 > 4: it repeats
    assert "predict yields forever" in caplog.text
    assert len(rows) == 10
