"""What a device must provide to be trained and calibrated here: the ``DeviceProtocol``, in one place.

Any object with these members can be put in the loop: the simulated ``hardware_sim.Device``, a
``hardware_sim.remote.RemoteDevice`` served from another process, the fault wrappers of ``hardware_sim.faults``
or a class of your own around an instrument driver or an external simulator (README, "Bring your own device").

Required (``DeviceProtocol``):

* ``measure(inputs, input_side=None)``: drive the device with ``inputs`` (T, D) or (B, T, D), the trainer's
  current values of the input-side fields written to it (``{field: array}``, fields left out keep their
  nominal values), and return the measured states (T, N) or (B, T, N).
* ``trainable_fields``: the names ``input_side`` may hold; their shapes (and dtype) are those of the same
  fields of ``nominal_twin()``, their writable ranges the device's own (a DAC clips outside them).
* ``nominal_twin()``: a reservoir (``DelayParams`` or ``ESNParams``) with the device's nominal parameters: the
  starting input side of every trainer, the shapes, and the model of the twin-based modes.
* ``n_units``, ``n_inputs``: N and D.
* ``n_calls``, ``n_samples``: cost counters: measurements so far, and B · T input steps processed so far.

Optional:

* ``adjoint(inputs, input_side, cotangent, *, states=None) -> {field: gradient}`` (``AdjointDevice``): a
  physical backward pass, ∂L/∂(input side) for ∂L/∂states = ``cotangent``, given the ``states`` the forward
  measurement recorded (None: the device measures them first) (Hermans, Antonik, Haelterman, Massar,
  "Embodiment of learning in electro-optical signal processors", Phys. Rev. Lett. 117, 128301 (2016)).
* ``snapshot()`` / ``restore(snapshot)`` (``ReplayableDevice``): the state that makes the next measurement what
  it is, and putting it back: a simulated device can then be replayed, so a resumed training, or a measurement
  retried after a fault, is bit-identical to an uninterrupted, fault-free run.  A real instrument has neither.

Which training modes (``hardware_sim.training.MODES``) need which parts:

* ``digital``: ``nominal_twin`` (the trainer never measures while training; ``measure`` is used only by
  evaluation).
* ``digital+readout``: ``nominal_twin``, ``measure`` (the final ridge refit).
* ``hil``: ``measure`` (forward), ``nominal_twin`` (or a calibrated ``twin=``) for the backward.
* ``physical_backprop``: ``measure`` and ``adjoint``.
* ``spsa``, ``finite_difference``: ``measure`` only (``nominal_twin`` for the starting values).
* calibration: ``measure``, a ``DelayParams`` ``nominal_twin`` (``calibrate_twin`` also reads the simulated
  device's hidden truth to report what it removed: simulated devices only).
* bit-identical resume and fault replay: ``snapshot`` / ``restore``; without them a resumed training continues
  correctly from the checkpoint, on the device's noise as it comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

REQUIRED = ("measure", "trainable_fields", "nominal_twin", "n_units", "n_inputs", "n_calls", "n_samples")
NEEDS: dict[str, tuple[str, ...]] = {"physical_backprop": ("adjoint",)}  # beyond REQUIRED, per mode


@runtime_checkable
class DeviceProtocol(Protocol):
    """The members every device provides (module docstring)."""

    @property
    def n_calls(self) -> int:
        """Measurements made so far (each ``measure`` call counts one, whatever its batch)."""

    @property
    def n_samples(self) -> int:
        """Input steps processed so far: B · T summed over the measurements."""

    @property
    def n_units(self) -> int:
        """N, the number of states measured at every time step."""

    @property
    def n_inputs(self) -> int:
        """D, the number of input channels."""

    @property
    def trainable_fields(self) -> tuple[str, ...]:
        """The input-side fields a trainer may write (the keys ``input_side`` may hold)."""

    def nominal_twin(self) -> Any:
        """A reservoir with the device's nominal parameters: the trainers' starting values and model."""

    def measure(self, inputs: Any, input_side: Mapping[str, Any] | None = None) -> Any:
        """Drive the device with (T, D) or (B, T, D) ``inputs`` and the written ``input_side`` (``{field:
        array}``; fields left out keep their nominal values); return the measured (T, N) or (B, T, N) states."""


@runtime_checkable
class AdjointDevice(DeviceProtocol, Protocol):
    """A device with a physical backward pass (``physical_backprop``)."""

    def adjoint(self, inputs: Any, input_side: Mapping[str, Any] | None, cotangent: Any, *,
                states: Any = None) -> dict[str, Any]:
        """∂L/∂(input side) as ``{field: gradient}`` for ∂L/∂states = ``cotangent``, by a backward pass through
        the device itself, given the ``states`` its forward measurement recorded (None: measured first)."""


@runtime_checkable
class ReplayableDevice(DeviceProtocol, Protocol):
    """A device whose measurements can be replayed (a simulation): bit-identical resume and fault retries."""

    def snapshot(self) -> Any:
        """The state that makes the next measurement what it is (noise keys, drift, counters)."""

    def restore(self, snapshot: Any) -> None:
        """Put back a state taken by ``snapshot``: the measurements that follow repeat bit for bit."""


def check_device(device: Any, mode: str | None = None) -> DeviceProtocol:
    """``device`` if it has every member ``DeviceProtocol`` requires (and what ``mode`` needs on top); otherwise a
    ``TypeError`` naming the missing members."""
    needed = REQUIRED + NEEDS.get(mode, ())
    missing = [name for name in needed if not hasattr(device, name)]
    if missing:
        purpose = f" for mode={mode!r}" if mode in NEEDS else ""
        raise TypeError(f"device must provide {list(needed)}{purpose} (hardware_sim.protocol.DeviceProtocol); "
                        f"{type(device).__name__} lacks {missing}")
    return device


def is_replayable(device: Any) -> bool:
    """Whether ``device`` can be replayed (``snapshot`` and ``restore``)."""
    return callable(getattr(device, "snapshot", None)) and callable(getattr(device, "restore", None))
