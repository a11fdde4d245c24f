"""ESN and simple cycle reservoir against independent NumPy references."""

import jax
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from readout import LinearReadout
from reservoir import DivergenceError, esn, esn_from_arrays, generate, run, simple_cycle_reservoir, spectral_radius

pytestmark = pytest.mark.x64  # float64 references and tolerances


def numpy_esn(W, W_in, b, a, u, x0, W_fb=None, teacher=None):
    """The textbook update, one step at a time."""
    x, out = x0.copy(), []
    for t in range(len(u)):
        pre = W @ x + W_in @ u[t] + b
        if W_fb is not None:
            pre += W_fb @ (teacher[t - 1] if t > 0 else np.zeros(W_fb.shape[1]))
        x = (1 - a) * x + a * np.tanh(pre)
        out.append(x)
    return np.array(out)


def test_esn_matches_numpy_step():
    rng = np.random.default_rng(1)
    p = esn(30, 2, seed=3, leak_rate=0.3, bias_scaling=0.5, dtype="float64")
    u, x0 = rng.normal(size=(40, 2)), rng.normal(size=30)
    expected = numpy_esn(*(np.asarray(v) for v in (p.W, p.W_in, p.bias, p.leak_rate)), u, x0)
    np.testing.assert_allclose(run(p, u, x0), expected, rtol=1e-12, atol=1e-12)


def test_feedback_is_teacher_forced():
    rng = np.random.default_rng(2)
    W, W_in, W_fb = rng.normal(size=(10, 10)) * 0.1, rng.normal(size=(10, 1)), rng.normal(size=(10, 2))
    p = esn_from_arrays(W, W_in, np.zeros(10), 0.5, W_fb, dtype="float64")
    u, y = rng.normal(size=(20, 1)), rng.normal(size=(20, 2))
    expected = numpy_esn(W, W_in, np.zeros(10), 0.5, u, np.zeros(10), W_fb, y)
    np.testing.assert_allclose(run(p, u, teacher=y), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="teacher"):
        run(p, u)


