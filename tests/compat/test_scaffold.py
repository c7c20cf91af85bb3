"""EstimatorSpec(scaffold=tf.compat.v1.train.Scaffold(...)) against tf.estimator 2.15 (issue 20 item 7).

Facts: tests/fixtures/legacy_2_15/scaffold/facts.json (record.py there) and
tests/fixtures/legacy_2_15/api/scaffold.json. The model, data and order of batches are the
recorder's: y = w * x + b (w = 0, b = 0.5), SGD 0.05, batches of 8; the warm-start source holds
w = 7, b = 9. Values after a step depend on the values the step started from, so matching 2.15's
checkpoint after one step pins the initialisation order.
"""

from __future__ import annotations

import glob
import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.conftest import make_input_fn

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "legacy_2_15")
FACTS = json.load(open(os.path.join(FIXTURES, "api", "scaffold.json")))
SCAFFOLD = json.load(open(os.path.join(FIXTURES, "scaffold", "facts.json")))
INIT = SCAFFOLD["initialisation"]
SAVER = SCAFFOLD["saver"]
RNG = np.random.RandomState(0)
X = RNG.rand(64, 1).astype(np.float32)
Y = 2 * X
TRAIN = make_input_fn(x=X, y=Y, batch_size=8, epochs=None)


def _model_fn(scaffold_fn):
    def model_fn(features, labels, mode):
        w = tf.compat.v1.get_variable("w", [1], initializer=tf.compat.v1.zeros_initializer())
        b = tf.compat.v1.get_variable("b", [1], initializer=tf.compat.v1.constant_initializer(0.5))
        pred = features["x"] * w + b
        if mode == bridge.ModeKeys.PREDICT:
            return bridge.EstimatorSpec(mode, predictions={"y": pred}, scaffold=scaffold_fn(w, b))
        loss = tf.compat.v1.losses.mean_squared_error(labels, pred)
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.05).minimize(loss, tf.compat.v1.train.get_global_step())
        return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, predictions={"y": pred},
                                    eval_metric_ops={"w": tf.compat.v1.metrics.mean(w)}, scaffold=scaffold_fn(w, b))

    return model_fn


def _checkpoint(model_dir):
    path = tf.train.latest_checkpoint(str(model_dir))
    reader = tf.train.load_checkpoint(path)
    return {
        "latest": os.path.basename(path),
        "values": {k: reader.get_tensor(k).tolist() for k, _ in tf.train.list_variables(path)},
        "files": sorted(os.path.basename(f)[: -len(".index")] for f in glob.glob(os.path.join(str(model_dir), "model.ckpt-*.index"))),
    }


def _assert_values(model_dir, expected):
    values = _checkpoint(model_dir)["values"]
    assert sorted(values) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(values[key], value, rtol=1e-5, err_msg=key)


@pytest.fixture(scope="module")
def warm_start_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("warm_start_source")
    tensors = {"w": tf.constant([7.0]), "b": tf.constant([9.0]), "global_step": tf.constant(0, tf.int64)}
    tf.raw_ops.SaveV2(prefix=str(path / "model.ckpt-0"), tensor_names=list(tensors), shape_and_slices=[""] * 3,
                      tensors=list(tensors.values()))
    return str(path / "model.ckpt-0")


def _train_one_step(tmp_path, scaffold_fn, warm_start_from=None, resume=False):
    config = bridge.RunConfig(log_step_count_steps=None)
    if resume:
        bridge.Estimator(_model_fn(lambda w, b: None), model_dir=str(tmp_path), config=config).train(TRAIN, steps=1)
    estimator = bridge.Estimator(_model_fn(scaffold_fn), model_dir=str(tmp_path), config=config,
                                 warm_start_from=warm_start_from)
    estimator.train(TRAIN, steps=1)
    return estimator


# -- init_fn --------------------------------------------------------------------------------
def _init_fn_assigning_w(seen):
    def scaffold_fn(w, b):
        assign = w.assign([3.0])  # built in model_fn: session.run runs it once, outside the step

        def init_fn(scaffold, session):
            seen.append({"w": session.run(w).tolist(), "b": session.run(b).tolist()})
            session.run(assign)

        return tf.compat.v1.train.Scaffold(init_fn=init_fn)

    return scaffold_fn


