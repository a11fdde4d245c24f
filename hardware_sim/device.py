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

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from hardware_sim import loop as physics
from hardware_sim import nonidealities as nl
from hardware_sim.models import check_hardware_model, hardware_fields
from reservoir.core import raise_if_diverged, run
from reservoir.delay import DelayParams, delay_reservoir
from reservoir.trainable import split_trainable, trainable_fields
from reservoir.validation import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    SEED,
    check_array,
    check_choice,
    check_instance,
    check_scalar,
)


class DeviceTruth(NamedTuple):
    """A device's hidden truth, for tests and figures only (``Device.truth``): no training mode or calibration
    reads it.  ``params``: the parameters the next measurement would run with the given input side (mismatch,
    drift, harmonic applied); ``loop``: the loop's physics (None for devices without an in-loop simulation);
    ``delay_offset``: the current fractional delay ε; ``bias_walk``: the current bias drift (rad)."""

    params: Any
    loop: physics.LoopPhysics | None
    delay_offset: float
    bias_walk: float


class Device:
    """A reservoir behind non-idealities; the only stateful object of ``hardware_sim``.

    Args:
        nominal: the nominal reservoir (``DelayParams`` or ``ESNParams`` without output feedback): what the
            trainer believes the device is.
        pieces: ``Nonideality`` pieces in the order they act; input-side and output-side pieces may be
            interleaved in the list, each side keeps its own order.
        seed: seed of the device's key stream (fresh noise keys for every measurement).
        loop: the physics inside the loop (``hardware_sim.loop.LoopPhysics``) of a ``"sine"`` or
            ``"sin2_lowpass"`` delay device, whose states are then simulated by ``hardware_sim.loop`` (with
            ``LoopPhysics()``, the default for those models, that is the nominal model exactly); None for other
            reservoirs, which run ``reservoir.run``.

    State held (hidden from the trainer): the pieces' states (mismatch draws, node spread, drift walk), the loop's
    fractional delay and bias walk, the key streams and the counters ``n_calls`` and ``n_samples``.  The in-loop
    randomness of measurement k is drawn from the loop's key folded with k, so it is a function of the seed and
    the call index.
    """

    def __init__(self, nominal: Any, pieces: Sequence[nl.Nonideality] = (), *, seed: int,
                 loop: physics.LoopPhysics | None = None):
        check_hardware_model("nominal", nominal)
        if nominal.n_feedback:
            raise ValueError(f"nominal must have no output feedback, got n_feedback = {nominal.n_feedback}")
        seed = check_scalar("seed", seed, SEED)
        if isinstance(pieces, nl.Nonideality) or not isinstance(pieces, Iterable):
            raise TypeError(f"pieces must be a sequence of Nonideality pieces, got {type(pieces).__name__}"
                            + (": wrap the single piece in a list" if isinstance(pieces, nl.Nonideality) else ""))
        pieces = list(pieces)
        for index, piece in enumerate(pieces):
            check_instance(f"pieces[{index}]", piece, nl.Nonideality)
        simulated_loop = isinstance(nominal, DelayParams) and nominal.model in physics.LOOP_MODELS
        if loop is None and simulated_loop:
            loop = physics.LoopPhysics()
        if loop is not None:
            check_instance("loop", loop, physics.LoopPhysics)
            physics.check_loop_model(nominal)
        self._nominal = nominal
        self._input = nl.chain(*[piece for piece in pieces if piece.side == "input"])
        self._output = nl.chain(*[piece for piece in pieces if piece.side == "output"])
        self._input_state = self._input.init(nominal)
        self._output_state = self._output.init(nominal)
        self._key = jax.random.PRNGKey(seed)
        self._loop = loop
        self._loop_seed = nl.piece_seeds(seed, 4)[3]
        if loop is not None:
            lowpass = loop.lowpass_time
            if lowpass is None and nominal.model == "sin2_lowpass":
                lowpass = 1.0 / nominal.node_separation
            matrix = physics.filter_matrix(nominal.n_units, lowpass, loop.highpass_time)
            self._filter = None if matrix is None else jnp.asarray(matrix, nominal.dtype)
            self._delay_offset = float(loop.delay_offset)
            self._bias_walk = 0.0
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
        """N, the number of states measured at every time step (the nominal model's)."""
        return self._nominal.n_units

    @property
    def n_inputs(self) -> int:
        """D, the number of input channels (the nominal model's)."""
        return self._nominal.n_inputs

    @property
    def trainable_fields(self) -> tuple[str, ...]:
        """Names ``measure`` accepts in ``input_side``."""
        return trainable_fields(self._nominal)

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
        true, inputs, output_key = self._write(params, inputs)
        rng = self._count(inputs)
        if self._loop is None:
            states = run(true, inputs)
        else:
            states = self._run_loop(true, inputs, rng)
        states, self._output_state = self._output.apply(states, self._output_state, output_key)
        return self._checked("measurement", states)

    def adjoint(self, inputs: Any, input_side: Mapping[str, Any] | None, cotangent: Any, *,
                states: Any = None) -> dict[str, jax.Array]:
        """The physical backward pass: ∂L/∂(input side) for ∂L/∂states = ``cotangent``, computed by the loop.

        Four device passes as ``hardware_sim.loop`` describes them (two derivative readings in open loop with
        the bias shifted by ± a quarter fringe, then ± the error sent through the loop in reversed time), each
        through the same true physics and detection chain as any measurement; the gradients are then formed from
        measured signals and the written input side only.

        Args:
            inputs: ``(T, D)`` or ``(B, T, D)``.
            input_side: the trainer's current input side (as for ``measure``); None = nominal.
            cotangent: ∂L/∂states, the shape of the states.
            states: the states the forward measurement returned for these inputs and input side (what the
                experimenter recorded); None measures them first (one more call).

        Returns:
            gradients for the fields named in ``input_side`` (all input-side fields when it is None).  Counts four
            calls and 4 · B · T samples (five with ``states=None``).
        """
        if self._loop is None:
            physics.check_loop_model(self._nominal)
        inputs = check_array("inputs", inputs, (2, 3), {-1: self.n_inputs})
        cotangent = check_array("cotangent", cotangent, inputs.ndim, {-1: self.n_units})
        expected = (*inputs.shape[:-1], self.n_units)
        if tuple(cotangent.shape) != expected:
            raise ValueError(f"cotangent must have shape {expected}, got {tuple(cotangent.shape)}")
        if states is None:
            states = self.measure(inputs, input_side)
        states = check_array("states", states, inputs.ndim)
        if tuple(states.shape) != expected:
            raise ValueError(f"states must have shape {expected} (the forward measurement), "
                             f"got {tuple(states.shape)}")
        written = self._params(input_side)
        dtype = written.dtype
        inputs, states = jnp.asarray(inputs, dtype), jnp.asarray(states, dtype)
        cotangent = jnp.asarray(cotangent, dtype)
        batched = inputs.ndim == 3
        over = (lambda f: jax.vmap(f)) if batched else (lambda f: f)
        model = written.model

        # 1. derivative passes: the experimenter's ã through the open-loop modulator, bias shifted by ± a quarter
        # fringe; the difference of the two readings
        arguments = over(lambda u, x: physics.modulator_arguments(written, u, x))(inputs, states)
        readings = []
        for sign in (1.0, -1.0):
            true, _, output_key = self._write(written, inputs)
            walk = self._bias_path(self._count(inputs), arguments.shape[:-1])
            read = lambda a, w, true=true, sign=sign: physics.derivative_pass(true, self._loop, a, w, sign)
            reading = over(read)(arguments, walk)
            reading, self._output_state = self._output.apply(reading, self._output_state, output_key)
            readings.append(self._checked("derivative reading", reading))
        derivative = physics.DERIVATIVE_SCALE[model] * (readings[0] - readings[1])

        # 2. backward passes: ± the scaled error injected in reversed time, the loop multiplies by the derivative;
        # half the difference of the two recordings
        _, g_post = physics.gains(written)
        error = cotangent / g_post
        full_scale = (self._loop.drive_range or 1.0) * np.pi
        peak = float(jnp.max(jnp.abs(error)))
        scale = 0.5 * full_scale / peak if peak > 0 else 1.0  # κ: the injection uses half the drive range
        multiplier = over(physics.reverse_time)(physics.through_dac(derivative, self._loop))
        epsilon = jnp.asarray(self._delay_offset, dtype)
        ring = lambda true, *signals: over(
            lambda i, m, n: physics.backward_ring(true, self._loop, self._filter, i, m, n, epsilon))(*signals)
        recordings = []
        for sign in (1.0, -1.0):
            injection = over(physics.reverse_time)(physics.through_dac(sign * scale * error, self._loop))
            true, _, output_key = self._write(written, inputs)
            rng = self._count(inputs)
            noise = (rng.standard_normal(injection.shape, np.float32).astype(dtype) if self._loop.noisy
                     else np.zeros(injection.shape, dtype))
            recorded, self._output_state = self._output.apply(ring(true, injection, multiplier, noise),
                                                              self._output_state, output_key)
            recordings.append(self._checked("backward signal", over(physics.reverse_time)(recorded)))
        recorded = (recordings[0] - recordings[1]) / 2
        delta = derivative * recorded / scale
        gradients = over(lambda u, x, c, d: physics.input_side_gradients(written, u, x, c, d))(
            inputs, states, cotangent, delta)
        if batched:
            gradients = {name: value.sum(0) for name, value in gradients.items()}
        return {name: gradients[name] for name in (input_side or self.trainable_fields)}

    def truth(self, input_side: Mapping[str, Any] | None = None) -> DeviceTruth:
        """The hidden truth (simulation only: for tests and figures; no training mode or calibration reads it).

        Pure: nothing advances (no drift step, no query counted)."""
        params = self._params(input_side)
        written, _ = self._input.apply(nl.Written(params, jnp.zeros((1, self.n_inputs), params.dtype)),
                                       self._input_state, jax.random.PRNGKey(0))
        if self._loop is None:
            return DeviceTruth(written.params, None, 0.0, 0.0)
        return DeviceTruth(written.params, self._loop, self._delay_offset, self._bias_walk)

    def exact_gradient(self, inputs: Any, input_side: Mapping[str, Any], cotangent: Any) -> dict[str, jax.Array]:
        """Simulation only (for tests and figures, like ``truth``): ∂/∂(written input side) of Σ states · cotangent
        for the true device with its noise switched off and its drifts frozen at their current values, through the
        input pieces (mismatch, harmonic, DAC derivative straight through) and the loop; the detection chain is
        left out.  The reference a physical gradient is scored against.  Pure: nothing advances or is counted."""
        physics.check_loop_model(self._nominal)
        if self._loop is None:
            raise ValueError("exact_gradient needs a device with a simulated loop")
        written = self._params(input_side)
        dtype = written.dtype
        inputs = jnp.asarray(check_array("inputs", inputs, (2, 3), {-1: self.n_inputs}), dtype)
        cotangent = jnp.asarray(cotangent, dtype)
        side, combine = split_trainable(written, list(input_side))
        quiet = dataclasses.replace(self._loop, noise_floor=0.0, rin=0.0, shot=0.0)
        state, epsilon = self._input_state, jnp.asarray(self._delay_offset, dtype)

        def total(values):
            true = self._input.apply(nl.Written(combine(values), inputs), state, jax.random.PRNGKey(0))[0].params
            zeros = jnp.zeros(self.n_units, dtype)

            def one(u):
                steps = u.shape[0]
                return physics.forward(true, quiet, self._filter, u, jnp.zeros((steps, self.n_units), dtype),
                                       jnp.full((steps,), self._bias_walk, dtype), epsilon, zeros)

            states = jax.vmap(one)(inputs) if inputs.ndim == 3 else one(inputs)
            return jnp.sum(states * cotangent)

        return jax.grad(total)(side)

    def _write(self, params: Any, inputs: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        """The input-side pieces act (mismatch, drift step, DAC, harmonic): (true params, inputs, output key)."""
        inputs = jnp.asarray(inputs, params.dtype)
        self._key, input_key, output_key = jax.random.split(self._key, 3)
        written, self._input_state = self._input.apply(nl.Written(params, inputs), self._input_state, input_key)
        return written.params, written.inputs, output_key

    def _count(self, inputs: jax.Array) -> np.random.Generator:
        """Count one call of B · T samples; return the in-loop random stream of this call, a function of the
        loop's seed and the call index (NumPy's generator: 10^6 normals in milliseconds, where threefry on the
        CPU took longer than the loop itself)."""
        rng = np.random.default_rng((self._loop_seed, self._n_calls))
        self._n_calls += 1
        self._n_samples += int(np.prod(inputs.shape[:-1]))
        return rng

    def _bias_path(self, rng: np.random.Generator, shape: tuple[int, ...]) -> jax.Array:
        """The bias walk over ``shape`` = (T,) or (B, T) periods of one pass (sequences of a batch share it),
        continuing from its current value; advances it."""
        loop, dtype = self._loop, self._nominal.dtype
        steps = shape[-1]
        if not loop.bias_walk:
            return jnp.full(shape, self._bias_walk, dtype)
        keep = 1.0 - loop.bias_control
        draws = rng.standard_normal(steps) * loop.bias_walk
        draws[0] += keep * self._bias_walk
        path = scipy.signal.lfilter([1.0], [1.0, -keep], draws)  # w_n = keep · w_{n−1} + σ ξ_n
        self._bias_walk = float(path[-1])
        return jnp.broadcast_to(jnp.asarray(path, dtype), shape)

    def _run_loop(self, true: DelayParams, inputs: jax.Array, rng: np.random.Generator) -> jax.Array:
        loop, dtype = self._loop, true.dtype
        shape = (*inputs.shape[:-1], self.n_units)
        noise = rng.standard_normal(shape, np.float32).astype(dtype) if loop.noisy else np.zeros(shape, dtype)
        path = self._bias_path(rng, shape[:-1])
        epsilon = jnp.asarray(self._delay_offset, dtype)
        zeros = jnp.zeros(self.n_units, dtype)
        run_one = lambda u, n, w: physics.forward(true, loop, self._filter, u, n, w, epsilon, zeros)
        states = jax.vmap(run_one)(inputs, noise, path) if inputs.ndim == 3 else run_one(inputs, noise, path)
        if loop.delay_walk:  # the fibre's thermal drift between measurements, reflected into [0, 1)
            step = float(rng.standard_normal()) * loop.delay_walk
            value = abs(self._delay_offset + step) % 2.0
            self._delay_offset = min(2.0 - value if value >= 1.0 else value, 1.0 - 1e-9)
        return states

    def _checked(self, what: str, signal: jax.Array) -> jax.Array:
        raise_if_diverged(signal, f"the device's {what} (call {self._n_calls})",
                          "a non-idealities level or the drive is out of any physical range")
        return signal

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
        # the loop's drifts; its noise is a function of the seed and the call index, restored with n_calls
        loop = {} if self._loop is None else {"bias_walk": np.float64(self._bias_walk),
                                              "delay_offset": np.float64(self._delay_offset)}
        return {"key": np.array(self._key), "input_state": host(self._input_state),
                "output_state": host(self._output_state), "loop": loop, "n_calls": self._n_calls,
                "n_samples": self._n_samples}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Put the device back in the state ``snapshot()`` returned (same structure, shapes and dtypes)."""
        mine = self.snapshot()
        if not isinstance(snapshot, Mapping) or set(snapshot) != set(mine):
            keys = sorted(snapshot) if isinstance(snapshot, Mapping) else type(snapshot).__name__
            raise ValueError(f"snapshot must be a dict with keys {sorted(mine)} (Device.snapshot()), got {keys}")
        arrays = {name: mine[name] for name in ("key", "input_state", "output_state", "loop")}
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
        if self._loop is not None:
            self._bias_walk = float(given["loop"]["bias_walk"])
            self._delay_offset = float(given["loop"]["delay_offset"])
        self._n_calls = check_scalar("snapshot['n_calls']", snapshot["n_calls"], NON_NEGATIVE_INT)
        self._n_samples = check_scalar("snapshot['n_samples']", snapshot["n_samples"], NON_NEGATIVE_INT)


# The loop's physics by name, for wrap_device's keyword arguments (LoopPhysics' fields).
LOOP_OPTIONS = tuple(field.name for field in dataclasses.fields(physics.LoopPhysics))

# Device profiles: named presets of ``wrap_device``'s options, every one still overridable.  Values and their
# sources are tabulated in ``PROFILE_SOURCES`` (and the README); "assumption" marks a value chosen as a plausible
# order of magnitude where the papers we follow give none.
PROFILES: dict[str, dict[str, Any]] = {
    # the device is its nominal model (for tests)
    "ideal": {},
    # mismatch in the three trained scalars only, behind detection noise: the device of the first round's
    # comparison, kept so that its result can be shown for what it is
    "knob_mismatch": {"mismatch": 0.1},
    "benchtop": {
        "mismatch": 0.1,
        "square_law": True,
        "visibility": 0.98,
        "highpass_time": 2000.0,
        "sine_lowpass_time": 0.5,
        "lowpass_spread": 0.1,
        "snr_in_loop_db": 30.0,
        "rin": 0.002,
        "shot": 0.002,
        "delay_offset_max": 0.2,
        "delay_walk": 0.01,
        "bias_walk": 2e-3,
        "bias_control": 0.02,
        "drive_range": 0.5,
        "drive_bits": 12,
        "gain_spread": 0.02,
        "offset_spread": 0.01,
        "harmonic": 0.03,
        "snr_db": 40.0,
        "adc_bits": 10,
        "adc_range": (-2.5, 2.5),
    },
}
PROFILE_SOURCES: dict[str, str] = {
    "mismatch": "assumption: 10 % on the gains, 0.1 rad on the bias, the spread of hand-set gains",
    "square_law": "an intensity MZM read by a photodiode (Paquot 2012; Larger 2012; Hermans 2015/2016)",
    "visibility": "assumption: a 20 dB extinction ratio, v = (ER − 1)/(ER + 1) ≈ 0.98",
    "highpass_time": "assumption: AC coupling of the RF amplifier, cut-off ~1e-4 of the node rate (the low "
                     "corner of Larger 2012's band-pass Ikeda loop)",
    "sine_lowpass_time": "assumption: RF-chain response time 0.5 θ, the inertia that couples neighbouring "
                         "nodes (θ ≈ 0.2 response times in Appeltant 2011; Paquot 2012 chose θ near it)",
    "lowpass_spread": "assumption: the sin² loop's filter time constant off its datasheet value by 10 % "
                      "(nominal T = 0.241 µs, Hermans 2015)",
    "snr_in_loop_db": "assumption: 30 dB in-loop SNR at a node RMS of 0.3 (detector thermal floor)",
    "rin": "assumption: laser relative-intensity noise, std 0.2 % of the power",
    "shot": "assumption: shot noise, std 0.2 % of √power",
    "delay_offset_max": "assumption: the loop delay off by up to 0.2 node durations (fibre cut to ~1 cm)",
    "delay_walk": "assumption: thermal drift of the fibre delay, 0.01 node durations per measurement",
    "bias_walk": "assumption: MZM bias drift 2 mrad per input period (thermal)",
    "bias_control": "assumption: a bias controller pulling back 2 % per period",
    "drive_range": "assumption: drive limited to ± 0.5 Vπ (RF driver)",
    "drive_bits": "assumption: a 12-bit arbitrary waveform generator",
    "gain_spread": "assumption: 2 % per-node gain spread of the detection chain",
    "offset_spread": "assumption: 0.01 per-node offset",
    "harmonic": "assumption: 3 % second-harmonic distortion of the modulator driver",
    "snr_db": "assumption: 40 dB readout (detection) SNR",
    "adc_bits": "assumption: a 10-bit digitiser",
    "adc_range": "assumption: the digitiser's full scale ± 2.5 (the square-law derivative reading spans 0–2)",
}


def profile_options(profile: str, model: str, seed: int, node_separation: float | None,
                    **overrides: Any) -> dict[str, Any]:
    """``wrap_device`` options of a named profile for one device, with ``overrides`` on top.  Per-device draws
    (the delay offset ε, the sin² filter's time-constant error) come from ``seed``."""
    options = dict(PROFILES[check_choice("profile", profile, tuple(PROFILES))])
    rng = np.random.default_rng(nl.piece_seeds(seed, 5)[4])
    derived: dict[str, Any] = {}
    if "delay_offset_max" in options:
        derived["delay_offset"] = float(rng.uniform(0, options.pop("delay_offset_max")))
    if "snr_in_loop_db" in options:
        derived["noise_floor"] = physics.noise_floor_for_snr(options.pop("snr_in_loop_db"), 0.3)
    sine_lowpass = options.pop("sine_lowpass_time", None)
    spread = options.pop("lowpass_spread", 0.0)
    if model == "sine" and sine_lowpass is not None:
        derived["lowpass_time"] = sine_lowpass
    elif model == "sin2_lowpass" and spread:
        derived["lowpass_time"] = float(1.0 / node_separation * (1 + spread * rng.standard_normal()))
    if model != "sine":
        options.pop("harmonic", None)  # a distorted sine driver; the sin² loop has no such piece
    if model not in physics.LOOP_MODELS:
        options = {k: v for k, v in options.items() if k not in LOOP_OPTIONS}
        derived = {}
    return {**options, **derived, **overrides}


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
    **loop_options: Any,
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

        loop_options: the physics inside the loop of a ``"sine"`` or ``"sin2_lowpass"`` delay device, by
            ``hardware_sim.loop.LoopPhysics``' field names (``square_law``, ``visibility``, ``lowpass_time``,
            ``highpass_time``, ``noise_floor``, ``rin``, ``shot``, ``delay_offset``, ``delay_walk``,
            ``bias_walk``, ``bias_control``, ``drive_range``, ``drive_bits``).

    Order: input side dac → mismatch → drift → harmonic; the loop; output side node spread → low-pass →
    multiplicative noise → detection noise → ADC.
    """
    fields = hardware_fields(check_hardware_model("params", params))
    mismatch = check_scalar("mismatch", mismatch, NON_NEGATIVE)
    drift = check_scalar("drift", drift, NON_NEGATIVE)
    mismatch_seed, drift_seed, spread_seed = nl.piece_seeds(seed, 3)
    inputs, outputs = [], []
    if dac_bits is not None:
        inputs.append(nl.dac(dac_bits, input_range=input_range,
                             fields={field: mask_range for field in fields.dac}))
    if mismatch:
        relative, absolute = fields.mismatch
        inputs.append(nl.mismatch({f: mismatch for f in relative}, {f: mismatch for f in absolute},
                                  seed=mismatch_seed))
    if drift:
        relative, absolute = fields.drift
        inputs.append(nl.drift({f: drift for f in relative}, {f: drift for f in absolute}, seed=drift_seed))
    if check_scalar("harmonic", harmonic, nl.REAL):
        inputs.append(nl.harmonic(harmonic))
    gain_spread = check_scalar("gain_spread", gain_spread, NON_NEGATIVE)
    offset_spread = check_scalar("offset_spread", offset_spread, NON_NEGATIVE)
    if gain_spread or offset_spread:
        outputs.append(nl.node_spread(gain_spread, offset_spread, seed=spread_seed))
    if bandwidth is not None:
        outputs.append(nl.lowpass(bandwidth, along=fields.lowpass_along))
    if check_scalar("multiplicative_noise", multiplicative_noise, NON_NEGATIVE):
        outputs.append(nl.multiplicative_noise(multiplicative_noise))
    if snr_db is not None:
        outputs.append(nl.detection_noise(snr_db))
    if adc_bits is not None:
        outputs.append(nl.adc(adc_bits, value_range=adc_range))
    unknown = sorted(set(loop_options) - set(LOOP_OPTIONS))
    if unknown:
        raise TypeError(f"wrap_device got unknown option(s) {unknown}; loop options are {list(LOOP_OPTIONS)}")
    loop = physics.LoopPhysics(**loop_options) if loop_options else None
    return Device(params, inputs + outputs, seed=seed, loop=loop)


def delay_device(
    n_units: int,
    n_inputs: int = 1,
    *,
    model: str = "sine",
    seed: int,
    profile: str | None = None,
    reservoir_options: Mapping[str, Any] | None = None,
    **device_options: Any,
) -> Device:
    """An opto-electronic delay-reservoir device: ``wrap_device(delay_reservoir(n_units, n_inputs, model=model,
    seed=seed, **reservoir_options), seed=seed, **options)``.

    ``profile`` names a preset (``PROFILES``: ``"ideal"``, ``"knob_mismatch"``, ``"benchtop"``; values and
    sources in ``PROFILE_SOURCES``); ``device_options`` (``wrap_device``'s, loop options included) override it.
    Without a profile, only ``device_options`` act (all off by default).
    ``reservoir_options`` are ``delay_reservoir``'s (``input_gain``, ``feedback_gain``, ``phase``, ``mask``,
    ``bias_mask_scaling``, ``node_separation``, ``exponent``, ``dtype``): the nominal values.

    Example:
        >>> device = delay_device(20, seed=0, profile="benchtop", mismatch=0.3)
        >>> device.measure(np.zeros((50, 1))).shape
        (50, 20)
    """
    nominal = delay_reservoir(n_units, n_inputs, model=model, seed=seed, **dict(reservoir_options or {}))
    if profile is not None:
        device_options = profile_options(profile, nominal.model, seed, getattr(nominal, "node_separation", None),
                                         **device_options)
    return wrap_device(nominal, seed=seed, **device_options)
