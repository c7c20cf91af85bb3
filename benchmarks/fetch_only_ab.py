"""Evaluate and predict of two bridge source trees, side by side (issue 18: no speed lost).

    PYTHONPATH=. .venv/bin/python benchmarks/fetch_only_ab.py --trees /path/to/before . --rounds 5

Each round runs one fresh process per tree (order alternating), each measuring, on the benchmark
MLP of estimator_vs_legacy.py (batch 128, 2 threads): evaluate and predict with one batch per call
(max_steps_per_call=1) and grouped (the default for long calls), each as a short and a long call;
steady rate = extra batches / extra seconds, fixed cost = short call time - short batches / rate,
and the same in process CPU time (all threads), which a loaded shared machine disturbs far less
than wall time: CPU ms per batch and fixed CPU ms per call.
Also reports how long the pruning pass took
per trace (``bridge._prune.run_only_needed``) where the tree has it. Prints medians over rounds.
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
CALLS = {"one": (8, 320), "grouped": (512, 1024)}  # (short, long) batches


def worker() -> dict:
    sys.path.insert(0, HERE)
    import estimator_vs_legacy as bench

    tf, _, _ = bench._tf_setup(2)
    import bridge

    prune_s: list[float] = []
    try:
        import bridge._prune as prune
        import bridge._step as step

        original = prune.run_only_needed

        def timed_prune(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                prune_s.append(time.perf_counter() - start)

        step.run_only_needed = timed_prune
    except ImportError:
        pass

    x, y = bench.make_data(bench.ROWS)
    model_fn = bench.bridge_model_fn()

    model_dir = tempfile.mkdtemp()
    config = dict(progress_bar=False, save_checkpoints_steps=None, save_checkpoints_secs=None, log_step_count_steps=None, save_summary_steps=0)
    bridge.Estimator(model_fn, model_dir=model_dir, config=bridge.RunConfig(**config)).train(
        lambda: bench._dataset(tf, x, y, 128), steps=2
    )
    results = {}
    for kind, (short, long) in CALLS.items():
        extra = {"max_steps_per_call": 1} if kind == "one" else {}
        est = bridge.Estimator(model_fn, model_dir=model_dir, config=bridge.RunConfig(**config, **extra))
        evaluate = lambda n: est.evaluate(lambda: bench._dataset(tf, x, y, 128, n))  # noqa: E731
        predict = lambda n: list(est.predict(lambda: bench._dataset(tf, x, None, 128, n), yield_single_examples=False))  # noqa: E731
        for name, call in (("evaluate", evaluate), ("predict", predict)):
            call(short)  # warm
            times, cpu = {}, {}
            for n in (short, long, short, long):
                start, start_cpu = time.perf_counter(), time.process_time()
                call(n)
                times.setdefault(n, []).append(time.perf_counter() - start)
                cpu.setdefault(n, []).append(time.process_time() - start_cpu)
            t_short, t_long = min(times[short]), min(times[long])
            rate = (long - short) / (t_long - t_short)
            c_short, c_long = min(cpu[short]), min(cpu[long])
            cpu_per_batch = (c_long - c_short) / (long - short)
            results[f"{name}_{kind}"] = {
                "rate": rate, "fixed": t_short - short / rate,
                "cpu_ms": 1000 * cpu_per_batch, "fixed_cpu_ms": 1000 * (c_short - short * cpu_per_batch),
            }
    results["prune_ms"] = 1000 * statistics.median(prune_s) if prune_s else None
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trees", nargs="+", default=["."])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker()), flush=True)
        return
    runs: dict[str, list[dict]] = {tree: [] for tree in args.trees}
    for round_ in range(args.rounds):
        order = args.trees if round_ % 2 == 0 else list(reversed(args.trees))
        for tree in order:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
            command = [sys.executable, os.path.abspath(__file__), "--worker"]
            load = os.getloadavg()[0]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                print(f"{tree}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            result = json.loads(line[len("RESULT "):])
            result["load"] = load
            runs[tree].append(result)
            print(f"round {round_ + 1} {tree}: load {load:.1f} " + ", ".join(
                f"{k} {v['rate']:.0f}/s {v['fixed'] * 1000:.0f}ms cpu {v['cpu_ms']:.2f}ms/b {v['fixed_cpu_ms']:.0f}ms"
                for k, v in result.items() if isinstance(v, dict)
            ), flush=True)
    print("\nmedians (batches/s, fixed ms per call; CPU ms per batch, fixed CPU ms per call):")
    keys = [f"{name}_{kind}" for kind in CALLS for name in ("evaluate", "predict")]
    for tree, results in runs.items():
        if not results:
            continue
        cells = []
        for key in keys:
            rate = statistics.median(r[key]["rate"] for r in results)
            fixed = statistics.median(r[key]["fixed"] for r in results)
            cpu = statistics.median(r[key]["cpu_ms"] for r in results)
            fixed_cpu = statistics.median(r[key]["fixed_cpu_ms"] for r in results)
            cells.append(f"{key}: {rate:.0f}/s, {fixed * 1000:.0f} ms; CPU {cpu:.2f} ms/batch, {fixed_cpu:.0f} ms")
        prune = [r["prune_ms"] for r in results if r.get("prune_ms") is not None]
        loads = [r["load"] for r in results]
        print(f"{tree} ({len(results)} rounds, load {min(loads):.1f}-{max(loads):.1f}"
              + (f", pruning {statistics.median(prune):.1f} ms/trace" if prune else "") + "): " + "; ".join(cells))


if __name__ == "__main__":
    main()
