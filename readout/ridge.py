"""Ridge regression readouts, fitted from sufficient statistics.

Everything is computed from the statistics of the data, ``n, Σx, Σy, XᵀX, XᵀY, Σy²``, accumulated in float64
over any number of chunks and sequences.  One-shot fitting, streamed fitting (a long run never needs all its
states in memory), cross-validated choice of the regularisation and a fit distributed over workers are
then the same computation: add statistics, solve.

The intercept is not penalised: the problem is solved on centred data,
``(XcᵀXc + αI) W = XcᵀYc``, ``b = ȳ − x̄ᵀW``, with ``XcᵀXc = XᵀX − n x̄x̄ᵀ``.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import scipy.linalg

from readout.linear import LinearReadout
from readout.losses import nmse
from reservoir.validation import (
    NON_NEGATIVE,
    POSITIVE_INT,
    check_array,
    check_instance,
    check_not_constant,
    check_same_length,
    check_scalar,
    check_washout,
)


@dataclasses.dataclass(frozen=True)
class RidgeStatistics:
    """Sufficient statistics of (features, targets) pairs; add two of them to pool their data."""

    count: int
    sum_x: np.ndarray  # (F,)
    sum_y: np.ndarray  # (O,)
    xtx: np.ndarray  # (F, F)
    xty: np.ndarray  # (F, O)
    yty: np.ndarray  # (O,) per-output Σy², to score held-out folds without their data

    def __add__(self, other: RidgeStatistics) -> RidgeStatistics:
        return _fieldwise(operator.add, self, other)

    def __sub__(self, other: RidgeStatistics) -> RidgeStatistics:
        return _fieldwise(operator.sub, self, other)

    @property
    def n_features(self) -> int:
        """F, the number of feature columns summarised."""
        return self.sum_x.shape[0]

    def squared_error(self, readout: LinearReadout) -> np.ndarray:
        """Σ (y − xᵀW − b)² per output of the linear ``readout``, from the statistics alone."""
        coef, intercept = readout.W, readout.b
        return (self.yty - 2 * np.einsum("fo,fo->o", coef, self.xty) - 2 * intercept * self.sum_y
                + np.einsum("fo,fg,go->o", coef, self.xtx, coef) + 2 * intercept * (self.sum_x @ coef)
                + self.count * intercept**2)

    def target_variance(self) -> np.ndarray:
        """Var y = Σy²/n − ȳ² per output (O,): the normaliser of an NMSE, from the statistics alone."""
        mean = self.sum_y / self.count
        return self.yty / self.count - mean**2


def _fieldwise(op, a: RidgeStatistics, b: RidgeStatistics) -> RidgeStatistics:
    return RidgeStatistics(*(op(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)))


def as_samples(name: str, value: Any, washout: int = 0) -> np.ndarray:
    """(T, F) or (B, T, F) -> (samples, F) float64 rows, the first ``washout`` steps of every sequence dropped."""
    value = check_array(name, value, (2, 3))
    if washout:
        value = value[..., washout:, :]
    return np.asarray(value, np.float64).reshape(-1, value.shape[-1])


def ridge_statistics(features: Any, targets: Any, washout: int = 0) -> RidgeStatistics:
    """Statistics of ``features`` (T, F) or (B, T, F) and ``targets`` (T, O) or (B, T, O), after washout."""
    features = check_array("features", features, (2, 3), nonempty=True)
    targets = check_array("targets", targets, (2, 3), nonempty=True)
    check_same_length("features", features, "targets", targets)
    washout = check_washout(washout, features.shape[-2])
    n_features, n_outputs = features.shape[-1], targets.shape[-1]
    stats = RidgeStatistics(0, np.zeros(n_features), np.zeros(n_outputs), np.zeros((n_features, n_features)),
                            np.zeros((n_features, n_outputs)), np.zeros(n_outputs))
    # Sequence by sequence and CHUNK_ROWS rows at a time: each block is cast to float64 while it is in cache,
    # never the whole (possibly float32, possibly GiB-sized) array at once.
    for x, y in zip(features.reshape(-1, *features.shape[-2:]), targets.reshape(-1, *targets.shape[-2:]),
                    strict=True):
        for rows in _row_blocks(washout, len(x)):
            stats = stats + _block_statistics(np.asarray(x[rows], np.float64), np.asarray(y[rows], np.float64))
    return stats


CHUNK_ROWS = 4096  # 16 MiB of float64 features at F = 500: large enough for BLAS, small enough for cache


def _row_blocks(start: int, stop: int) -> Iterator[slice]:
    """Rows start … stop − 1 in slices of CHUNK_ROWS: float64 work on float32 data, a block in cache at a time."""
    return (slice(i, min(i + CHUNK_ROWS, stop)) for i in range(start, stop, CHUNK_ROWS))


def _block_statistics(X: np.ndarray, Y: np.ndarray) -> RidgeStatistics:
    # X.T @ X of one array is a symmetric rank-k update (syrk): NumPy computes half the products.
    return RidgeStatistics(len(X), X.sum(0), Y.sum(0), X.T @ X, X.T @ Y, np.einsum("to,to->o", Y, Y))


def solve_ridge(stats: RidgeStatistics, alpha: float, fit_intercept: bool = True) -> LinearReadout:
    """The ridge readout ``LinearReadout(W (F, O), b (O,))`` (NumPy float64) from statistics.

    Cholesky on ``XcᵀXc + αI``; when that matrix is singular or too ill-conditioned for Cholesky to be
    trusted (smallest pivot ratio below ~1e-7, i.e. condition number above ~1e14), an SVD least-squares
    solve (LAPACK gelsd) is used instead.
    """
    check_instance("stats", stats, RidgeStatistics)
    alpha = check_scalar("alpha", alpha, NON_NEGATIVE)
    if stats.count < 1:
        raise ValueError(f"stats must summarise at least one sample, got count = {stats.count}")
    if fit_intercept:
        mean_x, mean_y = stats.sum_x / stats.count, stats.sum_y / stats.count
        gram = stats.xtx - stats.count * np.outer(mean_x, mean_x)
        cross = stats.xty - stats.count * np.outer(mean_x, mean_y)
    else:
        gram, cross = stats.xtx, stats.xty
    system = gram + alpha * np.eye(stats.n_features)
    coef = _solve_spd(system, cross)
    intercept = mean_y - mean_x @ coef if fit_intercept else np.zeros(cross.shape[1])
    return LinearReadout(coef, intercept)


def _solve_spd(system: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    # NumPy's LAPACK, not SciPy's: the statistics were just accumulated by NumPy's BLAS, whose idle threads
    # keep spinning for a while; a second library's thread pool (SciPy ships its own OpenBLAS) then fights
    # them for the cores, which made a 500 × 500 Cholesky take 0.1 s instead of 3 ms on 2 cores.
    # The two triangular solves after it are SciPy's, but single-threaded at these sizes.
    try:
        factor = np.linalg.cholesky(system)
        pivots = np.abs(np.diag(factor))
        if pivots.min() > 1e-7 * pivots.max():
            return scipy.linalg.cho_solve((factor, True), rhs, check_finite=False)
    except np.linalg.LinAlgError:
        pass
    return scipy.linalg.lstsq(system, rhs, lapack_driver="gelsd", check_finite=False)[0]


class StreamingRidge:
    """Accumulate statistics chunk by chunk (or sequence by sequence), then solve once.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X, Y = rng.normal(size=(300, 5)), rng.normal(size=(300, 2))
        >>> acc = StreamingRidge(alpha=1e-6)
        >>> for states, targets in zip(np.split(X, 3), np.split(Y, 3)):  # each (T_k, N) and (T_k, O)
        ...     acc = acc.update(states, targets)
        >>> readout = acc.to_ridge()            # a fitted Ridge, the same as one fit on all the data
        >>> np.allclose(readout.predict(X), Ridge(alpha=1e-6).fit(X, Y).predict(X))
        True
    """

    def __init__(self, alpha: float = 1e-6, fit_intercept: bool = True) -> None:
        self.alpha = check_scalar("alpha", alpha, NON_NEGATIVE)
        self.fit_intercept = fit_intercept
        self.statistics: RidgeStatistics | None = None

    def update(self, features: Any, targets: Any, washout: int = 0) -> StreamingRidge:
        """Add a chunk's statistics: ``features`` (T, F) or (B, T, F), ``targets`` with the same leading axes,
        their first ``washout`` steps dropped; the columns must match earlier chunks'.  Returns ``self``."""
        stats = ridge_statistics(features, targets, washout)
        if self.statistics is not None:
            for name, new, old in (("features", stats.n_features, self.statistics.n_features),
                                   ("targets", stats.sum_y.shape[0], self.statistics.sum_y.shape[0])):
                if new != old:
                    raise ValueError(f"{name} must have {old} columns like earlier chunks, got {new}")
        self.statistics = stats if self.statistics is None else self.statistics + stats
        return self

    def to_ridge(self) -> Ridge:
        """The ``Ridge`` readout solved from everything added so far (what one ``fit`` on all of it gives)."""
        if self.statistics is None:
            raise ValueError("no data: call update(features, targets) at least once before to_ridge()")
        ridge = Ridge(self.alpha, self.fit_intercept)
        ridge.readout_ = solve_ridge(self.statistics, self.alpha, self.fit_intercept)
        return ridge


