"""tf.compat.v1.layers inside model_fn: TF1 names, defaults and UPDATE_OPS, checked against TF 2.15.

The fixture (tests/fixtures/legacy_2_15/v1_layers/) holds a model_dir that tf.estimator 2.15
trained with the model_fn in model.py, and what 2.15 computed from it: predictions, evaluate's
loss, every variable after 3 more training steps with and without the UPDATE_OPS dependency.
bridge runs the very same model_fn source.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import bridge
from compat._legacy import copy_model_dir, facts, module

FACTS = facts("v1_layers")
MODEL = module("v1_layers")
NAMING = module("v1_layers", "naming")


def _config():
    return bridge.RunConfig(tf_random_seed=1, save_summary_steps=None, log_step_count_steps=None)


def _estimator(model_dir, update_ops=True):
    return bridge.Estimator(MODEL.make_model_fn(bridge.EstimatorSpec, update_ops), model_dir, _config())


def test_2_15_model_dir_restores_with_tf1_names_and_predicts_2_15_outputs(tmp_path):
    estimator = _estimator(copy_model_dir("v1_layers", str(tmp_path)))
    assert sorted(estimator.get_variable_names()) == sorted(FACTS["variables"])
    x, _ = MODEL.data(8, seed=1)
    predictions = estimator.predict(lambda: tf.data.Dataset.from_tensor_slices({"x": x}).batch(8))
    logits = np.array([p["logits"] for p in predictions])
    np.testing.assert_allclose(logits, FACTS["predictions"], rtol=1e-5, atol=1e-5)
    loss = estimator.evaluate(MODEL.input_fn(), steps=2)["loss"]
    assert loss == pytest.approx(FACTS["evaluate_loss"], rel=1e-5)


@pytest.mark.parametrize("update_ops", [True, False])
def test_training_matches_2_15_step_for_step_including_moving_statistics(tmp_path, update_ops):
    """With the control dependency the moving statistics move as in 2.15; without it they stay (TF1)."""
    model_dir = copy_model_dir("v1_layers", str(tmp_path))
    _estimator(model_dir, update_ops).train(MODEL.input_fn(seed=2), steps=3)
    expected = FACTS[f"after_3_steps_update_ops_{update_ops}"]
    reader = tf.train.load_checkpoint(model_dir)
    for name, value in expected.items():
        np.testing.assert_allclose(reader.get_tensor(name), value, rtol=1e-4, atol=1e-5, err_msg=name)
    before = tf.train.load_checkpoint(copy_model_dir("v1_layers", str(tmp_path / "orig")))
    moved = not np.allclose(reader.get_tensor("batch_normalization/moving_mean"), before.get_tensor("batch_normalization/moving_mean"))
    assert moved is update_ops


def _names_in_model_fn(build):
    """Variable names, trainability and collections a model_fn gets when it calls ``build``."""
    seen = {}

    def model_fn(features, labels, mode):
        build(features["x"], features["image"])
        seen["global"] = [v.name for v in tf.compat.v1.global_variables()]
        seen["trainable"] = [v.name for v in tf.compat.v1.trainable_variables()]
        seen["update_ops"] = len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS))
        seen["regularization_losses"] = len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES))
        return bridge.EstimatorSpec(mode, predictions=tf.zeros([1]))

    features = {"x": np.zeros((2, 4), np.float32), "image": np.zeros((2, 6, 6, 2), np.float32)}
    estimator = bridge.Estimator(model_fn, config=_config())
    next(estimator.predict(lambda: tf.data.Dataset.from_tensors(features)))
    return seen


@pytest.mark.parametrize("case", sorted(FACTS["naming"]))
def test_variable_names_and_collections_match_2_15(case):
    assert _names_in_model_fn(NAMING.CASES[case]) == FACTS["naming"][case]


def test_layers_exist_only_inside_a_bridge_model_fn():
    with pytest.raises(AttributeError, match="not available with Keras 3"):
        tf.compat.v1.layers.dense  # noqa: B018
    _names_in_model_fn(lambda x, i: tf.compat.v1.layers.dense(x, 1))
    with pytest.raises(AttributeError, match="not available with Keras 3"):
        tf.compat.v1.layers.dense  # noqa: B018


def test_training_given_as_a_tensor_behaves_as_the_python_bool():
    """TF1's smart_cond: a tensor ``training`` picks the same branch at run time as the bool would."""

    def model_fn(features, labels, mode):
        layers = tf.compat.v1.layers
        x = features["x"]
        yes = tf.compat.v1.placeholder_with_default(True, [])
        no = tf.compat.v1.placeholder_with_default(False, [])
        predictions = {
            "bn_tensor_true": layers.batch_normalization(x, training=yes, name="bn"),
            "bn_true": layers.batch_normalization(x, training=True, name="bn", reuse=True),
            "bn_tensor_false": layers.batch_normalization(x, training=no, name="bn", reuse=True),
            "bn_false": layers.batch_normalization(x, training=False, name="bn", reuse=True),
            "dropout_tensor_false": layers.dropout(x, 0.5, training=no),
            "dropout_tensor_true": layers.dropout(x, 0.5, training=yes),
            "x": x,
        }
        return bridge.EstimatorSpec(mode, predictions=predictions)

    x = np.random.RandomState(0).normal(size=(64, 4)).astype(np.float32)
    estimator = bridge.Estimator(model_fn, config=_config())
    rows = list(estimator.predict(lambda: tf.data.Dataset.from_tensors({"x": x})))
    out = {key: np.stack([row[key] for row in rows]) for key in rows[0]}
    np.testing.assert_allclose(out["bn_tensor_true"], out["bn_true"], rtol=1e-6)
    np.testing.assert_allclose(out["bn_tensor_true"].mean(axis=0), 0.0, atol=1e-5)  # batch statistics
    np.testing.assert_allclose(out["bn_tensor_false"], out["bn_false"], rtol=1e-6)
    np.testing.assert_allclose(out["bn_false"], out["x"] / np.sqrt(1.0 + 1e-3), rtol=1e-5)  # moving 0 / 1, eps 1e-3
    np.testing.assert_array_equal(out["dropout_tensor_false"], out["x"])
    dropped = out["dropout_tensor_true"]
    kept = dropped != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(dropped[kept], 2.0 * out["x"][kept], rtol=1e-6)


