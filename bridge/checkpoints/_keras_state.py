"""A Keras 3 optimizer's state from the slots a ``tf.compat.v1.train`` optimizer wrote.

Registered with the runtime's name-mapping seam (``bridge._name_mapping``), so it runs on
restore and on warm start alike, for the Keras optimizers ``bridge.minimize`` applied. For each
model variable the Keras optimizer trains, its slots come from the v1 slots of the same
variable (``var_name_to_prev_var_name`` followed on warm start):

===========================  ==========================  ==========================================
Keras 3                      v1 layout in the checkpoint  state
===========================  ==========================  ==========================================
Adam (and subclasses: AdamW)  Adam                        m -> momentum, v -> velocity;
                                                          beta1_power/beta2_power -> iterations
SGD(momentum > 0)            Momentum                     momentum = -learning_rate * accumulation
SGD(momentum=0)              none (GradientDescent)       (no slots)
Adagrad                      Adagrad, ProximalAdagrad     accumulator
RMSprop(centered=False)      RMSProp                      rms -> velocity, momentum -> momentum
RMSprop(centered=True)       RMSProp (centered)           ... and mg -> average_gradient
Ftrl                         Ftrl                         accum -> accumulator, linear -> linear
===========================  ==========================  ==========================================

``iterations`` is the step the v1 optimizer reached: for Adam, the power of its beta1/beta2
accumulators (so bias correction continues where it was); else the checkpoint's global step.
The Keras ``learning_rate`` variable keeps the value the model_fn configured. Anything else (an
AMSGrad velocity_hat, a v1 layout the Keras optimizer cannot continue, a Keras optimizer with
no counterpart) raises, naming the variables: optimizer state is never silently restarted.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Iterable

import numpy as np

from bridge._api_names import api_name
from bridge._name_mapping import MappingRequest
from bridge.checkpoints._v1_slots import V1_CLASSES, SlotLayout, find_slots

NO_SLOTS = "none"  # the layout of a variable that carries no optimizer slots (GradientDescent)
_KERAS_ITERATIONS = re.compile(r"^(?P<prefix>[a-z][a-z0-9_]*)/iteration$")


def keras_optimizer_prefixes(keys: Iterable[str]) -> list[str]:
    """The key prefixes of the Keras 3 optimizers whose state a checkpoint holds ("adam" for adam/iteration)."""
    return sorted({m["prefix"] for m in map(_KERAS_ITERATIONS.match, keys) if m})


@dataclasses.dataclass(frozen=True)
class KerasLayout:
    """Which v1 layouts a Keras optimizer continues, and which of its slot lists takes which slot."""

    accepts: tuple[str, ...]
    slots: dict[str, str]  # attribute of the Keras optimizer (a list per model variable) -> v1 slot name
    transform: Callable[[str, np.ndarray, Any, int], np.ndarray] | None = None  # (slot, value, optimizer, step)


def _sgd_momentum(slot: str, value: np.ndarray, optimizer: Any, step: int) -> np.ndarray:
    # v1: accum = momentum * accum + g; var -= lr * accum.  Keras: m = momentum * m - lr * g;
    # var += m.  So m = -lr * accum (with the learning rate the step will use).
    return (-_learning_rate(optimizer, step) * value).astype(value.dtype)


def _learning_rate(optimizer: Any, step: int) -> float:
    """The learning rate the Keras optimizer applies at ``step`` (a schedule's value there)."""
    import keras

    rate = optimizer._learning_rate  # pylint: disable=protected-access
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return float(np.asarray(rate(step)))
    if callable(rate):
        return float(np.asarray(rate()))
    return float(_as_tf_variable(rate).numpy())


def keras_layout(optimizer: Any) -> KerasLayout | None:
    """The mapping for a Keras 3 optimizer, or None when it has no v1 counterpart."""
    import keras

    o = keras.optimizers
    if isinstance(optimizer, o.Adam):
        slots = {"_momentums": "m", "_velocities": "v"}
        if optimizer.amsgrad:
            slots["_velocity_hats"] = ""  # no v1 counterpart: reported as unmappable
        return KerasLayout(("Adam",), slots)
    if isinstance(optimizer, o.SGD):
        if optimizer.momentum > 0:
            return KerasLayout(("Momentum",), {"momentums": "momentum"}, _sgd_momentum)
        return KerasLayout((NO_SLOTS,), {})
    if isinstance(optimizer, o.Adagrad):
        return KerasLayout(("Adagrad", "ProximalAdagrad"), {"_accumulators": "accumulator"})
    if isinstance(optimizer, o.RMSprop):
        slots = {"_velocities": "rms"}
        if optimizer.momentum > 0:
            slots["_momentums"] = "momentum"
        if optimizer.centered:
            slots["_average_gradients"] = "mg"
            return KerasLayout(("RMSProp (centered)",), slots)
        return KerasLayout(("RMSProp",), slots)
    if isinstance(optimizer, o.Ftrl):
        return KerasLayout(("Ftrl",), {"_accumulators": "accum", "_linears": "linear"})
    return None


def _as_tf_variable(variable: Any) -> Any:
    import keras

    return variable.value if isinstance(variable, keras.Variable) else variable


class _Problems:
    """Collects what cannot be mapped, to raise once with every name."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def raise_if_any(self, request: MappingRequest) -> None:
        if self.lines:
            details = "\n  ".join(self.lines)
            raise ValueError(
                f"Cannot continue from {request.checkpoint_path} with the optimizer of this model_fn: its "
                f"optimizer state cannot be taken from what the checkpoint holds:\n  {details}\n"
                "Resume with the optimizer that wrote the checkpoint (`python -m bridge.checkpoints inspect "
                "MODEL_DIR` names it) or the Keras 3 optimizer that continues it (docs/migration.md, "
                "\"Keep your model_dir\"). To restart the optimizer state on purpose, train in a new model_dir "
                f"warm-started from the model's weights only: warm_start_from={api_name('WarmStartSettings')}(MODEL_DIR, "
                "vars_to_warm_start='.*')."
            )


def keras_state_from_v1(request: MappingRequest) -> dict[str, np.ndarray]:
    """Values for the missing variables of the Keras optimizers in ``request.state_owners``."""
    import keras

    optimizers = [o for o in request.state_owners if isinstance(o, keras.optimizers.Optimizer)]
    if not optimizers:
        _explain_unregistered(request)
        return {}
    if keras_optimizer_prefixes(request.shapes):
        # Written with a Keras optimizer: its state is carried by name only. Whatever is missing
        # (another optimizer's state, a changed model) is reported as missing by the caller.
        return {}
    key_of = {id(variable): key for key, variable in request.variables.items()}
    optimizers = [o for o in optimizers if any(key_of.get(id(_as_tf_variable(v))) in request.missing for v in o.variables)]
    if not optimizers:  # their state is in the checkpoint: what is missing is someone else's
        return {}
    layout = find_slots(request.shapes)
    values: dict[str, np.ndarray] = {}
    problems = _Problems()
    for optimizer in optimizers:
        values.update(_one_optimizer(optimizer, request, key_of, layout, problems))
    problems.raise_if_any(request)
    return values


def _explain_unregistered(request: MappingRequest) -> None:
    """Keras optimizer state wanted from v1 slots, but bridge.minimize did not apply the optimizer."""
    iterations = sorted(k for k in request.missing if k.endswith("/iteration"))
    slots = find_slots(request.shapes).slots
    if iterations and slots:
        raise ValueError(
            f"{request.checkpoint_path} holds the slots of a tf.compat.v1.train optimizer "
            f"({', '.join(sorted(find_slots(request.shapes).names))}), and the model_fn's Keras optimizer state "
            f"({iterations}, ...) is not in it. bridge maps one onto the other for optimizers applied with "
            "bridge.minimize(loss, optimizer): build the train_op with it (it also increments the global step)."
        )


def _one_optimizer(optimizer, request, key_of, layout: SlotLayout, problems: _Problems) -> dict[str, np.ndarray]:
    def key(variable: Any) -> str | None:
        return key_of.get(id(_as_tf_variable(variable)))

    own = {key(v) for v in optimizer.variables} - {None}
    name = type(optimizer).__name__
    mapping = keras_layout(optimizer)
    if mapping is None:
        problems.add(
            f"keras.optimizers.{name} has no tf.compat.v1.train counterpart (supported: Adam, SGD, Adagrad, "
            f"RMSprop, Ftrl); its variables {sorted(own & set(request.missing))} are not in the checkpoint."
        )
        return {}
    values: dict[str, np.ndarray] = {}
    step = _iterations(optimizer, request, layout, mapping, problems)
    iterations_key = key(optimizer.iterations)
    if step is not None and iterations_key in request.missing:
        values[iterations_key] = np.asarray(step, np.int64)
    rate = getattr(optimizer, "_learning_rate", None)
    rate_key = key(rate) if rate is not None and not callable(rate) else None
    if rate_key in request.missing:  # a hyperparameter, not state: the model_fn's value stands
        values[rate_key] = np.asarray(_as_tf_variable(rate).numpy())
    mismatches: dict[str, tuple[list[str], list[str], list[str]]] = {}  # found layout -> sources, targets, held
    for index, primary in enumerate(optimizer._trainable_variables):  # pylint: disable=protected-access
        primary_key = key(primary)
        if primary_key is None:
            continue
        wanted = {
            attribute: slot for attribute, slot in mapping.slots.items()
            if getattr(optimizer, attribute, None) and key(getattr(optimizer, attribute)[index]) in request.missing
        }  # fmt: skip
        source = request.source_key(primary_key)
        if source not in request.shapes:
            continue  # a variable new to this model: the caller reports its state missing
        found = layout.layouts.get(source, "unknown" if source in layout.unknown else NO_SLOTS)
        if found not in mapping.accepts:
            mismatch = mismatches.setdefault(found, ([], [], []))
            mismatch[0].append(source)
            mismatch[1].extend(key(getattr(optimizer, a)[index]) for a in wanted)
            mismatch[2].extend(layout.slots.get(source, {}).values() or layout.unknown.get(source, []))
            continue
        for attribute, slot in wanted.items():
            target = key(getattr(optimizer, attribute)[index])
            if not slot:
                problems.add(f"'{target}' ({name} amsgrad's velocity_hat) has no counterpart in a v1 checkpoint.")
                continue
            value = request.reader.get_tensor(layout.slots[source][slot])
            if mapping.transform is not None:
                value = mapping.transform(slot, value, optimizer, step or 0)
            values[target] = value
    accepted = " or ".join(_describe(a) for a in mapping.accepts)
    for found, (sources, targets, held) in mismatches.items():
        problems.add(
            f"keras.optimizers.{name} continues from {accepted}, but the checkpoint holds "
            f"{_describe(found)} for {sources}" + (f" ({sorted(held)})" if held else "")
            + (f": {sorted(targets)} cannot be taken from it." if targets else f", which {name} would drop.")
        )
    return values


def _describe(layout: str) -> str:
    if layout == NO_SLOTS:
        return "no optimizer slots (tf.compat.v1.train.GradientDescentOptimizer)"
    if layout == "unknown":
        return "optimizer slots of an unknown layout"
    return f"tf.compat.v1.train.{V1_CLASSES[layout]} slots"


def _iterations(optimizer, request: MappingRequest, layout: SlotLayout, mapping, problems: _Problems) -> int | None:
    """The number of steps the v1 optimizer took: what the Keras optimizer's ``iterations`` continues."""
    global_step = int(request.reader.get_tensor("global_step")) if "global_step" in request.shapes else None
    if mapping.accepts == ("Adam",) and "Adam" in layout.names:
        return _adam_step(optimizer, request, global_step, problems)
    if global_step is None:
        problems.add(f"the checkpoint has no 'global_step' to continue keras.optimizers.{type(optimizer).__name__}'s iterations from.")
    return global_step


def _adam_step(optimizer, request: MappingRequest, global_step: int | None, problems: _Problems) -> int | None:
    """The step count that v1 Adam's ``beta1_power`` / ``beta2_power`` hold (both beta^(steps + 1)).

    Each power gives an estimate with the Keras optimizer's betas; they must agree (else the
    betas differ from the v1 optimizer's, and the bias correction would be wrong). A power that
    underflowed float32 (beyond ~900 steps for beta1=0.9) is skipped; when both did, the bias
    correction is exactly 1 either way and the global step is used. The estimates carry the
    rounding of v1's repeated float32 multiplications, so the global step is taken when it is
    within their error.
    """
    estimates = []
    for power_key, beta in (("beta1_power", optimizer.beta_1), ("beta2_power", optimizer.beta_2)):
        if power_key not in request.shapes:
            problems.add(f"'{power_key}' (v1 Adam's bias-correction state) is missing from the checkpoint.")
            return None
        power = float(request.reader.get_tensor(power_key))
        if power > 1e-30 and 0.0 < beta < 1.0:
            steps = math.log(power) / math.log(beta) - 1.0
            tolerance = 0.5 + abs(steps) * 1e-6 / abs(math.log(beta))
            estimates.append((power_key, power, beta, steps, tolerance))
    if not estimates:
        return global_step
    best = estimates[0]
    consistent = all(abs(e[3] - best[3]) <= max(e[4], best[4]) for e in estimates) and best[3] > -best[4]
    if not consistent:
        found = ", ".join(f"{k}={p!r} with beta {b} -> {s:.2f} steps" for k, p, b, s, _ in estimates)
        problems.add(
            f"v1 Adam's {found} disagree: keras.optimizers.{type(optimizer).__name__}(beta_1={optimizer.beta_1}, "
            f"beta_2={optimizer.beta_2}) does not have the betas the checkpoint was written with. Pass the "
            "AdamOptimizer's beta1/beta2."
        )
        return None
    if global_step is not None and abs(global_step - best[3]) <= best[4]:
        return global_step
    return max(0, round(best[3]))
