"""tf_keras with TF_USE_LEGACY_KERAS=1: 2.15's names and numbers, tf_keras metrics and models in
eval_metric_ops and export, ON_READ model state (BatchNormalization's moving statistics) saved.

Runs where tf_keras is installed (not a bridge dependency; CI installs the release matching
TensorFlow, see .ci/run). The script runs in a subprocess, because TF_USE_LEGACY_KERAS must be
set before TensorFlow is imported.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from compat._legacy import facts, run_python

# Not imported here: importing tf_keras into the test process would change it for every other test.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("tf_keras") is None, reason="tf_keras is not installed")

FACTS = facts("tf_keras")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_keras_model.py")


@pytest.fixture(scope="module")
def result():
    out = run_python(f"import runpy; runpy.run_path({SCRIPT!r}, run_name='__main__')", TF_USE_LEGACY_KERAS="1")
    return json.loads(out.strip().splitlines()[-1])


def test_tf_keras_model_trains_evaluates_and_predicts_as_in_2_15(result):
    assert "tf_keras" in result["keras"]
    got = result["fixture"]
    assert sorted(got["after_3_steps"]) == sorted(FACTS["after_3_steps"])  # sequential/dense/kernel, ...
    for name, value in FACTS["after_3_steps"].items():
        np.testing.assert_allclose(got["after_3_steps"][name], value, rtol=1e-5, atol=1e-7, err_msg=name)
    assert got["evaluate"]["accuracy"] == pytest.approx(FACTS["evaluate"]["accuracy"])  # a tf_keras metric object
    assert got["evaluate"]["loss"] == pytest.approx(FACTS["evaluate"]["loss"], rel=1e-5)
    np.testing.assert_allclose(got["predictions"], FACTS["predictions"], rtol=1e-5)


def test_tf_keras_keys_keep_enclosing_tf_scopes_as_in_2_15(result):
    assert result["fixture"]["scoped_names"] == FACTS["scoped_names"]  # net/sequential/dense/kernel, head/dense_1/bias


def test_tf_keras_model_exports_and_serves_2_15s_predictions(result):
    np.testing.assert_allclose(result["fixture"]["served"], FACTS["predictions"], rtol=1e-5)


def test_tf_keras_batch_norm_statistics_are_saved_and_restored(result):
    got = result["statistics"]
    assert any(n.endswith("batch_normalization/moving_mean") for n in got["names"])
    assert any(n.endswith("batch_normalization/moving_variance") for n in got["names"])
    assert not any("accuracy" in n for n in got["names"])  # metric state stays local
    assert max(got["moving_mean"]) > 1.0  # moved from its initial 0: updated, saved and restored
    assert got["accuracy"] > 0.9  # evaluates with the saved statistics as it trained
