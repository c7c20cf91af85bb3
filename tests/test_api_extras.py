"""The rest of tf.estimator 2.15's API (issue 20 items 3, 5, 6) against 2.15's recorded facts.

add_metrics, InMemoryEvaluatorHook, classifier/regressor_parse_example_spec, VocabInfo with
WarmStartSettings, GlobalStepWaiterHook, build_raw_supervised_input_receiver_fn, EvalOutput,
call_logit_fn. Facts: tests/fixtures/legacy_2_15/api/*.json (record.py there).
"""

from __future__ import annotations

import inspect
import json
import os
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from bridge import _eval_events
from tests.conftest import make_input_fn

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "legacy_2_15", "api")


def facts(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


SIGNATURES = facts("signatures.json")


def _signature(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = [p for p in inspect.signature(target).parameters.values() if p.name != "self"]
    return [[p.name, None if p.default is inspect.Parameter.empty else _default_repr(p.default)] for p in params]


def _default_repr(value):
    return f"tf.{value.name}" if isinstance(value, tf.DType) else repr(value)


@pytest.mark.parametrize(
    "name, obj",
    [
        ("add_metrics", lambda: bridge.add_metrics),
        ("classifier_parse_example_spec", lambda: bridge.classifier_parse_example_spec),
        ("regressor_parse_example_spec", lambda: bridge.regressor_parse_example_spec),
        ("GlobalStepWaiterHook", lambda: bridge.GlobalStepWaiterHook),
        ("export.EvalOutput", lambda: bridge.export.EvalOutput),
        ("experimental.build_raw_supervised_input_receiver_fn", lambda: bridge.experimental.build_raw_supervised_input_receiver_fn),
        ("experimental.call_logit_fn", lambda: bridge.experimental.call_logit_fn),
        ("BestExporter.export", lambda: bridge.BestExporter.export),
    ],
)
def test_signature_matches_2_15(name, obj):
    assert _signature(obj()) == SIGNATURES[name]


# -- add_metrics (item 3) ----------------------------------------------------------------------
RNG = np.random.RandomState(0)
X1 = RNG.rand(64, 1).astype(np.float32)
Y1 = 2 * X1


def linear_model_fn(features, labels, mode):
    predictions = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="w")(features["x"])
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions={"y": predictions})
    loss = tf.reduce_mean(tf.square(predictions - labels))
    return bridge.EstimatorSpec(
        mode,
        loss=loss,
        train_op=bridge.minimize(loss, keras.optimizers.SGD(0.05)),
        predictions={"y": predictions},
        eval_metric_ops={"mse": tf.compat.v1.metrics.mean_squared_error(labels, predictions)},
    )


@pytest.fixture
def trained(tmp_path):
    estimator = bridge.Estimator(linear_model_fn, model_dir=str(tmp_path), config=bridge.RunConfig(log_step_count_steps=None))
    estimator.train(make_input_fn(x=X1, y=Y1, batch_size=8), steps=5)
    return estimator


def test_add_metrics_adds_metric_fn_metrics_with_any_argument_subset(trained):
    recorded = facts("add_metrics.json")

    def metric_fn(features, labels, predictions, config):
        return {
            "mae": tf.compat.v1.metrics.mean_absolute_error(labels, predictions["y"]),
            "mean_x": tf.compat.v1.metrics.mean(features["x"]),
            "has_config": tf.compat.v1.metrics.mean(tf.constant(float(isinstance(config, bridge.RunConfig)))),
        }

    extended = bridge.add_metrics(trained, metric_fn)
    assert type(extended) is bridge.Estimator and recorded["same_class"] == "Estimator"
    assert extended.model_dir == trained.model_dir
    result = extended.evaluate(make_input_fn(x=X1, y=Y1, batch_size=64))
    assert sorted(result) == recorded["result_keys"]
    w = trained.get_variable_value("w/kernel")[0, 0]
    np.testing.assert_allclose(result["mae"], np.mean(np.abs(Y1 - w * X1)), rtol=1e-5)
    np.testing.assert_allclose(result["mean_x"], X1.mean(), rtol=1e-5)
    assert result["has_config"] == recorded["has_config"] == 1.0
    only = bridge.add_metrics(trained, lambda labels, predictions: {
        "mse2": tf.compat.v1.metrics.mean_squared_error(labels, predictions["y"])})
    assert sorted(only.evaluate(make_input_fn(x=X1, y=Y1, batch_size=64))) == recorded["subset_keys"]
    # a metric_fn key replaces the model_fn's metric of the same name (2.15: override_mse == mae)
    override = bridge.add_metrics(trained, lambda labels, predictions: {
        "mse": tf.compat.v1.metrics.mean_absolute_error(labels, predictions["y"])})
    np.testing.assert_allclose(override.evaluate(make_input_fn(x=X1, y=Y1, batch_size=64))["mse"], result["mae"], rtol=1e-6)
    # train and predict are the model_fn's
    assert list(extended.predict(make_input_fn(x=X1[:2], y=None)))[0]["y"].shape == (1,)


