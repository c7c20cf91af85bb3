"""tf.estimator's canned classes refuse a tf.compat.v1.train optimizer, as 2.15 did (they used to
train with it silently and badly); tf.compat.v1.estimator's classes take it.

Facts: tests/fixtures/legacy_2_15/canned_v1_optimizer (record.py).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import bridge
import bridge.compat.v1.estimator

FIXTURE = pathlib.Path(__file__).parents[1] / "fixtures/legacy_2_15/canned_v1_optimizer/facts.json"
FACTS = json.loads(FIXTURE.read_text())
X = tf.feature_column.numeric_column("x")
MAKERS = {
    "instance": lambda: tf.compat.v1.train.AdamOptimizer(0.01),
    "callable": lambda: (lambda: tf.compat.v1.train.AdamOptimizer(0.01)),
}
CLASSES = {
    "v2_dnn": lambda optimizer, model_dir: bridge.DNNClassifier([2], [X], optimizer=optimizer, model_dir=model_dir),
    "v2_linear": lambda optimizer, model_dir: bridge.LinearClassifier([X], optimizer=optimizer, model_dir=model_dir),
    "v1_dnn": lambda optimizer, model_dir: bridge.compat.v1.estimator.DNNClassifier(
        [2], [X], optimizer=optimizer, model_dir=model_dir
    ),
}


def input_fn():
    return tf.data.Dataset.from_tensor_slices(({"x": np.arange(4.0, dtype=np.float32)}, np.array([0, 1, 0, 1]))).batch(2)


@pytest.mark.parametrize("form", sorted(MAKERS))
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_v1_optimizer_in_canned_classes_is_2_15s(tmp_path, kind, form):
    fact = FACTS[f"{kind}_{form}"]
    est = CLASSES[kind](MAKERS[form](), str(tmp_path))
    if fact["raised"] is None:
        est.train(input_fn, steps=1)
        assert est.get_variable_value("global_step") == 1
        return
    with pytest.raises(ValueError) as raised:
        est.train(input_fn, steps=1)
    assert str(raised.value).startswith(fact["message"])
    assert "tf.compat.v1.estimator" in str(raised.value)  # names where a v1 optimizer goes
