"""bridge Estimator vs legacy tf.estimator 2.15 vs Keras 3: train, evaluate, predict, same window.

Model: 784-256-256-10 MLP (relu, logits), Adam(1e-3), sparse softmax cross-entropy; evaluate adds an
accuracy metric; predict returns ``{"logits": ...}``. Data: 65,536 x 784 float32 in memory
(numpy RandomState(0), learnable labels), ``from_tensor_slices -> repeat -> batch`` with tf.data
autotune off; every system converts or feeds the arrays once per call (the legacy twin through
placeholders and an initializer hook, see ``benchmarks/legacy/legacy_twin.py``).

Each system runs in its own fresh process per (round, batch): bridge and Keras 3 in this venv
(TF 2.21), the legacy twin in the legacy venv (TF 2.15 + tensorflow-estimator 2.15). The order
of the three rotates every round. Steady-state speed comes from (short, long) call pairs,
``(L - S) / (t_long - t_short)``, which removes each call's fixed cost; the fixed cost is
``t_short - S / steady_rate``. Figures are medians over all pairs of all rounds; the ratio ranges
are the per-round ratios. "CPU ms/step" is the worker process's CPU time per steady step (same
pairs): it moves less than wall time when other processes compete for the 2 cores. Load from other processes (machine busy time from /proc/stat minus the
worker's own CPU time) is reported per worker run.

    PYTHONPATH=. .venv/bin/python benchmarks/estimator_vs_legacy.py [--rounds 3] [--quick]
        [--batch 128 1024] [--legacy-python PATH] [--json out.json]

The legacy venv is found at --legacy-python, $LEGACY_PYTHON, or
~/.cache/estimator-bridge/legacy-venv/bin/python; when absent it is created with
benchmarks/legacy/setup_legacy_venv.sh (unless --no-setup). Without it, bridge vs Keras is
still measured and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LEGACY_DIR = os.path.join(HERE, "legacy")
DEFAULT_LEGACY_PYTHON = os.path.expanduser("~/.cache/estimator-bridge/legacy-venv/bin/python")

sys.path.insert(0, LEGACY_DIR)
from legacy_twin import CLASSES, FEATURES, make_data, measure, timed  # noqa: E402

ROWS = 65536


# ------------------------------------------------------------------------------------------
# plans: steps per short / long call
def make_plan(batch: int, quick: bool, pairs: int) -> dict:
    if batch <= 256:
        train, ev, pred = [32, 416], [8, 640], [8, 640]
        train_g, ev_g, pred_g = [128, 640], [512, 1280], [512, 1280]
    else:
        train, ev, pred = [32, 128], [8, 168], [8, 168]
        train_g, ev_g, pred_g = [128, 256], [512, 768], [512, 768]
    if quick:
        train = [train[0], max(train[0] + 64, train[1] // 2 // 32 * 32)]
        ev, pred = [8, ev[1] // 2], [8, pred[1] // 2]
        train_g, ev_g, pred_g = ([x[0], (x[0] + x[1]) // 2] for x in (train_g, ev_g, pred_g))
    # bridge groups steps only in calls of at least 128 training steps or 512 batches: its
    # "default" rows (grouped) use the *_g plans, whose short calls are that long.
    return {"rows": ROWS, "batch": batch, "pairs": pairs, "threads": 2, "train": train, "eval": ev, "predict": pred,
            "train_g": train_g, "eval_g": ev_g, "predict_g": pred_g}


# ------------------------------------------------------------------------------------------
# workers (run in a subprocess of this venv)
def _tf_setup(threads: int):
    t0 = time.perf_counter()
    import keras
    import tensorflow as tf

    import_s = time.perf_counter() - t0
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.get_logger().setLevel("ERROR")
    return tf, keras, import_s


def _dataset(tf, x, y, batch, steps=None):
    dataset = tf.data.Dataset.from_tensor_slices((x, y) if y is not None else x)
    dataset = dataset.repeat().batch(batch, drop_remainder=True)
    if steps is not None:
        dataset = dataset.take(steps)
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def bridge_model_fn(metric_kind: dict | None = None):
    """The benchmark MLP as a bridge model_fn (step_breakdown.py uses it too).

    ``metric_kind["value"]`` picks evaluate's accuracy: "keras" (a keras.metrics object) or
    "bridge" (the legacy twin's tf.compat.v1.metrics.accuracy, on bridge's C++ engine); it is
    read when model_fn runs, so the caller may switch it between Estimator calls.
    """
    import keras
    import tensorflow as tf

    import bridge

    metric_kind = metric_kind if metric_kind is not None else {"value": "keras"}

    def model_fn(features, labels, mode):
        h = keras.layers.Dense(256, activation="relu")(features)
        h = keras.layers.Dense(256, activation="relu")(h)
        logits = keras.layers.Dense(CLASSES)(h)
        if mode == bridge.ModeKeys.PREDICT:
            return bridge.EstimatorSpec(mode, predictions={"logits": logits})
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        if mode == bridge.ModeKeys.EVAL:
            if metric_kind["value"] == "keras":
                accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
                accuracy.update_state(labels, logits)
            else:  # the legacy twin's tf.compat.v1.metrics.accuracy, on bridge's C++ engine
                accuracy = bridge.metrics.accuracy(labels, tf.argmax(logits, 1, output_type=labels.dtype))
            return bridge.EstimatorSpec(mode, loss=loss, eval_metric_ops={"accuracy": accuracy})
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.Adam(1e-3)))

    return model_fn


def worker_bridge(plan: dict) -> dict:
    tf, keras, import_s = _tf_setup(plan["threads"])
    import numpy as np

    import bridge

    x, y = make_data(plan["rows"])
    batch = plan["batch"]
    metric_kind = {"value": "keras"}

    model_fn = bridge_model_fn(metric_kind)

    def config(**kwargs):
        return bridge.RunConfig(progress_bar=False, **kwargs)

    nockpt = dict(save_checkpoints_steps=None, save_checkpoints_secs=None, log_step_count_steps=None, save_summary_steps=0)

    def train_call(estimator, steps):
        return lambda: estimator.train(lambda: _dataset(tf, x, y, batch), steps=steps)

    results: dict = {"system": "bridge", "batch": batch, "import_s": import_s,
                     "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}
    s, l = plan["train"]
    # train_ipl1: one step per traced call (max_steps_per_call=1), as tf.estimator's one Session.run
    # per step; train_grouped: the default, grouping steps where no hook can tell; train_ipl32:
    # iterations_per_loop=32 (hooks once per 32 steps).
    variants = {"train_ipl1": {"max_steps_per_call": 1}, "train_grouped": {}, "train_ipl32": {"iterations_per_loop": 32}}
    for key, extra in variants.items():
        est = bridge.Estimator(model_fn, model_dir=tempfile.mkdtemp(), config=config(**extra, **nockpt))
        s_, l_ = plan["train_g"] if key == "train_grouped" else (s, l)
        results[key] = measure(train_call(est, s_), train_call(est, l_), plan["pairs"])

    est = bridge.Estimator(model_fn, model_dir=tempfile.mkdtemp(), config=config())
    short = train_call(est, s)
    results["train_default"] = {"first": timed(short), "short": [timed(short) for _ in range(plan["pairs"])]}

    s, l = plan["eval"]
    last_eval: dict = {}

    one_per_call = bridge.Estimator(model_fn, model_dir=est.model_dir, config=config(max_steps_per_call=1))

    def eval_call(steps, estimator=est):
        def run():
            last_eval.update(estimator.evaluate(lambda: _dataset(tf, x, y, batch), steps=steps))

        return run

    results["evaluate_1"] = measure(eval_call(s, one_per_call), eval_call(l, one_per_call), plan["pairs"])

    results["evaluate"] = measure(eval_call(plan["eval_g"][0]), eval_call(plan["eval_g"][1]), plan["pairs"])
    results["eval_result"] = {k: float(v) for k, v in last_eval.items()}

    # bridge.metrics.accuracy (host C++ engine), when the extension is built.
    bridge_metrics_ok = False
    try:
        import bridge.metrics  # noqa: F401

        bridge_metrics_ok = True
        results["bridge_metrics_class"] = "bridge.metrics.accuracy"
    except Exception as error:  # noqa: BLE001 - report whatever stops it
        results["evaluate_bridge_metrics_error"] = f"import bridge.metrics: {type(error).__name__}: {error}"
    if bridge_metrics_ok:
        metric_kind["value"] = "bridge"
        last_eval.clear()
        try:
            results["evaluate_bridge_metrics"] = measure(
                eval_call(plan["eval_g"][0]), eval_call(plan["eval_g"][1]), plan["pairs"]
            )
            results["eval_result_bridge_metrics"] = {k: float(v) for k, v in last_eval.items()}
        except Exception as error:  # noqa: BLE001
            results["evaluate_bridge_metrics_error"] = f"{type(error).__name__}: {str(error)[:300]}"
        metric_kind["value"] = "keras"

    s, l = plan["predict"]

    def predict_call(steps, single, estimator=est):
        def input_fn():
            return _dataset(tf, x, None, batch, steps)

        def run():
            if single:
                count = 0
                for _ in estimator.predict(input_fn):
                    count += 1
                assert count == steps * batch, count
            else:
                logits = np.concatenate([p["logits"] for p in estimator.predict(input_fn, yield_single_examples=False)])
                assert logits.shape == (steps * batch, CLASSES), logits.shape

        return run

    s_g, l_g = plan["predict_g"]
    results["predict_batch"] = measure(predict_call(s_g, False), predict_call(l_g, False), plan["pairs"])
    results["predict_single"] = measure(predict_call(s_g, True), predict_call(l_g, True), plan["pairs"])
    results["predict_batch_1"] = measure(
        predict_call(s, False, one_per_call), predict_call(l, False, one_per_call), plan["pairs"]
    )
    results["predict_single_1"] = measure(
        predict_call(s, True, one_per_call), predict_call(l, True, one_per_call), plan["pairs"]
    )
    return results


def worker_keras(plan: dict) -> dict:
    tf, keras, import_s = _tf_setup(plan["threads"])
    x, y = make_data(plan["rows"])
    batch = plan["batch"]

    def mlp():
        return keras.Sequential([
            keras.Input((FEATURES,)), keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"), keras.layers.Dense(CLASSES),
        ])

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    results: dict = {"system": "keras", "batch": batch, "import_s": import_s,
                     "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}
    s, l = plan["train"]
    model = None
    for spe in (1, 32):
        model = mlp()
        # No metric in fit: the estimator train calls compute none either.
        model.compile(keras.optimizers.Adam(1e-3), loss, steps_per_execution=spe)
        dataset = _dataset(tf, x, y, batch)

        def fit(steps, model=model, dataset=dataset):
            return lambda: model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)

        results[f"train_ipl{spe}"] = measure(fit(s), fit(l), plan["pairs"])

    evaluator = mlp()
    evaluator.compile(keras.optimizers.Adam(1e-3), loss, metrics=["sparse_categorical_accuracy"])
    evaluator.set_weights(model.get_weights())
    dataset = _dataset(tf, x, y, batch)
    s, l = plan["eval"]
    last_eval: dict = {}

    def evaluate(steps):
        def run():
            last_eval.update(evaluator.evaluate(dataset, steps=steps, verbose=0, return_dict=True))

        return run

    results["evaluate"] = measure(evaluate(s), evaluate(l), plan["pairs"])
    results["eval_result"] = {k: float(v) for k, v in last_eval.items()}
    s, l = plan["predict"]

    def predict(steps):
        data = _dataset(tf, x, None, batch, steps)

        def run():
            out = evaluator.predict(data, verbose=0)
            assert out.shape == (steps * batch, CLASSES), out.shape

        return run

    results["predict_batch"] = measure(predict(s), predict(l), plan["pairs"])
    return results


# ------------------------------------------------------------------------------------------
# orchestration
def _busy_jiffies() -> int:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def foreign_cores(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes over ``seconds`` (this process sleeps meanwhile)."""
    busy0 = _busy_jiffies()
    time.sleep(seconds)
    return (_busy_jiffies() - busy0) / os.sysconf("SC_CLK_TCK") / seconds


