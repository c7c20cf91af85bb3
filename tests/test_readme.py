"""The README's Python snippet (also the PyPI description) runs as written."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def readme_snippet(model_dir: str) -> str:
    """The README's first ```python block, with its model_dir moved to `model_dir`."""
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert '"/tmp/digits' in code, "the README snippet no longer writes to /tmp/digits; update this test"
    return code.replace('"/tmp/digits', f'"{model_dir}')


def test_readme_snippet_runs(tmp_path):
    model_dir = tmp_path / "digits"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # Run outside the checkout, so the snippet imports the installed package.
    done = subprocess.run(
        [sys.executable, "-c", readme_snippet(str(model_dir))],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "'accuracy'" in done.stdout
    assert len(os.listdir(model_dir / "serving")) == 1  # the final export_saved_model
    assert os.listdir(model_dir / "export" / "best_exporter")  # BestExporter kept the evaluated checkpoint
