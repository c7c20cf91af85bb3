"""Constructor validation and ``outputs`` of the export output classes."""

import pytest
import tensorflow as tf

from bridge.export_output import (
    ClassificationOutput,
    ExportOutput,
    PredictOutput,
    RegressionOutput,
)


def test_export_output_is_abstract():
    with pytest.raises(TypeError):
        ExportOutput()


def test_predict_output_single_tensor_is_named_output():
    t = tf.constant([1.0, 2.0])
    out = PredictOutput(t)
    assert out.outputs == {"output": t}
    assert out.method_name == "tensorflow/serving/predict"


def test_predict_output_dict_keeps_keys():
    a, b = tf.constant([1.0]), tf.constant([2])
    assert PredictOutput({"a": a, "b": b}).outputs == {"a": a, "b": b}


def test_predict_output_tuple_keys_are_joined_with_slash():
    t = tf.constant([1.0])
    assert PredictOutput({("head", "probabilities"): t}).outputs == {"head/probabilities": t}


def test_predict_output_rejects_non_string_key():
    with pytest.raises(ValueError, match="Prediction output key must be a string"):
        PredictOutput({1: tf.constant([1.0])})


def test_predict_output_rejects_non_tensor_value():
    with pytest.raises(ValueError, match="Prediction output value must be a Tensor"):
        PredictOutput({"a": [1.0, 2.0]})


def test_predict_output_outputs_is_a_copy():
    out = PredictOutput({"a": tf.constant([1.0])})
    out.outputs["b"] = tf.constant([2.0])
    assert list(out.outputs) == ["a"]


def test_classification_output_scores_and_classes():
    scores = tf.constant([[0.2, 0.8]])
    classes = tf.constant([["a", "b"]])
    out = ClassificationOutput(scores=scores, classes=classes)
    assert out.outputs == {"classes": classes, "scores": scores}
    assert out.scores is scores and out.classes is classes
    assert out.method_name == "tensorflow/serving/classify"


def test_classification_output_only_one_needed():
    scores = tf.constant([[0.2, 0.8]], dtype=tf.float64)  # any float dtype
    assert ClassificationOutput(scores=scores).outputs == {"scores": scores}
    classes = tf.constant([["a"]])
    assert ClassificationOutput(classes=classes).outputs == {"classes": classes}


def test_classification_output_needs_scores_or_classes():
    with pytest.raises(ValueError, match="at least one of `scores` and `classes`"):
        ClassificationOutput()


def test_classification_output_rejects_int_scores():
    with pytest.raises(ValueError, match="scores must be a float Tensor"):
        ClassificationOutput(scores=tf.constant([[1, 2]]))


def test_classification_output_rejects_int_classes():
    with pytest.raises(ValueError, match="classes must be a string Tensor"):
        ClassificationOutput(classes=tf.constant([[0, 1]]))


def test_classification_output_rejects_non_tensor_scores():
    with pytest.raises(ValueError, match="scores must be a float Tensor"):
        ClassificationOutput(scores=[[0.5, 0.5]])


def test_regression_output():
    value = tf.constant([1.5])
    out = RegressionOutput(value)
    assert out.outputs == {"outputs": value}
    assert out.value is value
    assert out.method_name == "tensorflow/serving/regress"


def test_regression_output_rejects_non_float():
    with pytest.raises(ValueError, match="Regression output value must be a float Tensor"):
        RegressionOutput(tf.constant([1]))
    with pytest.raises(ValueError, match="Regression output value must be a float Tensor"):
        RegressionOutput(1.5)
