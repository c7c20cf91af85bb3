"""tf.compat.v1.layers under MirroredStrategy (two logical CPUs, so in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

SCRIPT = textwrap.dedent(
    """
    import json, shutil, sys, tempfile
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    import bridge
    from compat._legacy import copy_model_dir, module
    MODEL = module("v1_layers")
    out = {}
    for update_ops in (True, False):
        model_dir = copy_model_dir("v1_layers", tempfile.mkdtemp())
        before = tf.train.load_checkpoint(model_dir).get_tensor("head/batch_normalization/moving_mean")
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        config = bridge.RunConfig(train_distribute=strategy, log_step_count_steps=None, save_summary_steps=None)
        estimator = bridge.Estimator(MODEL.make_model_fn(bridge.EstimatorSpec, update_ops), model_dir, config)
        estimator.train(MODEL.input_fn(seed=2), steps=3)
        after = estimator.get_variable_value("head/batch_normalization/moving_mean")
        out[str(update_ops)] = {"step": int(estimator.get_variable_value("global_step")),
                                "moved": bool(not np.allclose(before, after))}
    print(json.dumps(out))
    """
)


def test_batch_norm_updates_and_reuse_under_mirrored_strategy(tmp_path):
    path = tmp_path / "mirrored_v1_layers.py"
    path.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, str(path), os.path.dirname(HERE)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["True"] == {"step": 8, "moved": True}
    assert result["False"] == {"step": 8, "moved": False}
