"""Cost of RunConfig(check_finite_weights=True): the all-finite check of the model's variables.

Same MLP, data and steady-state method as benchmarks/train_loop.py (784-256-256-10, Adam,
(S_long - S_short) / (t_long - t_short)), with the check on and off, alternating. Reports the
process CPU time per step (all threads) as well as wall time: on a shared machine the CPU
time is the steadier figure.

    .venv/bin/python benchmarks/finite_weights.py [--batch 32 128] [--rounds 3] [--every N]

``--every N`` measures ``check_finite_weights=N`` (a check every N steps; 1: every step)
instead of the default (True: every 32 steps).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bridge  # noqa: E402
from benchmarks.train_loop import ROWS, make_dataset, model_fn  # noqa: E402
from bridge._train_loop import FiniteWeightsCheck  # noqa: E402


def steps_per_second(x, y, batch, check, grouped, short=32, long=640):
    config = bridge.RunConfig(
        max_steps_per_call=32 if grouped else 1, save_checkpoints_steps=None, save_checkpoints_secs=None,
        log_step_count_steps=None, save_summary_steps=0, progress_bar=False, check_finite_weights=check,
    )
    estimator = bridge.Estimator(model_fn, model_dir=tempfile.mkdtemp(), config=config)
    input_fn = lambda: make_dataset(x, y, batch)  # noqa: E731
    estimator.train(input_fn, steps=short)  # warm-up
    wall, cpu = [], []
    for steps in (short, long):
        start, start_cpu = time.perf_counter(), time.process_time()
        estimator.train(input_fn, steps=steps)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return (long - short) / (wall[1] - wall[0]), 1e3 * (cpu[1] - cpu[0]) / (long - short)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=int, default=None, help="check_finite_weights=N (default: True)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((ROWS, 784), dtype=np.float32)
    y = rng.integers(0, 10, ROWS).astype(np.int32)
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, rounds={args.rounds}, "
          f"on = check_finite_weights={args.every or True}, load average {os.getloadavg()[0]:.1f}")
    print("| batch | grouped | steps/s on | steps/s off | CPU ms/step on | CPU ms/step off | CPU on/off |")
    print("| ---: | :---: | ---: | ---: | ---: | ---: | ---: |")
    for batch in args.batch:
        for grouped in (False, True):
            on, off = [], []
            for _ in range(args.rounds):
                on.append(steps_per_second(x, y, batch, args.every or True, grouped))
                off.append(steps_per_second(x, y, batch, False, grouped))
            rate_on, cpu_on = (statistics.median(v) for v in zip(*on))
            rate_off, cpu_off = (statistics.median(v) for v in zip(*off))
            print(f"| {batch} | {'yes' if grouped else 'no'} | {rate_on:.0f} | {rate_off:.0f} | {cpu_on:.2f} | "
                  f"{cpu_off:.2f} | {cpu_on / cpu_off:.3f} |", flush=True)

    print(f"One check alone: {check_cost_us(x, y):.0f} us of CPU (every {FiniteWeightsCheck.EVERY_STEPS} steps by "
          "default; every step with --every 1)")


def check_cost_us(x, y, calls=2000, rounds=5):
    """CPU time of one FiniteWeightsCheck over the benchmark model's variables (weights and Adam slots)."""
    model_dir = tempfile.mkdtemp()
    config = bridge.RunConfig(log_step_count_steps=None, save_summary_steps=0, progress_bar=False)
    bridge.Estimator(model_fn, model_dir=model_dir, config=config).train(lambda: make_dataset(x, y, 32), steps=1)
    reader = tf.train.load_checkpoint(model_dir)
    variables = {name: tf.Variable(reader.get_tensor(name)) for name, _ in tf.train.list_variables(model_dir)}
    assert sum(v.shape.num_elements() for v in variables.values() if v.dtype.is_floating) > 3 * 269_000
    check = FiniteWeightsCheck(types.SimpleNamespace(model_variables=variables), start_step=0)
    step = 0
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            step += 1
            check.check(step)
        best = min(best, (time.process_time() - start) / calls)
    return best * 1e6


if __name__ == "__main__":
    main()
