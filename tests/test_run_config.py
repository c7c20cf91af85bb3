"""Tests for bridge.run_config: tf.estimator 2.15's RunConfig rules and TF_CONFIG parsing."""

import copy
import json
import logging
import os
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf

from bridge.run_config import RunConfig, TaskType, resolve_model_dir

CLUSTER = {
    "chief": ["host0:2222"],
    "ps": ["host1:2222", "host2:2222"],
    "worker": ["host3:2222", "host4:2222", "host5:2222"],
}


@pytest.fixture(autouse=True)
def _no_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)


def set_tf_config(monkeypatch, **tf_config):
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))


# ---------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------


def test_constructor_defaults():
    c = RunConfig()
    assert c.model_dir is None
    assert c.tf_random_seed is None
    assert c.save_summary_steps == 100
    assert c.save_checkpoints_steps is None
    assert c.save_checkpoints_secs == 600
    assert c.session_config is None
    assert c.keep_checkpoint_max == 5
    assert c.keep_checkpoint_every_n_hours == 10000
    assert c.log_step_count_steps == 100
    assert c.train_distribute is None
    assert c.eval_distribute is None
    assert c.experimental_distribute is None
    assert c.device_fn is None
    assert c.protocol is None
    assert c.experimental_max_worker_delay_secs is None
    assert c.session_creation_timeout_secs == 7200
    assert c.checkpoint_save_graph_def is True
    assert c.iterations_per_loop == 1
    assert c.progress_bar is None


def test_local_derived_defaults():
    c = RunConfig()
    assert c.cluster_spec == tf.train.ClusterSpec({})
    assert isinstance(c.cluster_spec, tf.train.ClusterSpec)
    assert c.task_type == "worker"
    assert c.task_id == 0
    assert c.master == ""
    assert c.evaluation_master == ""
    assert c.is_chief is True
    assert c.num_ps_replicas == 0
    assert c.num_worker_replicas == 1
    assert c.global_id_in_cluster == 0
    assert c.service is None


def test_properties_are_read_only():
    c = RunConfig()
    with pytest.raises(AttributeError):
        c.model_dir = "/x"
    with pytest.raises(AttributeError):
        c.is_chief = False


