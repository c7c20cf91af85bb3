"""model_dirs written by tf.estimator 2.15's canned estimators, used on bridge.

Each case (recorded by tests/fixtures/legacy_2_15/canned/record.py) evaluates and predicts to
2.15's numbers, trains one more step onto 2.15's weights (every variable, optimizer slots and
hyper-parameters included), and bridge's checkpoint keeps 2.15's variable names and shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import bridge
import legacy_cases as L


@pytest.mark.parametrize("name", L.ALL_CASES)
def test_evaluate_and_predict_match_2_15(name, tmp_path):
    recorded = L.facts(name)
    est = L.build(name, L.copy_model_dir(name, str(tmp_path)))

    result = est.evaluate(L.input_fn(name))
    assert set(result) == set(recorded["evaluate"])
    for key, fact in recorded["evaluate"].items():
        np.testing.assert_allclose(result[key], L.value(fact), rtol=1e-5, atol=1e-7, err_msg=key)

    predictions = list(est.predict(L.input_fn(name, slice(0, 4))))
    assert set(predictions[0]) == set(recorded["predict"])
    for key, fact in recorded["predict"].items():
        got = np.stack([p[key] for p in predictions])
        want = L.value(fact)
        assert got.dtype.kind == want.dtype.kind if want.dtype != object else got.dtype == object, key
        if want.dtype == object:
            assert got.astype(str).tolist() == want.astype(str).tolist(), key
        else:
            assert got.dtype == want.dtype, key
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=key)


@pytest.mark.parametrize("name", L.ALL_CASES)
def test_one_more_training_step_lands_on_2_15_weights(name, tmp_path):
    recorded = L.facts(name)
    model_dir = L.copy_model_dir(name, str(tmp_path))
    L.build(name, model_dir).train(L.input_fn(name, slice(0, L.BATCH)), steps=1)

    reader = tf.train.load_checkpoint(model_dir)
    shapes = reader.get_variable_to_shape_map()
    assert {k: list(v) for k, v in shapes.items()} == recorded["variables"]
    for key, fact in recorded["after_step"].items():
        before, want = L.value(recorded["before_step"][key]), L.value(fact)
        got = reader.get_tensor(key)
        assert got.dtype == want.dtype, key
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=key)
        if want.dtype.kind == "f" and np.abs(want - before).max() > 1e-5:
            # the step itself, not only the restored weights
            np.testing.assert_allclose(got - before, want - before, rtol=2e-3, atol=2e-7, err_msg=key)


# Crossed columns hash a parsed (sparse) string differently from a dense one in TensorFlow, so a
# linear model's serving outputs differ from predict() on the same rows (2.15 too); the recorded
# signature outputs are the parsed-input ones, which bridge's export reproduces.
@pytest.mark.parametrize("name", L.ALL_CASES)
def test_export_from_2_15_model_dir_serves_2_15_signatures(name, tmp_path):
    recorded = L.facts(name)["export"]
    est = L.build(name, L.copy_model_dir(name, str(tmp_path)))
    spec = L.parse_spec(name)
    path = est.export_saved_model(str(tmp_path / "export"), bridge.export.build_parsing_serving_input_receiver_fn(spec))
    loaded = tf.saved_model.load(path.decode())
    assert sorted(loaded.signatures) == sorted(recorded)
    examples = tf.constant(L.record.example_bytes(name, slice(0, 4)))
    for key, fact in recorded.items():
        signature = loaded.signatures[key]
        inputs = sorted(signature.structured_input_signature[1])
        assert inputs == fact["inputs"], key
        outputs = signature(**{inputs[0]: examples})
        assert sorted(outputs) == sorted(fact["outputs"]), key
        for out_key, want in fact["outputs"].items():
            got, want = outputs[out_key].numpy(), L.value(want)
            if want.dtype == object:
                assert got.astype(str).tolist() == want.astype(str).tolist(), (key, out_key)
            else:
                assert got.dtype == want.dtype, (key, out_key)
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{key}/{out_key}")
