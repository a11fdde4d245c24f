"""The simulated opto-electronic ring (hardware_sim.loop): forward against a node-by-node NumPy reference with
every piece on, the physical backward pass against jax.grad, profiles, truth and bad input."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from hardware_sim import Device, Nonideality, delay_device, wrap_device
from hardware_sim import loop as physics
from hardware_sim.device import PROFILE_SOURCES, PROFILES
from hardware_sim.models import DistortedSine, with_harmonic
from reservoir import DivergenceError
from reservoir.delay import delay_reservoir
from reservoir.trainable import split_trainable

pytestmark = pytest.mark.x64  # float64 references and tolerances
NAMES = ("mask", "bias_mask", "input_gain", "feedback_gain", "phase")


def nominal(model, n_units=7, n_inputs=2, seed=3):
    return delay_reservoir(n_units, n_inputs, model=model, seed=seed, dtype=jnp.float64, bias_mask_scaling=0.4,
                           phase=0.3 if model == "sine" else math.pi / 4)


def numpy_ring(params, physics_, lowpass_time, inputs, noise, walk, epsilon):
    """The loop of hardware_sim.loop's docstring, one virtual node after the other, in plain NumPy."""
    model, n = params.model, params.n_units
    mask, bias_mask = np.asarray(params.mask), np.asarray(params.bias_mask)
    beta, alpha, phi = float(params.input_gain), float(params.feedback_gain), float(params.phase)
    h = float(params.harmonic) if isinstance(params, DistortedSine) else 0.0
    v = physics_.visibility
    g_pre, g_post = (1.0, alpha) if model == "sine" else (alpha, 1.0)
    delay = n + (1 if model == "sine" else 0)

    def light(a):
        if model == "sine":
            return 1 + v * np.sin(a) + h * np.sin(2 * a)
        return (1 - v * np.cos(2 * a)) / 2

    dc = 0.0 if physics_.square_law else (1.0 if model == "sine" else 0.5)
    if lowpass_time is not None:
        theta = 1 / lowpass_time
        rho0 = np.exp(-theta)
        rho1, rho2 = (1 - rho0) / theta - rho0, 1 - (1 - rho0) / theta
    c = None if physics_.highpass_time is None else np.exp(-1 / physics_.highpass_time)
    full = None if physics_.drive_range is None else physics_.drive_range * np.pi
    steps = len(inputs) * n
    tap = np.zeros(steps)
    a_prev = r_prev = 0.0
    s_prev = g_pre * light(phi) if physics_.square_law else 0.0
    for p in range(steps):
        period, node = divmod(p, n)
        loop_at = lambda q: tap[q] if q >= 0 else 0.0
        fed = (1 - epsilon) * loop_at(p - delay) + epsilon * loop_at(p - delay - 1)
        drive = beta * (mask[node] @ inputs[period] + bias_mask[node])
        if full is not None:
            drive = min(max(drive, -full), full)
            if physics_.drive_bits is not None:
                step = 2 * full / (2**physics_.drive_bits - 1)
                drive = -full + step * np.round((drive + full) / step)
        a = g_post * fed + drive + phi + walk[period]
        power = light(a)
        sigma = np.sqrt(physics_.noise_floor**2 + (physics_.rin * max(power, 0)) ** 2
                        + physics_.shot**2 * max(power, 0))
        r = g_pre * (power - dc + sigma * noise[period, node])
        ar = r if lowpass_time is None else rho0 * a_prev + rho1 * r_prev + rho2 * r
        s = 0.0 if c is None else c * s_prev + (1 - c) * ar
        tap[p] = ar - s
        a_prev, r_prev, s_prev = ar, r, s
    return tap.reshape(len(inputs), n)