def test_add_metrics_refuses_unexpected_metric_fn_args(trained):
    recorded = facts("add_metrics.json")["errors"]
    for name, fn in (("bad_arg", lambda mode: {}), ("params_arg", lambda params: {})):
        with pytest.raises(ValueError, match="not expected args") as info:
            bridge.add_metrics(trained, fn)
        assert recorded[name][0] == "ValueError"
        assert recorded[name][1].split(": ")[-1] in str(info.value)


# -- InMemoryEvaluatorHook (item 5) ------------------------------------------------------------
def test_in_memory_evaluator_evaluates_every_n_iter_with_its_hooks_and_name(tmp_path):
    recorded = facts("in_memory_evaluator.json")
    estimator = bridge.Estimator(linear_model_fn, model_dir=str(tmp_path), config=bridge.RunConfig(log_step_count_steps=None))
    calls = {"begin": 0, "after_run": 0, "end": 0}

    class Counter(bridge.SessionRunHook):
        def begin(self):
            calls["begin"] += 1

        def after_run(self, run_context, run_values):
            calls["after_run"] += 1

        def end(self, session):
            calls["end"] += 1

    hook = bridge.experimental.InMemoryEvaluatorHook(
        estimator, make_input_fn(x=X1, y=Y1, batch_size=16), steps=2, hooks=[Counter()], name="mem", every_n_iter=4
    )
    estimator.train(make_input_fn(x=X1, y=Y1, batch_size=8, epochs=None), steps=10, hooks=[hook])
    metrics = _eval_events.read_eval_metrics(os.path.join(str(tmp_path), "eval_mem"))
    assert sorted(d for d in os.listdir(tmp_path) if d.startswith("eval")) == recorded["eval_dirs"]
    assert sorted(metrics) == recorded["eval_steps"]
    assert set(recorded["tags_at_last"]) <= set(metrics[max(metrics)])
    assert calls == recorded["counter_hook"]
    # the last evaluation saw the final weights (first 2 batches of 16, as steps=2)
    w = estimator.get_variable_value("w/kernel")[0, 0]
    np.testing.assert_allclose(metrics[10]["mse"], np.mean((Y1[:32] - w * X1[:32]) ** 2), rtol=1e-5)
    assert recorded["last_mse_matches_final_weights"]


def test_in_memory_evaluator_traces_once_and_each_evaluation_equals_evaluate_of_that_checkpoint(tmp_path):
    """Later evaluations reuse the first one's trace and input_fn (metric state reset each time)."""
    counts = {"eval_model_fn": 0, "input_fn": 0}

    def counting_model_fn(features, labels, mode):
        if mode == bridge.ModeKeys.EVAL:
            counts["eval_model_fn"] += 1
        spec = linear_model_fn(features, labels, mode)
        if mode == bridge.ModeKeys.EVAL:  # a Keras metric object too: its state must restart as well
            metric = keras.metrics.MeanAbsoluteError()
            metric.update_state(labels, spec.predictions["y"])
            spec = spec._replace(eval_metric_ops={**spec.eval_metric_ops, "mae": metric})
        return spec

    def eval_input():
        counts["input_fn"] += 1
        return make_input_fn(x=X1, y=Y1, batch_size=16)()

    config = bridge.RunConfig(log_step_count_steps=None, save_checkpoints_steps=2, keep_checkpoint_max=20)
    estimator = bridge.Estimator(counting_model_fn, model_dir=str(tmp_path), config=config)
    hook = bridge.experimental.InMemoryEvaluatorHook(estimator, eval_input, steps=3, name="mem", every_n_iter=4)
    estimator.train(make_input_fn(x=X1, y=Y1, batch_size=8, epochs=None), steps=10, hooks=[hook])
    assert counts == {"eval_model_fn": 1, "input_fn": 1}
    in_memory = _eval_events.read_eval_metrics(estimator.eval_dir("mem"))
    assert sorted(in_memory) == [0, 4, 8, 10]
    for step, values in in_memory.items():
        expected = estimator.evaluate(eval_input, steps=3, checkpoint_path=os.path.join(str(tmp_path), f"model.ckpt-{step}"))
        for key in ("loss", "mse", "mae"):
            np.testing.assert_allclose(values[key], expected[key], rtol=1e-6, err_msg=f"{key} at step {step}")
    estimator.train(make_input_fn(x=X1, y=Y1, batch_size=8, epochs=None), steps=2, hooks=[hook])  # a new train call
    assert counts["eval_model_fn"] == 1 + 4 + 1  # the four evaluate calls above, then one trace for this train


