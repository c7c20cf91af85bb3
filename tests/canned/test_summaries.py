"""The canned models' training summaries: 2.15's tags and values (tests/fixtures/legacy_2_15/canned/
summaries.json, recorded by record_summaries.py from the fixture model_dirs), read back from the
events file bridge writes."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

import legacy_cases as L

with open(os.path.join(L.FIXTURES, "summaries.json")) as f:
    RECORDED = json.load(f)

# The recording script's event reader (it imports record.py as "record": the copy legacy_cases loaded).
sys.modules.setdefault("record", L.record)
_spec = importlib.util.spec_from_file_location("record_summaries_2_15", os.path.join(L.FIXTURES, "record_summaries.py"))
record_summaries = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record_summaries)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_training_summaries_are_2_15s(name, tmp_path):
    model_dir = L.copy_model_dir(name, str(tmp_path))
    skip = set(os.listdir(model_dir))
    est = L.build(name, model_dir)
    est._config = est._config.replace(save_summary_steps=1, log_step_count_steps=None)
    est.train(L.input_fn(name, slice(0, 2 * L.BATCH)), steps=2)
    got = record_summaries.read_events(model_dir, skip)
    want = RECORDED[name]
    assert sorted(got) == sorted(want)
    for tag, steps in want.items():
        assert sorted(got[tag]) == sorted(steps), tag
        for step, value in steps.items():
            if isinstance(value, dict):
                assert got[tag][step]["count"] == value["count"], (tag, step)
                np.testing.assert_allclose(got[tag][step]["sum"], value["sum"], rtol=1e-4, atol=1e-5,
                                           err_msg=f"{tag} {step}")
            else:
                np.testing.assert_allclose(got[tag][step], value, rtol=1e-5, atol=1e-6, err_msg=f"{tag} {step}")
