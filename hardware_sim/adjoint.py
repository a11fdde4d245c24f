"""The physical backward pass of the opto-electronic sine delay reservoir (Hermans et al., PRL 117, 128301, 2016).

Forward, per input period n (``reservoir.delay``, model ``"sine"``):

    a(n) = α s(n) + β (M u(n) + m₀) + φ,    x(n) = sin(a(n)),
    s(n) = [x_{N−1}(n−2), x_0(n−1), …, x_{N−2}(n−1)]          (desynchronised loop)

Backward (backpropagation through time), given ∂L/∂x(n):

    g(n)  = ∂L/∂x(n) + α Sᵀ δa(n+1) (+ α δa_0(n+2) on node N−1),    δa(n) = g(n) ⊙ σ'(a(n))

and ∂L/∂M = β Σ_n δa(n) u(n)ᵀ, ∂L/∂m₀ = β Σ δa, ∂L/∂β = Σ δa ⊙ (M u + m₀), ∂L/∂α = Σ δa ⊙ s, ∂L/∂φ = Σ δa.

On the hardware the error runs through the same loop in reversed time (gain α, the device's *true* one), and
σ'(a) = cos a is read off the same modulator with its bias shifted by π/2: sin(a + π/2).  A distorted modulator
f(a) = sin a + h sin 2a then yields f(a + π/2) = cos a − h sin 2a, not f'(a) = cos a + 2h cos 2a; and the
derivative reading passes the same detection chain (noise, quantisation) as any measurement.  That is what makes
this gradient carry the device's own errors.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from reservoir import trig
from reservoir.delay import DelayParams


def loop_input(params: DelayParams, states: jax.Array) -> jax.Array:
    """s(n) for every period: (T, N) states -> (T, N) what the loop feeds back into each node."""
    previous = jnp.concatenate([jnp.zeros_like(states[:1]), states[:-1]])  # x(n−1)
    before = jnp.concatenate([jnp.zeros((2,), states.dtype), states[:-2, -1]])  # x_{N−1}(n−2)
    return jnp.concatenate([before[:, None], previous[:, :-1]], axis=1)


def node_arguments(params: DelayParams, inputs: jax.Array, states: jax.Array) -> jax.Array:
    """a(n) (T, N) from the inputs (T, D) and the forward states (T, N) of one sequence."""
    drive = params.input_gain * (inputs @ params.mask.T + params.bias_mask)
    return params.feedback_gain * loop_input(params, states) + drive + params.phase


def derivative_reading(params: DelayParams, arguments: jax.Array) -> jax.Array:
    """The modulator read with its bias shifted by π/2: f(a + π/2), = cos a for an ideal sine."""
    shifted = arguments + math.pi / 2
    reading = trig.sin(shifted)
    if params.harmonic is not None:
        reading = reading + params.harmonic * trig.sin(2 * shifted)
    return reading


def backward_errors(feedback_gain: jax.Array, cotangent: jax.Array, derivative: jax.Array) -> jax.Array:
    """δa(n) (T, N) by the reversed-time recursion through the loop, for one sequence."""

    def step(carry, inputs):
        next_delta, after_next_first = carry  # δa(n+1), δa_0(n+2)
        c, d = inputs
        back = jnp.concatenate([next_delta[1:], after_next_first[None]])  # Sᵀ: node j gets δa_{j+1}(n+1)
        delta = (c + feedback_gain * back) * d
        return (delta, next_delta[0]), delta

    zeros = jnp.zeros(cotangent.shape[-1], cotangent.dtype)
    return jax.lax.scan(step, (zeros, zeros[0]), (cotangent, derivative), reverse=True)[1]


def input_side_gradients(params: DelayParams, inputs: jax.Array, states: jax.Array,
                         delta: jax.Array) -> dict[str, jax.Array]:
    """∂L/∂(mask, bias_mask, input_gain, feedback_gain, phase) from δa, summed over (B, T)."""
    flat = lambda a: a.reshape(-1, a.shape[-1])
    u, x, d = flat(inputs), states, delta
    loop = jax.vmap(lambda s: loop_input(params, s))(x) if x.ndim == 3 else loop_input(params, x)
    x, loop, d = flat(x), flat(loop), flat(d)
    return {
        "mask": params.input_gain * d.T @ u,
        "bias_mask": params.input_gain * d.sum(0),
        "input_gain": jnp.sum(d * (u @ params.mask.T + params.bias_mask)),
        "feedback_gain": jnp.sum(d * loop),
        "phase": jnp.sum(d),
    }


# The two halves the device runs around its detection chain, compiled once per shape: a device calls them on
# every training step, and op-by-op dispatch of the scans would cost ~0.2 s per call.
@jax.jit
def derivative_readings(params: DelayParams, inputs: jax.Array, states: jax.Array) -> jax.Array:
    """σ' read at the π/2-shifted bias for (T, D)/(T, N) or batched (B, T, D)/(B, T, N) sequences."""
    one = lambda u, x: derivative_reading(params, node_arguments(params, u, x))
    return jax.vmap(one)(inputs, states) if inputs.ndim == 3 else one(inputs, states)


@jax.jit
def physical_gradients(params: DelayParams, inputs: jax.Array, states: jax.Array, derivative: jax.Array,
                       cotangent: jax.Array) -> dict[str, jax.Array]:
    """The reversed-time loop run with the measured derivative, then ∂L/∂(input side) (batched or not)."""
    back = lambda c, d: backward_errors(params.feedback_gain, c, d)
    delta = jax.vmap(back)(cotangent, derivative) if inputs.ndim == 3 else back(cotangent, derivative)
    return input_side_gradients(params, inputs, states, delta)