def test_generate_matches_a_closed_loop_written_by_hand():
    p = esn(20, seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    coef, intercept = rng.normal(size=(21, 1)) * 0.1, np.array([0.05])
    x, u = rng.normal(size=20) * 0.1, np.array([0.3])
    x0, expected = x.copy(), []
    for _ in range(5):
        y = np.r_[x, u] @ coef + intercept
        expected.append(y)
        x = np.tanh(np.asarray(p.W) @ x + np.asarray(p.W_in) @ y + np.asarray(p.bias))
        u = y
    readout = LinearReadout(coef, intercept)
    np.testing.assert_allclose(generate(p, readout, x0, np.array([0.3]), 5), np.array(expected), rtol=1e-12)
    batched = generate(p, readout, np.stack([x0, x0]), np.array([[0.3], [0.3]]), 5)
    np.testing.assert_allclose(batched[1], np.array(expected), rtol=1e-12)


def test_batched_equals_per_sequence():
    p = esn(25, 3, seed=0, leak_rate=0.7)
    u = np.random.default_rng(0).normal(size=(4, 30, 3))
    batched = run(p, u)  # concrete values: the forward-only in-place batch path
    for b in range(4):
        np.testing.assert_allclose(batched[b], run(p, u[b]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(jax.jit(run)(p, u), batched)  # traced: the vmap path


def test_spectral_radius_and_density():
    p = esn(200, seed=5, spectral_radius=0.77, density=0.05, dtype="float64")
    W = np.asarray(p.W)
    assert np.max(np.abs(np.linalg.eigvals(W))) == pytest.approx(0.77, rel=1e-10)
    assert spectral_radius(W) == pytest.approx(0.77, rel=1e-10)
    assert 0.04 < np.mean(W != 0) < 0.06


def test_spectral_radius_of_a_large_sparse_matrix_matches_dense_eigenvalues():
    # A draw for which ARPACK asked for one eigenvalue returned one 1.4 % smaller than the largest.
    rng = np.random.default_rng(1)
    W = scipy.sparse.random(1600, 1600, density=0.1, random_state=rng, data_rvs=rng.standard_normal, format="csr")
    assert spectral_radius(W) == pytest.approx(np.max(np.abs(np.linalg.eigvals(W.toarray()))), rel=1e-9)


def test_same_seed_same_network_and_float32_default():
    a, b, c = esn(50, seed=1), esn(50, seed=1), esn(50, seed=2)
    assert a.W.dtype == np.float32
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, c.W)


def test_simple_cycle_reservoir_structure():
    p = simple_cycle_reservoir(10, 2, cycle_weight=0.8, input_weight=0.3, dtype="float64")
    W = np.asarray(p.W)
    assert np.count_nonzero(W) == 10 and np.allclose(W[np.nonzero(W)], 0.8)
    assert all(W[(i + 1) % 10, i] == 0.8 for i in range(10))
    assert spectral_radius(W) == pytest.approx(0.8)
    assert np.allclose(np.abs(p.W_in), 0.3)
    # Signs from the decimal digits of pi: 1 4 1 5 9 ... -> - - - + + ...
    np.testing.assert_array_equal(np.sign(np.asarray(p.W_in)).ravel()[:5], [-1, -1, -1, 1, 1])


def test_divergence_names_the_time_step():
    p = esn_from_arrays(np.eye(3) * 2, np.ones((3, 1)), leak_rate=1.0, activation="identity", dtype="float64")
    u = np.zeros((2000, 1))
    u[0] = 1.0
    with pytest.raises(DivergenceError, match="time step 1024"):
        run(p, u)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"spectral_radius": 0.0}, "spectral_radius"), ({"spectral_radius": -1}, "spectral_radius"),
    ({"density": 0.0}, "density"), ({"density": 1.5}, "density"), ({"leak_rate": 0.0}, "leak_rate"),
    ({"leak_rate": 1.2}, "leak_rate"), ({"input_scaling": float("nan")}, "input_scaling"),
    ({"activation": "softplus"}, "activation"),
])
def test_bad_hyperparameters_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        esn(10, seed=0, **kwargs)


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), st.text(max_size=3)))
def test_bad_n_units_rejected(n_units):
    with pytest.raises((ValueError, TypeError), match="n_units"):
        esn(n_units, seed=0)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["nan", "inf", "ndim1", "ndim4", "features"]))
def test_bad_inputs_rejected_before_running(kind):
    p = esn(5, 2, seed=0)
    u = np.zeros((10, 2))
    bad = {"nan": np.where(np.arange(20).reshape(10, 2) == 7, np.nan, u), "inf": u + np.inf, "ndim1": u[:, 0],
           "ndim4": u[None, None], "features": np.zeros((10, 3))}[kind]
    with pytest.raises(ValueError, match="inputs"):
        run(p, bad)


def test_initial_state_shape_checked():
    with pytest.raises(ValueError, match="initial_state"):
        run(esn(5, seed=0), np.zeros((4, 1)), np.zeros(6))


def test_orthogonal_topology_puts_every_eigenvalue_on_the_circle():
    W = np.asarray(esn(40, seed=0, topology="orthogonal", spectral_radius=0.8, dtype="float64").W)
    np.testing.assert_allclose(W @ W.T, 0.64 * np.eye(40), atol=1e-12)
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(W)), 0.8, rtol=1e-10)
    with pytest.raises(ValueError, match="topology"):
        esn(10, seed=0, topology="ring")


def test_memory_capacity_of_a_linear_orthogonal_reservoir_is_close_to_n():
    from experiments.observables import memory_capacity

    params = esn(20, seed=0, topology="orthogonal", spectral_radius=0.9, activation="identity", dtype="float64")
    total, per_delay = memory_capacity(params, n_train=4000, n_test=2000, washout=100)
    assert per_delay.shape == (40,)
    assert 0.95 * 20 <= total <= 20 + 1e-6  # theory: MC = N for a linear reservoir, never more
    with pytest.raises(ValueError, match="washout"):
        memory_capacity(params, washout=10)
