"""Non-idealities of analog hardware, each a small composable piece; a device is their chain.

In the spirit of optax's ``GradientTransformation``, a piece is a ``Nonideality`` NamedTuple of two pure
functions plus the side of the device it sits on:

* ``init(nominal) -> state``: called once, with the nominal reservoir parameters, when the device is built.
  Fabrication randomness (mismatch, per-node spread) and the start of a drift are drawn here from the
  piece's own ``seed``; the state is a pytree of arrays.
* ``apply(signal, state, key) -> (signal, state)``: called on every measurement.  ``key`` is a fresh PRNG key
  the device splits from its own seeded key stream (used by the noise pieces, ignored by the others).

``side="input"`` pieces transform what is written to the device, ``signal = Written(params, inputs)``:
the reservoir parameters about to be run (the trainer's input side on top of the nominal values) and the
(T, D) or (B, T, D) inputs.  ``side="output"`` pieces transform what is read, ``signal`` = the states
(…, T, N).  ``chain`` composes pieces of one side.

Definitions (ξ, η are independent standard normal draws):

==================  =====================================================================================
piece               transform
==================  =====================================================================================
``mismatch``        p_f ← p_f (1 + r_f ξ_f) (``relative``), p_f ← p_f + s_f ξ_f (``absolute``); ξ_f has the
                    shape of field f, drawn once from ``seed``: the hidden "true" parameters
``harmonic``        a ``"sine"`` delay reservoir's nonlinearity becomes sin(a) + h sin(2a)
``drift``           a random walk w_f(k) = w_f(k−1) + σ_f ξ_f(k), k = measurement index, w_f(0) = 0, drawn from
                    ``seed``; measurement k runs p_f (1 + w_f(k)) (``relative``) or p_f + w_f(k) (``absolute``)
``dac``             inputs ← Q(inputs; bits, input_range); each listed field ← Q(field; bits, its range)
``node_spread``     x_{t,i} ← g_i x_{t,i} + o_i, g_i = 1 + σ_g ξ_i, o_i = σ_o η_i, drawn once from ``seed``
``lowpass``         first-order low-pass y_k = a y_{k−1} + (1 − a) x_k, y_{−1} = 0, a = exp(−2π·bandwidth),
                    k running over the virtual nodes in the order they are detected (t·N + i) for
                    ``along="nodes"``, or over time per unit for ``along="time"``; ``bandwidth`` is the −3 dB
                    cut-off frequency in units of the node rate (time-step rate for ``"time"``)
``multiplicative``  x ← x (1 + σ ξ), fresh ξ per sample and measurement
``detection_noise`` x ← x + σ ξ with σ² = P / 10^(SNR/10), P = mean(x²) over the whole measured array (every
                    sequence, step and node) of the signal reaching this piece; fresh ξ per measurement
``adc``             states ← Q(states; bits, value_range)
==================  =====================================================================================

Quantiser with ``bits`` b and range [lo, hi]: Δ = (hi − lo) / (2^b − 1),
Q(x) = lo + Δ · round((clip(x, lo, hi) − lo) / Δ): 2^b levels including both ends, values outside the range
clipped to it, round half to even.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
import zlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hardware_sim.models import with_harmonic
from reservoir.delay import SineDelay
from reservoir.validation import (
    SEED,
    Interval,
    _is_tracer,
    check_choice,
    check_instance,
    check_scalar,
)

BITS = Interval(1, 32, "both", integer=True)
REAL = Interval(None, None)
# Physical bounds: a level beyond them is a typo, not a device (a 1e308 spread would only return inf states).
LEVEL = Interval(0, 10, "both")  # noise stds, spreads, mismatch and drift levels, relative to unit signals
SNR_DB = Interval(-30, 200, "both")  # 10^(±4000/10) overflows; beyond these no detector is meant
HARMONIC = Interval(-1, 1, "both")
BANDWIDTH = Interval(0, 1e9, "neither")


class Written(NamedTuple):
    """What is written to the device on one measurement: the parameters to run and the inputs."""

    params: Any
    inputs: jax.Array


class Nonideality(NamedTuple):
    """A pure ``(init, apply)`` pair and the side of the device it acts on (see the module docstring)."""

    init: Callable[[Any], Any]
    apply: Callable[[Any, Any, jax.Array], tuple[Any, Any]]
    side: str


def chain(*pieces: Nonideality) -> Nonideality:
    """Pieces of one side applied in order; each gets its own key split from the one given."""
    for index, piece in enumerate(pieces):
        check_instance(f"pieces[{index}]", piece, Nonideality)
    sides = {piece.side for piece in pieces}
    if len(sides) > 1:
        raise ValueError(f"pieces must all act on the same side of the device, got sides {sorted(sides)}")
    side = sides.pop() if sides else "output"

    def init(nominal):
        return tuple(piece.init(nominal) for piece in pieces)

    def apply(signal, states, key):
        new_states = []
        for piece, state, piece_key in zip(pieces, states, jax.random.split(key, max(len(pieces), 1)),
                                           strict=False):
            signal, state = piece.apply(signal, state, piece_key)
            new_states.append(state)
        return signal, tuple(new_states)

    return Nonideality(init, apply, side)


def quantise(x: jax.Array, bits: int, low: float, high: float) -> jax.Array:
    """Uniform quantiser with 2^bits levels on [low, high], both ends included, clipping outside.

    ``bits`` (static) and concrete ``low``/``high`` are checked first; traced bounds are used as given."""
    bits = check_scalar("bits", bits, BITS)
    if not (_is_tracer(low) or _is_tracer(high)):
        low, high = _check_bounds("low", low, "high", high)
    return _quantise(x, bits, low, high)


@partial(jax.jit, static_argnums=1)
def _quantise(x: jax.Array, bits: int, low: float, high: float) -> jax.Array:
    step = (high - low) / (2**bits - 1)
    return low + step * jnp.round((jnp.clip(x, low, high) - low) / step)


def standard_normal(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """N(0, 1) draws of any shape, taken from a flat draw whose length is rounded up to a power of two.

    XLA compiles ``jax.random.normal`` once per shape, and for multi-dimensional shapes that takes seconds on
    CPU; a flat, bucketed draw compiles once per power of two and is reused by every device and length T.
    """
    size = math.prod(shape)
    bucket = 1 << max(size - 1, 63).bit_length()
    return jax.random.normal(key, (bucket,), dtype)[:size].reshape(shape)


def _key(seed: int) -> jax.Array:
    return jax.random.PRNGKey(check_scalar("seed", seed, SEED))


def _check_range(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (low, high), got {value!r}")
    return _check_bounds(f"{name}[0]", value[0], f"{name}[1]", value[1], f"{name} must satisfy low < high")


def _check_bounds(name_low: str, low: Any, name_high: str, high: Any,
                  what: str | None = None) -> tuple[float, float]:
    """Two real numbers with low < high, as floats."""
    low, high = float(check_scalar(name_low, low, REAL)), float(check_scalar(name_high, high, REAL))
    if not low < high:
        raise ValueError(f"{what or f'{name_low} must be below {name_high}'}, got {(low, high)!r}")
    return low, high


def _check_levels(name: str, levels: Any) -> dict[str, float]:
    if not isinstance(levels, Mapping):
        raise TypeError(f"{name} must be a dict of field name -> level, got {type(levels).__name__}")
    return {field: float(check_scalar(f"{name}[{field!r}]", level, LEVEL))
            for field, level in levels.items()}


def _check_fields(name: str, nominal: Any, fields: Any) -> None:
    """Every named field must be an array field of the nominal parameters."""
    arrays = [f.name for f in dataclasses.fields(nominal) if isinstance(getattr(nominal, f.name), jax.Array)]
    for field in fields:
        if field not in arrays:
            raise ValueError(f"{name} names {field!r}, which is not an array field of {type(nominal).__name__}; "
                             f"expected one of {arrays}")


def _draw(key: jax.Array, nominal: Any, fields: list[str]) -> dict[str, jax.Array]:
    """One standard normal array per field, shaped like it, from a key folded with the field's name (so a
    field's draw does not depend on which other fields are perturbed)."""
    return {field: standard_normal(jax.random.fold_in(key, zlib.crc32(field.encode())),
                                     getattr(nominal, field).shape, nominal.dtype)
            for field in fields}


