"""numpy_input_fn feeding speed: bridge against tf.estimator 2.15's, on the same arrays.

Both input_fns read the same in-memory arrays (65,536 examples of 784 float32 features and an
int64 label) for one epoch, and are consumed the way their Estimator consumes them, one batch
per call: bridge's dataset through a traced function calling ``next(iterator)`` (as its step
does), 2.15's queue-fed tensors through ``MonitoredSession.run``. Prints examples/s for each
and the ratio; one fresh process per (system, shuffle, batch) so neither warms the other.

    PYTHONPATH=. .venv/bin/python benchmarks/numpy_input_fn.py \\
        [--legacy-python ~/.cache/estimator-bridge/legacy-venv/bin/python] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

EXAMPLES, FEATURES = 65536, 784


def _arrays():
    import numpy as np

    rng = np.random.RandomState(0)
    return {"x": rng.rand(EXAMPLES, FEATURES).astype(np.float32)}, rng.randint(0, 10, EXAMPLES).astype(np.int64)


def _measure_bridge(batch: int, shuffle: bool) -> float:
    import tensorflow as tf

    from bridge.inputs import numpy_input_fn

    x, y = _arrays()
    dataset = numpy_input_fn(x, y, batch_size=batch, num_epochs=1, shuffle=shuffle)()
    iterator = iter(dataset)
    step = tf.function(lambda it: tf.shape(next(it)[1])[0]).get_concrete_function(iterator)
    seen, start = 0, time.perf_counter()
    try:
        while True:
            seen += int(step(iterator))
    except tf.errors.OutOfRangeError:
        pass
    return seen / (time.perf_counter() - start)


def _measure_legacy(batch: int, shuffle: bool) -> float:
    import tensorflow as tf

    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    x, y = _arrays()
    with tf.Graph().as_default():
        features, labels = tf.compat.v1.estimator.inputs.numpy_input_fn(
            x, y, batch_size=batch, num_epochs=1, shuffle=shuffle
        )()
        size = tf.shape(labels)[0]
        seen = 0
        with tf.compat.v1.train.MonitoredSession() as session:
            start = time.perf_counter()
            while not session.should_stop():
                seen += int(session.run(size))
        return seen / (time.perf_counter() - start)


def _child(system: str, batch: int, shuffle: bool) -> None:
    rate = (_measure_legacy if system == "legacy" else _measure_bridge)(batch, shuffle)
    print(json.dumps({"rate": rate}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--legacy-python", default=os.path.expanduser("~/.cache/estimator-bridge/legacy-venv/bin/python"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", default="32,128,512")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), args.child[2] == "1")
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    interpreters = {"bridge": sys.executable, "legacy": args.legacy_python}
    print(f"{'shuffle':>7} {'batch':>5} {'bridge ex/s':>12} {'legacy ex/s':>12} {'bridge/legacy':>14}")
    for shuffle in (False, True):
        for batch in [int(b) for b in args.batches.split(",")]:
            rates: dict[str, list[float]] = {"bridge": [], "legacy": []}
            for _ in range(args.rounds):
                for system, python in interpreters.items():
                    done = subprocess.run(
                        [python, __file__, "--child", system, str(batch), "1" if shuffle else "0"],
                        env=env, capture_output=True, text=True, check=True,
                    )
                    rates[system].append(json.loads(done.stdout.strip().splitlines()[-1])["rate"])
            b, legacy = statistics.median(rates["bridge"]), statistics.median(rates["legacy"])
            print(f"{str(shuffle):>7} {batch:>5} {b:>12,.0f} {legacy:>12,.0f} {b / legacy:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
