"""Hardware-in-the-loop training: physics-aware gradients, deployment modes, SPSA and their query counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import tasks
from hardware_sim import delay_device
from hardware_sim.training import (
    device_nmse,
    device_states,
    train_on_device,
    twin_states,
)
from readout.linear import LinearReadout
from readout.projection import states_readout_loss
from reservoir import split_trainable

pytestmark = pytest.mark.x64  # float64 references and tolerances

NAMES = ("mask", "input_gain", "phase")
F64 = {"dtype": jnp.float64}


def _problem(device, seed=0):
    rng = np.random.default_rng(seed)
    inputs = jnp.asarray(rng.uniform(0, 0.5, (3, 40, 1)))
    targets = jnp.asarray(rng.normal(size=(3, 40, 2)))
    side, _ = split_trainable(device.nominal_twin(), NAMES)
    readout = LinearReadout(jnp.asarray(rng.normal(size=(device.n_units, 2))), jnp.zeros(2))
    return {"input_side": side, "readout": readout}, inputs, targets


def _relative_error(a, b):
    return max(float(jnp.linalg.norm(x - y) / jnp.linalg.norm(y))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


def test_hil_gradient_equals_twin_gradient_without_nonidealities():
    device = delay_device(12, seed=0, reservoir_options=F64)
    params, inputs, targets = _problem(device)
    hil = states_readout_loss(device_states(device, NAMES), washout=5)
    twin = states_readout_loss(twin_states(device, NAMES), washout=5)
    value, grads = jax.jit(jax.value_and_grad(hil))(params, inputs, targets)
    expected_value, expected = jax.value_and_grad(twin)(params, inputs, targets)
    assert device.n_calls == 1 and device.n_samples == 3 * 40  # one measurement per forward + backward
    assert float(value) == pytest.approx(float(expected_value), rel=1e-10)
    assert _relative_error(grads["input_side"], expected["input_side"]) <= 1e-5
    assert _relative_error(grads["readout"], expected["readout"]) <= 1e-5


def test_hil_forward_is_the_device_and_its_gradient_differs_from_the_twin():
    device, same = (delay_device(12, seed=3, mismatch=0.2, harmonic=0.2, reservoir_options=F64) for _ in range(2))
    params, inputs, targets = _problem(device)
    states = device_states(device, NAMES)
    np.testing.assert_allclose(states(params["input_side"], inputs), same.measure(inputs, params["input_side"]),
                               rtol=1e-12)
    hil_grads = jax.grad(states_readout_loss(states, washout=5))(params, inputs, targets)
    twin_grads = jax.grad(states_readout_loss(twin_states(device, NAMES), washout=5))(params, inputs, targets)
    assert _relative_error(hil_grads["input_side"], twin_grads["input_side"]) > 1e-2
    assert _relative_error(hil_grads["readout"], twin_grads["readout"]) > 1e-2


def test_hil_beats_digital_on_a_mismatched_device():
    u, y = tasks.narma10(1600, seed=0)
    u_train, y_train = u[:1000].reshape(10, 100, 1), y[:1000].reshape(10, 100, 1)
    names = ("mask", "input_gain", "feedback_gain", "phase")
    options = dict(names=names, washout=20, alpha=1e-4, n_epochs=15, batch_size=5, learning_rate=3e-3)
    errors, results = {}, {}
    for mode in ("digital", "digital+readout", "hil"):
        device = delay_device(30, seed=1, mismatch=0.3)
        results[mode] = train_on_device(device, u_train, y_train, mode=mode, **options)
        errors[mode] = device_nmse(device, results[mode].params, u[1000:], y[1000:], washout=50)
    print({mode: (round(errors[mode], 4), results[mode].n_calls) for mode in errors})
    assert [results[m].n_calls for m in errors] == [0, 1, 1 + 15 * 2]  # initial readout + one per step
    assert results["hil"].n_samples == 1000 + 30 * 5 * 100  # B · T per measurement
    assert all(len(result.history["train"]) == 15 for result in results.values())
    assert errors["hil"] < errors["digital"]
    assert errors["hil"] < 0.6 and errors["digital+readout"] < 0.6


def test_spsa_reduces_the_loss_and_counts_two_queries_per_step():
    u, y = tasks.narma10(600, seed=1)
    u_train, y_train = u.reshape(6, 100, 1), y.reshape(6, 100, 1)
    device = delay_device(15, seed=2, reservoir_options={"input_gain": 0.05})  # a poor starting input gain
    result = train_on_device(device, u_train, y_train, mode="spsa", names=("input_gain", "phase"), washout=20,
                             alpha=1e-4, n_epochs=30, spsa_gain=0.5, spsa_perturbation=0.1)
    history = result.history["train"]
    assert result.n_calls == 2 * 30 + 1 and result.n_samples == (2 * 30 + 1) * 600
    assert np.mean(history[-5:]) < 0.8 * history[0]
    assert result.params["readout"].W.shape == (15, 1)


def test_physical_backprop_equals_bptt_of_the_twin_without_nonidealities():
    """The device's own backward pass (reversed-time loop, cos read at a π/2-shifted bias) is exact BPTT when
    the device is ideal: checked against jax.grad of the twin for every input-side field, batched."""
    names = ("mask", "bias_mask", "input_gain", "feedback_gain", "phase")
    device = delay_device(12, 2, seed=0, reservoir_options=dict(F64, bias_mask_scaling=0.3, phase=0.2))
    rng = np.random.default_rng(0)
    inputs, cotangent = rng.uniform(-1, 1, (3, 40, 2)), rng.normal(size=(3, 40, 12))
    side, combine = split_trainable(device.nominal_twin(), names)
    expected = jax.grad(lambda s: jnp.sum(twin_states(device, names)(s, inputs) * cotangent))(side)
    got = device.adjoint(inputs, {k: np.asarray(v) for k, v in side.items()}, cotangent)
    assert _relative_error(got, expected) <= 1e-5
    # forward measurement (states not given) + two derivative passes + two backward passes
    assert device.n_calls == 5 and device.n_samples == 5 * 3 * 40


def test_physical_backprop_mode_gradient_and_noise():
    device = delay_device(12, seed=0, reservoir_options=F64)
    params, inputs, targets = _problem(device)
    physical = states_readout_loss(device_states(device, NAMES, backward="device"), washout=5)
    twin = states_readout_loss(twin_states(device, NAMES), washout=5)
    grads = jax.jit(jax.grad(physical))(params, inputs, targets)
    expected = jax.grad(twin)(params, inputs, targets)
    assert device.n_calls == 5  # forward, two derivative passes (± bias), two backward passes (± error)
    assert _relative_error(grads, expected) <= 1e-5
    noisy = delay_device(12, seed=0, snr_db=20, reservoir_options=F64)  # the gradient carries the device's noise
    noisy_grads = jax.grad(states_readout_loss(device_states(noisy, NAMES, backward="device"), washout=5))(
        params, inputs, targets)
    assert 1e-3 < _relative_error(noisy_grads["input_side"], expected["input_side"]) < 1.0
    with pytest.raises(ValueError, match="sine"):
        delay_device(12, seed=0, model="mackey_glass").adjoint(inputs, None, np.zeros((3, 40, 12)))


def test_projected_readout_loss_is_the_ridge_fit_and_its_gradient_matches_finite_differences():
    """readout="ridge": the loss is the residual of the closed-form ridge fit on the batch (checked against
    readout.Ridge, alpha per row), and its gradient in the input side matches central finite differences
    (float64)."""
    from hardware_sim.training import _twin_states, device_context
    from readout import Ridge
    from readout.projection import ProjectedLoss as _ProjectedLoss

    device = delay_device(8, seed=2, reservoir_options=F64)
    params, inputs, targets = _problem(device, seed=4)
    loss = _ProjectedLoss(_twin_states(None), washout=5, pool=False, alpha=1e-3)
    context = device_context(device)
    side = params["input_side"]
    states = np.asarray(twin_states(device, NAMES)(side, inputs))[:, 5:].reshape(-1, 8)
    y = np.asarray(targets)[:, 5:].reshape(-1, 2)
    fit = Ridge(1e-3 * len(states)).fit(states, y)  # alpha is per row: the Gram matrix gets alpha * rows
    expected = np.mean((fit.predict(states) - y) ** 2)
    assert float(loss({"input_side": side}, inputs, targets, context)) == pytest.approx(expected, rel=1e-9)

    grads = jax.grad(lambda s: loss({"input_side": s}, inputs, targets, context))(side)
    for name in ("input_gain", "phase"):
        # The loss is O(1) and these gradients O(1e-6), so rounding limits a difference quotient to ~1e-5
        # relative: a fourth-order central stencil with a step where its truncation error is negligible.
        step = 1e-5
        shifted = lambda delta, name=name: float(loss({"input_side": dict(side, **{name: side[name] + delta})},
                                                      inputs, targets, context))
        numeric = (8 * (shifted(step) - shifted(-step)) - (shifted(2 * step) - shifted(-2 * step))) / (12 * step)
        assert float(grads[name]) == pytest.approx(numeric, rel=1e-5)


def test_physical_backprop_with_a_projected_readout_recovers_a_strongly_mismatched_device():
    """Variable projection + the device's own backward pass: the error of the nominal input side on a device
    30% off its model falls (NARMA10, N = 20, the random-mask ridge readout as the baseline)."""
    u, y = tasks.narma10(1400, seed=0)
    chunks = lambda a: a[:800].reshape(8, 100, 1)
    baseline, trained = (delay_device(20, seed=0, mismatch=0.3) for _ in range(2))
    reservoir = train_on_device(baseline, chunks(u), chunks(y), mode="physical_backprop", names=NAMES,
                                washout=20, alpha=1e-4, n_epochs=1, learning_rate=1e-12, batch_size=8,
                                readout="ridge")
    result = train_on_device(trained, chunks(u), chunks(y), mode="physical_backprop", names=NAMES, washout=20,
                             alpha=1e-4, n_epochs=10, learning_rate=3e-2, batch_size=2, readout="ridge")
    before = device_nmse(baseline, reservoir.params, u[800:], y[800:], washout=50)
    after = device_nmse(trained, result.params, u[800:], y[800:], washout=50)
    assert after < 0.8 * before and set(result.params) == {"input_side", "readout"}


@pytest.mark.parametrize("snr_db, least", [(None, 1 - 1e-9), (30.0, 0.999), (10.0, 0.8)])
def test_physical_backprop_gradient_direction_against_detection_noise(snr_db, least):
    """Cosine similarity of the physical-backprop gradient (mask) on a noisy device with the true gradient
    (the noiseless twin's, zero mismatch), for one 100-step sequence: 1 without noise, > 0.999 at 30 dB (README:
    0.9999 over 5 seeds), still pointing the right way at 10 dB (README: 0.96)."""
    u, y = tasks.narma10(100, seed=0)
    u, y = u[None], y[None]
    device = delay_device(30, seed=1, snr_db=snr_db, reservoir_options=F64)
    side, _ = split_trainable(device.nominal_twin(), NAMES)
    readout = LinearReadout(jnp.asarray(np.random.default_rng(0).normal(0, 0.1, (30, 1))), jnp.zeros(1))
    params = {"input_side": side, "readout": readout}
    true = jax.grad(states_readout_loss(twin_states(device, NAMES), 20))(params, u, y)["input_side"]["mask"]
    physical = jax.grad(states_readout_loss(device_states(device, NAMES, backward="device"), 20))(params, u, y)
    physical = physical["input_side"]["mask"]
    cosine = float(jnp.vdot(physical, true) / jnp.linalg.norm(physical) / jnp.linalg.norm(true))
    assert cosine >= least
