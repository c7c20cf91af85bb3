"""The one seam between a model's variables and a checkpoint keyed differently.

Restoring (``_checkpoints.restore``) and warm starting (``warm_start.apply``) first take every
variable whose key the checkpoint holds. For the keys it lacks they ask the registered name
mappers, in order: a mapper recognises state it can derive from what the checkpoint *does*
hold (``bridge.checkpoints`` derives a Keras 3 optimizer's slots and ``iterations`` from the
slots and beta powers a ``tf.compat.v1.train`` optimizer wrote) and returns their values. A
mapper that recognises state it cannot derive raises, naming the variables; keys no mapper
supplies stay missing, and the caller reports them as before. The runtime knows nothing of
what a mapper does.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from bridge._extensions import Registry

# bridge.checkpoints is imported (and so registered) before the first mapping.
_mappers: Registry[Callable[["MappingRequest"], Mapping[str, np.ndarray]]] = Registry(("bridge.checkpoints",))


@dataclasses.dataclass
class MappingRequest:
    """What a mapper sees: the checkpoint, the variables it lacks, and the model around them."""

    checkpoint_path: str
    reader: Any  # tf.train.load_checkpoint(checkpoint_path)
    shapes: Mapping[str, list[int]]  # every key the checkpoint holds -> its shape
    missing: Mapping[str, tf.Variable]  # the model's keys the checkpoint lacks -> their variables
    variables: Mapping[str, tf.Variable]  # every variable of the model, by key
    state_owners: Sequence[Any] = ()  # objects whose state the variables are (Keras optimizers)
    renames: Mapping[str, str] = dataclasses.field(default_factory=dict)  # model key -> key in the checkpoint

    def source_key(self, key: str) -> str:
        """The checkpoint key of the model variable ``key`` (warm start's var_name_to_prev_var_name)."""
        return self.renames.get(key, key)


def register(mapper: Callable[[MappingRequest], Mapping[str, np.ndarray]]) -> None:
    """Adds ``mapper(request) -> {key: value}`` for keys in ``request.missing`` it can derive."""
    _mappers.register(mapper)


def mapped_values(request: MappingRequest) -> dict[str, np.ndarray]:
    """Values for the missing keys the mappers can derive (each key from the first that does)."""
    values: dict[str, np.ndarray] = {}
    for mapper in _mappers.items():
        remaining = {k: v for k, v in request.missing.items() if k not in values}
        if not remaining:
            break
        found = mapper(dataclasses.replace(request, missing=remaining))
        values.update({k: v for k, v in found.items() if k in remaining})
    return values
