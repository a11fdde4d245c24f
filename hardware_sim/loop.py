"""The opto-electronic delay loop with its physics inside the recurrence, and its physical backward pass.

The nominal delay models of ``reservoir.delay`` are what a trainer's digital twin knows.  A real loop
(Paquot et al., Sci. Rep. 2, 287 (2012); Larger et al., Opt. Express 20, 3241 (2012); Hermans et al., JMLR 16
(2015) and PRL 117, 128301 (2016)) is a ring

    modulator (MZM) → fibre delay → photodiode (+ noise) → RF chain (amplifier, band-pass) → [readout tap]
    → + drive (input × mask, written by a DAC) → modulator

and every element of it acts *inside* the recurrence: the photodiode's noise circulates and is shaped by the
loop, the RF chain's inertia couples neighbouring virtual nodes, its AC coupling removes the DC the square-law
detection of the modulator's intensity carries, the loop delay is not exactly a whole number of node durations,
and the modulator's bias drifts.  This module simulates such a ring at the level of virtual nodes (one sample per
node duration θ); with every piece switched off it *is* the nominal model (tested to float64 precision).

**Forward pass** (positions p = nN + i count node durations; D = N + k is the nominal delay, k = 1 for the
desynchronised ``"sine"`` loop, k = 0 for ``"sin2_lowpass"``):

    a_p = g_post [(1 − ε) F_{p−D} + ε F_{p−D−1}] + drive_p + φ + w_n          modulator argument
    I_p = intensity(a_p)                                                     modulator + detection
    r_p = g_pre (I_p − DC + σ(P_p) ξ_p)                                      photodiode, in-loop noise
    F   = H r                                                                RF chain (causal, linear)

* ``intensity``: ``"sine"``: 1 + v sin a + h sin 2a (an MZM at quadrature, fringe visibility v, driver
  harmonic h, a ``hardware_sim.models.DistortedSine``'s field set by ``nonidealities.harmonic``);
  ``"sin2_lowpass"``: (1 − v cos 2a)/2 = sin² a for v = 1.  DC = 1 resp. 1/2 is subtracted exactly by the
  nominal (DC-free) models; a ``square_law`` loop keeps it and relies on the AC coupling to remove it, slowly
  and input-dependently.
* gains: ``"sine"`` g_pre = 1, g_post = α (the readout taps the photodiode signal, x = sin a in the nominal
  model); ``"sin2_lowpass"`` g_pre = α, g_post = 1 (the tap is the filtered ā of Hermans 2015).
* in-loop noise, P_p = intensity(a_p) the optical power: σ(P)² = floor² + (rin · P)² + shot² · P (detector
  thermal floor, laser relative-intensity noise ∝ P, shot noise ∝ √P); absolute levels in units of the
  modulator's intensity (``noise_floor_for_snr`` converts an SNR at a stated operating point).
* H: a first-order low-pass with response time T_lp node durations, discretised exactly for a drive linear within
  a node (ā_p = ρ0 ā_{p−1} + ρ1 r_{p−1} + ρ2 r_p, Hermans 2015, our unit-DC-gain form of ``reservoir.delay``),
  followed by the AC-coupling high-pass s_p = c s_{p−1} + (1 − c) ā_p, F_p = ā_p − s_p, c = e^{−1/T_hp}.
* ε ∈ [0, 1): the loop delay exceeds its nominal D θ by a fraction of a node (clock mismatch), so every node is
  fed a mix of two; ε takes a random walk between measurements (thermal drift of the fibre).
* w_n: the bias drifts within a measurement as w_n = (1 − r) w_{n−1} + σ_b ξ_n per input period, r the rate at
  which a bias controller pulls it back; the walk continues from one measurement to the next.
* drive: β (M u + m₀) is written by a DAC that clips at ± ``drive_range`` π (a fraction of Vπ) and quantises it
  with ``drive_bits`` bits.

Within one input period every node's argument depends only on earlier periods (D ≥ N), so a period is one
vectorised update and the RF chain one (N + 2) × (N + 3) matrix acting on [r, filter state] (built once by
simulating the recursion on unit impulses): ``jax.lax.scan`` runs over periods, never over nodes.

**Physical backward pass** (backpropagation through time by the hardware; the reciprocity argument of Hermans et
al., Nat. Commun. 6, 6729 (2015): a causal linear filter run on the time-reversed signal realises its transpose;
the electro-optical realisation of Hermans et al., PRL 117, 128301 (2016)).  The adjoint of the forward pass,
with c = ∂L/∂F the error at the readout tap, is, in reversed time,

    λ_F = c + g_post Delay(δa),   λ_y = g_pre H(λ_F),   δa = f′(a) ⊙ λ_y

where Delay and H are the *same* causal delay and filter as in the forward pass.  As we simulate it, it takes
two device passes, each what an experimenter can do with the loop:

1. *Derivative passes* (open loop, two of them): the experimenter synthesises the modulator arguments from what
   they recorded, ã = g_post,written · F̃_{p−D} + drive_p (measured forward states F̃, nominal delay D, written
   gain), writes them through the drive DAC with the feedback switched off and the bias shifted by plus, then
   minus, a quarter fringe (π/2 for the sine, π/4 for sin²), and reads the modulator's output through the
   detection chain each time.  For an ideal modulator the difference of the two readings is f′(a) up to a known
   factor (Hermans 2016: "the derivative of the sine is a cosine, the same modulator with its bias shifted");
   taking the difference cancels the intensity's DC, the detector's per-node offsets and even harmonics, which
   a single reading would carry into the gradient.  The true modulator's visibility, odd distortion, bias drift
   and the noise of F̃ all enter.
2. *Backward passes* (closed loop, reversed time, two of them): the error, scaled by κ to fill half the drive
   range, is injected into the RF chain (before the band-pass) as ± κ c / g_post,written, a second modulator
   multiplies the circulating signal by the recorded derivative (written through the DAC), and the readout
   records ζ = ± κ λ_y at the usual tap; half the difference of the two recordings removes the detector's
   offsets again.  The loop's true gains, filter, delay (with its drifted ε), in-loop noise and the detection
   chain act on each as on any measurement.

The gradients then follow digitally from measured quantities only: δa = d̃ ⊙ ζ̃ / κ (d̃ the derivative reading,
ζ̃ the recorded backward signal) and the written input side (``input_side_gradients``).  With every piece off
this is exactly BPTT through the nominal model (tested); drift between the passes, noise, quantisation, a
distorted modulator, a wrong written gain and the unknown ε are what make it differ on a benchtop device.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hardware_sim.models import DistortedSine
from hardware_sim.nonidealities import BITS, LEVEL, SNR_DB, quantise
from reservoir import trig
from reservoir.delay import DelayParams
from reservoir.validation import Interval, check_scalar

LOOP_MODELS = ("sine", "sin2_lowpass")
DELAY_EXTRA = {"sine": 1, "sin2_lowpass": 0}  # k: the nominal delay is (N + k) node durations
MID_LEVEL = {"sine": 1.0, "sin2_lowpass": 0.5}  # DC of the modulator's intensity
BIAS_SHIFT = {"sine": math.pi / 2, "sin2_lowpass": math.pi / 4}  # a quarter fringe
# f′(a) = scale · (I(a + shift) − I(a − shift)) for v = 1, h = 0: the differential reading cancels the DC, the
# detector's offsets and even harmonics
DERIVATIVE_SCALE = {"sine": 0.5, "sin2_lowpass": 1.0}

# Bounds beyond which a value is not a physical setting but a typo: refused before anything runs.
FRACTION = Interval(0, 1, "left")  # [0, 1)
RATE = Interval(0, 1, "both")
TIME_CONSTANT = Interval(0, 1e9, "neither")
VISIBILITY = Interval(0, 1, "right")
DRIVE_RANGE = Interval(0, 100, "neither")


@dataclasses.dataclass(frozen=True)
class LoopPhysics:
    """What a device's loop has that its nominal model lacks (all off by default: the nominal model).

    Args (validated on construction, each naming itself in its error):
        square_law: keep the modulator intensity's DC (true square-law detection) instead of the nominal
            DC-free transfer; only sensible with ``highpass_time`` (the AC coupling that removes it).
        visibility: fringe visibility v ∈ (0, 1] of the modulator (finite extinction ratio).
        lowpass_time: response time T_lp of the RF chain in node durations; None = the nominal model's (none for
            ``"sine"``, 1/θ for ``"sin2_lowpass"``).
        highpass_time: AC-coupling time constant T_hp in node durations; None = DC-coupled.
        noise_floor, rin, shot: in-loop noise levels (absolute; see the module docstring).
        delay_offset: ε ∈ [0, 1) at the first measurement; delay_walk: std of its per-measurement random walk
            (kept in [0, 1): a reflected walk).
        bias_walk: std σ_b (rad) of the bias random walk per input period; bias_control: pull-back rate r ∈ [0, 1].
        drive_range: the drive DAC clips at ± drive_range · π (None: no limit); drive_bits: its bits (needs
            drive_range).
    """

    square_law: bool = False
    visibility: float = 1.0
    lowpass_time: float | None = None
    highpass_time: float | None = None
    noise_floor: float = 0.0
    rin: float = 0.0
    shot: float = 0.0
    delay_offset: float = 0.0
    delay_walk: float = 0.0
    bias_walk: float = 0.0
    bias_control: float = 0.0
    drive_range: float | None = None
    drive_bits: int | None = None

    def __post_init__(self):
        if not isinstance(self.square_law, bool):
            raise TypeError(f"square_law must be True or False, got {self.square_law!r}")
        check_scalar("visibility", self.visibility, VISIBILITY)
        for name in ("lowpass_time", "highpass_time"):
            if getattr(self, name) is not None:
                check_scalar(name, getattr(self, name), TIME_CONSTANT)
        for name in ("noise_floor", "rin", "shot", "delay_walk", "bias_walk"):
            check_scalar(name, getattr(self, name), LEVEL)
        check_scalar("delay_offset", self.delay_offset, FRACTION)
        check_scalar("bias_control", self.bias_control, RATE)
        if self.drive_range is not None:
            check_scalar("drive_range", self.drive_range, DRIVE_RANGE)
        if self.drive_bits is not None:
            check_scalar("drive_bits", self.drive_bits, BITS)
            if self.drive_range is None:
                raise ValueError(f"drive_bits = {self.drive_bits} needs a drive_range (the DAC's full scale)")

    @property
    def noisy(self) -> bool:
        """Whether any in-loop noise is on (floor, relative intensity noise or shot noise): a noisy loop gives a
        different measurement at every call."""
        return bool(self.noise_floor or self.rin or self.shot)


def noise_floor_for_snr(snr_db: float, signal_rms: float) -> float:
    """The in-loop noise floor σ giving ``snr_db`` = 10 log10(signal_rms² / σ²) at an operating point whose node
    signal has RMS ``signal_rms`` (in the modulator's intensity units; e.g. 0.5 for a sine loop driven over
    half its fringe).  State the operating point with the SNR: the same σ is a different SNR elsewhere."""
    snr_db = check_scalar("snr_db", snr_db, SNR_DB)
    signal_rms = check_scalar("signal_rms", signal_rms, Interval(0, 1e6, "neither"))
    return float(signal_rms * 10 ** (-snr_db / 20))


def filter_matrix(n_units: int, lowpass_time: float | None, highpass_time: float | None) -> np.ndarray | None:
    """The RF chain over one period: [F_0 … F_{N−1}, ā_{N−1}, s_{N−1}] = matrix @ [r_0 … r_{N−1}, ā_{−1}, r_{−1},
    s_{−1}], (N + 2) × (N + 3) in float64; None when the chain is instantaneous (F = r)."""
    if lowpass_time is None and highpass_time is None:
        return None
    if lowpass_time is None:
        rho0, rho1, rho2 = 0.0, 0.0, 1.0
    else:
        theta = 1.0 / lowpass_time
        rho0 = math.exp(-theta)
        kappa_over_theta = -math.expm1(-theta) / theta
        rho1, rho2 = kappa_over_theta - rho0, 1.0 - kappa_over_theta
    c = 0.0 if highpass_time is None else math.exp(-1.0 / highpass_time)
    hp = highpass_time is not None
    columns = []
    for column in range(n_units + 3):
        r = np.zeros(n_units)
        a_prev, r_prev, s_prev = 0.0, 0.0, 0.0
        if column < n_units:
            r[column] = 1.0
        else:
            a_prev, r_prev, s_prev = np.eye(3)[column - n_units]
        out = np.empty(n_units + 2)
        for p in range(n_units):
            a = rho0 * a_prev + rho1 * r_prev + rho2 * r[p]
            s = c * s_prev + (1 - c) * a if hp else 0.0
            out[p] = a - s
            a_prev, r_prev, s_prev = a, r[p], s
        out[n_units:] = a_prev, s_prev
        columns.append(out)
    return np.stack(columns, axis=1)


def gains(params: DelayParams) -> tuple[jax.Array, jax.Array]:
    """(g_pre, g_post): where the feedback gain α sits relative to the readout tap (module docstring)."""
    one = jnp.ones((), params.dtype)
    return (one, params.feedback_gain) if params.model == "sine" else (params.feedback_gain, one)


def intensity(params: DelayParams, arguments: jax.Array, visibility: Any) -> jax.Array:
    """The modulator's optical intensity at ``arguments`` (with its DC)."""
    if params.model == "sine":
        value = 1 + visibility * trig.sin(arguments)
        if isinstance(params, DistortedSine):
            value = value + params.distortion(arguments)
        return value
    return 0.5 - 0.5 * visibility * trig.sin(2 * arguments + math.pi / 2)  # (1 − v cos 2a)/2


