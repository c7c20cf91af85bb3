"""Behaviour tf.estimator 2.15's own tests pin (issue 20 item 8), against recorded facts.

Facts: tests/fixtures/legacy_2_15/api/behaviour.json (record.py there).
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.conftest import make_input_fn

FACTS = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "legacy_2_15", "api", "behaviour.json")))


def linear_model_fn(features, labels, mode):
    predictions = keras.layers.Dense(1, kernel_initializer="zeros", name="dense")(features["x"])
    loss = tf.reduce_mean(tf.square(predictions - labels))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.1)),
                                predictions=predictions)


# -- RunConfig subclass -----------------------------------------------------------------------------
def test_a_run_config_subclass_is_kept_with_its_overridden_properties(tmp_path):
    facts = FACTS["subclass_config"]
    directory = str(tmp_path / "subclass_dir")

    class MyConfig(bridge.RunConfig):
        @property
        def model_dir(self):
            return directory

        @property
        def task_type(self):
            return "evaluator"

    estimator = bridge.Estimator(linear_model_fn, config=MyConfig())
    assert type(estimator.config).__name__ == facts["config_type_kept"]
    assert (estimator.model_dir == directory) is facts["model_dir_is_overridden"]
    assert (estimator.config.model_dir == directory) is facts["config_model_dir_is_overridden"]
    assert estimator.config.task_type == "evaluator"
    with pytest.raises(ValueError, match="train_and_evaluate") as info:
        estimator.train(make_input_fn(), steps=1)
    assert facts["train_error"][0] == "ValueError"
    assert "evaluator" in str(info.value)
    assert type(estimator.config.replace(save_summary_steps=7)).__name__ == "MyConfig"


# -- seeds ----------------------------------------------------------------------------------------
def test_the_graph_seed_comes_from_run_config_only(tmp_path):
    facts = FACTS["seeds"]
    seen = []

    def model_fn(features, labels, mode):
        seen.append(tf.compat.v1.get_default_graph().seed)
        return linear_model_fn(features, labels, mode)

    tf.random.set_seed(99)  # process-wide: 2.15's model_fn never saw it
    try:
        bridge.Estimator(model_fn, model_dir=str(tmp_path / "a")).train(make_input_fn(), steps=1)
        assert seen[-1] == facts["unset_with_global_seed_99"] is None
        bridge.Estimator(model_fn, model_dir=str(tmp_path / "b"), config=bridge.RunConfig(tf_random_seed=7)).train(
            make_input_fn(), steps=1)
        assert seen[-1] == facts["config_seed_7"] == 7
    finally:
        tf.random.set_seed(None)


def test_a_config_seed_makes_random_ops_in_model_fn_repeat(tmp_path):
    draws = []

    def model_fn(features, labels, mode):
        noise = tf.random.uniform([])
        predictions = keras.layers.Dense(1, name="dense")(features["x"]) + 0.0 * noise
        return bridge.EstimatorSpec(mode, predictions={"noise": tf.fill(tf.shape(predictions), noise)})

    for run in range(2):
        estimator = bridge.Estimator(model_fn, model_dir=str(tmp_path / str(run)), config=bridge.RunConfig(tf_random_seed=3))
        draws.append(next(estimator.predict(make_input_fn(y=None)))["noise"])
    assert draws[0] == draws[1]


# -- Estimator subclasses -----------------------------------------------------------------------------
def test_a_subclass_overriding_estimator_members_gets_2_15s_error():
    facts = FACTS

    class Overrides(bridge.Estimator):
        def train(self, input_fn, hooks=None, steps=None, max_steps=None, saving_listeners=None):
            return self

    with pytest.raises(ValueError, match=r"Subclasses of Estimator cannot override members of Estimator.*\['train'\]"):
        Overrides(linear_model_fn)
    assert facts["subclass_override_error"][0] == "ValueError"

    class AddsMethod(bridge.Estimator):
        def helper(self):
            return 1

    AddsMethod(linear_model_fn)  # adding is fine (2.15: no error)
    assert facts["subclass_adding_method_error"][0] == "none"


def test_canned_estimators_and_their_subclasses_are_exempt():
    assert FACTS["canned_subclass_ok"][0] == "none"
    column = tf.feature_column.numeric_column("x")
    bridge.LinearRegressor([column])

    class MyRegressor(bridge.LinearRegressor):
        def eval_dir(self, name=None):
            return super().eval_dir(name)

    MyRegressor([column])


# -- input values -------------------------------------------------------------------------------
def test_plain_python_values_from_input_fn_reach_model_fn_as_given(tmp_path):
    seen = {}

    def model_fn(features, labels, mode):
        seen.update(features=type(features).__name__, value=type(features["n"]).__name__, labels=type(labels).__name__,
                    n=features["n"], y=labels)
        w = tf.Variable(1.0, name="w")
        loss = w * 0.0 + tf.reduce_sum(features["t"]) * 0.0
        return bridge.EstimatorSpec(mode, loss=loss, train_op=tf.compat.v1.assign_add(tf.compat.v1.train.get_global_step(), 1))

    bridge.Estimator(model_fn, model_dir=str(tmp_path)).train(lambda: ({"n": 3, "t": np.ones(2, np.float32)}, 4.0), steps=1)
    assert {k: seen[k] for k in ("features", "value", "labels")} == FACTS["python_values"]
    assert seen["n"] == 3 and seen["y"] == 4.0


# -- nested metric values -----------------------------------------------------------------------
def test_nested_tuple_metric_values_keep_their_structure_and_dtypes(tmp_path):
    def model_fn(features, labels, mode):
        w = tf.Variable(1.0, name="w")
        loss = w * 0.0 + tf.reduce_sum(features["x"]) * 0.0
        metrics = {"nested": (((tf.constant(2.0), tf.constant(1)), tf.constant(3.0)), tf.no_op()),
                   "plain": (tf.constant(1.5), tf.no_op())}
        if mode == bridge.ModeKeys.TRAIN:
            return bridge.EstimatorSpec(mode, loss=loss, train_op=tf.compat.v1.assign_add(tf.compat.v1.train.get_global_step(), 1))
        return bridge.EstimatorSpec(mode, loss=loss, eval_metric_ops=metrics)

    estimator = bridge.Estimator(model_fn, model_dir=str(tmp_path))
    estimator.train(make_input_fn(), steps=1)
    result = estimator.evaluate(make_input_fn(), steps=1)

    def structure(value):
        if isinstance(value, tuple):
            return [structure(v) for v in value]
        return [type(value).__name__, str(value.dtype), float(value)]

    assert structure(result["nested"]) == FACTS["nested_metric"]
    assert structure(result["plain"]) == FACTS["plain_metric"]


# -- exporters and receivers ----------------------------------------------------------------------
def test_best_exporter_without_eval_result_exports_and_garbage_collects(tmp_path):
    facts = FACTS["best_exporter_none"]
    base = tmp_path / "exports"
    for stamp in ("1500000001", "1500000002", "1500000003"):
        (base / stamp).mkdir(parents=True)

    class FakeEstimator:  # as 2.15's own test: only the export is faked
        model_dir = str(tmp_path / "model")

        def export_saved_model(self, export_dir_base, *args, **kwargs):
            return b"export_result_path"

    exporter = bridge.BestExporter(serving_input_receiver_fn=lambda: None, exports_to_keep=1)
    assert repr(exporter.export(FakeEstimator(), str(base), None, None, False)) == facts["result"]
    assert sorted(os.listdir(base)) == facts["left"]


def test_raw_serving_receiver_accepts_a_feature_of_unknown_rank():
    facts = FACTS["raw_unknown_rank"]
    with tf.Graph().as_default():
        receiver = bridge.export.build_raw_serving_input_receiver_fn(
            {"x": tf.compat.v1.placeholder(tf.float32, shape=None)})()
        assert {k: [str(v.shape), v.dtype.name] for k, v in receiver.receiver_tensors.items()} == facts


# -- messages name the API the way the user reached it -------------------------------------------
_NAMESPACE_SCRIPT = '''
import json, sys
import tensorflow as tf
import bridge
bridge.install_as_tf_estimator()
out = {}
for name, call in {
    "train_and_evaluate": lambda: tf.estimator.train_and_evaluate(object(), None, tf.estimator.EvalSpec(lambda: None)),
    "early_stopping": lambda: tf.estimator.experimental.stop_if_no_decrease_hook(object(), "loss", 10),
}.items():
    try:
        call()
    except Exception as error:
        out[name] = [type(error).__name__, str(error)]
print(json.dumps(out))
'''


def test_messages_name_tf_estimator_when_reached_through_the_install_line(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "legacy.py"
    script.write_text(_NAMESPACE_SCRIPT)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["train_and_evaluate"] == ["TypeError", out["train_and_evaluate"][1]]
    assert "`tf.estimator.Estimator`" in out["train_and_evaluate"][1]
    assert "`tf.estimator.Estimator`" in out["early_stopping"][1]
    # without the install line (this process), the same messages name bridge's paths
    with pytest.raises(TypeError, match="`bridge.Estimator`"):
        bridge.experimental.stop_if_no_decrease_hook(object(), "loss", 10)
