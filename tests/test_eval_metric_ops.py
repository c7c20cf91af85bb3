"""eval_metric_ops on the C++ engine: bridge.metrics constructors through Estimator.evaluate.

The reference values come from scikit-learn on the same predictions and labels: the model has
fixed (constant-initialised) weights, so ``Estimator.predict`` returns exactly what evaluate
scored. Thresholded AUC is checked two ways: against scikit-learn on the scores bucketed to
v1's thresholds (trapezoidal ROC/PR), and against a numpy transcription of v1's formulas
(all summation methods). The second half unit-tests ``bridge._host_metrics``.
"""

from __future__ import annotations

import math
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as skm

import bridge
from bridge._host_metrics import HostMetricFeeder, is_host_metric_op
from bridge.metrics import ops

N = 203  # batches of 50: the last one has 3 examples
BATCH = 50
NUM_CLASSES = 4
THRESHOLDS = [0.1, 0.3, 0.5, 0.75]

_rng = np.random.RandomState(7)
X = _rng.randn(N, 6).astype(np.float32)
LABELS = (_rng.rand(N) < 0.45).astype(np.int64)
LABELS3 = (_rng.rand(N, 3) < 0.45).astype(np.int64)  # multi-label: three binary columns
CLASS_LABELS = _rng.randint(0, NUM_CLASSES, N).astype(np.int64)
TARGETS = _rng.randn(N).astype(np.float32)
WEIGHTS = _rng.uniform(0.0, 2.0, N).astype(np.float32)
WEIGHTS[::17] = 0.0
KERNEL = _rng.randn(6, 8).astype(np.float32)
BIAS = (_rng.randn(8) * 0.1).astype(np.float32)


# -- the model ------------------------------------------------------------------------------------
def _features():
    return {"x": X, "weight": WEIGHTS, "cls": CLASS_LABELS, "target": TARGETS}


def input_fn(labels=LABELS, batch_size=BATCH):
    def fn():
        return tf.data.Dataset.from_tensor_slices((_features(), labels)).batch(batch_size)

    return fn


def _network(features):
    """Fixed weights: column 0 is the binary logit, 0:3 the multi-label logits, 4:8 class scores."""
    dense = keras.layers.Dense(
        8,
        kernel_initializer=keras.initializers.Constant(KERNEL),
        bias_initializer=keras.initializers.Constant(BIAS),
        name="dense",
    )
    logits = dense(features["x"])
    return {
        "prob": tf.sigmoid(logits[:, 0]),
        "probs3": tf.sigmoid(logits[:, 0:3]),
        "regression": logits[:, 3],
        "scores": tf.nn.softmax(logits[:, 4:8]),
        "class_ids": tf.argmax(logits[:, 4:8], axis=1),
    }


def _all_ops(features, labels, p, weights, multilabel):
    """Every constructor once (multi-label: the ones that flatten binary inputs)."""
    prob = p["probs3"] if multilabel else p["prob"]
    predicted = tf.cast(prob > 0.5, tf.int64)
    binary = {
        "accuracy": ops.accuracy(labels, predicted, weights),
        "precision": ops.precision(labels, predicted, weights),
        "recall": ops.recall(labels, predicted, weights),
        "true_positives": ops.true_positives(labels, predicted, weights),
        "false_positives": ops.false_positives(labels, predicted, weights),
        "true_negatives": ops.true_negatives(labels, predicted, weights),
        "false_negatives": ops.false_negatives(labels, predicted, weights),
        "auc": ops.auc(labels, prob, weights),
        "auc_pr": ops.auc(labels, prob, weights, curve="PR"),
        "exact_auc": ops.exact_auc(labels, prob, weights),
        "exact_auc_pr": ops.exact_auc(labels, prob, weights, curve="PR"),
        "precision_at_thresholds": ops.precision_at_thresholds(labels, prob, THRESHOLDS, weights),
        "recall_at_thresholds": ops.recall_at_thresholds(labels, prob, THRESHOLDS, weights),
        "mean": ops.mean(prob, weights),
        "mean_squared_error": ops.mean_squared_error(labels, prob, weights),
        "mean_absolute_error": ops.mean_absolute_error(labels, prob, weights),
        "root_mean_squared_error": ops.root_mean_squared_error(labels, prob, weights),
    }
    if multilabel:
        return binary
    target = features["target"]
    return {
        **binary,
        "regression_mse": ops.mean_squared_error(target, p["regression"], weights),
        "mean_per_class_accuracy": ops.mean_per_class_accuracy(features["cls"], p["class_ids"], NUM_CLASSES, weights),
        "confusion_matrix": ops.confusion_matrix(features["cls"], p["class_ids"], NUM_CLASSES, weights),
        "top_k_accuracy": ops.top_k_accuracy(features["cls"], p["scores"], k=2, weights=weights),
    }


