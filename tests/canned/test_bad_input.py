"""Bad input fails as in tf.estimator 2.15 (exception class and message recorded in errors.json),
with a message naming the argument and the value, and a failed first call leaves model_dir as it
was (2.15 left the step-0 checkpoint, state file and graph: recorded, and deliberately not kept)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

import bridge
import bridge.compat.v1.estimator
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


def model_dir_state(path):
    """Every entry under path (relative), or None when it does not exist."""
    if not os.path.exists(path):
        return None
    return sorted(os.path.relpath(os.path.join(root, name), path)
                  for root, dirs, files in os.walk(path) for name in dirs + files)


@pytest.fixture(params=["new", "existing"])
def model_dir(request, tmp_path):
    """A model_dir that does not exist yet (nor its parent), or one holding a user's file and folder."""
    if request.param == "new":
        return str(tmp_path / "parent" / "model")
    path = tmp_path / "model"
    (path / "notes").mkdir(parents=True)
    (path / "README.txt").write_text("mine")
    (path / "notes" / "n.txt").write_text("mine too")
    return str(path)


def assert_fails_leaving_model_dir_as_it_was(model_dir, call, case=None, raised=None, match=None):
    before = model_dir_state(model_dir)
    parent_before = model_dir_state(os.path.dirname(os.path.dirname(model_dir)))
    if case is not None:
        assert_raises_as_2_15(case, call)
    else:
        with pytest.raises(raised, match=match):
            call()
    assert model_dir_state(model_dir) == before
    assert model_dir_state(os.path.dirname(os.path.dirname(model_dir))) == parent_before


def test_2_15_left_files_behind():
    """What 2.15 left after a first step failed on its labels (bridge leaves nothing)."""
    left = RECORDED["labels_out_of_range_files_left"]["files"]
    assert "model.ckpt-0.index" in left and "checkpoint" in left


def test_n_classes_below_2(tmp_path):
    assert_raises_as_2_15("n_classes_1", lambda: bridge.DNNClassifier([2], [X], n_classes=1, model_dir=str(tmp_path)))
    assert_raises_as_2_15("linear_n_classes_1", lambda: bridge.LinearClassifier([X], n_classes=1))


@pytest.mark.parametrize("case,n_classes,labels", [
    ("labels_out_of_range", 2, [[0], [1], [2], [1]]),
    ("labels_out_of_range_3", 3, [[0], [1], [3], [1]]),
])
def test_labels_out_of_range_in_training(case, n_classes, labels, model_dir):
    est = bridge.DNNClassifier([2], [X], n_classes=n_classes, model_dir=model_dir)
    assert_fails_leaving_model_dir_as_it_was(model_dir, lambda: train(est, labels), case)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"n_classes={n_classes}\)"):
        train(est, labels)


def test_negative_labels_in_training(model_dir):
    est = bridge.LinearClassifier([X], n_classes=3, model_dir=model_dir)
    assert_fails_leaving_model_dir_as_it_was(model_dir, lambda: train(est, [[0], [-1], [2], [1]]),
                                             raised=tf.errors.InvalidArgumentError, match="Labels must be >= 0")


def test_feature_missing_from_input_fn(model_dir):
    est = bridge.DNNClassifier([2], [X, fc.embedding_column(COLOR, 2)], model_dir=model_dir)
    assert_fails_leaving_model_dir_as_it_was(model_dir, lambda: train(est, [[0], [1], [0], [1]]),
                                             raised=ValueError, match="Feature color is not in features dictionary")
    assert RECORDED["missing_feature"]["raised"] == "ValueError"


def test_a_failed_call_after_a_trained_checkpoint_keeps_everything(tmp_path):
    """Only a first call is taken back: a model_dir with a checkpoint keeps what every call wrote."""
    model_dir = str(tmp_path)
    est = bridge.DNNClassifier([2], [X], model_dir=model_dir)
    train(est, [[0], [1], [0], [1]])
    before = model_dir_state(model_dir)
    with pytest.raises(tf.errors.InvalidArgumentError):
        train(est, [[0], [1], [2], [1]])
    assert set(before) <= set(model_dir_state(model_dir))
    assert est.latest_checkpoint().endswith("model.ckpt-1")


def test_empty_hidden_units_is_a_linear_layer_as_in_2_15(tmp_path):
    assert RECORDED["empty_hidden_units"]["raised"] is None
    est = bridge.DNNClassifier([], [X], model_dir=str(tmp_path))
    train(est, [[0], [1], [0], [1]])
    assert sorted(est.get_variable_names()) == [
        "dnn/logits/bias", "dnn/logits/kernel", "global_step", "training/Adagrad/decay",
        "training/Adagrad/dnn/logits/bias/accumulator", "training/Adagrad/dnn/logits/kernel/accumulator",
        "training/Adagrad/learning_rate"]


def test_unknown_optimizer_name_fails_at_train(model_dir):
    assert RECORDED["unknown_optimizer_constructor"]["raised"] is None
    est = bridge.DNNClassifier([2], [X], optimizer="Adamax2", model_dir=model_dir)
    assert_fails_leaving_model_dir_as_it_was(model_dir, lambda: train(est, [[0], [1], [0], [1]]),
                                             "unknown_optimizer_train")


def test_not_an_optimizer(tmp_path):
    est = bridge.DNNClassifier([2], [X], optimizer=3, model_dir=str(tmp_path))
    assert_raises_as_2_15("bad_optimizer_object", lambda: train(est, [[0], [1], [0], [1]]))


def test_unknown_label_string(model_dir):
    est = bridge.DNNClassifier([2], [X], label_vocabulary=["no", "yes"], model_dir=model_dir)
    call = lambda: train(est, [["no"], ["yes"], ["maybe"], ["no"]])  # noqa: E731
    assert_fails_leaving_model_dir_as_it_was(model_dir, call, "unknown_label_string")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not in label_vocabulary \(no, yes\):\] \[maybe\]"):
        call()


def test_n_classes_below_2_writes_nothing(model_dir):
    before = model_dir_state(model_dir)
    with pytest.raises(ValueError, match=r"n_classes must be > 2: 1"):
        bridge.compat.v1.estimator.DNNClassifier([2], [X], n_classes=1, model_dir=model_dir)
    assert model_dir_state(model_dir) == before


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


def test_a_call_whose_first_step_succeeded_keeps_what_it_wrote(tmp_path):
    """A step succeeded before the bad batch: the call trained, so its files stay (as in 2.15)."""
    model_dir = str(tmp_path / "model")
    est = bridge.DNNClassifier([2], [X], model_dir=model_dir)
    features = {"x": np.ones((8, 2), np.float32)}
    labels = np.array([[0], [1], [0], [1], [0], [1], [2], [1]])
    with pytest.raises(tf.errors.InvalidArgumentError):
        est.train(lambda: tf.data.Dataset.from_tensor_slices((features, labels)).batch(4), steps=2)
    assert "model.ckpt-0.index" in os.listdir(model_dir)


def test_any_estimator_failing_in_its_first_call_leaves_model_dir_as_it_was(model_dir):
    """The runtime's rule, not a canned one: a custom model_fn that fails while traced."""

    def model_fn(features, labels, mode):
        raise ValueError("model_fn refuses")

    est = bridge.Estimator(model_fn, model_dir=model_dir, config=bridge.RunConfig(save_summary_steps=1))
    assert_fails_leaving_model_dir_as_it_was(model_dir, lambda: train(est, [[0], [1], [0], [1]]),
                                             raised=ValueError, match="model_fn refuses")
