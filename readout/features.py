"""Turning reservoir states into readout features: appending inputs, pooling over time, one-hot targets."""

from __future__ import annotations

from typing import Any

import numpy as np

from reservoir.validation import POSITIVE_INT, check_array, check_choice, check_same_length, check_scalar

POOLING = ("last", "mean", "flatten")


def with_inputs(states: Any, inputs: Any) -> np.ndarray:
    """Concatenate the inputs to the states, [x(t), u(t)]: the usual direct input-to-readout connection."""
    states = check_array("states", states, (2, 3))
    inputs = check_array("inputs", inputs, states.ndim)
    check_same_length("states", states, "inputs", inputs)
    return np.concatenate([np.asarray(states, np.float64), np.asarray(inputs, np.float64)], axis=-1)


def pool_states(states: Any, method: str = "last") -> np.ndarray:
    """(B, T, N) states of B sequences -> (B, F) features for sequence classification.

    ``"last"``: the final state (F = N); ``"mean"``: the time average (F = N); ``"flatten"``: every time
    step side by side (F = T·N), which lets a linear readout weigh each step separately.
    """
    states = check_array("states", states, 3)
    check_choice("method", method, POOLING)
    states = np.asarray(states, np.float64)
    if method == "last":
        return states[:, -1]
    if method == "mean":
        return time_average(states)
    return states.reshape(states.shape[0], -1)


def time_average(states: Any, washout: int = 0) -> Any:
    """Each sequence's states averaged over its steps after ``washout``: (…, T, N) -> (…, N).  Unchecked and
    backend-neutral (NumPy or JAX arrays, traced ones included): the pooling of ``pool_states("mean")`` and of
    the readouts of ``readout.projection``."""
    return states[..., washout:, :].mean(axis=-2)


def one_hot(labels: Any, n_classes: int) -> np.ndarray:
    """Integer labels (B,) in [0, n_classes) -> (B, n_classes) float64 one-hot targets."""
    n_classes = check_scalar("n_classes", n_classes, POSITIVE_INT)
    labels = check_array("labels", labels, 1)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(labels == np.round(labels)):
            raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
        labels = labels.astype(int)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise ValueError(f"labels must lie in [0, {n_classes}), got {bad}")
    return np.eye(n_classes)[labels]


def predict_labels(scores: Any) -> np.ndarray:
    """Class scores (..., C) -> the winning class index (...)."""
    return np.argmax(check_array("scores", scores, (1, 2, 3)), axis=-1)
