"""No-reservoir baselines, fitted with the same validation protocol as the reservoirs.

A reservoir result means little unless it beats what needs no reservoir at all. Every baseline here takes a
task's :class:`~experiments.tasks.TaskData`, chooses its hyperparameters on the validation part only (fitted on
``train``, scored on ``validation``), re-fits the chosen one on train + validation and reads the test part
once, at the end:

Time series (``kind="regression"``: NARMA10, channel equalisation, variable delay):

* ``linear_taps`` — a tapped delay line with a ridge readout, ŷ(t) = w₀ + Σ_{k<K} w_k·u(t−k): a linear FIR
  filter (for the channel, the classic linear equaliser). Grid: K ∈ ``LINEAR_TAPS``.
* ``volterra_taps`` — a second-order Volterra filter: the same taps plus every product u_i(t−k) u_j(t−l),
  (k, i) ≤ (l, j), fitted by ridge (M. Schetzen, "The Volterra and Wiener Theories of Nonlinear Systems",
  1980; for channels, S. Benedetto & E. Biglieri, IEEE Trans. Commun. 31, 1983). Grid: K ∈ ``VOLTERRA_TAPS``.

Sequence classification (``kind="classification"``: Japanese vowels, MNIST-1D, digits), on the raw
sequence flattened to one vector (a variable-length sequence first resampled to the longest length by linear
interpolation over its own duration), standardised with the fitting part's mean and deviation:

* ``ridge_raw`` — ridge regression on one-hot targets, argmax decision.
* ``logistic_raw`` — multinomial logistic regression (scikit-learn, L-BFGS); C ∈ ``LOGISTIC_C``.
* ``mlp_raw`` — a ReLU multilayer perceptron with two hidden layers of 100 units (the size of Greydanus
  2020's MNIST-1D MLP), Adam at learning rate 1e-3, batch 100, ``MLP_EPOCHS`` epochs (scikit-learn's
  ``MLPClassifier``, seeded by the split's seed); the L2 penalty chosen on validation from ``MLP_GRID``.

Ridge's α is chosen on validation from ``ALPHAS`` in every ridge baseline. Regression baselines are selected
by validation NMSE (continuous; 2000 validation symbols cannot separate error rates below 5e-4), then scored
with the task's own metric (NMSE or SER). Classification is selected by validation error rate, ties broken by
the validation MSE (ridge) or log-loss (logistic, MLP).

``ridge_readout`` runs the same protocol on any features, so a reservoir's states are scored exactly as the
baselines' taps are (``experiments.benchmarks`` uses it).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from experiments import metrics
from experiments.tasks import Part, TaskData
from readout import LinearReadout, one_hot, ridge_statistics, solve_ridge
from readout.losses import mean_squared_error
from reservoir.validation import POSITIVE_INT, check_array, check_choice, check_instance, check_scalar

__all__ = [
    "ALPHAS",
    "BASELINES",
    "BaselineResult",
    "Features",
    "fit_baseline",
    "raw_features",
    "ridge_readout",
    "select_ridge",
    "series_features",
    "tapped_delay_line",
    "volterra_features",
]

ALPHAS = tuple(10.0 ** np.arange(-8, 3))
LINEAR_TAPS = (1, 2, 5, 10, 15, 20, 30, 40)
VOLTERRA_TAPS = (2, 5, 10, 15, 20)
LOGISTIC_C = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
MLP_GRID = {"hidden": (100,), "l2": (1e-4, 1e-2)}
MLP_EPOCHS = 100
_TEST_BLOCK = 20_000

BASELINES = {"regression": ("linear_taps", "volterra_taps"),
             "classification": ("ridge_raw", "logistic_raw", "mlp_raw")}


class BaselineResult(NamedTuple):
    """A fitted baseline: the test metric (read once), the validation score it was chosen by, and the
    hyperparameters chosen."""

    test: float
    validation: float
    hyperparameters: dict[str, Any]


class Features(NamedTuple):
    """Feature rows aligned with a task's targets: ``train`` (after the washout), ``validation``, ``test``."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


# ----------------------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------------------


def tapped_delay_line(inputs: np.ndarray, n_taps: int) -> np.ndarray:
    """Taps of a (T, D) series: row t is [u(t), u(t−1), …, u(t−K+1)] (each D wide), zeros before t = 0.

    Returns:
        (T, K·D) float64; column k·D + d is u_d(t − k).
    """
    inputs = check_array("inputs", inputs, 2).astype(np.float64)
    n_taps = check_scalar("n_taps", n_taps, POSITIVE_INT)
    padded = np.concatenate([np.zeros((n_taps - 1, inputs.shape[1])), inputs])
    n_steps = len(inputs)
    return np.concatenate([padded[n_taps - 1 - k: n_taps - 1 - k + n_steps] for k in range(n_taps)], axis=1)