def test_module_import_does_not_import_tensorflow():
    root = pathlib.Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop("TF_CONFIG", None)
    # Import the module file directly so the package __init__ (which may import TF) is skipped.
    code = (
        "import importlib.util, sys;"
        f"spec = importlib.util.spec_from_file_location('rc', {str(root / 'bridge' / 'run_config.py')!r});"
        "rc = importlib.util.module_from_spec(spec); spec.loader.exec_module(rc);"
        "c = rc.RunConfig(model_dir='/m', tf_random_seed=1);"
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# Save-interval rules
# ---------------------------------------------------------------------------


def test_explicit_steps_clears_default_secs():
    c = RunConfig(save_checkpoints_steps=50)
    assert c.save_checkpoints_steps == 50
    assert c.save_checkpoints_secs is None


def test_explicit_secs_keeps_steps_none():
    c = RunConfig(save_checkpoints_secs=30)
    assert c.save_checkpoints_secs == 30
    assert c.save_checkpoints_steps is None


def test_both_none_disables_checkpointing():
    c = RunConfig(save_checkpoints_steps=None, save_checkpoints_secs=None)
    assert c.save_checkpoints_steps is None
    assert c.save_checkpoints_secs is None


def test_explicit_none_steps_drops_default_secs():
    # Setting one explicitly (even to None) drops the 600 s default of the other.
    c = RunConfig(save_checkpoints_steps=None)
    assert c.save_checkpoints_steps is None
    assert c.save_checkpoints_secs is None


def test_both_save_intervals_set_is_error():
    with pytest.raises(ValueError, match="cannot be both set"):
        RunConfig(save_checkpoints_steps=10, save_checkpoints_secs=10)


def test_one_interval_set_other_explicit_none_ok():
    c = RunConfig(save_checkpoints_steps=10, save_checkpoints_secs=None)
    assert (c.save_checkpoints_steps, c.save_checkpoints_secs) == (10, None)


# ---------------------------------------------------------------------------
# Validation errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"model_dir": ""}, ValueError, "model_dir should be non-empty"),
        ({"tf_random_seed": 1.5}, ValueError, "tf_random_seed must be integer"),
        ({"tf_random_seed": "1"}, ValueError, "tf_random_seed must be integer"),
        ({"save_summary_steps": -1}, ValueError, "save_summary_steps should be >= 0"),
        ({"save_checkpoints_steps": -1}, ValueError, "save_checkpoints_steps should be >= 0"),
        ({"save_checkpoints_secs": -1}, ValueError, "save_checkpoints_secs should be >= 0"),
        ({"keep_checkpoint_max": -1}, ValueError, "keep_checkpoint_max should be >= 0"),
        ({"keep_checkpoint_every_n_hours": 0}, ValueError, "keep_checkpoint_every_n_hours should be > 0"),
        ({"log_step_count_steps": 0}, ValueError, "log_step_count_steps should be > 0"),
        ({"session_creation_timeout_secs": 0}, ValueError, "session_creation_timeout_secs should be > 0"),
        ({"experimental_max_worker_delay_secs": 1.5}, ValueError, "must be an integer if set"),
        ({"protocol": "http"}, ValueError, "protocol should be grpc or grpc\\+verbs"),
        ({"device_fn": 3}, ValueError, 'device_fn must be callable with exactly one argument "op"'),
        ({"device_fn": lambda x: ""}, ValueError, 'exactly one argument "op"'),
        ({"device_fn": lambda op, other: ""}, ValueError, 'exactly one argument "op"'),
        ({"session_config": {"allow_soft_placement": True}}, TypeError, "session_config must be instance of ConfigProto"),
        ({"train_distribute": "mirrored"}, TypeError, "train_distribute"),
        ({"eval_distribute": object()}, TypeError, "eval_distribute"),
        ({"iterations_per_loop": 0}, ValueError, "iterations_per_loop"),
        ({"iterations_per_loop": 2.0}, ValueError, "iterations_per_loop"),
        ({"iterations_per_loop": True}, ValueError, "iterations_per_loop"),
        ({"progress_bar": "yes"}, TypeError, "progress_bar"),
        ({"progress_bar": 1}, TypeError, "progress_bar"),
    ],
)
def test_validation_errors(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        RunConfig(**kwargs)


def test_wrong_typed_numbers_raise_type_error_that_is_also_value_error():
    with pytest.raises(TypeError, match="save_summary_steps"):
        RunConfig(save_summary_steps="10")
    # tf.estimator raised ValueError for a bad session_config; both catch clauses work.
    with pytest.raises(ValueError, match="ConfigProto"):
        RunConfig(session_config="not a proto")


@pytest.mark.parametrize(
    "field",
    [
        "save_summary_steps",
        "keep_checkpoint_max",
        "keep_checkpoint_every_n_hours",
        "log_step_count_steps",
        "session_creation_timeout_secs",
        "tf_random_seed",
        "experimental_max_worker_delay_secs",
    ],
)
def test_none_is_accepted_where_tf_estimator_accepted_it(field):
    assert getattr(RunConfig(**{field: None}), field) is None


def test_valid_boundary_values():
    c = RunConfig(
        save_summary_steps=0,
        keep_checkpoint_max=0,
        save_checkpoints_steps=0,
        tf_random_seed=0,
        experimental_max_worker_delay_secs=0,
        protocol="grpc+verbs",
        iterations_per_loop=32,
        progress_bar=False,
    )
    assert c.keep_checkpoint_max == 0
    assert c.iterations_per_loop == 32
    assert c.progress_bar is False


def test_device_fn_with_op_argument_accepted():
    def place(op):
        return "/cpu:0"

    class Placer:
        def __call__(self, op):
            return "/cpu:0"

    assert RunConfig(device_fn=place).device_fn is place
    placer = Placer()
    assert RunConfig(device_fn=placer).device_fn is placer


def test_session_config_accepted_and_kept():
    proto = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    assert RunConfig(session_config=proto).session_config == proto


def test_model_dir_pathlike_converted(tmp_path):
    c = RunConfig(model_dir=tmp_path)
    assert c.model_dir == str(tmp_path)
    assert isinstance(c.model_dir, str)


def test_progress_bar_enabled_auto_follows_tty(monkeypatch):
    class FakeStream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr(sys, "stderr", FakeStream(True))
    assert RunConfig().progress_bar_enabled is True
    assert RunConfig(progress_bar=False).progress_bar_enabled is False
    monkeypatch.setattr(sys, "stderr", FakeStream(False))
    assert RunConfig().progress_bar_enabled is False
    assert RunConfig(progress_bar=True).progress_bar_enabled is True


# ---------------------------------------------------------------------------
# Distribution strategies
# ---------------------------------------------------------------------------


def test_strategies_accepted():
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
    c = RunConfig(train_distribute=mirrored, eval_distribute=one)
    assert c.train_distribute is mirrored
    assert c.eval_distribute is one


def test_v1_strategy_accepted():
    s = tf.compat.v1.distribute.OneDeviceStrategy("/cpu:0")
    assert RunConfig(train_distribute=s).train_distribute is s


@pytest.mark.parametrize("field", ["train_distribute", "eval_distribute"])
def test_v2_parameter_server_strategy_rejected(field):
    # A real v2 ParameterServerStrategy needs a live cluster; the check is by class.
    cls = tf.distribute.experimental.ParameterServerStrategy
    fake = cls.__new__(cls)
    with pytest.raises(ValueError, match="tf.compat.v1.distribute.experimental.ParameterServerStrategy"):
        RunConfig(**{field: fake})


def test_experimental_distribute_supplies_strategies():
    class DistributeConfig:
        def __init__(self, train_distribute=None, eval_distribute=None):
            self.train_distribute = train_distribute
            self.eval_distribute = eval_distribute
            self.remote_cluster = None

    s = tf.distribute.OneDeviceStrategy("/cpu:0")
    c = RunConfig(experimental_distribute=DistributeConfig(train_distribute=s, eval_distribute=s))
    assert c.train_distribute is s and c.eval_distribute is s
    with pytest.raises(ValueError, match="Either `train_distribute` or"):
        RunConfig(train_distribute=s, experimental_distribute=DistributeConfig(train_distribute=s))
    with pytest.raises(ValueError, match="Either `eval_distribute` or"):
        RunConfig(eval_distribute=s, experimental_distribute=DistributeConfig(eval_distribute=s))


# ---------------------------------------------------------------------------
# replace()
# ---------------------------------------------------------------------------


def test_replace_returns_modified_copy_and_keeps_original():
    original = RunConfig(model_dir="/a", tf_random_seed=1)
    new = original.replace(model_dir="/b", tf_random_seed=2, iterations_per_loop=8, progress_bar=True)
    assert (new.model_dir, new.tf_random_seed, new.iterations_per_loop, new.progress_bar) == ("/b", 2, 8, True)
    assert (original.model_dir, original.tf_random_seed, original.iterations_per_loop) == ("/a", 1, 1)
    assert new is not original


def test_replace_every_constructor_field_allowed():
    proto = tf.compat.v1.ConfigProto()
    s = tf.distribute.OneDeviceStrategy("/cpu:0")
    new = RunConfig().replace(
        model_dir="/m",
        tf_random_seed=3,
        save_summary_steps=7,
        save_checkpoints_steps=9,
        session_config=proto,
        keep_checkpoint_max=2,
        keep_checkpoint_every_n_hours=1,
        log_step_count_steps=4,
        train_distribute=s,
        device_fn=lambda op: "",
        protocol="grpc",
        eval_distribute=s,
        experimental_distribute=None,
        experimental_max_worker_delay_secs=5,
        session_creation_timeout_secs=10,
        checkpoint_save_graph_def=False,
        iterations_per_loop=16,
        progress_bar=False,
    )
    assert new.save_checkpoints_steps == 9 and new.checkpoint_save_graph_def is False
    assert new.train_distribute is s and new.eval_distribute is s
    assert new.session_config == proto


@pytest.mark.parametrize("name", ["task_type", "is_chief", "cluster_spec", "master", "bogus"])
def test_replace_disallowed_names(name):
    with pytest.raises(ValueError, match=f"Replacing {name} is not supported") as info:
        RunConfig().replace(**{name: 1})
    assert "model_dir" in str(info.value)  # Lists the allowed properties.
    assert "iterations_per_loop" in str(info.value)


def test_replace_steps_clears_secs():
    new = RunConfig().replace(save_checkpoints_steps=20)
    assert (new.save_checkpoints_steps, new.save_checkpoints_secs) == (20, None)


def test_replace_secs_clears_steps():
    new = RunConfig(save_checkpoints_steps=20).replace(save_checkpoints_secs=5)
    assert (new.save_checkpoints_steps, new.save_checkpoints_secs) == (None, 5)


def test_replace_none_interval_does_not_clear_other():
    new = RunConfig().replace(save_checkpoints_steps=None)
    assert (new.save_checkpoints_steps, new.save_checkpoints_secs) == (None, 600)


def test_replace_both_intervals():
    with pytest.raises(ValueError, match="cannot be both set"):
        RunConfig().replace(save_checkpoints_steps=1, save_checkpoints_secs=1)
    off = RunConfig().replace(save_checkpoints_steps=None, save_checkpoints_secs=None)
    assert (off.save_checkpoints_steps, off.save_checkpoints_secs) == (None, None)
    one = RunConfig().replace(save_checkpoints_steps=3, save_checkpoints_secs=None)
    assert (one.save_checkpoints_steps, one.save_checkpoints_secs) == (3, None)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"model_dir": ""}, "model_dir should be non-empty"),
        ({"tf_random_seed": 0.5}, "tf_random_seed must be integer"),
        ({"keep_checkpoint_max": -2}, "keep_checkpoint_max should be >= 0"),
        ({"log_step_count_steps": 0}, "log_step_count_steps should be > 0"),
        ({"iterations_per_loop": 0}, "iterations_per_loop"),
        ({"protocol": "tcp"}, "protocol should be"),
    ],
)
def test_replace_reruns_validation(kwargs, fragment):
    original = RunConfig(model_dir="/keep")
    with pytest.raises(ValueError, match=fragment):
        original.replace(**kwargs)
    assert original.model_dir == "/keep"