@pytest.mark.parametrize("model", ["sine", "sin2_lowpass"])
def test_forward_matches_a_node_by_node_numpy_loop_with_every_piece_on(model):
    params = nominal(model)
    if model == "sine":
        params = with_harmonic(params, jnp.asarray(0.05))
    lowpass = 0.7 if model == "sine" else 1.3
    loop = physics.LoopPhysics(square_law=True, visibility=0.9, lowpass_time=lowpass, highpass_time=40.0,
                               noise_floor=0.02, rin=0.01, shot=0.01, drive_range=0.3, drive_bits=6)
    rng = np.random.default_rng(0)
    inputs, noise = rng.uniform(-1, 1, (25, 2)), rng.normal(size=(25, 7))
    walk, epsilon = np.cumsum(rng.normal(0, 0.01, 25)), 0.35
    matrix = jnp.asarray(physics.filter_matrix(7, lowpass, 40.0))
    got = physics.forward(params, loop, matrix, jnp.asarray(inputs), jnp.asarray(noise), jnp.asarray(walk),
                          jnp.asarray(epsilon), jnp.zeros(7))
    expected = numpy_ring(params, loop, lowpass, inputs, noise, walk, epsilon)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def exact_gradient(device, params, inputs, cotangent):
    return device.exact_gradient(inputs, params, cotangent)


def relative_errors(got, expected):
    return {k: float(np.linalg.norm(np.asarray(got[k]) - np.asarray(expected[k]))
                     / np.linalg.norm(np.asarray(expected[k]))) for k in expected}


@pytest.mark.parametrize("model", ["sine", "sin2_lowpass"])
@pytest.mark.parametrize("loop_options", [{}, {"square_law": True, "lowpass_time": 0.8, "highpass_time": 30.0}],
                         ids=["ideal", "bandpass_square_law"])
def test_physical_backward_pass_is_exact_bptt_without_noise_or_drift(model, loop_options):
    """The reversed-time ring realises the transpose of every causal linear piece (delay, low-pass, AC coupling):
    with no noise, no drift and no unknown delay, the physical gradient is jax.grad through the true loop."""
    device = wrap_device(nominal(model), seed=1, **loop_options)
    rng = np.random.default_rng(2)
    inputs, cotangent = rng.uniform(-1, 1, (3, 30, 2)), rng.normal(size=(3, 30, 7))
    side = {k: np.asarray(v) for k, v in split_trainable(device.nominal_twin(), NAMES)[0].items()}
    states = device.measure(inputs, side)
    got = device.adjoint(inputs, side, cotangent, states=states)
    errors = relative_errors(got, exact_gradient(device, side, inputs, cotangent))
    if model == "sin2_lowpass" and loop_options:
        # The sin² loop's gain sits before the RF chain; its gradient is formed from the tap as (1/α) Σ λ_F F,
        # which also counts the AC coupling's initial (idle) charge decaying through the measurement: an
        # error the hardware scheme carries, large here only because T_hp is a seventh of the measurement.
        assert 1e-3 < errors.pop("feedback_gain") < 0.5
    assert max(errors.values()) <= 1e-9, errors
    # forward, two derivative passes (± bias), two backward passes (± error)
    assert device.n_calls == 5 and device.n_samples == 5 * 3 * 30


def cosine(a, b):
    a = np.concatenate([np.ravel(a[k]) for k in NAMES])
    b = np.concatenate([np.ravel(b[k]) for k in NAMES])
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_physical_gradient_degrades_with_in_loop_noise():
    rng = np.random.default_rng(4)
    inputs, cotangent = rng.uniform(-1, 1, (4, 60, 2)), rng.normal(size=(4, 60, 7))
    cosines = []
    for floor in (0.0, 1e-3, 0.3):
        device = wrap_device(nominal("sine"), seed=2, noise_floor=floor)
        side = {k: np.asarray(v) for k, v in split_trainable(device.nominal_twin(), NAMES)[0].items()}
        got = device.adjoint(inputs, side, cotangent, states=device.measure(inputs, side))
        cosines.append(cosine(got, exact_gradient(device, side, inputs, cotangent)))
    assert cosines[0] > 1 - 1e-12
    assert cosines[2] < cosines[1] < 1, cosines


def test_unknown_delay_offset_biases_the_physical_gradient():
    """The experimenter's digital steps assume the nominal delay; a fractional offset they cannot see shows."""
    rng = np.random.default_rng(5)
    inputs, cotangent = rng.uniform(-1, 1, (2, 40, 2)), rng.normal(size=(2, 40, 7))
    device = wrap_device(nominal("sine"), seed=3, delay_offset=0.4)
    side = {k: np.asarray(v) for k, v in split_trainable(device.nominal_twin(), NAMES)[0].items()}
    got = device.adjoint(inputs, side, cotangent, states=device.measure(inputs, side))
    errors = relative_errors(got, exact_gradient(device, side, inputs, cotangent))
    assert max(errors.values()) > 1e-3