def _perturbed(params: Any, relative: dict[str, jax.Array], absolute: dict[str, jax.Array]) -> Any:
    fields = {field: getattr(params, field) * (1 + value) for field, value in relative.items()}
    for field, value in absolute.items():
        fields[field] = fields.get(field, getattr(params, field)) + value
    return dataclasses.replace(params, **fields)


def mismatch(relative: Mapping[str, float] | None = None, absolute: Mapping[str, float] | None = None, *,
             seed: int) -> Nonideality:
    """Hidden fixed parameter mismatch: ``relative`` {field: r} scales a field by (1 + r ξ), ``absolute``
    {field: s} shifts it by s ξ, ξ ~ N(0, 1) shaped like the field, drawn once from ``seed``."""
    relative, absolute = _check_levels("relative", relative or {}), _check_levels("absolute", absolute or {})
    key = _key(seed)

    def init(nominal):
        _check_fields("relative", nominal, relative)
        _check_fields("absolute", nominal, absolute)
        draws = _draw(key, nominal, [*relative, *absolute])
        return ({field: level * draws[field] for field, level in relative.items()},
                {field: level * draws[field] for field, level in absolute.items()})

    def apply(written, state, key):
        return written._replace(params=_perturbed(written.params, *state)), state

    return Nonideality(init, apply, "input")