def volterra_features(inputs: np.ndarray, n_taps: int) -> np.ndarray:
    """Second-order Volterra features: the K·D taps then every product of two taps (squares included),
    K·D + K·D(K·D+1)/2 columns."""
    taps = tapped_delay_line(inputs, n_taps)
    first, second = np.triu_indices(taps.shape[1])
    return np.concatenate([taps, taps[:, first] * taps[:, second]], axis=1)


def series_features(split: TaskData, features: np.ndarray) -> Features:
    """Cut features of the whole series (train | validation | test, (T_total, F)) into aligned parts."""
    check_instance("split", split, TaskData)
    n_train, n_validation = len(split.train.inputs), len(split.validation.inputs)
    features = check_array("features", features, 2, {0: n_train + n_validation + len(split.test.inputs)})
    return Features(features[split.washout:n_train], features[n_train:n_train + n_validation],
                    features[n_train + n_validation:])


def raw_features(part: Part, length: int | None = None) -> np.ndarray:
    """A batch of sequences as flat vectors (B, length·D): each sequence's ``lengths[b]`` valid steps
    resampled to ``length`` steps by linear interpolation over its own duration (kept as they are when
    ``length`` equals the sequence's), then flattened time-major. ``length`` defaults to the padded length."""
    inputs = check_array("part.inputs", part.inputs, 3).astype(np.float64)
    length = inputs.shape[1] if length is None else check_scalar("length", length, POSITIVE_INT)
    lengths = np.full(len(inputs), inputs.shape[1]) if part.lengths is None else np.asarray(part.lengths)
    out = np.empty((len(inputs), length, inputs.shape[2]))
    grid = np.linspace(0.0, 1.0, length)
    for row, sequence, valid in zip(out, inputs, lengths, strict=True):
        if valid == length:
            row[:] = sequence[:valid]
            continue
        own = np.linspace(0.0, 1.0, valid)
        for channel in range(inputs.shape[2]):
            row[:, channel] = np.interp(grid, own, sequence[:valid, channel])
    return out.reshape(len(inputs), -1)


def _standardised(features: Features) -> Features:
    """Every part standardised with the fitting data's (train + validation) mean and deviation."""
    fit = np.concatenate([features.train, features.validation])
    mean, std = fit.mean(0), fit.std(0)
    std[std == 0] = 1.0
    return Features(*((part - mean) / std for part in features))


def _classification_features(split: TaskData) -> Features:
    length = int(max(part.inputs.shape[1] for part in (split.train, split.validation, split.test)))
    return _standardised(Features(*(raw_features(part, length)
                                    for part in (split.train, split.validation, split.test))))


# ----------------------------------------------------------------------------------------------------------
# The ridge protocol, shared with the reservoirs
# ----------------------------------------------------------------------------------------------------------


