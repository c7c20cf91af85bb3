"""A hook fetching the global step gets the step its batch trains at, as in 2.15 (0 first).

Facts: tests/fixtures/legacy_2_15/hook_global_step (record.py ran the same model on 2.15).
bridge's own step-keeping hooks (StopAtStepHook, CheckpointSaverHook, ...) still act on the same
steps: the checkpoints written are 2.15's.
"""

from __future__ import annotations

import logging
import os

import bridge
from compat._legacy import facts, module

FACTS = facts("hook_global_step")
MODEL = module("hook_global_step")
MODEL.estimator = bridge  # the import edit


def test_hooks_fetch_the_step_before_its_update_and_checkpoints_stay_2_15s(tmp_path, caplog):
    config = bridge.RunConfig(save_checkpoints_steps=2, log_step_count_steps=None)
    for call, steps in (("first", 3), ("resumed", 2)):
        fetcher = MODEL.StepFetcher()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            bridge.Estimator(MODEL.model_fn, str(tmp_path), config).train(MODEL.input_fn, steps=steps, hooks=[fetcher])
        assert fetcher.by_variable == FACTS[call]["hook_by_variable"]
        logged = [r.getMessage().split(" (")[0] for r in caplog.records if r.getMessage().startswith("step = ")]
        assert logged == [line.split(" (")[0] for line in FACTS[call]["logging_tensor_hook"]]
        at_end = [r.getMessage() for r in caplog.records if r.getMessage().startswith("final step")]
        assert at_end == FACTS[call]["logging_tensor_hook_at_end"]  # the variable's value after training
    written = sorted(int(n.split("-")[1].split(".")[0]) for n in os.listdir(tmp_path) if n.endswith(".index"))
    assert written == FACTS["checkpoints"]