def test_init_fn_runs_after_the_warm_start_and_wins(tmp_path, warm_start_source):
    seen = []
    _train_one_step(tmp_path, _init_fn_assigning_w(seen), warm_start_from=warm_start_source)
    fact = INIT["init_fn__warm_start"]
    assert seen == fact["init_fn_saw"] == [{"w": [7.0], "b": [9.0]}]
    _assert_values(tmp_path, fact["checkpoint"]["values"])


def test_init_fn_does_not_run_when_model_dir_has_a_checkpoint(tmp_path):
    seen = []
    _train_one_step(tmp_path, _init_fn_assigning_w(seen), resume=True)
    assert seen == INIT["init_fn__resume"]["init_fn_saw"] == []
    _assert_values(tmp_path, INIT["init_fn__resume"]["checkpoint"]["values"])


def test_init_fn_runs_once_on_a_fresh_model_dir_not_on_resume_nor_evaluate(tmp_path):
    seen = []
    estimator = _train_one_step(tmp_path, _init_fn_assigning_w(seen))
    assert len(seen) == FACTS["init_fn_calls_first_train"] == 1
    estimator.train(TRAIN, steps=1)
    estimator.evaluate(TRAIN, steps=1)
    assert len(seen) == FACTS["init_fn_calls_after_resume_and_eval"] == 1


def test_init_fn_restores_a_pretrained_checkpoint_through_a_saver(tmp_path, warm_start_source):
    def scaffold_fn(w, b):
        saver = tf.compat.v1.train.Saver([w])  # bridge's session-free Saver inside model_fn
        return tf.compat.v1.train.Scaffold(init_fn=lambda scaffold, session: saver.restore(session, warm_start_source))

    estimator = bridge.Estimator(_model_fn(scaffold_fn), model_dir=str(tmp_path))
    prediction = next(estimator.predict(make_input_fn(x=np.ones([1, 1], np.float32), y=None)))
    assert prediction["y"].tolist() == [7.5]  # no checkpoint in model_dir: init_fn's w, b's initial value


def test_init_fn_restores_through_the_scaffolds_default_saver(tmp_path, warm_start_source):
    seen = []

    def scaffold_fn(w, b):
        def init_fn(scaffold, session):
            seen.append({"saver": type(scaffold.saver).__name__})
            scaffold.saver.restore(session, warm_start_source)

        return tf.compat.v1.train.Scaffold(init_fn=init_fn)

    _train_one_step(tmp_path, scaffold_fn)
    fact = INIT["init_fn_restores_through_scaffold_saver"]
    assert seen == fact["init_fn_saw"]
    _assert_values(tmp_path, fact["checkpoint"]["values"])


# -- init_op --------------------------------------------------------------------------------
def _init_op_after_global_initializer(w, b):
    with tf.control_dependencies([tf.compat.v1.global_variables_initializer()]):
        assign = w.assign([4.0])
    return tf.compat.v1.train.Scaffold(init_op=tf.group(assign))


def test_init_op_runs_once_before_the_first_step(tmp_path):
    _train_one_step(tmp_path, _init_op_after_global_initializer)
    _assert_values(tmp_path, INIT["init_op_after_global_initializer"]["checkpoint"]["values"])


def test_init_op_does_not_run_when_model_dir_has_a_checkpoint(tmp_path):
    _train_one_step(tmp_path, _init_op_after_global_initializer, resume=True)
    _assert_values(tmp_path, INIT["init_op_after_global_initializer__resume"]["checkpoint"]["values"])


