"""The streaming-metrics example runs, without TensorFlow."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "streaming_metrics.py"


def test_streaming_metrics_example_runs_without_tensorflow(tmp_path):
    code = (f"import runpy, sys; runpy.run_path({str(EXAMPLE)!r}, run_name='__main__'); "
            "assert 'tensorflow' not in sys.modules")
    # Run outside the checkout, so the subprocess imports the installed package like this one.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "agree with the single pass" in out.stdout
    assert "rejected:" in out.stdout