def test_in_memory_evaluator_with_eval_hooks_reuses_the_trace_unless_a_hook_builds_new_fetches(tmp_path):
    """Hooks begin again for every evaluation (2.15: a new session each); the trace is reused when it serves them."""
    traces = []
    begun = []
    losses = []

    class LossRecorder(bridge.SessionRunHook):  # built in model_fn: fetches a traced tensor
        def __init__(self, loss):
            self._loss = loss

        def begin(self):
            begun.append("recorder")

        def before_run(self, run_context):
            return bridge.SessionRunArgs(self._loss)

        def after_run(self, run_context, run_values):
            losses.append(float(run_values.results))

    class NewTensorEachBegin(bridge.SessionRunHook):  # builds its fetch in begin: needs a new trace
        def begin(self):
            begun.append("new")
            self._tensor = tf.constant(1.0)

        def before_run(self, run_context):
            return bridge.SessionRunArgs(self._tensor)

    def model_fn(features, labels, mode):
        spec = linear_model_fn(features, labels, mode)
        if mode == bridge.ModeKeys.EVAL:
            traces.append(1)
            spec = spec._replace(evaluation_hooks=[LossRecorder(spec.loss)])
        return spec

    config = bridge.RunConfig(log_step_count_steps=None)
    estimator = bridge.Estimator(model_fn, model_dir=str(tmp_path / "a"), config=config)
    hook = bridge.experimental.InMemoryEvaluatorHook(estimator, make_input_fn(x=X1, y=Y1, batch_size=32), every_n_iter=4)
    # evaluates at steps 0, 4, 8 and at the end (8 again)
    estimator.train(make_input_fn(x=X1, y=Y1, batch_size=8, epochs=None), steps=8, hooks=[hook])
    assert len(traces) == 1 and begun == ["recorder"] * 4 and len(losses) == 4 * 2
    metrics = _eval_events.read_eval_metrics(estimator.eval_dir())
    np.testing.assert_allclose([np.mean(losses[i:i + 2]) for i in (0, 2, 6)], [metrics[s]["loss"] for s in (0, 4, 8)], rtol=1e-6)

    traces.clear()
    begun.clear()
    estimator = bridge.Estimator(model_fn, model_dir=str(tmp_path / "b"), config=config)
    hook = bridge.experimental.InMemoryEvaluatorHook(
        estimator, make_input_fn(x=X1, y=Y1, batch_size=32), hooks=[NewTensorEachBegin()], every_n_iter=4)
    estimator.train(make_input_fn(x=X1, y=Y1, batch_size=8, epochs=None), steps=8, hooks=[hook])
    assert len(traces) == 4 and begun.count("new") == 4 + 3  # every evaluation traced again (begin in each trace too)
    assert sorted(_eval_events.read_eval_metrics(estimator.eval_dir())) == [0, 4, 8]


def test_in_memory_evaluator_bad_arguments(tmp_path):
    recorded = facts("in_memory_evaluator.json")["errors"]
    estimator = bridge.Estimator(linear_model_fn, model_dir=str(tmp_path))
    for every in (0, None):
        with pytest.raises(ValueError, match="every_n_iter"):
            bridge.experimental.InMemoryEvaluatorHook(estimator, make_input_fn(), every_n_iter=every)
    assert recorded["every_n_iter_0"][0] == recorded["every_n_iter_None"][0] == "ValueError"
    with pytest.raises(TypeError, match="SessionRunHook"):
        bridge.experimental.InMemoryEvaluatorHook(estimator, make_input_fn(), hooks=[object()])
    assert recorded["bad_hook"][0] == "TypeError"


