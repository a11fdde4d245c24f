"""LinearReadout: a pytree (flatten/unflatten, keyed paths, pickling), jit/grad/vmap/optax through it against
closed forms, and the readouts the project hands out equal to the computations they replace."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hardware_sim import delay_device
from hardware_sim.training import device_predictions, device_ridge_readout, train_on_device
from readout import LinearReadout, Ridge, apply_readout, linear_readout, readout_loss, solve_ridge, train
from readout.ridge import ridge_statistics
from reservoir.validation import check_linear_readout

pytestmark = pytest.mark.x64  # float64 references

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 4))
Y = X @ RNG.normal(size=(4, 2)) + 0.1 * RNG.normal(size=(30, 2))
W, B = RNG.normal(size=(4, 2)), RNG.normal(size=2)


def test_pytree_round_trip_keeps_the_two_leaves_in_order_and_names_them():
    readout = LinearReadout(jnp.asarray(W), jnp.asarray(B))
    leaves, treedef = jax.tree_util.tree_flatten(readout)
    assert len(leaves) == 2 and leaves[0] is readout.W and leaves[1] is readout.b
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(rebuilt) is LinearReadout and rebuilt.W is readout.W and rebuilt.b is readout.b
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(readout)]
    assert paths == [".W", ".b"]
    doubled = jax.tree_util.tree_map(lambda a: 2 * a, readout)
    assert type(doubled) is LinearReadout
    np.testing.assert_array_equal(doubled.W, 2 * W)
    unpickled = pickle.loads(pickle.dumps(jax.tree_util.tree_map(np.asarray, readout)))  # as checkpoints hold it
    np.testing.assert_array_equal(unpickled.W, W)
    np.testing.assert_array_equal(unpickled.b, B)


def test_call_is_x_w_plus_b_in_the_library_of_its_leaves():
    numpy_readout = LinearReadout(W, B)
    out = numpy_readout(X)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64  # NumPy leaves: computed by NumPy
    np.testing.assert_array_equal(out, X @ W + B)
    assert numpy_readout(X[0]).shape == (2,) and numpy_readout(X.reshape(3, 10, 4)).shape == (3, 10, 2)
    assert (numpy_readout.n_features, numpy_readout.n_outputs) == (4, 2)
    jitted = jax.jit(lambda r, x: r(x))(jax.tree_util.tree_map(jnp.asarray, numpy_readout), X)
    np.testing.assert_allclose(jitted, X @ W + B, rtol=1e-12)


def test_grad_through_the_readout_is_the_closed_form():
    """L = Σ (x W + b − y)²: ∂L/∂W = 2 Xᵀ E, ∂L/∂b = 2 Σ_t E, ∂L/∂X = 2 E Wᵀ, E = X W + b − Y."""
    readout = LinearReadout(jnp.asarray(W), jnp.asarray(B))
    loss = lambda r, x: jnp.sum((r(x) - Y) ** 2)
    grads, grad_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(readout, jnp.asarray(X))
    error = X @ W + B - Y
    assert type(grads) is LinearReadout
    np.testing.assert_allclose(grads.W, 2 * X.T @ error, rtol=1e-12)
    np.testing.assert_allclose(grads.b, 2 * error.sum(0), rtol=1e-12)
    np.testing.assert_allclose(grad_x, 2 * error @ W.T, rtol=1e-12)


def test_vmap_over_a_stack_of_readouts():
    stack = LinearReadout(jnp.asarray(np.stack([W, 2 * W])), jnp.asarray(np.stack([B, -B])))
    out = jax.vmap(lambda r: r(jnp.asarray(X)))(stack)
    np.testing.assert_allclose(out[0], X @ W + B, rtol=1e-12)
    np.testing.assert_allclose(out[1], X @ (2 * W) - B, rtol=1e-12)


def test_an_optax_step_updates_w_and_b_by_the_learning_rate_times_the_gradient():
    readout = LinearReadout(jnp.asarray(W), jnp.asarray(B))
    optimizer = optax.sgd(0.01)
    grads = jax.grad(lambda r: jnp.mean((r(jnp.asarray(X)) - Y) ** 2))(readout)
    updates, _ = optimizer.update(grads, optimizer.init(readout), readout)
    stepped = optax.apply_updates(readout, updates)
    error = X @ W + B - Y
    assert type(stepped) is LinearReadout
    np.testing.assert_allclose(stepped.W, W - 0.01 * 2 * X.T @ error / error.size, rtol=1e-12)
    np.testing.assert_allclose(stepped.b, B - 0.01 * 2 * error.sum(0) / error.size, rtol=1e-12)


def test_train_takes_a_linear_readout_as_its_parameters_not_as_a_function_to_call():
    """A LinearReadout is callable, but train's lazy parameters are functions: the readout is trained as given,
    and a function returning it is called once."""
    start = linear_readout(4, 2, seed=0, dtype=jnp.float64)
    options = dict(n_epochs=2, batch_size=10, progress=False, seed=1)
    direct = train(readout_loss("mse"), start, (X, Y), **options)
    lazy = train(readout_loss("mse"), lambda: start, (X, Y), **options)
    assert type(direct.params) is LinearReadout
    np.testing.assert_array_equal(direct.params.W, lazy.params.W)
    assert not np.array_equal(direct.params.W, start.W)


def test_ridge_readout_is_the_fit_its_coef_and_predict_report():
    ridge = Ridge(1e-2).fit(X, Y)
    readout = ridge.readout_
    assert type(readout) is LinearReadout
    assert ridge.coef_ is readout.W and ridge.intercept_ is readout.b
    np.testing.assert_array_equal(ridge.predict(X), readout(X))
    np.testing.assert_array_equal(ridge.predict(X), X @ ridge.coef_ + ridge.intercept_)
    solved = solve_ridge(ridge_statistics(X, Y), 1e-2)
    np.testing.assert_array_equal(solved.W, readout.W)
    np.testing.assert_array_equal(solved.b, readout.b)
    # the validated path: a float64 NumPy readout applied in float64
    np.testing.assert_allclose(apply_readout(readout, X), X @ readout.W + readout.b, rtol=1e-12)
    assert Ridge().coef_ is None and Ridge().readout_ is None


def test_device_readouts_are_linear_readouts_that_predict_as_before():
    """device_ridge_readout is the ridge fit of the measured states (alpha per row) in the twin's dtype; the
    trainers return it in params["readout"]; device_predictions = states @ W + b in float64 (by hand)."""
    device = delay_device(6, seed=0, reservoir_options={"dtype": jnp.float64})
    rng = np.random.default_rng(1)
    u = rng.uniform(0, 0.5, (4, 30, 1))
    y = np.roll(u, 1, axis=1)
    readout = device_ridge_readout(device, None, u, y, washout=5, alpha=1e-4)
    states = np.asarray(device.measure(u, None), np.float64)
    rows, targets = states[:, 5:].reshape(-1, 6), y[:, 5:].reshape(-1, 1)
    expected = Ridge(1e-4 * len(rows)).fit(rows, targets)
    assert type(readout) is LinearReadout and readout.W.dtype == jnp.float64
    np.testing.assert_allclose(readout.W, expected.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(readout.b, expected.intercept_, rtol=1e-6, atol=1e-9)
    result = train_on_device(device, u, y, mode="digital", washout=5, n_epochs=1, batch_size=2)
    trained = result.params["readout"]
    assert type(trained) is LinearReadout and trained.W.shape == (6, 1) and trained.b.shape == (1,)
    measured = np.asarray(device.measure(u, result.params["input_side"]), np.float64)
    by_hand = measured @ np.asarray(trained.W, np.float64) + np.asarray(trained.b, np.float64)
    predicted = device_predictions(device, result.params, u)  # a noiseless device: the same measurement
    assert predicted.shape == (4, 30, 1) and predicted.dtype == np.float64
    np.testing.assert_array_equal(predicted, by_hand)
    pooled = device_predictions(device, result.params, u, washout=5, pool=True)
    np.testing.assert_allclose(pooled, measured[:, 5:].mean(1) @ np.asarray(trained.W) + np.asarray(trained.b),
                               rtol=1e-12)


def test_check_linear_readout_names_the_argument_and_the_field():
    checked = check_linear_readout("readout", LinearReadout(W.tolist(), B.tolist()), 4, 2, dtype=np.float32)
    assert type(checked) is LinearReadout and checked.W.dtype == np.float32 and checked.b.shape == (2,)
    with pytest.raises(TypeError, match=r"readout must be a LinearReadout .* got \{'W'"):
        check_linear_readout("readout", {"W": W, "b": B})
    with pytest.raises(ValueError, match="readout.W must have length 5 on axis 0"):
        check_linear_readout("readout", LinearReadout(W, B), n_features=5)
    with pytest.raises(ValueError, match="readout.b must have length 2 on axis 0"):
        check_linear_readout("readout", LinearReadout(W, B[:1]))
    with pytest.raises(ValueError, match="readout.W must be finite"):
        check_linear_readout("readout", LinearReadout(np.full((4, 2), np.nan), B))
