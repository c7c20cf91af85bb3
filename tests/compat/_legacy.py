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
