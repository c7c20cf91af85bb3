"""Messages name tf.estimator 2.15's API the way the user reached it (issue 20 item 8, bridge._api_names).

Two checks: no user-facing string in bridge's sources hard-codes ``bridge.<a 2.15 name>`` (they
go through ``api_name``), and a representative set of errors, across the runtime, export,
hooks, canned estimators and train_and_evaluate, says ``tf.estimator.X`` after the install line
and ``bridge.X`` without it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf

import bridge

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLIC = json.load(open(os.path.join(ROOT, "tests", "fixtures", "legacy_2_15", "api", "public_names.json")))["tf.estimator"]
HARD_CODED = re.compile(r"\bbridge\.(%s)\b" % "|".join(re.escape(name) for name in sorted(PUBLIC, key=len, reverse=True)))


def _message_strings(tree: ast.AST):
    """String constants of a module that are not docstrings (f-string parts included)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_message_hard_codes_a_bridge_path_for_a_2_15_name():
    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "bridge")):
        for filename in files:
            if not filename.endswith(".py"):
                continue
            path = os.path.join(folder, filename)
            tree = ast.parse(open(path, encoding="utf-8").read())
            for line, text in _message_strings(tree):
                if text.startswith("bridge.") and re.fullmatch(r"[\w.]+", text):
                    continue  # a module path (lazy imports), not a message
                if HARD_CODED.search(text):
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{line}: {text[:80]!r}")
    assert not offenders, "use bridge._api_names.api_name(...) in these messages:\n" + "\n".join(offenders)


_SCRIPT = r'''
import json, sys
import numpy as np
import tensorflow as tf
import bridge
if sys.argv[1] == "install":
    bridge.install_as_tf_estimator()
    est = tf.estimator
else:
    est = bridge


def model_fn(features, labels, mode):
    w = tf.compat.v1.get_variable("w", [1])
    loss = tf.reduce_mean(tf.square(features["x"] * w - labels))
    return est.EstimatorSpec(mode, loss=loss, predictions={"y": features["x"] * w},
                             train_op=tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(loss, tf.compat.v1.train.get_global_step()))


def input_fn():
    return tf.data.Dataset.from_tensor_slices(({"x": np.ones([4, 1], np.float32)}, np.ones([4, 1], np.float32))).batch(2)


class SessionUser(est.SessionRunHook):
    def after_create_session(self, session, coord):
        session.run(None)


model_dir = sys.argv[2]
estimator = est.Estimator(model_fn, model_dir=model_dir)
estimator.train(input_fn, steps=1)
cases = {
    "train_and_evaluate": lambda: est.train_and_evaluate(object(), None, est.EvalSpec(lambda: None)),
    "early_stopping": lambda: est.experimental.stop_if_no_decrease_hook(object(), "loss", 10),
    "hook_using_the_session": lambda: estimator.train(input_fn, steps=1, hooks=[SessionUser()]),
    "export_receiver": lambda: estimator.export_saved_model(model_dir + "/export", lambda: {"x": 1}),
    "supervised_export_receiver": lambda: estimator.export_saved_model(
        model_dir + "/export", est.export.build_raw_serving_input_receiver_fn({"x": tf.constant([[1.0]])}),
        experimental_mode="eval"),
    "canned_head": lambda: est.DNNEstimator(head=object(), hidden_units=[2], feature_columns=[]),
}
out = {}
for name, call in cases.items():
    try:
        call()
        out[name] = ["none", ""]
    except Exception as error:
        out[name] = [type(error).__name__, str(error)]
print(json.dumps(out))
'''

# case -> (exception class, the name the message qualifies)
EXPECTED = {
    "train_and_evaluate": ("TypeError", "Estimator"),
    "early_stopping": ("TypeError", "Estimator"),
    "hook_using_the_session": ("NoSessionError", "CheckpointSaverHook"),
    "export_receiver": ("TypeError", "export.ServingInputReceiver"),
    "supervised_export_receiver": ("TypeError", "experimental.build_raw_supervised_input_receiver_fn"),
    "canned_head": ("TypeError", "Head"),
}


@pytest.mark.parametrize("entry", ["install", "bridge"])
def test_messages_name_the_namespace_the_script_uses(tmp_path, entry):
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT)
    # the bridge under test (the installed package in CI, this checkout otherwise), not the checkout's sources
    installed_root = os.path.dirname(os.path.dirname(os.path.abspath(bridge.__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=installed_root)
    done = subprocess.run([sys.executable, str(script), entry, str(tmp_path / "model")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    prefix, other = ("tf.estimator.", "bridge.") if entry == "install" else ("bridge.", "tf.estimator.")
    for case, (error, name) in EXPECTED.items():
        assert out[case][0] == error, (case, out[case])
        assert prefix + name in out[case][1], (case, out[case][1])
        assert other + name not in out[case][1], (case, out[case][1])


def test_api_name_in_this_process_without_the_install_line():
    from bridge._api_names import api_name

    assert not hasattr(tf, "estimator") or not isinstance(tf.estimator, bridge.compat.namespace.EstimatorNamespace)
    assert api_name("export.EvalOutput") == "bridge.export.EvalOutput"
