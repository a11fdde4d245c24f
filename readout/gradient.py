"""Readouts trained by gradient descent: the linear readout and the multilayer perceptron, and ``fit_readout``.

A readout is a value: a ``LinearReadout(W (F, O), b (O,))``, ``y = x W + b``, or an MLP
``Readout(layers, activation)`` whose layers are affine maps of the same type, ``LinearReadout(Wˡ, bˡ)``.
``apply_readout`` computes, for features ``x`` of shape (..., F),

    a⁰ = x,   aˡ = σ(aˡ⁻¹ Wˡ + bˡ) for the hidden layers,   y = aᴸ⁻¹ Wᴸ + bᴸ   (no activation on the output),

of which the linear readout is the case without hidden layers.

``fit_readout`` builds a readout and trains it with the project's one optax loop, ``readout.optimise.train``, on
a loss of ``readout.losses``.

Example:
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(200, 5)); y = X @ np.arange(5.0)[:, None]
    >>> result = fit_readout(X, y, learning_rate=1e-2, n_epochs=50, progress=False)
    >>> apply_readout(result.params, X[:3]).shape
    (3, 1)
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from readout.linear import LinearReadout
from readout.losses import LOSSES
from readout.optimise import TrainResult, as_jax_ready, check_train_options, train
from reservoir.core import as_dtype, compute_dtype
from reservoir.esn import ACTIVATIONS
from reservoir.validation import (
    POSITIVE_INT,
    SEED,
    check_array,
    check_choice,
    check_instance,
    check_scalar,
)

# --------------------------------------------------------------------------------------------- readouts


@partial(jax.tree_util.register_dataclass, data_fields=["layers"], meta_fields=["activation"])
@dataclasses.dataclass(frozen=True, eq=False)
class Readout:
    """A multilayer perceptron readout pytree: ``layers``, affine maps ``LinearReadout(Wˡ, bˡ)``, with
    ``activation`` between them (at least one hidden layer: without any, a readout is a ``LinearReadout``)."""

    layers: tuple[LinearReadout, ...]
    activation: str = "tanh"

    @property
    def n_features(self) -> int:
        """F, the width of the features the first layer takes."""
        return self.layers[0].n_features

    @property
    def n_outputs(self) -> int:
        """O, the width of the last layer's output."""
        return self.layers[-1].n_outputs


def linear_readout(n_features: int, n_outputs: int, *, seed: int, dtype: Any = jnp.float32) -> LinearReadout:
    """A linear readout ``y = x W + b``, W (F, O) drawn N(0, 1/F) from ``seed``, b = 0."""
    return mlp_readout(n_features, (), n_outputs, seed=seed, dtype=dtype)


def mlp_readout(n_features: int, hidden_sizes: Sequence[int], n_outputs: int, *, seed: int,
                activation: str = "tanh", dtype: Any = jnp.float32) -> Readout | LinearReadout:
    """A multilayer perceptron readout, F -> hidden_sizes[0] -> ... -> O, ``activation`` between layers; with no
    hidden layer (``hidden_sizes=()``), the ``LinearReadout`` F -> O.

    Weights are drawn N(0, 1/fan_in) (LeCun normal) from ``jax.random.PRNGKey(seed)`` (one draw, filling
    the layers in order), biases start at 0.
    """
    n_features = check_scalar("n_features", n_features, POSITIVE_INT)
    n_outputs = check_scalar("n_outputs", n_outputs, POSITIVE_INT)
    if isinstance(hidden_sizes, int | str) or not isinstance(hidden_sizes, Sequence | np.ndarray):
        raise TypeError(f"hidden_sizes must be a sequence of positive integers, got {hidden_sizes!r}")
    hidden_sizes = [check_scalar(f"hidden_sizes[{i}]", h, POSITIVE_INT) for i, h in enumerate(hidden_sizes)]
    seed = check_scalar("seed", seed, SEED)
    check_choice("activation", activation, tuple(ACTIVATIONS))
    dtype = as_dtype(dtype)
    layers = _init_layers(seed, (n_features, *hidden_sizes, n_outputs), dtype)
    return Readout(layers, activation) if hidden_sizes else layers[0]


def _init_layers(seed: int, sizes: tuple[int, ...], dtype: Any) -> tuple[LinearReadout, ...]:
    # One draw for all layers, its length rounded up to a power of two: the random generator then compiles
    # once per size class instead of once per layer shape (threefry takes ~1 s to compile on CPU).
    shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
    total = sum(fan_in * fan_out for fan_in, fan_out in shapes)
    draws = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (1 << (total - 1).bit_length(),), dtype))
    offsets = np.cumsum([0] + [fan_in * fan_out for fan_in, fan_out in shapes])
    return tuple(
        LinearReadout(jnp.asarray(draws[start:start + fan_in * fan_out].reshape(fan_in, fan_out)
                                  / math.sqrt(fan_in), dtype), jnp.zeros(fan_out, dtype))
        for start, (fan_in, fan_out) in zip(offsets, shapes, strict=False)
    )


def apply_readout(params: LinearReadout | Readout, features: Any) -> jax.Array:
    """Features (..., F) -> outputs (..., O) of a ``LinearReadout`` or an MLP ``Readout``; pure, so ``jit``,
    ``grad`` and ``vmap`` apply (traced features are only checked for their shape)."""
    check_instance("params", params, (LinearReadout, Readout))
    first = params.layers[0] if isinstance(params, Readout) else params
    dtype = compute_dtype(first.W.dtype)
    features = check_array("features", features, tuple(range(1, 33)), {-1: params.n_features}, dtype=dtype)
    return _apply(params, jnp.asarray(features, dtype))


