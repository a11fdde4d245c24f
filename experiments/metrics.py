"""Task metrics, defined once. Pure NumPy; each function validates its inputs up front.  ``nmse`` is defined
with the losses (``readout.losses``: ridge readouts score with it too) and re-exported here.

Conventions: arrays are laid out (T,) or (T, outputs), time first. Variances are population variances
(``ddof=0``), so predicting the target's own mean gives NMSE exactly 1.
"""

from __future__ import annotations

import numpy as np

from readout.losses import nmse
from reservoir.validation import POSITIVE, POSITIVE_INT, check_array, check_not_constant, check_pair, check_scalar

__all__ = [
    "SYMBOLS",
    "accuracy",
    "decide_symbols",
    "error_rate",
    "memory_capacity",
    "nmse",
    "nrmse",
    "nrmse84",
    "symbol_error_rate",
]


# The 4-PAM alphabet of the channel-equalisation task (Jaeger & Haas 2004): the task draws its symbols from it and
# ``decide_symbols`` maps an equaliser's output back onto it.
SYMBOLS = np.array([-3.0, -1.0, 1.0, 3.0])


def nrmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Normalised root mean squared error, NRMSE = sqrt(:func:`nmse`) (several outputs: of the mean NMSE)."""
    return float(np.sqrt(nmse(y_true, y_pred)))


def decide_symbols(d_pred: np.ndarray, symbols: np.ndarray = SYMBOLS) -> np.ndarray:
    """Nearest-symbol decision: each value replaced by the closest entry of ``symbols``.

    A value exactly halfway between two symbols goes to the smaller one (``np.argmin`` takes the first).
    """
    d_pred = check_array("d_pred", d_pred, ndim=(1, 2))
    symbols = np.sort(check_array("symbols", symbols, ndim=1).astype(np.float64))
    if symbols.size == 0:
        raise ValueError("symbols must hold at least one symbol, got an empty array")
    return symbols[np.argmin(np.abs(d_pred[..., None] - symbols), axis=-1)]


def symbol_error_rate(
    d_true: np.ndarray, d_pred_continuous: np.ndarray, symbols: np.ndarray = SYMBOLS
) -> float:
    """Symbol error rate (Jaeger & Haas 2004): the fraction of nearest-symbol decisions that are wrong.

    Args:
        d_true: transmitted symbols, shape (T,) or (T, 1), each one of ``symbols``.
        d_pred_continuous: equaliser output before the decision, same shape.
        symbols: the alphabet, default {-3, -1, 1, 3}.
    """
    d_true, d_pred = check_pair("d_true", d_true, "d_pred_continuous", d_pred_continuous, ndim=(1, 2))
    symbols = check_array("symbols", symbols, ndim=1).astype(np.float64)
    unknown = ~np.isin(d_true, symbols)
    if np.any(unknown):
        raise ValueError(
            f"d_true must contain only symbols from {symbols.tolist()}, got {d_true[unknown].flat[0]!r}"
        )
    return float(np.mean(decide_symbols(d_pred, symbols) != d_true))


def accuracy(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Classification accuracy: the fraction of positions where ``labels_pred`` equals ``labels_true``.

    Args:
        labels_true, labels_pred: integer (or any comparable) labels, shape (n,) each.
    """
    labels_true = check_array("labels_true", labels_true, ndim=1)
    labels_pred = check_array("labels_pred", labels_pred, ndim=1)
    if labels_true.shape != labels_pred.shape:
        raise ValueError(
            "labels_true and labels_pred must have the same shape, "
            f"got {labels_true.shape} and {labels_pred.shape}"
        )
    if labels_true.size == 0:
        raise ValueError("labels_true must hold at least one label, got an empty array")
    return float(np.mean(labels_true == labels_pred))