def test_replace_rejects_bad_strategy():
    with pytest.raises(TypeError, match="train_distribute"):
        RunConfig().replace(train_distribute="nope")


def test_replace_keeps_tf_config_state(monkeypatch):
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": "worker", "index": 1})
    c = RunConfig()
    monkeypatch.delenv("TF_CONFIG")
    new = c.replace(tf_random_seed=5)
    assert (new.task_type, new.task_id, new.is_chief) == ("worker", 1, False)
    assert new.cluster_spec == tf.train.ClusterSpec(CLUSTER)


def test_replace_and_deepcopy_share_strategies():
    s = tf.distribute.OneDeviceStrategy("/cpu:0")
    c = RunConfig(train_distribute=s)
    assert c.replace(tf_random_seed=1).train_distribute is s
    assert copy.deepcopy(c).train_distribute is s


# ---------------------------------------------------------------------------
# __eq__ / __repr__
# ---------------------------------------------------------------------------


def test_equality():
    assert RunConfig(model_dir="/a") == RunConfig(model_dir="/a")
    assert RunConfig(model_dir="/a") != RunConfig(model_dir="/b")
    assert RunConfig() != RunConfig(iterations_per_loop=2)
    assert RunConfig() != "RunConfig()"
    c = RunConfig(tf_random_seed=4)
    assert copy.deepcopy(c) == c


