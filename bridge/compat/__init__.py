"""TF 1.x-2.15 code inside model_fn, on TensorFlow 2.16+ and Keras 3.

Everything here is entered only through a bridge call: the runtime's model_fn seam
(``bridge._model_fn_scopes``) enters the scopes that the submodules register, so legacy
constructs such as ``tf.compat.v1.layers.dense`` work inside model_fn and nowhere else.

Submodules register themselves on import; this package imports them all.
"""

from __future__ import annotations

import importlib

# Each module registers its model_fn scope (bridge._model_fn_scopes.register) when imported.
# hooks registers its adapter for tf.compat.v1.train hooks (bridge.hooks.register_adapter), inputs
# its input_fn scope for v1 iterators (bridge._inputs.register_input_fn_scope).
_SCOPED_MODULES: tuple[str, ...] = (
    "layers", "summaries", "init_from_checkpoint", "regularization", "optimizers", "metrics", "keras2_api", "hooks",
    "scaffold", "inputs",
)

for _name in _SCOPED_MODULES:
    importlib.import_module(f"bridge.compat.{_name}")
