"""warm_start_from / WarmStartSettings pointing at a model_dir written by tf.estimator 2.15."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.checkpoints import legacy
from tests.checkpoints.test_keras_resume import SAME_UPDATE, WEIGHTS

RENAMES = {  # the new model calls its layers hidden/logits
    "hidden/kernel": "dense/kernel", "hidden/bias": "dense/bias",
    "logits/kernel": "dense_1/kernel", "logits/bias": "dense_1/bias",
}  # fmt: skip


def _source(name):
    return os.path.join(legacy.FIXTURES, name, "model_dir")


def test_default_settings_take_the_weights_and_start_the_optimizer_fresh(tmp_path):
    """2.15's default ('.*': trainable variables) copies weights only, with either optimizer family."""
    est = legacy.estimator(str(tmp_path / "new"), SAME_UPDATE["adam"][0], warm_start_from=_source("adam"))
    est.train(legacy.one_step_batch(), steps=1)
    start = tf.train.load_checkpoint(os.path.join(est.model_dir, "model.ckpt-0"))
    source = legacy.variables(_source("adam"))
    for key in WEIGHTS:
        np.testing.assert_array_equal(start.get_tensor(key), source[key])
    assert start.get_tensor("adam/iteration") == 0 and start.get_tensor("global_step") == 0


@pytest.mark.parametrize("name", ["adam", "momentum", "rmsprop_centered", "ftrl"])
@pytest.mark.parametrize("renamed", [False, True])
def test_warm_starting_every_variable_continues_2_15_training(name, renamed, tmp_path):
    """vars_to_warm_start=['.*'] takes the Keras optimizer's state from the v1 slots (following renames)."""
    make_optimizer, _ = SAME_UPDATE[name]
    names = ("hidden", "logits") if renamed else ("dense", "dense_1")
    settings = bridge.WarmStartSettings(
        _source(name), vars_to_warm_start=[".*"], var_name_to_prev_var_name=RENAMES if renamed else None
    )
    est = legacy.estimator(str(tmp_path / "new"), make_optimizer, names=names, warm_start_from=settings)
    est.train(legacy.one_step_batch(), steps=1)
    expected = legacy.facts(name)["after_one_step"]
    got = legacy.variables(est.model_dir)
    for key in WEIGHTS:
        new_key = key.replace("dense_1/", "logits/").replace("dense/", "hidden/") if renamed else key
        np.testing.assert_allclose(got[new_key], expected[key], rtol=1e-5, atol=1e-7, err_msg=new_key)
    assert got["global_step"] == 21


def test_v1_slots_follow_renames(tmp_path):
    settings = bridge.WarmStartSettings(_source("adam"), vars_to_warm_start=[".*"], var_name_to_prev_var_name=RENAMES)
    est = legacy.estimator(
        str(tmp_path / "new"), lambda: legacy.v1_optimizer("adam"), names=("hidden", "logits"), warm_start_from=settings
    )
    est.train(legacy.one_step_batch(), steps=1)
    expected = legacy.facts("adam")["after_one_step"]
    got = legacy.variables(est.model_dir)
    for new, old in RENAMES.items():
        for suffix in ("", "/Adam", "/Adam_1"):
            np.testing.assert_allclose(got[new + suffix], expected[old + suffix], rtol=1e-5, atol=1e-7)
    assert got["beta1_power"] == pytest.approx(expected["beta1_power"])


def test_warm_starting_optimizer_state_that_cannot_be_mapped_is_an_error(tmp_path):
    settings = bridge.WarmStartSettings(_source("adagrad_da"), vars_to_warm_start=[".*"])
    est = legacy.estimator(str(tmp_path / "new"), lambda: keras.optimizers.Adagrad(0.1), warm_start_from=settings)
    with pytest.raises(ValueError, match="AdagradDAOptimizer"):
        est.train(legacy.one_step_batch(), steps=1)