def test_repr_shows_fields():
    text = repr(RunConfig(model_dir="/a", save_checkpoints_steps=10))
    assert text.startswith("RunConfig(")
    assert "model_dir='/a'" in text
    assert "save_checkpoints_steps=10" in text
    assert "save_checkpoints_secs=None" in text
    assert "task_type='worker'" in text


# ---------------------------------------------------------------------------
# TF_CONFIG
# ---------------------------------------------------------------------------


def test_empty_tf_config_is_local(monkeypatch):
    set_tf_config(monkeypatch)
    c = RunConfig()
    assert (c.task_type, c.task_id, c.is_chief, c.num_worker_replicas, c.master) == ("worker", 0, True, 1, "")


def test_no_cluster_local_session_masters(monkeypatch):
    set_tf_config(monkeypatch, session_master="grpc://m:1", eval_session_master="grpc://e:1")
    c = RunConfig()
    assert c.master == "grpc://m:1"
    assert c.evaluation_master == "grpc://e:1"
    assert c.is_chief


def test_no_cluster_task_type_must_be_worker(monkeypatch):
    set_tf_config(monkeypatch, task={"type": "chief", "index": 0})
    with pytest.raises(ValueError, match="task type must be WORKER"):
        RunConfig()


def test_no_cluster_task_index_must_be_zero(monkeypatch):
    set_tf_config(monkeypatch, task={"type": "worker", "index": 1})
    with pytest.raises(ValueError, match="task index must be 0"):
        RunConfig()