def model_fn(features, labels, mode, params):
    p = _network(features)
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions=p)
    prob = p["probs3"] if params["multilabel"] else p["prob"]
    loss = tf.reduce_mean(tf.square(tf.cast(labels, tf.float32) - prob))
    weights = params["weights"](features) if params["weights"] else None
    eval_metric_ops = _all_ops(features, labels, p, weights, params["multilabel"])
    params["made"].extend(eval_metric_ops.values())
    return bridge.EstimatorSpec(mode, loss=loss, eval_metric_ops=eval_metric_ops)


def _estimator(tmp_path, weights=None, multilabel=False, made=None):
    params = {"weights": weights, "multilabel": multilabel, "made": made if made is not None else []}
    # params are deep-copied by the Estimator; keep the shared list reachable through a closure.
    shared = params["made"]

    def fn(features, labels, mode, params):
        return model_fn(features, labels, mode, {**params, "made": shared})

    return bridge.Estimator(fn, model_dir=str(tmp_path), params={k: v for k, v in params.items() if k != "made"})


def _predictions(est, labels=LABELS):
    out = list(est.predict(input_fn(labels), yield_single_examples=False))
    return {key: np.concatenate([batch[key] for batch in out]) for key in out[0]}


# -- scikit-learn's values ------------------------------------------------------------------------
def _v1_bucketed(scores, num_thresholds=200):
    """Each score replaced by how many of v1's thresholds lie strictly below it (float32 compare)."""
    inner = np.float32([(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)])
    thresholds = np.concatenate([[np.float32(-1e-7)], inner, [np.float32(1 + 1e-7)]])
    return (np.asarray(scores, np.float32)[:, None] > thresholds[None, :]).sum(axis=1)


def _sklearn_values(labels, p, weights, multilabel):
    """What each eval_metric_ops entry must equal, computed by scikit-learn (numpy for mean)."""
    prob = p["probs3"] if multilabel else p["prob"]
    y = np.asarray(labels).reshape(-1)
    if weights is not None and multilabel:
        weights = np.repeat(weights, 3)  # v1 broadcasts (batch,) weights over (batch, 3)
    s = prob.reshape(-1).astype(np.float64)
    predicted = (s > 0.5).astype(np.int64)
    tn, fp, fn, tp = skm.confusion_matrix(y, predicted, labels=[0, 1], sample_weight=weights).ravel()
    bucketed = _v1_bucketed(s)
    precision, recall, _ = skm.precision_recall_curve(y, bucketed, sample_weight=weights)
    values = {
        "accuracy": skm.accuracy_score(y, predicted, sample_weight=weights),
        "precision": skm.precision_score(y, predicted, sample_weight=weights, zero_division=0),
        "recall": skm.recall_score(y, predicted, sample_weight=weights, zero_division=0),
        "true_positives": tp,
        "false_positives": fp,
        "true_negatives": tn,
        "false_negatives": fn,
        "auc": skm.roc_auc_score(y, bucketed, sample_weight=weights),
        "auc_pr": skm.auc(recall, precision),
        "exact_auc": skm.roc_auc_score(y, s, sample_weight=weights),
        "exact_auc_pr": skm.average_precision_score(y, s, sample_weight=weights),
        "precision_at_thresholds": [
            skm.precision_score(y, s > np.float32(t), sample_weight=weights, zero_division=0) for t in THRESHOLDS
        ],
        "recall_at_thresholds": [
            skm.recall_score(y, s > np.float32(t), sample_weight=weights, zero_division=0) for t in THRESHOLDS
        ],
        "mean": np.average(s, weights=weights),
        "mean_squared_error": skm.mean_squared_error(y, s, sample_weight=weights),
        "mean_absolute_error": skm.mean_absolute_error(y, s, sample_weight=weights),
        "root_mean_squared_error": math.sqrt(skm.mean_squared_error(y, s, sample_weight=weights)),
    }
    if multilabel:
        return values
    classes = range(NUM_CLASSES)
    values.update(
        regression_mse=skm.mean_squared_error(TARGETS.astype(np.float64), p["regression"].astype(np.float64), sample_weight=weights),
        mean_per_class_accuracy=skm.balanced_accuracy_score(CLASS_LABELS, p["class_ids"], sample_weight=weights),
        confusion_matrix=skm.confusion_matrix(CLASS_LABELS, p["class_ids"], labels=list(classes), sample_weight=weights),
        top_k_accuracy=skm.top_k_accuracy_score(CLASS_LABELS, p["scores"], k=2, labels=list(classes), sample_weight=weights),
    )
    return values


