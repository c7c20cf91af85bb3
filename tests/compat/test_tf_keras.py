"""tf_keras with TF_USE_LEGACY_KERAS=1: ON_READ model state (BatchNormalization's moving statistics) is saved.

Runs only where tf_keras is installed (it is not a bridge dependency): the script runs in a
subprocess, because TF_USE_LEGACY_KERAS must be set before TensorFlow is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("tf_keras")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def test_tf_keras_batch_norm_statistics_are_saved_and_restored():
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, "tf_keras_model.py")], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "tf_keras" in result["keras"]
    assert any(n.endswith("batch_normalization/moving_mean") for n in result["names"])
    assert any(n.endswith("batch_normalization/moving_variance") for n in result["names"])
    assert not any("accuracy" in n for n in result["names"])  # metric state stays local
    assert max(result["moving_mean"]) > 1.0  # moved from its initial 0: updated, saved and restored
    assert result["accuracy"] > 0.9  # evaluates with the saved statistics as it trained
