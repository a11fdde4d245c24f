"""embodied_learning's two parts on tiny sizes: the protocol (test read once, readouts re-fitted on train +
validation), the device plumbing (an ideal device reproduces the simulation), and the statistics tables."""

import numpy as np
import pytest

from experiments import embodied_learning as el
from experiments import tasks
from experiments.results import write_rows
from reservoir import delay_reservoir, run


@pytest.fixture
def tiny(monkeypatch):
    """Sizes that run in seconds: a few sequences, small reservoirs, one gain point, one or two epochs."""
    monkeypatch.setitem(el.QUICK_SCALE, "sizes", (60, 20, 40))
    monkeypatch.setitem(el.QUICK_SCALE, "n_units", 12)
    monkeypatch.setitem(el.QUICK_SCALE, "n_epochs", 2)
    gains = {"feedback_gain": [0.5], "input_gain": [0.1, 0.3]}
    monkeypatch.setitem(el.SCALE, "japanese_vowels", dict(el.SCALE["japanese_vowels"], gains=gains))
    monkeypatch.setattr(el, "DEVICE_UNITS", 10)
    monkeypatch.setattr(el, "GAIN_GRID", {"input_gain": [0.5], "feedback_gain": [0.8]})
    monkeypatch.setitem(el.QUICK_DEVICE, "digits", (200, 50, 40))  # every class in the held-out part
    monkeypatch.setitem(el.QUICK_DEVICE, "n_epochs", 1)
    monkeypatch.setitem(el.QUICK_DEVICE, "calibration_steps", 10)


def test_scale_unit_reads_the_test_part_with_a_readout_fitted_on_train_and_validation(tiny):
    rows = el.scale_unit("japanese_vowels", seed=0, quick=True)
    errors = {r["method"]: r for r in rows if r["metric"] == "error_rate"}
    assert set(errors) == {"ridge_raw", "logistic_raw", "reservoir", "full_projected"}
    assert all(0 <= r["value"] <= 1 for r in errors.values())
    history = [r["value"] for r in rows if r["metric"] == "validation_score"]
    assert len(history) == 3  # the start and two epochs of the chosen learning rate
    # Independent recomputation of the random-mask row: the chosen gains, the utterances resampled to 29
    # frames, time-averaged states, a ridge readout with the chosen alpha on train + validation (NumPy solve).
    reservoir = errors["reservoir"]
    split = el.truncated(tasks.load_task("japanese_vowels", 0), (60, 20, 40))
    params = delay_reservoir(12, 12, model="sine", seed=0, input_gain=reservoir["input_gain"],
                             feedback_gain=reservoir["feedback_gain"])

    def features(part):
        grid = np.linspace(0, 1, 29)
        resampled = np.stack([np.stack([np.interp(grid, np.linspace(0, 1, n), x[:n, d]) for d in range(12)], 1)
                              for x, n in zip(part.inputs, part.lengths, strict=True)])
        return np.asarray(run(params, resampled), np.float64).mean(axis=1)

    fit = split.fit_part()
    x, y = features(fit), np.eye(9)[fit.targets]
    x_test = features(split.test)
    train_x, validation_x = features(split.train), features(split.validation)
    best = None
    for candidate in el.ALPHAS:  # chosen by validation error rate, ties broken by the one-hot MSE
        prediction = _predict(_ridge(train_x, np.eye(9)[split.train.targets], candidate), validation_x)
        key = (np.mean(prediction.argmax(1) != split.validation.targets),
               np.mean((prediction - np.eye(9)[split.validation.targets]) ** 2))
        best = (key, candidate) if best is None or key < best[0] else best
    assert best[0][0] == pytest.approx(reservoir["validation"])
    w = _ridge(x, y, best[1])
    assert np.mean(_predict(w, x_test).argmax(1) != split.test.targets) == pytest.approx(reservoir["value"])


def _ridge(x, y, alpha):
    """Ridge with an unpenalised intercept, by the normal equations on centred data."""
    mean_x, mean_y = x.mean(0), y.mean(0)
    xc = x - mean_x
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - mean_y))
    return w, mean_y - mean_x @ w


def _predict(readout, x):
    w, b = readout
    return x @ w + b