def test_worker_1(monkeypatch):
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": "worker", "index": 1})
    c = RunConfig()
    assert c.cluster_spec == tf.train.ClusterSpec(CLUSTER)
    assert c.task_type == "worker" and c.task_id == 1
    assert c.master == "grpc://host4:2222"
    assert c.evaluation_master == ""
    assert c.is_chief is False
    assert c.num_ps_replicas == 2
    assert c.num_worker_replicas == 4
    assert c.global_id_in_cluster == 2
    assert list(c.session_config.device_filters) == ["/job:ps", "/job:worker/task:1"]
    assert c.session_config.allow_soft_placement


def test_chief(monkeypatch):
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": "chief", "index": 0})
    c = RunConfig()
    assert c.master == "grpc://host0:2222"
    assert c.is_chief is True
    assert c.num_ps_replicas == 2
    assert c.num_worker_replicas == 4
    assert c.global_id_in_cluster == 0
    assert list(c.session_config.device_filters) == ["/job:ps", "/job:chief"]


def test_ps(monkeypatch):
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": "ps", "index": 1})
    c = RunConfig()
    assert c.master == "grpc://host2:2222"
    assert c.is_chief is False
    assert c.global_id_in_cluster == 5
    assert list(c.session_config.device_filters) == ["/job:ps", "/job:worker", "/job:chief", "/job:master"]


@pytest.mark.parametrize(
    "task_type, index, expected",
    [("chief", 0, 0), ("worker", 0, 1), ("worker", 1, 2), ("worker", 2, 3), ("ps", 0, 4), ("ps", 1, 5)],
)
def test_global_id_ordering(monkeypatch, task_type, index, expected):
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": task_type, "index": index})
    assert RunConfig().global_id_in_cluster == expected


def test_global_id_other_jobs_alphabetical(monkeypatch):
    cluster = dict(CLUSTER, aux=["host9:1", "host10:1"])
    set_tf_config(monkeypatch, cluster=cluster, task={"type": "worker", "index": 0})
    assert RunConfig().global_id_in_cluster == 3  # chief, aux 0, aux 1, then worker 0.


def test_user_session_config_not_overwritten(monkeypatch):
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": "worker", "index": 1})
    proto = tf.compat.v1.ConfigProto(log_device_placement=True)
    assert RunConfig(session_config=proto).session_config == proto


def test_evaluator_clears_cluster(monkeypatch):
    set_tf_config(
        monkeypatch,
        cluster=CLUSTER,
        task={"type": "evaluator", "index": 0},
        eval_session_master="grpc://eval:1",
    )
    c = RunConfig()
    assert c.task_type == "evaluator" and c.task_id == 0
    assert c.cluster_spec == tf.train.ClusterSpec({})
    assert c.master == ""
    assert c.evaluation_master == "grpc://eval:1"
    assert c.num_ps_replicas == 0
    assert c.num_worker_replicas == 0
    assert c.is_chief is False
    assert c.global_id_in_cluster is None
    assert c.session_config is None


def test_evaluator_without_eval_session_master(monkeypatch):
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": "evaluator", "index": 0})
    assert RunConfig().evaluation_master == ""


def test_non_evaluator_ignores_eval_session_master(monkeypatch):
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": "worker", "index": 0}, eval_session_master="x")
    assert RunConfig().evaluation_master == ""


def test_single_node_cluster_is_local_master(monkeypatch):
    set_tf_config(monkeypatch, cluster={"chief": ["host0:2222"]}, task={"type": "chief", "index": 0})
    c = RunConfig()
    assert c.master == ""
    assert c.is_chief
    assert c.num_worker_replicas == 1
    assert c.global_id_in_cluster == 0


def test_session_master_in_tf_config_wins(monkeypatch):
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": "worker", "index": 0}, session_master="grpc://x:9")
    assert RunConfig().master == "grpc://x:9"


def test_task_index_given_as_string(monkeypatch):
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": "worker", "index": "2"})
    c = RunConfig()
    assert c.task_id == 2 and c.master == "grpc://host5:2222"


def test_service_dict(monkeypatch):
    set_tf_config(monkeypatch, service={"name": "svc"})
    assert RunConfig().service == {"name": "svc"}


