"""Online readouts, updated one sample at a time: LMS and RLS, as in real-time FPGA training of a photonic
reservoir (Antonik, Duport, Hermans, Smerieri, Haelterman, Massar, IEEE TNNLS 28, 2686 (2017)).

The readout is a ``LinearReadout`` ``y(n) = x(n) W + b``; in the equations below its weights and intercept are
stacked as ``w = [W; b]`` (F + 1, O) acting on the features with a constant 1 appended, ``x̃(n) = [x(n), 1]``, so
``wᵀ x̃(n) = x(n) W + b``.  The a-priori error of step n is ``ξ(n) = d(n) − w(n−1)ᵀ x̃(n)``, the error of the
weights *before* they see sample n: the honest online error.

LMS (Widrow & Hoff 1960; Haykin, *Adaptive Filter Theory*, 4th ed., Prentice Hall 2002, ch. 5), step size μ:

    w(n) = w(n−1) + μ x̃(n) ξ(n)ᵀ

RLS with forgetting factor λ ∈ (0, 1] and regularisation δ > 0 (Haykin, *Adaptive Filter Theory*, 4th ed.,
ch. 9, "Summary of the RLS algorithm"), P the inverse of the exponentially weighted correlation matrix of x̃:

    P(0) = δ⁻¹ I,   w(0) = 0
    π(n) = P(n−1) x̃(n)
    k(n) = π(n) / (λ + x̃(n)ᵀ π(n))                 gain vector
    ξ(n) = d(n) − w(n−1)ᵀ x̃(n)                     a-priori error
    w(n) = w(n−1) + k(n) ξ(n)ᵀ
    P(n) = λ⁻¹ (P(n−1) − k(n) π(n)ᵀ)

which minimises Σᵢ λⁿ⁻ⁱ |d(i) − wᵀ x̃(i)|² + δ λⁿ |w|² exactly after every sample.  Both updates add
``g ξᵀ`` for a gain g (F + 1,) (LMS: μ x̃): its first F entries update W, its last b.

``lms_step`` / ``rls_step`` are the pure per-sample updates (no validation: they run inside ``lax.scan`` or on a
device); ``lms_fit`` / ``rls_fit`` validate their arguments and scan over a whole sequence.  Predict with the
fitted readout itself, ``readout(features)``, or ``readout.apply_readout`` (which validates).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from readout.linear import LinearReadout
from reservoir.core import DivergenceError, as_dtype, pytree_dataclass, raise_if_diverged
from reservoir.validation import (
    POSITIVE,
    POSITIVE_INT,
    UNIT_OPEN_LEFT,
    check_array,
    check_instance,
    check_linear_readout,
    check_scalar,
)


@pytree_dataclass
class RLSState:
    """RLS state: the ``readout`` (``LinearReadout``, W (F, O), b (O,)) and ``inverse_correlation`` P
    (F + 1, F + 1) of the features with a constant 1 appended (its last row and column belong to b)."""

    readout: LinearReadout
    inverse_correlation: jax.Array


def _augment(features: jax.Array) -> jax.Array:
    return jnp.concatenate([features, jnp.ones(features.shape[:-1] + (1,), features.dtype)], axis=-1)


def _add_outer(readout: LinearReadout, gain: jax.Array, error: jax.Array) -> LinearReadout:
    """w + g ξᵀ with w = [W; b] and g (F + 1,): W + g[:F] ξᵀ, b + g[F] ξ."""
    return LinearReadout(readout.W + jnp.outer(gain[:-1], error), readout.b + gain[-1] * error)


def lms_step(readout: LinearReadout, features: jax.Array, target: jax.Array,
             step_size: float) -> tuple[LinearReadout, jax.Array]:
    """One LMS update: readout (W (F, O), b (O,)), features (F,), target (O,) -> (new readout, a-priori error
    (O,))."""
    error = target - readout(features)
    return _add_outer(readout, step_size * _augment(features), error), error


def rls_step(state: RLSState, features: jax.Array, target: jax.Array,
             forgetting: float) -> tuple[RLSState, jax.Array]:
    """One RLS update (equations in the module docstring) -> (new state, a-priori error (O,))."""
    x = _augment(features)
    P = state.inverse_correlation
    pi = P @ x
    gain = pi / (forgetting + x @ pi)
    error = target - state.readout(features)
    return RLSState(_add_outer(state.readout, gain, error), (P - jnp.outer(gain, pi)) / forgetting), error


def rls_init(n_features: int, n_outputs: int, *, delta: float = 1e-2, dtype: Any = jnp.float32) -> RLSState:
    """Zero readout and P(0) = I / δ; a small δ means weak regularisation (a large initial P)."""
    n_features = check_scalar("n_features", n_features, POSITIVE_INT)
    n_outputs = check_scalar("n_outputs", n_outputs, POSITIVE_INT)
    delta = check_scalar("delta", delta, POSITIVE)
    dtype = as_dtype(dtype)
    readout = LinearReadout(jnp.zeros((n_features, n_outputs), dtype), jnp.zeros(n_outputs, dtype))
    return RLSState(readout, jnp.eye(n_features + 1, dtype=dtype) / delta)


def lms_fit(features: Any, targets: Any, *, step_size: float, initial_readout: LinearReadout | None = None,
            dtype: Any = jnp.float32) -> tuple[LinearReadout, jax.Array]:
    """Run LMS over a sequence: features (T, F), targets (T, O) or (T,) -> (readout, errors (T, O)).

    Converges in the mean for 0 < μ < 2 / λ_max(E[x̃ x̃ᵀ]); ``initial_readout`` (a ``LinearReadout``)
    defaults to zero.  A run that diverges raises ``DivergenceError`` naming the first time step with a NaN/inf
    error (never silent NaNs).
    """
    step_size = check_scalar("step_size", step_size, POSITIVE)
    features, targets = _sequence("features", features, "targets", targets, as_dtype(dtype))
    n_features, n_outputs = features.shape[1], targets.shape[1]
    if initial_readout is None:
        readout = LinearReadout(jnp.zeros((n_features, n_outputs), features.dtype),
                                jnp.zeros(n_outputs, features.dtype))
    else:
        readout = _device_readout(check_linear_readout("initial_readout", initial_readout, n_features, n_outputs,
                                                       dtype=features.dtype))
    readout, errors = _lms_scan(readout, features, targets, step_size)
    _raise_if_diverged("LMS", readout, errors, f"lower step_size (= {step_size}): LMS converges for "
                       "0 < step_size < 2 / λ_max(E[x̃ x̃ᵀ]), x̃ = [features, 1]")
    return readout, errors


def rls_fit(features: Any, targets: Any, *, forgetting: float = 1.0, delta: float = 1e-2,
            initial_state: RLSState | None = None, dtype: Any = jnp.float32) -> tuple[RLSState, jax.Array]:
    """Run RLS over a sequence: features (T, F), targets (T, O) or (T,) -> (final state, errors (T, O)).

    The fitted readout is ``state.readout``; pass the state back as ``initial_state`` to continue on the next
    chunk of a stream (``delta`` is then unused).  A run that diverges raises ``DivergenceError``.
    """
    forgetting = check_scalar("forgetting", forgetting, UNIT_OPEN_LEFT)
    delta = check_scalar("delta", delta, POSITIVE)
    features, targets = _sequence("features", features, "targets", targets, as_dtype(dtype))
    if initial_state is None:
        initial_state = rls_init(features.shape[1], targets.shape[1], delta=delta, dtype=features.dtype)
    else:
        check_instance("initial_state", initial_state, RLSState)
        size = features.shape[1] + 1
        initial_state = RLSState(
            _device_readout(check_linear_readout("initial_state.readout", initial_state.readout,
                                                 features.shape[1], targets.shape[1], dtype=features.dtype)),
            jnp.asarray(check_array("initial_state inverse_correlation", initial_state.inverse_correlation, 2,
                                    {0: size, 1: size}, dtype=features.dtype)))
    state, errors = _rls_scan(initial_state, features, targets, forgetting)
    _raise_if_diverged("RLS", state.readout, errors, f"raise forgetting (= {forgetting}) towards 1 or delta "
                       f"(= {delta}), or rescale the features")
    return state, errors


def _device_readout(readout: LinearReadout) -> LinearReadout:
    return jax.tree_util.tree_map(jnp.asarray, readout)


@jax.jit
def _lms_scan(readout, features, targets, step_size):
    return jax.lax.scan(lambda r, xy: lms_step(r, *xy, step_size), readout, (features, targets))


@jax.jit
def _rls_scan(state, features, targets, forgetting):
    return jax.lax.scan(lambda s, xy: rls_step(s, *xy, forgetting), state, (features, targets))


def _raise_if_diverged(method: str, readout: LinearReadout, errors: jax.Array, advice: str) -> None:
    """A scan whose a-priori errors or final weights are NaN/inf diverged: say when, and what to change."""
    raise_if_diverged(errors, f"{method} a-priori errors", f"{method} diverged; {advice}")
    if not all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(readout)):
        raise DivergenceError(f"{method} weights became NaN/inf at the last step: {method} diverged; {advice}")


def _sequence(name_x: str, features: Any, name_y: str, targets: Any, dtype) -> tuple[jax.Array, jax.Array]:
    features = check_array(name_x, features, 2, nonempty=True, dtype=dtype)
    targets = check_array(name_y, targets, (1, 2), nonempty=True, dtype=dtype)
    if targets.ndim == 1:
        targets = targets[:, None]
    if len(features) != len(targets):
        raise ValueError(f"{name_x} and {name_y} must have the same number of samples, "
                         f"got {len(features)} and {len(targets)}")
    return jnp.asarray(features, dtype), jnp.asarray(targets, dtype)