# Bucketed AUC differs from scikit-learn's by v1's 1e-6 division epsilon only.
_LOOSE = {"auc": 1e-5, "auc_pr": 1e-5}


def _assert_matches(result, expected):
    assert set(expected) <= set(result), sorted(set(expected) - set(result))
    for key, value in expected.items():
        tol = _LOOSE.get(key, 1e-7)  # evaluate returns float32, as tf.estimator 2.15 did
        np.testing.assert_allclose(result[key], value, rtol=tol, atol=tol, err_msg=key)


# -- every constructor against scikit-learn ------------------------------------------------------
_WEIGHTINGS = {
    "unweighted": None,
    "weights_batch": lambda f: f["weight"],
    "weights_batch_1": lambda f: f["weight"][:, None],
}


@pytest.mark.parametrize("weighting", ["unweighted", "weights_batch"])
def test_every_constructor_matches_sklearn(tmp_path, weighting):
    est = _estimator(tmp_path, weights=_WEIGHTINGS[weighting])
    result = est.evaluate(input_fn())
    p = _predictions(est)
    weights = None if weighting == "unweighted" else WEIGHTS.astype(np.float64)
    expected = _sklearn_values(LABELS, p, weights, multilabel=False)
    _assert_matches(result, expected)
    assert result["confusion_matrix"].shape == (NUM_CLASSES, NUM_CLASSES)
    assert result["precision_at_thresholds"].shape == (len(THRESHOLDS),)
    assert type(result["accuracy"]) is np.float32  # as 2.15 (tests/compat/test_conformance.py)
    assert result["global_step"] == 0


@pytest.mark.parametrize("weighting", ["unweighted", "weights_batch", "weights_batch_1"])
def test_multidimensional_labels_and_predictions_are_flattened(tmp_path, weighting):
    est = _estimator(tmp_path, weights=_WEIGHTINGS[weighting], multilabel=True)
    result = est.evaluate(input_fn(LABELS3))
    p = _predictions(est, LABELS3)
    weights = None if weighting == "unweighted" else WEIGHTS.astype(np.float64)
    _assert_matches(result, _sklearn_values(LABELS3, p, weights, multilabel=True))


def test_uneven_last_batch_and_steps(tmp_path):
    """203 = 4 x 50 + 3; with steps=2 only the first 100 examples count."""
    est = _estimator(tmp_path)
    p = _predictions(est)
    full = est.evaluate(input_fn())
    first_two = est.evaluate(input_fn(), steps=2)
    head = {key: value[:100] for key, value in p.items()}
    predicted = (p["prob"] > 0.5).astype(np.int64)
    assert full["accuracy"] == pytest.approx(skm.accuracy_score(LABELS, predicted), abs=1e-7)
    assert first_two["accuracy"] == pytest.approx(skm.accuracy_score(LABELS[:100], predicted[:100]), abs=1e-7)
    assert first_two["exact_auc"] == pytest.approx(skm.roc_auc_score(LABELS[:100], head["prob"]), abs=1e-7)


def test_seed_pattern_in_a_classic_model_fn(tmp_path):
    """The issue's 'done when': eval_metric_ops = {"accuracy": bridge.metrics.accuracy(labels, predictions)}."""

    def classic(features, labels, mode):
        logits = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(0.3))(features["x"])[:, 0]
        predictions = tf.cast(logits > 0, tf.int64)
        loss = tf.reduce_mean(tf.square(logits))
        eval_metric_ops = {"accuracy": bridge.metrics.accuracy(labels, predictions)}
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.0)),
                                    eval_metric_ops=eval_metric_ops)

    est = bridge.Estimator(classic, model_dir=str(tmp_path))
    est.train(input_fn(), steps=1)
    result = est.evaluate(input_fn())
    expected = skm.accuracy_score(LABELS, (X.sum(axis=1) * 0.3 > 0).astype(np.int64))
    assert result["accuracy"] == pytest.approx(expected, abs=1e-7)
    assert result["global_step"] == 1


# -- the worked example of estimator-semantics §9.2 ------------------------------------------------
_A = ([1, 0, 1, 1], [0.9, 0.2, 0.4, 0.8], [1.0, 1.0, 1.0, 1.0])
_B = ([0, 0], [0.6, 0.1], [2.0, 0.0])


