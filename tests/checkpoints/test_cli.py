"""python -m bridge.checkpoints inspect|convert on model_dirs written by tf.estimator 2.15."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from bridge.checkpoints.__main__ import main
from tests.checkpoints import legacy
from tests.checkpoints.test_keras_resume import WEIGHTS

WRITTEN_BY = {
    "adam": "tf.compat.v1.train.AdamOptimizer",
    "momentum": "tf.compat.v1.train.MomentumOptimizer",
    "nesterov": "tf.compat.v1.train.MomentumOptimizer",
    "adagrad": "tf.compat.v1.train.AdagradOptimizer",
    "rmsprop": "tf.compat.v1.train.RMSPropOptimizer",
    "rmsprop_centered": "tf.compat.v1.train.RMSPropOptimizer(centered=True)",
    "ftrl": "tf.compat.v1.train.FtrlOptimizer",
    "adagrad_da": "tf.compat.v1.train.AdagradDAOptimizer",
    "proximal_adagrad": "tf.compat.v1.train.ProximalAdagradOptimizer",
    "sgd": "none found (tf.compat.v1.train.GradientDescentOptimizer keeps no slots)",
}


def _fixture(name):
    return os.path.join(legacy.FIXTURES, name, "model_dir")


@pytest.mark.parametrize("name", legacy.V1_OPTIMIZERS)
def test_inspect_names_the_optimizer_step_and_variables(name, capsys):
    assert main(["inspect", _fixture(name), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["optimizer"] == WRITTEN_BY[name]
    assert report["step"] == 20
    assert report["checkpoint"].endswith("model.ckpt-20")
    recorded = legacy.facts(name)["checkpoint"]  # what 2.15 listed: every key with its shape
    assert {v["key"]: v["shape"] for v in report["variables"]} == recorded
    roles = {v["key"]: v["role"] for v in report["variables"]}
    assert roles["dense/kernel"] == "model variable" and roles["global_step"] == "global step"
    for slot, key in legacy.facts(name)["slot_names"]["slots"].items():
        assert roles[key].startswith(f"slot '{slot}' of dense/kernel")


def test_inspect_a_checkpoint_prefix(capsys):
    assert main(["inspect", os.path.join(_fixture("momentum"), "model.ckpt-20"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["optimizer"] == WRITTEN_BY["momentum"] and report["step"] == 20


def test_inspect_text_as_a_command():
    done = subprocess.run(
        [sys.executable, "-m", "bridge.checkpoints", "inspect", _fixture("adam")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "optimizer:   tf.compat.v1.train.AdamOptimizer" in done.stdout
    assert "keras-adam (state mapped by bridge)" in done.stdout
    assert "dense_1/kernel/Adam_1" in done.stdout and "global step: 20" in done.stdout


@pytest.mark.parametrize(
    "name, optimizer, config, make_keras",
    [
        ("adam", "keras-adam", {"learning_rate": 0.01, "epsilon": 1e-8},
         lambda: keras.optimizers.Adam(0.01, epsilon=1e-8)),
        ("momentum", "keras-sgd", {"learning_rate": 0.05, "momentum": 0.9},
         lambda: keras.optimizers.SGD(0.05, momentum=0.9)),
        ("rmsprop", "keras-rmsprop", {"learning_rate": 0.01, "momentum": 0.9, "epsilon": 1e-10},
         lambda: keras.optimizers.RMSprop(0.01, momentum=0.9, epsilon=1e-10)),
    ],
)  # fmt: skip
def test_converted_model_dir_resumes_natively_with_the_keras_optimizer(
    name, optimizer, config, make_keras, tmp_path, capsys
):
    out = str(tmp_path / "converted")
    assert main(["convert", _fixture(name), out, "--optimizer", optimizer, "--optimizer-config", json.dumps(config)]) == 0
    converted = legacy.variables(out)
    capsys.readouterr()
    assert main(["inspect", out, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["optimizer"].startswith("a Keras 3 optimizer (bridge; variables under")
    assert report["continues_with"] == ["the same Keras 3 optimizer (bridge-native)"]
    assert not any(k.endswith(("/Adam", "/Adam_1", "/Momentum", "/RMSProp", "/RMSProp_1")) for k in converted)
    legacy.estimator(out, make_keras).train(legacy.one_step_batch(), steps=1)
    resumed = legacy.variables(out)
    assert sorted(resumed) == sorted(converted)  # keyed exactly as bridge keys this optimizer: no mapping needed
    expected = legacy.facts(name)["after_one_step"]
    for key in WEIGHTS:
        np.testing.assert_allclose(resumed[key], expected[key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_convert_v1_is_a_verified_copy(tmp_path):
    out = str(tmp_path / "copy")
    assert main(["convert", _fixture("ftrl"), out, "--optimizer", "v1"]) == 0
    source, copy = legacy.variables(_fixture("ftrl")), legacy.variables(out)
    assert sorted(copy) == sorted(source) and all(np.array_equal(copy[k], source[k]) for k in source)


def _write_checkpoint(model_dir, values, step=3):
    os.makedirs(model_dir, exist_ok=True)
    prefix = os.path.join(model_dir, f"model.ckpt-{step}")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(values), shape_and_slices=[""] * len(values),
                      tensors=[tf.constant(v) for v in values.values()])  # fmt: skip
    with open(os.path.join(model_dir, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "model.ckpt-{step}"\n')


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = legacy.copy_model_dir("adam", tmp_path)
    with open(os.path.join(corrupt, "model.ckpt-20.index"), "wb") as f:
        f.write(b"not a checkpoint index")
    unknown = str(tmp_path / "adadelta")
    kernel = np.ones((4, 8), np.float32)
    _write_checkpoint(unknown, {"dense/kernel": kernel, "dense/kernel/Adadelta": kernel,
                                "dense/kernel/Adadelta_1": kernel, "global_step": np.int64(3)})  # fmt: skip
    return {
        "missing": (str(tmp_path / "nowhere"), "neither a model_dir nor a checkpoint prefix"),
        "empty": (str(empty), "is not a model_dir"),
        "corrupt index": (corrupt, "none of them can be restored"),
        "unknown layout": (unknown, "unknown layout"),
    }


def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    for what, (path, message) in _bad_inputs(tmp_path).items():
        before = sorted(os.listdir(tmp_path))
        assert main(["inspect", path]) == 1, what
        assert message in capsys.readouterr().err, what
        out = str(tmp_path / f"out_{what.replace(' ', '_')}")
        assert main(["convert", path, out, "--optimizer", "keras-adam"]) == 1, what
        assert message in capsys.readouterr().err, what
        assert sorted(os.listdir(tmp_path)) == before, what  # no out_dir, no staging left behind


def test_convert_refuses_state_it_cannot_map_and_a_non_empty_target(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["convert", _fixture("adagrad_da"), out, "--optimizer", "keras-adagrad"]) == 1
    assert "AdagradDAOptimizer" in capsys.readouterr().err and not os.path.exists(out)
    assert main(["convert", _fixture("momentum"), out, "--optimizer", "keras-sgd"]) == 1  # momentum=0 would drop it
    assert "would drop" in capsys.readouterr().err and not os.path.exists(out)
    os.makedirs(out)
    shutil.copy(os.path.join(_fixture("adam"), "checkpoint"), out)
    assert main(["convert", _fixture("adam"), out, "--optimizer", "v1"]) == 1
    assert "not empty" in capsys.readouterr().err
    assert os.listdir(out) == ["checkpoint"]
