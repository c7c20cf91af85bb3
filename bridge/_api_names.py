"""How messages name a public API object: the way the user reached it.

A script ported with ``bridge.install_as_tf_estimator()`` writes ``tf.estimator.Estimator``;
an error should then say ``tf.estimator.Estimator`` too. Without the install line the
user wrote ``bridge.Estimator``, and messages say that.
"""

from __future__ import annotations

import sys


def api_name(name: str) -> str:
    """``'tf.estimator.<name>'`` once the tf.estimator namespace maps to bridge, else ``'bridge.<name>'``."""
    namespace = sys.modules.get("bridge.compat.namespace")
    if namespace is not None and getattr(namespace, "_namespaces", None):
        return f"tf.estimator.{name}"
    return f"bridge.{name}"