def _worked_example_fn(features, labels, mode):
    probs, weights = features["probs"], features["w"]
    rounded = tf.round(probs)
    loss = tf.reduce_mean(probs)
    return bridge.EstimatorSpec(
        mode,
        loss=loss,
        eval_metric_ops={
            "mean": ops.mean(labels),
            "mean_w": ops.mean(probs, weights),
            "accuracy": ops.accuracy(labels, rounded),
            "auc": ops.auc(labels, probs),
            "auc_pr": ops.auc(labels, probs, curve="PR"),
            "precision": ops.precision(labels, rounded),
            "recall": ops.recall(labels, rounded),
            "mse": ops.mean_squared_error(labels, probs),
            "rmse": ops.root_mean_squared_error(labels, probs),
            "mae": ops.mean_absolute_error(labels, probs),
        },
    )


def _worked_example_input():
    labels = np.array(_A[0] + _B[0], np.int64)
    features = {"probs": np.array(_A[1] + _B[1], np.float32), "w": np.array(_A[2] + _B[2], np.float32)}
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(4)


def test_worked_example_of_the_reference(tmp_path):
    est = bridge.Estimator(_worked_example_fn, model_dir=str(tmp_path))
    after_a = est.evaluate(_worked_example_input, steps=1)
    assert after_a["accuracy"] == pytest.approx(0.75)
    assert after_a["precision"] == pytest.approx(1.0)
    assert after_a["recall"] == pytest.approx(0.6667, abs=1e-4)
    assert after_a["auc"] == pytest.approx(1.0, abs=1e-4)
    assert after_a["mse"] == pytest.approx(0.1125, abs=1e-6)
    both = est.evaluate(_worked_example_input)
    expected = {"mean": 0.5, "mean_w": 0.5833, "accuracy": 0.6667, "auc": 0.8889, "auc_pr": 0.9028,
                "precision": 0.6667, "recall": 0.6667, "mse": 0.1367, "rmse": 0.3697, "mae": 0.30}
    for key, value in expected.items():
        assert both[key] == pytest.approx(value, abs=5e-5), key


# -- thresholded AUC: every summation method against v1's formula in numpy -----------------------
def _numpy_v1_auc(labels, predictions, weights, num_thresholds, curve, summation_method):
    """tf.compat.v1.metrics.auc transcribed: counts at every threshold, then its sums."""
    labels = np.asarray(labels).reshape(-1).astype(bool)
    scores = np.asarray(predictions, np.float32).reshape(-1)
    weights = np.ones_like(scores, np.float64) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    kepsilon = 1e-7
    inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    thresholds = np.float32([0.0 - kepsilon] + inner + [1.0 + kepsilon])
    above = scores[None, :] > thresholds[:, None]
    tp = (above & labels * 1 > 0).astype(np.float64) @ weights
    fp = (above & ~labels).astype(np.float64) @ weights
    fn = (~above & labels).astype(np.float64) @ weights
    tn = (~above & ~labels).astype(np.float64) @ weights
    epsilon = 1.0e-6
    if curve == "PR" and summation_method == "careful_interpolation":
        total = 0.0
        for i in range(num_thresholds - 1):
            dtp = tp[i] - tp[i + 1]
            p0, p1 = tp[i] + fp[i], tp[i + 1] + fp[i + 1]
            slope = dtp / max(p0 - p1, 0) if max(p0 - p1, 0) else 0.0
            intercept = tp[i + 1] - slope * p1
            ratio = p0 / p1 if (p0 > 0 and p1 > 0) else 1.0
            denominator = max(tp[i + 1] + fn[i + 1], 0)
            total += slope * (dtp + intercept * math.log(ratio)) / denominator if denominator else 0.0
        return total
    recall = (tp + epsilon) / (tp + fn + epsilon)
    if curve == "ROC":
        x, y = fp / (fp + tn + epsilon), recall
    else:
        x, y = recall, (tp + epsilon) / (tp + fp + epsilon)
    pick = {"minoring": np.minimum, "majoring": np.maximum}.get(summation_method)
    heights = pick(y[:-1], y[1:]) if pick else (y[:-1] + y[1:]) / 2.0
    return float(np.sum((x[:-1] - x[1:]) * heights))


_AUC_VARIANTS = [
    (curve, method, nt)
    for curve in ("ROC", "PR")
    for method in ("trapezoidal", "careful_interpolation", "minoring", "majoring")
    for nt in (200, 7)
] + [("ROC", "trapezoidal", 2)]


def _auc_variants_fn(features, labels, mode, params):
    prob = _network(features)["prob"]
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions={"prob": prob})
    weights = features["weight"] if params["weighted"] else None
    eval_metric_ops = {
        f"{curve}_{method}_{nt}": ops.auc(labels, prob, weights, num_thresholds=nt, curve=curve, summation_method=method)
        for curve, method, nt in _AUC_VARIANTS
    }
    return bridge.EstimatorSpec(mode, loss=tf.reduce_mean(prob), eval_metric_ops=eval_metric_ops)


