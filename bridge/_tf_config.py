"""TF_CONFIG: who this process is in a cluster (tf.estimator 2.15's parsing rules).

``RunConfig`` reads the ``TF_CONFIG`` environment variable through this module: the cluster,
this task's type and id, whether it is the chief, its master and evaluation master, and the
session config a between-graph task defaulted to. Importing it does not import TensorFlow.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Mapping, Optional

_log = logging.getLogger("bridge.run_config")


class TaskType:
    """Task type names used in TF_CONFIG's `cluster` and `task.type`."""

    MASTER = "master"
    PS = "ps"
    WORKER = "worker"
    CHIEF = "chief"
    EVALUATOR = "evaluator"




def read_tf_config() -> dict:
    """The TF_CONFIG environment variable as a dict ({} when unset or blank)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}. TF_CONFIG={raw!r}") from e
    if not isinstance(parsed, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object; got {raw!r}.")
    return parsed


def model_dir_with_tf_config(model_dir: Optional[str], tf_config: Mapping) -> Optional[str]:
    """Reconcile the constructor's model_dir with TF_CONFIG's `model_dir`."""
    if model_dir == "":
        raise ValueError("model_dir should be non-empty.")
    from_env = tf_config.get("model_dir")
    if from_env == "":
        raise ValueError("model_dir in TF_CONFIG should be non-empty.")
    if from_env:
        if model_dir and model_dir != from_env:
            raise ValueError(
                "`model_dir` provided in RunConfig construct, if set, must have the same "
                f"value as the model_dir in TF_CONFIG. model_dir: {model_dir}\n"
                f'TF_CONFIG["model_dir"]: {from_env}.'
            )
        _log.info("Using model_dir in TF_CONFIG: %s", from_env)
    return model_dir or from_env


class ClusterState:
    """What TF_CONFIG says about this process. Plain values; `cluster` is a
    tf.train.ClusterSpec when a cluster is set, else None (meaning empty)."""

    def __init__(self) -> None:
        self.cluster = None
        self.task_type: Optional[str] = TaskType.WORKER
        self.task_id: int = 0
        self.master = ""
        self.evaluation_master = ""
        self.is_chief = True
        self.num_ps_replicas = 0
        self.num_worker_replicas = 1
        self.global_id_in_cluster: Optional[int] = 0
        self.service: Optional[dict] = None
        self.device_filters: Optional[list] = None


def _task_type_and_id(cluster, task: Mapping, chief_type: str, require_chief: bool):
    """Validate `task` against `cluster` and return (type, index).

    `chief_type` is 'chief' (or 'master' for legacy clusters). With `require_chief`
    the cluster must hold exactly one such node; otherwise at most one.
    """
    jobs = cluster.jobs
    if require_chief and chief_type not in jobs:
        raise ValueError(f'If "cluster" is set in TF_CONFIG, it must have one "{chief_type}" node.')
    if chief_type in jobs and len(cluster.job_tasks(chief_type)) > 1:
        raise ValueError(f'The "cluster" in TF_CONFIG must have only one "{chief_type}" node.')

    task_type = task.get("type")
    task_id = task.get("index")
    if not task_type:
        raise ValueError('If "cluster" is set in TF_CONFIG, task type must be set.')
    if task_id is None:
        raise ValueError('If "cluster" is set in TF_CONFIG, task index must be set.')
    task_id = int(task_id)
    if task_id < 0:
        raise ValueError("Task index must be non-negative number.")
    if task_type == TaskType.EVALUATOR:  # Not part of the training cluster.
        return task_type, task_id
    if task_type not in jobs:
        raise ValueError(
            f"{task_type} is not a valid task_type in the cluster_spec:\n{cluster}\n\n"
            "Note that these values may be coming from the TF_CONFIG environment variable."
        )
    if task_id >= len(cluster.job_tasks(task_type)):
        raise ValueError(
            f"{task_id} is not a valid task_id for task_type {task_type} in the "
            f"cluster_spec:\n{cluster}\n\n"
            "Note that these values may be coming from the TF_CONFIG environment variable."
        )
    return task_type, task_id


def _global_id(cluster, task_type: str, task_id: int, chief_type: str) -> int:
    """Chief first, then the other non-ps jobs sorted by name, ps last."""
    middle = sorted(j for j in cluster.jobs if j not in (chief_type, TaskType.PS))
    order = ([chief_type] if chief_type in cluster.jobs else []) + middle
    if TaskType.PS in cluster.jobs:
        order.append(TaskType.PS)
    offset = 0
    for job in order:
        if job == task_type:
            return offset + task_id
        offset += len(cluster.job_tasks(job))
    raise RuntimeError(f"Internal error: task type {task_type!r} is not in {cluster}.")


def _session_master(cluster, task_type: str, task_id: int, tf_config: Mapping) -> str:
    """TF_CONFIG's session_master; '' for a one-node cluster; else the task's grpc address."""
    if "session_master" in tf_config:
        return tf_config["session_master"]
    jobs = cluster.jobs
    if len(jobs) == 1 and len(cluster.job_tasks(jobs[0])) == 1:
        return ""
    return "grpc://" + cluster.job_tasks(task_type)[task_id]


def _count(cluster, *jobs: str) -> int:
    as_dict = cluster.as_dict()
    return sum(len(as_dict.get(j, [])) for j in jobs)


def _device_filters(task_type: str, task_id: int) -> Optional[list]:
    """Between-graph device filters tf.estimator put in the default session config."""
    if task_type == TaskType.MASTER:
        return ["/job:ps", "/job:master"]
    if task_type == TaskType.CHIEF:
        return ["/job:ps", "/job:chief"]
    if task_type == TaskType.WORKER:
        return ["/job:ps", f"/job:worker/task:{task_id}"]
    if task_type == TaskType.PS:
        return ["/job:ps", "/job:worker", "/job:chief", "/job:master"]
    return None


def parse_cluster(tf_config: Mapping, strategy_mode: bool) -> ClusterState:
    """Apply tf.estimator's TF_CONFIG rules (see RunConfig's docstring)."""
    state = ClusterState()
    service = tf_config.get("service")
    if service is not None and not isinstance(service, dict):
        raise TypeError(
            f'If "service" is set in TF_CONFIG, it must be a dict. Given {type(service)}'
        )
    state.service = service
    task = tf_config.get("task") or {}
    cluster_dict = tf_config.get("cluster") or {}

    if not cluster_dict:  # Local mode.
        state.task_type = task.get("type", TaskType.WORKER)
        state.task_id = int(task.get("index", 0))
        if state.task_type != TaskType.WORKER:
            raise ValueError('If "cluster" is not set in TF_CONFIG, task type must be WORKER.')
        if state.task_id != 0:
            raise ValueError('If "cluster" is not set in TF_CONFIG, task index must be 0.')
        state.master = tf_config.get("session_master", "")
        state.evaluation_master = tf_config.get("eval_session_master", "")
        return state

    import tensorflow as tf  # Lazy: a cluster is being described.

    cluster = tf.train.ClusterSpec(cluster_dict)
    legacy = TaskType.MASTER in cluster.jobs
    if legacy and TaskType.CHIEF in cluster.jobs:
        raise ValueError("If `master` node exists in `cluster`, job `chief` is not supported.")
    chief_type = TaskType.MASTER if legacy else TaskType.CHIEF
    # With a strategy (and no legacy master), tf.estimator handed the cluster to the
    # distribute coordinator, which follows tf.distribute's rules: a chief is optional
    # (worker 0 leads when there is none) and an `evaluator` job is not part of the
    # training cluster.
    relaxed = strategy_mode and not legacy

    task_type, task_id = _task_type_and_id(cluster, task, chief_type, require_chief=not relaxed)
    state.task_type, state.task_id = task_type, task_id
    state.evaluation_master = (
        tf_config.get("eval_session_master", "") if task_type == TaskType.EVALUATOR else ""
    )

    if task_type == TaskType.EVALUATOR:
        if legacy:
            raise ValueError(
                "If `master` node exists in `cluster`, task_type `evaluator` is not supported."
            )
        state.cluster = tf.train.ClusterSpec({})
        state.master = ""
        state.num_ps_replicas = 0
        state.num_worker_replicas = 0
        state.global_id_in_cluster = None
        state.is_chief = False
        return state

    if relaxed and TaskType.EVALUATOR in cluster.jobs:
        trimmed = {j: t for j, t in cluster.as_dict().items() if j != TaskType.EVALUATOR}
        cluster = tf.train.ClusterSpec(trimmed)
    state.cluster = cluster
    state.master = _session_master(cluster, task_type, task_id, tf_config)
    state.num_ps_replicas = _count(cluster, TaskType.PS)
    state.num_worker_replicas = _count(cluster, TaskType.WORKER, chief_type)
    state.global_id_in_cluster = _global_id(cluster, task_type, task_id, chief_type)
    if relaxed and chief_type not in cluster.jobs:
        state.is_chief = task_type == TaskType.WORKER and task_id == 0
    else:
        state.is_chief = task_type == chief_type
    if not relaxed:
        state.device_filters = _device_filters(task_type, task_id)
    return state


def distributed_session_config(device_filters: list):
    """The ConfigProto tf.estimator defaulted to for a between-graph cluster task."""
    import tensorflow as tf

    rewriter = tf.compat.v1.ConfigProto().graph_options.rewrite_options
    config = tf.compat.v1.ConfigProto(allow_soft_placement=True, device_filters=device_filters)
    config.graph_options.rewrite_options.meta_optimizer_iterations = rewriter.ONE
    return config