def written_drive(params: DelayParams, inputs: jax.Array) -> jax.Array:
    """β (M u + m₀) for (…, T, D) inputs: what the drive DAC is asked to write, (…, T, N)."""
    return params.input_gain * (inputs @ params.mask.T + params.bias_mask)


def drive(params: DelayParams, inputs: jax.Array, physics: LoopPhysics) -> jax.Array:
    """The written drive through the drive DAC (clip at ± range · π, quantise): (…, T, N)."""
    return through_dac(written_drive(params, inputs), physics)


def through_dac(value: jax.Array, physics: LoopPhysics) -> jax.Array:
    """``value`` as the drive DAC writes it: clipped at ± ``drive_range`` · π, then rounded to 2^``drive_bits``
    levels over that range; unchanged when the loop has no drive range.  Differentiable: the rounding passes the
    gradient straight through, the clipping blocks it."""
    if physics.drive_range is None:
        return value
    full_scale = physics.drive_range * math.pi
    clipped = jnp.clip(value, -full_scale, full_scale)
    if physics.drive_bits is None:
        return clipped
    # Rounding passes the derivative of the ideal converter (straight through), so the exact gradient of a
    # simulated device (Device.exact_gradient) is not zero everywhere; saturation does block it, as it should.
    levels = quantise(value, physics.drive_bits, -full_scale, full_scale)
    return clipped + jax.lax.stop_gradient(levels - clipped)


