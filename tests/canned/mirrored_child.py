"""Child process of test_distribute_canned.py: 2.15 model_dirs continued on two logical CPUs.

Prints one JSON line: per case, the variables whose value after one more step differs from
2.15's single-device step, and evaluate's keys that differ from 2.15's.
"""

import json
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import legacy_cases as L  # noqa: E402

out = {}
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # one for all cases (collective keys)
for name in sys.argv[1:]:
    model_dir = L.copy_model_dir(name, tempfile.mkdtemp())
    est = L.build(name, model_dir)
    est._config = est._config.replace(train_distribute=strategy, eval_distribute=strategy)
    result = est.evaluate(L.input_fn(name))
    recorded = L.facts(name)
    wrong_eval = [k for k, v in recorded["evaluate"].items()
                  if not np.allclose(result[k], L.value(v), rtol=1e-5, atol=1e-6)]
    est.train(L.input_fn(name, slice(0, L.BATCH)), steps=1)
    reader = tf.train.load_checkpoint(model_dir)
    wrong_step = [k for k, v in recorded["after_step"].items()
                  if not np.allclose(reader.get_tensor(k), L.value(v), rtol=1e-5, atol=1e-6)]
    out[name] = {"evaluate": wrong_eval, "step": wrong_step}
print(json.dumps(out))
