"""model_to_estimator / estimator_to_keras: equivalence with model.fit / evaluate / predict, errors.

Every model is built twice from the same seed: one copy goes through the estimator, the other
through Keras, on the same batches in the same order with the same optimizer.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from bridge.export_output import RegressionOutput
from bridge.keras_bridge import KERAS_MODEL_FILE, MissingKeysError

N, BATCH, STEPS = 32, 8, 4  # STEPS * BATCH == N: one epoch of model.fit
RNG = np.random.RandomState(0)
XA = RNG.randn(N, 4).astype(np.float32)
XB = RNG.randn(N, 3).astype(np.float32)
Y_REG = (XA[:, :1] - 2.0 * XB[:, 1:2] + 0.3).astype(np.float32)
Y_CLS = (XA[:, 0] + XB[:, 0] > 0).astype(np.int64)
Y_BIN = (XA.sum(axis=1, keepdims=True) > 0).astype(np.float32)


def assert_weights_close(model_a, model_b, atol=1e-5):
    assert len(model_a.weights) == len(model_b.weights)
    for a, b in zip(model_a.weights, model_b.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=1e-4, err_msg=a.path)


def assert_results_close(estimator_results, keras_results, renames=None):
    renames = renames or {}
    for name, value in keras_results.items():
        if name.endswith("loss") and name != "loss":
            continue  # per-output losses are not compiled metrics
        np.testing.assert_allclose(estimator_results[renames.get(name, name)], value, rtol=1e-5, atol=1e-6, err_msg=name)


def dataset_fn(features, labels=None, batch=BATCH, epochs=1):
    def input_fn():
        data = features if labels is None else (features, labels)
        return tf.data.Dataset.from_tensor_slices(data).repeat(epochs).batch(batch)

    return input_fn


def predictions_of(estimator, input_fn):
    batches = list(estimator.predict(input_fn, yield_single_examples=False))
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


# -- models ---------------------------------------------------------------------------------------
def sequential_model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((4,), name="x"),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1, activation="sigmoid", name="prob"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy", keras.metrics.AUC(name="auc")])
    return model


def two_input_model(dropout=0.0):
    keras.utils.set_random_seed(2)
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    h = keras.layers.Concatenate()([a, b])
    h = keras.layers.Dense(16, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.01), name="hidden")(h)
    if dropout:
        h = keras.layers.Dropout(dropout)(h)
    reg = keras.layers.Dense(1, name="reg")(h)
    cls = keras.layers.Dense(2, activation="softmax", name="cls")(h)
    model = keras.Model({"a": a, "b": b}, [reg, cls])
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        loss=["mse", "sparse_categorical_crossentropy"],
        loss_weights=[1.0, 0.5],
        metrics=[["mae"], ["accuracy"]],
    )
    return model


@keras.saving.register_keras_serializable(package="test_keras_bridge")
class Subclassed(keras.Model):
    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.norm = keras.layers.BatchNormalization()
        self.out = keras.layers.Dense(1)

    def call(self, inputs, training=False):
        return self.out(self.norm(self.hidden(inputs), training=training))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def subclassed_model():
    keras.utils.set_random_seed(3)
    model = Subclassed(name="sub")
    model(np.zeros((1, 4), np.float32))
    model.compile(keras.optimizers.RMSprop(0.01), "mse", metrics=["mae"])
    return model


TWO_INPUT_FEATURES = {"a": XA, "b": XB}
TWO_INPUT_LABELS = {"reg": Y_REG, "cls": Y_CLS}


# -- equivalence ----------------------------------------------------------------------------------
def test_sequential_matches_fit_evaluate_predict(tmp_path):
    converted, reference = sequential_model(), sequential_model()
    estimator = bridge.model_to_estimator(converted, model_dir=str(tmp_path))
    assert isinstance(estimator, bridge.Estimator)
    train = dataset_fn({"x": XA}, Y_BIN)

    # Before training: the Keras weights (BatchNorm statistics included) are the starting point.
    assert_results_close(estimator.evaluate(train), reference.evaluate(XA, Y_BIN, batch_size=BATCH, return_dict=True, verbose=0))

    estimator.train(train, steps=STEPS)
    reference.fit(XA, Y_BIN, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert estimator.get_variable_value("global_step") == STEPS
    assert_weights_close(bridge.estimator_to_keras(estimator), reference)
    # The converted model object is never modified by the estimator.
    assert_weights_close(converted, sequential_model())

    results = estimator.evaluate(train)
    expected = reference.evaluate(XA, Y_BIN, batch_size=BATCH, return_dict=True, verbose=0)
    assert set(results) == {"accuracy", "auc", "loss", "global_step"}
    assert_results_close(results, expected)

    predictions = predictions_of(estimator, dataset_fn({"x": XA}))
    assert list(predictions) == ["prob"]  # keyed by output name even for one output
    np.testing.assert_allclose(predictions["prob"], reference.predict(XA, batch_size=BATCH, verbose=0), atol=1e-6)


def test_two_input_functional_matches_fit_evaluate_predict(tmp_path):
    converted, reference = two_input_model(), two_input_model()
    # Several steps per traced call (iterations_per_loop) change nothing.
    config = bridge.RunConfig(iterations_per_loop=3)
    estimator = bridge.model_to_estimator(converted, model_dir=str(tmp_path), config=config)
    estimator.train(dataset_fn(TWO_INPUT_FEATURES, TWO_INPUT_LABELS, epochs=2), steps=2 * STEPS)
    reference.fit(TWO_INPUT_FEATURES, [Y_REG, Y_CLS], batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert_weights_close(bridge.estimator_to_keras(estimator), reference)

    results = estimator.evaluate(dataset_fn(TWO_INPUT_FEATURES, TWO_INPUT_LABELS))
    expected = reference.evaluate(TWO_INPUT_FEATURES, [Y_REG, Y_CLS], batch_size=BATCH, return_dict=True, verbose=0)
    assert set(results) == {"reg_mae", "cls_accuracy", "loss", "global_step"}
    assert_results_close(results, expected)  # loss includes loss weights and the L2 penalty

    # Extra feature keys are ignored; labels may also be a list in output order.
    extra = dict(TWO_INPUT_FEATURES, unused=XA)
    predictions = predictions_of(estimator, dataset_fn(extra))
    reg, cls = reference.predict(TWO_INPUT_FEATURES, batch_size=BATCH, verbose=0)
    assert sorted(predictions) == ["cls", "reg"]
    np.testing.assert_allclose(predictions["reg"], reg, atol=1e-5)
    np.testing.assert_allclose(predictions["cls"], cls, atol=1e-6)


def test_subclassed_matches_fit_evaluate_predict(tmp_path):
    converted, reference = subclassed_model(), subclassed_model()
    estimator = bridge.model_to_estimator(converted, model_dir=str(tmp_path))
    estimator.train(dataset_fn(XA, Y_REG), steps=STEPS)
    reference.fit(XA, Y_REG, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(bridge.estimator_to_keras(estimator), reference)
    assert_results_close(
        estimator.evaluate(dataset_fn(XA, Y_REG)),
        reference.evaluate(XA, Y_REG, batch_size=BATCH, return_dict=True, verbose=0),
    )
    predictions = predictions_of(estimator, dataset_fn(XA))
    np.testing.assert_allclose(predictions["output_1"], reference.predict(XA, batch_size=BATCH, verbose=0), atol=1e-5)


def test_lambda_layer(tmp_path):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((4,), name="x")
    outputs = keras.layers.Dense(1, name="y")(keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    estimator = bridge.model_to_estimator(model, model_dir=str(tmp_path))
    predictions = predictions_of(estimator, dataset_fn({"x": XA}))
    np.testing.assert_allclose(predictions["y"], model.predict(XA, verbose=0), atol=1e-6)


def test_training_flag_only_in_train(tmp_path):
    """Dropout is active in TRAIN only: evaluate and predict match Keras exactly."""
    model = two_input_model(dropout=0.9)
    estimator = bridge.model_to_estimator(model, model_dir=str(tmp_path))
    predictions = predictions_of(estimator, dataset_fn(TWO_INPUT_FEATURES))
    np.testing.assert_allclose(predictions["cls"], model.predict(TWO_INPUT_FEATURES, verbose=0)[1], atol=1e-6)
    before = estimator.evaluate(dataset_fn(TWO_INPUT_FEATURES, TWO_INPUT_LABELS))
    assert_results_close(before, model.evaluate(TWO_INPUT_FEATURES, [Y_REG, Y_CLS], batch_size=BATCH, return_dict=True, verbose=0))
    estimator.train(dataset_fn(TWO_INPUT_FEATURES, TWO_INPUT_LABELS), steps=1)
    # With dropout 0.9 in training, the hidden layer's gradient differs from a no-dropout step.
    trained = bridge.estimator_to_keras(estimator)
    no_dropout = two_input_model()
    no_dropout.fit(TWO_INPUT_FEATURES, [Y_REG, Y_CLS], batch_size=BATCH, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
    assert not np.allclose(np.asarray(trained.get_layer("hidden").kernel), np.asarray(no_dropout.get_layer("hidden").kernel))


def test_sample_weights_match_fit(tmp_path):
    weights = np.linspace(0.1, 2.0, N).astype(np.float32)
    converted, reference = subclassed_model(), subclassed_model()
    estimator = bridge.model_to_estimator(converted, model_dir=str(tmp_path))
    estimator.train(dataset_fn({"features": XA, "sample_weights": weights}, Y_REG), steps=STEPS)
    reference.fit(XA, Y_REG, sample_weight=weights, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(bridge.estimator_to_keras(estimator), reference)


def test_fitted_optimizer_state_carries_over(tmp_path):
    """A model already trained with fit continues from its optimizer state (momentum, iterations)."""
    converted, reference = two_input_model(), two_input_model()
    for model in (converted, reference):
        model.fit(TWO_INPUT_FEATURES, [Y_REG, Y_CLS], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    estimator = bridge.model_to_estimator(converted, model_dir=str(tmp_path))
    estimator.train(dataset_fn(TWO_INPUT_FEATURES, TWO_INPUT_LABELS), steps=STEPS)
    reference.fit(TWO_INPUT_FEATURES, [Y_REG, Y_CLS], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    back = bridge.estimator_to_keras(estimator)
    assert_weights_close(back, reference)
    assert int(back.optimizer.iterations.numpy()) == 2 * STEPS


# -- the way back ---------------------------------------------------------------------------------
def test_way_back_from_model_dir_continues_like_fit(tmp_path):
    """estimator_to_keras(model_dir) restores weights and optimizer state: fit continues exactly."""
    model_dir = str(tmp_path / "model")
    converted, reference = sequential_model(), sequential_model()
    estimator = bridge.model_to_estimator(converted, model_dir=model_dir)
    assert os.path.exists(os.path.join(model_dir, KERAS_MODEL_FILE))
    half = dataset_fn({"x": XA[:16]}, Y_BIN[:16])
    estimator.train(half, steps=2)

    back = bridge.estimator_to_keras(model_dir)
    assert back.compiled and int(back.optimizer.iterations.numpy()) == 2
    back.fit(XA[16:], Y_BIN[16:], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    reference.fit(XA, Y_BIN, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(back, reference)

    path = str(tmp_path / "trained.keras")
    back.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(XA, verbose=0), reference.predict(XA, verbose=0), atol=1e-6)


def test_way_back_subclassed_and_explicit_checkpoint(tmp_path):
    model_dir = str(tmp_path)
    estimator = bridge.model_to_estimator(subclassed_model(), model_dir=model_dir, config=bridge.RunConfig(save_checkpoints_steps=1))
    estimator.train(dataset_fn(XA, Y_REG), steps=2)
    first = os.path.join(model_dir, "model.ckpt-1")
    at_one = bridge.estimator_to_keras(model_dir, checkpoint_path=first)
    latest = bridge.estimator_to_keras(model_dir)
    assert isinstance(latest, Subclassed)
    # Keys are Keras paths, and the optimizer's automatic name carries no process counter.
    names = estimator.get_variable_names()
    assert "sub/dense/kernel" in names and "sub/batch_normalization/moving_mean" in names
    assert "rm_sprop/sub_dense_kernel_velocity" in names
    reader = tf.train.load_checkpoint(first)
    np.testing.assert_allclose(np.asarray(at_one.hidden.kernel), reader.get_tensor("sub/dense/kernel"))
    assert not np.allclose(np.asarray(at_one.hidden.kernel), np.asarray(latest.hidden.kernel))


def test_way_back_without_checkpoint_gives_starting_weights(tmp_path):
    model = sequential_model()
    back = bridge.estimator_to_keras(bridge.model_to_estimator(model, model_dir=str(tmp_path)))
    assert_weights_close(back, model)


def test_keras_file_path(tmp_path):
    path = str(tmp_path / "model.keras")
    two_input_model().save(path)
    reference = two_input_model()
    estimator = bridge.model_to_estimator(keras_model_path=path, model_dir=str(tmp_path / "model"))
    estimator.train(dataset_fn(TWO_INPUT_FEATURES, TWO_INPUT_LABELS), steps=STEPS)
    reference.fit(TWO_INPUT_FEATURES, [Y_REG, Y_CLS], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(bridge.estimator_to_keras(estimator), reference)


# -- metric_names_map and export_outputs ----------------------------------------------------------
def test_metric_names_map(tmp_path):
    renames = {"reg_mae": "mae/reg", "cls_accuracy": "accuracy/cls"}
    estimator = bridge.model_to_estimator(two_input_model(), model_dir=str(tmp_path), metric_names_map=renames)
    results = estimator.evaluate(dataset_fn(TWO_INPUT_FEATURES, TWO_INPUT_LABELS))
    assert set(results) == {"mae/reg", "accuracy/cls", "loss", "global_step"}
    expected = two_input_model().evaluate(TWO_INPUT_FEATURES, [Y_REG, Y_CLS], batch_size=BATCH, return_dict=True, verbose=0)
    assert_results_close(results, expected, renames)


@pytest.mark.parametrize(
    "renames, message",
    [
        ({"reg_mae": "m"}, r"\['cls_accuracy'\] do not exist in the `metric_names_map`"),
        ({"reg_mae": "m", "cls_accuracy": "a", "auc": "x"}, r"unexpected keys.*\['auc'\]"),
    ],
)
def test_metric_names_map_must_match_exactly(tmp_path, renames, message):
    estimator = bridge.model_to_estimator(two_input_model(), model_dir=str(tmp_path), metric_names_map=renames)
    with pytest.raises(ValueError, match=message):
        estimator.evaluate(dataset_fn(TWO_INPUT_FEATURES, TWO_INPUT_LABELS))


def test_export_outputs(tmp_path):
    estimator = bridge.model_to_estimator(two_input_model(), model_dir=str(tmp_path), export_outputs={"reg": RegressionOutput})
    spec = estimator.model_fn(
        {k: tf.constant(v[:2]) for k, v in TWO_INPUT_FEATURES.items()}, None, bridge.ModeKeys.PREDICT, None
    )
    assert set(spec.export_outputs) == {"serving_default", "reg"}
    assert isinstance(spec.export_outputs["reg"], RegressionOutput)
    with pytest.raises(KeyError, match="Missed keys: {'nope'}"):
        bridge.model_to_estimator(two_input_model(), model_dir=str(tmp_path), export_outputs={"nope": RegressionOutput})


# -- errors ---------------------------------------------------------------------------------------
def test_neither_or_both_model_and_path():
    with pytest.raises(ValueError, match="Either `keras_model` or `keras_model_path`"):
        bridge.model_to_estimator()
    with pytest.raises(ValueError, match="but not both"):
        bridge.model_to_estimator(keras_model=sequential_model(), keras_model_path="m.keras")


def test_uncompiled_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="has not been compiled yet"):
        bridge.model_to_estimator(model)


def test_non_tensorflow_backend(monkeypatch):
    monkeypatch.setattr(keras.config, "backend", lambda: "jax")
    with pytest.raises(ValueError, match="TensorFlow Keras backend.*'jax'"):
        bridge.model_to_estimator(sequential_model())


def test_invalid_checkpoint_format():
    with pytest.raises(ValueError, match='Checkpoint format must be one of "checkpoint" or "saver"'):
        bridge.model_to_estimator(sequential_model(), checkpoint_format="object")


def test_subclassed_model_without_config():
    class NoConfig(keras.Model):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def call(self, x):
            return self.layer(x)

    model = NoConfig(keras.layers.Dense(1))
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="must implement `get_config` and `from_config`"):
        bridge.model_to_estimator(model)


def test_feature_key_mismatch_names_expected_and_received(tmp_path):
    estimator = bridge.model_to_estimator(two_input_model(), model_dir=str(tmp_path))
    with pytest.raises(MissingKeysError) as info:
        estimator.train(dataset_fn({"a": XA, "c": XB}, TWO_INPUT_LABELS), steps=1)
    message = str(info.value)
    assert "Expected keys: {'a', 'b'}" in message or "Expected keys: {'b', 'a'}" in message
    assert "features keys:" in message and "'c'" in message and "Missed keys: {'b'}" in message
    assert isinstance(info.value, KeyError)


def test_label_key_mismatch_names_expected_and_received(tmp_path):
    estimator = bridge.model_to_estimator(two_input_model(), model_dir=str(tmp_path))
    with pytest.raises(MissingKeysError, match=r"labels keys: {'regression'}.*|Missed keys") as info:
        estimator.evaluate(dataset_fn(TWO_INPUT_FEATURES, {"regression": Y_REG, "cls": Y_CLS}))
    assert "Missed keys: {'reg'}" in str(info.value) and "'regression'" in str(info.value)


def test_single_tensor_for_two_inputs(tmp_path):
    estimator = bridge.model_to_estimator(two_input_model(), model_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"2 inputs \['a', 'b'\].*must be a dict"):
        list(estimator.predict(dataset_fn(XA)))


def test_way_back_needs_a_converted_estimator(tmp_path):
    def model_fn(features, labels, mode):
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="created by bridge.model_to_estimator"):
        bridge.estimator_to_keras(bridge.Estimator(model_fn, model_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="was not written by bridge.model_to_estimator"):
        bridge.estimator_to_keras(str(tmp_path))


def test_compiled_metrics_run_on_the_cpp_engine_and_match_keras(tmp_path):
    """Issue 5: compiled metrics with a bridge.metrics twin are computed by the C++ engine."""
    from bridge.metrics.ops import HostMetricOp

    rng = np.random.RandomState(0)
    x = rng.rand(200, 4).astype("float32")
    y = (x.sum(1) > 2).astype("float32")
    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(1, activation="sigmoid", name="out")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy", keras.metrics.AUC(name="auc"), "mae"])
    estimator = bridge.model_to_estimator(model, model_dir=str(tmp_path))
    kinds = {}
    generated = estimator._model_fn

    def spying_model_fn(features, labels, mode, config):
        spec = generated(features=features, labels=labels, mode=mode, config=config)
        kinds.update({key: type(value) for key, value in spec.eval_metric_ops.items()})
        return spec

    estimator._model_fn = spying_model_fn
    result = estimator.evaluate(lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(50))
    assert kinds == {"accuracy": HostMetricOp, "auc": HostMetricOp, "mae": HostMetricOp}
    expected = model.evaluate(x, y, batch_size=50, verbose=0, return_dict=True)
    for key in ("accuracy", "auc", "mae", "loss"):
        np.testing.assert_allclose(result[key], expected[key], rtol=1e-5, err_msg=key)
