"""model_fn argument inspection and calling, as tf.estimator 2.15 did it."""

from __future__ import annotations

import functools
import logging

import keras
import pytest
import tensorflow as tf

import bridge
from tests.conftest import keras_model_fn, make_input_fn


def _spec(features, labels, mode):
    predictions = keras.layers.Dense(1, name="dense")(features["x"])
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions=predictions)
    loss = tf.reduce_mean(tf.square(predictions - labels))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.01)))


def test_model_fn_none_rejected(model_dir):
    with pytest.raises(ValueError, match="model_fn must be provided to Estimator"):
        bridge.Estimator(None, model_dir=model_dir)


def test_features_argument_required(model_dir):
    def model_fn(labels, mode):
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="must include features argument"):
        bridge.Estimator(model_fn, model_dir=model_dir)


def test_unexpected_argument_rejected(model_dir):
    def model_fn(features, labels, foo):
        raise AssertionError("not called")

    with pytest.raises(ValueError, match=r"has following not expected args: \['foo'\]"):
        bridge.Estimator(model_fn, model_dir=model_dir)


def test_params_without_params_argument_rejected(model_dir):
    def model_fn(features, labels, mode):
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="does not include params argument"):
        bridge.Estimator(model_fn, model_dir=model_dir, params={"a": 1})


def test_params_argument_without_params_warns_and_gets_empty_dict(model_dir, caplog):
    seen = []

    def model_fn(features, labels, mode, params):
        seen.append(params)
        return _spec(features, labels, mode)

    with caplog.at_level(logging.WARNING, logger="bridge"):
        est = bridge.Estimator(model_fn, model_dir=model_dir)
    assert "includes params argument, but params are not passed to Estimator" in caplog.text
    est.train(make_input_fn(), steps=1)
    assert seen == [{}]


def test_only_declared_arguments_are_passed(model_dir):
    seen = {}

    def model_fn(features, labels, mode, params, config):
        seen.update(mode=mode, params=params, config=config)
        return _spec(features, labels, mode)

    config = bridge.RunConfig(tf_random_seed=7)
    est = bridge.Estimator(model_fn, model_dir=model_dir, config=config, params={"p": 1})
    est.train(make_input_fn(), steps=1)
    assert seen["mode"] == "train"
    assert seen["params"] == {"p": 1}
    assert isinstance(seen["config"], bridge.RunConfig)
    assert seen["config"].tf_random_seed == 7 and seen["config"].model_dir == model_dir


@pytest.mark.parametrize("method, mode", [("train", "train"), ("evaluate", "eval"), ("predict", "infer")])
def test_mode_per_method(model_dir, method, mode):
    modes = []

    def model_fn(features, labels, mode):
        modes.append(mode)
        return _spec(features, labels, mode)

    est = bridge.Estimator(model_fn, model_dir=model_dir)
    if method == "train":
        est.train(make_input_fn(), steps=1)
    elif method == "evaluate":
        est.evaluate(make_input_fn())
    else:
        list(est.predict(make_input_fn(y=None)))
    assert modes == [mode]


def test_features_only_model_fn(model_dir):
    def model_fn(features, mode):
        predictions = keras.layers.Dense(1)(features["x"])
        loss = tf.reduce_mean(tf.square(predictions))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.1)), predictions=predictions)

    est = bridge.Estimator(model_fn, model_dir=model_dir)
    est.train(make_input_fn(y=None), steps=2)
    assert int(est.get_variable_value("global_step")) == 2


def test_labels_given_to_model_fn_without_labels_is_value_error(model_dir):
    def model_fn(features, mode):
        raise AssertionError("not called")

    est = bridge.Estimator(model_fn, model_dir=model_dir)
    with pytest.raises(ValueError, match="model_fn does not take labels, but input_fn returns labels"):
        est.train(make_input_fn(), steps=1)


def test_model_fn_must_return_estimator_spec(model_dir):
    def model_fn(features, labels, mode):
        return {"loss": tf.constant(1.0)}

    est = bridge.Estimator(model_fn, model_dir=model_dir)
    with pytest.raises(ValueError, match="model_fn should return an EstimatorSpec"):
        est.train(make_input_fn(), steps=1)
    with pytest.raises(ValueError, match="model_fn should return an EstimatorSpec"):
        est.evaluate(make_input_fn())


def test_partial_bound_arguments_are_not_counted(model_dir):
    def model_fn(features, labels, mode, extra):
        assert extra == "bound"
        return _spec(features, labels, mode)

    est = bridge.Estimator(functools.partial(model_fn, extra="bound"), model_dir=model_dir)
    est.train(make_input_fn(), steps=1)


def test_callable_object_and_bound_method(model_dir, tmp_path):
    class Model:
        def __call__(self, features, labels, mode):
            return _spec(features, labels, mode)

        def model_fn(self, features, labels, mode):
            return _spec(features, labels, mode)

    bridge.Estimator(Model(), model_dir=model_dir).train(make_input_fn(), steps=1)
    bridge.Estimator(Model().model_fn, model_dir=str(tmp_path / "m2")).train(make_input_fn(), steps=1)


def test_public_model_fn_binds_params(model_dir):
    est = bridge.Estimator(keras_model_fn, model_dir=model_dir, params={"learning_rate": 0.5})
    import inspect

    assert list(inspect.signature(est.model_fn).parameters) == ["features", "labels", "mode", "config"]
