"""EstimatorSpec(scaffold=tf.compat.v1.train.Scaffold(...)) against tf.estimator 2.15 (issue 20 item 7).

Facts: tests/fixtures/legacy_2_15/api/scaffold.json (record.py there): init_fn runs once, on the
first train of a fresh model_dir, not on resume nor on evaluate; its values are what training starts from.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import bridge
from tests.conftest import make_input_fn

FACTS = json.load(open(os.path.join(os.path.dirname(__file__), "..", "fixtures", "legacy_2_15", "api", "scaffold.json")))
RNG = np.random.RandomState(0)
X = RNG.rand(64, 1).astype(np.float32)
Y = 2 * X


def _linear(features, labels, mode, scaffold_fn):
    w = tf.compat.v1.get_variable("w", [1], initializer=tf.compat.v1.zeros_initializer())
    pred = features["x"] * w
    if mode == bridge.ModeKeys.PREDICT:
        return bridge.EstimatorSpec(mode, predictions={"y": pred}, scaffold=scaffold_fn(w))
    loss = tf.compat.v1.losses.mean_squared_error(labels, pred)
    train_op = None
    if mode == bridge.ModeKeys.TRAIN:
        train_op = tf.compat.v1.train.GradientDescentOptimizer(0.05).minimize(loss, tf.compat.v1.train.get_global_step())
    return bridge.EstimatorSpec(mode, loss=loss, train_op=train_op, predictions={"y": pred}, scaffold=scaffold_fn(w))


def test_init_fn_runs_once_on_a_fresh_model_dir_and_training_starts_from_its_values(tmp_path):
    calls = []

    def scaffold_fn(w):
        def init_fn(scaffold, session):
            calls.append(session.run(w).tolist())  # the stand-in session reads variables
            w.assign([3.0])

        return tf.compat.v1.train.Scaffold(init_fn=init_fn)

    estimator = bridge.Estimator(lambda features, labels, mode: _linear(features, labels, mode, scaffold_fn),
                                 model_dir=str(tmp_path))
    train = make_input_fn(x=X, y=Y, batch_size=8)
    estimator.train(train, steps=1)
    assert len(calls) == FACTS["init_fn_calls_first_train"] == 1
    assert calls[0] == [0.0]
    np.testing.assert_allclose(estimator.get_variable_value("w")[0], FACTS["w_after_one_step_from_3"], rtol=1e-6)
    estimator.train(train, steps=1)
    estimator.evaluate(train, steps=1)
    assert len(calls) == FACTS["init_fn_calls_after_resume_and_eval"] == 1


def test_init_fn_restores_a_pretrained_checkpoint_through_a_saver(tmp_path):
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    w = tf.Variable([5.0])
    tf.raw_ops.SaveV2(prefix=str(pretrained / "model.ckpt"), tensor_names=["w"], shape_and_slices=[""], tensors=[w])

    def scaffold_fn(variable):
        saver = tf.compat.v1.train.Saver([variable])  # bridge's session-free Saver inside model_fn
        return tf.compat.v1.train.Scaffold(
            init_fn=lambda scaffold, session: saver.restore(session, str(pretrained / "model.ckpt")),
            init_op=tf.compat.v1.global_variables_initializer(),
        )

    estimator = bridge.Estimator(lambda features, labels, mode: _linear(features, labels, mode, scaffold_fn),
                                 model_dir=str(tmp_path / "model"))
    prediction = next(estimator.predict(make_input_fn(x=np.ones([1, 1], np.float32), y=None)))
    assert prediction["y"].tolist() == [5.0]  # no checkpoint in model_dir: init_fn's values


@pytest.mark.parametrize(
    "scaffold_kwargs, match",
    [
        (lambda w: dict(ready_op=tf.constant([], tf.string)), "ready_op"),
        (lambda w: dict(local_init_op=tf.no_op()), "local_init_op"),
        (lambda w: dict(init_op=tf.group(w.assign([1.0]))), "init_op"),
        (lambda w: dict(saver=tf.compat.v1.train.Saver([w])), "var_list"),
        (lambda w: dict(saver=tf.compat.v1.train.Saver(max_to_keep=2)), "keep_checkpoint_max"),
    ],
)
def test_unsupported_scaffold_fields_are_refused_by_name(tmp_path, scaffold_kwargs, match):
    estimator = bridge.Estimator(
        lambda features, labels, mode: _linear(features, labels, mode, lambda w: tf.compat.v1.train.Scaffold(**scaffold_kwargs(w))),
        model_dir=str(tmp_path))
    with pytest.raises(ValueError, match=match):
        estimator.train(make_input_fn(x=X, y=Y, batch_size=8), steps=1)


def test_a_saver_with_the_run_configs_settings_is_accepted(tmp_path):
    config = bridge.RunConfig(model_dir=str(tmp_path), keep_checkpoint_max=3)
    estimator = bridge.Estimator(
        lambda features, labels, mode: _linear(
            features, labels, mode, lambda w: tf.compat.v1.train.Scaffold(saver=tf.compat.v1.train.Saver(max_to_keep=3))),
        config=config)
    estimator.train(make_input_fn(x=X, y=Y, batch_size=8), steps=2)
    assert estimator.get_variable_value("global_step") == 2


def test_session_run_of_a_graph_op_names_the_replacement(tmp_path):
    def scaffold_fn(w):
        op = w.assign([3.0])
        return tf.compat.v1.train.Scaffold(init_fn=lambda scaffold, session: session.run(op))

    estimator = bridge.Estimator(lambda features, labels, mode: _linear(features, labels, mode, scaffold_fn),
                                 model_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match=r"variable.assign\(value\)"):
        estimator.train(make_input_fn(x=X, y=Y, batch_size=8), steps=1)