def test_tf1_layers_bridge_does_not_reproduce_name_the_keras_replacement():
    with pytest.raises(NotImplementedError, match=r"keras\.layers\.SeparableConv2D"):
        _names_in_model_fn(lambda x, i: tf.compat.v1.layers.separable_conv2d(i, 2, 3))


CONV_TRANSPOSE = facts("conv_transpose")
CONV_TRANSPOSE_RECORD = module("conv_transpose", "record")


@pytest.mark.parametrize("case", sorted(CONV_TRANSPOSE["cases"]))
def test_conv2d_transpose_names_shapes_and_outputs_match_2_15(case):
    expected = CONV_TRANSPOSE["cases"][case]

    def model_fn(features, labels, mode):
        out = CONV_TRANSPOSE_RECORD.build(case)
        CONV_TRANSPOSE_RECORD.build(case)
        assert {v.name: v.shape.as_list() for v in tf.compat.v1.global_variables()} == expected["variables"]
        return bridge.EstimatorSpec(mode, predictions=out)

    estimator = bridge.Estimator(model_fn, config=_config())
    rows = list(estimator.predict(lambda: tf.data.Dataset.from_tensors({"x": np.zeros((2, 1), np.float32)})))
    np.testing.assert_allclose(np.stack(rows), expected["output"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CONV_TRANSPOSE["errors"]))
def test_conv2d_transpose_refuses_what_2_15_refused(case):
    expected = CONV_TRANSPOSE["errors"][case]
    with pytest.raises({"TypeError": TypeError, "ValueError": ValueError}[expected["error"]]) as raised:
        _names_in_model_fn(lambda x, i: CONV_TRANSPOSE_RECORD.ERRORS[case](tf.constant(CONV_TRANSPOSE_RECORD.inputs())))
    assert str(raised.value) == expected["message"]
