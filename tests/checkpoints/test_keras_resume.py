"""A 2.15 model_dir written with a tf.compat.v1.train optimizer continues with the Keras 3 optimizer.

The v1 slots become the Keras optimizer's state (bridge.checkpoints._keras_state) and one more
step lands where 2.15's v1 optimizer went (recorded), or, where Keras computes a different
update, the state is still carried over. What cannot be mapped is an error naming variables.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.checkpoints import legacy

WEIGHTS = ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]

# fixture -> (Keras 3 optimizer with the v1 hyperparameters, Keras slot -> expected value from the v1 slot)
SAME_UPDATE = {
    "adam": (lambda: keras.optimizers.Adam(0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
             {"momentum": ("Adam", 1.0), "velocity": ("Adam_1", 1.0)}),
    "momentum": (lambda: keras.optimizers.SGD(0.05, momentum=0.9), {"momentum": ("Momentum", -0.05)}),
    "nesterov": (lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), {"momentum": ("Momentum", -0.05)}),
    # Keras adds epsilon (default 1e-7) inside the square root; v1 Adagrad has none. Negligible here.
    "adagrad": (lambda: keras.optimizers.Adagrad(0.1), {"accumulator": ("Adagrad", 1.0)}),
    "rmsprop": (lambda: keras.optimizers.RMSprop(0.01, rho=0.9, momentum=0.9, epsilon=1e-10),
                {"velocity": ("RMSProp", 1.0), "momentum": ("RMSProp_1", 1.0)}),
    "rmsprop_centered": (lambda: keras.optimizers.RMSprop(0.01, rho=0.9, momentum=0.5, epsilon=1e-10, centered=True),
                         {"velocity": ("RMSProp", 1.0), "average_gradient": ("RMSProp_1", 1.0),
                          "momentum": ("RMSProp_2", 1.0)}),
    "ftrl": (lambda: keras.optimizers.Ftrl(0.1), {"accumulator": ("Ftrl", 1.0), "linear": ("Ftrl_1", 1.0)}),
    "sgd": (lambda: keras.optimizers.SGD(0.1), {}),
}  # fmt: skip


def _keras_slot(got, prefix, primary, slot):
    """The checkpoint key bridge gives a Keras optimizer's slot for ``primary``."""
    key = f"{prefix}/{primary.replace('/', '_')}_0_{slot}"
    assert key in got, sorted(got)
    return got[key]


@pytest.mark.parametrize("name", sorted(SAME_UPDATE))
def test_one_more_step_with_keras_optimizer_matches_2_15(name, tmp_path):
    make_optimizer, slots = SAME_UPDATE[name]
    model_dir = legacy.copy_model_dir(name, tmp_path)
    legacy.estimator(model_dir, make_optimizer).train(legacy.one_step_batch(), steps=1)
    expected = {k: np.asarray(v) for k, v in legacy.facts(name)["after_one_step"].items()}
    got = legacy.variables(model_dir)
    for key in WEIGHTS:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-7, err_msg=key)
    # Keras names an optimizer's variables after its class, snake-cased ("adam", "rm_sprop").
    prefix = {"Adam": "adam", "SGD": "sgd", "Adagrad": "adagrad", "RMSprop": "rm_sprop", "Ftrl": "ftrl"}[
        type(make_optimizer()).__name__
    ]
    assert got[f"{prefix}/iteration"] == 21  # 20 steps in 2.15, one here: bias correction continued
    assert got["global_step"] == 21
    for slot, (v1_suffix, scale) in slots.items():
        for primary in WEIGHTS:
            np.testing.assert_allclose(
                _keras_slot(got, prefix, primary, slot), scale * expected[f"{primary}/{v1_suffix}"],
                rtol=1e-5, atol=1e-7, err_msg=f"{primary} {slot}",
            )  # fmt: skip


def test_iterations_come_from_adam_beta_powers_not_the_global_step(tmp_path):
    """Bias correction continues from the v1 optimizer's own count, even when global_step says otherwise."""
    import tensorflow as tf

    source = legacy.copy_model_dir("adam", tmp_path)
    reader = tf.train.load_checkpoint(source)
    values = {k: reader.get_tensor(k) for k, _ in tf.train.list_variables(source)}
    values["global_step"] = np.int64(1000)  # e.g. a model_dir whose optimizer was replaced at step 980
    target = str(tmp_path / "shifted")
    tf.io.gfile.makedirs(target)
    tf.raw_ops.SaveV2(prefix=f"{target}/model.ckpt-1000", tensor_names=list(values),
                      shape_and_slices=[""] * len(values), tensors=list(values.values()))  # fmt: skip
    tf.train.CheckpointManager  # noqa: B018 - the state file below is what tf.train.latest_checkpoint reads
    with open(f"{target}/checkpoint", "w") as f:
        f.write('model_checkpoint_path: "model.ckpt-1000"\n')
    legacy.estimator(target, SAME_UPDATE["adam"][0]).train(legacy.one_step_batch(), steps=1)
    got = legacy.variables(target)
    assert got["adam/iteration"] == 21
    assert got["global_step"] == 1001
    np.testing.assert_allclose(got["dense/kernel"], legacy.facts("adam")["after_one_step"]["dense/kernel"], rtol=1e-5)


