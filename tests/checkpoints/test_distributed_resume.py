"""A 2.15 model_dir resumes with a Keras 3 optimizer under MirroredStrategy (two logical CPUs).

Each replica traces model_fn in its own thread; the optimizer bridge.minimize applies there must
still reach the mapping. Runs in a subprocess: logical devices are fixed at TensorFlow's start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.checkpoints import legacy
from tests.checkpoints.test_keras_resume import WEIGHTS

_SCRIPT = textwrap.dedent(
    """
    import json, pathlib, sys, tempfile
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import bridge
    from tests.checkpoints import legacy
    from tests.checkpoints.test_keras_resume import SAME_UPDATE
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    model_dir = legacy.copy_model_dir("adam", pathlib.Path(tempfile.mkdtemp()))
    est = legacy.estimator(model_dir, SAME_UPDATE["adam"][0], config=bridge.RunConfig(train_distribute=strategy))
    est.train(legacy.one_step_batch(), steps=1)  # global batch 16: 8 per replica
    print(json.dumps({k: v.tolist() for k, v in legacy.variables(model_dir).items()}))
    """
)


@pytest.mark.slow  # a subprocess
def test_keras_optimizer_resumes_a_2_15_model_dir_under_mirrored_strategy():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    expected = legacy.facts("adam")["after_one_step"]
    assert got["adam/iteration"] == 21
    for key in WEIGHTS:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-7, err_msg=key)
