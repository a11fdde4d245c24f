"""Ridge readouts against numpy.linalg.lstsq, streamed vs one-shot, cross-validation, classification helpers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from readout import Ridge, RidgeCV, StreamingRidge, one_hot, pool_states, predict_labels, ridge_statistics
from readout.ridge import cross_validated_nmse, solve_ridge


def data(n=300, f=6, o=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)) + 2.0
    Y = X @ rng.normal(size=(f, o)) - 0.7 + 0.1 * rng.normal(size=(n, o))
    return X, Y


def lstsq_ridge(X, Y, alpha):
    """Independent reference: augmented least squares with an unpenalised intercept column."""
    n, f = X.shape
    A = np.vstack([np.c_[X, np.ones(n)], np.c_[np.sqrt(alpha) * np.eye(f), np.zeros(f)]])
    B = np.vstack([Y, np.zeros((f, Y.shape[1]))])
    W = np.linalg.lstsq(A, B, rcond=None)[0]
    return W[:-1], W[-1]


@pytest.mark.parametrize("alpha", [0.0, 1e-3, 10.0])
def test_ridge_matches_lstsq(alpha):
    X, Y = data()
    coef, intercept = lstsq_ridge(X, Y, alpha)
    r = Ridge(alpha).fit(X, Y)
    np.testing.assert_allclose(r.coef_, coef, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(r.intercept_, intercept, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(r.predict(X), np.c_[X, np.ones(len(X))] @ np.r_[coef, intercept[None]], rtol=1e-9)


def test_washout_drops_the_first_steps_of_every_sequence():
    X, Y = data(n=200)
    batched = Ridge(1e-2).fit(X.reshape(4, 50, -1), Y.reshape(4, 50, -1), washout=10)
    kept = np.concatenate([np.arange(b * 50 + 10, (b + 1) * 50) for b in range(4)])
    coef, intercept = lstsq_ridge(X[kept], Y[kept], 1e-2)
    np.testing.assert_allclose(batched.coef_, coef, rtol=1e-9, atol=1e-10)
    assert batched.predict(X.reshape(4, 50, -1)).shape == (4, 50, 2)


def test_streamed_equals_one_shot():
    X, Y = data(n=1000)
    stream = StreamingRidge(1e-3)
    for chunk in np.array_split(np.arange(1000), 7):
        stream.update(X[chunk], Y[chunk])
    one_shot = Ridge(1e-3).fit(X, Y)
    np.testing.assert_allclose(stream.to_ridge().coef_, one_shot.coef_, rtol=1e-10)


def test_ill_conditioned_problem_falls_back_to_least_squares():
    X, Y = data()
    X = np.c_[X, X[:, :1]]  # an exactly repeated column: singular Gram matrix at alpha = 0
    r = Ridge(0.0).fit(X, Y)
    assert np.all(np.isfinite(r.coef_))
    reference = np.linalg.lstsq(np.c_[X, np.ones(len(X))], Y, rcond=None)[0]
    np.testing.assert_allclose(r.predict(X), np.c_[X, np.ones(len(X))] @ reference, rtol=1e-7, atol=1e-7)


def test_statistics_give_the_held_out_error_of_explicit_folds():
    X, Y = data(n=400)
    folds = np.array_split(np.arange(400), 4)
    explicit = []
    for k, held in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != k])
        pred = Ridge(0.1).fit(X[train], Y[train]).predict(X[held])
        explicit.append(np.mean(np.mean((Y[held] - pred) ** 2, 0) / np.var(Y[held], 0)))
    stats = [ridge_statistics(X[f], Y[f]) for f in folds]
    total = sum(stats[1:], stats[0])
    assert cross_validated_nmse(total, stats, 0.1) == pytest.approx(np.mean(explicit), rel=1e-8)


def test_ridge_cv_picks_the_alpha_with_the_lowest_cv_error():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 40))
    Y = X[:, :1] + rng.normal(size=(60, 1))  # few samples, many features: needs regularisation
    cv = RidgeCV(alphas=[1e-8, 1.0, 10.0, 1e4], n_folds=5).fit(X, Y)
    assert cv.alpha_ == [1e-8, 1.0, 10.0, 1e4][int(np.argmin(cv.cv_scores_))]
    assert cv.alpha_ in (1.0, 10.0)
    np.testing.assert_allclose(cv.coef_, Ridge(cv.alpha_).fit(X, Y).coef_)


def test_classification_helpers():
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="labels"):
        one_hot([0, 3], 3)
    states = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    np.testing.assert_array_equal(pool_states(states, "last"), states[:, -1])
    np.testing.assert_array_equal(pool_states(states, "mean"), states.mean(1))
    assert pool_states(states, "flatten").shape == (2, 12)
    np.testing.assert_array_equal(predict_labels([[0.1, 0.9], [2.0, -1.0]]), [1, 0])


@pytest.mark.parametrize(("call", "name"), [
    (lambda X, Y: Ridge(-1.0), "alpha"),
    (lambda X, Y: Ridge().fit(X, Y[:-1]), "targets"),
    (lambda X, Y: Ridge().fit(X, Y, washout=len(X)), "washout"),
    (lambda X, Y: Ridge().fit(X * np.nan, Y), "features"),
    (lambda X, Y: Ridge().predict(X), "not fitted"),
    (lambda X, Y: RidgeCV(alphas=[]), "alphas"),
    (lambda X, Y: pool_states(X, "max"), "states"),
])
def test_bad_input_is_named(call, name):
    X, Y = data(n=20)
    with pytest.raises((ValueError, TypeError), match=name):
        call(X, Y)


@settings(max_examples=40, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda a: not (a >= 0 and a < float("inf"))))
def test_invalid_alpha_rejected(alpha):
    with pytest.raises(ValueError, match="alpha"):
        solve_ridge(ridge_statistics(*data(n=10)), alpha)