def test_truth_is_pure_and_shows_the_hidden_parameters():
    device = delay_device(7, seed=4, profile="benchtop", reservoir_options={"dtype": jnp.float64})
    before = (device.n_calls, device.n_samples)
    truth = device.truth()
    assert (device.n_calls, device.n_samples) == before
    assert float(truth.params.feedback_gain) != float(device.nominal_twin().feedback_gain)
    assert truth.loop.square_law and 0 <= truth.delay_offset < 0.2
    assert device.truth() == truth  # nothing advanced


def test_benchtop_measurements_are_reproducible_and_fresh_per_call():
    make = lambda: delay_device(10, seed=6, profile="benchtop")
    u = np.random.default_rng(0).uniform(-1, 1, (40, 1))
    a, b = make(), make()
    first = np.asarray(a.measure(u))
    np.testing.assert_array_equal(first, np.asarray(b.measure(u)))
    assert not np.array_equal(first, np.asarray(a.measure(u)))  # new noise, drifted bias and delay


def test_profiles_ideal_is_nominal_and_overrides_win():
    u = np.random.default_rng(1).uniform(-1, 1, (30, 1))
    ideal = delay_device(9, seed=1, profile="ideal", reservoir_options={"dtype": jnp.float64})
    from reservoir import run
    np.testing.assert_allclose(ideal.measure(u), run(ideal.nominal_twin(), u), rtol=1e-12, atol=1e-14)
    bench = delay_device(9, seed=1, profile="benchtop", visibility=0.5, snr_db=None)
    assert bench.truth().loop.visibility == 0.5
    every_value = {k for options in PROFILES.values() for k in options}
    assert every_value <= set(PROFILE_SOURCES)  # every preset value carries its source or says "assumption"


def test_noise_floor_for_snr_closed_form():
    assert physics.noise_floor_for_snr(20.0, 0.5) == pytest.approx(0.05)
    assert physics.noise_floor_for_snr(0.0, 0.3) == pytest.approx(0.3)


@pytest.mark.parametrize(("options", "message"), [
    ({"noise_floor": -0.1}, "noise_floor must be"),
    ({"shot": 1e308}, "shot must be"),
    ({"visibility": 0.0}, "visibility must be"),
    ({"delay_offset": 1.0}, "delay_offset must be"),
    ({"bias_control": 1.5}, "bias_control must be"),
    ({"lowpass_time": 0.0}, "lowpass_time must be"),
    ({"drive_bits": 0, "drive_range": 0.5}, "drive_bits must be"),
    ({"drive_bits": 8}, "needs a drive_range"),
    ({"square_law": 1}, "square_law must be True or False"),
    ({"snr_db": -4000}, "snr_db must be"),
    ({"snr_db": 4000}, "snr_db must be"),
    ({"multiplicative_noise": 1e308}, "std must be"),
    ({"gain_spread": 1e308}, "gain_std must be"),
    ({"mismatch": 1e308}, "mismatch must be|relative"),
    ({"harmonic": 5.0}, "strength must be"),
    ({"warp": 1.0}, "unknown option"),
])
def test_absurd_device_options_are_refused_with_the_argument_named(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        delay_device(5, seed=0, **options)


def test_unknown_profile_and_loop_on_other_models_refused():
    with pytest.raises(ValueError, match="profile must be one of"):
        delay_device(5, seed=0, profile="lab")
    with pytest.raises(ValueError, match="in-loop physics"):
        delay_device(5, seed=0, model="mackey_glass", noise_floor=0.1)


def test_a_non_finite_measurement_raises_naming_it():
    broken = Nonideality(lambda nominal: (), lambda states, state, key: (states.at[0, 3, 1].set(jnp.nan), state),
                         "output")
    device = Device(nominal("sine"), [broken], seed=0)
    with pytest.raises(DivergenceError, match="measurement .*time step 3 of sequence 0"):
        device.measure(np.zeros((2, 5, 2)))