@pytest.mark.parametrize("weighted", [False, True])
def test_auc_summation_methods_follow_v1_formula(tmp_path, weighted):
    est = bridge.Estimator(_auc_variants_fn, model_dir=str(tmp_path), params={"weighted": weighted})
    result = est.evaluate(input_fn())
    prob = np.array([row["prob"] for row in est.predict(input_fn())])
    weights = WEIGHTS if weighted else None
    for curve, method, nt in _AUC_VARIANTS:
        expected = _numpy_v1_auc(LABELS, prob, weights, nt, curve, method)
        assert result[f"{curve}_{method}_{nt}"] == pytest.approx(expected, rel=1e-7, abs=1e-7), (curve, method, nt)  # float32 results, as 2.15
    # The methods really differ on this data (the comparison above is not vacuous).
    assert result["PR_minoring_7"] < result["PR_trapezoidal_7"] < result["PR_majoring_7"]


def test_auc_scores_on_thresholds_compare_in_float32():
    """A float32 score equal to float32(k/199) is not above that threshold, as in v1."""
    on_threshold = np.float32(np.arange(1, 199) / 199.0)
    labels = (np.arange(198) % 3 == 0).astype(np.int64)
    op = ops.auc("labels", "predictions")
    op.update({"labels": labels, "predictions": on_threshold})
    expected = _numpy_v1_auc(labels, on_threshold, None, 200, "ROC", "trapezoidal")
    assert op.result() == pytest.approx(expected, rel=1e-12)
    precision = ops.precision_at_thresholds("labels", "predictions", [float(on_threshold[36])])
    precision.update({"labels": labels, "predictions": on_threshold})
    above = on_threshold > on_threshold[36]
    assert precision.result()[0] == pytest.approx(labels[above].mean(), rel=1e-12)


# -- mixing host ops with Keras metric objects and v1 tuples -----------------------------------------
def _mixed_fn(features, labels, mode):
    prob = _network(features)["prob"]
    predicted = tf.cast(prob > 0.5, tf.int64)
    keras_auc = keras.metrics.AUC(num_thresholds=200, name="keras_auc")
    keras_auc.update_state(labels, prob)
    return bridge.EstimatorSpec(
        mode,
        loss=tf.reduce_mean(prob),
        eval_metric_ops={
            "host_accuracy": ops.accuracy(labels, predicted),
            "host_auc": ops.auc(labels, prob),
            "keras_auc": keras_auc,
            "v1_accuracy": tf.compat.v1.metrics.accuracy(labels, predicted),
        },
    )


def test_host_ops_keras_metric_and_v1_tuple_in_one_spec(tmp_path):
    est = bridge.Estimator(_mixed_fn, model_dir=str(tmp_path))
    result = est.evaluate(input_fn())
    prob = _predictions(_estimator(tmp_path / "p"))["prob"]
    accuracy = skm.accuracy_score(LABELS, prob > 0.5)
    assert result["host_accuracy"] == pytest.approx(accuracy, abs=1e-7)
    assert result["v1_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert result["host_auc"] == pytest.approx(skm.roc_auc_score(LABELS, _v1_bucketed(prob)), abs=1e-5)
    assert result["keras_auc"] == pytest.approx(result["host_auc"], abs=1e-3)
    assert set(result) == {"host_accuracy", "host_auc", "keras_auc", "v1_accuracy", "loss", "global_step"}


# -- eval summaries ---------------------------------------------------------------------------------
def _read_summaries(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance={"tensors": 0, "scalars": 0})
    accumulator.Reload()
    values = {}
    for tag in accumulator.Tags()["tensors"]:
        event = accumulator.Tensors(tag)[-1]
        values[tag] = (event.step, tf.make_ndarray(event.tensor_proto))
    for tag in accumulator.Tags()["scalars"]:
        event = accumulator.Scalars(tag)[-1]
        values[tag] = (event.step, np.asarray(event.value))
    return values


def test_eval_summaries_hold_host_metric_values(tmp_path):
    est = _estimator(tmp_path)
    result = est.evaluate(input_fn())
    est.evaluate(input_fn(), name="second")
    for directory in (tmp_path / "eval", tmp_path / "eval_second"):
        summaries = _read_summaries(directory)
        for key in ("accuracy", "auc", "exact_auc", "mean_per_class_accuracy", "loss"):
            step, value = summaries[key]
            assert step == result["global_step"]
            assert float(value) == pytest.approx(float(result[key]), rel=1e-6), key
        step, matrix = summaries["confusion_matrix"]
        np.testing.assert_allclose(matrix, result["confusion_matrix"])


# -- errors inside metric updates -------------------------------------------------------------------
def _evaluate_with_timeout(est, fn, timeout=90.0):
    """Runs est.evaluate(fn) in a thread; returns its result or raises its exception; fails on a hang."""
    outcome = {}

    def run():
        try:
            outcome["result"] = est.evaluate(fn)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "evaluate() hung"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _failing_model_fn(bad_op):
    def model(features, labels, mode):
        prob = _network(features)["prob"]
        return bridge.EstimatorSpec(
            mode,
            loss=tf.reduce_mean(prob),
            eval_metric_ops={"good": ops.accuracy(labels, labels), "bad": bad_op(features, labels, prob)},
        )

    return model


def _many_batches():
    return tf.data.Dataset.from_tensor_slices((_features(), LABELS)).repeat(10).batch(5)


def test_label_out_of_range_in_confusion_matrix_surfaces(tmp_path):
    model = _failing_model_fn(lambda f, labels, prob: ops.confusion_matrix(f["cls"] + 1, f["cls"], NUM_CLASSES))
    est = bridge.Estimator(model, model_dir=str(tmp_path))
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\)") as info:
        _evaluate_with_timeout(est, _many_batches)
    assert time.monotonic() - started < 90
    assert any("eval_metric_ops['bad']" in note for note in getattr(info.value, "__notes__", []))
    assert not (tmp_path / "eval").exists()  # no summaries for a failed evaluation


