"""Issue 17 item 4 (and issue 12 item 4): the trainer lock dies with the trainer, and is portable."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import tensorflow as tf

import bridge
from bridge import _trainer_lock
from bridge._trainer_lock import TrainerLock
from tests.conftest import keras_model_fn, make_input_fn

_TRAINER_WITH_HELPERS = textwrap.dedent(
    """
    import multiprocessing, subprocess, sys, time
    import keras, numpy as np, tensorflow as tf
    import bridge

    def input_fn():
        # Helpers started inside input_fn, as data loaders do; they outlive the trainer.
        helper = multiprocessing.get_context("fork").Process(target=time.sleep, args=(600,), daemon=False)
        helper.start()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(sys.argv[2], "w") as f:
            f.write(f"{helper.pid} {child.pid}")
        x = np.random.RandomState(0).randn(64, 3).astype(np.float32)
        return tf.data.Dataset.from_tensor_slices(({"x": x}, x.sum(1, keepdims=True))).repeat().batch(4)

    class Slow(bridge.SessionRunHook):
        def after_run(self, run_context, run_values):
            time.sleep(0.05)

    def model_fn(features, labels, mode):
        predictions = keras.layers.Dense(1, name="dense")(features["x"])
        loss = tf.reduce_mean(tf.square(predictions - labels))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.Adam(0.1)))

    config = bridge.RunConfig(save_checkpoints_steps=2, log_step_count_steps=None)
    bridge.Estimator(model_fn, model_dir=sys.argv[1], config=config).train(input_fn, steps=100000, hooks=[Slow()])
    """
)


def _alive(pid):
    return _trainer_lock.pid_alive(pid)


def test_lock_is_not_inherited_by_helpers_forked_in_input_fn(tmp_path):
    model_dir = str(tmp_path / "model")
    script = tmp_path / "trainer.py"
    script.write_text(_TRAINER_WITH_HELPERS)
    pids_file = tmp_path / "helpers"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), *sys.path]), TF_CPP_MIN_LOG_LEVEL="3")
    log = open(tmp_path / "trainer.log", "w+b")
    proc = subprocess.Popen([sys.executable, str(script), model_dir, str(pids_file)], env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    helpers = []
    try:
        deadline = time.monotonic() + 120
        while not (tf.train.latest_checkpoint(model_dir) if os.path.isdir(model_dir) else None):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise AssertionError(f"trainer did not checkpoint: {log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.05)
        helpers = [int(p) for p in pids_file.read_text().split()]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert all(_alive(pid) for pid in helpers)  # the helpers outlive the trainer...
        est = bridge.Estimator(keras_model_fn, model_dir=model_dir, params={},
                               config=bridge.RunConfig(log_step_count_steps=None))
        est.train(make_input_fn(epochs=None), steps=1)  # ...but not its lock
        assert int(est.get_variable_value("global_step")) >= 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in helpers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


def test_second_lock_in_the_same_process_is_refused_and_released_on_exit(tmp_path):
    with TrainerLock(str(tmp_path)):
        with pytest.raises(RuntimeError, match=rf"Another trainer \(pid {os.getpid()}\) is already training"):
            with TrainerLock(str(tmp_path)):
                pass
        with open(tmp_path / _trainer_lock.LOCK_NAME) as f:
            assert f.read().strip() == str(os.getpid())
    with TrainerLock(str(tmp_path)):  # released
        pass


def test_lock_held_by_another_live_process_is_refused_naming_it(tmp_path):
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[2]); from bridge._trainer_lock import TrainerLock\n"
        "with TrainerLock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), os.getcwd()], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        with pytest.raises(RuntimeError, match=rf"Another trainer \(pid {holder.pid}\)"):
            with TrainerLock(str(tmp_path)):
                pass
        holder.kill()
        holder.wait()
        with TrainerLock(str(tmp_path)):  # the kernel dropped the dead owner's lock
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_stale_owner_pid_is_taken_over(tmp_path):
    # A lock file left by a dead owner (its PID no longer runs) and held by nobody.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / _trainer_lock.LOCK_NAME).write_text(str(dead.pid))
    assert not _alive(dead.pid)
    with TrainerLock(str(tmp_path)):
        assert (tmp_path / _trainer_lock.LOCK_NAME).read_text() == str(os.getpid())


def test_lock_of_a_dead_owner_pid_is_waited_for_then_taken(tmp_path):
    # The lock is still held (as while an OS releases a dead owner's lock) but the PID in the
    # file no longer runs: the next trainer waits for the release instead of failing at once.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    code = (
        "import os, sys, time; sys.path.insert(0, sys.argv[2]); from bridge._trainer_lock import TrainerLock\n"
        "with TrainerLock(sys.argv[1]) as lock:\n"
        "    os.ftruncate(lock._fd, 0); os.pwrite(lock._fd, sys.argv[3].encode(), 0)\n"
        "    print('locked', flush=True); time.sleep(1.0)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), os.getcwd(), str(dead.pid)],
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        start = time.monotonic()
        with TrainerLock(str(tmp_path)):
            waited = time.monotonic() - start
        assert 0.3 < waited < _trainer_lock._STALE_RETRY_SECS
    finally:
        holder.kill()
        holder.wait()


def test_lock_module_has_no_top_level_posix_only_import():
    tree = ast.parse(open(_trainer_lock.__file__).read())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top for a in n.names} | {getattr(n, "module", None) for n in top}
    assert not names & {"fcntl", "msvcrt"}
    for path in ("bridge/_checkpoints.py", "bridge/estimator.py"):
        assert "import fcntl" not in open(path).read()