def test_in_memory_evaluator_lets_training_group_steps(tmp_path):
    estimator = bridge.Estimator(linear_model_fn, model_dir=str(tmp_path), config=bridge.RunConfig(log_step_count_steps=None))
    hook = bridge.experimental.InMemoryEvaluatorHook(estimator, make_input_fn(x=X1, y=Y1, batch_size=64), every_n_iter=100)
    estimator.train(make_input_fn(x=X1, y=Y1, batch_size=8, epochs=None), steps=250, hooks=[hook])
    assert sorted(_eval_events.read_eval_metrics(estimator.eval_dir())) == [0, 100, 200, 250]


# -- parse example specs (item 6) --------------------------------------------------------------
def _spec_repr(spec):
    out = {}
    for key, value in spec.items():
        entry = {"type": type(value).__name__, "dtype": value.dtype.name}
        if hasattr(value, "shape"):
            entry["shape"] = list(value.shape)
        if hasattr(value, "default_value"):
            default = value.default_value
            entry["default_value"] = default if not isinstance(default, (tuple, list)) else list(default)
        out[key] = entry
    return out


def test_parse_example_specs_match_2_15():
    recorded = facts("parse_specs.json")
    fc = tf.feature_column
    columns = [fc.numeric_column("a", shape=2), fc.categorical_column_with_hash_bucket("b", 10)]
    assert _spec_repr(bridge.classifier_parse_example_spec(columns, "y")) == recorded["classifier_v2"]
    assert _spec_repr(bridge.classifier_parse_example_spec(
        columns, "y", label_dtype=tf.string, label_default="n", weight_column="w")) == recorded["classifier_v2_options"]
    assert _spec_repr(bridge.regressor_parse_example_spec(columns, "y")) == recorded["regressor"]
    assert _spec_repr(bridge.regressor_parse_example_spec(
        columns, "y", label_dtype=tf.float64, label_default=0.5, label_dimension=3,
        weight_column=fc.numeric_column("w", dtype=tf.float64))) == recorded["regressor_options"]
    errors = {
        "label_is_feature": lambda: bridge.classifier_parse_example_spec(columns, "a"),
        "weight_is_feature": lambda: bridge.classifier_parse_example_spec(columns, "y", weight_column="a"),
        "weight_not_numeric": lambda: bridge.classifier_parse_example_spec(
            columns, "y", weight_column=fc.categorical_column_with_hash_bucket("w", 3)),
        "regressor_label_is_feature": lambda: bridge.regressor_parse_example_spec(columns, "b"),
    }
    for name, call in errors.items():
        with pytest.raises(ValueError) as info:
            call()
        assert recorded["errors"][name][0] == "ValueError"
        assert recorded["errors"][name][1].split(".")[0] in str(info.value), name


def test_a_parse_spec_parses_real_examples():
    spec = bridge.classifier_parse_example_spec([tf.feature_column.numeric_column("a", shape=2)], "y", weight_column="w")
    example = tf.train.Example(features=tf.train.Features(feature={
        "a": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 2.0])),
        "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
        "w": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5])),
    }))
    parsed = tf.io.parse_example([example.SerializeToString()], spec)
    assert parsed["y"].numpy().tolist() == [[1]] and parsed["w"].numpy().tolist() == [[0.5]]


# -- EvalOutput, supervised receiver, call_logit_fn (item 6) -----------------------------------
def test_eval_output_keys_match_2_15():
    recorded = facts("eval_output.json")

    def keys(output):
        return {k: sorted(getattr(output, k) or {}) for k in ("loss", "predictions", "metrics")}

    with tf.Graph().as_default():
        loss = tf.constant(1.0)
        value, update = tf.compat.v1.metrics.mean(tf.constant([1.0, 2.0]))
        out = bridge.export.EvalOutput(loss=loss, predictions={"p": tf.constant([1.0])}, metrics={"m": (value, update)})
        assert keys(out) == recorded["keys"]
        assert isinstance(out, bridge.export.ExportOutput) and recorded["is_export_output"]
        assert sorted(out.outputs) == sorted(sum(recorded["keys"].values(), []))
        assert keys(bridge.export.EvalOutput(loss=loss)) == recorded["loss_only"]
        assert keys(bridge.export.EvalOutput(predictions=tf.constant([1.0]))) == recorded["single_prediction"]
        assert keys(bridge.export.EvalOutput(loss={"a": loss, "loss/b": loss})) == recorded["dict_loss"]
        assert keys(bridge.export.EvalOutput()) == recorded["empty"]
        for name, value_ in recorded["constants"].items():
            assert getattr(bridge.export.EvalOutput, name) == value_
        op_out = bridge.export.EvalOutput(metrics={"m": (value, tf.no_op())})
        assert op_out.metrics["metrics/m/update_op"].shape == (0,)  # an Operation is wrapped in a Tensor
        with pytest.raises(AttributeError):
            bridge.export.EvalOutput(metrics={"m": value})
        assert recorded["errors"]["metric_not_tuple"][0] == "AttributeError"
        with pytest.raises(ValueError, match=r"loss output key must be a string; got 1.5"):
            bridge.export.EvalOutput(loss={1.5: loss})
        with pytest.raises(ValueError, match="loss output value must be a Tensor"):
            bridge.export.EvalOutput(loss="nope")


