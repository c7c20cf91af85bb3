"""What a user sees: log lines shown once, under TensorFlow's verbosity as in 2.15, and the progress bar.

The subprocess tests run a script with a given logging set-up and read its stderr; the expected
lines come from tf.estimator 2.15 (tests/fixtures/legacy_2_15/console_and_events/facts.json).
"""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from bridge._console import ProgressBar, evaluation_progress

FACTS = json.loads((pathlib.Path(__file__).parent / "fixtures/legacy_2_15/console_and_events/facts.json").read_text())
LEGACY = FACTS["stderr_with_set_verbosity_info"]

SCRIPT = """
import logging, sys
import numpy as np
import tensorflow as tf
import keras
{set_up}
import bridge

def model_fn(features, labels, mode):
    logits = keras.layers.Dense(2)(features["x"])
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    accuracy.update_state(labels, logits)
    return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.1)),
                                eval_metric_ops={{"accuracy": accuracy}})

x = np.random.RandomState(0).randn(512, 3).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int32)
input_fn = lambda: tf.data.Dataset.from_tensor_slices(({{"x": x}}, y)).repeat().batch(4)
config = bridge.RunConfig(save_summary_steps=10, log_step_count_steps=10, save_checkpoints_steps=20)
estimator = bridge.Estimator(model_fn, model_dir=sys.argv[1], config=config)
estimator.train(input_fn, steps=30)
estimator.train(input_fn, steps=10)
for steps in (200, 25, 7):
    estimator.evaluate(input_fn, steps=steps)
"""


def run_script(tmp_path, set_up: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(set_up=textwrap.dedent(set_up)), str(tmp_path / "model")],
        cwd=tmp_path, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stderr.splitlines()


def messages(lines: list[str], prefix: str) -> list[str]:
    return [line[len(prefix):] for line in lines if line.startswith(prefix)]


def test_set_verbosity_info_alone_shows_the_training_log_as_2_15(tmp_path):
    lines = run_script(tmp_path, "tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.INFO)")
    ours = messages(lines, "INFO:bridge:")
    theirs = messages(LEGACY, "INFO:tensorflow:")

    def kinds(msgs):
        numbers = r"<n>|-?\d+(\.\d*)?(e[-+]?\d+)?"
        shapes = [re.sub(r" \(N sec\)$", "", re.sub(numbers, "N", m)) for m in msgs]
        return [shape for shape in shapes if shape.startswith(("loss = ", "global_step/sec"))]

    assert kinds(ours).count("loss = N, step = N") == kinds(theirs).count("loss = N, step = N") == 4
    assert kinds(ours).count("global_step/sec: N") == kinds(theirs).count("global_step/sec: N") == 2
    # The steps the loss lines name: 2.15's 0, 10, 20 (the step each batch trained), then 30 on resume.
    step_numbers = [int(re.search(r"step = (\d+)", m).group(1)) for m in ours if m.startswith("loss = ")]
    assert step_numbers == [int(re.search(r"step = (\d+)", m).group(1)) for m in theirs if m.startswith("loss = ")]
    # evaluate(steps=200/25/7): exactly 2.15's progress lines (at most ~10 per evaluation).
    assert [m for m in ours if m.startswith("Evaluation [")] == [m for m in theirs if m.startswith("Evaluation [")]
    # The resumed train and every evaluate name the checkpoint they restore.
    restored = [m for m in ours if m.startswith("Restoring parameters from ")]
    assert [m.rsplit("/", 1)[1] for m in restored] == ["model.ckpt-30", "model.ckpt-40", "model.ckpt-40", "model.ckpt-40"]
    assert [m.rsplit("/", 1)[1] for m in theirs if m.startswith("Restoring parameters from ")] == [
        m.rsplit("/", 1)[1] for m in restored
    ]
    assert any(m.startswith("Saving dict for global step 40: accuracy = ") for m in ours)


def test_basic_config_after_importing_tensorflow_shows_each_line_once(tmp_path):
    lines = run_script(tmp_path, 'logging.basicConfig(level=logging.INFO, format="%(name)s|%(message)s")')
    ours = messages(lines, "bridge|")
    assert not messages(lines, "INFO:bridge:")  # not also through TensorFlow's handler
    assert len([m for m in ours if m.startswith("loss = ")]) == 4
    assert len([m for m in ours if m.startswith("Evaluation [")]) == 10 + 13 + 7


def test_no_logging_set_up_hides_info_like_2_15(tmp_path):
    lines = run_script(tmp_path, "")
    assert not [line for line in lines if ":bridge:" in line or line.startswith("bridge")]


def test_a_level_on_the_bridge_logger_wins(tmp_path):
    lines = run_script(tmp_path, """
        tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.INFO)
        logging.getLogger("bridge").setLevel(logging.WARNING)
    """)
    assert not messages(lines, "INFO:bridge:")


# -- evaluate's progress lines ----------------------------------------------------------------------
@pytest.mark.parametrize("steps", [200, 25, 7])
def test_evaluation_progress_matches_2_15(steps):
    logged = [int(m.split("[")[1].split("/")[0]) for m in LEGACY if m.endswith(f"/{steps}]")]
    assert evaluation_progress(0, steps, steps) == logged
    # Grouped calls (several batches per call) log the same counts.
    grouped = [n for start in range(0, steps, 16) for n in evaluation_progress(start, min(start + 16, steps), steps)]
    assert grouped == logged


# -- the progress bar -----------------------------------------------------------------------------
class FakeTerminal(io.StringIO):
    def isatty(self):
        return True

    def screen(self) -> list[str]:
        """The lines a terminal would show: \\r returns to the line start, ESC[K clears it."""
        shown = []
        for line in self.getvalue().split("\n"):
            shown.append(line.replace("\033[K", "").split("\r")[-1])
        return shown


def test_bar_only_on_a_terminal_unless_forced():
    assert not ProgressBar(None, 10, "step", stream=io.StringIO()).enabled
    assert ProgressBar(None, 10, "step", stream=FakeTerminal()).enabled
    assert not ProgressBar(False, 10, "step", stream=FakeTerminal()).enabled
    assert ProgressBar(True, 10, "step", stream=io.StringIO()).enabled


def test_log_lines_print_above_the_bar(monkeypatch):
    terminal = FakeTerminal()
    handler = logging.StreamHandler(terminal)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(sys, "__stderr__", terminal)
    bar = ProgressBar(None, 100, "step", stream=terminal)
    bar.MIN_INTERVAL = 0.0
    bar.update(10, loss=0.5)
    logging.getLogger("bridge").warning("a log line")
    bar.update(20, loss=0.25)
    bar.close()
    assert handler.stream is terminal  # handed back
    shown = terminal.screen()
    assert shown[0] == "a log line"
    assert shown[1].startswith("step 20/100 [====")
    assert "loss 0.25" in shown[1]


def test_first_estimate_ignores_the_time_before_the_first_step(monkeypatch):
    clock = iter([1000.0, 1001.0])
    monkeypatch.setattr("bridge._console.time.monotonic", lambda: next(clock))
    terminal = FakeTerminal()
    bar = ProgressBar(True, 1000, "step", stream=terminal)
    bar.MIN_INTERVAL = 0.0
    bar.update(1)  # the first step (tracing took minutes): no rate, no ETA yet
    assert "ETA" not in terminal.screen()[-1]
    bar.update(101)  # 100 steps in 1 s
    assert terminal.screen()[-1].endswith("| 100 step/s ETA 00:09")