def drift(relative: Mapping[str, float] | None = None, absolute: Mapping[str, float] | None = None, *,
          seed: int) -> Nonideality:
    """Slow drift: a Gaussian random walk per field, one step of std σ_f per measurement, drawn from ``seed``
    (``relative`` {field: σ} scales the field by 1 + walk, ``absolute`` {field: σ} adds the walk)."""
    relative, absolute = _check_levels("relative", relative or {}), _check_levels("absolute", absolute or {})
    start_key = _key(seed)

    def init(nominal):
        _check_fields("relative", nominal, relative)
        _check_fields("absolute", nominal, absolute)
        zeros = {field: jnp.zeros_like(getattr(nominal, field)) for field in [*relative, *absolute]}
        return start_key, zeros

    def apply(written, state, key):
        walk_key, walk = state
        walk_key, step_key = jax.random.split(walk_key)
        steps = _draw(step_key, written.params, list(walk))
        levels = {**relative, **absolute}
        walk = {field: walk[field] + levels[field] * steps[field] for field in walk}
        params = _perturbed(written.params, {f: walk[f] for f in relative}, {f: walk[f] for f in absolute})
        return written._replace(params=params), (walk_key, walk)

    return Nonideality(init, apply, "input")


def harmonic(strength: float) -> Nonideality:
    """Distorted modulator response of a ``"sine"`` delay reservoir: sin(a) + h sin(2a), h = ``strength``.
    Runs the written parameters as a ``hardware_sim.models.DistortedSine``; the nominal twin has no such field."""
    strength = float(check_scalar("strength", strength, HARMONIC))

    def init(nominal):
        if not isinstance(nominal, SineDelay):
            model = getattr(nominal, "model", type(nominal).__name__)
            raise ValueError(f"harmonic distortion needs a delay reservoir with model 'sine', got {model!r}")
        return ()

    def apply(written, state, key):
        params = with_harmonic(written.params, jnp.asarray(strength, written.params.dtype))
        return written._replace(params=params), state

    return Nonideality(init, apply, "input")


def dac(bits: int, *, input_range: tuple[float, float] = (-1.0, 1.0),
        fields: Mapping[str, tuple[float, float]] | None = None) -> Nonideality:
    """DAC quantisation of what is written: the inputs on ``input_range`` and each listed parameter field
    (e.g. ``{"mask": (-1, 1)}``) on its own range, with ``bits`` bits, clipping at the range."""
    bits = check_scalar("dac_bits", bits, BITS)
    input_range = _check_range("input_range", input_range)
    fields = {field: _check_range(f"fields[{field!r}]", span) for field, span in (fields or {}).items()}

    warn = _clipping_warner("dac")

    def init(nominal):
        _check_fields("fields", nominal, fields)
        return ()

    def apply(written, state, key):
        for field, span in fields.items():
            warn(f"field {field!r}", getattr(written.params, field), *span)
        warn("inputs", written.inputs, *input_range)
        params = dataclasses.replace(written.params, **{
            field: quantise(getattr(written.params, field), bits, *span) for field, span in fields.items()})
        return Written(params, quantise(written.inputs, bits, *input_range)), state

    return Nonideality(init, apply, "input")


def node_spread(gain_std: float = 0.0, offset_std: float = 0.0, *, seed: int) -> Nonideality:
    """Fixed per-node fabrication spread of the detection chain: x_i ← g_i x_i + o_i, g_i = 1 + gain_std ξ_i,
    o_i = offset_std η_i, drawn once from ``seed``."""
    gain_std = check_scalar("gain_std", gain_std, LEVEL)
    offset_std = check_scalar("offset_std", offset_std, LEVEL)
    key = _key(seed)

    def init(nominal):
        gain_key, offset_key = jax.random.split(key)
        shape, dtype = (nominal.n_units,), nominal.dtype
        return (1 + gain_std * standard_normal(gain_key, shape, dtype),
                offset_std * standard_normal(offset_key, shape, dtype))

    def apply(states, state, key):
        gains, offsets = state
        return states * gains + offsets, state

    return Nonideality(init, apply, "output")