def _feed(buffer: jax.Array, n_units: int, extra: int, epsilon: jax.Array) -> jax.Array:
    """(1 − ε) F_{p−D} + ε F_{p−D−1} for the N nodes of a period, from the last N + 2 loop samples."""
    start = 2 - extra
    return (1 - epsilon) * buffer[start:start + n_units] + epsilon * buffer[start - 1:start - 1 + n_units]


def _ring(period_in, period_out, matrix, buffer, state, extra, n_units, delay_extra, epsilon, xs):
    """Scan a ring over periods: fed = delayed loop signal; u = period_in(fed, x, extra); v = H u (with the
    filter state); (tap, back) = period_out(v, x); the loop buffer takes ``back``.  Returns the taps (T, N) and
    the final ``extra``."""

    def step(carry, x):
        buffer, state, extra = carry
        u, extra = period_in(_feed(buffer, n_units, delay_extra, epsilon), x, extra)
        if matrix is None:
            v = u
        else:
            out = matrix @ jnp.concatenate([u, state])
            v = out[:n_units]
            state = jnp.stack([out[n_units], u[-1], out[n_units + 1]])
        tap, back = period_out(v, x)
        return (jnp.concatenate([buffer[-2:], back]), state, extra), tap

    (_, _, extra), taps = jax.lax.scan(step, (buffer, state, extra), xs)
    return taps, extra


