"""Delay reservoirs against plain NumPy loops over periods and virtual nodes, written from the equations."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reservoir.delay
from reservoir.core import run
from reservoir.delay import MODELS, delay_from_arrays, delay_reservoir
from reservoir.trainable import trainable_fields

pytestmark = pytest.mark.x64  # float64 references and tolerances

N_STEPS, N_INPUTS = 25, 2


def sine_loop(mask, bias, input_gain, feedback_gain, phase, inputs, x_init):
    """Paquot 2012: x_i(n) = sin(α x_{i−1}(n−1) + β z_i(n) + φ); node 0 fed by x_{N−1}(n−2), zero at n = 0."""
    n_units = len(x_init)
    x_prev, x_last_before = np.array(x_init, float), 0.0
    states = []
    for u in inputs:
        x = np.empty(n_units)
        for i in range(n_units):
            delayed = x_prev[i - 1] if i > 0 else x_last_before
            z = bias[i] + mask[i] @ u
            x[i] = math.sin(feedback_gain * delayed + input_gain * z + phase)
        x_last_before, x_prev = x_prev[-1], x
        states.append(x)
    return np.array(states)


def sin2_loop(mask, bias, input_gain, feedback_gain, phase, inputs, a_init, time_constant, step_duration):
    """Hermans 2015 with its ρ1, ρ2 divided by P_m: one mask step at a time, i counted across periods."""
    n_units = len(a_init)
    rho0 = math.exp(-step_duration / time_constant)
    kappa = 1 - rho0
    rho1 = time_constant * kappa - step_duration * rho0
    rho2 = step_duration - time_constant * kappa
    history = list(a_init)  # history[j] = ā_{j − N}
    gamma_prev = 0.0
    for u in inputs:
        for k in range(n_units):
            i = len(history) - n_units  # the mask step being computed
            z = bias[k] + mask[k] @ u
            gamma = feedback_gain * (math.sin(history[i] + input_gain * z + phase) ** 2 - 0.5)
            history.append(rho0 * history[-1] + (rho1 * gamma_prev + rho2 * gamma) / step_duration)
            gamma_prev = gamma
    return np.array(history[n_units:]).reshape(len(inputs), n_units)


def mackey_glass_loop(mask, bias, input_gain, feedback_gain, inputs, x_init, theta, exponent):
    """Appeltant 2011, node by node: X_i(n) = e^{−θ} X_{i−1}(n) + (1 − e^{−θ}) η s / (1 + |s|^p)."""
    n_units = len(x_init)
    history = list(x_init)
    for u in inputs:
        for k in range(n_units):
            s = history[len(history) - n_units] + input_gain * (bias[k] + mask[k] @ u)
            drive = feedback_gain * s / (1 + abs(s) ** exponent)
            history.append(math.exp(-theta) * history[-1] + (1 - math.exp(-theta)) * drive)
    return np.array(history[n_units:]).reshape(len(inputs), n_units)


def make_case(model, n_units, seed=0):
    """float64 params with a bias mask, non-default constants, inputs and a nonzero initial state."""
    rng = np.random.default_rng(seed)
    mask = rng.uniform(-1, 1, (n_units, N_INPUTS))
    bias = rng.uniform(-0.5, 0.5, n_units)
    inputs = rng.uniform(0, 0.5, (N_STEPS, N_INPUTS))
    x_init = rng.uniform(-0.3, 0.3, n_units)
    if model == "sine":
        constants = dict(input_gain=0.7, feedback_gain=0.9, phase=0.2)
    elif model == "sin2_lowpass":
        theta = 20.82 / (n_units * 0.241)
        constants = dict(input_gain=0.8, feedback_gain=1.1, phase=0.6, node_separation=theta)
    else:
        constants = dict(input_gain=0.5, feedback_gain=0.9, node_separation=0.3, exponent=1.0)
    params = delay_from_arrays(mask, bias, model=model, dtype=jnp.float64, **constants)
    return params, mask, bias, inputs, x_init, constants


def reference(model, mask, bias, inputs, x_init, constants):
    c = constants
    if model == "sine":
        return sine_loop(mask, bias, c["input_gain"], c["feedback_gain"], c["phase"], inputs, x_init)
    if model == "sin2_lowpass":
        step_duration = 20.82 / len(x_init)  # µs; the reference uses T and P_m separately
        return sin2_loop(mask, bias, c["input_gain"], c["feedback_gain"], c["phase"], inputs, x_init,
                         0.241, step_duration)
    return mackey_glass_loop(mask, bias, c["input_gain"], c["feedback_gain"], inputs, x_init,
                             c["node_separation"], c["exponent"])


@pytest.mark.parametrize("n_units", [1, 7, 16])
@pytest.mark.parametrize("model", MODELS)
def test_sequence_matches_plain_loop(model, n_units):
    params, mask, bias, inputs, x_init, constants = make_case(model, n_units)
    states = params.sequence(jnp.asarray(inputs), jnp.asarray(x_init), None)
    assert states.shape == (N_STEPS, n_units) and states.dtype == jnp.float64
    expected = reference(model, mask, bias, inputs, x_init, constants)
    np.testing.assert_allclose(states, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [1, 5, 17, 50])
@pytest.mark.parametrize("theta", [0.05, 90.0])
def test_linear_chain_matches_recursion(n, theta):
    decay = math.exp(-theta)
    rng = np.random.default_rng(n)
    forcing, before, start, w_previous, w_current = rng.normal(size=n), *rng.normal(size=4)
    x, expected, previous = start, [], before
    for f in forcing:
        x = decay * x + w_previous * previous + w_current * f
        expected.append(x)
        previous = f
    solve = jax.jit(reservoir.delay._linear_chain(decay, n, w_previous, w_current))
    np.testing.assert_allclose(solve(jnp.asarray(forcing), before, start), expected, rtol=0, atol=1e-12)


def test_mackey_glass_non_integer_exponent_matches_loop():
    params, mask, bias, inputs, x_init, constants = make_case("mackey_glass", 5)
    params = dataclasses.replace(params, exponent=2.5)
    constants["exponent"] = 2.5
    expected = reference("mackey_glass", mask, bias, inputs, x_init, constants)
    np.testing.assert_allclose(run(params, inputs, x_init), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("model", MODELS)
def test_run_batched_equals_per_sequence(model):
    params, *_ = make_case(model, 5)
    rng = np.random.default_rng(1)
    inputs = rng.uniform(0, 0.5, (3, N_STEPS, N_INPUTS))
    initial = rng.uniform(-0.3, 0.3, (3, 5))
    batched = run(params, inputs, initial)
    assert batched.shape == (3, N_STEPS, 5)
    for b in range(3):
        np.testing.assert_allclose(batched[b], run(params, inputs[b], initial[b]), rtol=0, atol=1e-12)
    # run on concrete values takes the forward-only in-place path, traced the vmap path: the same states
    np.testing.assert_allclose(jax.jit(run)(params, inputs, initial), batched, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_gradients_match_central_differences(model):
    params, *_, inputs, x_init, _ = make_case(model, 5, seed=2)
    readout = np.random.default_rng(3).normal(size=(5, 2))

    def loss(p):
        return jnp.sum((run(p, inputs, x_init) @ readout) ** 2)

    grads = jax.grad(loss)(params)
    step = 1e-6
    # the model's own trainable fields: every one enters it (Mackey–Glass has no phase to train)
    assert ("phase" in trainable_fields(params)) == (model != "mackey_glass")
    for name in trainable_fields(params):
        value = np.asarray(getattr(params, name))
        numeric = np.zeros(value.shape)
        for index in np.ndindex(value.shape):
            shifted = []
            for sign in (1, -1):
                nudged = value.copy()
                nudged[index] += sign * step
                shifted.append(float(loss(dataclasses.replace(params, **{name: jnp.asarray(nudged)}))))
            numeric[index] = (shifted[0] - shifted[1]) / (2 * step)
        analytic = np.asarray(getattr(grads, name))
        error = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
        assert error <= 1e-6, f"{model}: d loss / d {name} relative error {error:.2e}"


@pytest.mark.parametrize("model", MODELS)
def test_initial_state_is_the_previous_period(model):
    params, *_, inputs, x_init, _ = make_case(model, 5)
    from_rest = run(params, inputs)
    from_state = run(params, inputs, x_init)
    assert not np.allclose(from_rest[0], from_state[0])
    np.testing.assert_allclose(from_state, params.sequence(jnp.asarray(inputs), jnp.asarray(x_init), None))
    np.testing.assert_allclose(from_rest, params.sequence(jnp.asarray(inputs), jnp.zeros(5), None))


def test_mackey_glass_continues_exactly_from_its_last_state():
    params, *_, inputs, x_init, _ = make_case("mackey_glass", 5)
    whole = run(params, inputs, x_init)
    first = run(params, inputs[:10], x_init)
    np.testing.assert_allclose(run(params, inputs[10:], first[-1]), whole[10:], rtol=0, atol=1e-12)


def test_sin2_rests_at_zero_for_zero_input_at_default_phase():
    params = delay_reservoir(9, model="sin2_lowpass", seed=0, dtype=jnp.float64)
    np.testing.assert_allclose(run(params, np.zeros((5, 1))), 0, atol=1e-15)  # sin²(π/4) − 1/2 = 0


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_same_params_different_seed_different(model):
    a = delay_reservoir(12, 2, model=model, seed=3, bias_mask_scaling=0.5)
    b = delay_reservoir(12, 2, model=model, seed=3, bias_mask_scaling=0.5)
    c = delay_reservoir(12, 2, model=model, seed=4, bias_mask_scaling=0.5)
    for leaf_a, leaf_b in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(leaf_a, leaf_b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    assert not np.array_equal(a.mask, c.mask) and not np.array_equal(a.bias_mask, c.bias_mask)


def test_mask_kinds_and_defaults():
    binary = delay_reservoir(200, seed=0, mask="binary")
    uniform = delay_reservoir(200, seed=0)
    assert set(np.unique(np.asarray(binary.mask))) == {-1.0, 1.0}
    assert np.all(np.abs(np.asarray(uniform.mask)) <= 1) and len(np.unique(np.asarray(uniform.mask))) == 200
    assert np.all(np.asarray(uniform.bias_mask) == 0)
    assert uniform.dtype == jnp.float32 and run(uniform, np.zeros((3, 1))).dtype == jnp.float32
    sin2 = delay_reservoir(400, model="sin2_lowpass", seed=0)
    assert sin2.node_separation == pytest.approx(20.82 / (400 * 0.241))
    assert float(sin2.phase) == pytest.approx(math.pi / 4)
    mg = delay_reservoir(400, model="mackey_glass", seed=0)
    assert (mg.node_separation, mg.exponent) == (0.2, 1.0)
    assert (float(mg.feedback_gain), float(mg.input_gain)) == pytest.approx((0.4, 0.05))


def test_float32_params_stay_float32_with_x64_enabled():
    for model in MODELS:
        params = delay_reservoir(10, model=model, seed=0)
        assert run(params, np.ones((4, 1))).dtype == jnp.float32


BAD_ARGUMENTS = [
    (dict(n_units=0), ValueError, "n_units"),
    (dict(n_units=2.5), TypeError, "n_units"),
    (dict(n_inputs=0), ValueError, "n_inputs"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(model="ikeda"), ValueError, "model"),
    (dict(mask="gaussian"), ValueError, "mask"),
    (dict(input_gain=-0.1), ValueError, "input_gain"),
    (dict(feedback_gain=float("nan")), ValueError, "feedback_gain"),
    (dict(phase=float("inf")), ValueError, "phase"),
    (dict(phase="zero"), TypeError, "phase"),
    (dict(bias_mask_scaling=-1.0), ValueError, "bias_mask_scaling"),
    (dict(node_separation=0.2), ValueError, "node_separation"),  # not used by "sine"
    (dict(model="sin2_lowpass", node_separation=-0.241), ValueError, "node_separation"),
    (dict(model="sin2_lowpass", exponent=2.0), ValueError, "exponent"),
    (dict(model="mackey_glass", exponent=0.5), ValueError, "exponent"),
    (dict(model="mackey_glass", phase=0.3), ValueError, "phase"),
    (dict(dtype=jnp.int32), ValueError, "dtype"),
]


@pytest.mark.parametrize(("kwargs", "error", "name"), BAD_ARGUMENTS)
def test_builder_rejects_bad_arguments(kwargs, error, name):
    arguments = dict(n_units=10, seed=0) | kwargs
    with pytest.raises(error, match=name):
        delay_reservoir(**arguments)


def test_from_arrays_rejects_bad_arrays():
    with pytest.raises(ValueError, match="mask"):
        delay_from_arrays(np.ones(5), model="sine")
    with pytest.raises(ValueError, match="mask"):
        delay_from_arrays(np.full((5, 1), np.nan), model="sine")
    with pytest.raises(ValueError, match="bias_mask"):
        delay_from_arrays(np.ones((5, 1)), np.ones(4), model="sine")
    with pytest.raises(ValueError, match="model"):
        delay_from_arrays(np.ones((5, 1)), model="Sine")
    params = delay_reservoir(5, 2, seed=0)
    with pytest.raises(ValueError, match="inputs"):
        run(params, np.ones((4, 3)))
    with pytest.raises(ValueError, match="initial_state"):
        run(params, np.ones((4, 2)), np.zeros(4))


@settings(max_examples=30, deadline=None)
@given(n_units=st.integers(max_value=0))
def test_any_non_positive_n_units_is_rejected(n_units):
    with pytest.raises(ValueError, match="n_units"):
        delay_reservoir(n_units, seed=0)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["input_gain", "feedback_gain"]),
    value=st.one_of(st.floats(max_value=0, exclude_max=True), st.just(math.inf), st.just(math.nan)),
    model=st.sampled_from(MODELS),
)
def test_any_negative_or_non_finite_gain_is_rejected(name, value, model):
    with pytest.raises(ValueError, match=name):
        delay_reservoir(4, model=model, seed=0, **{name: value})
