"""BPTT into the input side: gradients against central finite differences, checkpointing and truncation."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from readout.linear import LinearReadout
from reservoir.core import run
from reservoir.delay import MODELS, delay_reservoir
from reservoir.esn import esn
from reservoir.trainable import bptt_loss, run_states, split_trainable, trainable_fields

pytestmark = pytest.mark.x64  # float64 references and tolerances

N_UNITS, N_INPUTS, N_OUTPUTS, N_STEPS = 8, 2, 2, 20


def delay(model, **kwargs):
    return delay_reservoir(N_UNITS, N_INPUTS, model=model, seed=1, bias_mask_scaling=0.3, dtype=jnp.float64,
                           **kwargs)


def echo_state():
    return esn(N_UNITS, N_INPUTS, seed=2, spectral_radius=0.9, density=0.5, bias_scaling=0.2, leak_rate=0.7,
               dtype=jnp.float64)


RESERVOIRS = [pytest.param(partial(delay, model), id=model) for model in MODELS] + [
    pytest.param(echo_state, id="esn")
]


def linear(readout, state):
    return readout(state)


def data(seed=0, batch=()):
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(-1, 1, (*batch, N_STEPS, N_INPUTS))
    targets = rng.standard_normal((*batch, N_STEPS, N_OUTPUTS))
    readout = LinearReadout(rng.standard_normal((N_UNITS, N_OUTPUTS)), rng.standard_normal(N_OUTPUTS))
    return inputs, targets, readout


def finite_difference_gradient(loss, params, eps=1e-6):
    """Central differences of a scalar function of a pytree, one element at a time."""
    flat, unravel = ravel_pytree(params)
    flat_loss = jax.jit(lambda flat: loss(unravel(flat)))
    basis = np.eye(flat.size)
    return unravel(jnp.array([(flat_loss(flat + eps * e) - flat_loss(flat - eps * e)) / (2 * eps) for e in basis]))


@pytest.mark.parametrize("make", RESERVOIRS)
def test_gradient_of_every_trainable_field_matches_finite_differences(make):
    params = make()
    names = trainable_fields(params)
    trainable, combine = split_trainable(params, names)
    inputs, targets, readout = data()
    loss = lambda p: bptt_loss(p["reservoir"], combine, linear, p["readout"], inputs, targets, washout=3)
    both = {"reservoir": trainable, "readout": readout}
    grads = jax.jit(jax.grad(loss))(both)
    numeric = finite_difference_gradient(loss, both)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        fd = dict(jax.tree_util.tree_leaves_with_path(numeric))[path]
        assert np.linalg.norm(fd - g) <= 1e-6 * np.linalg.norm(g), jax.tree_util.keystr(path)
        assert np.linalg.norm(g) != 0, jax.tree_util.keystr(path)  # every trainable field is used


@pytest.mark.parametrize("make", RESERVOIRS)
def test_run_states_matches_run_with_or_without_segments(make):
    params = make()
    inputs, _, _ = data(batch=(3,))
    initial = np.random.default_rng(5).uniform(-0.5, 0.5, (3, N_UNITS))
    expected = run(params, inputs, initial)
    np.testing.assert_allclose(run_states(params, inputs, initial), expected, rtol=0, atol=1e-13)
    segmented = run_states(params, inputs, initial, checkpoint_every=3, truncate_every=6)  # 20 steps padded to 24
    np.testing.assert_allclose(segmented, expected, rtol=0, atol=1e-13)
    np.testing.assert_allclose(run_states(params, inputs[1], initial[1]), run(params, inputs, initial)[1],
                               atol=1e-13)  # one sequence, (T, D)


def segmented_runs(params, options):
    """BPTT gradients for each (checkpoint_every, truncate_every) in ``options``."""
    trainable, combine = split_trainable(params, trainable_fields(params))
    inputs, targets, readout = data(batch=(2,))

    def loss(both, checkpoint_every, truncate_every):
        segments = {"checkpoint_every": checkpoint_every, "truncate_every": truncate_every}
        return bptt_loss(both["reservoir"], combine, linear, both["readout"], inputs, targets, **segments)

    grad = jax.jit(jax.grad(loss), static_argnums=(1, 2))
    return {option: grad({"reservoir": trainable, "readout": readout}, *option) for option in options}


def assert_trees_equal(a, b, atol=1e-12):
    for leaf_a, leaf_b in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(leaf_a, leaf_b, rtol=0, atol=atol)


@pytest.mark.parametrize("make", RESERVOIRS)
def test_checkpointing_and_a_window_longer_than_the_run_leave_gradients_unchanged(make):
    # T = 20 is not a multiple of 7: the checkpointed run is padded to 21 steps and cut back; the only
    # truncation window, 84 steps, holds the whole run
    full, segmented = segmented_runs(make(), [(None, None), (7, 84)]).values()
    assert_trees_equal(segmented, full)


def test_checkpointing_inside_truncation_windows_leaves_the_truncated_gradient_unchanged():
    truncated, both = segmented_runs(delay("sine"), [(None, 10), (5, 10)]).values()
    assert_trees_equal(both, truncated)


def test_window_of_one_step_on_sine_model_is_the_instantaneous_gradient():
    """Window 1: only x(n)'s direct dependence on the mask counts, the delayed states held constant.

    Loss L = Σ_n Σ_i c_i(n) x_i(n), so ∂L/∂M_{i,d} = Σ_n c_i(n) cos(a_i(n)) β u_d(n), with the argument
    a_i(n) = α x_{i−1}(n−1) + β z_i(n) + φ rebuilt here from the states.
    """
    params = delay("sine")
    inputs, _, _ = data()
    weights = np.random.default_rng(3).standard_normal((N_STEPS, N_UNITS))
    trainable, combine = split_trainable(params, ["mask", "feedback_gain"])
    loss = lambda trainable, window: jnp.sum(
        run_states(combine(trainable), inputs, truncate_every=window) * weights)
    grad = jax.jit(jax.grad(loss), static_argnums=1)
    states = np.asarray(run_states(params, inputs))
    previous = np.vstack([np.zeros(N_UNITS), states[:-1]])
    last_before = np.concatenate([[0.0, 0.0], states[:-2, -1]])
    delayed = np.column_stack([last_before, previous[:, :-1]])
    mask, bias, beta, alpha, phi = (np.asarray(getattr(params, name)) for name in trainable_fields(params))
    argument = alpha * delayed + beta * (inputs @ mask.T + bias) + phi
    expected = beta * (weights * np.cos(argument)).T @ inputs
    np.testing.assert_allclose(grad(trainable, 1)["mask"], expected, rtol=1e-12, atol=1e-13)
    assert not np.allclose(grad(trainable, None)["mask"], expected)
    # without feedback nothing crosses a window boundary: window 1 is full BPTT
    trainable = {**trainable, "feedback_gain": jnp.zeros(())}
    np.testing.assert_allclose(grad(trainable, 1)["mask"], grad(trainable, None)["mask"], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("make", RESERVOIRS)
def test_combine_of_split_round_trips_exactly(make):
    params = make()
    trainable, combine = split_trainable(params, trainable_fields(params))
    rebuilt = jax.jit(combine)(trainable)
    assert jax.tree_util.tree_structure(rebuilt) == jax.tree_util.tree_structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(rebuilt), jax.tree_util.tree_leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_input_scaling_multiplies_input_weights():
    params = echo_state()
    trainable, combine = split_trainable(params, "input_scaling")
    assert set(trainable) == {"input_scaling"} and trainable["input_scaling"] == 1.0
    np.testing.assert_array_equal(combine({"input_scaling": 2.5}).W_in, 2.5 * params.W_in)
    trainable, combine = split_trainable(params, ["W_in", "input_scaling"])
    np.testing.assert_array_equal(combine({"W_in": jnp.ones_like(params.W_in), "input_scaling": 3.0}).W_in,
                                  3.0 * np.ones(params.W_in.shape))


@pytest.mark.parametrize(("make", "name"), [(partial(delay, "sine"), "W_in"), (echo_state, "W"),
                                            (echo_state, "leak_rate"), (echo_state, "mask"),
                                            (partial(delay, "sine"), "model")])
def test_names_outside_the_input_side_are_rejected(make, name):
    params = make()
    with pytest.raises(ValueError, match=r"names .*" + str(list(trainable_fields(params))).replace(
            "[", r"\[").replace("]", r"\]") + f".*'{name}'"):
        split_trainable(params, ["bias", name] if hasattr(params, "W") else ["mask", name])


def test_bad_options_are_rejected_with_their_name():
    params = delay("sine")
    inputs, targets, readout = data()
    with pytest.raises(ValueError, match="checkpoint_every"):
        run_states(params, inputs, checkpoint_every=0)
    with pytest.raises(ValueError, match="truncate_every must be a multiple of checkpoint_every = 4, got 6"):
        run_states(params, inputs, checkpoint_every=4, truncate_every=6)
    with pytest.raises(ValueError, match="inputs"):
        run_states(params, inputs[:, :1])
    with pytest.raises(ValueError, match="initial_state must have shape"):
        run_states(params, inputs, np.zeros(N_UNITS + 1))
    trainable, combine = split_trainable(params, ["mask"])
    with pytest.raises(ValueError, match="targets must have"):
        bptt_loss(trainable, combine, linear, readout, inputs, targets[:, :1])
    with pytest.raises(ValueError, match="washout"):
        bptt_loss(trainable, combine, linear, readout, inputs, targets, washout=N_STEPS)
    with pytest.raises(ValueError, match="loss"):
        bptt_loss(trainable, combine, linear, readout, inputs, targets, loss="mae")
    with pytest.raises(ValueError, match="output feedback"):
        run_states(esn(N_UNITS, N_INPUTS, seed=0, n_feedback=1), inputs)


def test_custom_loss_and_jit_of_the_joint_loss():
    params = delay("sine")
    inputs, targets, readout = data(batch=(2,))
    trainable, combine = split_trainable(params, ["mask", "phase"])
    loss_fn = jax.jit(lambda p, u, y: bptt_loss(p["reservoir"], combine, linear, p["readout"], u, y, washout=2,
                                                loss=lambda pred, y: jnp.mean(jnp.abs(pred - y))))
    value, grads = jax.value_and_grad(loss_fn)({"reservoir": trainable, "readout": readout}, inputs, targets)
    states = run(params, inputs)
    expected = np.mean(np.abs(states[:, 2:] @ readout.W + readout.b - targets[:, 2:]))
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    assert set(grads["reservoir"]) == {"mask", "phase"}
