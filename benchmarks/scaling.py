"""Scaling of Estimator.train over tf.distribute workers on this machine: examples/s and ratio.

Runs the same training with the same *global* batch three ways, each in fresh processes:

* ``1 process``: no strategy (the baseline);
* ``1 worker``: a one-task TF_CONFIG cluster with ``MultiWorkerMirroredStrategy`` (the
  strategy's own overhead);
* ``2 workers``: chief + worker on 127.0.0.1 (examples/distributed/launch_local_cluster.py),
  each worker computing half of every global batch, gradients all-reduced every step.

Model and input: train_loop.py's (784-256-256-10 MLP, Adam(1e-3), synthetic in-memory data, tf.data
autotune off); checkpoints and summaries off.
Throughput is the steady rate between global steps ``--warmup`` and ``--steps`` (a hook records
the time of every step), global examples per second, measured on the chief. With
``--gpu`` each worker gets its own GPU (CUDA_VISIBLE_DEVICES=index) when there are enough.

    PYTHONPATH=. .venv/bin/python benchmarks/scaling.py [--batch 256 1024] [--steps 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "examples", "distributed"))
sys.path.insert(0, HERE)


# -- one task (a child process) -------------------------------------------------------------------
def run_task(batch: int, steps: int, warmup: int, strategy_kind: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy() if strategy_kind == "multi_worker" else None
    import numpy as np

    import bridge
    from train_loop import make_dataset, model_fn  # the single-process benchmark's model and pipeline

    rng = np.random.RandomState(0)
    x = rng.rand(16384, 784).astype(np.float32)
    y = rng.randint(0, 10, 16384).astype(np.int64)

    def input_fn():
        return make_dataset(x, y, batch)

    class Clock(bridge.SessionRunHook):
        def __init__(self):
            self.times = {}

        def begin(self):
            self._step = tf.compat.v1.train.get_global_step()

        def before_run(self, run_context):
            return bridge.SessionRunArgs(self._step)

        def after_run(self, run_context, run_values):
            self.times[int(run_values.results)] = time.perf_counter()

    clock = Clock()
    config = bridge.RunConfig(
        model_dir=tempfile.mkdtemp(prefix="scaling-"),
        train_distribute=strategy,
        save_checkpoints_steps=None,
        save_checkpoints_secs=None,
        save_summary_steps=0,
        log_step_count_steps=None,
        progress_bar=False,
    )
    bridge.Estimator(model_fn, config=config).train(input_fn, max_steps=steps, hooks=[clock])
    if config.is_chief:
        seconds = clock.times[steps] - clock.times[warmup]
        print(json.dumps({"examples_per_sec": batch * (steps - warmup) / seconds, "steps_per_sec": (steps - warmup) / seconds}))


# -- the driver -----------------------------------------------------------------------------------
def _last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def measure(config: str, batch: int, steps: int, warmup: int, gpu: bool) -> float:
    """Global examples/s of one fresh run of ``config``."""
    task = [sys.executable, os.path.abspath(__file__), "--task", "--batch", str(batch), "--steps", str(steps),
            "--warmup", str(warmup)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if config == "1 process":
        env.pop("TF_CONFIG", None)
        done = subprocess.run(task + ["--strategy", "none"], env=env, capture_output=True, text=True, timeout=600, check=True)
        return _last_json(done.stdout)["examples_per_sec"]
    from launch_local_cluster import launch

    workers = 1 if config == "1 worker" else 2
    log_dir = tempfile.mkdtemp(prefix="scaling-logs-")
    if gpu:
        env["BRIDGE_SCALING_GPU"] = "1"
    launch(task + ["--strategy", "multi_worker"], workers, False, log_dir, timeout=600, quiet=True, env=env)
    with open(os.path.join(log_dir, "chief0.log")) as log:
        return _last_json(log.read())["examples_per_sec"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 1024], help="global batch sizes")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.task:
        if os.environ.get("BRIDGE_SCALING_GPU") and os.environ.get("TF_CONFIG"):
            os.environ["CUDA_VISIBLE_DEVICES"] = str(json.loads(os.environ["TF_CONFIG"])["task"]["index"] +
                                                     (1 if json.loads(os.environ["TF_CONFIG"])["task"]["type"] == "worker" else 0))
        run_task(args.batch[0], args.steps, args.warmup, args.strategy)
        return 0

    configs = ["1 process", "1 worker", "2 workers"]
    results: dict[int, dict[str, list[float]]] = {}
    started = time.time()
    for batch in args.batch:
        results[batch] = {c: [] for c in configs}
        for round_ in range(args.rounds):
            order = configs[round_ % 3:] + configs[: round_ % 3]  # rotate the order every round
            for config in order:
                rate = measure(config, batch, args.steps, args.warmup, args.gpu)
                results[batch][config].append(rate)
                print(f"B={batch} round {round_ + 1}: {config}: {rate:,.0f} examples/s", flush=True)
    print(f"\n{os.cpu_count()} CPU cores; {args.steps - args.warmup} steady steps per run; medians of {args.rounds} rounds "
          f"({time.time() - started:.0f} s in all)\n")
    print("| global batch | 1 process ex/s | 1 worker (MWMS) ex/s | 2 workers ex/s | 2 workers / 1 process | 2 workers / 1 worker |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    summary = {}
    for batch, by_config in results.items():
        med = {c: statistics.median(v) for c, v in by_config.items()}
        summary[batch] = {"runs": by_config, "median": med}
        print(f"| {batch} | {med['1 process']:,.0f} | {med['1 worker']:,.0f} | {med['2 workers']:,.0f} | "
              f"{med['2 workers'] / med['1 process']:.2f} | {med['2 workers'] / med['1 worker']:.2f} |")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summary, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
