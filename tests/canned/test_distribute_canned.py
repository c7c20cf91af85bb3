"""Canned estimators under MirroredStrategy (two logical CPUs, in a child process: logical devices
must be set before TensorFlow starts): a 2.15 model_dir evaluates to 2.15's numbers and one more
step on the global batch lands on the weights 2.15 reached on one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import bridge

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(bridge.__file__)))


@pytest.mark.slow
def test_mirrored_strategy_continues_2_15_model_dirs():
    # (not dnn_regressor: batch normalization's statistics are per replica, in 2.15 too)
    # tf.compat.v1.estimator's classes too: their summed loss is not divided by the replicas and is
    # reported summed over them, as 2.15's TF1 heads did
    cases = ["dnn_classifier", "linear_classifier", "dnn_linear_combined_classifier", "baseline_regressor",
             "dnn_classifier_shared", "v1_dnn_classifier", "v1_linear_classifier",
             "v1_dnn_linear_combined_classifier", "v1_baseline_regressor"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
    done = subprocess.run([sys.executable, os.path.join(HERE, "mirrored_child.py"), *cases], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {name: {"evaluate": [], "step": []} for name in cases}