def test_raw_supervised_receiver_matches_2_15():
    recorded = facts("supervised_receiver.json")
    with tf.Graph().as_default():
        features = {"a": tf.constant([[1.0, 2.0]]), "b": tf.constant([[1]], tf.int64)}
        labels = tf.constant([[0.5]])
        receiver = bridge.experimental.build_raw_supervised_input_receiver_fn(features, labels)()
        assert type(receiver).__name__ == recorded["type"]
        assert list(type(receiver)._fields) == recorded["fields"]
        got = {k: [v.dtype.name, v.shape.as_list(), v.op.type] for k, v in receiver.receiver_tensors.items()}
        assert got == {k: v[:3] for k, v in recorded["receiver_tensors"].items()}
        assert receiver.labels is receiver.receiver_tensors["label"]
        r2 = bridge.experimental.build_raw_supervised_input_receiver_fn(tf.constant([[1.0]]), {"l1": labels}, 7)()
        assert sorted(r2.receiver_tensors) == recorded["single_feature_keys"]
        assert {k: v.shape.as_list() for k, v in r2.receiver_tensors.items()} == recorded["single_feature_shapes"]
        assert isinstance(r2.features, tf.Tensor)
    with pytest.raises(ValueError, match="distinct keys"):
        bridge.experimental.build_raw_supervised_input_receiver_fn({"a": tf.constant(1.0)}, {"a": tf.constant(1.0)})


def test_call_logit_fn_passes_declared_arguments_and_checks_the_result():
    logits = tf.constant([[1.0]])
    seen = {}

    def logit_fn(features, mode, config):
        seen.update(features=features, mode=mode, config=config)
        return {"head": logits}

    assert bridge.experimental.call_logit_fn(logit_fn, {"x": 1}, "train", {"p": 1}, "cfg") == {"head": logits}
    assert seen == {"features": {"x": 1}, "mode": "train", "config": "cfg"}
    assert bridge.experimental.call_logit_fn(lambda features: logits, None, "eval", None, None) is logits
    with pytest.raises(ValueError, match="logit_fn should return a Tensor"):
        bridge.experimental.call_logit_fn(lambda features: [logits], None, "eval", None, None)


# -- VocabInfo + WarmStartSettings (item 6) -----------------------------------------------------
@pytest.fixture
def vocab_checkpoint(tmp_path):
    """A name-based checkpoint with emb [[1,10],[2,20],[3,30]] (vocab a,b,c) and dense/kernel [[1,2,3]]."""
    (tmp_path / "old.txt").write_text("a\nb\nc\n")
    (tmp_path / "new.txt").write_text("c\na\nd\nb\n")
    variables = {
        "emb": tf.Variable(np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], np.float32)),
        "dense/kernel": tf.Variable(np.array([[1.0, 2.0, 3.0]], np.float32)),
    }
    prefix = str(tmp_path / "model.ckpt-1")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(variables), shape_and_slices=[""] * 2,
                      tensors=[v.read_value() for v in variables.values()])
    return tmp_path


VOCAB_CASES = {
    "rows": ("emb", [4, 2], dict(new_vocab_size=4, num_oov_buckets=0, backup_initializer="ones")),
    "rows_oov": ("emb", [5, 2], dict(new_vocab_size=4, num_oov_buckets=1, backup_initializer="ones")),
    "rows_old_size_2": ("emb", [4, 2], dict(new_vocab_size=4, num_oov_buckets=0, old_vocab_size=2,
                                            backup_initializer="zeros")),
    "new_size_3": ("emb", [3, 2], dict(new_vocab_size=3, num_oov_buckets=0, backup_initializer="zeros")),
    "axis_1": ("dense/kernel", [1, 4], dict(new_vocab_size=4, num_oov_buckets=0, backup_initializer="zeros", axis=1)),
}


