"""A simulated analog device: a black box with a meter.

A ``Device`` wraps a reservoir (``DelayParams`` or ``ESNParams``) whose hidden "true" parameters differ from
the nominal ones the trainer knows, plus a chain of non-idealities (``hardware_sim.nonidealities``).  The
trainer can only ``measure``: inputs and its current values of the input-side fields in, measured states out.
One measurement is

    written  = input pieces( Written(nominal with the trainer's input side, inputs) )   # DAC, mismatch, drift
    states   = reservoir.run(written.params, written.inputs)                           # the physics
    measured = output pieces(states)                                 # node spread, low-pass, noise, ADC

The device counts its calls (``n_calls``) and processed sequences × time steps (``n_samples``), so
experiments can report cost in device queries.  ``nominal_twin()`` is the plain digital model with the
nominal parameters.  ``adjoint`` is the physical backward pass of a sine delay device (physical backprop).

Example:
    >>> import numpy as np
    >>> device = delay_device(20, seed=0, mismatch=0.05, snr_db=30, adc_bits=8, drift=1e-3)
    >>> states = device.measure(np.zeros((100, 1)), {"input_gain": 0.6})  # (T, D) -> (T, N)
    >>> states.shape, device.n_calls, device.n_samples
    ((100, 20), 1, 100)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hardware_sim import adjoint as physics
from hardware_sim import nonidealities as nl
from reservoir.core import run
from reservoir.delay import DelayParams, delay_reservoir
from reservoir.esn import ESNParams
from reservoir.trainable import TRAINABLE_FIELDS, split_trainable
from reservoir.validation import NON_NEGATIVE, NON_NEGATIVE_INT, SEED, check_array, check_instance, check_scalar

# Which fields each standard non-ideality touches, per model: (relative fields, absolute fields).
MISMATCH_FIELDS: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {
    DelayParams: (("feedback_gain", "input_gain"), ("phase",)),
    ESNParams: (("W", "W_in"), ("bias",)),
}
DRIFT_FIELDS: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {
    DelayParams: (("input_gain",), ("phase",)),
    ESNParams: (("W_in",), ("bias",)),
}
DAC_FIELDS: dict[type, tuple[str, ...]] = {DelayParams: ("mask", "bias_mask"), ESNParams: ("W_in", "bias")}
LOWPASS_ALONG: dict[type, str] = {DelayParams: "nodes", ESNParams: "time"}


class Device:
    """A reservoir behind non-idealities; the only stateful object of ``hardware_sim``.

    Args:
        nominal: the nominal reservoir (``DelayParams`` or ``ESNParams`` without output feedback): what the
            trainer believes the device is.
        pieces: ``Nonideality`` pieces in the order they act; input-side and output-side pieces may be
            interleaved in the list, each side keeps its own order.
        seed: seed of the device's key stream (fresh noise keys for every measurement).

    State held (hidden from the trainer): the pieces' states (mismatch draws, node spread, drift walk), the key
    stream and the counters ``n_calls`` and ``n_samples``.
    """

    def __init__(self, nominal: Any, pieces: Sequence[nl.Nonideality] = (), *, seed: int):
        if type(nominal) not in TRAINABLE_FIELDS:
            raise TypeError(f"nominal must be one of {[kind.__name__ for kind in TRAINABLE_FIELDS]}, "
                            f"got {type(nominal).__name__}")
        if nominal.n_feedback:
            raise ValueError(f"nominal must have no output feedback, got n_feedback = {nominal.n_feedback}")
        seed = check_scalar("seed", seed, SEED)
        if isinstance(pieces, nl.Nonideality) or not isinstance(pieces, Iterable):
            raise TypeError(f"pieces must be a sequence of Nonideality pieces, got {type(pieces).__name__}"
                            + (": wrap the single piece in a list" if isinstance(pieces, nl.Nonideality) else ""))
        pieces = list(pieces)
        for index, piece in enumerate(pieces):
            check_instance(f"pieces[{index}]", piece, nl.Nonideality)
        self._nominal = nominal
        self._input = nl.chain(*[piece for piece in pieces if piece.side == "input"])
        self._output = nl.chain(*[piece for piece in pieces if piece.side == "output"])
        self._input_state = self._input.init(nominal)
        self._output_state = self._output.init(nominal)
        self._key = jax.random.PRNGKey(seed)
        self._n_calls = 0
        self._n_samples = 0

    @property
    def n_calls(self) -> int:
        """Number of measurements so far."""
        return self._n_calls

    @property
    def n_samples(self) -> int:
        """Number of input time steps processed so far (B · T per measurement)."""
        return self._n_samples

    @property
    def n_units(self) -> int:
        return self._nominal.n_units

    @property
    def n_inputs(self) -> int:
        return self._nominal.n_inputs

    @property
    def trainable_fields(self) -> tuple[str, ...]:
        """Names ``measure`` accepts in ``input_side``."""
        return TRAINABLE_FIELDS[type(self._nominal)]

    def nominal_twin(self) -> Any:
        """The plain digital model with the nominal parameters (no mismatch, no non-ideality)."""
        return self._nominal

    def measure(self, inputs: Any, input_side: Mapping[str, Any] | None = None) -> jax.Array:
        """Drive the device and read its states.

        Args:
            inputs: ``(T, D)`` or ``(B, T, D)``, finite.
            input_side: the trainer's current values of input-side fields, any of ``trainable_fields``
                (e.g. ``{"mask": (N, D), "phase": ()}``); they replace the nominal values, and the hidden
                mismatch and drift act on top.  Fields left out keep their nominal values.

        Returns:
            measured states ``(T, N)`` or ``(B, T, N)``.  Counts one call and B · T samples (bad arguments
            are refused before anything runs or is counted; a run that diverges still counts, as on hardware).
        """
        inputs = check_array("inputs", inputs, (2, 3), {-1: self.n_inputs}, dtype=self._nominal.dtype)
        if 0 in inputs.shape[:-1]:
            raise ValueError(f"inputs must have at least one time step (and sequence), got shape {inputs.shape}")
        params = self._params(input_side)
        inputs = jnp.asarray(inputs, params.dtype)
        self._key, input_key, output_key = jax.random.split(self._key, 3)
        written, self._input_state = self._input.apply(nl.Written(params, inputs), self._input_state, input_key)
        self._n_calls += 1
        self._n_samples += int(np.prod(inputs.shape[:-1]))
        states = run(written.params, written.inputs)
        states, self._output_state = self._output.apply(states, self._output_state, output_key)
        return states

    def adjoint(self, inputs: Any, input_side: Mapping[str, Any] | None, cotangent: Any) -> dict[str, jax.Array]:
        """The physical backward pass (sine delay devices): ∂L/∂(input side) for ∂L/∂states = ``cotangent``.

        The device reruns the forward pass, reads the derivative of its nonlinearity off the same modulator
        with the bias shifted by π/2 (through the same detection chain, noise and ADC included) and sends the
        error through its own loop in reversed time (``hardware_sim.adjoint``).  Counts two calls (derivative
        pass, backward pass) and 2 · B · T samples.

        Returns:
            gradients for the fields named in ``input_side`` (all input-side fields when it is None).
        """
        if not isinstance(self._nominal, DelayParams) or self._nominal.model != "sine":
            raise ValueError("adjoint (physical backprop) is built for sine delay devices only, got "
                             f"{type(self._nominal).__name__} {getattr(self._nominal, 'model', '')}".rstrip())
        inputs = check_array("inputs", inputs, (2, 3), {-1: self.n_inputs})
        cotangent = check_array("cotangent", cotangent, inputs.ndim, {-1: self.n_units})
        if tuple(cotangent.shape[:-1]) != tuple(inputs.shape[:-1]):
            raise ValueError(f"cotangent must have shape {(*inputs.shape[:-1], self.n_units)}, "
                             f"got {tuple(cotangent.shape)}")
        params = self._params(input_side)
        inputs = jnp.asarray(inputs, params.dtype)
        self._key, input_key, output_key = jax.random.split(self._key, 3)
        written, self._input_state = self._input.apply(nl.Written(params, inputs), self._input_state, input_key)
        self._n_calls += 2
        self._n_samples += 2 * int(np.prod(inputs.shape[:-1]))
        true, u = written.params, written.inputs
        states = run(true, u)
        derivative = physics.derivative_readings(true, u, states)
        derivative, self._output_state = self._output.apply(derivative, self._output_state, output_key)
        gradients = physics.physical_gradients(true, u, states, derivative, jnp.asarray(cotangent, params.dtype))
        return {name: gradients[name] for name in (input_side or self.trainable_fields)}

    def _params(self, input_side: Mapping[str, Any] | None) -> Any:
        if input_side is None:
            return self._nominal
        if not isinstance(input_side, Mapping):
            raise TypeError(f"input_side must be a dict of field name -> array or None, "
                            f"got {type(input_side).__name__}")
        for name in input_side:
            if name not in self.trainable_fields:
                raise ValueError(f"input_side has unknown field {name!r}; allowed: {list(self.trainable_fields)}")
        defaults, combine = split_trainable(self._nominal, list(input_side))
        values = {}
        for name, value in input_side.items():
            expected = tuple(defaults[name].shape)
            value = check_array(f"input_side[{name!r}]", value, len(expected), dtype=self._nominal.dtype)
            if tuple(value.shape) != expected:
                raise ValueError(f"input_side[{name!r}] must have shape {expected}, got {tuple(value.shape)}")
            values[name] = jnp.asarray(value, self._nominal.dtype)
        return combine(values)

    def snapshot(self) -> dict[str, Any]:
        """Everything that makes the next measurement what it is (simulation only): the key stream, the pieces'
        states (drift walk, fabrication draws) and the counters, as NumPy arrays and ints (picklable).

        ``restore(snapshot)`` on this device, or on a device built the same way, replays the measurements that
        followed it bit for bit: what resumable training and fault retries rely on."""
        host = lambda tree: jax.tree_util.tree_map(np.array, tree)
        return {"key": np.array(self._key), "input_state": host(self._input_state),
                "output_state": host(self._output_state), "n_calls": self._n_calls, "n_samples": self._n_samples}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Put the device back in the state ``snapshot()`` returned (same structure, shapes and dtypes)."""
        mine = self.snapshot()
        if not isinstance(snapshot, Mapping) or set(snapshot) != set(mine):
            keys = sorted(snapshot) if isinstance(snapshot, Mapping) else type(snapshot).__name__
            raise ValueError(f"snapshot must be a dict with keys {sorted(mine)} (Device.snapshot()), got {keys}")
        arrays = {name: mine[name] for name in ("key", "input_state", "output_state")}
        given = {name: snapshot[name] for name in arrays}
        expected, got = jax.tree_util.tree_structure(arrays), jax.tree_util.tree_structure(given)
        if expected != got:
            raise ValueError(f"snapshot was taken on a differently built device: structure {got}, "
                             f"expected {expected}")
        for (path, want), have in zip(jax.tree_util.tree_leaves_with_path(arrays),
                                      jax.tree_util.tree_leaves(given), strict=True):
            if np.shape(have) != np.shape(want) or np.result_type(have) != np.result_type(want):
                raise ValueError(f"snapshot{jax.tree_util.keystr(path)} must have shape {np.shape(want)} and "
                                 f"dtype {np.result_type(want)}, got {np.shape(have)} {np.result_type(have)}")
        device = lambda tree: jax.tree_util.tree_map(jnp.asarray, tree)
        self._key = device(given["key"])
        self._input_state, self._output_state = device(given["input_state"]), device(given["output_state"])
        self._n_calls = check_scalar("snapshot['n_calls']", snapshot["n_calls"], NON_NEGATIVE_INT)
        self._n_samples = check_scalar("snapshot['n_samples']", snapshot["n_samples"], NON_NEGATIVE_INT)


