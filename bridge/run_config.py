"""`RunConfig`: where and how an Estimator runs, and who this process is in a cluster.

`RunConfig` keeps tf.estimator 2.15's constructor, defaults, validation errors and
TF_CONFIG rules, so code that built a `tf.estimator.RunConfig` builds a
`bridge.RunConfig` unchanged. Four fields are new: `iterations_per_loop` (steps run
inside one traced call, hooks once per call), `max_steps_per_call` (how many steps or
batches the runtime may group into one call where no hook can tell), `progress_bar` and
`check_finite_weights`.

Importing this module does not import TensorFlow; TensorFlow is imported only when a
value needs it (a strategy or `ConfigProto` to check, a cluster to parse, or the
`cluster_spec` property).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

if TYPE_CHECKING:  # imported lazily at run time
    import tensorflow as tf

from bridge._run_config_checks import check_strategy, to_path_str, validate_fields
from bridge._tf_config import (
    TaskType,
    distributed_session_config,
    model_dir_with_tf_config,
    parse_cluster,
    read_tf_config,
)

__all__ = ["RunConfig", "TaskType", "resolve_model_dir"]

_log = logging.getLogger(__name__)


class _UseDefault:
    """Marker for "argument not given" (distinct from an explicit None)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<default>"

    def __deepcopy__(self, memo):
        return self


_USE_DEFAULT: Any = _UseDefault()

_DEFAULT_SAVE_CHECKPOINTS_SECS = 600

_BOTH_SAVE_INTERVALS_ERROR = (
    "`save_checkpoints_steps` and `save_checkpoints_secs` cannot be both set."
)

# Constructor fields, in signature order; these (and only these) may be replaced.
_FIELDS = (
    "model_dir",
    "tf_random_seed",
    "save_summary_steps",
    "save_checkpoints_steps",
    "save_checkpoints_secs",
    "session_config",
    "keep_checkpoint_max",
    "keep_checkpoint_every_n_hours",
    "log_step_count_steps",
    "train_distribute",
    "device_fn",
    "protocol",
    "eval_distribute",
    "experimental_distribute",
    "experimental_max_worker_delay_secs",
    "session_creation_timeout_secs",
    "checkpoint_save_graph_def",
    "iterations_per_loop",
    "max_steps_per_call",
    "progress_bar",
    "check_finite_weights",
)

# State read from TF_CONFIG at construction; never replaceable.
_DERIVED = (
    "cluster_spec",
    "task_type",
    "task_id",
    "master",
    "evaluation_master",
    "is_chief",
    "num_ps_replicas",
    "num_worker_replicas",
    "global_id_in_cluster",
    "service",
)

# Values shared (not copied) by `replace()` and `copy.deepcopy`: strategies own
# devices and collective state, and a copy of one is a different strategy.
_SHARED_BY_REFERENCE = ("train_distribute", "eval_distribute", "experimental_distribute", "device_fn")


# ----------------------------------------------------------------------------
# RunConfig
# ----------------------------------------------------------------------------