@partial(jax.jit, static_argnames=("physics",))
def forward(params: DelayParams, physics: LoopPhysics, matrix: jax.Array | None, inputs: jax.Array,
            noise: jax.Array, bias_path: jax.Array, epsilon: jax.Array, initial_state: jax.Array) -> jax.Array:
    """One sequence through the loop: (T, D) inputs, (T, N) standard-normal in-loop noise draws, the (T,) bias
    walk w_n -> (T, N) states at the readout tap.  ``params`` are the *true* ones (mismatch applied)."""
    model, n = params.model, params.n_units
    g_pre, g_post = gains(params)
    visibility = jnp.asarray(physics.visibility, params.dtype)
    dc = 0.0 if physics.square_law else MID_LEVEL[model]

    def period_in(fed, x, extra):
        drive_n, xi, walk = x
        a = g_post * fed + drive_n + params.phase + walk
        power = intensity(params, a, visibility)
        signal = power - dc
        if physics.noisy:
            power = jnp.maximum(power, 0)
            std = jnp.sqrt(physics.noise_floor**2 + (physics.rin * power) ** 2 + physics.shot**2 * power)
            signal = signal + std * xi
        return g_pre * signal, extra

    buffer = jnp.concatenate([jnp.zeros(2, params.dtype), initial_state])
    # The AC coupling starts charged to the idle intensity (the loop sat at rest before the measurement): an
    # initial condition of this measurement, held fixed under differentiation as the hardware's adjoint holds it.
    idle = 0.0 if not physics.square_law else jax.lax.stop_gradient(
        g_pre * intensity(params, params.phase, visibility))
    state = jnp.stack([initial_state[-1], jnp.zeros((), params.dtype), jnp.asarray(idle, params.dtype)])
    xs = (drive(params, inputs, physics), noise, bias_path)
    return _ring(period_in, lambda v, x: (v, v), matrix, buffer, state, jnp.zeros((), params.dtype), n,
                 DELAY_EXTRA[model], epsilon, xs)[0]