def test_service_must_be_dict(monkeypatch):
    set_tf_config(monkeypatch, service="svc")
    with pytest.raises(TypeError, match='"service" is set in TF_CONFIG, it must be a dict'):
        RunConfig()


def test_environment_read(monkeypatch):
    set_tf_config(monkeypatch, environment="google")
    assert RunConfig().environment == "google"


def test_legacy_master_plays_chief(monkeypatch):
    cluster = {"master": ["host0:2222"], "ps": ["host1:2222"], "worker": ["host3:2222", "host4:2222"]}
    set_tf_config(monkeypatch, cluster=cluster, task={"type": "master", "index": 0})
    c = RunConfig()
    assert c.is_chief is True
    assert c.master == "grpc://host0:2222"
    assert c.num_worker_replicas == 3
    assert c.num_ps_replicas == 1
    assert c.global_id_in_cluster == 0
    assert list(c.session_config.device_filters) == ["/job:ps", "/job:master"]


def test_legacy_master_worker(monkeypatch):
    cluster = {"master": ["host0:2222"], "ps": ["host1:2222"], "worker": ["host3:2222", "host4:2222"]}
    set_tf_config(monkeypatch, cluster=cluster, task={"type": "worker", "index": 1})
    c = RunConfig()
    assert c.is_chief is False
    assert c.global_id_in_cluster == 2
    assert c.master == "grpc://host4:2222"


def test_master_and_chief_together_rejected(monkeypatch):
    set_tf_config(monkeypatch, cluster=dict(CLUSTER, master=["h:1"]), task={"type": "chief", "index": 0})
    with pytest.raises(ValueError, match="If `master` node exists in `cluster`, job `chief` is not supported"):
        RunConfig()


def test_master_with_evaluator_rejected(monkeypatch):
    set_tf_config(monkeypatch, cluster={"master": ["h:1"], "worker": ["h:2"]}, task={"type": "evaluator", "index": 0})
    with pytest.raises(ValueError, match="task_type `evaluator` is not supported"):
        RunConfig()


def test_two_masters_rejected(monkeypatch):
    set_tf_config(monkeypatch, cluster={"master": ["h:1", "h:2"]}, task={"type": "master", "index": 0})
    with pytest.raises(ValueError, match='must have only one "master" node'):
        RunConfig()


