"""Checkpoints written by other versions: tf.estimator 2.15's model_dirs on bridge.

- On restore and warm start (through the runtime's name-mapping seam, ``bridge._name_mapping``),
  a Keras 3 optimizer's state is taken from the slots a ``tf.compat.v1.train`` optimizer wrote
  (``_keras_state``). A model_dir resumed with the same v1 optimizer needs no mapping: bridge
  keys v1 slots exactly as TF1 did (``dense_1/kernel/Adam``); on warm start a v1 slot follows
  its variable's ``var_name_to_prev_var_name``.
- ``python -m bridge.checkpoints inspect MODEL_DIR`` lists what a model_dir holds and which
  optimizer wrote it; ``convert MODEL_DIR OUT_DIR --optimizer keras-adam`` writes a copy keyed
  for a Keras 3 optimizer (``inspect_model_dir`` / ``convert_model_dir``).
"""

from __future__ import annotations

from bridge import _name_mapping
from bridge.checkpoints._keras_state import keras_state_from_v1
from bridge.checkpoints._model_dir import ModelDirError, ModelDirReport, convert_model_dir, inspect_model_dir
from bridge.checkpoints._v1_slots import slots_of_renamed_variables

_name_mapping.register(slots_of_renamed_variables)
_name_mapping.register(keras_state_from_v1)

__all__ = ["ModelDirError", "ModelDirReport", "convert_model_dir", "inspect_model_dir"]
