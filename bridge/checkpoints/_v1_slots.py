"""The slot layouts ``tf.compat.v1.train`` optimizers wrote into tf.estimator checkpoints.

A v1 optimizer keeps each slot of a variable ``P`` under ``P/<Name>``, ``P/<Name>_1``, ...:
the optimizer's name, uniquified once per slot it creates. Which suffix holds which slot is a
fact of each optimizer's slot creation order, recorded from TF 2.15 itself
(tests/fixtures/legacy_2_15/model_dirs/*/facts.json, ``slot_names``):

========================  =================================================================
layout                    suffix -> slot (``optimizer.get_slot_names()``)
========================  =================================================================
Adam                      Adam: m, Adam_1: v; plus ``beta1_power``, ``beta2_power``
Momentum                  Momentum: momentum (also with ``use_nesterov=True``)
Adagrad                   Adagrad: accumulator
ProximalAdagrad           ProximalAdagrad: accumulator
AdagradDA                 AdagradDA: gradient_accumulator, AdagradDA_1: gradient_squared_accumulator
RMSProp                   RMSProp: rms, RMSProp_1: momentum
RMSProp (centered)        RMSProp: rms, RMSProp_1: mg, RMSProp_2: momentum
Ftrl                      Ftrl: accum, Ftrl_1: linear
========================  =================================================================

GradientDescentOptimizer keeps no slots.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:
    from bridge._name_mapping import MappingRequest

LAYOUTS: dict[str, dict[str, str]] = {
    "Adam": {"Adam": "m", "Adam_1": "v"},
    "Momentum": {"Momentum": "momentum"},
    "Adagrad": {"Adagrad": "accumulator"},
    "ProximalAdagrad": {"ProximalAdagrad": "accumulator"},
    "AdagradDA": {"AdagradDA": "gradient_accumulator", "AdagradDA_1": "gradient_squared_accumulator"},
    "RMSProp": {"RMSProp": "rms", "RMSProp_1": "momentum"},
    "RMSProp (centered)": {"RMSProp": "rms", "RMSProp_1": "mg", "RMSProp_2": "momentum"},
    "Ftrl": {"Ftrl": "accum", "Ftrl_1": "linear"},
}
# The tf.compat.v1.train class that writes each layout.
V1_CLASSES = {
    "Adam": "AdamOptimizer",
    "Momentum": "MomentumOptimizer",
    "Adagrad": "AdagradOptimizer",
    "ProximalAdagrad": "ProximalAdagradOptimizer",
    "AdagradDA": "AdagradDAOptimizer",
    "RMSProp": "RMSPropOptimizer",
    "RMSProp (centered)": "RMSPropOptimizer(centered=True)",
    "Ftrl": "FtrlOptimizer",
}
# Variables a v1 optimizer keeps once, not per model variable.
NON_SLOT = {"Adam": ("beta1_power", "beta2_power")}
_SLOT_SUFFIX = re.compile(r"^[A-Z][A-Za-z0-9]*(_\d+)?$")  # an optimizer's name, uniquified


@dataclasses.dataclass
class SlotLayout:
    """The optimizer slots a checkpoint holds: per model variable, its layout and slot keys."""

    layouts: dict[str, str]  # model variable key -> layout name (see LAYOUTS)
    slots: dict[str, dict[str, str]]  # model variable key -> {slot name: checkpoint key}
    unknown: dict[str, list[str]]  # model variable key -> slot-like keys of no known layout

    @property
    def slot_keys(self) -> set[str]:
        return {key for per_variable in self.slots.values() for key in per_variable.values()}

    @property
    def names(self) -> list[str]:
        """The layouts found, most common first."""
        counts: dict[str, int] = {}
        for name in self.layouts.values():
            counts[name] = counts.get(name, 0) + 1
        return sorted(counts, key=lambda n: -counts[n])


def find_slots(keys: Iterable[str]) -> SlotLayout:
    """Groups a checkpoint's keys into model variables and the v1 optimizer slots they carry.

    A key ``P/<Suffix>`` where ``P`` is itself a key and ``<Suffix>`` looks like an optimizer's
    name is a slot of ``P``. A variable's set of suffixes must be exactly one known layout;
    anything else lands in ``unknown``.
    """
    keys = set(keys)
    suffixes: dict[str, dict[str, str]] = {}
    for key in keys:
        primary, _, suffix = key.rpartition("/")
        if primary in keys and _SLOT_SUFFIX.match(suffix):
            suffixes.setdefault(primary, {})[suffix] = key
    result = SlotLayout({}, {}, {})
    for primary, found in sorted(suffixes.items()):
        for name, layout in LAYOUTS.items():
            if set(found) == set(layout):
                result.layouts[primary] = name
                result.slots[primary] = {layout[suffix]: key for suffix, key in found.items()}
                break
        else:
            result.unknown[primary] = sorted(found.values())
    return result


def non_slot_keys(layout: SlotLayout, keys: Mapping[str, object] | Iterable[str]) -> set[str]:
    """The once-per-optimizer variables (Adam's beta powers) of the layouts found."""
    present = set(keys)
    return {k for name in layout.names for k in NON_SLOT.get(name, ()) if k in present}


def slots_of_renamed_variables(request: "MappingRequest") -> dict[str, object]:
    """A v1 slot follows its variable's rename (warm start's ``var_name_to_prev_var_name``).

    With ``{"hidden/kernel": "dense/kernel"}``, the slot ``hidden/kernel/Adam`` of the model is
    ``dense/kernel/Adam`` in the checkpoint.
    """
    values = {}
    for key in request.missing:
        primary, _, suffix = key.rpartition("/")
        if primary in request.renames and _SLOT_SUFFIX.match(suffix):
            source = f"{request.source_key(primary)}/{suffix}"
            if source in request.shapes:
                values[key] = request.reader.get_tensor(source)
    return values
