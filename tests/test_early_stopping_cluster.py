"""Early stopping in a real chief + worker (MultiWorkerMirroredStrategy) + evaluator cluster on loopback.

Only the worker's should_stop_fn asks to stop; the stop must reach the chief at the same global
step (nobody left waiting in a collective), and the evaluator must exit after evaluating the
last checkpoint although max_steps was never reached.
"""

from __future__ import annotations

import json
import textwrap

import pytest
import tensorflow as tf

from tests.test_distribute import _COMMON, _child_env, _free_ports, run_tasks

MAX_STEPS = 1000
_TASK = _COMMON + textwrap.dedent(
    f'''
    role, model_dir = sys.argv[1], sys.argv[2]
    import tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if role in ("chief", "worker") else None
    import bridge

    X, Y = data()
    train = lambda: tf.data.Dataset.from_tensor_slices((X, Y)).repeat().batch(32)
    evaluate = lambda: tf.data.Dataset.from_tensor_slices((X, Y)).batch(64)
    config = bridge.RunConfig(model_dir=model_dir, train_distribute=strategy, save_checkpoints_steps=4,
                              log_step_count_steps=None)
    est = bridge.Estimator(model_fn, config=config, params={{}})
    checks = []

    def should_stop():  # only the worker wants to stop, from step 8 on
        checks.append(1)
        return role == "worker" and len(checks) >= 3

    hooks = []
    if role in ("chief", "worker"):
        hooks = [bridge.experimental.make_early_stopping_hook(est, should_stop, run_every_secs=None, run_every_steps=4)]
    bridge.train_and_evaluate(
        est, bridge.TrainSpec(train, max_steps={MAX_STEPS}, hooks=hooks),
        bridge.EvalSpec(evaluate, steps=None, start_delay_secs=0, throttle_secs=0))
    out = {{"checks": len(checks)}}
    if role == "chief":
        out["final"] = est.latest_checkpoint()
    print(json.dumps(out))
    '''
)


@pytest.mark.slow
def test_a_workers_stop_reaches_the_chief_and_the_evaluator_exits(tmp_path):
    script = tmp_path / "task.py"
    script.write_text(_TASK)
    ports = _free_ports(3)
    cluster = {"chief": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{ports[1]}"],
               "evaluator": [f"127.0.0.1:{ports[2]}"]}
    model_dir = str(tmp_path / "model")
    tasks = {}
    for role in ("chief", "worker", "evaluator"):
        env = _child_env()
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": role, "index": 0}})
        tasks[role] = (env, [model_dir])
    outputs = run_tasks(tmp_path, script, tasks, timeout=240)
    # checks at global steps 1, 5, 9: the worker's third vote stops both trainers at step 9
    assert outputs["chief"]["checks"] == outputs["worker"]["checks"] == 3
    final = outputs["chief"]["final"]
    assert final.endswith("model.ckpt-9"), final
    assert int(tf.train.load_checkpoint(final).get_tensor("global_step")) == 9 < MAX_STEPS
