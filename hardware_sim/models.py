"""What a simulated device knows about each reservoir model, by single dispatch: open to new models.

The nominal models of ``reservoir`` know nothing of hardware.  A device needs, per model, which fields its
standard non-idealities touch (``hardware_fields``) and, for a distorted ``"sine"`` modulator, a model the
nominal one lacks (``DistortedSine``).  A new reservoir family gets a simulated device by registering its
class here, ``@hardware_fields.register``; subclasses inherit their parent's registration.

Example:
    >>> from reservoir import delay_reservoir, esn
    >>> hardware_fields(delay_reservoir(4, seed=0)).mismatch  # (relative, absolute)
    (('feedback_gain', 'input_gain'), ('phase',))
    >>> hardware_fields(esn(4, seed=0)).lowpass_along
    'time'
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax

from reservoir import trig
from reservoir.core import pytree_dataclass
from reservoir.delay import DelayParams, Sin2LowpassDelay, SineDelay
from reservoir.esn import ESNParams
from reservoir.validation import check_instance


class HardwareFields(NamedTuple):
    """Which fields of a model the standard non-idealities of ``hardware_sim.device.wrap_device`` act on.

    ``mismatch`` and ``drift``: (relative fields, absolute fields), scaled p (1 + ·) or shifted p + · (the
    gains and the bias point); ``dac``: the fields written through the DAC (the input weights); ``lowpass_along``:
    the axis along which the detection low-pass acts, ``"nodes"`` (a delay loop detects its virtual nodes one
    after the other) or ``"time"`` (units read in parallel)."""

    mismatch: tuple[tuple[str, ...], tuple[str, ...]]
    drift: tuple[tuple[str, ...], tuple[str, ...]]
    dac: tuple[str, ...]
    lowpass_along: str


@functools.singledispatch
def hardware_fields(params: Any) -> HardwareFields:
    """The ``HardwareFields`` of ``params``'s model; ``TypeError`` for a model with none registered."""
    raise _unregistered("params", params)


@hardware_fields.register
def _delay(params: DelayParams) -> HardwareFields:
    # What every delay loop has: gains (the bias point, where a node model has one, is added below).
    return HardwareFields(mismatch=(("feedback_gain", "input_gain"), ()), drift=(("input_gain",), ()),
                          dac=("mask", "bias_mask"), lowpass_along="nodes")


@hardware_fields.register(SineDelay)
@hardware_fields.register(Sin2LowpassDelay)
def _delay_with_bias_point(params: DelayParams) -> HardwareFields:
    fields = _delay(params)
    return fields._replace(mismatch=(fields.mismatch[0], ("phase",)), drift=(fields.drift[0], ("phase",)))


@hardware_fields.register
def _esn(params: ESNParams) -> HardwareFields:
    return HardwareFields(mismatch=(("W", "W_in"), ("bias",)), drift=(("W_in",), ("bias",)), dac=("W_in", "bias"),
                          lowpass_along="time")


def hardware_models() -> tuple[type, ...]:
    """The reservoir classes registered with ``hardware_fields``, the most general ones only (a registered
    subclass of a registered class is covered by its parent here)."""
    registered = [kind for kind in hardware_fields.registry if kind is not object]
    return tuple(kind for kind in registered if not any(kind is not other and issubclass(kind, other)
                                                        for other in registered))


def model_classes() -> dict[str, type]:
    """Every class a simulated device can wrap, by name: the registered ones and all their subclasses (what a
    remote client may rebuild a nominal twin as)."""
    classes, pending = {}, list(hardware_models())
    while pending:
        kind = pending.pop()
        classes[kind.__name__] = kind
        pending.extend(kind.__subclasses__())
    return classes


def check_hardware_model(name: str, params: Any) -> Any:
    """Return ``params`` if its model has ``hardware_fields`` registered, else a ``TypeError`` naming ``name``."""
    if not isinstance(params, hardware_models()):
        raise _unregistered(name, params)
    return params


def _unregistered(name: str, params: Any) -> TypeError:
    kinds = [kind.__name__ for kind in hardware_models()]
    return TypeError(f"{name} must be one of {kinds} (the reservoir models registered with "
                     f"hardware_sim.models.hardware_fields), got {type(params).__name__}")


@pytree_dataclass
class DistortedSine(SineDelay):
    """A ``"sine"`` delay reservoir whose modulator response is distorted: sin(a) + h sin(2a), h = ``harmonic``
    (a () array).  What a simulated device (``nonidealities.harmonic``) runs; the nominal ``SineDelay`` has no
    such field."""

    harmonic: jax.Array

    def distortion(self, argument: jax.Array) -> jax.Array:
        """The added response h sin(2a)."""
        return self.harmonic * trig.sin(2 * argument)

    def nonlinearity(self, argument: jax.Array) -> jax.Array:
        """sin(a) + h sin(2a)."""
        return super().nonlinearity(argument) + self.distortion(argument)


def with_harmonic(params: SineDelay, harmonic: Any) -> DistortedSine:
    """``params`` (a ``SineDelay``, distorted or not) with the modulator distortion h = ``harmonic``."""
    check_instance("params", params, SineDelay)
    fields = {field.name: getattr(params, field.name) for field in dataclasses.fields(params)}
    return DistortedSine(**{**fields, "harmonic": harmonic})