def wrap_device(
    params: Any,
    *,
    seed: int,
    mismatch: float = 0.0,
    harmonic: float = 0.0,
    gain_spread: float = 0.0,
    offset_spread: float = 0.0,
    bandwidth: float | None = None,
    multiplicative_noise: float = 0.0,
    snr_db: float | None = None,
    dac_bits: int | None = None,
    input_range: tuple[float, float] = (-1.0, 1.0),
    mask_range: tuple[float, float] = (-1.0, 1.0),
    adc_bits: int | None = None,
    adc_range: tuple[float, float] = (-1.0, 1.0),
    drift: float = 0.0,
) -> Device:
    """A device around any reservoir (delay or ESN) with the standard non-idealities; all off by default.

    Args:
        params: the nominal reservoir (``DelayParams`` or ``ESNParams`` without output feedback).
        seed: device seed; the mismatch, drift and node spread draw from seeds derived from it.
        mismatch: level m ≥ 0 of the hidden parameter mismatch: relative on the gains (delay: ``feedback_gain``,
            ``input_gain``; ESN: ``W``, ``W_in``, elementwise), p (1 + m ξ), absolute on the bias point
            (delay: ``phase``; ESN: ``bias``), p + m ξ.
        harmonic: h of the distorted nonlinearity sin(a) + h sin(2a) (delay ``"sine"`` model only).
        gain_spread, offset_spread: std of the fixed per-node gain and offset of the detection chain.
        bandwidth: low-pass cut-off in units of the node rate (delay: along the virtual nodes; ESN: along time);
            None = infinite bandwidth.
        multiplicative_noise: std of the multiplicative detection noise.
        snr_db: detection SNR in dB (see ``nonidealities.detection_noise``); None = no detection noise.
        dac_bits: DAC bits for the inputs (on ``input_range``) and the written masks (delay: ``mask``,
            ``bias_mask``; ESN: ``W_in``, ``bias``; on ``mask_range``); None = ideal DAC.
        adc_bits: ADC bits for the measured states on ``adc_range``; None = ideal ADC.
        drift: step std σ of the per-measurement random walk of the input gain (relative; ESN ``W_in``) and
            the bias point (absolute; delay ``phase``, ESN ``bias``); 0 = no drift.

    Order: input side dac → mismatch → drift → harmonic; output side node spread → low-pass → multiplicative
    noise → detection noise → ADC.
    """
    kind = type(params)
    if kind not in TRAINABLE_FIELDS:
        raise TypeError(f"params must be one of {[k.__name__ for k in TRAINABLE_FIELDS]}, got {kind.__name__}")
    mismatch = check_scalar("mismatch", mismatch, NON_NEGATIVE)
    drift = check_scalar("drift", drift, NON_NEGATIVE)
    mismatch_seed, drift_seed, spread_seed = nl.piece_seeds(seed, 3)
    inputs, outputs = [], []
    if dac_bits is not None:
        inputs.append(nl.dac(dac_bits, input_range=input_range,
                             fields={field: mask_range for field in DAC_FIELDS[kind]}))
    if mismatch:
        relative, absolute = MISMATCH_FIELDS[kind]
        inputs.append(nl.mismatch({f: mismatch for f in relative}, {f: mismatch for f in absolute},
                                  seed=mismatch_seed))
    if drift:
        relative, absolute = DRIFT_FIELDS[kind]
        inputs.append(nl.drift({f: drift for f in relative}, {f: drift for f in absolute}, seed=drift_seed))
    if check_scalar("harmonic", harmonic, nl.REAL):
        inputs.append(nl.harmonic(harmonic))
    gain_spread = check_scalar("gain_spread", gain_spread, NON_NEGATIVE)
    offset_spread = check_scalar("offset_spread", offset_spread, NON_NEGATIVE)
    if gain_spread or offset_spread:
        outputs.append(nl.node_spread(gain_spread, offset_spread, seed=spread_seed))
    if bandwidth is not None:
        outputs.append(nl.lowpass(bandwidth, along=LOWPASS_ALONG[kind]))
    if check_scalar("multiplicative_noise", multiplicative_noise, NON_NEGATIVE):
        outputs.append(nl.multiplicative_noise(multiplicative_noise))
    if snr_db is not None:
        outputs.append(nl.detection_noise(snr_db))
    if adc_bits is not None:
        outputs.append(nl.adc(adc_bits, value_range=adc_range))
    return Device(params, inputs + outputs, seed=seed)


def delay_device(
    n_units: int,
    n_inputs: int = 1,
    *,
    model: str = "sine",
    seed: int,
    reservoir_options: Mapping[str, Any] | None = None,
    **device_options: Any,
) -> Device:
    """An opto-electronic delay-reservoir device: ``wrap_device(delay_reservoir(n_units, n_inputs, model=model,
    seed=seed, **reservoir_options), seed=seed, **device_options)``.

    ``reservoir_options`` are ``delay_reservoir``'s (``input_gain``, ``feedback_gain``, ``phase``, ``mask``,
    ``bias_mask_scaling``, ``node_separation``, ``exponent``, ``dtype``): the nominal values.
    ``device_options`` are ``wrap_device``'s (``mismatch``, ``snr_db``, ``dac_bits``, ``adc_bits``,
    ``bandwidth``, ``drift``, ...).
    """
    nominal = delay_reservoir(n_units, n_inputs, model=model, seed=seed, **dict(reservoir_options or {}))
    return wrap_device(nominal, seed=seed, **device_options)