def wait_for_quiet(threshold: float, max_wait: float) -> tuple[float, float]:
    """Waits until other processes use < threshold cores (at most max_wait s); (waited s, last load)."""
    start = time.monotonic()
    load = foreign_cores()
    while load >= threshold and time.monotonic() - start < max_wait:
        load = foreign_cores()
    return time.monotonic() - start, load


def run_worker(system: str, plan: dict, legacy_python: str | None, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="2", TF_CPP_MIN_LOG_LEVEL="3")
    if system == "legacy":
        command = [legacy_python, os.path.join(LEGACY_DIR, "legacy_twin.py"), "--plan", json.dumps(plan)]
        env.pop("PYTHONPATH", None)
    else:
        command = [sys.executable, os.path.abspath(__file__), "--worker", system, "--plan", json.dumps(plan)]
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, wall0, load_before = _busy_jiffies(), time.monotonic(), _loadavg()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as error:
        output, code = f"timed out after {timeout:.0f} s: {error.stdout or ''}", -1
    wall = time.monotonic() - wall0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    busy = (_busy_jiffies() - busy0) / os.sysconf("SC_CLK_TCK")
    load = {"wall_s": wall, "own_cpu_s": own, "foreign_cores": max(0.0, (busy - own) / wall),
            "loadavg_before": load_before, "loadavg_after": _loadavg()}
    for line in output.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            result["load"] = load
            return result
    return {"system": system, "batch": plan["batch"], "error": f"exit {code}: {output[-1500:]}", "load": load}