@partial(jax.jit, static_argnames=("physics", "sign"))
def derivative_pass(params: DelayParams, physics: LoopPhysics, arguments: jax.Array, walk: jax.Array,
                    sign: float) -> jax.Array:
    """The open-loop modulator read at the written ``arguments`` (T, N), bias shifted by ``sign`` (±1) quarter
    fringes: intensity(DAC(ã) + φ_true + walk ± shift), before the detection chain.  True ``params``."""
    shifted = through_dac(arguments, physics) + params.phase + walk[:, None] + sign * BIAS_SHIFT[params.model]
    return intensity(params, shifted, jnp.asarray(physics.visibility, params.dtype))


@partial(jax.jit, static_argnames=("physics",))
def backward_ring(params: DelayParams, physics: LoopPhysics, matrix: jax.Array | None, injection: jax.Array,
                  multiplier: jax.Array, noise: jax.Array, epsilon: jax.Array) -> jax.Array:
    """The closed loop in reversed time, one sequence: the (T, N) ``injection`` (already time-reversed, through
    the DAC) enters the RF chain before the band-pass, the loop multiplies by ``multiplier`` (the recorded
    derivative, time-reversed, through the DAC); returns the (T, N) signal at the readout tap.  True params."""
    model, n = params.model, params.n_units
    g_pre, g_post = gains(params)
    gain = g_pre * g_post
    std = 0.0
    if physics.noisy:  # the multiplier modulator sits at mid level: that is the optical power the detector sees
        power = MID_LEVEL[model]
        std = math.sqrt(physics.noise_floor**2 + (physics.rin * power) ** 2 + physics.shot**2 * power)

    def period_in(fed, x, extra):
        injected, xi, _ = x
        return fed + std * xi + injected, extra

    def period_out(v, x):
        tap = gain * v
        return tap, x[2] * tap

    zeros = jnp.zeros(3, params.dtype)
    buffer = jnp.zeros(n + 2, params.dtype)
    return _ring(period_in, period_out, matrix, buffer, zeros, jnp.zeros((), params.dtype), n,
                 DELAY_EXTRA[model], epsilon, (injection, noise, multiplier))[0]