@pytest.mark.parametrize("case, scaffold_fn", [
    ("init_op_after_global_initializer__warm_start", _init_op_after_global_initializer),
    ("init_op_global_initializer__warm_start",
     lambda w, b: tf.compat.v1.train.Scaffold(init_op=tf.compat.v1.global_variables_initializer())),
])
def test_a_custom_init_op_replaces_the_warm_start_as_in_2_15_with_a_warning(tmp_path, warm_start_source, caplog, case,
                                                                             scaffold_fn):
    with caplog.at_level(logging.WARNING, logger="bridge"):
        _train_one_step(tmp_path, scaffold_fn, warm_start_from=warm_start_source)
    _assert_values(tmp_path, INIT[case]["checkpoint"]["values"])
    assert "warm_start_from is not applied" in caplog.text


def test_init_op_then_init_fn(tmp_path):
    seen = []

    def scaffold_fn(w, b):
        with tf.control_dependencies([tf.compat.v1.global_variables_initializer()]):
            assign = w.assign([4.0])
        assign_b = b.assign([6.0])

        def init_fn(scaffold, session):
            seen.append({"w": session.run(w).tolist(), "b": session.run(b).tolist()})
            session.run(assign_b)

        return tf.compat.v1.train.Scaffold(init_op=tf.group(assign), init_fn=init_fn)

    _train_one_step(tmp_path, scaffold_fn)
    fact = INIT["init_op_then_init_fn"]
    assert seen == fact["init_fn_saw"]
    _assert_values(tmp_path, fact["checkpoint"]["values"])


def test_an_init_op_leaving_variables_uninitialised_gets_2_15s_runtime_error(tmp_path):
    fact = INIT["init_op_assign_only"]
    assert fact["result"] == "RuntimeError"
    missing = fact["message"].split("Variables not initialized: ")[1]  # "global_step, b"
    with pytest.raises(RuntimeError, match=f"Variables not initialized: {missing}"):
        _train_one_step(tmp_path, lambda w, b: tf.compat.v1.train.Scaffold(init_op=tf.group(w.assign([4.0]))))
    assert not glob.glob(str(tmp_path / "model.ckpt-*"))


def test_an_init_op_reading_the_input_is_refused(tmp_path):
    def model_fn(features, labels, mode):
        spec = _model_fn(lambda w, b: None)(features, labels, mode)
        w = tf.compat.v1.trainable_variables()[0]
        with tf.control_dependencies([tf.compat.v1.global_variables_initializer()]):
            assign = w.assign(tf.reduce_mean(features["x"], keepdims=True)[0])
        return spec._replace(scaffold=tf.compat.v1.train.Scaffold(init_op=assign.op))

    with pytest.raises(ValueError, match="input of the traced step"):
        bridge.Estimator(model_fn, model_dir=str(tmp_path)).train(TRAIN, steps=1)


def test_local_init_op_runs_in_every_call_after_initialisation(tmp_path):
    def model_fn(features, labels, mode):
        counter = tf.compat.v1.get_variable("calls", [], tf.float32, tf.compat.v1.zeros_initializer(), trainable=False)
        spec = _model_fn(lambda w, b: None)(features, labels, mode)
        scaffold = tf.compat.v1.train.Scaffold(local_init_op=tf.group(counter.assign_add(1.0)))
        if mode == bridge.ModeKeys.PREDICT:
            return spec._replace(scaffold=scaffold, predictions={"calls": tf.fill(tf.shape(features["x"])[:1], counter)})
        return spec._replace(scaffold=scaffold)

    estimator = bridge.Estimator(model_fn, model_dir=str(tmp_path))
    estimator.train(TRAIN, steps=1)
    assert estimator.get_variable_value("calls") == 1.0
    assert next(estimator.predict(make_input_fn(x=X[:1], y=None)))["calls"] == 2.0  # restored 1, then local_init_op


# -- saver ------------------------------------------------------------------------------------
def _saver_run(tmp_path, saver_fn):
    """As the recorder: train(6) saving every step, RunConfig(keep_checkpoint_max=5), train(2), evaluate."""
    config = bridge.RunConfig(log_step_count_steps=None, save_checkpoints_steps=1, keep_checkpoint_max=5)
    estimator = bridge.Estimator(
        _model_fn(lambda w, b: tf.compat.v1.train.Scaffold(saver=saver_fn(w, b, tf.compat.v1.train.get_global_step()))),
        model_dir=str(tmp_path), config=config)
    estimator.train(TRAIN, steps=6)
    first = _checkpoint(tmp_path)
    return estimator, first


