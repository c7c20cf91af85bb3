"""Issue 17 item 2, beyond training's restore: warm start from a model_dir and export without a
checkpoint_path pick the newest *intact* checkpoint, as training does, and refuse (naming the
files) when checkpoint files exist but none is intact. Damage is deterministic: a truncated or
missing ``.index``.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

import bridge
from bridge import _checkpoints, _export
from bridge.export import build_raw_serving_input_receiver_fn
from tests.conftest import X, checkpoint_steps, keras_model_fn, make_input_fn

INPUT = make_input_fn(epochs=None)
RECEIVER = build_raw_serving_input_receiver_fn({"x": X[:1]})


def _estimator(model_dir, warm_start_from=None, **config):
    config.setdefault("log_step_count_steps", None)
    return bridge.Estimator(
        keras_model_fn, model_dir=model_dir, params={}, warm_start_from=warm_start_from,
        config=bridge.RunConfig(**config),
    )


@pytest.fixture
def trained(tmp_path):
    """A model_dir with checkpoints at steps 0..3 (one save per step), each with other weights."""
    model_dir = str(tmp_path / "trained")
    _estimator(model_dir, save_checkpoints_steps=1).train(INPUT, steps=3)
    assert checkpoint_steps(model_dir) == [0, 1, 2, 3]
    return model_dir


def _kernel(prefix):
    return tf.train.load_checkpoint(prefix).get_tensor("dense/kernel")


def _truncate_index(model_dir, step):
    with open(os.path.join(model_dir, f"model.ckpt-{step}.index"), "r+b") as f:
        f.truncate(10)


def _recovery_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "recovery" in r.getMessage()]


def _damage_all(model_dir):
    for step in checkpoint_steps(model_dir):
        os.remove(os.path.join(model_dir, f"model.ckpt-{step}.index"))


# -- warm start ------------------------------------------------------------------------------------
def test_warm_start_from_a_model_dir_skips_a_damaged_newest_checkpoint(tmp_path, trained, caplog):
    _truncate_index(trained, 3)
    caplog.set_level(logging.WARNING, logger="bridge")
    target = _estimator(str(tmp_path / "target"), warm_start_from=trained, save_checkpoints_steps=100)
    target.train(INPUT, steps=1)
    (warning,) = _recovery_warnings(caplog)
    assert "restoring " + os.path.join(trained, "model.ckpt-2") in warning
    assert "model.ckpt-3.index cannot be read" in warning
    start = os.path.join(target.model_dir, "model.ckpt-0")  # the warm-started values, before any step
    np.testing.assert_array_equal(_kernel(start), _kernel(os.path.join(trained, "model.ckpt-2")))
    assert not np.array_equal(_kernel(start), _kernel(os.path.join(trained, "model.ckpt-1")))


def test_warm_start_from_a_model_dir_without_an_intact_checkpoint_is_refused(tmp_path, trained):
    _damage_all(trained)
    target = _estimator(str(tmp_path / "target"), warm_start_from=trained)
    with pytest.raises(_checkpoints.CheckpointRecoveryError) as info:
        target.train(INPUT, steps=1)
    message = str(info.value)
    for step in range(4):
        assert f"model.ckpt-{step}.index is missing" in message
    assert "Cannot warm-start from it" in message and "warm_start_from" in message
    assert "Refusing to start from scratch" not in message  # training's advice does not apply here
    assert checkpoint_steps(target.model_dir) == []


def test_warm_start_from_a_damaged_checkpoint_prefix_names_the_file(tmp_path, trained):
    _truncate_index(trained, 3)
    target = _estimator(str(tmp_path / "target"), warm_start_from=os.path.join(trained, "model.ckpt-3"))
    with pytest.raises(ValueError, match=r"warm_start_from: checkpoint .*model\.ckpt-3 cannot be read: "
                                         r"its index file .*model\.ckpt-3\.index cannot be read"):
        target.train(INPUT, steps=1)
    assert checkpoint_steps(target.model_dir) == []


# -- export ----------------------------------------------------------------------------------------
def _exported_kernel(path):
    path = os.fsdecode(path)
    keys = _export.saved_model_variable_keys(path)
    return tf.train.load_checkpoint(os.path.join(path, "variables", "variables")).get_tensor(keys["dense/kernel"])


def test_export_skips_a_damaged_newest_checkpoint(tmp_path, trained, caplog):
    os.remove(os.path.join(trained, "model.ckpt-3.index"))
    caplog.set_level(logging.WARNING, logger="bridge")
    path = _estimator(trained).export_saved_model(str(tmp_path / "export"), RECEIVER)
    (warning,) = _recovery_warnings(caplog)
    assert "restoring " + os.path.join(trained, "model.ckpt-2") in warning and "model.ckpt-3.index is missing" in warning
    np.testing.assert_array_equal(_exported_kernel(path), _kernel(os.path.join(trained, "model.ckpt-2")))
    served = tf.saved_model.load(os.fsdecode(path)).signatures["serving_default"](x=tf.constant(X[:2]))["y"]
    np.testing.assert_allclose(served.numpy(), X[:2] @ _kernel(os.path.join(trained, "model.ckpt-2")) +
                               tf.train.load_checkpoint(os.path.join(trained, "model.ckpt-2")).get_tensor("dense/bias"),
                               rtol=1e-5)


def test_export_without_an_intact_checkpoint_is_refused_naming_the_files(tmp_path, trained):
    _truncate_index(trained, 3)
    for step in (0, 1, 2):
        os.remove(os.path.join(trained, f"model.ckpt-{step}.data-00000-of-00001"))
    base = tmp_path / "export"
    with pytest.raises(_checkpoints.CheckpointRecoveryError) as info:
        _estimator(trained).export_saved_model(str(base), RECEIVER)
    message = str(info.value)
    assert "model.ckpt-3.index cannot be read" in message
    for step in (0, 1, 2):
        assert f"model.ckpt-{step}.data-00000-of-00001" in message
    assert "Cannot export from it" in message and "checkpoint_path=" in message
    assert not base.exists() or not os.listdir(base)  # nothing exported


def test_export_of_an_untrained_model_dir_reads_the_warm_start_source_with_recovery(tmp_path, trained, caplog):
    _truncate_index(trained, 3)
    caplog.set_level(logging.WARNING, logger="bridge")
    untrained = _estimator(str(tmp_path / "untrained"), warm_start_from=trained)
    path = untrained.export_saved_model(str(tmp_path / "export"), RECEIVER)
    assert any("model.ckpt-3.index cannot be read" in w for w in _recovery_warnings(caplog))
    np.testing.assert_array_equal(_exported_kernel(path), _kernel(os.path.join(trained, "model.ckpt-2")))


# -- evaluate, predict, variable reads -------------------------------------------------------------
def test_reads_without_an_intact_checkpoint_are_refused_with_their_own_advice(trained):
    _damage_all(trained)
    est = _estimator(trained)
    calls = {
        "evaluate": lambda: est.evaluate(make_input_fn(), steps=1),
        "predict": lambda: next(est.predict(make_input_fn(y=None))),
        "get_variable_value": lambda: est.get_variable_value("dense/kernel"),
    }
    for name, call in calls.items():
        with pytest.raises(_checkpoints.CheckpointRecoveryError) as info:
            call()
        message = str(info.value)
        assert "model.ckpt-3.index is missing" in message, name
        assert "checkpoint_path=<an intact checkpoint prefix>" in message and "start from scratch" not in message, name


def test_a_damaged_explicit_checkpoint_path_is_refused_naming_the_file(trained):
    _truncate_index(trained, 2)
    est = _estimator(trained)
    with pytest.raises(ValueError, match=r"checkpoint_path .*model\.ckpt-2 cannot be read: its index file "
                                         r".*model\.ckpt-2\.index cannot be read"):
        est.evaluate(make_input_fn(), steps=1, checkpoint_path=os.path.join(trained, "model.ckpt-2"))
    result = est.evaluate(make_input_fn(), steps=1, checkpoint_path=os.path.join(trained, "model.ckpt-1"))
    assert result["global_step"] == 1


def test_estimator_to_keras_without_an_intact_checkpoint_is_refused(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    est = bridge.model_to_estimator(model, model_dir=str(tmp_path / "keras"),
                                    config=bridge.RunConfig(log_step_count_steps=None, save_checkpoints_steps=1))
    est.train(lambda: tf.data.Dataset.from_tensor_slices(({"x": X}, X[:, :1])).batch(4), steps=2)
    _damage_all(est.model_dir)
    with pytest.raises(_checkpoints.CheckpointRecoveryError, match=r"model\.ckpt-2\.index is missing.*"
                                                                   r"checkpoint_path=<an intact checkpoint prefix>"):
        bridge.estimator_to_keras(est)


def test_inspecting_a_model_dir_with_a_binary_state_file_lists_what_is_on_disk(trained, caplog):
    from bridge.checkpoints._model_dir import inspect_model_dir

    with open(os.path.join(trained, "checkpoint"), "wb") as f:
        f.write(b"\xff\xfe\x00\x81garbage")
    report = inspect_model_dir(trained)  # was a UnicodeDecodeError
    assert report.checkpoint == os.path.join(trained, "model.ckpt-3")
    assert report.step == 3