@pytest.mark.parametrize("case", sorted(VOCAB_CASES))
def test_vocab_info_remaps_rows_as_2_15(vocab_checkpoint, case):
    recorded = facts("vocab_info.json")
    name, shape, info = VOCAB_CASES[case]
    info = dict(info)
    info["backup_initializer"] = {"ones": tf.compat.v1.ones_initializer(), "zeros": tf.compat.v1.zeros_initializer()}[
        info["backup_initializer"]]
    vocab_info = bridge.VocabInfo(new_vocab=str(vocab_checkpoint / "new.txt"), old_vocab=str(vocab_checkpoint / "old.txt"), **info)
    settings = bridge.WarmStartSettings(str(vocab_checkpoint / "model.ckpt-1"), vars_to_warm_start=[name],
                                        var_name_to_vocab_info={name: vocab_info})

    def model_fn(features, labels, mode):
        variable = tf.compat.v1.get_variable(name, shape=shape, initializer=tf.compat.v1.constant_initializer(7.0))
        return bridge.EstimatorSpec(mode, predictions={"v": tf.expand_dims(variable, 0)})

    estimator = bridge.Estimator(model_fn, model_dir=str(vocab_checkpoint / "new_model"), warm_start_from=settings)
    prediction = next(estimator.predict(make_input_fn(x=np.zeros([1, 1], np.float32), y=None)))
    np.testing.assert_array_equal(prediction["v"], recorded[case])


def test_vocab_info_validation(vocab_checkpoint):
    recorded = facts("vocab_info.json")
    assert list(bridge.VocabInfo._fields) == SIGNATURES["VocabInfo._fields"]
    with pytest.raises(ValueError, match="axis"):
        bridge.VocabInfo(str(vocab_checkpoint / "new.txt"), 4, 0, str(vocab_checkpoint / "old.txt"), axis=2)
    assert recorded["errors"]["axis_2"][0] == "ValueError"
    info = bridge.VocabInfo(str(vocab_checkpoint / "new.txt"), 4, 0, str(vocab_checkpoint / "old.txt"))
    settings = bridge.WarmStartSettings(str(vocab_checkpoint / "model.ckpt-1"), vars_to_warm_start=["emb"],
                                        var_name_to_vocab_info={"typo": info})

    def model_fn(features, labels, mode):
        variable = tf.compat.v1.get_variable("emb", shape=[4, 2])
        return bridge.EstimatorSpec(mode, predictions={"v": tf.expand_dims(variable, 0)})

    estimator = bridge.Estimator(model_fn, model_dir=str(vocab_checkpoint / "m"), warm_start_from=settings)
    with pytest.raises(ValueError, match="var_name_to_vocab_info entries were not used: \\['typo'\\]"):
        next(estimator.predict(make_input_fn(x=np.zeros([1, 1], np.float32), y=None)))


# -- GlobalStepWaiterHook (item 6) -------------------------------------------------------------
def test_global_step_waiter_hook_waits_until_the_step_is_reached(tmp_path):
    recorded = facts("global_step_waiter.json")
    assert recorded["is_session_run_hook"] and isinstance(bridge.GlobalStepWaiterHook(0), bridge.SessionRunHook)
    started = []

    class Grab(bridge.SessionRunHook):
        def begin(self):
            self.step = tf.compat.v1.train.get_global_step()

        def before_run(self, run_context):
            started.append(time.monotonic())

    grab = Grab()
    estimator = bridge.Estimator(linear_model_fn, model_dir=str(tmp_path))
    t0 = time.monotonic()

    def advance():  # stands in for the chief moving the shared global step
        while not hasattr(grab, "step") or not started:
            time.sleep(0.05)
        time.sleep(1.0)
        grab.step.assign(5)

    thread = threading.Thread(target=advance, daemon=True)
    thread.start()
    estimator.train(make_input_fn(x=X1, y=Y1, epochs=None), max_steps=8,
                    hooks=[grab, bridge.GlobalStepWaiterHook(wait_until_step=5)])
    thread.join(5)
    assert time.monotonic() - t0 >= 1.0
    assert estimator.get_variable_value("global_step") == 8  # started at 5, ran 3 steps
