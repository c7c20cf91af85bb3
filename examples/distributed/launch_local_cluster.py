"""Starts a TF_CONFIG cluster on this machine (127.0.0.1) and waits for it to finish.

N training tasks (``chief`` + N-1 ``worker``) and optionally one ``evaluator``, each a separate
process running the same program (by default ``train.py`` next to this file) with its own
TF_CONFIG on a free loopback port. Every task's output is printed with its role as prefix and
kept in ``<model-dir>/logs/<task>.log``. If a task fails, or ``--timeout`` passes, every task
is stopped and the launcher exits non-zero.

    python examples/distributed/launch_local_cluster.py --workers 2 --evaluator \\
        --model-dir /tmp/digits-cluster -- --steps 300

Arguments after ``--`` go to the task program (``--model-dir`` is passed for you). On a real
cluster you start one process per machine yourself (see README.md); this launcher is for trying
a cluster out and for tests.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
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


def cluster_spec(workers: int, evaluator: bool) -> tuple[dict, list[tuple[str, int]]]:
    """The TF_CONFIG cluster dict and the (type, index) of every task to start."""
    ports = free_ports(workers + int(evaluator))
    address = [f"127.0.0.1:{port}" for port in ports]
    cluster = {"chief": address[:1]}
    tasks = [("chief", 0)]
    if workers > 1:
        cluster["worker"] = address[1:workers]
        tasks += [("worker", i) for i in range(workers - 1)]
    if evaluator:
        cluster["evaluator"] = address[workers:]
        tasks.append(("evaluator", 0))
    return cluster, tasks


def _pump(name: str, stream, log_path: str, quiet: bool) -> None:
    with open(log_path, "w") as log:
        for line in stream:
            log.write(line)
            log.flush()
            if not quiet:
                sys.stdout.write(f"[{name}] {line}")
                sys.stdout.flush()


def launch(
    program: list[str], workers: int, evaluator: bool, log_dir: str, timeout: float, quiet: bool = False, env: dict | None = None
) -> dict[str, int]:
    """Runs the cluster; returns each task's exit status. Stops every task on failure or timeout."""
    cluster, tasks = cluster_spec(workers, evaluator)
    os.makedirs(log_dir, exist_ok=True)
    processes: dict[str, subprocess.Popen] = {}
    pumps = []
    try:
        for task_type, index in tasks:
            name = f"{task_type}{index}"
            task_env = dict(os.environ if env is None else env)
            task_env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
            process = subprocess.Popen(
                program, env=task_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
            )
            processes[name] = process
            pump = threading.Thread(
                target=_pump, args=(name, process.stdout, os.path.join(log_dir, name + ".log"), quiet), daemon=True
            )
            pump.start()
            pumps.append(pump)
        deadline = time.monotonic() + timeout
        while True:
            codes = {name: p.poll() for name, p in processes.items()}
            failed = [name for name, code in codes.items() if code not in (None, 0)]
            if failed:
                raise RuntimeError(f"task(s) {failed} failed with {[codes[n] for n in failed]}; see {log_dir}")
            if all(code == 0 for code in codes.values()):
                return codes
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not finish in {timeout} s; see {log_dir}")
            time.sleep(0.2)
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for process in processes.values():
            process.wait(timeout=30)
        for pump in pumps:
            pump.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="training tasks: the chief plus N-1 workers")
    parser.add_argument("--evaluator", action="store_true", help="also start an evaluator task")
    parser.add_argument("--model-dir", required=True, help="shared model_dir of the cluster")
    parser.add_argument("--program", default=os.path.join(HERE, "train.py"), help="the task program")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before every task is stopped")
    parser.add_argument("--quiet", action="store_true", help="only write the logs, do not echo them")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    program = [sys.executable, args.program, "--model-dir", args.model_dir, *extra]
    started = time.monotonic()
    try:
        launch(program, args.workers, args.evaluator, os.path.join(args.model_dir, "logs"), args.timeout, args.quiet)
    except (RuntimeError, TimeoutError) as error:
        print(f"launch_local_cluster: {error}", file=sys.stderr)
        return 1
    print(f"launch_local_cluster: {args.workers} worker(s){' + evaluator' if args.evaluator else ''} "
          f"finished in {time.monotonic() - started:.1f} s; checkpoints in {args.model_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