@pytest.mark.parametrize("case, saver_fn", [
    ("max_to_keep_2", lambda w, b, gs: tf.compat.v1.train.Saver(max_to_keep=2)),
    ("max_to_keep_0", lambda w, b, gs: tf.compat.v1.train.Saver(max_to_keep=0)),
    ("var_list_renamed", lambda w, b, gs: tf.compat.v1.train.Saver(var_list={"renamed_w": w, "renamed_b": b, "global_step": gs})),
])
def test_the_scaffolds_saver_decides_what_checkpoints_hold_and_keep(tmp_path, case, saver_fn):
    fact = SAVER[case]
    estimator, first = _saver_run(tmp_path, saver_fn)
    assert first["files"] == fact["after_first"]["files"]
    assert sorted(first["values"]) == sorted(fact["after_first"]["values"])
    estimator.train(TRAIN, steps=2)
    second = _checkpoint(tmp_path)
    assert second["files"] == fact["after_second"]["files"]
    for key, value in fact["after_second"]["values"].items():
        np.testing.assert_allclose(second["values"][key], value, rtol=1e-5, err_msg=key)
    result = estimator.evaluate(TRAIN, steps=1)
    for key, value in fact["evaluate_result"].items():
        np.testing.assert_allclose(result[key], value, rtol=1e-5, err_msg=key)


def test_a_var_list_leaving_out_model_variables_saves_them_not_and_cannot_resume(tmp_path):
    fact = SAVER["var_list_without_b"]
    estimator, first = _saver_run(tmp_path, lambda w, b, gs: tf.compat.v1.train.Saver(var_list=[w, gs]))
    assert sorted(first["values"]) == sorted(fact["after_first"]["values"]) == ["global_step", "w"]
    missing = fact["second_train"]["message"].split("Variables not initialized: ")[1]  # "b"
    assert fact["second_train"]["result"] == fact["evaluate"]["result"] == "RuntimeError"
    with pytest.raises(RuntimeError, match=f"Variables not initialized: {missing}\\.$"):
        estimator.train(TRAIN, steps=2)
    with pytest.raises(RuntimeError, match=f"Variables not initialized: {missing}\\.$"):
        estimator.evaluate(TRAIN, steps=1)
    assert _checkpoint(tmp_path)["files"] == fact["after_second"]["files"]


def test_evaluate_predict_and_export_restore_through_the_savers_names(tmp_path):
    def saver_fn(w, b, gs):
        return tf.compat.v1.train.Saver(var_list={"renamed_w": w, "renamed_b": b, "global_step": gs})

    estimator, first = _saver_run(tmp_path, saver_fn)
    w, b = first["values"]["renamed_w"][0], first["values"]["renamed_b"][0]
    prediction = next(estimator.predict(make_input_fn(x=np.ones([1, 1], np.float32), y=None)))["y"]
    np.testing.assert_allclose(prediction, [w + b], rtol=1e-6)
    receiver = bridge.export.build_raw_serving_input_receiver_fn({"x": tf.constant([[1.0]])})
    path = estimator.export_saved_model(str(tmp_path / "export"), receiver).decode()
    served = tf.saved_model.load(path).signatures["serving_default"](x=tf.constant([[1.0]]))["y"]
    np.testing.assert_allclose(served.numpy(), [[w + b]], rtol=1e-6)


def test_the_global_step_keeps_its_checkpoint_name(tmp_path):
    with pytest.raises(ValueError, match="'global_step'"):
        _saver_run(tmp_path, lambda w, b, gs: tf.compat.v1.train.Saver(var_list={"w": w, "b": b, "step": gs}))