def test_device_unit_on_an_ideal_device_reproduces_the_simulation(tiny, monkeypatch):
    monkeypatch.setattr(el, "PROFILES", {"ideal": {}, "knob_mismatch": {"snr_db": 30.0}})
    monkeypatch.setattr(el, "DETECTION_SNR_DB", {"ideal": None, "knob_mismatch": 30.0})
    rows = el.device_unit("digits", seed=0, quick=True)
    value = {(r["method"], r["platform"]): r["value"] for r in rows}
    for platform in ("ideal", "knob_mismatch"):
        assert {m for m, p in value if p == platform} == set(el.DEVICE_METHODS)
    assert {m for m, p in value if p == "none"} == {"ridge_raw", "logistic_raw"}
    # the ideal device is its nominal model: the written masks score as they do in simulation
    assert value[("reservoir", "ideal")] == pytest.approx(value[("reservoir", "simulation")], abs=1e-9)
    assert value[("digital+readout", "ideal")] == pytest.approx(value[("full_projected", "simulation")], abs=1e-9)
    calls = {(r["method"], r["platform"]): r["device_calls"] for r in rows if r["platform"] == "knob_mismatch"}
    assert calls[("reservoir", "knob_mismatch")] == 1
    # physical backprop: the initial readout, then per step a measurement and the adjoint's passes, per epoch a
    # held-out measurement, and the final readout
    assert calls[("physical_backprop", "knob_mismatch")] > 5
    assert calls[("calibrated_twin", "knob_mismatch")] == el.CALIBRATION["n_repeats"] + 1


def _rows(n_seeds=4):
    """Synthetic rows: a device cell where calibrated_twin is the strongest digital method."""
    rng = np.random.default_rng(0)
    rows = []
    levels = {"reservoir": 0.4, "time-shuffled": 0.5, "digital+readout": 0.3, "calibrated_twin": 0.2,
              "physical_backprop": 0.1}
    for seed in range(n_seeds):
        base = dict(part="device", task="narma10", n_units=50, seed=seed, metric="nmse")
        rows += [dict(base, method=m, platform="knob_mismatch", value=v * (1 + 0.1 * rng.random()), device_calls=3)
                 for m, v in levels.items()]
        rows += [dict(base, method=m, platform="simulation", value=v)
                 for m, v in (("reservoir", 0.2), ("time-shuffled", 0.3), ("full_projected", 0.05))]
        rows += [dict(base, method=m, platform="none", value=v) for m, v in (("linear_taps", 0.15),
                                                                              ("volterra_taps", 0.03))]
    return rows


def test_summary_compares_each_device_method_with_the_strongest_digital_one(tmp_path):
    rows = _rows()
    cells = el.cells(rows)
    assert set(cells) == {("narma10", "simulation"), ("narma10", "knob_mismatch")}
    device = {s.method: s for s in cells[("narma10", "knob_mismatch")]}
    assert set(device) == {"linear_taps", "volterra_taps", *el.DEVICE_METHODS}  # baselines in every table
    assert device["calibrated_twin"].versus is None  # the reference
    assert device["physical_backprop"].versus.reference == "calibrated_twin"
    assert device["physical_backprop"].versus.win.wins == 4
    assert device["physical_backprop"].versus.ratio.value == pytest.approx(
        np.exp(np.median(np.log([r["value"] for r in rows if r["method"] == "physical_backprop"])
                         - np.log([r["value"] for r in rows if r["method"] == "calibrated_twin"]))))
    simulation = {s.method: s for s in cells[("narma10", "simulation")]}
    assert simulation["full_projected"].versus.reference == "reservoir"
    text = el.summary(rows)
    assert "| narma10 | knob_mismatch | physical_backprop | 4 |" in text
    write_rows(tmp_path / "results.csv", rows, el.COLUMNS)
    assert [p.name for p in el.plot(tmp_path)] == ["masks_simulation_vs_device.png"]


def test_run_experiment_refuses_fewer_than_two_seeds(tmp_path):
    with pytest.raises(ValueError, match="seeds must be at least 2"):
        el.run_experiment(tmp_path, quick=True, seeds=1)
