"""Losses and errors, each defined once: what ``readout.train`` minimises, what ``readout_loss`` compares a
readout's output with, and the NMSE every readout and task is scored by.

``mean_squared_error`` is defined where the lowest layer needs it (``reservoir.trainable``, ``bptt_loss``'s
loss) and re-exported here; it is every readout MSE of the trainers.  ``softmax_cross_entropy`` is for class
labels.  ``nmse`` is the NumPy, float64 score of ``Ridge.score``, the tasks (``experiments.metrics``) and the
devices (``hardware_sim.training.device_nmse``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from reservoir.trainable import mean_squared_error
from reservoir.validation import check_not_constant, check_pair

__all__ = ["LOSSES", "mean_squared_error", "nmse", "softmax_cross_entropy"]


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean over samples of −log softmax(logits)[label]; ``logits`` (..., C), integer ``labels`` (...)."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "mse": mean_squared_error,
    "softmax_cross_entropy": softmax_cross_entropy,
}


def nmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Normalised mean squared error over the test target (as in Jaeger, GMD Report 148, 2001).

    NMSE = mean_t (y(t) - y_hat(t))^2 / Var_t(y),  Var over the test target ``y_true`` itself (ddof=0).

    For several outputs, (T, D), the NMSE of each output column is computed with its own variance and the D
    values are averaged. NMSE = 0 for a perfect prediction and 1 for predicting the target's mean.

    Args:
        y_true: test target, shape (T,) or (T, D), finite and not constant in any column.
        y_pred: prediction, same shape, finite.
    """
    y_true, y_pred = check_pair("y_true", y_true, "y_pred", y_pred, ndim=(1, 2))
    y_true, y_pred = y_true.reshape(y_true.shape[0], -1), y_pred.reshape(y_pred.shape[0], -1)
    # A constant target has no variance to normalise by: the ratio is undefined, not infinite.
    check_not_constant("y_true", y_true)
    return float(np.mean(np.mean((y_true - y_pred) ** 2, axis=0) / y_true.var(axis=0)))