class RunConfig:
    """Configuration of an Estimator run, with tf.estimator 2.15's fields and rules.

    Checkpoint intervals: by default checkpoints are saved every 600 seconds. Setting
    `save_checkpoints_steps` or `save_checkpoints_secs` explicitly leaves the other one
    `None`; both non-None is a ValueError; both explicitly None disables checkpointing.

    TF_CONFIG (JSON, read from the environment once, at construction) gives the
    cluster and this process's role: `cluster` (job name -> addresses), `task`
    (`type`, `index`), and optionally `model_dir`, `session_master`,
    `eval_session_master`, `service` (a dict) and `environment`.

    - No cluster: local run; the task must be `worker` 0.
    - A cluster needs exactly one `chief` (or, legacy, one `master` that plays the
      chief; `chief` and `master` together are refused) and a task type and index
      that exist in it. `num_worker_replicas` counts chief (or master) plus workers;
      `global_id_in_cluster` numbers the chief first, then the other non-ps jobs by
      name and index, ps last.
    - An `evaluator` task is outside the training cluster: `cluster_spec` is empty,
      `num_worker_replicas` 0, `global_id_in_cluster` None, `is_chief` False.
    - With `train_distribute`/`eval_distribute` set (as tf.estimator's distribute
      coordinator did) a cluster needs no chief: worker 0 is then the chief, and an
      `evaluator` job listed in the cluster is left out of the training cluster.

    Read-only: every field is a property; use `replace()` to derive a changed copy.
    """

    def __init__(
        self,
        model_dir: Union[str, os.PathLike, None] = None,
        tf_random_seed: Optional[int] = None,
        save_summary_steps: Optional[int] = 100,
        save_checkpoints_steps: Optional[int] = _USE_DEFAULT,
        save_checkpoints_secs: Optional[float] = _USE_DEFAULT,
        session_config: Any = None,
        keep_checkpoint_max: Optional[int] = 5,
        keep_checkpoint_every_n_hours: Optional[float] = 10000,
        log_step_count_steps: Optional[int] = 100,
        train_distribute: Any = None,
        device_fn: Optional[Callable] = None,
        protocol: Optional[str] = None,
        eval_distribute: Any = None,
        experimental_distribute: Any = None,
        experimental_max_worker_delay_secs: Optional[int] = None,
        session_creation_timeout_secs: Optional[float] = 7200,
        checkpoint_save_graph_def: bool = True,
        iterations_per_loop: int = 1,
        progress_bar: Optional[bool] = None,
        max_steps_per_call: int = 32,
        check_finite_weights: bool | int = True,
    ) -> None:
        """Validate the arguments and read TF_CONFIG.

        Args:
          model_dir: where checkpoints and summaries go (str or os.PathLike). None lets
            TF_CONFIG's `model_dir` or the Estimator choose; '' is an error.
          tf_random_seed: int graph-level seed, for reproducible runs.
          save_summary_steps: write summaries every this many steps.
          save_checkpoints_steps: checkpoint every this many steps.
          save_checkpoints_secs: checkpoint every this many seconds (600 by default).
          session_config: a `tf.compat.v1.ConfigProto` or None. Accepted so TF1-era
            code keeps working; the TF2 runtime does not use sessions, so it is unused.
          keep_checkpoint_max: newest checkpoints kept (0 or None keeps all).
          keep_checkpoint_every_n_hours: additionally keep one checkpoint per this
            many hours (10000 effectively disables it).
          log_step_count_steps: log loss and global_step/sec every this many steps.
          train_distribute: a `tf.distribute.Strategy` for training, or None.
          device_fn: callable `device_fn(op) -> device string`, or None.
          protocol: server protocol: None (grpc), 'grpc' or 'grpc+verbs'.
          eval_distribute: a `tf.distribute.Strategy` for evaluation, or None.
          experimental_distribute: object with optional `train_distribute` /
            `eval_distribute` attributes (tf.estimator's DistributeConfig), or None.
          experimental_max_worker_delay_secs: int cap on the staggered start delay of
            workers in `train_and_evaluate`.
          session_creation_timeout_secs: how long workers wait for the cluster.
          checkpoint_save_graph_def: whether to write the graph next to checkpoints.
          iterations_per_loop: training steps run inside one traced call (as in
            TPUEstimator); larger values amortise Python overhead per step. Hooks run
            once per call and see the last step's values.
          max_steps_per_call: where no hook can tell the difference (no hooks, or only
            bridge's step-counting ones: stop, NaN, logging, step counter, summaries,
            step-based checkpoints), train, evaluate and predict run up to this many steps
            or batches inside one traced call, ending each call on the next step a hook or
            checkpoint needs. Results, logs, summaries and checkpoints are those of one
            step per call; only time-based triggers (save_checkpoints_secs, every_n_secs)
            may fire up to one call late. 1 runs one step per call. Not used under a
            distribution strategy or with iterations_per_loop > 1, nor by a call known
            (from ``steps``/``max_steps`` or the dataset's cardinality) to run fewer than
            4 x max_steps_per_call training steps or 16 x max_steps_per_call evaluate or
            predict batches, which would not earn back the loop's longer trace.
          progress_bar: None shows a progress bar when stderr is a terminal;
            True/False force it on/off.
          check_finite_weights: training stops with `NanLossDuringTrainingError`, naming
            the variables, when a model variable (weights, optimizer slots, moving
            statistics) holds NaN/inf, even while the loss is still finite. True checks
            every 32 steps (or once per traced call of more steps), before every checkpoint
            save and when training ends: non-finite values never reach a checkpoint, and the
            error names the window they appeared in (cost: about 1 % of a small model's
            step). An integer N checks every N steps instead (1: after every step, naming
            the exact step; it reads every variable every step and ends grouped calls after
            each step: 30-80 % more CPU per step on a small MLP). False skips it (saves
            still refuse non-finite values).

        Raises:
          ValueError: an invalid value or TF_CONFIG (messages as in tf.estimator).
          TypeError: a value of the wrong type.
        """
        steps, secs = save_checkpoints_steps, save_checkpoints_secs
        if steps is _USE_DEFAULT and secs is _USE_DEFAULT:
            steps, secs = None, _DEFAULT_SAVE_CHECKPOINTS_SECS
        elif secs is _USE_DEFAULT:
            secs = None
        elif steps is _USE_DEFAULT:
            steps = None
        elif steps is not None and secs is not None:
            raise ValueError(_BOTH_SAVE_INTERVALS_ERROR)

        check_strategy("train_distribute", train_distribute)
        check_strategy("eval_distribute", eval_distribute)
        train_distribute, eval_distribute = _merge_experimental_distribute(
            experimental_distribute, train_distribute, eval_distribute
        )

        tf_config = read_tf_config()
        if tf_config:
            _log.info("TF_CONFIG environment variable: %s", tf_config)
        model_dir = model_dir_with_tf_config(to_path_str(model_dir), tf_config)

        values = dict(
            model_dir=model_dir,
            tf_random_seed=tf_random_seed,
            save_summary_steps=save_summary_steps,
            save_checkpoints_steps=steps,
            save_checkpoints_secs=secs,
            session_config=session_config,
            keep_checkpoint_max=keep_checkpoint_max,
            keep_checkpoint_every_n_hours=keep_checkpoint_every_n_hours,
            log_step_count_steps=log_step_count_steps,
            train_distribute=train_distribute,
            device_fn=device_fn,
            protocol=protocol,
            eval_distribute=eval_distribute,
            experimental_distribute=experimental_distribute,
            experimental_max_worker_delay_secs=experimental_max_worker_delay_secs,
            session_creation_timeout_secs=session_creation_timeout_secs,
            checkpoint_save_graph_def=checkpoint_save_graph_def,
            iterations_per_loop=iterations_per_loop,
            max_steps_per_call=max_steps_per_call,
            progress_bar=progress_bar,
            check_finite_weights=check_finite_weights,
        )
        validate_fields(values)

        strategy_mode = train_distribute is not None or eval_distribute is not None
        state = parse_cluster(tf_config, strategy_mode)
        if values["session_config"] is None and state.device_filters:
            values["session_config"] = distributed_session_config(state.device_filters)

        self._values = values
        self._cluster = state.cluster
        self._task_type = state.task_type
        self._task_id = state.task_id
        self._master = state.master
        self._evaluation_master = state.evaluation_master
        self._is_chief = state.is_chief
        self._num_ps_replicas = state.num_ps_replicas
        self._num_worker_replicas = state.num_worker_replicas
        self._global_id_in_cluster = state.global_id_in_cluster
        self._service = state.service
        self._environment = tf_config.get("environment")

    # -- constructor fields -------------------------------------------------

    @property
    def model_dir(self) -> Optional[str]:
        """Directory for checkpoints and summaries (None until an Estimator picks one)."""
        return self._values["model_dir"]

    @property
    def tf_random_seed(self) -> Optional[int]:
        """Graph-level random seed, or None for nondeterministic initialisation."""
        return self._values["tf_random_seed"]

    @property
    def save_summary_steps(self) -> Optional[int]:
        """Summaries are written every this many global steps."""
        return self._values["save_summary_steps"]

    @property
    def save_checkpoints_steps(self) -> Optional[int]:
        """Checkpoint every this many steps (None: by seconds, or disabled)."""
        return self._values["save_checkpoints_steps"]

    @property
    def save_checkpoints_secs(self) -> Optional[float]:
        """Checkpoint every this many seconds (None: by steps, or disabled)."""
        return self._values["save_checkpoints_secs"]

    @property
    def session_config(self) -> Any:
        """The `tf.compat.v1.ConfigProto` given, or the between-graph default tf.estimator
        built for a TF_CONFIG cluster task (device filters), or None. Unused on TF2."""
        return self._values["session_config"]

    @property
    def keep_checkpoint_max(self) -> Optional[int]:
        """How many recent checkpoints are kept (0 or None: all)."""
        return self._values["keep_checkpoint_max"]

    @property
    def keep_checkpoint_every_n_hours(self) -> Optional[float]:
        """One checkpoint per this many hours is kept beyond keep_checkpoint_max."""
        return self._values["keep_checkpoint_every_n_hours"]

    @property
    def log_step_count_steps(self) -> Optional[int]:
        """Loss and global_step/sec are logged every this many steps (None: never)."""
        return self._values["log_step_count_steps"]

    @property
    def train_distribute(self) -> Any:
        """`tf.distribute.Strategy` used for training, or None."""
        return self._values["train_distribute"]

    @property
    def device_fn(self) -> Optional[Callable]:
        """Callable `op -> device string` overriding default placement, or None."""
        return self._values["device_fn"]

    @property
    def protocol(self) -> Optional[str]:
        """Server protocol ('grpc', 'grpc+verbs'), None meaning grpc."""
        return self._values["protocol"]

    @property
    def eval_distribute(self) -> Any:
        """`tf.distribute.Strategy` used for evaluation, or None."""
        return self._values["eval_distribute"]

    @property
    def experimental_distribute(self) -> Any:
        """The DistributeConfig-like object given, or None (kept for compatibility)."""
        return self._values["experimental_distribute"]

    @property
    def experimental_max_worker_delay_secs(self) -> Optional[int]:
        """Upper bound of a worker's staggered start delay (None: 60 s)."""
        return self._values["experimental_max_worker_delay_secs"]

    @property
    def session_creation_timeout_secs(self) -> Optional[float]:
        """How long a worker waits for the cluster to become ready."""
        return self._values["session_creation_timeout_secs"]

    @property
    def checkpoint_save_graph_def(self) -> bool:
        """Whether the graph definition is written along with checkpoints."""
        return self._values["checkpoint_save_graph_def"]

    @property
    def iterations_per_loop(self) -> int:
        """Training steps executed inside one traced call (1 = one step per call)."""
        return self._values["iterations_per_loop"]

    @property
    def max_steps_per_call(self) -> int:
        """The most steps or batches grouped into one traced call where no hook can tell."""
        return self._values["max_steps_per_call"]

    @property
    def check_finite_weights(self) -> bool | int:
        """Whether (True: every 32 steps; N: every N steps) training checks its variables for NaN/inf."""
        return self._values["check_finite_weights"]

    @property
    def progress_bar(self) -> Optional[bool]:
        """Progress bar setting: None (auto, on for a terminal), True or False."""
        return self._values["progress_bar"]

    @property
    def progress_bar_enabled(self) -> bool:
        """Whether a progress bar should be shown now (resolves progress_bar=None)."""
        if self._values["progress_bar"] is not None:
            return self._values["progress_bar"]
        try:
            return bool(sys.stderr is not None and sys.stderr.isatty())
        except (AttributeError, ValueError):
            return False

    # -- TF_CONFIG-derived ----------------------------------------------------

    @property
    def cluster_spec(self) -> tf.train.ClusterSpec:
        """`tf.train.ClusterSpec` of the training cluster (empty when local or evaluator)."""
        if self._cluster is None:
            import tensorflow as tf

            self._cluster = tf.train.ClusterSpec({})
        return self._cluster

    @property
    def task_type(self) -> Optional[str]:
        """This process's job name: 'worker' locally, else TF_CONFIG's task type."""
        return self._task_type

    @property
    def task_id(self) -> int:
        """This process's index within its job."""
        return self._task_id

    @property
    def master(self) -> str:
        """Session target: '' for local/single-node runs, else 'grpc://<host:port>'."""
        return self._master

    @property
    def evaluation_master(self) -> str:
        """Session target for evaluation (TF_CONFIG's eval_session_master, or '')."""
        return self._evaluation_master

    @property
    def is_chief(self) -> bool:
        """Whether this process writes checkpoints and summaries for the cluster."""
        return self._is_chief

    @property
    def num_ps_replicas(self) -> int:
        """Number of parameter servers in the cluster."""
        return self._num_ps_replicas

    @property
    def num_worker_replicas(self) -> int:
        """Number of training processes: chief (or master) plus workers; 1 locally."""
        return self._num_worker_replicas

    @property
    def global_id_in_cluster(self) -> Optional[int]:
        """Unique id of this task in the cluster: chief 0, then other non-ps jobs by
        name and index, ps last. None for an evaluator."""
        return self._global_id_in_cluster

    @property
    def service(self) -> Optional[dict]:
        """TF_CONFIG's platform-defined `service` dict, or None."""
        return self._service

    @property
    def environment(self) -> Optional[str]:
        """TF_CONFIG's `environment` ('google' means servers are started externally)."""
        return self._environment

    # -- copying ---------------------------------------------------------------

    def replace(self, **kwargs: Any) -> "RunConfig":
        """Return a validated copy with the given constructor fields replaced.

        Only constructor fields may be replaced (TF_CONFIG-derived ones may not).
        Replacing one checkpoint interval with a non-None value clears the other;
        replacing both with non-None values is an error. The original is unchanged.
        Strategies and device_fn are shared with the original, everything else is
        deep-copied.
        """
        for key in kwargs:
            if key not in _FIELDS:
                raise ValueError(
                    f"Replacing {key} is not supported. Allowed properties are {list(_FIELDS)}."
                )
        new = copy.deepcopy(self)
        values = new._values
        for key, value in kwargs.items():
            values[key] = to_path_str(value) if key == "model_dir" else value

        steps_given = "save_checkpoints_steps" in kwargs
        secs_given = "save_checkpoints_secs" in kwargs
        if steps_given and secs_given:
            if values["save_checkpoints_steps"] is not None and values["save_checkpoints_secs"] is not None:
                raise ValueError(_BOTH_SAVE_INTERVALS_ERROR)
        elif steps_given and values["save_checkpoints_steps"] is not None:
            values["save_checkpoints_secs"] = None
        elif secs_given and values["save_checkpoints_secs"] is not None:
            values["save_checkpoints_steps"] = None

        validate_fields(values)
        return new

    def __deepcopy__(self, memo: dict) -> "RunConfig":
        # The copy keeps the class: a RunConfig subclass's overridden properties (model_dir,
        # task_type, ...) hold in every copy the Estimator hands out, as in tf.estimator.
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            if name == "_values":
                value = {
                    k: (v if k in _SHARED_BY_REFERENCE else copy.deepcopy(v, memo))
                    for k, v in value.items()
                }
            else:
                value = copy.deepcopy(value, memo)
            new.__dict__[name] = value
        return new

    # -- comparison and display ------------------------------------------------

    def _key(self) -> tuple:
        fields = tuple(self._values[name] for name in _FIELDS)
        cluster = self._cluster.as_dict() if self._cluster is not None else {}
        derived = tuple(getattr(self, name) for name in _DERIVED if name != "cluster_spec")
        return fields + (cluster,) + derived + (self._environment,)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunConfig):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # Holds unhashable values.

    def __repr__(self) -> str:
        parts = [f"{name}={self._values[name]!r}" for name in _FIELDS]
        if self._cluster is not None and self._cluster.as_dict():
            parts.append(f"cluster={self._cluster.as_dict()!r}")
        parts += [
            f"task_type={self._task_type!r}",
            f"task_id={self._task_id!r}",
            f"is_chief={self._is_chief!r}",
            f"num_worker_replicas={self._num_worker_replicas!r}",
            f"num_ps_replicas={self._num_ps_replicas!r}",
        ]
        if self._master:
            parts.append(f"master={self._master!r}")
        return "RunConfig(" + ", ".join(parts) + ")"