def shift_flat(states: jax.Array, lag: int) -> jax.Array:
    """The (T, N) node signal as one sequence of T·N samples shifted by ``lag`` positions (delayed for lag > 0,
    advanced for lag < 0), zeros where nothing was recorded."""
    flat = states.reshape(-1)
    if lag >= 0:
        shifted = jnp.concatenate([jnp.zeros(lag, flat.dtype), flat[:flat.shape[0] - lag]])
    else:
        shifted = jnp.concatenate([flat[-lag:], jnp.zeros(-lag, flat.dtype)])
    return shifted.reshape(states.shape)


def reverse_time(signal: jax.Array) -> jax.Array:
    """A (T, N) node signal in reversed time (samples p → T·N − 1 − p)."""
    return signal.reshape(-1)[::-1].reshape(signal.shape)


def input_side_gradients(written: DelayParams, inputs: jax.Array, states: jax.Array, cotangent: jax.Array,
                         delta: jax.Array) -> dict[str, jax.Array]:
    """∂L/∂(mask, bias_mask, input_gain, feedback_gain, phase) of one sequence from δa = ∂L/∂a (T, N), the measured
    states F̃ (T, N), the cotangent c = ∂L/∂F and the *written* input side (the experimenter's values).

    a = g_post F_{p−D} + β (M u + m₀) + φ, so ∂L/∂M = β Σ δa uᵀ, ∂L/∂m₀ = β Σ δa, ∂L/∂β = Σ δa (M u + m₀),
    ∂L/∂φ = Σ δa; the feedback gain: ``"sine"`` (g_post = α) Σ δa F_{p−D}; ``"sin2_lowpass"`` (g_pre = α,
    F = H(α I)) (1/α) Σ λ_F F with λ_F = c + Delayᵀ δa.
    """
    lag = written.n_units + DELAY_EXTRA[written.model]
    z = inputs @ written.mask.T + written.bias_mask
    if written.model == "sine":
        feedback = jnp.sum(delta * shift_flat(states, lag))
    else:
        adjoint_tap = cotangent + shift_flat(delta, -lag)
        feedback = jnp.sum(adjoint_tap * states) / written.feedback_gain
    return {
        "mask": written.input_gain * delta.T @ inputs,
        "bias_mask": written.input_gain * delta.sum(0),
        "input_gain": jnp.sum(delta * z),
        "feedback_gain": feedback,
        "phase": jnp.sum(delta),
    }


def modulator_arguments(written: DelayParams, inputs: jax.Array, states: jax.Array) -> jax.Array:
    """ã = g_post,written F̃_{p−D} + drive: the arguments the experimenter writes for the derivative pass (without
    the bias, which the modulator's own bias port holds)."""
    _, g_post = gains(written)
    lag = written.n_units + DELAY_EXTRA[written.model]
    return g_post * shift_flat(states, lag) + written_drive(written, inputs)


def check_loop_model(params: Any) -> None:
    """Raise ``ValueError`` unless ``params`` is a ``DelayParams`` whose node model has an in-loop simulation
    (``LOOP_MODELS``): the opto-electronic ring is written for those models only."""
    if not isinstance(params, DelayParams) or params.model not in LOOP_MODELS:
        kind = type(params).__name__ + (f" {params.model!r}" if isinstance(params, DelayParams) else "")
        raise ValueError(f"in-loop physics and the physical backward pass are built for delay devices with model "
                         f"{list(LOOP_MODELS)}, got {kind}")


