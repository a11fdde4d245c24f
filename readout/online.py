"""Online readouts, updated one sample at a time: LMS and RLS, as in real-time FPGA training of a photonic
reservoir (Antonik, Duport, Hermans, Smerieri, Haelterman, Massar, IEEE TNNLS 28, 2686 (2017)).

Weights ``w`` (F + 1, O) act on the features with a constant 1 appended (the last row is the intercept):
``y(n) = wᵀ x̃(n)``, ``x̃(n) = [x(n), 1]``.  The a-priori error of step n is ``ξ(n) = d(n) − w(n−1)ᵀ x̃(n)``,
the error of the weights *before* they see sample n: the honest online error.

LMS (Widrow & Hoff 1960; Haykin, *Adaptive Filter Theory*, 4th ed., Prentice Hall 2002, ch. 5), step size μ:

    w(n) = w(n−1) + μ x̃(n) ξ(n)ᵀ

RLS with forgetting factor λ ∈ (0, 1] and regularisation δ > 0 (Haykin, *Adaptive Filter Theory*, 4th ed.,
ch. 9, "Summary of the RLS algorithm"), P the inverse of the exponentially weighted correlation matrix:

    P(0) = δ⁻¹ I,   w(0) = 0
    π(n) = P(n−1) x̃(n)
    k(n) = π(n) / (λ + x̃(n)ᵀ π(n))                 gain vector
    ξ(n) = d(n) − w(n−1)ᵀ x̃(n)                     a-priori error
    w(n) = w(n−1) + k(n) ξ(n)ᵀ
    P(n) = λ⁻¹ (P(n−1) − k(n) π(n)ᵀ)

which minimises Σᵢ λⁿ⁻ⁱ |d(i) − wᵀ x̃(i)|² + δ λⁿ |w|² exactly after every sample.

``lms_step`` / ``rls_step`` are the pure per-sample updates (no validation: they run inside ``lax.scan`` or on a
device); ``lms_fit`` / ``rls_fit`` validate their arguments and scan over a whole sequence.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from reservoir.core import DivergenceError, as_dtype, compute_dtype, raise_if_diverged
from reservoir.validation import (
    POSITIVE,
    POSITIVE_INT,
    UNIT_OPEN_LEFT,
    check_array,
    check_instance,
    check_scalar,
)


@partial(jax.tree_util.register_dataclass, data_fields=["weights", "inverse_correlation"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class RLSState:
    """RLS state: ``weights`` (F + 1, O), intercept last; ``inverse_correlation`` P (F + 1, F + 1)."""

    weights: jax.Array
    inverse_correlation: jax.Array


def _augment(features: jax.Array) -> jax.Array:
    return jnp.concatenate([features, jnp.ones(features.shape[:-1] + (1,), features.dtype)], axis=-1)


def lms_step(weights: jax.Array, features: jax.Array, target: jax.Array,
             step_size: float) -> tuple[jax.Array, jax.Array]:
    """One LMS update: weights (F + 1, O), features (F,), target (O,) -> (new weights, a-priori error (O,))."""
    x = _augment(features)
    error = target - x @ weights
    return weights + step_size * jnp.outer(x, error), error


def rls_step(state: RLSState, features: jax.Array, target: jax.Array,
             forgetting: float) -> tuple[RLSState, jax.Array]:
    """One RLS update (equations in the module docstring) -> (new state, a-priori error (O,))."""
    x = _augment(features)
    P, weights = state.inverse_correlation, state.weights
    pi = P @ x
    gain = pi / (forgetting + x @ pi)
    error = target - x @ weights
    return RLSState(weights + jnp.outer(gain, error), (P - jnp.outer(gain, pi)) / forgetting), error


def rls_init(n_features: int, n_outputs: int, *, delta: float = 1e-2, dtype: Any = jnp.float32) -> RLSState:
    """Zero weights and P(0) = I / δ; a small δ means weak regularisation (a large initial P)."""
    n_features = check_scalar("n_features", n_features, POSITIVE_INT)
    n_outputs = check_scalar("n_outputs", n_outputs, POSITIVE_INT)
    delta = check_scalar("delta", delta, POSITIVE)
    dtype = as_dtype(dtype)
    size = n_features + 1
    return RLSState(jnp.zeros((size, n_outputs), dtype), jnp.eye(size, dtype=dtype) / delta)


def lms_fit(features: Any, targets: Any, *, step_size: float, initial_weights: Any = None,
            dtype: Any = jnp.float32) -> tuple[jax.Array, jax.Array]:
    """Run LMS over a sequence: features (T, F), targets (T, O) or (T,) -> (weights (F + 1, O), errors (T, O)).

    Converges in the mean for 0 < μ < 2 / λ_max(E[x̃ x̃ᵀ]); ``initial_weights`` default to zero.  A run that
    diverges raises ``DivergenceError`` naming the first time step with a NaN/inf error (never silent NaNs).
    """
    step_size = check_scalar("step_size", step_size, POSITIVE)
    features, targets = _sequence("features", features, "targets", targets, as_dtype(dtype))
    shape = (features.shape[1] + 1, targets.shape[1])
    if initial_weights is None:
        weights = jnp.zeros(shape, features.dtype)
    else:
        weights = jnp.asarray(check_array("initial_weights", initial_weights, 2, dict(enumerate(shape)),
                                          dtype=features.dtype))
    weights, errors = _lms_scan(weights, features, targets, step_size)
    _raise_if_diverged("LMS", weights, errors, f"lower step_size (= {step_size}): LMS converges for "
                       "0 < step_size < 2 / λ_max(E[x̃ x̃ᵀ]), x̃ = [features, 1]")
    return weights, errors


def rls_fit(features: Any, targets: Any, *, forgetting: float = 1.0, delta: float = 1e-2,
            initial_state: RLSState | None = None, dtype: Any = jnp.float32) -> tuple[RLSState, jax.Array]:
    """Run RLS over a sequence: features (T, F), targets (T, O) or (T,) -> (final state, errors (T, O)).

    The fitted weights are ``state.weights`` (F + 1, O); pass the state back as ``initial_state`` to continue
    on the next chunk of a stream (``delta`` is then unused).  A run that diverges raises ``DivergenceError``.
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
            jnp.asarray(check_array("initial_state weights", initial_state.weights, 2,
                                    {0: size, 1: targets.shape[1]}, dtype=features.dtype)),
            jnp.asarray(check_array("initial_state inverse_correlation", initial_state.inverse_correlation, 2,
                                    {0: size, 1: size}, dtype=features.dtype)))
    state, errors = _rls_scan(initial_state, features, targets, forgetting)
    _raise_if_diverged("RLS", state.weights, errors, f"raise forgetting (= {forgetting}) towards 1 or delta "
                       f"(= {delta}), or rescale the features")
    return state, errors