def _merge_experimental_distribute(experimental_distribute: Any, train: Any, evaluate: Any):
    """Take train/eval strategies from a DistributeConfig-like object, as tf.estimator did."""
    if experimental_distribute is None:
        return train, evaluate
    if getattr(experimental_distribute, "remote_cluster", None):
        raise ValueError(
            "experimental_distribute.remote_cluster (standalone-client mode) is not supported; "
            "set TF_CONFIG in each process instead."
        )
    from_config = getattr(experimental_distribute, "train_distribute", None)
    if from_config is not None:
        if train is not None:
            raise ValueError(
                "Either `train_distribute` or `experimental_distribute.train_distribute` can be set."
            )
        check_strategy("experimental_distribute.train_distribute", from_config)
        train = from_config
    from_config = getattr(experimental_distribute, "eval_distribute", None)
    if from_config is not None:
        if evaluate is not None:
            raise ValueError(
                "Either `eval_distribute` or `experimental_distribute.eval_distribute` can be set."
            )
        check_strategy("experimental_distribute.eval_distribute", from_config)
        evaluate = from_config
    return train, evaluate


def resolve_model_dir(
    model_dir: Union[str, os.PathLike, None], config: Optional[RunConfig]
) -> RunConfig:
    """Return `config` with its model_dir settled, as Estimator's constructor does.

    - `config` None means `RunConfig()`; anything else but a RunConfig is an error.
    - `model_dir` (str or os.PathLike) and `config.model_dir` may both be given only
      if equal. One of them given: that one is used. Neither (or `model_dir=''` with
      no config model_dir): a fresh `tempfile.mkdtemp()` directory, with a warning.

    Raises:
      ValueError: "config must be an instance of `RunConfig`", or the two model_dirs
        differ ("set both in constructor and `RunConfig`").
    """
    if config is None:
        config = RunConfig()
        _log.info("Using default config.")
    if not isinstance(config, RunConfig):
        raise ValueError(f"config must be an instance of `RunConfig`, but provided {config!r}.")

    model_dir = to_path_str(model_dir)
    if model_dir is not None and config.model_dir is not None and model_dir != config.model_dir:
        raise ValueError(
            "`model_dir` are set both in constructor and `RunConfig`, but with different "
            f"values. In constructor: '{model_dir}', in `RunConfig`: '{config.model_dir}' "
        )
    if model_dir:
        if model_dir != config.model_dir:
            config = config.replace(model_dir=model_dir)
    elif config.model_dir is None:
        model_dir = tempfile.mkdtemp()
        _log.warning("Using temporary folder as model directory: %s", model_dir)
        config = config.replace(model_dir=model_dir)
    return config
