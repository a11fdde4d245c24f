"""The HIL-vs-digital experiment runs end to end and writes tidy, redrawable, resumable results."""

import numpy as np
import pytest

from experiments import hil_vs_digital as experiment
from experiments.results import read_rows
from hardware_sim import delay_device
from hardware_sim.training import device_predictions, device_ridge_readout, train_on_device


@pytest.fixture
def tiny(monkeypatch):
    """The quick configuration made smaller still, so the suite stays fast (the CLI's --quick is untouched)."""
    monkeypatch.setattr(experiment, "QUICK_SERIES", dict(experiment.QUICK_SERIES, n_train=500, n_test=300))
    monkeypatch.setattr(experiment, "QUICK_TASKS", ("narma10",))  # digits: test_digits_unit_scores_classes
    monkeypatch.setattr(experiment, "QUERY_COST", dict(experiment.QUERY_COST, task="narma10"))  # same compiles
    monkeypatch.setattr(experiment, "QUICK_GRADIENT", dict(experiment.QUICK_GRADIENT, n_epochs=2))
    monkeypatch.setattr(experiment, "QUICK_SPSA", dict(experiment.QUICK_SPSA, n_epochs=3))
    experiment.task_data.cache_clear()
    experiment.digital_training.cache_clear()
    yield
    experiment.task_data.cache_clear()
    experiment.digital_training.cache_clear()


def test_quick_run_writes_every_method_and_resumes(tmp_path, tiny):
    directory = experiment.run_experiment(tmp_path, quick=True)
    rows = read_rows(directory / "results.csv")
    assert set(experiment.COLUMNS) <= set(rows[0])
    errors = [r for r in rows if r["metric"] == "test_error"]
    assert {r["method"] for r in errors} == set(experiment.METHODS)
    assert {r["task"] for r in errors} == set(experiment.QUICK_TASKS)
    assert len(errors) == len(experiment.QUICK_TASKS) * len(experiment.QUICK_MISMATCHES) * len(experiment.METHODS)
    assert all(np.isfinite(float(r["value"])) for r in rows)
    queries = {r["method"]: r["device_queries"] for r in errors}
    assert queries["digital"] == 0 and queries["reservoir"] == 1 and queries["digital+readout"] == 1
    assert queries["physical_backprop"] > queries["hil"] > 1
    losses = [r for r in rows if r["metric"] == "train_loss"]
    assert all(isinstance(r["epoch"], int) for r in losses)
    assert {r["method"] for r in losses} == {"digital", "digital+readout", "hil", "physical_backprop", "spsa"}

    objective = [r for r in rows if r["metric"] == "train_objective"]
    assert {r["method"] for r in objective} == {"hil", "spsa"} and objective[0]["n_parameters"] == 33
    spsa_queries = [r["device_queries"] for r in objective if r["method"] == "spsa"]
    assert spsa_queries == sorted(spsa_queries) and len(spsa_queries) == experiment.QUICK_SPSA_BUDGET_STEPS

    figures = ["error_vs_mismatch.png", "loss_vs_queries.png", "objective_vs_queries.png"]
    drawn = {name: (directory / name).read_bytes() for name in figures}
    for name in figures:
        (directory / name).unlink()
    redrawn = experiment.plot(directory)  # from results.csv only
    assert sorted(p.name for p in redrawn) == sorted(figures)
    assert all(p.read_bytes() == drawn[p.name] for p in redrawn)  # byte-identical PNGs
    assert "physical_backprop" in experiment.summary(rows)
    assert len(experiment.targets(rows)) == 3 * len(experiment.QUICK_TASKS) + 1  # + the query-cost target

    # The same command again resumes from units.jsonl: nothing is recomputed, the results are identical.
    before = (directory / "results.csv").read_text()
    experiment.digital_training.cache_clear()
    calls = []
    original = experiment.run_unit
    try:
        experiment.run_unit = lambda unit: calls.append(unit) or original(unit)
        experiment.run_experiment(tmp_path, quick=True)
    finally:
        experiment.run_unit = original
    assert calls == [] and (directory / "results.csv").read_text() == before


def test_digits_scores_pooled_classes(monkeypatch):
    """Digits on the device: one-hot targets per sequence, the class is the argmax of the pooled readout."""
    monkeypatch.setattr(experiment, "QUICK_DIGITS", dict(n_train=120, n_test=60))
    experiment.task_data.cache_clear()
    unit = dict(task="digits", mismatch=0.1, snr_db=None, seed=0, quick=True)
    data = experiment.task_data("digits", 0, True)
    assert data.pool and data.u_train.shape == (120, 8, 8) and data.y_train.shape == (120, 10)
    device = experiment.make_device(unit)
    params, losses = experiment.method_params("reservoir", unit, device, data)
    scores = experiment.test_errors("digits", device, params, data)
    predictions = device_predictions(device, params, data.u_test, pool=True)
    expected = np.mean(predictions.argmax(-1) != data.labels_test)  # the noiseless device repeats itself
    assert losses == () and scores["test_error"] == pytest.approx(expected)
    assert scores["test_error"] < 0.5  # far better than chance (0.9) even with 120 training images
    experiment.task_data.cache_clear()


def test_pooled_readout_predicts_from_mean_states():
    """pool=True: one target per sequence, read from the states averaged over the steps after washout."""
    device = delay_device(8, 3, seed=0)
    inputs = np.random.default_rng(0).uniform(0, 1, (12, 6, 3))
    targets = np.random.default_rng(1).normal(size=(12, 2))
    readout = device_ridge_readout(device, None, inputs, targets, washout=2, alpha=1e-3, pool=True)
    params = {"input_side": {}, "readout": readout}
    predictions = device_predictions(device, params, inputs, washout=2, pool=True)
    states = np.asarray(device.measure(inputs), np.float64)[:, 2:].mean(axis=1)  # noiseless device
    np.testing.assert_allclose(predictions, states @ np.asarray(readout["W"]) + np.asarray(readout["b"]),
                               rtol=1e-4, atol=1e-5)
    # the pooled ridge readout is the least-squares fit of the mean states (a hand-written solve)
    design = np.hstack([states, np.ones((12, 1))])
    # alpha is per row: the Gram matrix of the 12 rows gets 12 * alpha
    coef = np.linalg.solve(design.T @ design + 12 * 1e-3 * np.diag([1] * 8 + [0]), design.T @ targets)
    np.testing.assert_allclose(np.asarray(readout["W"]), coef[:8], rtol=2e-3, atol=2e-3)
    with pytest.raises(ValueError, match="one row per sequence"):
        train_on_device(device, inputs, targets[:5], mode="digital", pool=True)
