"""The ``finite_difference`` training mode: one parameter at a time, 2P device queries per step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hardware_sim import MODES, delay_device, finite_difference_loss, ridge_objective
from hardware_sim.training import train_on_device, twin_states
from readout.ridge import Ridge
from reservoir import split_trainable

pytestmark = pytest.mark.x64  # float64 references and tolerances

NAMES = ("mask", "input_gain", "phase")
F64 = {"dtype": jnp.float64}


def _problem(n_units=6, seed=0):
    device = delay_device(n_units, seed=seed, reservoir_options=F64)
    rng = np.random.default_rng(seed)
    inputs, targets = rng.uniform(0, 0.5, (3, 30, 1)), rng.normal(size=(3, 30, 2))
    side, _ = split_trainable(device.nominal_twin(), NAMES)
    return device, {n: np.asarray(v) for n, v in side.items()}, inputs, targets


def _ridge_nmse(states, targets, alpha):
    """In-sample ridge NMSE of ``readout.Ridge`` (centred, intercept unpenalised, ``alpha`` per row: the Gram
    matrix of n rows gets n · alpha), written in jnp so that ``jax.grad`` differentiates it."""
    x, y = states.reshape(-1, states.shape[-1]), targets.reshape(-1, targets.shape[-1])
    xc, yc = x - x.mean(0), y - y.mean(0)
    coef = jnp.linalg.solve(xc.T @ xc + len(x) * alpha * jnp.eye(x.shape[1]), xc.T @ yc)
    return jnp.mean(jnp.mean((yc - xc @ coef) ** 2, 0) / jnp.var(y, 0))


def test_gradient_is_a_central_difference_per_parameter_and_matches_jax_grad():
    device, side, inputs, targets = _problem()
    washout, alpha, c = 5, 1e-6, 1e-5
    loss = finite_difference_loss(device, NAMES, washout=washout, alpha=alpha, perturbation=c)
    value, grads = jax.jit(jax.value_and_grad(loss))({"input_side": side}, inputs, targets)
    n_params = 6 + 1 + 1  # every mask entry counts as one parameter
    assert device.n_calls == 2 * n_params and device.n_samples == 2 * n_params * 3 * 30

    # By hand, independently: perturb one entry, measure on the device, fit a Ridge.
    def measured_nmse(changed):
        states = np.asarray(device.measure(inputs, {**side, **changed}))[:, washout:]
        y = targets[:, washout:]
        return Ridge(alpha * states.shape[0] * states.shape[1]).fit(states, y).score(states, y)  # per row

    for name, index in (("input_gain", ()), ("phase", ()), ("mask", (3, 0))):
        plus, minus = (np.array(side[name]) for _ in range(2))
        plus[index] += c
        minus[index] -= c
        expected = (measured_nmse({name: plus}) - measured_nmse({name: minus})) / (2 * c)
        assert float(grads["input_side"][name][index]) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert float(value) == pytest.approx(measured_nmse({}), rel=1e-3)  # mean of the 2P values, stored float32

    # An ideal device is its twin: the FD gradient matches jax.grad of the twin's ridge NMSE (O(c²) apart).
    states = twin_states(device, NAMES)
    exact = jax.jit(jax.grad(lambda s: _ridge_nmse(states(s, inputs)[:, washout:], targets[:, washout:], alpha)))(
        {n: jnp.asarray(v) for n, v in side.items()})
    for name in NAMES:
        np.testing.assert_allclose(grads["input_side"][name], exact[name], rtol=1e-6,
                                   atol=1e-9 * float(jnp.abs(exact[name]).max()))


def test_objective_is_the_in_sample_ridge_nmse_of_one_measurement():
    device, side, inputs, targets = _problem()
    objective = ridge_objective(device, washout=5, alpha=1e-6)
    got = objective(side, inputs, targets)
    states = np.asarray(delay_device(6, seed=0, reservoir_options=F64).measure(inputs, side))[:, 5:]
    ridge = Ridge(1e-6 * states.shape[0] * states.shape[1])  # alpha per row
    assert got == pytest.approx(ridge.fit(states, targets[:, 5:]).score(states, targets[:, 5:]), rel=1e-12)
    assert device.n_calls == 1


def test_mode_counts_two_queries_per_parameter_per_step_and_lowers_the_objective():
    assert "finite_difference" in MODES
    u = np.random.default_rng(0).uniform(-1, 1, (4, 100, 1))
    y = np.roll(u, 1, axis=1) ** 2  # needs the even part of sin(· + φ): a phase near 0 is poor
    device = delay_device(6, seed=2, reservoir_options={"phase": 0.2})
    names, n_steps = ("mask", "phase"), 10
    result = train_on_device(device, u, y, mode="finite_difference", names=names, washout=20, alpha=1e-6,
                             n_epochs=n_steps, spsa_gain=0.2, spsa_perturbation=0.02,
                             batch_size=2, learning_rate=1.0)  # gradient-mode options are ignored, as for spsa
    n_params = 6 + 1  # every mask entry counts
    history = result.history["train"]
    print(f"P = {n_params}, calls = {result.n_calls}, objective {history[0]:.4f} -> {history[-1]:.4f}")
    assert result.n_calls == 2 * n_params * n_steps + 1  # + the final ridge readout
    assert result.n_samples == result.n_calls * 400
    assert len(history) == n_steps and history[-1] < 0.5 * history[0]
    assert result.params["readout"].W.shape == (6, 1)


def test_bad_perturbation_is_refused_before_any_query():
    device = delay_device(5, seed=0)
    u = np.zeros((2, 10, 1))
    with pytest.raises(ValueError, match="spsa_perturbation"):
        train_on_device(device, u, u, mode="finite_difference", spsa_perturbation=0.0, n_epochs=1)
    assert device.n_calls == 0