@pytest.mark.parametrize(
    "tf_config, fragment",
    [
        ({"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 0}}, 'it must have one "chief" node'),
        ({"cluster": {"chief": ["h:1", "h:2"]}, "task": {"type": "chief", "index": 0}}, 'must have only one "chief" node'),
        ({"cluster": CLUSTER, "task": {"index": 0}}, "task type must be set"),
        ({"cluster": CLUSTER}, "task type must be set"),
        ({"cluster": CLUSTER, "task": {"type": "worker"}}, "task index must be set"),
        ({"cluster": CLUSTER, "task": {"type": "worker", "index": -1}}, "must be non-negative"),
        ({"cluster": CLUSTER, "task": {"type": "worker", "index": 3}}, "is not a valid task_id"),
        ({"cluster": CLUSTER, "task": {"type": "gpu", "index": 0}}, "is not a valid task_type"),
        ({"model_dir": ""}, "model_dir in TF_CONFIG should be non-empty"),
    ],
)
def test_tf_config_errors(monkeypatch, tf_config, fragment):
    set_tf_config(monkeypatch, **tf_config)
    with pytest.raises(ValueError, match=fragment):
        RunConfig()


def test_invalid_json_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        RunConfig()


def test_tf_config_model_dir_used(monkeypatch):
    set_tf_config(monkeypatch, model_dir="/from/env")
    assert RunConfig().model_dir == "/from/env"
    assert RunConfig(model_dir="/from/env").model_dir == "/from/env"


def test_tf_config_model_dir_mismatch(monkeypatch):
    set_tf_config(monkeypatch, model_dir="/from/env")
    with pytest.raises(ValueError, match="must have the same value as the model_dir in TF_CONFIG"):
        RunConfig(model_dir="/other")


def test_tf_config_read_at_construction(monkeypatch):
    c = RunConfig()
    set_tf_config(monkeypatch, cluster=CLUSTER, task={"type": "worker", "index": 1})
    assert c.task_id == 0 and c.is_chief  # Unchanged: TF_CONFIG was read earlier.
    assert RunConfig().task_id == 1


def test_task_type_constants():
    assert (TaskType.CHIEF, TaskType.WORKER, TaskType.PS, TaskType.EVALUATOR, TaskType.MASTER) == (
        "chief", "worker", "ps", "evaluator", "master")


# With a strategy, tf.estimator's distribute coordinator followed tf.distribute's rules.


def test_strategy_workers_only_cluster(monkeypatch):
    cluster = {"worker": ["h:1", "h:2"]}
    set_tf_config(monkeypatch, cluster=cluster, task={"type": "worker", "index": 0})
    s = tf.distribute.OneDeviceStrategy("/cpu:0")
    c = RunConfig(train_distribute=s)
    assert c.is_chief is True
    assert c.num_worker_replicas == 2
    assert c.global_id_in_cluster == 0
    assert c.master == "grpc://h:1"
    assert c.session_config is None  # No between-graph device filters.
    set_tf_config(monkeypatch, cluster=cluster, task={"type": "worker", "index": 1})
    c = RunConfig(train_distribute=s)
    assert c.is_chief is False and c.global_id_in_cluster == 1


def test_strategy_chief_cluster_and_evaluator_job(monkeypatch):
    cluster = {"chief": ["h:0"], "worker": ["h:1"], "evaluator": ["h:9"]}
    s = tf.distribute.OneDeviceStrategy("/cpu:0")
    set_tf_config(monkeypatch, cluster=cluster, task={"type": "worker", "index": 0})
    c = RunConfig(train_distribute=s)
    assert c.is_chief is False
    assert c.cluster_spec.jobs == ["chief", "worker"]
    assert c.num_worker_replicas == 2 and c.global_id_in_cluster == 1
    set_tf_config(monkeypatch, cluster=cluster, task={"type": "evaluator", "index": 0})
    c = RunConfig(eval_distribute=s)
    assert c.cluster_spec == tf.train.ClusterSpec({})
    assert c.num_worker_replicas == 0 and c.global_id_in_cluster is None


def test_strategy_cluster_still_validates_task(monkeypatch):
    s = tf.distribute.OneDeviceStrategy("/cpu:0")
    set_tf_config(monkeypatch, cluster={"worker": ["h:1"]}, task={"type": "worker", "index": 5})
    with pytest.raises(ValueError, match="is not a valid task_id"):
        RunConfig(train_distribute=s)


# ---------------------------------------------------------------------------
# resolve_model_dir
# ---------------------------------------------------------------------------


def test_resolve_none_config_gives_default_runconfig(tmp_path):
    c = resolve_model_dir(str(tmp_path), None)
    assert isinstance(c, RunConfig)
    assert c.model_dir == str(tmp_path)
    assert c.save_checkpoints_secs == 600


def test_resolve_rejects_non_runconfig():
    with pytest.raises(ValueError, match="config must be an instance of `RunConfig`"):
        resolve_model_dir("/m", {"model_dir": "/m"})


def test_resolve_constructor_only():
    config = RunConfig(tf_random_seed=3)
    c = resolve_model_dir("/ctor", config)
    assert c.model_dir == "/ctor" and c.tf_random_seed == 3
    assert config.model_dir is None  # Caller's config untouched.


def test_resolve_config_only():
    config = RunConfig(model_dir="/cfg")
    assert resolve_model_dir(None, config).model_dir == "/cfg"


def test_resolve_same_value_is_fine(tmp_path):
    config = RunConfig(model_dir=str(tmp_path))
    assert resolve_model_dir(tmp_path, config).model_dir == str(tmp_path)


def test_resolve_pathlike(tmp_path):
    c = resolve_model_dir(tmp_path / "m", None)
    assert c.model_dir == str(tmp_path / "m")


def test_resolve_different_values_error():
    with pytest.raises(ValueError, match="set both in constructor and `RunConfig`"):
        resolve_model_dir("/a", RunConfig(model_dir="/b"))


@pytest.mark.parametrize("model_dir", [None, ""])
def test_resolve_neither_uses_temp_dir(caplog, model_dir):
    with caplog.at_level(logging.WARNING, logger="bridge.run_config"):
        c = resolve_model_dir(model_dir, RunConfig())
    try:
        assert c.model_dir and os.path.isdir(c.model_dir)
        assert "Using temporary folder as model directory: " + c.model_dir in caplog.text
    finally:
        os.rmdir(c.model_dir)