def predict_online(weights: Any, features: Any) -> jax.Array:
    """Features (..., F) and weights (F + 1, O) from ``lms_fit``/``rls_fit`` -> outputs (..., O)."""
    weights = check_array("weights", weights, 2, nonempty=True)
    dtype = compute_dtype(weights.dtype)
    weights = check_array("weights", weights, 2, dtype=dtype)
    if weights.shape[0] < 2:
        raise ValueError(f"weights must have F + 1 >= 2 rows (the intercept last), got shape {weights.shape}")
    features = check_array("features", features, (1, 2, 3), dtype=dtype)
    if features.shape[-1] != weights.shape[0] - 1:
        raise ValueError(f"features (..., F) and weights (F + 1, O) disagree on F: got shapes {features.shape} "
                         f"and {weights.shape}")
    return _augment(jnp.asarray(features, dtype)) @ jnp.asarray(weights)


@jax.jit
def _lms_scan(weights, features, targets, step_size):
    return jax.lax.scan(lambda w, xy: lms_step(w, *xy, step_size), weights, (features, targets))


@jax.jit
def _rls_scan(state, features, targets, forgetting):
    return jax.lax.scan(lambda s, xy: rls_step(s, *xy, forgetting), state, (features, targets))


def _raise_if_diverged(method: str, weights: jax.Array, errors: jax.Array, advice: str) -> None:
    """A scan whose a-priori errors or final weights are NaN/inf diverged: say when, and what to change."""
    raise_if_diverged(errors, f"{method} a-priori errors", f"{method} diverged; {advice}")
    if not np.all(np.isfinite(np.asarray(weights))):
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
