"""Physics-aware training along the measured trajectory, augmented DFA, public-only device access, cost."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hardware_sim import calibrate_twin, delay_device, true_params
from hardware_sim.training import (
    MODES,
    device_states,
    train_on_device,
    twin_states,
)
from reservoir import split_trainable

pytestmark = pytest.mark.x64  # float64 references and tolerances

ALL_FIELDS = ("mask", "bias_mask", "input_gain", "feedback_gain", "phase")
F64 = {"dtype": jnp.float64, "bias_mask_scaling": 0.3}


def _relative_error(got, expected):
    return max(float(jnp.linalg.norm(got[k] - expected[k]) / jnp.linalg.norm(expected[k])) for k in expected)


def _contracted(states, inputs, cotangent):
    """s ↦ Σ states(s, inputs) ⊙ cotangent: its gradient is the VJP of the states with that cotangent."""
    return lambda side: jnp.sum(states(side, inputs) * cotangent)


@pytest.mark.parametrize("model", ["sine", "sin2_lowpass"])
def test_hil_on_an_ideal_device_is_exact_bptt_for_every_field(model):
    device = delay_device(7, 2, model=model, seed=0, reservoir_options=dict(F64, phase=0.3))
    rng = np.random.default_rng(0)
    inputs, cotangent = rng.uniform(-1, 1, (3, 25, 2)), rng.normal(size=(3, 25, 7))
    side, _ = split_trainable(device.nominal_twin(), ALL_FIELDS)
    hil = jax.grad(_contracted(device_states(device, ALL_FIELDS), inputs, cotangent))(side)
    bptt = jax.grad(_contracted(twin_states(device, ALL_FIELDS), inputs, cotangent))(side)
    assert device.n_calls == 1
    assert _relative_error(hil, bptt) <= 1e-6


def test_hil_on_an_ideal_esn_device_is_exact_bptt():
    from hardware_sim import wrap_device
    from reservoir import esn

    device = wrap_device(esn(8, 2, seed=0, dtype="float64", bias_scaling=0.2), seed=0)
    rng = np.random.default_rng(3)
    inputs, cotangent = rng.uniform(-1, 1, (2, 15, 2)), rng.normal(size=(2, 15, 8))
    names = ("W_in", "bias", "input_scaling")
    side, _ = split_trainable(device.nominal_twin(), names)
    hil = jax.grad(_contracted(device_states(device, names), inputs, cotangent))(side)
    bptt = jax.grad(_contracted(twin_states(device, names), inputs, cotangent))(side)
    assert _relative_error(hil, bptt) <= 1e-6


def _numpy_pat_sine(twin, inputs, measured, cotangent):
    """Hand-written PAT for the sine model, one sequence: the twin's Jacobians at the measured states.

    a(n) = α s̃(n) + β (M u(n) + m₀) + φ with s̃(n) = [x̃_{N−1}(n−2), x̃_0(n−1), …, x̃_{N−2}(n−1)] (measured),
    δa(n) = g(n) cos a(n), g_j(n) = c_j(n) + α δa_{j+1}(n+1) (j < N−1), g_{N−1}(n) = c_{N−1}(n) + α δa_0(n+2).
    """
    alpha, beta, phi = float(twin.feedback_gain), float(twin.input_gain), float(twin.phase)
    mask, bias = np.asarray(twin.mask), np.asarray(twin.bias_mask)
    steps, n = measured.shape
    loop = np.zeros((steps, n))
    for t in range(steps):
        loop[t, 0] = measured[t - 2, n - 1] if t >= 2 else 0.0
        loop[t, 1:] = measured[t - 1, :-1] if t >= 1 else 0.0
    drive = inputs @ mask.T + bias
    slope = np.cos(alpha * loop + beta * drive + phi)
    delta = np.zeros((steps + 2, n))
    for t in reversed(range(steps)):
        for j in range(n):
            later = delta[t + 1, j + 1] if j < n - 1 else delta[t + 2, 0]
            delta[t, j] = (cotangent[t, j] + alpha * later) * slope[t, j]
    delta = delta[:steps]
    return {"mask": beta * delta.T @ inputs, "bias_mask": beta * delta.sum(0), "input_gain": np.sum(delta * drive),
            "feedback_gain": np.sum(delta * loop), "phase": np.sum(delta)}


def test_hil_along_noisy_measured_states_with_a_mismatched_twin_matches_a_hand_computed_recursion():
    make = lambda: delay_device(6, 2, seed=4, mismatch=0.3, snr_db=25, adc_bits=8,
                                reservoir_options=dict(F64, phase=0.2))
    device, replica = make(), make()  # same seed: the replica's first measurement is the device's
    rng = np.random.default_rng(1)
    inputs, cotangent = rng.uniform(-1, 1, (1, 15, 2)), rng.normal(size=(1, 15, 6))
    side, _ = split_trainable(device.nominal_twin(), ALL_FIELDS)
    hil = jax.grad(_contracted(device_states(device, ALL_FIELDS), inputs, cotangent))(side)
    measured = np.asarray(replica.measure(inputs, side))[0]
    expected = _numpy_pat_sine(device.nominal_twin(), inputs[0], measured, cotangent[0])
    assert _relative_error(hil, expected) <= 1e-10
    # ... and it is not the twin rerun along its own trajectory (today's ablation), nor the true gradient.
    other = make()
    rerun = jax.grad(_contracted(device_states(other, ALL_FIELDS, backward="twin_rerun"), inputs,
                                 cotangent))(side)
    assert _relative_error(rerun, expected) > 1e-2


def test_calibrated_twin_lets_hil_train_calibrated_fields_at_their_effective_values():
    """A CalibrationResult as twin: its written → effective map (factor for a gain, offset for the phase) puts
    the twin where the device is for what the trainer writes, so on a noiseless knob-mismatch device hil's
    gradient in every field is the true device's; fitted at two operating points, the map recovers the hidden
    factors."""
    device = delay_device(10, seed=1, mismatch=0.2, reservoir_options=F64)
    probe = np.random.default_rng(0).uniform(-1, 1, (6, 40, 1))
    truth = true_params(device)
    nominal = device.nominal_twin()
    two_points = calibrate_twin(device, probe, n_repeats=1, n_steps=1500, bandwidth=False,
                                settings=[{"input_gain": 0.7, "feedback_gain": 0.6, "phase": 0.3}])
    assert two_points.n_calls == 2
    for name in ("input_gain", "feedback_gain"):
        factor, offset = two_points.written_to_effective[name]
        assert factor == pytest.approx(float(getattr(truth, name)) / float(getattr(nominal, name)), rel=1e-6)
        assert abs(offset) < 1e-6
    factor, offset = two_points.written_to_effective["phase"]
    assert factor == pytest.approx(1, abs=1e-6) and offset == pytest.approx(float(truth.phase), abs=1e-6)

    names = ("mask", "input_gain", "feedback_gain", "phase")
    side, _ = split_trainable(nominal, names)
    side = dict(side, input_gain=side["input_gain"] * 1.2)  # a written value away from the calibration point
    rng = np.random.default_rng(2)
    inputs, cotangent = rng.uniform(-1, 1, (2, 30, 1)), rng.normal(size=(2, 30, 10))
    grad = lambda twin: jax.grad(_contracted(device_states(device, names, twin=twin), inputs, cotangent))(side)
    exact = jax.grad(_contracted(twin_states(device, names, twin=truth), inputs, cotangent))(
        {**side, **{n: side[n] * float(getattr(truth, n)) / float(getattr(nominal, n))
                    for n in ("input_gain", "feedback_gain")}, "phase": truth.phase})
    # the chain rule through effective = factor · written: ∂/∂written = factor · ∂/∂effective
    exact = {n: exact[n] * (float(getattr(truth, n)) / float(getattr(nominal, n))
                            if n in ("input_gain", "feedback_gain") else 1.0) for n in names}
    errors = {"calibrated": _relative_error(grad(two_points), exact),
              "nominal": _relative_error(grad(None), exact)}
    print(errors)  # measured: 4e-15 and 1.9
    assert errors["calibrated"] <= 1e-6 and errors["nominal"] > 0.1


class PublicOnly:
    """A device seen through its public measurement interface only: anything else raises (``truth()``, private
    state, the input chain), so a training mode that reaches past the meter fails."""

    PUBLIC = ("measure", "adjoint", "n_calls", "n_samples", "n_units", "n_inputs", "trainable_fields",
              "nominal_twin")

    def __init__(self, device):
        object.__setattr__(self, "_wrapped", device)

    def __getattribute__(self, name):
        if name in PublicOnly.PUBLIC:
            return getattr(object.__getattribute__(self, "_wrapped"), name)
        if name in ("__class__", "__dict__", "__weakref__", "__hash__", "__eq__"):
            return object.__getattribute__(self, name)
        raise AssertionError(f"training read {name!r} of the device: only its public measurements are allowed")


@pytest.mark.parametrize("mode", [m for m in MODES if m not in ("digital", "digital+readout")])
def test_every_in_situ_mode_trains_through_the_public_measurement_interface(mode):
    device = PublicOnly(delay_device(6, seed=0, mismatch=0.2, snr_db=30))
    with pytest.raises(AssertionError, match="truth"):
        device.truth()
    rng = np.random.default_rng(0)
    inputs, targets = rng.uniform(0, 0.5, (4, 20, 1)), rng.normal(size=(4, 20, 1))
    names = ("mask", "phase")
    result = train_on_device(device, inputs, targets, mode=mode, names=names, washout=5, n_epochs=2,
                             batch_size=2, learning_rate=1e-2)
    assert result.n_calls == device.n_calls > 0 and result.n_samples == device.n_samples
    assert set(result.params["input_side"]) == set(names)


def test_calibration_uses_only_public_measurements():
    device = PublicOnly(delay_device(6, seed=0, mismatch=0.2))
    probe = np.random.default_rng(0).uniform(-1, 1, (3, 20, 1))
    result = calibrate_twin(device, probe, n_repeats=1, n_steps=20, settings=[{"input_gain": 0.6}])
    assert result.n_calls == 2 and set(result.written_to_effective) == {"input_gain", "feedback_gain", "phase"}


def _dfa_problem():
    device = delay_device(5, seed=3, mismatch=0.2, snr_db=30, reservoir_options=F64)
    replica = delay_device(5, seed=3, mismatch=0.2, snr_db=30, reservoir_options=F64)
    rng = np.random.default_rng(5)
    inputs, targets = rng.uniform(-1, 1, (2, 12, 1)), rng.normal(size=(2, 12, 2))
    return device, replica, inputs, targets


def test_dfa_update_is_the_documented_feedback_alignment_step():
    """One plain-SGD step at rate 1 of ``dfa`` (joint readout): the input-side update is minus
    Σ (∂d/∂θ)ᵀ [(B ē) ⊙ (1 − x̃²)] with ē = 2 e / size(e), the readout's minus its exact gradient; all from the
    inputs, the measured states, e and B alone (NumPy, by hand)."""
    device, replica, inputs, targets = _dfa_problem()
    names = ("mask", "bias_mask", "input_gain", "phase")
    washout, scale, seed = 3, 0.5, 7
    result = train_on_device(device, inputs, targets, mode="dfa", names=names, washout=washout, n_epochs=1,
                             batch_size=2, optimizer="sgd", learning_rate=1.0, dfa_feedback_scale=scale,
                             seed=seed, alpha=1e-3)
    assert result.n_calls == 2  # the initial ridge readout, then one forward per step: no backward query
    nominal = device.nominal_twin()
    side = {n: np.asarray(getattr(nominal, n)) for n in names}
    from readout import Ridge

    first = np.asarray(replica.measure(inputs, side))
    rows = first[:, washout:].reshape(-1, 5)
    ridge = Ridge(1e-3 * len(rows)).fit(rows, targets[:, washout:].reshape(-1, 2))  # α per row
    W, b = ridge.coef_, ridge.intercept_
    measured = np.asarray(replica.measure(inputs, side))  # the training step's measurement
    x = measured[:, washout:]
    error = x @ W + b - targets[:, washout:]
    output = 2 * error / error.size
    feedback = scale * np.random.default_rng(seed).normal(size=(5, 2))
    delta = np.zeros_like(measured)
    delta[:, washout:] = (output @ feedback.T) * (1 - x**2)
    beta, drive = float(nominal.input_gain), inputs @ side["mask"].T + side["bias_mask"]
    expected = {"mask": beta * np.einsum("btn,btd->nd", delta, inputs), "bias_mask": beta * delta.sum((0, 1)),
                "input_gain": np.sum(delta * drive), "phase": np.sum(delta)}
    update = {n: side[n] - np.asarray(result.params["input_side"][n]) for n in names}
    assert _relative_error(update, expected) <= 1e-8
    readout_update = W - np.asarray(result.params["readout"].W)
    np.testing.assert_allclose(readout_update, x.reshape(-1, 5).T @ output.reshape(-1, 2), rtol=1e-8)


def test_cost_is_reported_in_calls_samples_and_device_time():
    device = delay_device(6, seed=0, mismatch=0.1)
    rng = np.random.default_rng(0)
    inputs, targets = rng.uniform(0, 0.5, (4, 20, 1)), rng.normal(size=(4, 20, 1))
    result = train_on_device(device, inputs, targets, mode="physical_backprop", names=("mask",), n_epochs=2,
                             batch_size=2)
    # the initial readout, then per step a forward measurement, two derivative and two backward passes
    assert result.n_calls == 1 + 2 * 2 * 5 and result.n_samples == 4 * 20 + 2 * 2 * 5 * 2 * 20
    # Paquot 2012: an 8.5 µs loop shared by N + 1 node durations; one sample holds the input for N of them.
    assert result.device_seconds == pytest.approx(result.n_samples * 6 * 8.5e-6 / 7, rel=1e-12)
    lowpass = delay_device(6, model="sin2_lowpass", seed=0)
    assert lowpass.nominal_twin().node_duration == pytest.approx(20.82e-6 / 6, rel=1e-12)  # Hermans 2015


def test_a_device_call_budget_stops_training_before_it_is_exceeded():
    rng = np.random.default_rng(0)
    inputs, targets = rng.uniform(0, 0.5, (4, 20, 1)), rng.normal(size=(4, 20, 1))
    for mode, budget in (("hil", 7), ("spsa", 12)):
        device = delay_device(6, seed=0, mismatch=0.1)
        result = train_on_device(device, inputs, targets, mode=mode, names=("mask",), n_epochs=50, batch_size=2,
                                 max_device_calls=budget)
        assert result.n_calls <= budget and len(result.history["train"]) >= 2


@pytest.mark.parametrize("options, match", [
    ({"mode": "pat"}, "mode"),
    ({"mode": "hil", "max_device_calls": 0}, "max_device_calls"),
    ({"mode": "hil", "max_device_calls": -3}, "max_device_calls"),
    ({"mode": "dfa", "dfa_feedback_scale": 0.0}, "dfa_feedback_scale"),
    ({"mode": "dfa", "names": ("mask", "feedback_gain")}, "names"),
    ({"mode": "dfa", "dfa_node_factor": 3}, "dfa_node_factor"),
])
def test_bad_training_options_are_refused_before_any_query(options, match):
    device = delay_device(6, seed=0)
    rng = np.random.default_rng(0)
    inputs, targets = rng.uniform(0, 0.5, (4, 20, 1)), rng.normal(size=(4, 20, 1))
    with pytest.raises((ValueError, TypeError), match=match):
        train_on_device(device, inputs, targets, **options)
    assert device.n_calls == 0


def test_a_twin_of_the_wrong_shape_is_refused_naming_twin():
    device = delay_device(6, seed=0)
    rng = np.random.default_rng(0)
    inputs, targets = rng.uniform(0, 0.5, (4, 20, 1)), rng.normal(size=(4, 20, 1))
    for twin in (delay_device(7, seed=0).nominal_twin(), delay_device(6, 2, seed=0).nominal_twin()):
        with pytest.raises(ValueError, match="twin"):
            train_on_device(device, inputs, targets, mode="hil", twin=twin)
    assert device.n_calls == 0


@pytest.mark.parametrize("settings, match", [
    ({"input_gain": 0.6}, "settings"),                 # a dict, not a sequence of them
    ([{"gain": 0.6}], "settings\\[0\\]"),              # unknown field
    ([{"phase": float("nan")}], "settings\\[0\\]"),     # non-finite
    ([{}], "settings\\[0\\]"),                          # empty operating point
])
def test_bad_calibration_settings_are_refused_before_any_query(settings, match):
    device = delay_device(6, seed=0)
    with pytest.raises((ValueError, TypeError), match=match):
        calibrate_twin(device, np.zeros((3, 10, 1)), settings=settings)
    assert device.n_calls == 0
