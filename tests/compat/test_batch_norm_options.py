"""tf.compat.v1.layers.batch_normalization with renorm, virtual batches and adjustment: 2.15's
variable names and shapes, moving statistics after 3 UPDATE_OPS steps, training and inference
outputs (tests/fixtures/legacy_2_15/batch_norm_options/), and 2.15's errors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import bridge
from compat._legacy import facts, module

FACTS = facts("batch_norm_options")
CASES = module("batch_norm_options", "cases")


def _config():
    return bridge.RunConfig(log_step_count_steps=None, save_summary_steps=None)


@pytest.mark.parametrize("case", sorted(FACTS["cases"]))
def test_batch_norm_options_match_2_15(tmp_path, case):
    expected = FACTS["cases"][case]
    seen = {}
    model_fn = CASES.make_model_fn(bridge.EstimatorSpec, case)

    def recording_model_fn(features, labels, mode):
        spec = model_fn(features, labels, mode)
        if mode == "train":
            seen["variables"] = {v.name: v.shape.as_list() for v in tf.compat.v1.global_variables() if "bn/" in v.name}
            seen["update_ops"] = len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS))
        return spec

    estimator = bridge.Estimator(recording_model_fn, str(tmp_path), _config())
    estimator.train(CASES.input_fn(case), steps=3)
    assert seen["variables"] == expected["variables"]  # renorm's moving_stddev, renorm_mean, renorm_stddev; [1, 1, 3]
    assert seen["update_ops"] == expected["update_ops"]
    assert sorted(estimator.get_variable_names()) == sorted(expected["after_3_steps"])
    for name, value in expected["after_3_steps"].items():
        np.testing.assert_allclose(estimator.get_variable_value(name), value, rtol=1e-5, atol=1e-6, err_msg=name)
    rows = list(estimator.predict(CASES.predict_input_fn(case)))
    for key in ("inference", "training"):
        np.testing.assert_allclose(np.stack([row[key] for row in rows]), expected[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("case", sorted(FACTS["errors"]))
def test_batch_norm_options_refused_as_2_15_refused_them(case):
    expected = FACTS["errors"][case]

    def model_fn(features, labels, mode):
        CASES.build_error(case)
        return bridge.EstimatorSpec(mode, predictions=tf.zeros([1]))

    estimator = bridge.Estimator(model_fn, config=_config())
    run = lambda: next(estimator.predict(lambda: tf.data.Dataset.from_tensors({"x": np.zeros((1, 1), np.float32)})))  # noqa: E731
    if expected is None:  # 2.15 ignored fused=True for these options
        run()
        return
    with pytest.raises(ValueError) as raised:
        run()
    assert str(raised.value) == expected["message"]