def test_a_var_list_without_the_global_step_is_refused_up_front(tmp_path):
    # 2.15 wrote checkpoints it could not resume or evaluate from (its RuntimeError came on the next call).
    assert SAVER["var_list_without_global_step"]["second_train"]["result"] == "RuntimeError"
    with pytest.raises(ValueError, match="must include the global step"):
        _saver_run(tmp_path, lambda w, b, gs: tf.compat.v1.train.Saver(var_list=[w]))


@pytest.mark.parametrize("scaffold_kwargs, match", [
    (lambda w: dict(ready_op=tf.constant([], tf.string)), r"Scaffold\(ready_op=...\)"),
    (lambda w: dict(ready_for_local_init_op=tf.constant([], tf.string)), r"Scaffold\(ready_for_local_init_op=...\)"),
    (lambda w: dict(init_feed_dict={"a": 1}), r"Scaffold\(init_feed_dict=...\)"),
    (lambda w: dict(saver=tf.compat.v1.train.Saver(pad_step_number=True)), r"Saver\(pad_step_number=...\).*model.ckpt-<step>"),
    (lambda w: dict(saver=tf.compat.v1.train.Saver(filename="other")), r"Saver\(filename=...\)"),
])
def test_fields_bridge_cannot_honour_are_refused_by_name(tmp_path, scaffold_kwargs, match):
    estimator = bridge.Estimator(_model_fn(lambda w, b: tf.compat.v1.train.Scaffold(**scaffold_kwargs(w))),
                                 model_dir=str(tmp_path))
    with pytest.raises(ValueError, match=match):
        estimator.train(TRAIN, steps=1)


def test_session_run_with_a_feed_dict_names_the_replacement(tmp_path):
    def scaffold_fn(w, b):
        return tf.compat.v1.train.Scaffold(init_fn=lambda scaffold, session: session.run(w, feed_dict={"x:0": [1.0]}))

    with pytest.raises(ValueError, match=r"variable.assign\(value\)"):
        bridge.Estimator(_model_fn(scaffold_fn), model_dir=str(tmp_path)).train(TRAIN, steps=1)


# -- under a MirroredStrategy (two logical CPUs, in a subprocess) ----------------------------
_MIRRORED = r'''
import json, sys, tempfile
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import bridge

rng = np.random.RandomState(0)
x = rng.rand(64, 1).astype(np.float32)
y = 2 * x


def model_fn_with(scaffold_fn):
    def model_fn(features, labels, mode):
        w = tf.compat.v1.get_variable("w", [1], initializer=tf.compat.v1.zeros_initializer())
        pred = features["x"] * w
        loss = tf.compat.v1.losses.mean_squared_error(labels, pred)
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.05).minimize(loss, tf.compat.v1.train.get_global_step())
        return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, scaffold=scaffold_fn(w))
    return model_fn


def train(scaffold_fn):
    config = bridge.RunConfig(train_distribute=tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
                              log_step_count_steps=None)
    estimator = bridge.Estimator(model_fn_with(scaffold_fn), model_dir=tempfile.mkdtemp(), config=config)
    try:
        estimator.train(lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(8), steps=1)
        return ["ok", float(estimator.get_variable_value("w")[0])]
    except Exception as error:
        return [type(error).__name__, str(error)]


out = {
    "eager_assign_in_init_fn": train(lambda w: tf.compat.v1.train.Scaffold(init_fn=lambda s, sess: w.assign([3.0]))),
    "init_op": train(lambda w: tf.compat.v1.train.Scaffold(init_op=tf.group(w.assign([3.0]), tf.compat.v1.global_variables_initializer()))),
}
print(json.dumps(out))
'''


def test_under_a_mirrored_strategy_init_fn_assigns_every_replica_and_graph_ops_are_refused(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "mirrored.py"
    script.write_text(_MIRRORED)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["eager_assign_in_init_fn"][0] == "ok"
    # the 2.15 fact for one step from w = 3 (its bias-free model: tests/fixtures/legacy_2_15/api/scaffold.json)
    np.testing.assert_allclose(out["eager_assign_in_init_fn"][1], FACTS["w_after_one_step_from_3"], rtol=1e-5)
    assert out["init_op"][0] == "ValueError" and "2 replicas" in out["init_op"][1]
