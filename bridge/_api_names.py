"""How messages name a public API object: the way the user reached it.

A script ported with ``bridge.install_as_tf_estimator()`` writes ``tf.estimator.Estimator``;
an error should then say ``tf.estimator.Estimator`` too. Without the install line the
user wrote ``bridge.Estimator``, and messages say that.

The rule, for every user-facing message (errors, warnings): a name of tf.estimator 2.15's
API that a message qualifies with a namespace goes through :func:`api_name`
(``api_name("export.ServingInputReceiver")``), never a literal ``bridge.`` prefix
(``tests/test_api_names.py`` checks bridge's sources for such literals). Names bridge adds
(``bridge.minimize``, ``bridge.metrics``) exist only under ``bridge`` and are written so.
Names a message gives bare (``EstimatorSpec``, as 2.15's own messages did) read right either way.
"""

from __future__ import annotations

import sys


def api_name(name: str) -> str:
    """``'tf.estimator.<name>'`` once the tf.estimator namespace maps to bridge, else ``'bridge.<name>'``.

    ``name`` is the path under tf.estimator: ``"Estimator"``, ``"export.ServingInputReceiver"``,
    ``"experimental.build_raw_supervised_input_receiver_fn"``.
    """
    namespace = sys.modules.get("bridge.compat.namespace")
    if namespace is not None and getattr(namespace, "_namespaces", None):
        return f"tf.estimator.{name}"
    return f"bridge.{name}"
