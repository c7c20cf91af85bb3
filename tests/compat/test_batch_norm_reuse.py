"""A v1 batch normalization layer called twice per step moves its statistics as 2.15 did.

Facts: tests/fixtures/legacy_2_15/batch_norm_reuse (record.py ran model.py on 2.15): both calls'
updates start from the step's starting value, they are not applied one after the other.
"""

from __future__ import annotations

import numpy as np

import bridge
from compat._legacy import facts, module

FACTS = facts("batch_norm_reuse")
MODEL = module("batch_norm_reuse")
MODEL.estimator = bridge  # the import edit


def test_both_calls_update_from_the_steps_starting_value(tmp_path):
    est = bridge.Estimator(MODEL.model_fn, str(tmp_path))
    for steps in (1, 2):
        est.train(MODEL.input_fn, steps=1)
        expected = FACTS[f"after_{steps}_steps"]
        for name, values in MODEL.moving_statistics(est).items():
            np.testing.assert_allclose(values, expected[name], rtol=1e-6)
