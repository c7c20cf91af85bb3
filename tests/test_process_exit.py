"""A process that trained on a Python-backed input pipeline must exit promptly.

tf.data runs ``tf.numpy_function`` maps on background threads (map parallelisation is a
default optimisation). If the traced step kept the iterator alive after ``train`` returned,
those threads would still be calling into Python while the interpreter shuts down, and the
process would hang at exit. The step therefore takes the iterator as an argument and drops
it when the call ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    """
    import sys, tempfile, time
    import keras, numpy as np, tensorflow as tf
    import bridge

    def slow(batch):
        time.sleep(0.01)
        return batch

    def input_fn():
        x = np.random.RandomState(0).randn(64, 3).astype(np.float32)
        ds = tf.data.Dataset.from_tensor_slices(x).repeat().batch(4)
        ds = ds.map(lambda b: tf.numpy_function(slow, [b], tf.float32))
        return ds.map(lambda b: (tf.reshape(b, [-1, 3]), tf.reduce_sum(tf.reshape(b, [-1, 3]), 1)))

    def model_fn(features, labels, mode):
        prediction = keras.layers.Dense(1)(features)[:, 0]
        if mode == bridge.ModeKeys.PREDICT:
            return bridge.EstimatorSpec(mode, predictions=prediction)
        loss = tf.reduce_mean(tf.square(prediction - labels))
        return bridge.EstimatorSpec(mode, loss=loss, train_op=bridge.minimize(loss, keras.optimizers.SGD(0.01)))

    estimator = bridge.Estimator(model_fn, model_dir=tempfile.mkdtemp())
    estimator.train(input_fn, steps=4)
    print(estimator.evaluate(input_fn, steps=2)["global_step"])
    print(len(list(estimator.predict(lambda: input_fn().map(lambda f, l: f).take(2)))))
    """
)


def test_process_with_numpy_function_input_exits(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["4", "8"]
