"""Online LMS / RLS readouts against least squares and a hand-written NumPy update."""


import jax.numpy as jnp
import numpy as np
import pytest

from readout.linear import LinearReadout
from readout.online import (
    RLSState,
    lms_fit,
    lms_step,
    rls_fit,
    rls_init,
    rls_step,
)

pytestmark = pytest.mark.x64  # float64 references and tolerances

F64 = jnp.float64


def stacked(readout):
    """[W; b] (F + 1, O): the readout as the augmented weights of the NumPy references."""
    return np.vstack([readout.W, readout.b[None]])


def split(weights):
    """The augmented weights [W; b] as a LinearReadout."""
    return LinearReadout(jnp.asarray(weights[:-1]), jnp.asarray(weights[-1]))


def stationary(n, f=4, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    W = rng.normal(size=(f, 2))
    return X, X @ W + np.array([0.5, -0.2]) + noise * rng.normal(size=(n, 2)), np.vstack([W, [0.5, -0.2]])


def test_rls_converges_to_least_squares():
    X, Y, _ = stationary(500, noise=0.3)
    state, errors = rls_fit(X, Y, forgetting=1.0, delta=1e-6, dtype=F64)
    reference = np.linalg.lstsq(np.c_[X, np.ones(len(X))], Y, rcond=None)[0]
    np.testing.assert_allclose(stacked(state.readout), reference, atol=1e-6)
    assert errors.shape == (500, 2)
    np.testing.assert_allclose(state.readout(X), np.c_[X, np.ones(500)] @ reference, atol=1e-5)


def test_rls_continues_a_stream_in_chunks():
    X, Y, _ = stationary(300, noise=0.1)
    whole, whole_errors = rls_fit(X, Y, delta=1e-3, dtype=F64)
    first, errors_a = rls_fit(X[:120], Y[:120], delta=1e-3, dtype=F64)
    second, errors_b = rls_fit(X[120:], Y[120:], initial_state=first, dtype=F64)
    np.testing.assert_allclose(stacked(second.readout), stacked(whole.readout), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.r_[errors_a, errors_b], whole_errors, rtol=1e-10, atol=1e-12)


def test_rls_one_step_matches_numpy():
    rng = np.random.default_rng(3)
    W, A = rng.normal(size=(4, 2)), rng.normal(size=(4, 4))
    P, x, d, lam = A @ A.T + np.eye(4), rng.normal(size=3), rng.normal(size=2), 0.97
    state, error = rls_step(RLSState(split(W), jnp.asarray(P)), jnp.asarray(x), jnp.asarray(d), lam)
    xt = np.append(x, 1.0)
    k = P @ xt / (lam + xt @ P @ xt)
    e = d - W.T @ xt
    np.testing.assert_allclose(error, e, rtol=1e-12)
    np.testing.assert_allclose(stacked(state.readout), W + np.outer(k, e), rtol=1e-12)
    np.testing.assert_allclose(state.inverse_correlation, (P - np.outer(k, xt @ P)) / lam, rtol=1e-12, atol=1e-14)


def test_rls_init():
    state = rls_init(3, 2, delta=0.5, dtype=F64)
    np.testing.assert_array_equal(state.inverse_correlation, 2 * np.eye(4))
    np.testing.assert_array_equal(stacked(state.readout), np.zeros((4, 2)))


def test_lms_converges_on_a_well_conditioned_problem():
    X, Y, W = stationary(3000)
    readout, errors = lms_fit(X, Y, step_size=0.02, dtype=F64)
    np.testing.assert_allclose(stacked(readout), W, atol=1e-6)
    assert np.abs(errors[-100:]).max() < 1e-6 < np.abs(errors[:10]).max()


def test_lms_step_matches_numpy():
    rng = np.random.default_rng(4)
    W, x, d = rng.normal(size=(4, 2)), rng.normal(size=3), rng.normal(size=2)
    new, error = lms_step(split(W), jnp.asarray(x), jnp.asarray(d), 0.1)
    xt = np.append(x, 1.0)
    np.testing.assert_allclose(error, d - W.T @ xt, rtol=1e-12)
    np.testing.assert_allclose(stacked(new), W + 0.1 * np.outer(xt, d - W.T @ xt), rtol=1e-12)


def test_one_dimensional_targets_and_initial_weights():
    X, Y, W = stationary(50)
    readout, errors = lms_fit(X, Y[:, 0], step_size=0.01, initial_readout=split(W[:, :1]), dtype=F64)
    np.testing.assert_allclose(errors, 0.0, atol=1e-12)
    assert stacked(readout).shape == (5, 1)


@pytest.mark.parametrize(("options", "match"), [
    ({"forgetting": 0.0}, "forgetting"),
    ({"forgetting": 1.01}, "forgetting"),
    ({"delta": 0.0}, "delta"),
    ({"delta": -1.0}, "delta"),
])
def test_rls_rejects_bad_arguments(options, match):
    X, Y, _ = stationary(10)
    with pytest.raises(ValueError, match=match):
        rls_fit(X, Y, **options)


def test_online_rejects_bad_arguments():
    X, Y, _ = stationary(10)
    with pytest.raises(ValueError, match="step_size"):
        lms_fit(X, Y, step_size=0.0)
    with pytest.raises(ValueError, match="features and targets"):
        lms_fit(X, Y[:-1], step_size=0.1)
    with pytest.raises(ValueError, match="initial_readout"):
        lms_fit(X, Y, step_size=0.1, initial_readout=LinearReadout(np.zeros((3, 2)), np.zeros(2)))
    with pytest.raises(ValueError, match="initial_state"):
        rls_fit(X, Y, initial_state=rls_init(3, 2))
    with pytest.raises(ValueError, match="features"):
        rls_fit(X[0], Y)
    with pytest.raises(ValueError, match="delta"):
        rls_init(3, 2, delta=0.0)