def test_nan_predictions_in_auc_surface(tmp_path):
    model = _failing_model_fn(lambda f, labels, prob: ops.auc(labels, prob * np.float32("nan")))
    est = bridge.Estimator(model, model_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"auc: argument `y_pred` must hold finite numbers \(no NaN or inf\)"):
        _evaluate_with_timeout(est, _many_batches)


def test_incompatible_shapes_and_weights_surface(tmp_path):
    model = _failing_model_fn(lambda f, labels, prob: ops.accuracy(labels[:, None], tf.stack([prob, prob], 1)))
    with pytest.raises(ValueError, match=r"Shapes \(5, 1\) \(labels\) and \(5, 2\) \(predictions\) are incompatible"):
        _evaluate_with_timeout(bridge.Estimator(model, model_dir=str(tmp_path / "a")), _many_batches)
    model = _failing_model_fn(lambda f, labels, prob: ops.mean(prob, weights=tf.stack([prob, prob], 1)))
    with pytest.raises(ValueError, match=r"weights of shape \(5, 2\) cannot be broadcast to the values' shape \(5,\)"):
        _evaluate_with_timeout(bridge.Estimator(model, model_dir=str(tmp_path / "b")), _many_batches)


def test_estimator_still_works_after_a_failed_evaluation(tmp_path):
    model = _failing_model_fn(lambda f, labels, prob: ops.confusion_matrix(f["cls"] + 1, f["cls"], NUM_CLASSES))
    with pytest.raises(ValueError):
        _evaluate_with_timeout(bridge.Estimator(model, model_dir=str(tmp_path)), _many_batches)
    assert not [t for t in threading.enumerate() if t.name == "bridge-host-metrics"]
    result = _evaluate_with_timeout(_estimator(tmp_path), input_fn())
    assert result["accuracy"] > 0


# -- bounded queue, fresh ops ------------------------------------------------------------------------
class _SlowCount:
    """A HostMetricOp-like op whose update is slow; it records how far the loop ran ahead."""

    __bridge_metric_op__ = True

    def __init__(self, tensor, progress):
        self.fetches = {"values": tensor}
        self.progress = progress

    def update(self, values):
        time.sleep(0.01)
        self.progress["updates"] += 1
        self.progress["max_lag"] = max(self.progress["max_lag"], self.progress["steps"] - self.progress["updates"])

    def result(self):
        return np.float64(self.progress["updates"])


class _CountSteps(bridge.SessionRunHook):
    def __init__(self, progress):
        self.progress = progress

    def after_run(self, run_context, run_values):
        self.progress["steps"] += 1


def test_slow_metric_bounds_how_far_the_loop_runs_ahead(tmp_path):
    progress = {"steps": 0, "updates": 0, "max_lag": 0}

    def model(features, labels, mode):
        prob = _network(features)["prob"]
        return bridge.EstimatorSpec(mode, loss=tf.reduce_mean(prob), eval_metric_ops={"slow": _SlowCount(prob, progress)},
                                    evaluation_hooks=[_CountSteps(progress)])

    est = bridge.Estimator(model, model_dir=str(tmp_path))
    result = est.evaluate(lambda: tf.data.Dataset.from_tensor_slices((_features(), LABELS)).repeat(3).batch(10))
    assert result["slow"] == progress["steps"] == 61  # every step updated, in the end
    # The worker holds one step, the queue at most its depth (4), submit blocks on one more.
    assert progress["max_lag"] <= 6, progress


