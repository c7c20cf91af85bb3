"""warm_start_from: a checkpoint directory or path, or WarmStartSettings (tf.estimator 2.15 §13)."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.conftest import X, keras_model_fn, make_input_fn


@pytest.fixture
def source(tmp_path, train_input_fn):
    est = bridge.Estimator(keras_model_fn, model_dir=str(tmp_path / "source"), params={"learning_rate": 0.1})
    est.train(train_input_fn, steps=5)
    return est


def _start_checkpoint(model_dir, step=0):
    """The checkpoint train() writes at its first step: the warm-started values."""
    return tf.train.load_checkpoint(os.path.join(model_dir, f"model.ckpt-{step}"))


def _warm(tmp_path, warm_start_from, name="target"):
    return bridge.Estimator(
        keras_model_fn, model_dir=str(tmp_path / name), params={"learning_rate": 0.1}, warm_start_from=warm_start_from
    )


def test_warm_start_from_directory(tmp_path, source, train_input_fn):
    est = _warm(tmp_path, source.model_dir)
    est.train(train_input_fn, steps=1)
    start = _start_checkpoint(est.model_dir)
    np.testing.assert_array_equal(start.get_tensor("dense/kernel"), source.get_variable_value("dense/kernel"))
    np.testing.assert_array_equal(start.get_tensor("dense/bias"), source.get_variable_value("dense/bias"))
    # The default regex '.*' selects trainable variables only: no global step, no optimizer state.
    assert start.get_tensor("global_step") == 0
    assert start.get_tensor("adam/iteration") == 0
    assert int(est.get_variable_value("global_step")) == 1


def test_warm_start_from_checkpoint_prefix(tmp_path, source, train_input_fn):
    est = _warm(tmp_path, source.latest_checkpoint())
    est.train(train_input_fn, steps=1)
    np.testing.assert_array_equal(
        _start_checkpoint(est.model_dir).get_tensor("dense/kernel"), source.get_variable_value("dense/kernel")
    )


def test_warm_start_settings_regex_selects_matching_trainable_variables(tmp_path, source, train_input_fn):
    settings = bridge.WarmStartSettings(source.model_dir, vars_to_warm_start="dense/kernel")
    est = _warm(tmp_path, settings)
    est.train(train_input_fn, steps=1)
    start = _start_checkpoint(est.model_dir)
    np.testing.assert_array_equal(start.get_tensor("dense/kernel"), source.get_variable_value("dense/kernel"))
    np.testing.assert_array_equal(start.get_tensor("dense/bias"), [0.0])  # not selected: initialiser


def test_warm_start_settings_list_selects_any_variable(tmp_path, source, train_input_fn):
    settings = bridge.WarmStartSettings(source.model_dir, vars_to_warm_start=["dense/.*", "global_step", "adam/.*"])
    est = _warm(tmp_path, settings)
    est.train(train_input_fn, steps=1)
    # The global step came along: training starts at 5, and its first checkpoint is ckpt-5.
    start = _start_checkpoint(est.model_dir, step=5)
    assert start.get_tensor("global_step") == 5
    assert start.get_tensor("adam/iteration") == source.get_variable_value("adam/iteration")
    np.testing.assert_array_equal(start.get_tensor("dense/kernel"), source.get_variable_value("dense/kernel"))
    assert int(est.get_variable_value("global_step")) == 6


def test_warm_start_settings_none_selects_nothing(tmp_path, source, train_input_fn):
    est = _warm(tmp_path, bridge.WarmStartSettings(source.model_dir, vars_to_warm_start=None))
    est.train(train_input_fn, steps=1)
    np.testing.assert_array_equal(_start_checkpoint(est.model_dir).get_tensor("dense/kernel"), np.zeros((3, 1)))


def test_var_name_to_prev_var_name(tmp_path, source, train_input_fn):
    def renamed_model_fn(features, labels, mode, params):
        predictions = keras.layers.Dense(1, kernel_initializer="zeros", name="renamed")(features["x"])
        loss = tf.reduce_mean(tf.square(predictions - labels))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.0)))

    settings = bridge.WarmStartSettings(
        source.model_dir,
        vars_to_warm_start="renamed/kernel",
        var_name_to_prev_var_name={"renamed/kernel": "dense/kernel"},
    )
    est = bridge.Estimator(renamed_model_fn, model_dir=str(tmp_path / "t"), params={}, warm_start_from=settings)
    est.train(train_input_fn, steps=1)
    np.testing.assert_allclose(est.get_variable_value("renamed/kernel"), source.get_variable_value("dense/kernel"))


def test_unused_prev_var_name_is_an_error(tmp_path, source, train_input_fn):
    settings = bridge.WarmStartSettings(source.model_dir, var_name_to_prev_var_name={"dense/kernle": "dense/kernel"})
    with pytest.raises(ValueError, match="were not used.*Perhaps you misspelled them"):
        _warm(tmp_path, settings).train(train_input_fn, steps=1)


def test_selected_variable_missing_from_source_is_an_error(tmp_path, source, train_input_fn):
    def bigger_model_fn(features, labels, mode, params):
        hidden = keras.layers.Dense(1, name="dense")(features["x"])
        predictions = keras.layers.Dense(1, name="extra")(hidden)
        loss = tf.reduce_mean(tf.square(predictions - labels))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.01)))

    est = bridge.Estimator(bigger_model_fn, model_dir=str(tmp_path / "t"), params={}, warm_start_from=source.model_dir)
    with pytest.raises(ValueError, match=r"Tensor extra/\w+ is not found in .* checkpoint"):
        est.train(train_input_fn, steps=1)


def test_evaluate_and_predict_without_checkpoint_use_warm_start(tmp_path, source):
    est = _warm(tmp_path, source.model_dir)
    result = est.evaluate(make_input_fn())
    assert result["global_step"] == 0
    assert result["loss"] == pytest.approx(source.evaluate(make_input_fn())["loss"], rel=1e-6)
    expected = X @ source.get_variable_value("dense/kernel") + source.get_variable_value("dense/bias")
    rows = list(est.predict(make_input_fn(y=None)))
    np.testing.assert_allclose(np.stack([r["y"] for r in rows]), expected, rtol=1e-5)


def test_own_checkpoint_wins_over_warm_start(tmp_path, source, train_input_fn):
    est = _warm(tmp_path, source.model_dir)
    est.train(train_input_fn, steps=3)
    own = est.get_variable_value("dense/kernel")
    assert not np.array_equal(own, source.get_variable_value("dense/kernel"))
    rows = list(est.predict(make_input_fn(y=None)))
    expected = X @ own + est.get_variable_value("dense/bias")
    np.testing.assert_allclose(np.stack([r["y"] for r in rows]), expected, rtol=1e-5)
    est.train(train_input_fn, steps=1)
    assert int(est.get_variable_value("global_step")) == 4


def test_warm_start_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="warm_start_from must be a string or a WarmStartSettings"):
        _warm(tmp_path, 3)
    with pytest.raises(ValueError, match="`ckpt_to_initialize_from` MUST be set"):
        _warm(tmp_path, bridge.WarmStartSettings(""))