def error_rate(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Classification error rate, 1 - :func:`accuracy`: the fraction of wrong labels."""
    return 1.0 - accuracy(labels_true, labels_pred)


def memory_capacity(targets_delayed: np.ndarray, predictions: np.ndarray) -> tuple[float, np.ndarray]:
    """Short-term memory capacity (Jaeger 2002, GMD Report 152).

    MC = sum_{k=1}^{K} MC_k,  MC_k = r^2(u(n-k), y_k(n)) = cov^2(u(n-k), y_k(n)) / (Var(u(n-k)) Var(y_k(n))),

    the squared Pearson correlation between column k of the delayed inputs and the readout trained for delay
    k, on held-out data (the caller has already removed the washout). A constant prediction column carries no
    information about the target and scores MC_k = 0.

    Args:
        targets_delayed: (T, K), column k-1 is u(n-k); no column may be constant.
        predictions: (T, K), readout outputs for the same delays.

    Returns:
        (total, per_delay): the sum MC and the (K,) curve MC_k, each MC_k in [0, 1].
    """
    targets, predictions = check_pair("targets_delayed", targets_delayed, "predictions", predictions, ndim=2)
    if targets.shape[0] < 2:
        raise ValueError(f"targets_delayed must hold at least 2 time steps, got shape {targets.shape}")
    check_not_constant("targets_delayed", targets)
    informative = np.ptp(predictions, axis=0) > 0.0
    targets = targets - targets.mean(axis=0)
    predictions = predictions - predictions.mean(axis=0)
    covariance = np.sum(targets * predictions, axis=0)
    power = np.sum(targets**2, axis=0) * np.sum(predictions**2, axis=0)
    per_delay = np.zeros(targets.shape[1])
    per_delay[informative] = covariance[informative] ** 2 / power[informative]
    per_delay = np.clip(per_delay, 0.0, 1.0)  # rounding can push r^2 of identical columns a hair above 1
    return float(per_delay.sum()), per_delay


def nrmse84(y_true: np.ndarray, y_pred: np.ndarray, signal_variance: float, step: int = 84) -> float:
    """Jaeger's NRMSE84 for Mackey-Glass free-running prediction (GMD Report 148, 2001, §6.3.1, Eq. 25).

    NRMSE84 = sqrt( sum_{i=1}^{n_trials} (y_i(n+84) - y_hat_i(n+84))^2 / (n_trials * sigma^2) )

    Only the 84th free-running step of each trial enters; sigma^2 is the variance of the original signal
    (Jaeger: sigma^2 ~ 0.067 for tau = 30). Verified in the report: each trial is 1000 teacher-forced steps
    then an 84-step free run; y and y_hat are compared "after retransformation to the original coordinates"
    (the network sees tanh(y - 1), so pass arctanh(.) + 1 of the network output here); 50 trials for tau = 30
    and 20 trials for tau = 17 (NRMSE84 ~ 2.8e-4 / 1.2e-4 from 3000 / 21000 training steps).

    Args:
        y_true, y_pred: free-running continuations, shape (n_trials, n_free) or (n_trials, n_free, 1) with
            n_free >= ``step``; column 0 is the first free-running step, so step 84 is column 83.
        signal_variance: sigma^2 of the original signal, > 0.
        step: the prediction horizon (1-based), 84 in the protocol.
    """
    y_true, y_pred = check_pair("y_true", y_true, "y_pred", y_pred, ndim=(2, 3))
    if y_true.ndim == 3 and y_true.shape[2] != 1:
        raise ValueError(f"y_true must have one feature on its last axis, got shape {y_true.shape}")
    step = check_scalar("step", step, POSITIVE_INT)
    signal_variance = check_scalar("signal_variance", signal_variance, POSITIVE)
    if y_true.shape[1] < step:
        raise ValueError(
            f"y_true must hold at least step={step} free-running steps on axis 1, got shape {y_true.shape}"
        )
    errors = y_true[:, step - 1].ravel() - y_pred[:, step - 1].ravel()
    return float(np.sqrt(np.mean(errors**2) / signal_variance))