class Ridge:
    """Linear readout ``y = x W + b`` fitted by ridge regression, scikit-learn style.

    ``fit(features, targets, washout=0)`` accepts (T, F) or (B, T, F) arrays (then (T, O) / (B, T, O)
    targets; a 1-D target is treated as one output) and drops the first ``washout`` steps of every
    sequence; ``predict`` returns an array shaped like the features with F replaced by O.  The fit is held
    in ``readout_``, a ``LinearReadout`` of NumPy float64 arrays (None before ``fit``); ``coef_`` (F, O) and
    ``intercept_`` (O,) are its ``W`` and ``b`` under scikit-learn's names.
    """

    readout_: LinearReadout | None
    """The fitted readout, ``W`` (F, O) and ``b`` (O,) as NumPy float64 arrays; None before ``fit``."""

    def __init__(self, alpha: float = 1e-6, fit_intercept: bool = True) -> None:
        self.alpha = check_scalar("alpha", alpha, NON_NEGATIVE)
        self.fit_intercept = fit_intercept
        self.readout_ = None

    @property
    def coef_(self) -> np.ndarray | None:
        """The weights W (F, O) of ``readout_`` (None before ``fit``)."""
        return None if self.readout_ is None else self.readout_.W

    @property
    def intercept_(self) -> np.ndarray | None:
        """The intercept b (O,) of ``readout_`` (None before ``fit``)."""
        return None if self.readout_ is None else self.readout_.b

    def fit(self, features: Any, targets: Any, washout: int = 0) -> Ridge:
        """Solve (XcᵀXc + αI) W = XcᵀYc, b = ȳ − x̄ᵀW (Hoerl & Kennard, Technometrics 12, 55 (1970); the
        intercept unpenalised) on the samples after ``washout``; sets ``readout_`` (``coef_`` (F, O) and
        ``intercept_`` (O,)), returns ``self``."""
        stats = ridge_statistics(features, _as_2d_targets(targets), washout)
        self.readout_ = solve_ridge(stats, self.alpha, self.fit_intercept)
        return self

    def predict(self, features: Any) -> np.ndarray:
        """x W + b for (F,), (T, F) or (B, T, F) ``features``: an array of the same leading shape, F → O."""
        readout = self._fitted()
        features = check_array("features", features, (1, 2, 3), {-1: readout.n_features})
        rows = features.reshape(-1, features.shape[-1])
        outputs = np.empty((len(rows), readout.n_outputs))
        for block in _row_blocks(0, len(rows)):
            outputs[block] = readout(np.asarray(rows[block], np.float64))
        return outputs.reshape(*features.shape[:-1], readout.n_outputs)

    def score(self, features: Any, targets: Any) -> float:
        """Normalised mean squared error (lower is better), averaged over outputs (``readout.losses.nmse``)."""
        readout = self._fitted()
        features = check_array("features", features, (2, 3), {-1: readout.n_features}, nonempty=True)
        targets = check_array("targets", _as_2d_targets(targets), (2, 3), {-1: readout.n_outputs})
        check_same_length("features", features, "targets", targets)
        prediction = self.predict(features).reshape(-1, readout.n_outputs)
        targets = as_samples("targets", targets)
        check_not_constant("targets", targets)
        return nmse(targets, prediction)

    def _fitted(self) -> LinearReadout:
        if self.readout_ is None:
            raise ValueError("this Ridge is not fitted yet: call fit(features, targets) first")
        return self.readout_


