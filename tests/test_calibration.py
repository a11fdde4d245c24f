"""Twin calibration: fitting the twin's gains, phase and detection bandwidth to measured states."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hardware_sim import delay_device
from hardware_sim.calibration import FIELDS, calibrate_twin, mismatch_removed, state_loss, true_params
from hardware_sim.training import train_on_device

pytestmark = pytest.mark.x64  # float64 references and tolerances

F64 = {"dtype": jnp.float64}
N_UNITS, PROBE_SHAPE = 12, (6, 40, 1)  # one shape and one fit configuration for every test: one compilation
FIT = {"n_steps": 500}


def _probe(seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, PROBE_SHAPE)


def test_calibration_removes_most_of_the_mismatch_and_of_the_state_error():
    device = delay_device(N_UNITS, seed=3, mismatch=0.2, bandwidth=0.2, reservoir_options=F64)
    probe = _probe()
    result = calibrate_twin(device, probe, n_repeats=2, **FIT)
    removed = mismatch_removed(result, true_params(device))
    print({name: round(value, 4) for name, value in removed.items()}, result.state_nmse)
    assert set(removed) == set(FIELDS)
    assert all(value >= 0.8 for value in removed.values())
    assert result.state_nmse["calibrated"] <= result.state_nmse["nominal"] / 10
    assert result.fitted["bandwidth"] == pytest.approx(0.2, rel=0.05)
    assert result.fitted["decay"] == pytest.approx(math.exp(-2 * math.pi * 0.2), rel=0.05)
    assert result.nominal["bandwidth"] == math.inf
    # noiseless device, knob mismatch and a detection low-pass only: all of it fits, nothing structural is left
    assert result.state_nmse["noise_floor"] == 0.0 and result.state_nmse["structural_gap"] < 1e-6
    assert result.n_calls == 2 and result.n_samples == 2 * 6 * 40  # the repeats, nothing else
    assert device.n_calls == 2  # true_params is an oracle: no query
    assert len(result.history["train"]) == 500 and result.history["train"][-1] < result.history["train"][0]
    # The twin carries the fitted fields; states() adds the fitted low-pass: close to what the device measures.
    assert all(float(getattr(result.twin, name)) == result.fitted[name] for name in FIELDS)
    np.testing.assert_allclose(result.states(probe), device.measure(probe), atol=1e-6)


def test_zero_mismatch_keeps_the_nominal_values():
    device = delay_device(N_UNITS, seed=1, reservoir_options=F64)  # ideal: the nominal twin is exact
    result = calibrate_twin(device, _probe(), n_repeats=1, **FIT)
    removed = mismatch_removed(result, true_params(device))
    for name in FIELDS:
        assert result.fitted[name] == pytest.approx(result.nominal[name], abs=1e-9)
        assert math.isnan(removed[name])  # nothing to remove
    assert abs(result.fitted["decay"]) < 1e-9 and result.fitted["bandwidth"] == math.inf
    assert result.state_nmse["nominal"] < 1e-20 and result.state_nmse["calibrated"] < 1e-20


def test_fit_gradient_matches_central_differences_in_float64():
    device = delay_device(N_UNITS, seed=2, mismatch=0.2, bandwidth=0.3, reservoir_options=F64)
    probe = _probe(1)
    loss, start = state_loss(device.nominal_twin(), probe, device.measure(probe))
    point = {"fields": {name: value + 0.03 for name, value in start["fields"].items()}, "decay": 0.2}
    value_and_grad = jax.jit(jax.value_and_grad(loss))  # one compilation for the gradient and the values
    gradient = value_and_grad(point)[1]
    step = 1e-6

    def loss_at(path, sign):
        flat, tree = jax.tree_util.tree_flatten_with_path(point)
        return float(value_and_grad(tree.unflatten([v + sign * step if p == path else v for p, v in flat]))[0])

    for path, value in jax.tree_util.tree_flatten_with_path(gradient)[0]:
        central = (loss_at(path, 1) - loss_at(path, -1)) / (2 * step)
        assert float(value) == pytest.approx(central, rel=1e-6), jax.tree_util.keystr(path)


def test_bad_arguments_are_refused_before_any_query():
    device = delay_device(N_UNITS, seed=0, reservoir_options=F64)
    probe = _probe()
    cases = [
        ({"n_steps": 0}, "n_steps"),
        ({"n_repeats": 0}, "n_repeats"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"fields": ("input_gain", "gain")}, "fields.*'gain'"),
        ({"fields": ()}, "fields"),
        ({"fields": ("phase", "phase")}, "fields"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            calibrate_twin(device, probe, **options)
    for inputs in (probe[0], probe[..., [0, 0]], probe[:1]):  # (T, D), wrong D, a single sequence
        with pytest.raises(ValueError, match="inputs"):
            calibrate_twin(device, inputs)
    with pytest.raises(TypeError, match="fields"):
        calibrate_twin(device, probe, fields="phase")
    assert device.n_calls == 0


def test_the_calibrated_twin_drives_training():
    """With the calibrated twin, a ``hil`` step is the device's own gradient step (the one with its hidden truth
    as the twin); with the nominal twin it is not.  Training refuses to overwrite calibrated fields."""
    device = delay_device(N_UNITS, seed=1, mismatch=0.2, reservoir_options=F64)
    calibrated = calibrate_twin(device, _probe(), n_repeats=1, **FIT).twin
    inputs, targets = _probe(3) / 2, np.random.default_rng(3).normal(size=(*PROBE_SHAPE[:2], 1))
    start = np.asarray(device.nominal_twin().mask)

    def hil_step(twin):  # one plain-SGD step at rate 1: the update is minus the gradient
        result = train_on_device(device, inputs, targets, mode="hil", names=("mask",), washout=5, n_epochs=1,
                                 batch_size=len(inputs), optimizer="sgd", learning_rate=1.0, twin=twin)
        assert result.n_calls == 2  # initial readout + the step; one compilation serves all three twins
        return np.asarray(result.params["input_side"]["mask"]) - start

    exact = hil_step(true_params(device))
    errors = [np.linalg.norm(hil_step(twin) - exact) / np.linalg.norm(exact) for twin in (calibrated, None)]
    print(f"hil gradient error: calibrated twin {errors[0]:.2e}, nominal twin {errors[1]:.2e}")
    assert errors[0] <= 1e-4 and errors[1] > 1e-2
    with pytest.raises(ValueError, match="input_gain"):
        train_on_device(device, inputs, targets, mode="digital", names=("mask", "input_gain"), twin=calibrated)
    other = delay_device(N_UNITS + 1, seed=1, reservoir_options=F64).nominal_twin()
    with pytest.raises(ValueError, match="twin"):
        train_on_device(device, inputs, targets, mode="digital", twin=other)
