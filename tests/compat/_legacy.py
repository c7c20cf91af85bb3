"""Loading recorded TF 2.15 fixtures (tests/fixtures/legacy_2_15/<topic>/)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from typing import Any

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "legacy_2_15")


def facts(topic: str) -> dict[str, Any]:
    with open(os.path.join(FIXTURES, topic, "facts.json")) as f:
        return json.load(f)


def module(topic: str, name: str = "model") -> Any:
    """The fixture's shared model source (the same file the 2.15 recorder ran)."""
    path = os.path.join(FIXTURES, topic, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"legacy_{topic}_{name}", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def copy_model_dir(topic: str, destination: str) -> str:
    """A writable copy of the fixture's 2.15 model_dir."""
    target = os.path.join(destination, f"{topic}_model_dir")
    shutil.copytree(os.path.join(FIXTURES, topic, "model_dir"), target)
    return target


def run_python(code: str, **env: str) -> str:
    """Runs ``code`` in a fresh Python (for what must happen before TensorFlow or a module is imported).

    The bridge under test is importable there (the installed package in CI, this checkout
    otherwise); returns stdout, failing the test with stderr's tail on a non-zero exit.
    """
    import subprocess
    import sys
    import tempfile
    import textwrap

    import bridge

    root = os.path.dirname(os.path.dirname(os.path.abspath(bridge.__file__)))
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env)
    environment["PYTHONPATH"] = os.pathsep.join([root, os.path.dirname(os.path.dirname(FIXTURES)), environment.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=environment, capture_output=True, text=True, timeout=600,
        cwd=tempfile.gettempdir(),  # `python -c` puts cwd first on sys.path: keep a checkout's bridge/ out
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