def test_host_metric_ops_are_fresh_per_evaluate_call(tmp_path):
    made = []
    est = _estimator(tmp_path, made=made)
    first = est.evaluate(input_fn())
    count = len(made)
    second = est.evaluate(input_fn())
    assert len(made) == 2 * count
    assert not {id(op) for op in made[:count]} & {id(op) for op in made[count:]}
    for key in ("accuracy", "true_positives", "mean", "exact_auc"):
        assert second[key] == first[key]  # nothing carried over


def test_a_reused_op_object_starts_empty_each_evaluation(tmp_path):
    """An op built once outside model_fn is reset, as tf.estimator re-initialised metric variables."""
    captured = {}

    def model(features, labels, mode):
        prob = _network(features)["prob"]
        if "tp" not in captured:
            captured["tp"] = ops.true_positives(labels, tf.cast(prob > 0.5, tf.int64))
        op = captured["tp"]
        op.fetches = {"labels": labels, "predictions": tf.cast(prob > 0.5, tf.int64)}  # this trace's tensors
        return bridge.EstimatorSpec(mode, loss=tf.reduce_mean(prob), eval_metric_ops={"tp": op, "tp_again": op})

    est = bridge.Estimator(model, model_dir=str(tmp_path))
    first = est.evaluate(input_fn())
    second = est.evaluate(input_fn())
    assert first["tp"] == second["tp"] == first["tp_again"]  # listed twice, counted once
    prob = _predictions(_estimator(tmp_path / "p"))["prob"]
    assert first["tp"] == np.sum((prob > 0.5) & (LABELS == 1))


# -- constructor validation -------------------------------------------------------------------------
def test_constructors_reject_bad_arguments():
    with pytest.raises(ValueError, match="curve must be either ROC or PR, XYZ unknown"):
        ops.auc("l", "p", curve="XYZ")
    with pytest.raises(ValueError, match="Invalid summation_method: bogus"):
        ops.auc("l", "p", summation_method="bogus")
    with pytest.raises(ValueError, match="num_thresholds must be an integer > 1"):
        ops.auc("l", "p", num_thresholds=1)
    with pytest.raises(ValueError, match="bridge.metrics.accuracy needs labels and predictions.*labels=None"):
        ops.accuracy(None, "p")
    with pytest.raises(ValueError, match="num_classes"):
        ops.confusion_matrix("l", "p", num_classes=1)
    with pytest.raises(ValueError, match="`k` must be an integer >= 1"):
        ops.top_k_accuracy("l", "p", k=0)
    with pytest.raises(ValueError, match="thresholds"):
        ops.precision_at_thresholds("l", "p", [1.5])
    with pytest.raises(ValueError, match="curve"):
        ops.exact_auc("l", "p", curve="XYZ")


def test_update_rejects_bad_values_clearly():
    with pytest.raises(TypeError, match="mean: values must be numbers"):
        ops.mean("v").update({"values": np.array([b"a"])})
    with pytest.raises(TypeError, match="integer or bool dtype"):
        ops.confusion_matrix("l", "p", 3).update({"labels": np.array([0.5]), "predictions": np.array([1])})
    with pytest.raises(ValueError, match=r"must hold probabilities in \[0, 1\].*1\.5"):
        ops.auc("l", "p").update({"labels": np.array([1, 0]), "predictions": np.array([1.5, 0.2])})
    with pytest.raises(ValueError, match="non-negative"):
        ops.precision("l", "p", "w").update({"labels": [1], "predictions": [1], "weights": [-1.0]})


def test_v1_weight_and_shape_rules():
    """Squeezable trailing 1s are dropped; (batch,) weights apply to every column; empty batches add nothing."""
    op = ops.accuracy("l", "p", "w")
    op.update({"labels": np.array([[1], [0]]), "predictions": np.array([1, 1]), "weights": np.array([[3.0], [1.0]])})
    op.update({"labels": np.zeros((0, 1)), "predictions": np.zeros(0), "weights": np.zeros((0, 1))})
    assert op.result() == pytest.approx(0.75)
    op = ops.mean("v", "w")
    op.update({"values": np.array([[1.0, 3.0], [5.0, 7.0]]), "weights": np.array([1.0, 0.0])})
    assert op.result() == pytest.approx(2.0)
    op = ops.top_k_accuracy("l", "p", k=1, weights="w")
    op.update({"labels": np.array([0, 1]), "predictions": np.array([[0.9, 0.1], [0.8, 0.2]]), "weights": np.array([1.0, 3.0])})
    assert op.result() == pytest.approx(0.25)
    assert repr(op) == "HostMetricOp(top_k_accuracy, fetches=['labels', 'predictions', 'weights'])"


