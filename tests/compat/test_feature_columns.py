"""Feature columns through tf.compat.v1.feature_column.input_layer / linear_model: 2.15's names and values."""

from __future__ import annotations

import numpy as np
import pytest

import bridge
from compat._legacy import facts, module

FACTS = facts("feature_columns")
CASES = module("feature_columns", "cases")


@pytest.mark.parametrize("case", CASES.CASES)
def test_column_type_trains_with_2_15_names_and_values(tmp_path, case):
    expected = FACTS["cases"][case]
    estimator = bridge.Estimator(CASES.make_model_fn(bridge.EstimatorSpec, case), str(tmp_path), bridge.RunConfig(log_step_count_steps=None))
    estimator.train(CASES.input_fn, steps=2)
    assert sorted(estimator.get_variable_names()) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(estimator.get_variable_value(name), value, rtol=1e-5, atol=1e-6, err_msg=name)
