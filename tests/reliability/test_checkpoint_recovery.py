"""Issue 17 items 1-3: save ordering, recovery from damaged model_dirs, a full disk.

Kills are injected deterministically by raising from the save's file operations (see
``tests/reliability/kills.py``), never by timing.
"""

from __future__ import annotations

import glob
import re
import logging
import os

import pytest
import tensorflow as tf

import bridge
from bridge import _checkpoints
from tests.conftest import checkpoint_steps, keras_model_fn, make_input_fn
from tests.reliability.kills import Killed, SaveKiller

INPUT = make_input_fn(epochs=None)


def _estimator(model_dir, warm_start_from=None, **config):
    config.setdefault("log_step_count_steps", None)
    return bridge.Estimator(
        keras_model_fn, model_dir=model_dir, config=bridge.RunConfig(**config), params={},
        warm_start_from=warm_start_from,
    )


def _trained(model_dir, steps=3, keep=5):
    """A model_dir with checkpoints at steps 0..steps (one save per step)."""
    _estimator(model_dir, save_checkpoints_steps=1, keep_checkpoint_max=keep).train(INPUT, steps=steps)
    return model_dir


def _step(path):
    return int(path.rsplit("-", 1)[1])


def _state_file(model_dir):
    return os.path.join(model_dir, "checkpoint")


# -- 1. ordering ---------------------------------------------------------------------------------
def test_state_file_names_the_new_checkpoint_before_old_ones_are_deleted(model_dir, monkeypatch):
    _trained(model_dir, steps=2, keep=1)
    assert checkpoint_steps(model_dir) == [2]
    killer = SaveKiller(monkeypatch, kill_at=lambda op: op.kind == "remove")
    with pytest.raises(Killed):
        _estimator(model_dir, save_checkpoints_steps=1, keep_checkpoint_max=1).train(INPUT, steps=3)
    killer.undo()
    # Killed while deleting ckpt-2: the state file already names ckpt-3, which is complete.
    state = tf.train.get_checkpoint_state(model_dir)
    assert os.path.basename(state.model_checkpoint_path) == "model.ckpt-3"
    assert _checkpoints.checkpoint_problem(os.path.join(model_dir, "model.ckpt-3")) is None
    assert _step(_checkpoints.latest_checkpoint(model_dir)) == 3


# -- 2. damaged newest checkpoint ----------------------------------------------------------------
def _resume_warning(caplog):
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "recovery" in r.getMessage())


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("missing_index", r"model\.ckpt-3\.index is missing"),
        ("truncated_index", r"model\.ckpt-3\.index cannot be read .*sstable"),
        ("truncated_data", r"model\.ckpt-3\.data-00000-of-00001 is truncated"),
    ],
)
def test_damaged_newest_checkpoint_falls_back_and_keeps_newer_files(model_dir, caplog, damage, reason):
    _trained(model_dir, steps=3, keep=2)
    newest = os.path.join(model_dir, "model.ckpt-3")
    if damage == "missing_index":
        os.remove(newest + ".index")
    elif damage == "truncated_index":
        with open(newest + ".index", "r+b") as f:
            f.truncate(10)
    else:
        with open(newest + ".data-00000-of-00001", "r+b") as f:
            f.truncate(3)
    damaged_files = sorted(glob.glob(newest + ".*"))
    caplog.set_level(logging.WARNING, logger="bridge")
    est = _estimator(model_dir, save_checkpoints_steps=100, keep_checkpoint_max=1)
    est.train(INPUT, steps=5)
    warning = _resume_warning(caplog)
    assert "restoring " + os.path.join(model_dir, "model.ckpt-2") in warning
    assert re.search(reason, warning), warning
    # Resumed from step 2 (not 0); the damaged step-3 files were not deleted (newer than the
    # restored checkpoint) although keep_checkpoint_max=1 retired ckpt-2.
    assert _step(est.latest_checkpoint()) == 7
    assert int(est.get_variable_value("global_step")) == 7
    assert sorted(glob.glob(newest + ".*")) == damaged_files
    assert not os.path.exists(os.path.join(model_dir, "model.ckpt-2.index"))


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("deleted", r"state file .*checkpoint is missing"),
        ("garbage", r"state file .*checkpoint cannot be parsed"),
        ("binary", r"state file .*checkpoint cannot be parsed"),
        ("names_missing", r"model\.ckpt-99\.index is missing"),
    ],
)
def test_damaged_state_file_falls_back_to_newest_intact(model_dir, caplog, damage, reason):
    _trained(model_dir, steps=3)
    state = _state_file(model_dir)
    if damage == "deleted":
        os.remove(state)
    elif damage == "garbage":
        open(state, "w").write("this is { not a checkpoint state\n")
    elif damage == "binary":
        open(state, "wb").write(b"\xff\xfe\x00\x81garbage")
    else:
        open(state, "w").write('model_checkpoint_path: "model.ckpt-99"\n')
    caplog.set_level(logging.WARNING, logger="bridge")
    est = _estimator(model_dir, save_checkpoints_steps=100)
    est.train(INPUT, steps=1)
    warning = _resume_warning(caplog)
    assert re.search(reason, warning), warning
    assert int(est.get_variable_value("global_step")) == 4
    assert checkpoint_steps(model_dir) == [0, 1, 2, 3, 4]  # nothing deleted, nothing restarted
    assert os.path.basename(tf.train.get_checkpoint_state(model_dir).model_checkpoint_path) == "model.ckpt-4"