def _targets(split: TaskData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regression targets or one-hot labels of train (after the washout), validation and test."""
    if split.kind == "classification":
        return tuple(one_hot(part.targets, split.n_classes) for part in (split.train, split.validation,
                                                                          split.test))
    return split.train.targets[split.washout:], split.validation.targets, split.test.targets


def _validation_key(split: TaskData, truth: np.ndarray, prediction: np.ndarray) -> tuple[float, float]:
    """(selection score, tie-break): NMSE for regression; error rate then one-hot MSE for classification."""
    if split.kind == "classification":
        return (metrics.error_rate(split.validation.targets, prediction.argmax(-1)),
                float(mean_squared_error(truth, prediction)))
    return metrics.nmse(truth, prediction), 0.0


def select_ridge(split: TaskData, train: np.ndarray, validation: np.ndarray,
                 alphas: Sequence[float] = ALPHAS) -> tuple[LinearReadout, float, float]:
    """α chosen on validation, then the readout re-fitted on train + validation.

    The statistics of train and validation are accumulated once; every α costs one solve.

    Returns:
        (readout, validation score, alpha): the re-fitted ``LinearReadout`` (NumPy float64), the best
        validation score (NMSE, or error rate for classification) and its α.
    """
    check_instance("split", split, TaskData)
    y_train, y_validation, _ = _targets(split)
    check_array("features.train", train, 2, {0: len(y_train)})
    check_array("features.validation", validation, 2, {0: len(y_validation), 1: train.shape[1]})
    train_stats = ridge_statistics(train, y_train)
    best = None
    for alpha in alphas:
        key = _validation_key(split, y_validation, solve_ridge(train_stats, alpha)(validation))
        if best is None or key < best[0]:
            best = (key, alpha)
    (score, _), alpha = best
    readout = solve_ridge(train_stats + ridge_statistics(validation, y_validation), alpha)
    return readout, score, float(alpha)


def ridge_readout(split: TaskData, features: Features, alphas: Sequence[float] = ALPHAS) -> BaselineResult:
    """Ridge readout on ``features``: α chosen on validation, re-fitted on train + validation, tested once.

    Returns the test metric of the task (``split.metric``), the best validation score (NMSE or error rate)
    and that α.
    """
    readout, score, alpha = select_ridge(split, features.train, features.validation, alphas)
    check_array("features.test", features.test, 2, {0: len(split.test.targets), 1: readout.n_features})
    return BaselineResult(split.score(split.test, readout(features.test)), score, {"alpha": alpha})


# ----------------------------------------------------------------------------------------------------------
# The baselines
# ----------------------------------------------------------------------------------------------------------


def _taps(split: TaskData, expand: Callable[[np.ndarray, int], np.ndarray],
          taps_grid: Sequence[int]) -> BaselineResult:
    """Ridge on tap features, the number of taps and α chosen on validation. The test part's features are
    built and applied in blocks of ``_TEST_BLOCK`` steps: 2·10⁵ channel symbols × 230 Volterra features
    would take 370 MB at once."""
    series = split.series_inputs()
    n_train, n_fit = len(split.train.inputs), len(split.train.inputs) + len(split.validation.inputs)
    fits = []
    for n_taps in taps_grid:
        fit_features = expand(series[:n_fit], n_taps)
        readout, score, alpha = select_ridge(split, fit_features[split.washout:n_train],
                                             fit_features[n_train:], ALPHAS)
        fits.append((score, n_taps, alpha, readout))
    score, n_taps, alpha, readout = min(fits, key=lambda fit: fit[0])
    prediction = np.concatenate([
        readout(expand(series[start - n_taps + 1:start + _TEST_BLOCK], n_taps)[n_taps - 1:])
        for start in range(n_fit, len(series), _TEST_BLOCK)])
    return BaselineResult(split.score(split.test, prediction), score, {"taps": n_taps, "alpha": alpha})


def _sklearn_classifier(split: TaskData, make: Callable[..., Any],
                        grid: dict[str, Sequence[Any]]) -> BaselineResult:
    """A scikit-learn classifier on the raw features, its grid point chosen on validation (error rate, then
    log-loss), re-fitted on train + validation, tested once."""
    features = _classification_features(split)
    best = None
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values, strict=True))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: the iteration budget is part of the method
            model = make(**point).fit(features.train, split.train.targets)
        probabilities = model.predict_proba(features.validation)
        picked = probabilities[np.arange(len(probabilities)), split.validation.targets]
        key = (metrics.error_rate(split.validation.targets, model.classes_[probabilities.argmax(-1)]),
               float(-np.mean(np.log(np.maximum(picked, 1e-300)))))
        if best is None or key < best[0]:
            best = (key, point)
    (score, _), point = best
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make(**point).fit(np.concatenate([features.train, features.validation]),
                                  np.concatenate([split.train.targets, split.validation.targets]))
    test = metrics.error_rate(split.test.targets, model.predict(features.test))
    return BaselineResult(test, score, point)


def _logistic(split: TaskData) -> BaselineResult:
    from sklearn.linear_model import LogisticRegression

    return _sklearn_classifier(split, lambda C: LogisticRegression(C=C, max_iter=2000), {"C": LOGISTIC_C})


def _mlp(split: TaskData) -> BaselineResult:
    from sklearn.neural_network import MLPClassifier

    def make(hidden: int, l2: float):
        return MLPClassifier((hidden, hidden), alpha=l2, batch_size=100, learning_rate_init=1e-3,
                             max_iter=MLP_EPOCHS, random_state=split.seed)

    return _sklearn_classifier(split, make, MLP_GRID)


_FITTERS: dict[str, Callable[[TaskData], BaselineResult]] = {
    "linear_taps": lambda split: _taps(split, tapped_delay_line, LINEAR_TAPS),
    "volterra_taps": lambda split: _taps(split, volterra_features, VOLTERRA_TAPS),
    "ridge_raw": lambda split: ridge_readout(split, _classification_features(split)),
    "logistic_raw": _logistic,
    "mlp_raw": _mlp,
}


def fit_baseline(name: str, split: TaskData) -> BaselineResult:
    """Fit the no-reservoir baseline ``name`` on a task and return its test metric (``.test``, in the
    task's metric: NMSE, SER or error rate), with the validation score and the hyperparameters chosen.

    ``name`` is one of ``BASELINES[split.kind]``. Hyperparameters are chosen on ``split.validation`` only;
    the test part is read once, at the end.

    Example:
        >>> from experiments import tasks
        >>> fit_baseline("volterra_taps", tasks.narma10_task(seed=0)).test  # doctest: +SKIP
    """
    check_instance("split", split, TaskData)
    name = check_choice("name", name, BASELINES[split.kind])
    return _FITTERS[name](split)