@jax.jit
def _apply(params: LinearReadout | Readout, hidden: jax.Array) -> jax.Array:
    if isinstance(params, LinearReadout):
        return params(hidden)
    activation = ACTIVATIONS[params.activation]
    for layer in params.layers[:-1]:
        hidden = activation(layer(hidden))
    return params.layers[-1](hidden)



def readout_loss(loss: str = "mse") -> Callable[[LinearReadout | Readout, jax.Array, jax.Array], jax.Array]:
    """``loss_fn(params, features, targets) = LOSSES[loss](apply_readout(params, features), targets)``.

    The same function object is returned for the same name, so ``train`` reuses its compiled step.
    """
    return _READOUT_LOSSES[check_choice("loss", loss, tuple(LOSSES))]


def _readout_loss(compare: Callable, params: LinearReadout | Readout, features: jax.Array,
                  targets: jax.Array) -> jax.Array:
    return compare(apply_readout(params, features), targets)


_READOUT_LOSSES = {name: partial(_readout_loss, compare) for name, compare in LOSSES.items()}


def fit_readout(
    features: Any,
    targets: Any,
    *,
    loss: str = "mse",
    hidden_sizes: Sequence[int] = (),
    activation: str = "tanh",
    seed: int = 0,
    dtype: Any = jnp.float32,
    validation: tuple[Any, Any] | None = None,
    **train_options: Any,
) -> TrainResult:
    """Build a readout (linear, or an MLP with ``hidden_sizes``) and train it with ``train``.

    Args:
        features: (S, F) or (..., F) — every index before the last axis is a sample.
        targets: for ``"mse"``, (..., O) or (...,) (one output); for ``"softmax_cross_entropy"``, integer
            class labels (...,) in [0, C), with C = largest label + 1 outputs.
        loss: ``"mse"`` or ``"softmax_cross_entropy"``.
        hidden_sizes, activation: the MLP's hidden layers (empty: a linear readout).
        seed: seeds the initial weights and the batch order.
        dtype: float32 (default) or float64 parameters.
        validation: ``(features, targets)`` shaped like the training ones, for early stopping.
        train_options: passed to ``train`` (optimizer, learning_rate, n_epochs, batch_size, l2, patience,
            validation_fraction, progress).

    Returns:
        ``TrainResult`` whose ``params`` is a ``LinearReadout`` (no hidden layer) or a ``Readout``; predict with
        ``apply_readout``.
    """
    check_choice("loss", loss, tuple(LOSSES))
    own = {"loss_fn", "params", "data", "validation", "seed", "context"}  # set by fit_readout itself
    allowed = set(inspect.signature(train).parameters) - own
    unknown = sorted(set(train_options) - allowed)
    if unknown:
        raise TypeError(f"fit_readout got unexpected keyword arguments {unknown}")
    check_train_options(**train_options)  # before anything is built
    features, targets = _readout_data(features, targets, loss)
    classes = loss == "softmax_cross_entropy"
    n_outputs = int(targets.max()) + 1 if classes else targets.shape[-1]
    if validation is not None:
        if not isinstance(validation, tuple | list) or len(validation) != 2:
            raise ValueError(f"validation must be a (features, targets) pair, got {type(validation).__name__}")
        validation = _readout_data(*validation, loss, "validation ")
        if validation[0].shape[-1] != features.shape[-1]:
            raise ValueError(f"validation features must have {features.shape[-1]} features on the last axis "
                             f"like features, got shape {validation[0].shape}")
        if classes and validation[1].max() >= n_outputs:
            raise ValueError(f"validation targets must be class labels in [0, {n_outputs}) (the classes of "
                             f"targets), got {validation[1].max()}")
        if not classes and validation[1].shape[-1] != n_outputs:
            raise ValueError(f"validation targets must have {n_outputs} outputs on the last axis like "
                             f"targets, got shape {validation[1].shape}")
    params = mlp_readout(features.shape[-1], hidden_sizes, n_outputs, seed=seed, activation=activation,
                         dtype=dtype)
    return train(readout_loss(loss), params, (features, targets), validation=validation, seed=seed,
                 **train_options)


def _readout_data(features: Any, targets: Any, loss: str, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    features = as_jax_ready(f"{prefix}features", features, (2, 3, 4))
    samples = features.shape[:-1]
    if loss == "softmax_cross_entropy":
        targets = check_array(f"{prefix}targets", targets, features.ndim - 1, nonempty=True)
        if not np.issubdtype(targets.dtype, np.integer):
            raise TypeError(f"{prefix}targets must be integer class labels for loss={loss!r}, "
                            f"got dtype {targets.dtype}")
        if targets.size and targets.min() < 0:
            raise ValueError(f"{prefix}targets must be non-negative class labels, got {targets.min()}")
        targets = targets.astype(np.int32)
    else:
        targets = as_jax_ready(f"{prefix}targets", targets, (features.ndim - 1, features.ndim))
        if targets.ndim == features.ndim - 1:
            targets = targets[..., None]
    if targets.shape[: len(samples)] != samples:
        raise ValueError(f"{prefix}features and {prefix}targets must share their sample axes, "
                         f"got shapes {features.shape} and {targets.shape}")
    return features, targets