def test_no_intact_checkpoint_refuses_to_start_over(model_dir):
    _trained(model_dir, steps=1, keep=1)
    os.remove(os.path.join(model_dir, "model.ckpt-1.index"))
    before = sorted(os.listdir(model_dir))
    with pytest.raises(_checkpoints.CheckpointRecoveryError) as info:
        _estimator(model_dir).train(INPUT, steps=1)
    message = str(info.value)
    assert "model.ckpt-1.index is missing" in message
    assert "Refusing to start from scratch" in message
    assert "move these files out of model_dir" in message and "warm_start_from" in message
    assert sorted(os.listdir(model_dir)) == before  # nothing written or deleted
    with pytest.raises(_checkpoints.CheckpointRecoveryError):
        _estimator(model_dir).evaluate(make_input_fn(), steps=1)


def test_interrupted_first_save_is_not_a_trained_checkpoint(model_dir):
    # A first save killed between its data file and its index: nothing was ever completed.
    os.makedirs(model_dir)
    open(os.path.join(model_dir, "model.ckpt-0.data-00000-of-00001"), "wb").write(b"partial")
    assert _checkpoints.find_checkpoint(model_dir) is None
    est = _estimator(model_dir)
    est.train(INPUT, steps=2)
    assert int(est.get_variable_value("global_step")) == 2


def test_no_intact_checkpoint_with_explicit_warm_start_trains(tmp_path, model_dir):
    source = _trained(str(tmp_path / "source"), steps=2)
    _trained(model_dir, steps=1, keep=1)
    with open(os.path.join(model_dir, "model.ckpt-1.index"), "r+b") as f:
        f.truncate(5)
    est = _estimator(model_dir, warm_start_from=source)
    est.train(INPUT, steps=2)
    assert int(est.get_variable_value("global_step")) == 2
    assert os.path.exists(os.path.join(model_dir, "model.ckpt-1.data-00000-of-00001"))


def test_interrupted_state_file_writes_are_cleaned_up(model_dir, monkeypatch):
    _trained(model_dir, steps=1)
    killer = SaveKiller(monkeypatch, kill_at=lambda op: op.kind == "replace")
    with pytest.raises(Killed):
        _estimator(model_dir, save_checkpoints_steps=1).train(INPUT, steps=2)
    killer.undo()
    assert glob.glob(os.path.join(model_dir, "checkpoint.tmp*"))
    _estimator(model_dir, save_checkpoints_steps=1).train(INPUT, steps=1)
    assert not glob.glob(os.path.join(model_dir, "checkpoint.tmp*"))


# -- 3. full disk ------------------------------------------------------------------------------------
def test_full_disk_keeps_previous_checkpoint_and_restart_does_not_resave(model_dir, monkeypatch):
    _trained(model_dir, steps=2)
    saves = []

    def full_disk(**kwargs):
        saves.append(kwargs["prefix"])
        raise tf.errors.ResourceExhaustedError(None, None, f"{kwargs['prefix']}.data-00000-of-00001; No space left on device")

    monkeypatch.setattr(tf.raw_ops, "SaveV2", full_disk)
    for attempt in range(2):  # every restart resumes from ckpt-2 and trains until the next save
        with pytest.raises(OSError) as info:
            _estimator(model_dir, save_checkpoints_steps=100).train(INPUT, steps=3)
        message = str(info.value)
        assert "Could not save checkpoint" in message and "No space left on device" in message
        assert "previous checkpoint " + os.path.join(model_dir, "model.ckpt-2") + " is intact" in message
        assert _step(_checkpoints.latest_checkpoint(model_dir)) == 2
    # Only the end-of-call saves were attempted: never the restored step 2 again.
    assert [_step(p) for p in saves] == [5, 5]
    monkeypatch.undo()
    est = _estimator(model_dir, save_checkpoints_steps=100)
    est.train(INPUT, steps=3)
    assert int(est.get_variable_value("global_step")) == 5