def test_proximal_adagrad_accumulator_carries_into_keras_adagrad(tmp_path):
    """Keras has no proximal Adagrad: the update differs (no l1/l2), the accumulator is carried over."""
    model_dir = legacy.copy_model_dir("proximal_adagrad", tmp_path)
    legacy.estimator(model_dir, lambda: keras.optimizers.Adagrad(0.1)).train(legacy.one_step_batch(), steps=1)
    expected = legacy.facts("proximal_adagrad")["after_one_step"]
    got = legacy.variables(model_dir)
    for primary in WEIGHTS:  # accum += g^2 in both
        np.testing.assert_allclose(
            _keras_slot(got, "adagrad", primary, "accumulator"), expected[f"{primary}/ProximalAdagrad"], rtol=1e-5
        )


@pytest.mark.parametrize(
    "name, make_optimizer, message",
    [
        ("adagrad_da", lambda: keras.optimizers.Adagrad(0.1), "AdagradDAOptimizer"),
        ("adam", lambda: keras.optimizers.SGD(0.1, momentum=0.9), "dense/kernel/Adam"),
        ("momentum", lambda: keras.optimizers.SGD(0.05), "which SGD would drop"),
        ("sgd", lambda: keras.optimizers.Adam(0.01), "no optimizer slots"),
        ("adam", lambda: keras.optimizers.Adam(0.01, beta_1=0.8), "beta1_power"),
        ("adam", lambda: keras.optimizers.Adam(0.01, amsgrad=True), "velocity_hat"),
        ("adam", lambda: keras.optimizers.Nadam(0.01), "no tf.compat.v1.train counterpart"),
        ("rmsprop", lambda: keras.optimizers.RMSprop(0.01, momentum=0.9, centered=True), "RMSPropOptimizer"),
    ],
)
def test_state_that_cannot_be_mapped_is_an_error_naming_it(name, make_optimizer, message, tmp_path):
    model_dir = legacy.copy_model_dir(name, tmp_path)
    before = legacy.variables(model_dir)
    with pytest.raises(ValueError, match="cannot be taken from what the checkpoint holds") as raised:
        legacy.estimator(model_dir, make_optimizer).train(legacy.one_step_batch(), steps=1)
    assert message in str(raised.value)
    assert "vars_to_warm_start" in str(raised.value)  # the way to restart optimizer state on purpose
    after = legacy.variables(model_dir)  # nothing trained, nothing written
    assert sorted(after) == sorted(before) and all(np.array_equal(after[k], before[k]) for k in before)


def test_adam_step_count_survives_underflow_and_float32_rounding(tmp_path):
    """After 5000 v1 steps beta1_power is 0 in float32 and beta2_power carries 5001 roundings."""
    import tensorflow as tf

    source = legacy.copy_model_dir("adam", tmp_path)
    reader = tf.train.load_checkpoint(source)
    values = {k: reader.get_tensor(k) for k, _ in tf.train.list_variables(source)}
    power = np.float32(1.0)
    for _ in range(5001):  # v1 Adam multiplies its accumulator once per step, in float32
        power = np.float32(power * np.float32(0.999))
    values.update(global_step=np.int64(5000), beta1_power=np.float32(0.9) ** 5001, beta2_power=power)
    assert values["beta1_power"] == 0.0
    target = str(tmp_path / "long")
    tf.io.gfile.makedirs(target)
    tf.raw_ops.SaveV2(prefix=f"{target}/model.ckpt-5000", tensor_names=list(values),
                      shape_and_slices=[""] * len(values), tensors=list(values.values()))  # fmt: skip
    with open(f"{target}/checkpoint", "w") as f:
        f.write('model_checkpoint_path: "model.ckpt-5000"\n')
    legacy.estimator(target, SAME_UPDATE["adam"][0]).train(legacy.one_step_batch(), steps=1)
    assert legacy.variables(target)["adam/iteration"] == 5001


def test_keras_optimizer_applied_without_bridge_minimize_gets_a_pointer(tmp_path):
    import tensorflow as tf

    import bridge

    def model_fn(features, labels, mode, params):
        spec = legacy.model_fn(features, labels, bridge.ModeKeys.EVAL, params)
        optimizer = keras.optimizers.Adam(0.01)
        variables = tf.compat.v1.trainable_variables()
        optimizer.apply_gradients(zip(tf.gradients(spec.loss, variables), variables))
        return bridge.EstimatorSpec(mode, loss=spec.loss, train_op=tf.compat.v1.train.get_global_step().assign_add(1))

    est = bridge.Estimator(model_fn, model_dir=legacy.copy_model_dir("adam", tmp_path), params={})
    with pytest.raises(ValueError, match=r"bridge.minimize\(loss, optimizer\)"):
        est.train(legacy.one_step_batch(), steps=1)


def test_state_of_another_keras_optimizer_is_not_dropped_silently(tmp_path):
    model_dir = legacy.copy_model_dir("adam", tmp_path)
    legacy.estimator(model_dir, SAME_UPDATE["adam"][0]).train(legacy.one_step_batch(), steps=1)  # now Keras Adam state
    with pytest.raises(ValueError, match=r"does not contain \['sgd/iteration', 'sgd/learning_rate'\]"):
        legacy.estimator(model_dir, lambda: keras.optimizers.SGD(0.1)).train(legacy.one_step_batch(), steps=1)
    # The same Keras optimizer resumes its own state as written, no mapping involved.
    legacy.estimator(model_dir, SAME_UPDATE["adam"][0]).train(legacy.one_step_batch(), steps=1)
    assert legacy.variables(model_dir)["adam/iteration"] == 22
