"""The reservoir protocol: pytree dataclasses, models that carry their own metadata, hardware knowledge by
single dispatch, and a new reservoir family added without editing any other file."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hardware_sim import delay_device, wrap_device
from hardware_sim.models import DistortedSine, HardwareFields, hardware_fields, with_harmonic
from hardware_sim.remote import decode_twin, encode_twin
from reservoir import (
    DelayParams,
    MackeyGlassDelay,
    Reservoir,
    Sin2LowpassDelay,
    SineDelay,
    delay_reservoir,
    esn,
    pytree_dataclass,
    run,
    static_field,
    trainable_fields,
)
from reservoir.delay import MODELS
from reservoir.trainable import run_states, split_trainable

pytestmark = pytest.mark.x64


# ---------------------------------------------------------------- the pytree-dataclass helper


@pytree_dataclass
class _Base:
    weight: jax.Array
    power: float = static_field(default=2.0)


@pytree_dataclass
class _Child(_Base):
    offset: jax.Array = None


def test_static_fields_are_tree_structure_and_the_rest_are_leaves_in_declaration_order():
    child = _Child(jnp.ones(2), 3.0, jnp.zeros(1))
    leaves, treedef = jax.tree_util.tree_flatten(child)
    assert [leaf.shape for leaf in leaves] == [(2,), (1,)]  # weight, then the subclass's offset; power is static
    assert treedef != jax.tree_util.tree_structure(_Child(jnp.ones(2), 2.0, jnp.zeros(1)))  # power is structure
    rebuilt = jax.tree_util.tree_unflatten(treedef, [leaf + 1 for leaf in leaves])
    assert type(rebuilt) is _Child and rebuilt.power == 3.0
    np.testing.assert_array_equal(rebuilt.offset, [1.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        child.weight = jnp.zeros(2)
    gradient = jax.grad(lambda c: jnp.sum(c.weight ** c.power + c.offset))(child)
    np.testing.assert_allclose(gradient.weight, [3.0, 3.0])  # d/dw w³ at w = 1


# ---------------------------------------------------------------- one class per delay node model


FIELDS = {  # (leaves, static fields) per node model: each holds what its equations use, nothing else
    "sine": (["mask", "bias_mask", "input_gain", "feedback_gain", "phase"], []),
    "sin2_lowpass": (["mask", "bias_mask", "input_gain", "feedback_gain", "phase"], ["node_separation"]),
    "mackey_glass": (["mask", "bias_mask", "input_gain", "feedback_gain"], ["node_separation", "exponent"]),
}
CLASSES = {"sine": SineDelay, "sin2_lowpass": Sin2LowpassDelay, "mackey_glass": MackeyGlassDelay}


@pytest.mark.parametrize("model", MODELS)
def test_delay_reservoir_builds_the_node_models_class_with_only_its_fields(model):
    params = delay_reservoir(6, 2, model=model, seed=0)
    assert type(params) is CLASSES[model] and isinstance(params, DelayParams) and isinstance(params, Reservoir)
    assert params.model == model
    leaves, static = FIELDS[model]
    assert [field.name for field in dataclasses.fields(params)] == leaves + static
    assert len(jax.tree_util.tree_leaves(params)) == len(leaves)
    assert trainable_fields(params) == tuple(leaves)
    assert "harmonic" not in leaves  # a simulated device's distortion is not part of the nominal model


def test_the_base_is_not_a_node_model():
    base = DelayParams(jnp.ones((3, 1)), jnp.zeros(3), jnp.ones(()), jnp.ones(()))
    with pytest.raises(NotImplementedError, match="not a node model"):
        run(base, np.zeros((4, 1)))


# ---------------------------------------------------------------- hardware knowledge by single dispatch


def test_hardware_fields_of_each_model():
    delay = HardwareFields((("feedback_gain", "input_gain"), ("phase",)), (("input_gain",), ("phase",)),
                           ("mask", "bias_mask"), "nodes")
    assert hardware_fields(delay_reservoir(4, seed=0)) == delay
    assert hardware_fields(delay_reservoir(4, seed=0, model="sin2_lowpass")) == delay
    assert hardware_fields(delay_reservoir(4, seed=0, model="mackey_glass")) == HardwareFields(
        (("feedback_gain", "input_gain"), ()), (("input_gain",), ()), ("mask", "bias_mask"), "nodes")
    assert hardware_fields(esn(4, seed=0)) == HardwareFields((("W", "W_in"), ("bias",)), (("W_in",), ("bias",)),
                                                             ("W_in", "bias"), "time")
    with pytest.raises(TypeError, match="params must be one of .*DelayParams.*ESNParams.*got str"):
        hardware_fields("sine")


def test_the_harmonic_lives_on_the_devices_side():
    device = delay_device(5, seed=1, harmonic=0.1)
    assert type(device.nominal_twin()) is SineDelay
    true = device.truth().params
    assert type(true) is DistortedSine and float(true.harmonic) == pytest.approx(0.1)
    # a distorted twin with h = 0 runs the nominal model exactly
    u = np.random.default_rng(0).uniform(-1, 1, (30, 1))
    np.testing.assert_array_equal(run(with_harmonic(device.nominal_twin(), 0.0), u), run(device.nominal_twin(), u))
    with pytest.raises(TypeError, match="params must be a SineDelay"):
        with_harmonic(delay_reservoir(5, seed=0, model="mackey_glass"), 0.1)


@pytest.mark.parametrize("make", [lambda: delay_reservoir(4, seed=0), lambda: esn(4, seed=0),
                                  lambda: delay_reservoir(4, seed=0, model="mackey_glass", exponent=2.0)])
def test_a_twin_survives_the_wire_as_its_own_class(make):
    twin = make()
    rebuilt = decode_twin(*encode_twin(twin))
    assert jax.tree_util.tree_structure(rebuilt) == jax.tree_util.tree_structure(twin)
    for a, b in zip(jax.tree_util.tree_leaves(rebuilt), jax.tree_util.tree_leaves(twin), strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- a new family, declared in one place


@pytree_dataclass
class LeakyRing:
    """A linear ring of leaky units, x(t) = λ roll(x(t−1)) + W_in u(t): a reservoir family this test adds."""

    TRAINABLE: ClassVar[tuple[str, ...]] = ("W_in", "gain")
    SCALES: ClassVar[dict[str, str]] = {"gain": "W_in"}  # a trained scalar gain on W_in

    W_in: jax.Array
    leak: float = static_field(default=0.5)

    n_units = property(lambda self: self.W_in.shape[0])
    n_inputs = property(lambda self: self.W_in.shape[1])
    n_feedback = 0
    dtype = property(lambda self: self.W_in.dtype)

    def scan_step(self, initial_state):
        def step(state, u):
            state = self.leak * jnp.roll(state, 1) + self.W_in @ u
            return state, state

        return step, initial_state

    def sequence(self, inputs, initial_state, teacher=None):
        return jax.lax.scan(*self.scan_step(initial_state), inputs)[1]


@hardware_fields.register
def _leaky_ring(params: LeakyRing) -> HardwareFields:
    return HardwareFields(mismatch=(("W_in",), ()), drift=((), ()), dac=("W_in",), lowpass_along="time")


def _numpy_ring(W_in, leak, inputs):
    state, states = np.zeros(W_in.shape[0]), []
    for u in inputs:
        state = leak * np.roll(state, 1) + W_in @ u
        states.append(state)
    return np.array(states)


def test_a_new_reservoir_family_runs_trains_and_gets_a_device_with_no_edit_elsewhere():
    rng = np.random.default_rng(0)
    ring = LeakyRing(jnp.asarray(rng.uniform(-1, 1, (5, 2))))
    inputs = rng.uniform(-1, 1, (3, 12, 2))
    expected = np.stack([_numpy_ring(np.asarray(ring.W_in), 0.5, u) for u in inputs])
    np.testing.assert_allclose(run(ring, inputs), expected, rtol=1e-13)  # batched in place
    np.testing.assert_allclose(run_states(ring, inputs, checkpoint_every=5), expected, rtol=1e-13)

    trainable, combine = split_trainable(ring, ["W_in"])
    weights = rng.standard_normal(expected.shape)
    gradient = jax.grad(lambda t: jnp.sum(run_states(combine(t), inputs) * weights))(trainable)["W_in"]
    # linear in W_in: d/dW_in[i, d] Σ weights · states is the same sum over a unit perturbation
    numeric = np.array([[np.sum(weights * np.stack([_numpy_ring(np.eye(5)[:, [i]] @ np.eye(2)[[d]], 0.5, u)
                                                    for u in inputs])) for d in range(2)] for i in range(5)])
    np.testing.assert_allclose(gradient, numeric, rtol=1e-12)
    with pytest.raises(ValueError, match=r"one or more of \['W_in', 'gain'\]; got 'leak'"):
        split_trainable(ring, ["leak"])
    gain, combine = split_trainable(ring, "gain")
    assert float(gain["gain"]) == 1.0
    np.testing.assert_array_equal(combine({"gain": 2.5}).W_in, 2.5 * np.asarray(ring.W_in))

    device = wrap_device(ring, seed=0, mismatch=0.1)
    true = device.truth().params
    assert type(true) is LeakyRing and true.leak == 0.5 and not np.allclose(true.W_in, ring.W_in)
    np.testing.assert_allclose(device.measure(inputs[0]), _numpy_ring(np.asarray(true.W_in), 0.5, inputs[0]),
                               rtol=1e-12)
    assert device.trainable_fields == ("W_in", "gain")
