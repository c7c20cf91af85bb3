"""tf.distribute: MirroredStrategy on two logical CPUs, and a real multi-worker cluster on loopback.

Logical devices must be configured before TensorFlow initialises, and MultiWorkerMirroredStrategy
must be created before any other TensorFlow work in its process, so every strategy run here
happens in a child process (the pytest process keeps its single CPU device). Each child is
bounded by a timeout and killed on failure.

Equivalence checked throughout: training with N replicas on a global batch B gives the weights
that one device gets with batch B (bridge's loss semantics, docs/design.md "Distribution").
"""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import bridge

_BRIDGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(bridge.__file__)))
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # examples/ live here


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join([_BRIDGE_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["CUDA_VISIBLE_DEVICES"] = "-1"
    env.update(extra)
    return env


def _run_script(path: str, args: list[str], timeout: float) -> dict:
    """Runs a child Python script; returns the JSON object on its last stdout line."""
    try:
        done = subprocess.run(
            [sys.executable, path, *args], env=_child_env(), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as error:  # subprocess.run kills the child
        pytest.fail(f"{path} did not finish in {timeout} s:\n{(error.stderr or b'')[-3000:]}")
    if done.returncode != 0:
        pytest.fail(f"{path} failed ({done.returncode}):\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- common model code for the children -----------------------------------------------------------
_COMMON = textwrap.dedent(
    '''
    import json, os, sys, tempfile
    import numpy as np

    def data():
        rng = np.random.RandomState(0)
        x = rng.rand(256, 4).astype("float32")
        return x, (x @ np.array([1.0, -1.0, 0.5, 2.0], "float32") > 1.0).astype("int32")

    def model_fn(features, labels, mode, params):
        """A classic model_fn: Keras layers, a hand-written mean loss, a Keras and a v1 metric."""
        import keras, tensorflow as tf, bridge
        logits = keras.layers.Dense(2, kernel_initializer="ones", name="dense")(features)
        if params.get("loss") == "object":  # Keras 3 pre-scales these under tf.distribute
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
        else:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        if params.get("optimizer") == "v1":
            train_op = None
            if mode == bridge.ModeKeys.TRAIN:
                train_op = tf.compat.v1.train.GradientDescentOptimizer(0.5).minimize(
                    loss, global_step=tf.compat.v1.train.get_global_step())
        else:
            train_op = bridge.minimize(loss, keras.optimizers.Adam(0.1))
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        accuracy.update_state(labels, logits)
        hooks = [LossRecorder(loss)] if params.get("record") is not None else []
        metrics = {"accuracy": accuracy, "mean_logit": tf.compat.v1.metrics.mean(logits)}
        if params.get("host"):  # bridge's C++ metrics, fed on the host (merged across workers)
            metrics["host_accuracy"] = bridge.metrics.accuracy(labels, tf.argmax(logits, 1, output_type=labels.dtype))
            metrics["host_exact_auc"] = bridge.metrics.exact_auc(labels, tf.nn.softmax(logits)[:, 1])
        return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, training_hooks=hooks, eval_metric_ops=metrics)

    RECORDED = []

    def LossRecorder(loss):
        """A hook that records the spec.loss it fetches (under a strategy: the mean over replicas)."""
        import bridge

        class Recorder(bridge.SessionRunHook):
            def before_run(self, run_context):
                return bridge.SessionRunArgs(loss)

            def after_run(self, run_context, run_values):
                RECORDED.append(float(run_values.results))

        return Recorder()

    def keras_model():
        import keras
        inputs = keras.Input((4,), name="x")
        outputs = keras.layers.Dense(2, kernel_initializer="ones", name="dense")(inputs)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.SGD(0.5), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        return model

    def to_jsonable(values):
        return {k: np.asarray(v).tolist() for k, v in values.items()}
    '''
)

# -- MirroredStrategy in one process on two logical CPUs -------------------------------------------
_MIRRORED = _COMMON + textwrap.dedent(
    '''
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import bridge

    X, Y = data()
    def train_input(): return tf.data.Dataset.from_tensor_slices((X, Y)).batch(32)   # global batch 32
    def eval_input(): return tf.data.Dataset.from_tensor_slices((X, Y)).batch(64)
    seen = []
    def train_input_with_context(input_context=None):
        ds = tf.data.Dataset.from_tensor_slices((X, Y))
        if input_context is None:
            return ds.batch(32)
        seen.append([input_context.num_input_pipelines, input_context.num_replicas_in_sync,
                     input_context.get_per_replica_batch_size(32)])
        return ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id).batch(
            input_context.get_per_replica_batch_size(32))

    def mirrored():
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    out = {}
    cases = {
        "fn_loss": dict(params={"record": True}),
        "loss_object": dict(params={"loss": "object"}),
        "v1_optimizer": dict(params={"optimizer": "v1"}),
        "iterations_per_loop": dict(params={}, iterations_per_loop=3),
        "input_context": dict(params={}, input_fn=train_input_with_context),
        "keras_model": dict(params=None),
    }
    cases["one_replica"] = dict(params={}, strategy=lambda: tf.distribute.MirroredStrategy(["/cpu:0"]))
    for case, spec in cases.items():
        for mode in ("single", "mirrored"):
            strategy = spec.get("strategy", mirrored)() if mode == "mirrored" else None
            config = bridge.RunConfig(train_distribute=strategy, eval_distribute=strategy,
                                      save_checkpoints_steps=4, iterations_per_loop=spec.get("iterations_per_loop", 1))
            model_dir = tempfile.mkdtemp()
            if spec["params"] is None:
                est = bridge.model_to_estimator(keras_model=keras_model(), model_dir=model_dir, config=config)
                ev_input = lambda: tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).batch(64)
                tr_input = lambda: tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).batch(32)
            else:
                est = bridge.Estimator(model_fn, model_dir=model_dir, config=config, params=spec["params"])
                ev_input, tr_input = eval_input, spec.get("input_fn", train_input)
            del RECORDED[:]
            est.train(tr_input)
            result = {"kernel": est.get_variable_value("dense/kernel"), "hook_losses": list(RECORDED),
                      "step": est.get_variable_value("global_step"),
                      "evaluate": to_jsonable(est.evaluate(ev_input))}
            out.setdefault(case, {})[mode] = {k: (to_jsonable(v) if isinstance(v, dict) else np.asarray(v).tolist())
                                              for k, v in result.items()}
    out["input_context_seen"] = seen
    print(json.dumps(out))
    '''
)


@pytest.fixture(scope="module")
def mirrored_results(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("mirrored") / "mirrored.py"
    path.write_text(_MIRRORED)
    return _run_script(str(path), [], timeout=240)


@pytest.mark.parametrize(
    "case", ["fn_loss", "loss_object", "v1_optimizer", "iterations_per_loop", "input_context", "keras_model", "one_replica"]
)
def test_mirrored_training_equals_one_device_with_the_same_global_batch(mirrored_results, case):
    single, mirrored = mirrored_results[case]["single"], mirrored_results[case]["mirrored"]
    assert mirrored["step"] == single["step"] == 8
    np.testing.assert_allclose(mirrored["kernel"], single["kernel"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(single["kernel"], 1.0)  # it did train


@pytest.mark.parametrize("case", ["fn_loss", "keras_model"])
def test_evaluate_under_eval_distribute_equals_evaluate_without(mirrored_results, case):
    single, mirrored = mirrored_results[case]["single"]["evaluate"], mirrored_results[case]["mirrored"]["evaluate"]
    assert sorted(mirrored) == sorted(single)
    for key in single:
        np.testing.assert_allclose(mirrored[key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_hooks_fetching_the_loss_see_the_mean_over_replicas(mirrored_results):
    # What LoggingTensorHook, NanTensorHook and summaries see: the same on every replica and
    # worker, and equal to one device's loss on the whole global batch.
    single, mirrored = (mirrored_results["fn_loss"][mode]["hook_losses"] for mode in ("single", "mirrored"))
    assert len(single) == len(mirrored) == 8
    np.testing.assert_allclose(mirrored, single, rtol=1e-5)


def test_input_fn_declaring_input_context_gets_it_per_pipeline(mirrored_results):
    # One input pipeline in one process, two replicas in sync, per-replica batch 32 / 2.
    assert mirrored_results["input_context_seen"] == [[1, 2, 16]]


# -- chief-only writes, roles (in process, no strategy needed) ---------------------------------------
def _tf_config(monkeypatch, task_type, index, cluster):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}}))


def _tiny_model_fn(features, labels, mode):
    import keras

    predictions = keras.layers.Dense(1, name="dense")(features)
    loss = tf.reduce_mean(tf.square(predictions - labels))
    return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.1)))


def _tiny_input():
    x = np.ones((8, 2), np.float32)
    return tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(4)


def test_non_chief_worker_writes_nothing_into_model_dir(tmp_path, monkeypatch):
    _tf_config(monkeypatch, "worker", 0, {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]})
    hook_calls = []

    class ChiefHook(bridge.SessionRunHook):
        def begin(self):
            hook_calls.append("begin")

    def model_fn(features, labels, mode):
        spec = _tiny_model_fn(features, labels, mode)
        return spec._replace(training_chief_hooks=[ChiefHook()])

    model_dir = str(tmp_path / "model")
    config = bridge.RunConfig(model_dir=model_dir, save_checkpoints_steps=1, save_summary_steps=1)
    assert not config.is_chief
    bridge.Estimator(model_fn, config=config).train(_tiny_input)
    assert not os.path.exists(model_dir)
    assert hook_calls == []


def test_multi_worker_cluster_without_a_multi_worker_strategy_is_refused(tmp_path, monkeypatch):
    _tf_config(monkeypatch, "worker", 0, {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2"]})
    est = bridge.Estimator(_tiny_model_fn, model_dir=str(tmp_path))
    with pytest.raises(ValueError, match="MultiWorkerMirroredStrategy"):
        bridge.train_and_evaluate(est, bridge.TrainSpec(_tiny_input, max_steps=1), bridge.EvalSpec(_tiny_input))


def test_ps_task_is_refused_naming_parameter_server_strategy(tmp_path, monkeypatch):
    _tf_config(monkeypatch, "ps", 0, {"chief": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"]})
    est = bridge.Estimator(_tiny_model_fn, model_dir=str(tmp_path))
    with pytest.raises(NotImplementedError, match="ParameterServerStrategy"):
        bridge.train_and_evaluate(est, bridge.TrainSpec(_tiny_input, max_steps=1), bridge.EvalSpec(_tiny_input))


# -- a real cluster: chief + worker (MultiWorkerMirroredStrategy) + evaluator, on loopback ------------
MAX_STEPS = 12
_CLUSTER_TASK = _COMMON + textwrap.dedent(
    f'''
    role, model_dir, keras_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    import time
    import tensorflow as tf
    # The strategy first: MultiWorkerMirroredStrategy must exist before other TensorFlow work.
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if role in ("chief", "worker") else None
    import bridge

    X, Y = data()
    def train_input(features_key=None):
        def input_fn():  # global batch 32, endless; each worker gets its half of every batch
            features = {{features_key: X}} if features_key else X
            return tf.data.Dataset.from_tensor_slices((features, Y)).repeat().batch(32)
        return input_fn
    def eval_input(features_key=None):
        def input_fn():
            features = {{features_key: X}} if features_key else X
            return tf.data.Dataset.from_tensor_slices((features, Y)).batch(64)
        return input_fn

    out = {{"pid": os.getpid()}}
    runs = (
        ("model_fn", model_dir, lambda config: bridge.Estimator(model_fn, config=config, params={{}}), None),
        ("keras", keras_dir, lambda config: bridge.model_to_estimator(keras_model=keras_model(), config=config), "x"),
    )
    for name, directory, make, key in runs:
        config = bridge.RunConfig(model_dir=directory, train_distribute=strategy, save_checkpoints_steps=4,
                                  save_summary_steps=2, log_step_count_steps=4)
        est = make(config)
        if role == "single":
            est.train(train_input(key), max_steps={MAX_STEPS})
            out[name] = {{"kernel": est.get_variable_value("dense/kernel").tolist(),
                         "evaluate": to_jsonable(est.evaluate(eval_input(key)))}}
            if name == "model_fn":
                with_host = bridge.Estimator(model_fn, config=bridge.RunConfig(model_dir=directory), params={{"host": True}})
                out[name]["evaluate_host"] = to_jsonable(with_host.evaluate(eval_input(key)))
        else:
            out[name] = {{"is_chief": config.is_chief, "task": [config.task_type, config.task_id]}}
            bridge.train_and_evaluate(
                est, bridge.TrainSpec(train_input(key), max_steps={MAX_STEPS}),
                bridge.EvalSpec(eval_input(key), steps=None, start_delay_secs=0, throttle_secs=0))
            if name == "model_fn":
                # Both trainers evaluate the final checkpoint together, each on its shard.
                final = os.path.join(directory, "model.ckpt-{MAX_STEPS}")
                for _ in range(600):
                    if tf.train.latest_checkpoint(directory) == final:
                        break
                    time.sleep(0.1)
                together = bridge.Estimator(model_fn, config=bridge.RunConfig(
                    model_dir=directory, eval_distribute=strategy), params={{"host": True}})
                out[name]["evaluate_distributed"] = to_jsonable(together.evaluate(eval_input(key), checkpoint_path=final))
    print(json.dumps(out))
    '''
)


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _eval_events(eval_dir: str) -> dict[int, dict[str, float]]:
    """Scalars of the evaluation event files, by global step."""
    by_step: dict[int, dict[str, float]] = {}
    for path in glob.glob(os.path.join(eval_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    by_step.setdefault(event.step, {})[value.tag] = value.simple_value
                elif value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                    by_step.setdefault(event.step, {})[value.tag] = float(tf.make_ndarray(value.tensor))
    return by_step


@pytest.mark.slow
def test_two_worker_cluster_and_evaluator_on_loopback(tmp_path):
    script = tmp_path / "task.py"
    script.write_text(_CLUSTER_TASK)
    chief_port, worker_port, evaluator_port = _free_ports(3)
    cluster = {
        "chief": [f"127.0.0.1:{chief_port}"],
        "worker": [f"127.0.0.1:{worker_port}"],
        "evaluator": [f"127.0.0.1:{evaluator_port}"],
    }
    model_dir, keras_dir = str(tmp_path / "model"), str(tmp_path / "keras")
    single_dirs = [str(tmp_path / "single_model"), str(tmp_path / "single_keras")]
    tasks = {}
    for role in ("chief", "worker", "evaluator", "single"):
        env = _child_env()
        if role != "single":
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": role, "index": 0}})
        tasks[role] = (env, single_dirs if role == "single" else [model_dir, keras_dir])
    outputs = run_tasks(tmp_path, script, tasks, timeout=150)

    single = outputs["single"]
    chief_pid, worker_pid = outputs["chief"]["pid"], outputs["worker"]["pid"]
    together = {role: outputs[role]["model_fn"].pop("evaluate_distributed") for role in ("chief", "worker")}
    assert outputs["chief"]["model_fn"] == {"is_chief": True, "task": ["chief", 0]}
    assert outputs["worker"]["model_fn"] == {"is_chief": False, "task": ["worker", 0]}
    # evaluate under a MultiWorkerMirroredStrategy: each worker scored its shard; the host (C++)
    # metric states were merged across workers, so both report the one-process numbers.
    expected = single["model_fn"]["evaluate_host"]
    for role, result in together.items():
        assert sorted(result) == sorted(expected), role
        for key in ("host_accuracy", "host_exact_auc", "accuracy", "loss"):
            np.testing.assert_allclose(result[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=f"{role} {key}")
    for name, directory in (("model_fn", model_dir), ("keras", keras_dir)):
        # The chief's checkpoints: every 4 steps up to max_steps, weights of the one-process run.
        latest = tf.train.latest_checkpoint(directory)
        assert latest is not None and latest.endswith(f"model.ckpt-{MAX_STEPS}"), latest
        reader = tf.train.load_checkpoint(latest)
        assert int(reader.get_tensor("global_step")) == MAX_STEPS
        np.testing.assert_allclose(reader.get_tensor("dense/kernel"), single[name]["kernel"], rtol=1e-4, atol=1e-4)
        # Only the chief wrote into model_dir: summaries carry the writer's pid, the lock too.
        events = glob.glob(os.path.join(directory, "events.out.tfevents.*"))
        assert events and all(re.search(rf"\.{chief_pid}\.", path) for path in events), events
        assert not any(re.search(rf"\.{worker_pid}\.", path) for path in glob.glob(os.path.join(directory, "**"), recursive=True))
        with open(os.path.join(directory, ".bridge-train.lock")) as lock:
            assert lock.read().strip() == str(chief_pid)
        # The evaluator evaluated the chief's checkpoints up to the last one, with the right numbers.
        evaluations = _eval_events(os.path.join(directory, "eval"))
        assert MAX_STEPS in evaluations, sorted(evaluations)
        expected = single[name]["evaluate"]
        for key, value in expected.items():
            if key != "global_step":
                np.testing.assert_allclose(evaluations[MAX_STEPS][key], value, rtol=1e-4, atol=1e-4, err_msg=key)


def _tail(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-5000:]


def run_tasks(tmp_path, script, tasks: dict, timeout: float) -> dict:
    """Starts one process per task (role -> (env, args)) at once; returns each one's last-line JSON.

    Fails the test with the task's log when one fails or is still running after ``timeout``
    seconds (a collective left waiting forever); every process is gone when this returns.
    """
    processes: dict[str, subprocess.Popen] = {}
    logs, outputs = {}, {}
    try:
        for role, (env, args) in tasks.items():
            logs[role] = open(tmp_path / f"{role}.log", "w+")
            processes[role] = subprocess.Popen(
                [sys.executable, str(script), role, *args], env=env, stdout=subprocess.PIPE, stderr=logs[role], text=True
            )
        deadline = time.monotonic() + timeout
        for role, process in processes.items():
            try:
                stdout, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"the {role} task did not finish in time (waiting forever?):\n{_tail(logs[role])}")
            if process.returncode != 0:
                pytest.fail(f"the {role} task failed ({process.returncode}):\n{_tail(logs[role])}")
            outputs[role] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        for log in logs.values():
            log.close()
    return outputs


@pytest.mark.slow
def test_example_launcher_runs_a_local_cluster(tmp_path):
    launcher = os.path.join(_REPO_ROOT, "examples", "distributed", "launch_local_cluster.py")
    model_dir = str(tmp_path / "digits")
    done = subprocess.run(
        [sys.executable, launcher, "--workers", "2", "--evaluator", "--quiet", "--timeout", "150",
         "--model-dir", model_dir, "--", "--steps", "60", "--save-checkpoints-steps", "30"],
        env=_child_env(), capture_output=True, text=True, timeout=200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert tf.train.latest_checkpoint(model_dir).endswith("model.ckpt-60")
    with open(os.path.join(model_dir, "logs", "evaluator0.log")) as log:
        final = json.loads([line for line in log if line.startswith("{")][-1])
    assert final["global_step"] == 60 and final["accuracy"] > 0.5
