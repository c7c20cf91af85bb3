"""A TF1 session-era script (tests/fixtures/legacy_2_15/session_habits/model.py) gives 2.15's
numbers on bridge, fresh and continuing from the model_dir 2.15 wrote (facts from record.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import bridge
from compat._legacy import copy_model_dir, facts, module

FACTS = facts("session_habits")
MODEL = module("session_habits")
MODEL.estimator = bridge  # the import edit
CONFIG = bridge.RunConfig(tf_random_seed=11, log_step_count_steps=None, save_summary_steps=1000)


def _assert_close(actual, expected):
    assert [step for step, _ in actual] == [step for step, _ in expected]
    np.testing.assert_allclose([loss for _, loss in actual], [loss for _, loss in expected], rtol=2e-5)


def _assert_same_results(actual, expected):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, rel=2e-5), name


def test_fresh_training_gives_2_15s_losses(tmp_path):
    losses, results = MODEL.run(str(tmp_path), 15, CONFIG)
    _assert_close(losses, FACTS["first_losses"])
    _assert_same_results(results, FACTS["eval_15"])


def test_continues_from_2_15s_model_dir(tmp_path):
    model_dir = copy_model_dir("session_habits", str(tmp_path))
    est = bridge.Estimator(MODEL.model_fn, model_dir, CONFIG, params=MODEL.PARAMS)
    _assert_same_results({k: float(v) for k, v in est.evaluate(MODEL.eval_input_fn).items()}, FACTS["eval_15"])
    losses, results = MODEL.run(model_dir, 5, CONFIG)
    _assert_close(losses, FACTS["resumed_losses"])
    _assert_same_results(results, FACTS["eval_20"])
