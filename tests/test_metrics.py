"""Metrics against closed forms and hand-built cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from experiments.metrics import (
    accuracy,
    decide_symbols,
    memory_capacity,
    nmse,
    nrmse,
    nrmse84,
    symbol_error_rate,
)

RNG = np.random.default_rng(0)
Y = RNG.normal(size=(200, 1))

# ---------------------------------------------------------------------------------------------------------
# NMSE / NRMSE
# ---------------------------------------------------------------------------------------------------------


def test_nmse_perfect_prediction_is_zero():
    assert nmse(Y, Y) == 0.0
    assert nrmse(Y, Y) == 0.0


def test_nmse_predicting_the_mean_is_one():
    assert nmse(Y, np.full_like(Y, Y.mean())) == pytest.approx(1.0, rel=1e-12)


def test_nmse_closed_form_for_constant_offset():
    # y_hat = y + c: mean squared error c^2, so NMSE = c^2 / Var(y).
    y = np.array([0.0, 1.0, 2.0, 3.0])  # Var = 1.25
    assert nmse(y, y + 0.5) == pytest.approx(0.25 / 1.25)
    assert nrmse(y, y + 0.5) == pytest.approx(np.sqrt(0.2))


def test_nmse_multi_output_averages_per_output_nmse():
    y = np.column_stack([np.arange(4.0), 10 * np.arange(4.0)])
    y_hat = y + np.array([0.5, 1.0])
    expected = 0.5 * (0.25 / 1.25 + 1.0 / 125.0)
    assert nmse(y, y_hat) == pytest.approx(expected)


def test_nmse_accepts_1d_and_2d_alike():
    assert nmse(Y.ravel(), 0.5 * Y.ravel()) == pytest.approx(nmse(Y, 0.5 * Y))


def test_nmse_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="y_true and y_pred must have the same shape"):
        nmse(Y, Y[:-1])


def test_nmse_rejects_nan():
    bad = Y.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="y_pred must be finite"):
        nmse(Y, bad)


def test_nmse_rejects_constant_target():
    with pytest.raises(ValueError, match="y_true must not be constant"):
        nmse(np.ones((10, 1)), np.zeros((10, 1)))


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (30, 2), elements=finite),
    arrays(np.float64, (30, 2), elements=finite),
    st.floats(1e-3, 1e3),
)
def test_nmse_scale_invariant_and_non_negative(y, y_hat, scale):
    if np.any(y.var(axis=0) < 1e-6):
        return  # constant targets are rejected by design
    value = nmse(y, y_hat)
    assert value >= 0.0
    assert nmse(scale * y, scale * y_hat) == pytest.approx(value, rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (25,), elements=finite), st.floats(-1e3, 1e3))
def test_nmse_shift_invariant(y, shift):
    if y.var() < 1e-3:
        return
    y_hat = np.roll(y, 1)
    assert nmse(y + shift, y_hat + shift) == pytest.approx(nmse(y, y_hat), rel=1e-6, abs=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Symbol error rate
# ---------------------------------------------------------------------------------------------------------


def test_decide_symbols_nearest():
    np.testing.assert_array_equal(
        decide_symbols(np.array([-7.0, -2.1, -1.9, 0.2, 1.99, 2.01, 40.0])), [-3, -3, -1, 1, 1, 3, 3]
    )


def test_symbol_error_rate_hand_built():
    d = np.array([-3, -1, 1, 3, 3, -1, 1, -3], dtype=float)
    assert symbol_error_rate(d, d) == 0.0
    assert symbol_error_rate(d, d + 0.9) == 0.0  # still nearest to the right symbol
    # Two of eight decisions wrong: 3 -> 0.5 (decides 1) and -1 -> -2.5 (decides -3).
    pred = d.copy()
    pred[3], pred[5] = 0.5, -2.5
    assert symbol_error_rate(d, pred) == pytest.approx(2 / 8)
    assert symbol_error_rate(d.reshape(-1, 1), pred.reshape(-1, 1)) == pytest.approx(0.25)


def test_symbol_error_rate_custom_alphabet():
    assert symbol_error_rate(
        np.array([0.0, 1.0, 1.0]), np.array([0.4, 0.6, 0.2]), symbols=np.array([0, 1])
    ) == (pytest.approx(1 / 3))


def test_symbol_error_rate_rejects_unknown_symbol():
    with pytest.raises(ValueError, match="d_true must contain only symbols"):
        symbol_error_rate(np.array([1.0, 2.0]), np.array([1.0, 2.0]))


def test_symbol_error_rate_rejects_mismatch():
    with pytest.raises(ValueError, match="d_pred_continuous"):
        symbol_error_rate(np.ones(3), np.ones(4))


# ---------------------------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------------------------


def test_accuracy():
    assert accuracy(np.array([0, 1, 2, 3]), np.array([0, 1, 0, 3])) == 0.75
    assert accuracy(np.arange(10), np.arange(10)) == 1.0
    with pytest.raises(ValueError, match="labels_true and labels_pred"):
        accuracy(np.arange(3), np.arange(4))
    with pytest.raises(ValueError, match="labels_true"):
        accuracy(np.zeros((2, 2)), np.zeros((2, 2)))


# ---------------------------------------------------------------------------------------------------------
# Memory capacity
# ---------------------------------------------------------------------------------------------------------


def test_memory_capacity_perfect_predictions():
    targets = RNG.uniform(-0.5, 0.5, size=(500, 12))
    total, per_delay = memory_capacity(targets, targets)
    assert total == pytest.approx(12.0)
    np.testing.assert_allclose(per_delay, 1.0)


def test_memory_capacity_is_squared_pearson_correlation():
    targets = RNG.normal(size=(400, 3))
    predictions = np.column_stack(
        [
            2.0 * targets[:, 0] + 1.0,  # affine copy: r^2 = 1
            -targets[:, 1],  # sign flip: r^2 = 1
            RNG.normal(size=400),  # independent
        ]
    )
    total, per_delay = memory_capacity(targets, predictions)
    expected_last = np.corrcoef(targets[:, 2], predictions[:, 2])[0, 1] ** 2
    np.testing.assert_allclose(per_delay, [1.0, 1.0, expected_last], rtol=1e-10)
    assert total == pytest.approx(2.0 + expected_last)


def test_memory_capacity_constant_prediction_scores_zero():
    targets = RNG.normal(size=(50, 2))
    predictions = np.column_stack([targets[:, 0], np.full(50, 0.3)])
    np.testing.assert_allclose(memory_capacity(targets, predictions)[1], [1.0, 0.0])


def test_memory_capacity_rejects_bad_input():
    with pytest.raises(ValueError, match="targets_delayed and predictions"):
        memory_capacity(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="targets_delayed must not have a constant column"):
        memory_capacity(np.zeros((10, 2)), RNG.normal(size=(10, 2)))


# ---------------------------------------------------------------------------------------------------------
# NRMSE84
# ---------------------------------------------------------------------------------------------------------


def test_nrmse84_uses_step_84_only():
    n_trials, n_free = 20, 100
    y_true = RNG.normal(size=(n_trials, n_free))
    y_pred = y_true + 10.0  # wrong everywhere ...
    errors = RNG.normal(scale=1e-3, size=n_trials)
    y_pred[:, 83] = y_true[:, 83] + errors  # ... except at the 84th free-running step
    expected = np.sqrt(np.sum(errors**2) / (n_trials * 0.067))  # Jaeger, GMD Report 148, Eq. 25
    assert nrmse84(y_true, y_pred, signal_variance=0.067) == pytest.approx(expected)
    assert nrmse84(y_true[..., None], y_pred[..., None], signal_variance=0.067) == pytest.approx(expected)
    assert nrmse84(y_true[:, :84], y_pred[:, :84], signal_variance=0.067) == pytest.approx(expected)


def test_nrmse84_rejects_bad_input():
    y = np.zeros((5, 83))
    with pytest.raises(ValueError, match="step=84"):
        nrmse84(y, y, signal_variance=0.1)
    with pytest.raises(ValueError, match="signal_variance"):
        nrmse84(np.zeros((5, 90)), np.zeros((5, 90)), signal_variance=0.0)
    with pytest.raises(ValueError, match="y_true and y_pred"):
        nrmse84(np.zeros((5, 90)), np.zeros((4, 90)), signal_variance=1.0)