def find_legacy_python(args) -> tuple[str | None, str]:
    candidate = args.legacy_python or os.environ.get("LEGACY_PYTHON") or DEFAULT_LEGACY_PYTHON
    if not os.path.exists(candidate) and not args.no_setup and not args.legacy_python:
        script = os.path.join(LEGACY_DIR, "setup_legacy_venv.sh")
        print(f"legacy venv not found at {candidate}; creating it with {script} ...", flush=True)
        venv = os.path.dirname(os.path.dirname(candidate))
        proc = subprocess.run(["bash", script, venv], capture_output=True, text=True)
        if proc.returncode != 0:
            return None, f"could not create the legacy venv ({script} exited {proc.returncode}): {proc.stderr.strip()[-400:]}"
    if not os.path.exists(candidate):
        return None, f"legacy venv python not found: {candidate}"
    check = subprocess.run(
        [candidate, "-c", "import tensorflow as tf, tensorflow_estimator; print(tf.__version__)"],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    if check.returncode != 0:
        return None, f"{candidate} cannot import tensorflow + tensorflow_estimator: {check.stderr.strip()[-300:]}"
    return candidate, f"legacy: {candidate} (tensorflow {check.stdout.strip()})"


# -- statistics -----------------------------------------------------------------------------
def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def pair_rates(entry: dict, steps: list) -> list[float]:
    s, l = steps
    rates = []
    for t_short, t_long in entry["pairs"]:
        if t_long > t_short:
            rates.append((l - s) / (t_long - t_short))
    return rates


def summarise(runs: list[dict], plans: dict) -> dict:
    """{(system, batch, measurement): {"rate": median steps/s, "fixed": s, "round_rates": [...], ...}}"""
    steps_of = {"train_ipl1": "train", "train_grouped": "train", "train_ipl32": "train", "evaluate": "eval",
                "evaluate_1": "eval", "evaluate_bridge_metrics": "eval", "predict_batch": "predict",
                "predict_single": "predict", "predict_batch_1": "predict", "predict_single_1": "predict"}
    grouped_plan = {"train_grouped": "train_g", "evaluate": "eval_g", "evaluate_bridge_metrics": "eval_g",
                    "predict_batch": "predict_g", "predict_single": "predict_g"}
    grouped: dict = {}
    for run in runs:
        if "error" in run:
            continue
        batch = run["batch"]
        for key, kind in steps_of.items():
            if run["system"] == "bridge":
                kind = grouped_plan.get(key, kind)
            if key in run:
                slot = grouped.setdefault((run["system"], batch, key), {"rates": [], "round_rates": [], "shorts": [], "firsts": [], "cpu": []})
                rates = pair_rates(run[key], plans[batch][kind])
                s, l = plans[batch][kind]
                slot["cpu"] += [(c_l - c_s) / (l - s) * 1e3 for c_s, c_l in run[key].get("cpu_pairs", [])]
                slot["rates"] += rates
                slot["round_rates"].append(_median(rates))
                slot["shorts"] += [p[0] for p in run[key]["pairs"]]
                slot["firsts"].append(run[key]["first"])
        if "train_default" in run:
            slot = grouped.setdefault((run["system"], batch, "train_default"), {"shorts": [], "firsts": []})
            slot["shorts"] += run["train_default"]["short"]
            slot["firsts"].append(run["train_default"]["first"])
    out = {}
    for (system, batch, key), slot in grouped.items():
        if key == "train_default":
            base = out.get((system, batch, "train_ipl1"))  # a 32-step call: one step per call
            rate = base["rate"] if base else None
            s = plans[batch]["train"][0]
            out[(system, batch, key)] = {
                "fixed": _median([t - s / rate for t in slot["shorts"]]) if rate else None,
                "fixed_range": (min(t - s / rate for t in slot["shorts"]), max(t - s / rate for t in slot["shorts"])) if rate else None,
                "first": _median(slot["firsts"]),
            }
            continue
        rate = _median(slot["rates"])
        kind = grouped_plan.get(key, steps_of[key]) if system == "bridge" else steps_of[key]
        s = plans[batch][kind][0]
        fixed = [t - s / rate for t in slot["shorts"]] if rate else []
        out[(system, batch, key)] = {
            "rate": rate, "rate_range": (min(slot["rates"]), max(slot["rates"])) if slot["rates"] else None,
            "round_rates": slot["round_rates"], "fixed": _median(fixed),
            "fixed_range": (min(fixed), max(fixed)) if fixed else None, "first": _median(slot["firsts"]),
            "cpu_ms": _median(slot["cpu"]),
        }
    return out


def _ratio_range(a: dict | None, b: dict | None) -> tuple | None:
    if not a or not b:
        return None
    ratios = [x / y for x, y in zip(a["round_rates"], b["round_rates"]) if x and y]
    return (min(ratios), max(ratios)) if ratios else None


def _fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _fmt_ratio(a, b, rng):
    if not a or not b or a.get("rate") is None or b.get("rate") is None:
        return "–"
    text = f"{a['rate'] / b['rate']:.2f}"
    if rng and rng[0] != rng[1]:
        text += f" ({rng[0]:.2f}–{rng[1]:.2f})"
    return text


ROWS_TABLE = [
    # label, bridge key, legacy key, keras key. "1 step/call" rows force bridge to one traced call
    # per step or batch (max_steps_per_call=1), which is also its default for calls under 128
    # training steps or 512 batches; "default" rows are calls at least that long, where bridge
    # groups steps (no hook can tell). Legacy and Keras run their defaults in every row.
    ("train, 1 step/call (default under 128 steps)", "train_ipl1", "train_ipl1", "train_ipl1"),
    ("train, default (grouped steps)", "train_grouped", "train_ipl1", "train_ipl1"),
    ("train, 32 steps/call (iterations_per_loop / steps_per_execution; legacy: 1)", "train_ipl32", "train_ipl1", "train_ipl32"),
    ("evaluate, accuracy (keras.metrics object), 1 batch/call (default under 512 batches)", "evaluate_1", "evaluate", "evaluate"),
    ("evaluate, accuracy (keras.metrics object), default", "evaluate", "evaluate", "evaluate"),
    ("evaluate, accuracy (bridge.metrics), default", "evaluate_bridge_metrics", "evaluate", "evaluate"),
    ("predict, batch yield, 1 batch/call (default under 512 batches)", "predict_batch_1", "predict_batch", "predict_batch"),
    ("predict, batch yield, default", "predict_batch", "predict_batch", "predict_batch"),
    ("predict, per-example yield, 1 batch/call", "predict_single_1", "predict_single", None),
    ("predict, per-example yield, default", "predict_single", "predict_single", None),
]


def report(summary: dict, batches: list[int], have_legacy: bool) -> tuple[str, list[str]]:
    lines = [
        "| what | B | bridge steps/s | bridge ex/s | legacy steps/s | Keras 3 steps/s | bridge/legacy | bridge/Keras |"
        " fixed s/call bridge | legacy | Keras | CPU ms/step bridge | legacy | Keras |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    targets = []
    for label, bkey, lkey, kkey in ROWS_TABLE:
        for batch in batches:
            b = summary.get(("bridge", batch, bkey))
            if b is None:
                continue
            lg = summary.get(("legacy", batch, lkey))
            k = summary.get(("keras", batch, kkey)) if kkey else None
            lines.append(
                f"| {label} | {batch} | {_fmt(b['rate'])} | {_fmt(b['rate'] and b['rate'] * batch)} | "
                f"{_fmt(lg and lg['rate'])} | {_fmt(k and k['rate'])} | {_fmt_ratio(b, lg, _ratio_range(b, lg))} | "
                f"{_fmt_ratio(b, k, _ratio_range(b, k))} | {_fmt(b['fixed'], 3)} | {_fmt(lg and lg['fixed'], 3)} | "
                f"{_fmt(k and k['fixed'], 3)} | {_fmt(b['cpu_ms'], 2)} | {_fmt(lg and lg['cpu_ms'], 2)} | "
                f"{_fmt(k and k['cpu_ms'], 2)} |"
            )
            if have_legacy and lg and lg["rate"] and b["rate"]:
                ratio = b["rate"] / lg["rate"]
                if bkey == "train_ipl32":
                    if batch <= 128:
                        targets.append(f"train 32 steps/call ≥ 1.5x legacy at B={batch}: {ratio:.2f} "
                                       f"{'MET' if ratio >= 1.5 else 'MISSED'}")
                elif bkey != "evaluate_bridge_metrics":
                    targets.append(f"{bkey} ≥ 1.0x legacy at B={batch}: {ratio:.2f} {'MET' if ratio >= 1.0 else 'MISSED'}")
    lines.append("")
    lines.append("Fixed cost per call, t_short − S/steady (S: the short call's steps; legacy's short calls are "
                 "32 train steps or 8 batches in every row), and the first call of a new Estimator in a warm "
                 "process. \"default config\" checkpoints at start and end and writes summaries:")
    lines.append("")
    lines.append("| call | B | bridge fixed s | legacy fixed s | bridge first call s | legacy first call s |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for batch in batches:
        for label, key, legacy_key in (
            ("train, default config, 32-step call", "train_default", "train_default"),
            ("train, no checkpoints, 32-step call", "train_ipl1", "train_ipl1"),
            ("train, no checkpoints, long call (grouped)", "train_grouped", "train_ipl1"),
            ("evaluate, 8-batch call", "evaluate_1", "evaluate"),
            ("evaluate, long call (grouped)", "evaluate", "evaluate"),
            ("predict (batch yield), 8-batch call", "predict_batch_1", "predict_batch"),
            ("predict (batch yield), long call (grouped)", "predict_batch", "predict_batch"),
        ):
            b = summary.get(("bridge", batch, key))
            lg = summary.get(("legacy", batch, legacy_key))
            if b is None:
                continue
            lines.append(f"| {label} | {batch} | {_fmt(b['fixed'], 3)} | {_fmt(lg and lg['fixed'], 3)} | "
                         f"{_fmt(b['first'], 2)} | {_fmt(lg and lg['first'], 2)} |")
            if have_legacy and lg and b["fixed"] is not None and lg["fixed"] is not None:
                ok = b["fixed"] <= lg["fixed"]
                targets.append(f"fixed cost {label} ≤ legacy at B={batch}: {b['fixed']:.3f} vs {lg['fixed']:.3f} s "
                               f"{'MET' if ok else 'MISSED'}")
    lines += whole_call_table(summary, batches)
    return "\n".join(lines), targets


# Which bridge measurement a default call of N steps gets: one step per call below the
# grouping threshold (bridge.estimator.GROUPING_MIN_CALLS x 32), grouped from there.
WHOLE_CALLS = [
    # label, bridge key (short call), bridge key (long call), legacy key, threshold
    ("train (no checkpoints)", "train_ipl1", "train_grouped", "train_ipl1", 128),
    ("evaluate", "evaluate_1", "evaluate", "evaluate", 512),
    ("predict (batch yield)", "predict_batch_1", "predict_batch", "predict_batch", 512),
]


def whole_call_table(summary: dict, batches: list[int]) -> list[str]:
    """Seconds for a whole call of N steps with the defaults: fixed cost + N / steady rate."""
    lines = ["", "Whole call, defaults (fixed + N / steady rate), bridge / legacy seconds and the speed-up:", "",
             "| call | B | N=32 | N=128 | N=1000 |", "| --- | ---: | ---: | ---: | ---: |"]
    for label, short_key, long_key, legacy_key, threshold in WHOLE_CALLS:
        for batch in batches:
            legacy = summary.get(("legacy", batch, legacy_key))
            if not legacy or not legacy.get("rate"):
                continue
            cells = []
            for n in (32, 128, 1000):
                b = summary.get(("bridge", batch, short_key if n < threshold else long_key))
                if not b or not b.get("rate") or b.get("fixed") is None or legacy.get("fixed") is None:
                    cells.append("–")
                    continue
                t_bridge = b["fixed"] + n / b["rate"]
                t_legacy = legacy["fixed"] + n / legacy["rate"]
                cells.append(f"{t_bridge:.2f} / {t_legacy:.2f} ({t_legacy / t_bridge:.2f}x)")
            lines.append(f"| {label} | {batch} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["bridge", "keras"], help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3; 1 with --quick)")
    parser.add_argument("--pairs", type=int, default=None, help="(short, long) pairs per process (default 2; 1 with --quick)")
    parser.add_argument("--batch", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--quick", action="store_true", help="~2 minutes: 1 round, 1 pair, shorter long calls")
    parser.add_argument("--budget", type=float, default=None, help="seconds; no new round starts past it (default 600, quick 150)")
    parser.add_argument("--legacy-python", help="python of the legacy venv")
    parser.add_argument("--no-setup", action="store_true", help="do not create a missing legacy venv")
    parser.add_argument("--no-legacy", action="store_true", help="bridge vs Keras only")
    parser.add_argument("--json", help="write every raw measurement here")
    parser.add_argument("--quiet", type=float, default=0.3,
                        help="before each worker run, wait until other processes use fewer cores than this")
    parser.add_argument("--max-wait", type=float, default=None, help="longest wait for quiet, s (default 10; quick 3)")
    args = parser.parse_args()

    if args.worker:
        worker = worker_bridge if args.worker == "bridge" else worker_keras
        print("RESULT " + json.dumps(worker(json.loads(args.plan))), flush=True)
        return

    rounds = args.rounds or (1 if args.quick else 3)
    pairs = args.pairs or (1 if args.quick else 2)
    budget = args.budget or (150 if args.quick else 600)
    max_wait = args.max_wait if args.max_wait is not None else (3.0 if args.quick else 10.0)
    start = time.monotonic()
    if args.no_legacy:
        legacy_python, note = None, "legacy: skipped (--no-legacy)"
    else:
        legacy_python, note = find_legacy_python(args)
    print(note, flush=True)
    if legacy_python is None and not args.no_legacy:
        print("THE LEGACY VENV COULD NOT BE USED: printing bridge vs Keras 3 only.", flush=True)
    systems = ["bridge", "legacy", "keras"] if legacy_python else ["bridge", "keras"]
    plans = {b: make_plan(b, args.quick, pairs) for b in args.batch}
    runs: list[dict] = []
    round_times = []
    for r in range(rounds):
        elapsed = time.monotonic() - start
        if round_times and elapsed + max(round_times) > budget:
            print(f"stopping after {r} rounds: the next would pass the {budget:.0f} s budget", flush=True)
            break
        t_round = time.monotonic()
        order = systems[r % len(systems):] + systems[: r % len(systems)]
        for batch in args.batch:
            for system in order:
                waited, before = wait_for_quiet(args.quiet, max_wait)
                result = run_worker(system, plans[batch], legacy_python, timeout=max(60.0, budget))
                result["load"].update(waited_s=waited, foreign_before=before)
                result["round"] = r + 1
                runs.append(result)
                status = "error: " + result["error"].splitlines()[-1] if "error" in result else "ok"
                print(f"round {r + 1} B={batch} {system}: {result['load']['wall_s']:.1f} s (waited {waited:.0f} s for "
                      f"quiet: {before:.2f} cores), other processes "
                      f"{result['load']['foreign_cores']:.2f} cores (loadavg {result['load']['loadavg_before']}), {status}",
                      flush=True)
        round_times.append(time.monotonic() - t_round)

    summary = summarise(runs, plans)
    table, targets = report(summary, args.batch, legacy_python is not None)
    print()
    print(table)
    print()
    foreign = [run["load"]["foreign_cores"] for run in runs]
    print(f"Other processes' load during the worker runs: median {statistics.median(foreign):.2f}, "
          f"max {max(foreign):.2f} cores (of {os.cpu_count()}); total {time.monotonic() - start:.0f} s, "
          f"{len(round_times)} round(s), {pairs} pair(s) per process.")
    for run in runs:
        if "error" in run:
            print(f"FAILED round {run['round']} B={run['batch']} {run['system']}: {run['error'][-800:]}")
    for run in runs:
        if run["system"] == "bridge" and "evaluate_bridge_metrics_error" in run:
            print(f"bridge.metrics evaluate: not measured ({run['evaluate_bridge_metrics_error']})")
            break
    evals = {(run["system"], run["batch"]): run.get("eval_result") for run in runs if run.get("round") == 1 and "eval_result" in run}
    for (system, batch), values in sorted(evals.items()):
        print(f"eval result round 1 {system} B={batch}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())))
    if targets:
        print()
        print("Targets (issue 8):")
        for target in targets:
            print("- " + target)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"plans": plans, "runs": runs, "legacy_python": legacy_python}, f, indent=1)


if __name__ == "__main__":
    main()
