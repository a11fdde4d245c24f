"""Devices that fail, and training that carries on: fault types, a retrying wrapper, a fault-injecting wrapper.

Real instruments time out, drop their connection, restart, or return a corrupted trace.  ``RetryingDevice``
puts any device (``hardware_sim.protocol``) behind a ``RetryPolicy``:

* every measurement (and physical backward pass) is checked before it is returned: the shape the inputs call
  for and finite values; a bad one raises ``BadMeasurement`` and is retried, so it never enters a gradient;
* a ``DeviceFault`` (``DeviceTimeout``, ``DeviceRestarted``, ``BadMeasurement``) is retried after a backoff
  b_k = min(b_max, b_0 · f^(k−1)) seconds before retry k (exponential backoff), up to ``max_retries`` times;
* a device that can be replayed (``snapshot``/``restore``: a simulation) is put back, before each retry, in the
  state it had after the last successful call, so the retried measurement is the one a fault-free run would
  have made (bit for bit, the noise included), also when the device restarted between two calls;
* every fault is counted by kind (``faults``), every request made (``n_requests``, failed ones included: the
  device time really spent), and a query budget caps the requests: ``QueryBudgetExceeded`` when spent;
* when the retries are exhausted: ``DeviceUnavailable`` naming the call, the device and the last failure
  (``train`` saves the training state before re-raising it: the same call resumes).

Errors that are not faults (a ``ValueError`` for bad arguments) are raised at once, never retried.

``FaultyDevice`` injects faults into a device at configurable rates (timeouts, non-finite traces, traces of
the wrong shape, restarts at chosen requests), from its own seed: for tests, and for rehearsing a training run
before it meets the one precious instrument.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hardware_sim.protocol import DeviceProtocol, check_device, is_replayable
from reservoir.validation import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE_INT, SEED, Interval, check_scalar

PROBABILITY = Interval(0, 1, "both")
FAULT_KINDS = ("timeout", "restart", "nonfinite", "shape")


class DeviceFault(RuntimeError):
    """A transient failure of a device call, worth retrying; ``kind`` is one of ``FAULT_KINDS``."""

    kind = "fault"


class DeviceTimeout(DeviceFault):
    """No answer within the time allowed (the request or its reply was lost, or the device hangs)."""

    kind = "timeout"


class DeviceRestarted(DeviceFault):
    """The device restarted (or its connection dropped) during the call: its state is not what it was."""

    kind = "restart"


class BadMeasurement(DeviceFault):
    """A measurement that cannot be used: non-finite values (``kind = "nonfinite"``) or the wrong shape."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class DeviceUnavailable(RuntimeError):
    """The retries of a device call are exhausted."""