LOWPASS_AXES = ("nodes", "time")


def lowpass(bandwidth: float, *, along: str = "nodes") -> Nonideality:
    """Finite detection bandwidth: first-order low-pass y_k = a y_{k−1} + (1 − a) x_k, a = exp(−2π bandwidth),
    from rest (y_{−1} = 0) at the start of every measurement, over the virtual nodes in detection order
    (``along="nodes"``) or over time per unit (``"time"``)."""
    bandwidth = check_scalar("bandwidth", bandwidth, BANDWIDTH)
    along = check_choice("along", along, LOWPASS_AXES)
    decay = math.exp(-2 * math.pi * bandwidth)

    def apply(states, state, key):
        return _lowpass(states, jnp.asarray(decay, states.dtype), along), state

    return Nonideality(lambda nominal: (), apply, "output")


@partial(jax.jit, static_argnums=2)
def _lowpass(states: jax.Array, decay: jax.Array, along: str) -> jax.Array:
    """y_k = decay y_{k−1} + (1 − decay) x_k from y_{−1} = 0, as a parallel (associative) scan.  Jitted once per
    shape and shared by every device (``decay`` is an argument, not a constant)."""
    shape = states.shape
    signal = states.reshape(*shape[:-2], -1) if along == "nodes" else states
    axis = signal.ndim - 1 if along == "nodes" else signal.ndim - 2

    def combine(earlier, later):
        return earlier[0] * later[0], later[0] * earlier[1] + later[1]

    factors = jnp.broadcast_to(decay, signal.shape)
    return jax.lax.associative_scan(combine, (factors, (1 - decay) * signal), axis=axis)[1].reshape(shape)


def multiplicative_noise(std: float) -> Nonideality:
    """x ← x (1 + std ξ), fresh ξ per sample on every measurement."""
    std = check_scalar("std", std, LEVEL)

    def apply(states, state, key):
        return states * (1 + std * standard_normal(key, states.shape, states.dtype)), state

    return Nonideality(lambda nominal: (), apply, "output")


def detection_noise(snr_db: float) -> Nonideality:
    """Additive white Gaussian detection noise at ``snr_db``: σ² = mean(x²) / 10^(snr_db/10), the mean over the
    whole measured array; fresh on every measurement."""
    snr_db = check_scalar("snr_db", snr_db, SNR_DB)
    ratio = 10 ** (-snr_db / 10)

    def apply(states, state, key):
        std = jnp.sqrt(jnp.mean(states**2) * ratio)
        return states + std * standard_normal(key, states.shape, states.dtype), state

    return Nonideality(lambda nominal: (), apply, "output")


def adc(bits: int, *, value_range: tuple[float, float] = (-1.0, 1.0)) -> Nonideality:
    """ADC quantisation of the measured states with ``bits`` bits on ``value_range``, clipping at the range."""
    bits = check_scalar("adc_bits", bits, BITS)
    low, high = _check_range("adc_range", value_range)
    warn = _clipping_warner("adc")

    def apply(states, state, key):
        warn("measured states", states, low, high)
        return quantise(states, bits, low, high), state

    return Nonideality(lambda nominal: (), apply, "output")


def _clipping_warner(piece: str) -> Callable[[str, Any, float, float], None]:
    """``warn(what, values, low, high)``: a RuntimeWarning the first time this piece clips (a converter driven
    outside its range saturates, as hardware does; the user should know once, not on every measurement)."""
    warned = [False]

    def warn(what: str, values: Any, low: float, high: float) -> None:
        if warned[0] or _is_tracer(values):
            return
        values = np.asarray(values)
        if values.size and (values.min() < low or values.max() > high):
            warned[0] = True
            warnings.warn(f"{piece}: {what} outside the range [{low:g}, {high:g}] (min {values.min():.4g}, max "
                          f"{values.max():.4g}) are clipped to it, as the converter would; shown once per "
                          f"device", RuntimeWarning, stacklevel=2)

    return warn


def piece_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent piece seeds derived from one device seed."""
    state = np.random.SeedSequence(check_scalar("seed", seed, SEED)).generate_state(count)
    return [int(s) % 2**31 for s in state]
