"""Bad input fails as in tf.estimator 2.15 (exception class and message recorded in errors.json),
and a call that fails before training leaves no checkpoint behind (one whose first step fails on
its data leaves the step-0 checkpoint, as 2.15 did)."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

import bridge
import legacy_cases as L

fc = tf.feature_column
X = fc.numeric_column("x", shape=(2,))
COLOR = fc.categorical_column_with_vocabulary_list("color", ["red", "green", "blue"])
RECORDED = L.errors()


def train(est, labels, features=None):
    features = features or {"x": np.ones((4, 2), np.float32)}
    est.train(lambda: tf.data.Dataset.from_tensor_slices((features, np.asarray(labels))).batch(4), steps=1)


def assert_raises_as_2_15(case, call):
    fact = RECORDED[case]
    error_class = getattr(tf.errors, fact["raised"], None) or getattr(__builtins__, fact["raised"], None)
    if error_class is None:
        import builtins

        error_class = getattr(builtins, fact["raised"])
    with pytest.raises(error_class) as raised:
        call()
    expected = fact["detail"] or fact["message"]
    if expected.startswith("assertion failed: ["):  # a failed in-graph assertion: its message part
        expected = expected[len("assertion failed: ["):].split("]")[0].rstrip(". ")
    if expected.startswith("Detected at node"):
        expected = "Cast string to float is not supported"
    assert expected in str(raised.value)


def assert_only_initial_checkpoint(model_dir):
    """A step that fails on its data leaves what 2.15 left: the step-0 checkpoint of the initial weights."""
    left = RECORDED["labels_out_of_range_files_left"]["files"]
    assert "model.ckpt-0.index" in left and not any(f.startswith("model.ckpt-1") for f in left)
    assert sorted(glob.glob(os.path.join(model_dir, "model.ckpt-*.index"))) == [os.path.join(model_dir, "model.ckpt-0.index")]


def assert_no_checkpoint(model_dir):
    assert not glob.glob(os.path.join(model_dir, "model.ckpt-*")), os.listdir(model_dir)
    assert not os.path.exists(os.path.join(model_dir, "checkpoint"))


def test_n_classes_below_2(tmp_path):
    assert_raises_as_2_15("n_classes_1", lambda: bridge.DNNClassifier([2], [X], n_classes=1, model_dir=str(tmp_path)))
    assert_raises_as_2_15("linear_n_classes_1", lambda: bridge.LinearClassifier([X], n_classes=1))


@pytest.mark.parametrize("case,n_classes,labels", [
    ("labels_out_of_range", 2, [[0], [1], [2], [1]]),
    ("labels_out_of_range_3", 3, [[0], [1], [3], [1]]),
])
def test_labels_out_of_range_in_training(case, n_classes, labels, tmp_path):
    est = bridge.DNNClassifier([2], [X], n_classes=n_classes, model_dir=str(tmp_path))
    assert_raises_as_2_15(case, lambda: train(est, labels))
    assert_only_initial_checkpoint(str(tmp_path))


def test_feature_missing_from_input_fn(tmp_path):
    est = bridge.DNNClassifier([2], [X, fc.embedding_column(COLOR, 2)], model_dir=str(tmp_path))
    with pytest.raises(ValueError, match="Feature color is not in features dictionary"):
        train(est, [[0], [1], [0], [1]])
    assert RECORDED["missing_feature"]["raised"] == "ValueError"
    assert_no_checkpoint(str(tmp_path))


def test_empty_hidden_units_is_a_linear_layer_as_in_2_15(tmp_path):
    assert RECORDED["empty_hidden_units"]["raised"] is None
    est = bridge.DNNClassifier([], [X], model_dir=str(tmp_path))
    train(est, [[0], [1], [0], [1]])
    assert sorted(est.get_variable_names()) == [
        "dnn/logits/bias", "dnn/logits/kernel", "global_step", "training/Adagrad/decay",
        "training/Adagrad/dnn/logits/bias/accumulator", "training/Adagrad/dnn/logits/kernel/accumulator",
        "training/Adagrad/learning_rate"]


def test_unknown_optimizer_name_fails_at_train(tmp_path):
    assert RECORDED["unknown_optimizer_constructor"]["raised"] is None
    est = bridge.DNNClassifier([2], [X], optimizer="Adamax2", model_dir=str(tmp_path))
    assert_raises_as_2_15("unknown_optimizer_train", lambda: train(est, [[0], [1], [0], [1]]))
    assert_no_checkpoint(str(tmp_path))


def test_not_an_optimizer(tmp_path):
    est = bridge.DNNClassifier([2], [X], optimizer=3, model_dir=str(tmp_path))
    assert_raises_as_2_15("bad_optimizer_object", lambda: train(est, [[0], [1], [0], [1]]))


def test_unknown_label_string(tmp_path):
    est = bridge.DNNClassifier([2], [X], label_vocabulary=["no", "yes"], model_dir=str(tmp_path))
    assert_raises_as_2_15("unknown_label_string", lambda: train(est, [["no"], ["yes"], ["maybe"], ["no"]]))
    assert_only_initial_checkpoint(str(tmp_path))


def test_string_labels_without_vocabulary(tmp_path):
    est = bridge.DNNClassifier([2], [X], model_dir=str(tmp_path))
    assert_raises_as_2_15("string_labels_without_vocabulary", lambda: train(est, [["a"], ["b"], ["a"], ["b"]]))
    with pytest.raises(tf.errors.UnimplementedError, match="label_vocabulary"):
        train(est, [["a"], ["b"], ["a"], ["b"]])


def test_constructor_arguments():
    assert_raises_as_2_15("label_vocabulary_not_list", lambda: bridge.DNNClassifier([2], [X], label_vocabulary="ab"))
    assert_raises_as_2_15("bad_loss_reduction", lambda: bridge.DNNClassifier([2], [X], loss_reduction="none"))
    assert_raises_as_2_15("combined_no_columns", lambda: bridge.DNNLinearCombinedClassifier())
    assert RECORDED["no_feature_columns"]["raised"] is None
    bridge.LinearClassifier([])


def test_combined_without_hidden_units_fails_at_train_as_in_2_15(tmp_path):
    assert RECORDED["combined_no_hidden_units"]["raised"] is None
    est = bridge.DNNLinearCombinedClassifier(dnn_feature_columns=[X], model_dir=str(tmp_path))
    with pytest.raises(ValueError, match="dnn_hidden_units must be defined when dnn_feature_columns is specified"):
        train(est, [[0], [1], [0], [1]])
