"""Losses, defined once: what ``readout.train`` minimises and ``readout_loss`` compares a readout's output with.

``mean_squared_error`` is also ``bptt_loss``'s loss (``reservoir.trainable``) and every readout MSE of the
device trainers; ``softmax_cross_entropy`` is for class labels.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

__all__ = ["LOSSES", "mean_squared_error", "softmax_cross_entropy"]


def mean_squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean over every sample and output of (prediction − target)²."""
    return jnp.mean((predictions - targets) ** 2)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean over samples of −log softmax(logits)[label]; ``logits`` (..., C), integer ``labels`` (...)."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "mse": mean_squared_error,
    "softmax_cross_entropy": softmax_cross_entropy,
}
