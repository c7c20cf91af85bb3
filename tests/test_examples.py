"""The README's examples run end to end (each exits non-zero when its own check fails)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    "script",
    [
        "custom_model_fn.py", "keras_to_estimator.py", "breast_cancer_metrics.py", "early_stopping.py", "canned.py",
        "legacy_script.py",
    ],
)
def test_example_runs(script, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # Run outside the checkout, so the example imports the installed package.
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--model-dir", str(tmp_path / "model")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert os.path.isdir(tmp_path / "model" / "export")
