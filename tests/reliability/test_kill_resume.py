"""Kill-and-resume: 20 kills injected across the save path, for keep_checkpoint_max 1 and 5.

Each run trains with a save at every step and is killed at one of the save's durable
operations (before/after SaveV2, the state-file replace, each delete of a retired checkpoint).
Then a fresh Estimator resumes. Nothing may be lost: the restart resumes from a checkpoint at
least as new as the last one the state file committed before the kill, every checkpoint the
state file lists is intact, and no temporary file of the interrupted save is left behind.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

import bridge
from bridge import _checkpoints
from tests.conftest import keras_model_fn, make_input_fn
from tests.reliability.kills import Killed, SaveKiller

INPUT = make_input_fn(epochs=None)


def _estimator(model_dir, keep):
    config = bridge.RunConfig(save_checkpoints_steps=1, keep_checkpoint_max=keep, log_step_count_steps=None)
    return bridge.Estimator(keras_model_fn, model_dir=model_dir, config=config, params={})


def _listed_checkpoints_intact(model_dir):
    state = tf.train.get_checkpoint_state(model_dir)
    if state is None:
        return
    for path in state.all_model_checkpoint_paths:
        full = os.path.join(model_dir, path)
        assert _checkpoints.checkpoint_problem(full) is None, full
        assert int(tf.train.load_checkpoint(full).get_tensor("global_step")) == int(path.rsplit("-", 1)[1])


@pytest.mark.parametrize(
    "keep, steps, kill_points",
    [
        (1, 6, list(range(1, 21))),  # ops per save: 3 for the first, then 5 (2 deletes)
        (5, 8, [int(k) for k in np.linspace(1, 35, 20)]),  # deletes start at the 6th save
    ],
)
def test_twenty_kills_across_the_save_path_lose_nothing(tmp_path, keep, steps, kill_points):
    assert len(set(kill_points)) == 20
    kinds = set()
    for k in kill_points:
        model_dir = str(tmp_path / f"keep{keep}-kill{k}")
        with pytest.MonkeyPatch.context() as patch:
            killer = SaveKiller(patch, kill_at=lambda op, k=k: op.index == k)
            with pytest.raises(Killed):
                _estimator(model_dir, keep).train(INPUT, steps=steps)
            kinds.add(killer.ops[-1].kind)
        committed = killer.committed[-1] if killer.committed else None

        found = _checkpoints.find_checkpoint(model_dir)
        if committed is not None:
            assert found is not None and int(found.rsplit("-", 1)[1]) >= committed, (k, found, committed)
        _listed_checkpoints_intact(model_dir)

        resumed_from = int(found.rsplit("-", 1)[1]) if found else 0
        est = _estimator(model_dir, keep)
        est.train(INPUT, steps=2)
        assert int(est.get_variable_value("global_step")) == resumed_from + 2, (k, killer.ops[-1])
        assert not glob.glob(os.path.join(model_dir, "checkpoint.tmp*"))
        _listed_checkpoints_intact(model_dir)
        assert len(tf.train.get_checkpoint_state(model_dir).all_model_checkpoint_paths) <= keep
    assert kinds == {"save_before", "save_after", "replace", "remove"}
