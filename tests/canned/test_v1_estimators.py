"""tf.compat.v1.estimator's canned classes (bridge.compat.v1.estimator): trained from scratch with
every kind of feature column and TF1 optimizers, they evaluate, predict and export with 2.15's keys;
their checkpoints carry 2.15's TF1 names. (2.15 model_dirs of these classes: test_legacy_model_dirs.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import bridge
import bridge.compat.v1.estimator as V1
from bridge.canned import v1 as v1_impl
import legacy_cases as L
import test_estimators as T
from test_estimators import columns  # noqa: F401 - the fixture


def make(kind, dense, every_kind, model_dir):
    head_binary = bridge.BinaryClassHead(weight_column="w")
    return {
        "DNNClassifier": lambda: V1.DNNClassifier([5, 3], dense, model_dir=model_dir, weight_column="w",
                                                  dropout=0.1, batch_norm=True),
        "DNNRegressor": lambda: V1.DNNRegressor(
            [4], dense, model_dir=model_dir, optimizer=lambda: tf.compat.v1.train.MomentumOptimizer(0.01, 0.9)),
        "DNNEstimator": lambda: V1.DNNEstimator(head_binary, [4], dense, model_dir=model_dir, optimizer=(
            tf.compat.v1.train.ProximalAdagradOptimizer(0.1, l1_regularization_strength=0.001))),
        "LinearClassifier": lambda: V1.LinearClassifier(every_kind, model_dir=model_dir, n_classes=3,
                                                        label_vocabulary=["no", "yes", "maybe"]),
        "LinearRegressor": lambda: V1.LinearRegressor(every_kind, model_dir=model_dir, weight_column="w",
                                                      sparse_combiner="mean", optimizer=None),
        "LinearEstimator": lambda: V1.LinearEstimator(head_binary, every_kind, model_dir=model_dir, optimizer="SGD"),
        "DNNLinearCombinedClassifier": lambda: V1.DNNLinearCombinedClassifier(
            model_dir=model_dir, linear_feature_columns=every_kind, dnn_feature_columns=dense,
            dnn_hidden_units=[4], dnn_optimizer="Adam"),
        "DNNLinearCombinedRegressor": lambda: V1.DNNLinearCombinedRegressor(
            model_dir=model_dir, linear_feature_columns=every_kind, dnn_feature_columns=dense, dnn_hidden_units=[4],
            loss_reduction=tf.compat.v1.losses.Reduction.MEAN),
        "DNNLinearCombinedEstimator": lambda: V1.DNNLinearCombinedEstimator(
            bridge.RegressionHead(), model_dir=model_dir, linear_feature_columns=every_kind),
        "BaselineClassifier": lambda: V1.BaselineClassifier(model_dir=model_dir, n_classes=3,
                                                            label_vocabulary=["no", "yes", "maybe"]),
        "BaselineRegressor": lambda: V1.BaselineRegressor(model_dir=model_dir, weight_column="w"),
        "BaselineEstimator": lambda: V1.BaselineEstimator(bridge.BinaryClassHead(), model_dir=model_dir),
    }[kind]()


@pytest.mark.parametrize("kind", sorted(T.EXPECTED))
def test_v1_class_trains_evaluates_predicts_exports(kind, columns, tmp_path):
    dense, every_kind = columns
    label, eval_keys, predict_dtypes = T.EXPECTED[kind]
    model_dir = str(tmp_path / "model")
    est = make(kind, dense, every_kind, model_dir)
    assert isinstance(est, bridge.Estimator) and type(est) is getattr(V1, kind)
    est.train(T.input_fn(label, epochs=None), steps=4)

    names = [name for name, _ in tf.train.list_variables(model_dir)]
    assert not any(name.startswith("training/") for name in names), names  # TF1 optimizers: no Keras state
    slots = [name for name in names if name.rsplit("/", 1)[-1].split("_")[0] in (
        "Adagrad", "Adam", "Ftrl", "Momentum", "ProximalAdagrad")]
    if not kind.endswith("Estimator") or kind == "DNNEstimator":
        assert slots, names
    if kind.startswith("DNN") and not kind.startswith("DNNLinear"):
        assert all("/t_0/" in name for name in slots), slots
    if kind.startswith("Linear"):
        assert all("/part_0/" in name for name in slots), slots

    result = est.evaluate(T.input_fn(label))
    assert set(result) == eval_keys
    assert result["global_step"] == 4
    assert all(np.isfinite(v) for v in result.values())

    predictions = list(est.predict(T.input_fn(label)))
    assert len(predictions) == T.N
    assert {k: v.dtype for k, v in predictions[0].items()} == {k: np.dtype(v) for k, v in predict_dtypes.items()}

    spec = T.fc.make_parse_example_spec(dense + every_kind) if not kind.startswith("Baseline") else {
        "x": tf.io.FixedLenFeature([2], tf.float32)}
    path = est.export_saved_model(str(tmp_path / "export"), bridge.export.build_parsing_serving_input_receiver_fn(spec))
    loaded = tf.saved_model.load(path.decode())
    assert set(loaded.signatures) == T.SIGNATURES[label]


def test_loss_is_summed_over_the_batch_as_in_2_15():
    """evaluate's loss is the mean per-batch sum (2.15 recorded it 8x average_loss on batches of 8)."""
    for name in L.V1_CASES:
        result = L.facts(name)["evaluate"]
        weighted = name == "v1_linear_regressor"
        if not weighted:
            np.testing.assert_allclose(L.value(result["loss"]), L.BATCH * L.value(result["average_loss"]), rtol=1e-5)


