"""Device-side node models: what the hardware's physics does that ``reservoir/`` does not model.

``HarmonicSine`` is the opto-electronic delay reservoir (``DelayParams`` with ``model="sine"``) whose
modulator response carries an extra second harmonic:

    x_i(n) = f(a_i(n)),   f(a) = sin(a) + h sin(2a),
    a_i(n) = α x_{i−1}(n−1) + β_in z_i(n) + φ      (x_0 fed by x_{N−1}(n−2), as in ``reservoir.delay``)

With h = 0 it is the plain ``"sine"`` model.  It lives here, as a wrapper with the same scan structure,
because ``DelayParams`` has no hook for its nonlinearity (a static ``nonlinearity`` field read by
``_sine_update`` would make this class unnecessary).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from reservoir.delay import DelayParams


@partial(jax.tree_util.register_dataclass, data_fields=["delay", "harmonic"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class HarmonicSine:
    """A ``"sine"`` delay reservoir with nonlinearity sin(a) + h sin(2a); ``harmonic`` h is a () array."""

    delay: DelayParams
    harmonic: jax.Array

    @property
    def n_units(self) -> int:
        return self.delay.n_units

    @property
    def n_inputs(self) -> int:
        return self.delay.n_inputs

    @property
    def n_feedback(self) -> int:
        return 0

    @property
    def dtype(self) -> jnp.dtype:
        return self.delay.dtype

    def sequence(self, inputs: jax.Array, initial_state: jax.Array, teacher: jax.Array | None = None):
        """(T, D) inputs, (N,) states x(−1) -> (T, N) states (``teacher`` ignored: no output feedback)."""
        del teacher
        step, carry = self.scan_step(initial_state)
        return jax.lax.scan(step, carry, inputs)[1]

    def scan_step(self, initial_state: jax.Array) -> tuple[Callable, Any]:
        """``(step, carry)`` for one input period, as ``DelayParams.scan_step``."""
        params = self.delay

        def step(carry, u):
            x_prev, x_last_before = carry  # x(n−1) and x_{N−1}(n−2)
            delayed = jnp.concatenate([x_last_before[None], x_prev[:-1]])
            argument = (params.feedback_gain * delayed + params.input_gain * (params.mask @ u + params.bias_mask)
                        + params.phase)
            x = jnp.sin(argument) + self.harmonic * jnp.sin(2 * argument)
            return (x, x_prev[-1]), x

        return step, (initial_state, jnp.zeros((), initial_state.dtype))
