"""A model_dir written by tf.estimator 2.15 continues with the same tf.compat.v1.train optimizer.

One more training step from the 2.15 checkpoint must land on the variables 2.15 itself reached
(weights, every optimizer slot under TF1's exact name, beta powers, global step).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.checkpoints import legacy


@pytest.mark.parametrize("name", legacy.V1_OPTIMIZERS)
def test_one_more_step_matches_2_15(name, tmp_path):
    model_dir = legacy.copy_model_dir(name, tmp_path)
    est = legacy.estimator(model_dir, lambda: legacy.v1_optimizer(name))
    est.train(legacy.one_step_batch(), steps=1)
    expected = legacy.facts(name)["after_one_step"]
    got = legacy.variables(model_dir)
    assert sorted(got) == sorted(expected)  # the same keys: slots named exactly as TF1 named them
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], np.asarray(value), rtol=1e-5, atol=1e-7, err_msg=key)


def test_evaluate_and_predict_give_2_15_numbers(tmp_path):
    for name in ("adam", "ftrl"):
        facts = legacy.facts(name)
        est = legacy.estimator(legacy.copy_model_dir(name, tmp_path), lambda: legacy.v1_optimizer(name))
        result = est.evaluate(legacy.input_fn(legacy.DATA["eval_x"], legacy.DATA["eval_y"]))
        assert result["global_step"] == facts["evaluate"]["global_step"]
        assert result["accuracy"] == pytest.approx(facts["evaluate"]["accuracy"])
        assert result["loss"] == pytest.approx(facts["evaluate"]["loss"], rel=1e-5)
        predictions = list(est.predict(legacy.input_fn(legacy.DATA["predict_x"])))
        np.testing.assert_allclose(
            [p["probabilities"] for p in predictions], facts["predictions"]["probabilities"], rtol=1e-5
        )
        assert [int(p["class_ids"]) for p in predictions] == facts["predictions"]["class_ids"]
