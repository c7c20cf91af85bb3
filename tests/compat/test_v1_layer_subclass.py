"""Subclassing tf.compat.v1.layers.Layer at import time (after the install line): 2.15's names and values.

The fixture's model.py defines its layers with ``class Affine(tf.compat.v1.layers.Layer)`` at module
level, so it runs in a subprocess: ``bridge.install_as_tf_estimator()`` must come before the import.
"""

from __future__ import annotations

import json

import numpy as np

from compat._legacy import FIXTURES, facts, run_python

FACTS = facts("v1_layer_subclass")


def test_layer_subclassed_at_import_trains_with_2_15_names_and_values():
    out = run_python(
        f"""
        import json, sys, tempfile
        import bridge
        bridge.install_as_tf_estimator()
        import tensorflow as tf
        sys.path.insert(0, {FIXTURES!r} + "/v1_layer_subclass")
        import model  # its classes subclass tf.compat.v1.layers.Layer at import time

        seen = {{}}
        def model_fn(features, labels, mode):
            spec = model.make_model_fn(bridge.EstimatorSpec)(features, labels, mode)
            if mode == "train":
                seen["global_variables"] = [v.name for v in tf.compat.v1.global_variables()]
                seen["trainable_variables"] = [v.name for v in tf.compat.v1.trainable_variables()]
                seen["regularization_losses"] = len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES))
            return spec

        estimator = bridge.Estimator(model_fn, tempfile.mkdtemp(), bridge.RunConfig(log_step_count_steps=None))
        estimator.train(model.input_fn, steps=3)
        seen["after_3_steps"] = {{n: estimator.get_variable_value(n).tolist() for n in estimator.get_variable_names()}}
        seen["predictions"] = [row["logits"].tolist() for row in estimator.predict(lambda: model.input_fn().take(1))]
        seen["outside"] = tf.compat.v1.layers.Layer is bridge.compat.layers.Layer

        def extras_model_fn(features, labels, mode):
            seen["extras"] = model.extras()
            return bridge.EstimatorSpec(mode, predictions=tf.zeros([1]))

        next(bridge.Estimator(extras_model_fn).predict(lambda: model.input_fn().take(1).map(lambda x, y: x)))
        print(json.dumps(seen))
        """
    )
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["outside"]  # the installed classes stay, for code that subclasses them later
    model_variables = [name for name in FACTS["global_variables"] if name != "global_step:0"]
    assert seen["global_variables"] == model_variables  # affine/w, head/out/w, head/affine/scale ...
    assert seen["trainable_variables"] == FACTS["trainable_variables"]
    assert seen["regularization_losses"] == FACTS["regularization_losses"]
    assert sorted(seen["after_3_steps"]) == sorted(FACTS["after_3_steps"])
    for name, value in FACTS["after_3_steps"].items():
        np.testing.assert_allclose(seen["after_3_steps"][name], value, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(seen["predictions"], FACTS["predictions"], rtol=1e-5)
    # list inputs (build gets each shape), integer inputs kept, input_spec and dtype errors as TF1's
    assert seen["extras"] == FACTS["extras"]