class QueryBudgetExceeded(RuntimeError):
    """The query budget of a ``RetryingDevice`` is spent."""


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How ``RetryingDevice`` retries.

    ``max_retries``: retries after the first attempt (≥ 0); ``backoff``: b_0 seconds before the first retry,
    multiplied by ``backoff_factor`` f ≥ 1 for every further one, at most ``max_backoff``; ``budget``: the most
    requests (measure or adjoint attempts, failed ones included) the wrapper sends, None = unlimited: one
    wrapper per training makes it a per-training budget; ``replay``: restore a replayable device before a
    retry (off: retries re-measure on the device's noise as it comes)."""

    max_retries: int = 5
    backoff: float = 0.05
    backoff_factor: float = 2.0
    max_backoff: float = 5.0
    budget: int | None = None
    replay: bool = True

    def __post_init__(self):
        check_scalar("max_retries", self.max_retries, NON_NEGATIVE_INT)
        check_scalar("backoff", self.backoff, NON_NEGATIVE)
        check_scalar("backoff_factor", self.backoff_factor, Interval(1, None, "left"))
        check_scalar("max_backoff", self.max_backoff, NON_NEGATIVE)
        if self.budget is not None:
            check_scalar("budget", self.budget, POSITIVE_INT)
        if not isinstance(self.replay, bool):
            raise TypeError(f"replay must be True or False, got {self.replay!r}")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry ``retry`` (1, 2, ...): min(b_max, b_0 · f^(retry − 1))."""
        return min(self.max_backoff, self.backoff * self.backoff_factor ** (retry - 1))


def check_measurement(states: Any, inputs: Any, n_units: int) -> np.ndarray:
    """``states`` as an array if it has the shape ``inputs`` (…, T, D) call for, (…, T, N), and finite values;
    else ``BadMeasurement``."""
    states = np.asarray(states)
    expected = (*np.shape(inputs)[:-1], n_units)
    if states.shape != expected:
        raise BadMeasurement(f"measurement has shape {states.shape}, expected {expected}", "shape")
    if not np.isfinite(states).all():
        raise BadMeasurement(f"measurement has {np.size(states) - np.isfinite(states).sum()} non-finite values "
                             f"of {np.size(states)}", "nonfinite")
    return states


def check_gradients(gradients: Any, input_side: Mapping[str, Any] | None, fields: Sequence[str],
                    shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """A physical backward pass's gradients if they name the expected fields with their shapes and are finite;
    else ``BadMeasurement``."""
    names = list(input_side) if input_side is not None else list(fields)
    if not isinstance(gradients, Mapping) or sorted(gradients) != sorted(names):
        got = sorted(gradients) if isinstance(gradients, Mapping) else type(gradients).__name__
        raise BadMeasurement(f"backward pass returned {got}, expected gradients for {sorted(names)}", "shape")
    result = {}
    for name in names:
        value = np.asarray(gradients[name])
        if value.shape != tuple(shapes[name]):
            raise BadMeasurement(f"gradient of {name!r} has shape {value.shape}, expected {tuple(shapes[name])}",
                                 "shape")
        if not np.isfinite(value).all():
            raise BadMeasurement(f"gradient of {name!r} has non-finite values", "nonfinite")
        result[name] = value
    return result


class _Wrapper:
    """Forwards the protocol's counters and description to the wrapped ``device``; ``adjoint``, ``snapshot``
    and ``restore`` exist only when the wrapped device has them (``hasattr`` tells)."""

    def __init__(self, device: DeviceProtocol):
        self.device = check_device(device)

    n_calls = property(lambda self: self.device.n_calls, doc="The wrapped device's measurements so far.")
    n_samples = property(lambda self: self.device.n_samples, doc="The wrapped device's B · T samples so far.")
    n_units = property(lambda self: self.device.n_units, doc="The wrapped device's N states per step.")
    n_inputs = property(lambda self: self.device.n_inputs, doc="The wrapped device's D input channels.")
    trainable_fields = property(lambda self: self.device.trainable_fields,
                                doc="The wrapped device's writable input-side fields.")

    def nominal_twin(self) -> Any:
        """The wrapped device's nominal twin."""
        return self.device.nominal_twin()

    def _optional(self, name: str) -> Callable:
        if not hasattr(self.device, name):
            raise AttributeError(f"{type(self).__name__}: the wrapped {type(self.device).__name__} has no {name}")
        return getattr(self, f"_{name}")

    adjoint = property(lambda self: self._optional("adjoint"))
    snapshot = property(lambda self: self._optional("snapshot"))
    restore = property(lambda self: self._optional("restore"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.device!r})"


class RetryingDevice(_Wrapper):
    """``device`` behind a ``RetryPolicy`` (module docstring): checked measurements, retries with backoff,
    faults counted in ``faults`` (kind -> count), requests in ``n_requests``, a query budget.

    Example:
        >>> from hardware_sim import delay_device
        >>> flaky = FaultyDevice(delay_device(8, seed=0, snr_db=30), timeout=0.3, nonfinite=0.1, seed=1)
        >>> device = RetryingDevice(flaky, RetryPolicy(backoff=0.01))
        >>> states = device.measure(np.zeros((20, 1)))  # retried until good; the states a fault-free call gives
    """

    def __init__(self, device: DeviceProtocol, policy: RetryPolicy | None = None, *,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(device)
        self.policy = RetryPolicy() if policy is None else policy
        if not isinstance(self.policy, RetryPolicy):
            raise TypeError(f"policy must be a RetryPolicy, got {type(self.policy).__name__}")
        self._sleep = sleep
        self.faults: collections.Counter[str] = collections.Counter()
        self.n_requests = 0
        # The device's state after the last successful call: what a retry restores, and this wrapper's
        # snapshot (no query: a restarted device cannot be asked for the state it lost).  The wrapper must then
        # be the device's only user.
        self._replay = self.policy.replay and is_replayable(device)
        self._last = device.snapshot() if self._replay else None

    @property
    def n_calls(self) -> int:
        """The wrapped device's measurements so far (read with retries: a device may restart between calls)."""
        return self._call("n_calls", lambda: self.device.n_calls, query=False)

    @property
    def n_samples(self) -> int:
        """The wrapped device's B · T samples so far (read with retries, as ``n_calls``)."""
        return self._call("n_samples", lambda: self.device.n_samples, query=False)

    def measure(self, inputs: Any, input_side: Mapping[str, Any] | None = None) -> np.ndarray:
        """``device.measure`` checked (shape, finite) and retried per the policy."""
        return self._call("measure", lambda: check_measurement(self.device.measure(inputs, input_side), inputs,
                                                                  self.n_units))

    def _adjoint(self, inputs: Any, input_side: Mapping[str, Any] | None, cotangent: Any, *,
                 states: Any = None) -> dict[str, np.ndarray]:
        twin = self.device.nominal_twin()
        names = list(input_side) if input_side is not None else list(self.trainable_fields)
        shapes = {name: np.shape(getattr(twin, name)) for name in names}
        backward = lambda: self.device.adjoint(inputs, input_side, cotangent, states=states)
        return self._call("adjoint",
                          lambda: check_gradients(backward(), input_side, self.trainable_fields, shapes))

    def _call(self, what: str, attempt: Callable[[], Any], *, query: bool = True) -> Any:
        """``attempt()`` retried per the policy; a ``query`` (a measurement, a backward pass) counts against the
        budget and moves the state a retry restores."""
        last = None
        for retry in range(self.policy.max_retries + 1):
            if query and self.policy.budget is not None and self.n_requests >= self.policy.budget:
                raise QueryBudgetExceeded(f"{what} on {self.device!r}: the query budget of {self.policy.budget} "
                                          f"requests is spent ({dict(self.faults)} faults so far)") from last
            if retry:
                self._sleep(self.policy.delay(retry))
            try:
                if retry and self._replay:
                    self.device.restore(self._last)  # the retried call sees what the failed one saw
                self.n_requests += query
                result = attempt()
                if query and self._replay:
                    self._last = self.device.snapshot()
                return result
            except DeviceFault as fault:
                self.faults[fault.kind] += 1
                last = fault
        raise DeviceUnavailable(f"{what} on {self.device!r} failed {self.policy.max_retries + 1} times; last "
                                f"failure: {type(last).__name__} ({last.kind}): {last}") from last

    def _snapshot(self) -> dict[str, Any]:
        """The wrapped device's state after the last successful call and this wrapper's counters (a resumed
        training keeps its budget)."""
        device = self._last if self._replay else self.device.snapshot()
        return {"device": device, "faults": dict(self.faults), "n_requests": self.n_requests}

    def _restore(self, snapshot: Mapping[str, Any]) -> None:
        self._call("restore", lambda: self.device.restore(snapshot["device"]), query=False)
        self._last = snapshot["device"]
        self.faults = collections.Counter(snapshot["faults"])
        self.n_requests = snapshot["n_requests"]


class FaultyDevice(_Wrapper):
    """``device`` with injected faults, for tests and rehearsals.

    Each request (measure or adjoint) k = 0, 1, ... draws u ~ U(0, 1) from ``seed``; at a request listed in
    ``restart_at`` the device restarts (a replayable device goes back to the state it was built in) and the
    call raises ``DeviceRestarted``; otherwise with probability ``timeout`` the device runs and its answer is
    lost (``DeviceTimeout``), with probability ``nonfinite`` the answer has one NaN, with probability ``shape``
    it lacks its last node (or gradient entry).  ``injected`` counts the faults by kind.  ``snapshot`` and
    ``restore`` are the wrapped device's: restoring a device does not undo the faults to come.
    """

    def __init__(self, device: DeviceProtocol, *, timeout: float = 0.0, nonfinite: float = 0.0,
                 shape: float = 0.0, restart_at: Sequence[int] = (), seed: int):
        super().__init__(device)
        rates = {kind: check_scalar(kind, rate, PROBABILITY)
                 for kind, rate in (("timeout", timeout), ("nonfinite", nonfinite), ("shape", shape))}
        if sum(rates.values()) > 1:
            raise ValueError(f"timeout + nonfinite + shape must be at most 1, got {sum(rates.values())}")
        self.rates = rates
        self.restart_at = frozenset(check_scalar(f"restart_at[{i}]", k, NON_NEGATIVE_INT)
                                    for i, k in enumerate(restart_at))
        self._rng = np.random.default_rng(check_scalar("seed", seed, SEED))
        self._initial = device.snapshot() if is_replayable(device) else None
        self.injected: collections.Counter[str] = collections.Counter()
        self.n_requests = 0

    def measure(self, inputs: Any, input_side: Mapping[str, Any] | None = None) -> np.ndarray:
        """``device.measure``, or the fault drawn for this request."""
        return self._inject(lambda: self.device.measure(inputs, input_side))

    def _adjoint(self, inputs: Any, input_side: Mapping[str, Any] | None, cotangent: Any, *,
                 states: Any = None) -> dict[str, Any]:
        return self._inject(lambda: self.device.adjoint(inputs, input_side, cotangent, states=states))

    def _snapshot(self) -> Any:
        return self.device.snapshot()

    def _restore(self, snapshot: Any) -> None:
        self.device.restore(snapshot)

    def _inject(self, call: Callable[[], Any]) -> Any:
        request, draw = self.n_requests, self._rng.random()
        self.n_requests += 1
        if request in self.restart_at:
            self.injected["restart"] += 1
            if self._initial is not None:
                self.device.restore(self._initial)
            raise DeviceRestarted(f"injected restart at request {request}")
        answer = call()
        kind = next((k for k, edge in zip(self.rates, np.cumsum(list(self.rates.values())), strict=True)
                     if draw < edge), None)
        if kind is None:
            return answer
        self.injected[kind] += 1
        if kind == "timeout":
            raise DeviceTimeout(f"injected timeout at request {request}")
        if isinstance(answer, Mapping):  # a backward pass: corrupt its first gradient
            name = next(iter(answer))
            return {**answer, name: _corrupt(np.asarray(answer[name]), kind)}
        return _corrupt(np.asarray(answer), kind)


def _corrupt(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == "shape":
        return array[..., :-1] if array.ndim else array[None]
    array = np.array(array, dtype=np.result_type(array, np.float32))
    array.reshape(-1)[array.size // 2] = np.nan
    return array
