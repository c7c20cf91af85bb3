"""Every public name of tf.estimator 2.15 resolves under bridge at the same path.

``tf.estimator.X`` and ``tf.compat.v1.estimator.X`` (recorded from 2.15 in
tests/fixtures/legacy_2_15/api/public_names.json) are looked up as ``bridge.X``; for example
``tf.estimator.experimental.stop_if_no_decrease_hook`` is ``bridge.experimental.stop_if_no_decrease_hook``.
Names still missing are listed in public_names_missing.json with the issue that brings them, so
the gap is documented and a name that disappears fails here.
"""

from __future__ import annotations

import fnmatch
import json
import os

import pytest

import bridge

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "legacy_2_15", "api")
with open(os.path.join(HERE, "public_names.json")) as f:
    NAMES = json.load(f)
with open(os.path.join(HERE, "public_names_missing.json")) as f:
    STATUS = json.load(f)

ALL = sorted(set(NAMES["tf.estimator"]) | set(NAMES["tf.compat.v1.estimator"]))
WANTED = [n for n in ALL if not any(fnmatch.fnmatchcase(n, pattern) for pattern in STATUS["excluded"])]
MISSING = STATUS["missing"]
PRESENT = [n for n in WANTED if n not in MISSING]


def _resolve(name: str):
    value = bridge
    for part in name.split("."):
        value = getattr(value, part)
    return value


def test_the_recorded_api_is_2_15s():
    assert len(NAMES["tf.estimator"]) == 74 and len(ALL) == 85  # the counts the issue names
    assert set(MISSING) <= set(WANTED)


@pytest.mark.parametrize("name", PRESENT)
def test_name_resolves_under_bridge(name):
    assert _resolve(name) is not None


def test_no_wanted_name_is_missing():
    """Every 2.15 name outside the excluded families resolves; a gap must be listed (with its issue) to pass."""
    unresolved = [n for n in WANTED if n not in MISSING and not _has(n)]
    assert not unresolved
    landed = [n for n in MISSING if _has(n)]
    assert not landed, f"{landed} resolve now: remove them from public_names_missing.json"


def _has(name: str) -> bool:
    try:
        return _resolve(name) is not None
    except AttributeError:
        return False