class RidgeCV(Ridge):
    """Ridge whose ``alpha`` is chosen by k-fold cross-validation over ``alphas``, then refitted on all data.

    Folds are contiguous blocks of samples (time order kept: no shuffling of a time series).  Each fold's
    held-out NMSE is computed from statistics alone, so trying many alphas costs one solve each.
    After ``fit``: ``alpha_`` (the choice) and ``cv_scores_`` (mean held-out NMSE per alpha).
    """

    def __init__(self, alphas: Sequence[float] = tuple(10.0 ** np.arange(-10, 1)), n_folds: int = 5,
                 fit_intercept: bool = True) -> None:
        alphas = check_array("alphas", alphas, 1)
        if alphas.size == 0:
            raise ValueError("alphas must hold at least one value, got an empty sequence")
        self.alphas = tuple(check_scalar("alphas[i]", a, NON_NEGATIVE) for a in alphas)
        self.n_folds = check_scalar("n_folds", n_folds, POSITIVE_INT)
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {n_folds}")
        super().__init__(self.alphas[0], fit_intercept)

    def fit(self, features: Any, targets: Any, washout: int = 0) -> RidgeCV:
        """Score every alpha by k-fold cross-validation on the samples after ``washout`` (each fold's statistics
        computed once), keep the lowest mean held-out NMSE in ``alpha_`` and refit on all folds; returns
        ``self``."""
        features = check_array("features", features, (2, 3), nonempty=True)
        targets = check_array("targets", _as_2d_targets(targets), (2, 3), nonempty=True)
        check_same_length("features", features, "targets", targets)
        washout = check_washout(washout, features.shape[-2])
        X, Y = as_samples("features", features, washout), as_samples("targets", targets, washout)
        if len(X) < self.n_folds:
            raise ValueError(f"n_folds={self.n_folds} is more than the {len(X)} samples after washout")
        folds = []
        for index, (x, y) in enumerate(zip(np.array_split(X, self.n_folds), np.array_split(Y, self.n_folds),
                                           strict=True)):
            # A held-out NMSE is normalised by the fold's target variance.
            check_not_constant("targets", y, f" within cross-validation fold {index} of {self.n_folds}")
            folds.append(ridge_statistics(x, y))
        total = sum(folds[1:], folds[0])
        self.cv_scores_ = np.array([cross_validated_nmse(total, folds, a, self.fit_intercept)
                                    for a in self.alphas])
        self.alpha_ = self.alpha = self.alphas[int(np.argmin(self.cv_scores_))]
        self.readout_ = solve_ridge(total, self.alpha, self.fit_intercept)
        return self


def cross_validated_nmse(total: RidgeStatistics, folds: Iterable[RidgeStatistics], alpha: float,
                         fit_intercept: bool = True) -> float:
    """Mean over folds and outputs of the held-out NMSE of a ridge fitted on the other folds."""
    return float(np.mean([held_out_nmse(total - fold, fold, alpha, fit_intercept) for fold in folds]))


def held_out_nmse(fit: RidgeStatistics, held: RidgeStatistics, alpha: float, fit_intercept: bool = True) -> float:
    """NMSE on ``held`` of the ridge readout fitted on ``fit``: mean over outputs of Σ (y − xW − b)² / (n Var y),
    the variance that of the held-out targets (an out-of-sample score, from the statistics alone)."""
    readout = solve_ridge(fit, alpha, fit_intercept)
    return float(np.mean(held.squared_error(readout) / (held.count * held.target_variance())))


def _as_2d_targets(targets: Any) -> np.ndarray:
    targets = check_array("targets", targets, (1, 2, 3))
    return targets[:, None] if targets.ndim == 1 else targets