# -- bridge._host_metrics unit tests ------------------------------------------------------------------
class _RecordingOp:
    __bridge_metric_op__ = True

    def __init__(self, fail_on=None, gate=None):
        self.seen = []
        self.resets = 0
        self.fail_on = fail_on
        self.gate = gate

    def reset(self):
        self.resets += 1

    def update(self, values):
        if self.gate is not None:
            self.gate.wait(10)
        if values == self.fail_on:
            raise KeyError(f"bad step {values}")
        self.seen.append(values)


def test_feeder_updates_in_order_and_resets_first():
    a, b = _RecordingOp(), _RecordingOp()
    a.seen.append("stale")
    feeder = HostMetricFeeder({"a": a, "b": b}, depth=2)
    assert a.resets == b.resets == 1
    for step in range(20):
        feeder.submit({"a": step, "b": -step})
    feeder.finish()
    assert a.seen == ["stale", *range(20)]  # reset() is the op's business; the feeder only calls it
    assert b.seen == [-s for s in range(20)]


def test_feeder_takes_a_grouped_call_as_one_submission():
    gate = threading.Event()
    op = _RecordingOp(gate=gate)
    feeder = HostMetricFeeder({"op": op}, depth=1)
    feeder.submit_steps([{"op": step} for step in range(32)])  # taken by the worker, which waits on the gate
    submitted = threading.Thread(target=lambda: feeder.submit_steps([{"op": step} for step in range(32, 40)]))
    submitted.start()
    submitted.join(2)
    assert not submitted.is_alive(), "32 steps of one call must not fill a queue of depth 1"
    gate.set()
    feeder.finish()
    assert op.seen == list(range(40))


def test_feeder_updates_an_op_listed_twice_once_per_step():
    op = _RecordingOp()
    feeder = HostMetricFeeder({"x": op, "y": op})
    feeder.submit({"x": 1, "y": 1})
    feeder.finish()
    assert op.seen == [1] and op.resets == 1


def test_feeder_submit_blocks_at_depth():
    gate = threading.Event()
    op = _RecordingOp(gate=gate)
    feeder = HostMetricFeeder({"op": op}, depth=2)
    for step in range(3):  # one taken by the worker (waiting on the gate), two queued
        feeder.submit({"op": step})
    time.sleep(0.05)
    blocked = threading.Thread(target=feeder.submit, args=({"op": 3},), daemon=True)
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive(), "submit() should block while depth steps are pending"
    assert feeder._queue.qsize() == 2
    gate.set()
    blocked.join(5)
    assert not blocked.is_alive()
    feeder.finish()
    assert op.seen == [0, 1, 2, 3]


def test_feeder_raises_update_error_with_type_message_and_key():
    feeder = HostMetricFeeder({"cm": _RecordingOp(fail_on=2)}, depth=1)
    with pytest.raises(KeyError, match="bad step 2") as info:
        for step in range(100):  # a later submit (or finish) raises; nothing hangs
            feeder.submit({"cm": step})
        feeder.finish()
    assert "raised by the update of eval_metric_ops['cm']" in info.value.__notes__
    feeder.abandon()
    assert not feeder._thread.is_alive()


def test_feeder_finish_raises_the_error_of_the_last_step():
    feeder = HostMetricFeeder({"op": _RecordingOp(fail_on=0)})
    feeder.submit({"op": 0})
    with pytest.raises(KeyError, match="bad step 0"):
        feeder.finish()
    assert not feeder._thread.is_alive()


def test_feeder_abandon_stops_quietly_with_a_full_queue():
    gate = threading.Event()
    op = _RecordingOp(gate=gate)
    feeder = HostMetricFeeder({"op": op}, depth=1)
    feeder.submit({"op": 0})
    feeder.submit({"op": 1})
    threading.Timer(0.1, gate.set).start()
    feeder.abandon()  # waits for the running update, skips the rest, raises nothing
    assert not feeder._thread.is_alive()
    assert op.seen == [0]


def test_feeder_validates_its_arguments():
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        HostMetricFeeder({}, depth=0)
    with pytest.raises(TypeError, match=r"eval_metric_ops\['x'\] is not a bridge.metrics host op"):
        HostMetricFeeder({"x": object()})
    assert is_host_metric_op(ops.mean("v")) and not is_host_metric_op(keras.metrics.Mean())
