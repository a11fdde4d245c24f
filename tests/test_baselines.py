"""No-reservoir baselines: features against hand-written loops, fits against systems they can represent
exactly, the validation-only protocol, and the published MNIST-1D logistic-regression accuracy."""

import numpy as np
import pytest

from experiments import baselines, tasks
from experiments.baselines import fit_baseline, raw_features, tapped_delay_line, volterra_features


def test_tapped_delay_line_by_hand():
    u = np.arange(1.0, 13.0).reshape(6, 2)  # two channels
    taps = tapped_delay_line(u, 3)
    for t in range(6):
        expected = [u[t - k, d] if t - k >= 0 else 0.0 for k in range(3) for d in range(2)]
        np.testing.assert_array_equal(taps[t], expected)


def test_volterra_features_are_taps_and_their_pairwise_products():
    u = np.array([[0.5], [-1.0], [2.0], [3.0]])
    features = volterra_features(u, 2)
    assert features.shape == (4, 2 + 3)
    # row t = 2: taps (u2, u1) = (2, -1); products u2², u2 u1, u1² = 4, -2, 1
    np.testing.assert_array_equal(features[2], [2.0, -1.0, 4.0, -2.0, 1.0])


def test_raw_features_resample_each_sequence_over_its_own_duration():
    inputs = np.zeros((2, 5, 1))
    inputs[0, :3, 0] = [0.0, 1.0, 4.0]  # 3 valid steps, resampled to 5 at times 0, .25, .5, .75, 1
    inputs[1, :, 0] = np.arange(5.0)
    features = raw_features(tasks.Part(inputs, np.array([0, 1]), np.array([3, 5])))
    np.testing.assert_allclose(features[0], [0.0, 0.5, 1.0, 2.5, 4.0])
    np.testing.assert_array_equal(features[1], np.arange(5.0))


def series_task(inputs, targets, seed=0):
    return tasks.series_split("toy", "nmse", inputs, targets, washout=20, n_train=600, n_validation=300,
                              seed=seed)


def fir_task(seed=0):
    """y(t) = 0.5 u(t) − 0.3 u(t−3) + 0.1: four taps represent it exactly."""
    u = np.random.default_rng(seed).uniform(-1, 1, (1400, 1))
    y = 0.5 * u + 0.1
    y[3:] -= 0.3 * u[:-3]
    return series_task(u, y)


def test_linear_taps_identify_an_fir_system_and_choose_enough_taps():
    result = fit_baseline("linear_taps", fir_task())
    assert result.test < 1e-6 and result.validation < 1e-6
    assert result.hyperparameters["taps"] >= 4


def test_volterra_taps_identify_a_quadratic_system_the_linear_filter_cannot():
    u = np.random.default_rng(1).uniform(-1, 1, (1400, 1))
    y = 0.2 * u
    y[2:] += u[2:] * u[:-2]
    split = series_task(u, y)
    assert fit_baseline("volterra_taps", split).test < 1e-6
    assert fit_baseline("linear_taps", split).test > 0.5  # u(t) u(t−2) is uncorrelated with every tap


def test_the_test_part_never_influences_the_choice():
    split = fir_task()
    noisy = split.test.targets + np.random.default_rng(2).normal(0, 1, split.test.targets.shape)
    poisoned = tasks.TaskData(**{**split.__dict__, "test": tasks.Part(split.test.inputs, noisy)})
    clean, dirty = fit_baseline("linear_taps", split), fit_baseline("linear_taps", poisoned)
    assert clean.hyperparameters == dirty.hyperparameters and clean.validation == dirty.validation
    assert dirty.test > 100 * clean.test


def test_select_ridge_refits_the_closed_form_on_train_and_validation():
    split = fir_task()
    train = tapped_delay_line(split.series_inputs(), 5)
    fit_rows = train[split.washout:len(split.train.inputs) + len(split.validation.inputs)]
    cut = len(split.train.inputs) - split.washout
    readout, _, alpha = baselines.select_ridge(split, fit_rows[:cut], fit_rows[cut:], alphas=(1e-3,))
    coef, intercept = readout.W, readout.b
    targets = np.concatenate([split.train.targets[split.washout:], split.validation.targets])
    x_mean, y_mean = fit_rows.mean(0), targets.mean(0)
    centred = fit_rows - x_mean
    expected = np.linalg.solve(centred.T @ centred + 1e-3 * np.eye(5), centred.T @ (targets - y_mean))
    np.testing.assert_allclose(coef, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(intercept, y_mean - x_mean @ expected, rtol=1e-9, atol=1e-12)
    assert alpha == 1e-3


@pytest.fixture(scope="module")
def digits():
    return tasks.digits_task(seed=0)


def test_raw_classifiers_on_digits(digits):
    """Ridge on the 64 raw pixels: 6.6 % error measured on the first round's own split."""
    ridge = fit_baseline("ridge_raw", digits)
    logistic = fit_baseline("logistic_raw", digits)
    assert 0.02 < ridge.test < 0.10 and "alpha" in ridge.hyperparameters
    assert 0.005 < logistic.test < 0.08 and "C" in logistic.hyperparameters


def test_mlp_is_seeded_and_learns(digits, monkeypatch):
    """A small version (300 training images, 30 epochs, one grid point) to stay fast."""
    monkeypatch.setattr(baselines, "MLP_EPOCHS", 30)
    monkeypatch.setattr(baselines, "MLP_GRID", {"hidden": (100,), "l2": (1e-4,)})
    small = tasks.TaskData(**{**digits.__dict__, "train": tasks.Part(*(a[:300] for a in digits.train))})
    first, second = fit_baseline("mlp_raw", small), fit_baseline("mlp_raw", small)
    assert first == second and first.test < 0.15 and first.hyperparameters == {"hidden": 100, "l2": 1e-4}


def test_logistic_regression_on_mnist1d_matches_the_published_accuracy(monkeypatch):
    """Greydanus 2020 reports 32 % test accuracy for logistic regression on MNIST-1D (one C, for speed)."""
    monkeypatch.setattr(baselines, "LOGISTIC_C", (0.1,))
    result = fit_baseline("logistic_raw", tasks.mnist1d_task(seed=0))
    assert 1 - result.test == pytest.approx(0.32, abs=0.04)


def test_fit_baseline_names_the_choices_for_the_task_kind(digits):
    with pytest.raises(ValueError, match="name must be one of.*ridge_raw"):
        fit_baseline("linear_taps", digits)
    with pytest.raises(TypeError, match="split"):
        fit_baseline("ridge_raw", (digits.train, digits.test))