def test_an_optimizer_instance_trains_again_in_a_later_call(tmp_path):
    """The instance is copied per call: a second train() continues (Adam's beta powers included)."""
    c = L.columns()
    optimizer = tf.compat.v1.train.AdamOptimizer(0.01)
    est = V1.DNNClassifier([3], [c["x"]], optimizer=optimizer, model_dir=str(tmp_path))
    data = L.input_fn("dnn_classifier")
    est.train(data, steps=2)
    est.train(data, steps=2)
    reader = tf.train.load_checkpoint(str(tmp_path))
    assert reader.get_tensor("global_step") == 4
    np.testing.assert_allclose(reader.get_tensor("dnn/head/beta1_power"), 0.9 ** 5, rtol=1e-6)  # 0.9, times 0.9 a step


def test_bad_optimizers_raise_2_15s_value_errors(tmp_path):
    import keras

    c = L.columns()
    data = L.input_fn("dnn_classifier")
    with pytest.raises(ValueError, match="Unsupported optimizer name: Adamax2"):
        V1.DNNClassifier([2], [c["x"]], optimizer="Adamax2", model_dir=str(tmp_path / "a")).train(data, steps=1)
    with pytest.raises(ValueError, match="The given object is not an Optimizer instance"):
        V1.DNNClassifier([2], [c["x"]], optimizer=keras.optimizers.Adam(), model_dir=str(tmp_path / "b")).train(
            data, steps=1)


def test_tf1_reductions_divide_by_the_weights():
    """tf.compat.v1.losses.Reduction.MEAN (Σ w·l / Σ w) and SUM_BY_NONZERO_WEIGHTS (Σ w·l / #w≠0),
    which the TF1 heads accepted; the v1 classes pass them to bridge's heads."""
    feats = {"w": tf.constant([[1.0], [2.0], [0.0], [1.0]])}
    labels = tf.constant([[1.0], [2.0], [3.0], [4.0]])
    logits = tf.zeros([4, 1])
    total = 1 * 1 + 2 * 4 + 0 * 9 + 1 * 16
    expected = {"weighted_sum": total, "weighted_mean": total / 4.0, "weighted_sum_by_nonzero_weights": total / 3.0,
                "weighted_sum_over_batch_size": total / 4.0}
    for reduction, value in expected.items():
        head = v1_impl._regression_head(1, "w", reduction)  # pylint: disable=protected-access
        np.testing.assert_allclose(head.loss(labels, logits, features=feats).numpy(), value, rtol=1e-6,
                                   err_msg=reduction)


def test_every_tf_compat_v1_estimator_name_resolves_under_bridge_compat_v1_estimator():
    """2.15's tf.compat.v1.estimator names (recorded): the 12 canned ones are the TF1 classes,
    the rest are the same objects as under tf.estimator (bridge's)."""
    import fnmatch
    import json
    import os

    here = os.path.join(os.path.dirname(L.FIXTURES), "api")
    with open(os.path.join(here, "public_names.json")) as f:
        names = json.load(f)["tf.compat.v1.estimator"]
    with open(os.path.join(here, "public_names_missing.json")) as f:
        excluded = json.load(f)["excluded"]
    for name in names:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in excluded):
            continue
        value = V1
        for part in name.split("."):
            value = getattr(value, part)
        if name in V1.V1_NAMES:
            assert value is not getattr(bridge, name) and value.__module__ == "bridge.canned.v1", name
        else:
            assert value is _resolve(bridge, name), name


def _resolve(module, name):
    for part in name.split("."):
        module = getattr(module, part)
    return module
