"""Simulated devices: every non-ideality against an independent NumPy reference, the meter, validation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware_sim import nonidealities as nl
from hardware_sim.device import Device, delay_device, wrap_device
from hardware_sim.models import with_harmonic
from reservoir.core import run
from reservoir.delay import MODELS, delay_reservoir
from reservoir.esn import esn

pytestmark = pytest.mark.x64  # float64 references and tolerances

N_UNITS, N_INPUTS = 12, 2
F64 = {"dtype": jnp.float64}


def delay_nominal(model="sine"):
    return delay_reservoir(N_UNITS, N_INPUTS, model=model, seed=3, bias_mask_scaling=0.3, dtype=jnp.float64)


def esn_nominal():
    return esn(N_UNITS, N_INPUTS, seed=4, density=0.5, bias_scaling=0.2, leak_rate=0.7, dtype=jnp.float64)


def inputs(n_steps=60, batch=None, seed=0, scale=0.8):
    shape = (n_steps, N_INPUTS) if batch is None else (batch, n_steps, N_INPUTS)
    return np.random.default_rng(seed).uniform(-scale, scale, shape)


def numpy_quantise(x, bits, low, high):
    """Nearest of the 2^bits evenly spaced levels on [low, high] (clipping is implied)."""
    levels = np.linspace(low, high, 2**bits)
    x = np.asarray(x)
    return levels[np.argmin(np.abs(x[..., None] - levels), axis=-1)]


NOMINALS = [pytest.param(lambda model=model: delay_nominal(model), id=model) for model in MODELS] + [
    pytest.param(esn_nominal, id="esn")
]


# ---------------------------------------------------------------- ideal device = nominal twin


@pytest.mark.parametrize("make", NOMINALS)
def test_ideal_device_is_the_nominal_twin_exactly(make):
    # Sine and sin² devices run hardware_sim.loop's node-level ring, an implementation independent of
    # reservoir.delay's (a dense filter matrix per period instead of its block closed form): equal to rounding.
    device = wrap_device(make(), seed=0)
    twin = device.nominal_twin()
    for u in (inputs(), inputs(batch=3)):
        np.testing.assert_allclose(device.measure(u), run(twin, u), rtol=1e-12, atol=1e-14)


def test_input_side_replaces_nominal_values_exactly():
    device = delay_device(N_UNITS, N_INPUTS, seed=1, reservoir_options=F64)
    mask = np.random.default_rng(5).uniform(-1, 1, (N_UNITS, N_INPUTS))
    side = {"mask": mask, "input_gain": 0.3, "phase": 0.2}
    expected = run(dataclasses.replace(device.nominal_twin(), mask=jnp.asarray(mask),
                                       input_gain=jnp.asarray(0.3), phase=jnp.asarray(0.2)), inputs())
    np.testing.assert_array_equal(device.measure(inputs(), side), expected)


def test_esn_input_scaling_side():
    device = wrap_device(esn_nominal(), seed=0)
    twin = device.nominal_twin()
    expected = run(dataclasses.replace(twin, W_in=twin.W_in * 1.5), inputs())
    np.testing.assert_allclose(device.measure(inputs(), {"input_scaling": 1.5}), expected, rtol=1e-12)


# ---------------------------------------------------------------- detection and multiplicative noise


def test_detection_noise_has_the_requested_snr_and_is_fresh_each_call():
    device = delay_device(50, seed=2, snr_db=17.0, reservoir_options=F64)
    u = np.random.default_rng(1).uniform(-1, 1, (2000, 1))
    clean = np.asarray(run(device.nominal_twin(), u))
    first, second = np.asarray(device.measure(u)), np.asarray(device.measure(u))
    for measured in (first, second):
        snr = 10 * np.log10(np.mean(clean**2) / np.mean((measured - clean) ** 2))
        assert abs(snr - 17.0) < 0.3
    assert not np.allclose(first, second)
    # the noise is white: no correlation between the two calls' noise
    correlation = np.corrcoef((first - clean).ravel(), (second - clean).ravel())[0, 1]
    assert abs(correlation) < 0.02


def test_same_seed_gives_the_same_sequence_of_measurements():
    options = {"snr_db": 20.0, "multiplicative_noise": 0.05, "drift": 0.01, "mismatch": 0.1,
               "gain_spread": 0.1, "reservoir_options": F64}
    a, b = delay_device(N_UNITS, N_INPUTS, seed=7, **options), delay_device(N_UNITS, N_INPUTS, seed=7, **options)
    other = delay_device(N_UNITS, N_INPUTS, seed=8, **options)
    for _ in range(3):
        measured = a.measure(inputs())
        np.testing.assert_array_equal(measured, b.measure(inputs()))
        assert not np.allclose(measured, other.measure(inputs()))


def test_multiplicative_noise_relative_std():
    device = delay_device(50, seed=2, multiplicative_noise=0.1, reservoir_options=F64)
    u = np.random.default_rng(1).uniform(-1, 1, (1000, 1))
    clean = np.asarray(run(device.nominal_twin(), u))
    ratio = (np.asarray(device.measure(u)) - clean) / clean
    assert abs(np.std(ratio[np.abs(clean) > 1e-3]) - 0.1) < 0.005


# ---------------------------------------------------------------- quantisation


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 10), low=st.floats(-3, 0.5), width=st.floats(0.1, 4), seed=st.integers(0, 2**16))
def test_quantise_matches_numpy_reference(bits, low, width, seed):
    x = np.random.default_rng(seed).uniform(low - 1, low + width + 1, 500)  # some outside the range
    np.testing.assert_allclose(nl.quantise(jnp.asarray(x), bits, low, low + width),
                               numpy_quantise(x, bits, low, low + width), rtol=0, atol=1e-12)


def test_adc_quantises_and_clips_measured_states():
    device = delay_device(N_UNITS, N_INPUTS, seed=1, adc_bits=8, adc_range=(-0.5, 0.6), reservoir_options=F64)
    clean = run(device.nominal_twin(), inputs(400))
    measured = np.asarray(device.measure(inputs(400)))
    np.testing.assert_allclose(measured, numpy_quantise(clean, 8, -0.5, 0.6), rtol=0, atol=1e-12)
    assert len(np.unique(measured)) <= 2**8
    assert measured.min() == -0.5 and np.isclose(measured.max(), 0.6)  # clipped at both ends


def test_dac_quantises_inputs_and_masks():
    device = delay_device(N_UNITS, N_INPUTS, seed=1, dac_bits=4, input_range=(-0.5, 0.5), mask_range=(-1, 1),
                          reservoir_options={"bias_mask_scaling": 0.5, **F64})
    twin = device.nominal_twin()
    u = inputs(scale=0.8)
    quantised = dataclasses.replace(twin, mask=jnp.asarray(numpy_quantise(twin.mask, 4, -1, 1)),
                                    bias_mask=jnp.asarray(numpy_quantise(twin.bias_mask, 4, -1, 1)))
    expected = run(quantised, numpy_quantise(u, 4, -0.5, 0.5))
    np.testing.assert_allclose(device.measure(u), expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- bandwidth and per-node spread


def lowpass_reference(signal, decay):
    out, y = np.empty_like(signal), 0.0
    for k, x in enumerate(signal):
        y = decay * y + (1 - decay) * x
        out[k] = y
    return out


def test_lowpass_along_virtual_nodes_matches_recursion():
    device = delay_device(N_UNITS, N_INPUTS, seed=1, bandwidth=0.15, reservoir_options=F64)
    u = inputs(30, batch=2)
    clean = np.asarray(run(device.nominal_twin(), u))
    decay = np.exp(-2 * np.pi * 0.15)
    expected = np.stack([lowpass_reference(c.ravel(), decay).reshape(c.shape) for c in clean])
    np.testing.assert_allclose(device.measure(u), expected, rtol=1e-10, atol=1e-12)


def test_lowpass_along_time_for_an_esn():
    device = wrap_device(esn_nominal(), seed=1, bandwidth=0.2)
    clean = np.asarray(run(device.nominal_twin(), inputs(40)))
    decay = np.exp(-2 * np.pi * 0.2)
    expected = np.stack([lowpass_reference(column, decay) for column in clean.T], axis=1)
    np.testing.assert_allclose(device.measure(inputs(40)), expected, rtol=1e-10, atol=1e-12)


def test_node_spread_is_fixed_across_calls():
    device = delay_device(N_UNITS, N_INPUTS, seed=1, gain_spread=0.2, offset_spread=0.05, reservoir_options=F64)
    clean = np.asarray(run(device.nominal_twin(), inputs()))
    first, second = np.asarray(device.measure(inputs())), np.asarray(device.measure(inputs()))
    np.testing.assert_array_equal(first, second)
    design = np.stack([clean, np.ones_like(clean)], axis=-1)  # per node: measured = g clean + o
    for node in range(N_UNITS):
        (gain, offset), *_ = np.linalg.lstsq(design[:, node], first[:, node], rcond=None)
        np.testing.assert_allclose(gain * clean[:, node] + offset, first[:, node], atol=1e-12)
    assert not np.allclose(first, clean)


# ---------------------------------------------------------------- drift, mismatch, distortion


def test_drift_changes_between_calls_and_walks_away():
    device = delay_device(N_UNITS, N_INPUTS, seed=1, drift=0.01, reservoir_options=F64)
    clean = np.asarray(run(device.nominal_twin(), inputs()))
    distances = [np.linalg.norm(np.asarray(device.measure(inputs())) - clean) for _ in range(60)]
    assert len(set(distances)) == len(distances)  # a new state on every call
    # a random walk: on average farther from the nominal late in life than early
    assert np.mean(distances[-20:]) > np.mean(distances[:5])


def test_drift_only_touches_input_gain_and_phase():
    nominal = delay_nominal()
    piece = nl.drift({"input_gain": 0.01}, {"phase": 0.02}, seed=3)
    state = piece.init(nominal)
    written, state = piece.apply(nl.Written(nominal, jnp.zeros((5, N_INPUTS))), state, jax.random.PRNGKey(0))
    written_again, _ = piece.apply(nl.Written(nominal, jnp.zeros((5, N_INPUTS))), state, jax.random.PRNGKey(0))
    assert written.params.phase != nominal.phase and written.params.input_gain != nominal.input_gain
    assert written_again.params.phase != written.params.phase
    np.testing.assert_array_equal(written.params.mask, nominal.mask)
    assert written.params.feedback_gain == nominal.feedback_gain


def test_drift_is_a_random_walk_with_the_given_step():
    nominal = delay_nominal()
    piece = nl.drift({"input_gain": 0.02}, {"phase": 0.05}, seed=11)
    state, phases, gains = piece.init(nominal), [], []
    for _ in range(300):
        written, state = piece.apply(nl.Written(nominal, jnp.zeros((1, N_INPUTS))), state, jax.random.PRNGKey(0))
        phases.append(float(written.params.phase - nominal.phase))
        gains.append(float(written.params.input_gain / nominal.input_gain - 1))
    assert abs(np.std(np.diff(phases)) / 0.05 - 1) < 0.15
    assert abs(np.std(np.diff(gains)) / 0.02 - 1) < 0.15
    replay = piece.init(nominal)  # reproducible from the seed
    written, _ = piece.apply(nl.Written(nominal, jnp.zeros((1, N_INPUTS))), replay, jax.random.PRNGKey(1))
    assert float(written.params.phase - nominal.phase) == phases[0]


def test_float32_device_with_everything_on():
    device = delay_device(N_UNITS, N_INPUTS, model="sin2_lowpass", seed=0, mismatch=0.05, gain_spread=0.05,
                          offset_spread=0.01, bandwidth=0.3, multiplicative_noise=0.01, snr_db=25.0, dac_bits=8,
                          adc_bits=10, drift=1e-3)
    measured = device.measure(inputs(50, batch=2))
    assert measured.dtype == jnp.float32 and measured.shape == (2, 50, N_UNITS)
    assert np.all(np.isfinite(measured))


@pytest.mark.parametrize("make", [NOMINALS[0], NOMINALS[1], NOMINALS[-1]])
def test_mismatch_gap_grows_with_level(make):
    nominal = make()
    u = inputs(200)
    twin_states = run(nominal, u)
    gaps = [float(jnp.linalg.norm(wrap_device(nominal, seed=5, mismatch=level).measure(u) - twin_states))
            for level in (0.0, 0.01, 0.03, 0.1, 0.3)]
    assert gaps[0] <= 1e-12 * float(jnp.linalg.norm(twin_states))  # the loop simulator: equal to rounding
    assert all(a < b for a, b in zip(gaps, gaps[1:], strict=False)), gaps


def test_harmonic_distortion():
    nominal = delay_nominal("sine")
    np.testing.assert_allclose(run(with_harmonic(nominal, jnp.asarray(0.0)), inputs()),
                               run(nominal, inputs()), rtol=1e-13, atol=1e-13)
    distorted = np.asarray(wrap_device(nominal, seed=0, harmonic=0.2).measure(inputs()))
    # the first period has no feedback: x = sin(a) + h sin(2a) with a = β_in (M u + m0) + φ
    argument = nominal.input_gain * (nominal.mask @ inputs()[0] + nominal.bias_mask) + nominal.phase
    np.testing.assert_allclose(distorted[0], np.sin(argument) + 0.2 * np.sin(2 * argument), rtol=1e-12)
    with pytest.raises(ValueError, match="harmonic.*'sine'"):
        wrap_device(delay_nominal("mackey_glass"), seed=0, harmonic=0.1)


def test_custom_chain_of_pieces():
    nominal = delay_nominal()
    device = Device(nominal, [nl.detection_noise(30.0), nl.mismatch({"input_gain": 0.1}, seed=1),
                              nl.adc(6, value_range=(-1, 1))], seed=0)
    measured = np.asarray(device.measure(inputs()))
    assert len(np.unique(measured)) <= 2**6
    with pytest.raises(ValueError, match="same side"):
        nl.chain(nl.detection_noise(30.0), nl.mismatch({"input_gain": 0.1}, seed=1))
    with pytest.raises(ValueError, match="'W_in'.*not an array field of SineDelay"):
        Device(nominal, [nl.mismatch({"W_in": 0.1}, seed=1)], seed=0)


# ---------------------------------------------------------------- the meter and validation


def test_counters():
    device = delay_device(N_UNITS, N_INPUTS, seed=0)
    assert (device.n_calls, device.n_samples) == (0, 0)
    device.measure(inputs(60))
    device.measure(inputs(25, batch=4))
    assert (device.n_calls, device.n_samples) == (2, 160)
    with pytest.raises(ValueError):
        device.measure(np.full((10, N_INPUTS), np.nan))
    assert (device.n_calls, device.n_samples) == (2, 160)  # refused before running


def test_measure_rejects_bad_inputs_early():
    device = delay_device(N_UNITS, N_INPUTS, seed=0)
    bad = inputs()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="inputs must be finite"):
        device.measure(bad)
    with pytest.raises(ValueError, match="inputs must have length 2 on axis -1"):
        device.measure(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="inputs must be a 2-D or 3-D"):
        device.measure(np.zeros(10))
    with pytest.raises(ValueError, match="at least one time step"):
        device.measure(np.zeros((0, N_INPUTS)))
    with pytest.raises(ValueError, match=r"unknown field 'W_in'; allowed: \['mask', 'bias_mask'"):
        device.measure(inputs(), {"W_in": np.zeros((N_UNITS, N_INPUTS))})
    with pytest.raises(ValueError, match=r"input_side\['mask'\] must have shape \(12, 2\)"):
        device.measure(inputs(), {"mask": np.zeros((N_UNITS, 3))})
    with pytest.raises(ValueError, match=r"input_side\['phase'\] must be finite"):
        device.measure(inputs(), {"phase": np.nan})
    with pytest.raises(TypeError, match="input_side must be a dict"):
        device.measure(inputs(), [("phase", 0.1)])
    assert device.n_calls == 0


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(["mismatch", "drift", "multiplicative_noise", "gain_spread", "offset_spread",
                             "bandwidth"]),
       value=st.floats(max_value=-1e-9, allow_infinity=False))
def test_negative_levels_rejected(name, value):
    with pytest.raises(ValueError, match=f"{name} must be a real number in"):
        delay_device(N_UNITS, seed=0, **{name: value})


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(["dac_bits", "adc_bits"]), bits=st.integers(max_value=0))
def test_zero_or_negative_bits_rejected(name, bits):
    with pytest.raises(ValueError, match=f"{name} must be an integer in \\[1, 32\\], got {bits}"):
        delay_device(N_UNITS, seed=0, **{name: bits})


@settings(max_examples=10, deadline=None)
@given(snr=st.sampled_from([float("nan"), float("inf"), -float("inf")]))
def test_non_finite_snr_rejected(snr):
    with pytest.raises(ValueError, match="snr_db must be a real number in"):
        delay_device(N_UNITS, seed=0, snr_db=snr)


def test_other_bad_arguments():
    with pytest.raises(TypeError, match="dac_bits must be an integer"):
        delay_device(N_UNITS, seed=0, dac_bits=8.5)
    with pytest.raises(ValueError, match="adc_range must satisfy low < high"):
        delay_device(N_UNITS, seed=0, adc_bits=8, adc_range=(1.0, -1.0))
    with pytest.raises(TypeError, match="nominal must be one of"):
        Device(object(), seed=0)
    with pytest.raises(ValueError, match="no output feedback"):
        wrap_device(esn(N_UNITS, seed=0, n_feedback=1), seed=0)
    with pytest.raises(TypeError, match="unknown option"):
        delay_device(N_UNITS, seed=0, snr=3)


def test_a_converter_driven_outside_its_range_clips_and_warns_once():
    device = delay_device(6, seed=0, adc_bits=8, adc_range=(-0.1, 0.1))  # sine states reach beyond ±0.1
    u = np.full((20, 1), 0.3)
    with pytest.warns(RuntimeWarning, match=r"adc: measured states outside the range .* clipped") as record:
        first = device.measure(u)
        second = device.measure(u)
    assert len([w for w in record if "adc" in str(w.message)]) == 1  # once per device, not per measurement
    np.testing.assert_array_equal(first, second)
    assert float(np.max(np.abs(first))) == pytest.approx(0.1)
