"""Variable projection: training the input side with the linear readout solved inside the loss, on any states.

For states x(θ) of any differentiable function of trained parameters θ (a reservoir's input side run in a model,
or measured on a device with a gradient source of ``hardware_sim.training``), the projected loss is

    L(θ) = mean ‖x(θ) W*(θ) + b*(θ) − y‖²,   (W*, b*)(θ) = argmin_{W,b} mean ‖x(θ) W + b − y‖² + α ‖W‖²

(Golub & Pereyra, SIAM J. Numer. Anal. 10, 413 (1973)): the readout solved in closed form (ridge, intercept
unpenalised, ``batch_ridge``) on every batch and differentiated through, so the gradient moves θ only and
never pulls a readout that is optimal for the current states away from its optimum.  ``train_projected`` runs
it with the project's optax loop (``readout.optimise.train``), optionally early-stopped out of sample
(``train_held_out``: a ridge readout fitted on the other sequences scores the held-out ones), and returns the
final readout: the ridge fit on the whole training set.  The alternative, the readout trained by the gradient
together with the input side, is ``JointLoss``.

A states function takes ``(input_side, inputs, context)`` and returns states (…, T, N); ``context`` is a pytree
of fixed arrays (``train``'s ``context``: a model's parameters, a device handle), so one compilation serves every
model of the same shapes.  ``model_states`` is the one of a digital reservoir.

Example (a delay reservoir's mask trained on a toy target, no device):
    >>> import numpy as np
    >>> from reservoir import delay_reservoir, split_trainable
    >>> params = delay_reservoir(10, seed=0, model="sine")
    >>> start, _ = split_trainable(params, ["mask"])
    >>> u = np.random.default_rng(0).uniform(0, 0.5, (6, 40, 1)); y = np.roll(u, 1, axis=1)
    >>> result = train_projected(ProjectedLoss(model_states, washout=5, pool=False, alpha=1e-6), start, u, y,
    ...                          states_of=lambda side: model_states(side, u, params), washout=5, alpha=1e-6,
    ...                          context=params, n_epochs=2, batch_size=3, progress=False)
    >>> sorted(result.params), result.params["readout"].W.shape
    (['input_side', 'readout'], (10, 1))
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from readout.features import time_average
from readout.linear import LinearReadout
from readout.losses import mean_squared_error
from readout.optimise import FRACTION, TrainResult, train
from readout.ridge import Ridge, RidgeStatistics, held_out_nmse, ridge_statistics
from reservoir.trainable import merge_trainable, run_states
from reservoir.validation import check_scalar

__all__ = [
    "JointLoss",
    "ProjectedLoss",
    "batch_ridge",
    "held_out_score",
    "held_out_statistics",
    "model_states",
    "n_held_out",
    "readout_as",
    "readout_mse",
    "readout_view",
    "ridge_penalty",
    "ridge_readout",
    "states_readout_loss",
    "train_held_out",
    "train_projected",
]


def readout_view(states: Any, targets: Any, washout: int, pool: bool = False) -> tuple[Any, Any]:
    """What the readout sees and must output: the states after ``washout`` steps (…, T − washout, N) and the
    matching targets; with ``pool``, the states averaged over those steps (B, N) and one target per sequence
    (B, O) — sequence classification, where a linear readout of the mean state is the mean of its outputs."""
    if pool:
        return time_average(states, washout), targets
    return states[..., washout:, :], targets[..., washout:, :]


def readout_mse(states: jax.Array, readout: LinearReadout, targets: jax.Array, washout: int,
                pool: bool = False) -> jax.Array:
    """MSE of the linear readout ``x @ W + b`` against the targets, on ``readout_view``'s x."""
    x, y = readout_view(states, targets, washout, pool)
    return mean_squared_error(readout(x), y)


def ridge_penalty(alpha: float, features: Any) -> float:
    """The penalty added to the Gram matrix for ``alpha`` per row: α · n for n rows of ``features`` (…, F), so
    the ridge fit minimises mean ‖x W + b − y‖² + α ‖W‖² and one α means the same at any data size."""
    return alpha * math.prod(np.shape(features)[:-1])


def batch_ridge(x: jax.Array, y: jax.Array, alpha: float) -> LinearReadout:
    """The ridge readout of one batch, features ``x`` (…, F) and targets ``y`` (…, O), in compiled code: the
    intercept unpenalised, ``alpha`` per row (``ridge_penalty``), (XcᵀXc + α n I) W = XcᵀYc, b = ȳ − x̄ᵀW."""
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    x_mean, y_mean = x.mean(0), y.mean(0)
    centred = x - x_mean
    penalty = ridge_penalty(alpha, centred)  # α per row: mean squared error + α‖W‖²
    weights = jnp.linalg.solve(centred.T @ centred + penalty * jnp.eye(x.shape[-1], dtype=x.dtype),
                               centred.T @ (y - y_mean))
    return LinearReadout(weights, y_mean - x_mean @ weights)


@dataclasses.dataclass(frozen=True)
class ProjectedLoss:
    """``loss(params, inputs, targets, context)`` with the readout solved on each batch (variable projection):
    L(θ) = mean ‖x W* + b* − y‖², (W*, b*) = ``batch_ridge`` of the batch's ``readout_view``, the states
    x = ``states(params["input_side"], inputs, context)``.  Hashable by value, so ``train``'s compiled step
    is shared by every model (or device) of the same shapes."""

    states: Callable[..., jax.Array]
    washout: int
    pool: bool
    alpha: float

    def __call__(self, params, inputs, targets, context):
        x, y = readout_view(self.states(params["input_side"], inputs, context), targets, self.washout, self.pool)
        return mean_squared_error(batch_ridge(x, y, self.alpha)(x), y)


@dataclasses.dataclass(frozen=True)
class JointLoss:
    """``loss(params, inputs, targets, context)``: the MSE of the readout ``params["readout"]`` (a
    ``LinearReadout``) on ``readout_view`` of ``states(params["input_side"], inputs, context)``, the readout
    trained by the gradient together with the input side (the "Full" system of Hermans et al., PRL 117, 128301
    (2016)): the alternative to projecting it out.  Hashable by value, like ``ProjectedLoss``."""

    states: Callable[..., jax.Array]
    washout: int
    pool: bool

    def __call__(self, params, inputs, targets, context):
        return readout_mse(self.states(params["input_side"], inputs, context), params["readout"], targets,
                           self.washout, self.pool)


def states_readout_loss(states: Callable[[dict[str, jax.Array], jax.Array], jax.Array],
                        washout: int) -> Callable[..., jax.Array]:
    """``loss(params, inputs, targets)``: MSE of the linear readout on ``states(params["input_side"], inputs)``
    after ``washout`` steps; ``params = {"input_side": ..., "readout": LinearReadout}`` (``JointLoss`` without
    a context, for a states function that closes over its model or device)."""
    return lambda params, inputs, targets: readout_mse(states(params["input_side"], inputs), params["readout"],
                                                      targets, washout)


def model_states(input_side: dict[str, jax.Array], inputs: jax.Array, model: Any) -> jax.Array:
    """The states of the digital reservoir ``model`` (the context) with ``input_side`` put in
    (``reservoir.trainable.merge_trainable``), differentiable (``run_states``): a states function."""
    return run_states(merge_trainable(model, input_side), inputs)


def readout_as(readout: LinearReadout, dtype: Any) -> LinearReadout:
    """``readout`` with its arrays as JAX arrays of ``dtype`` (the model's): what the trainers and the
    compiled losses hold."""
    return jax.tree_util.tree_map(functools.partial(jnp.asarray, dtype=dtype), readout)


def ridge_readout(states: Any, targets: Any, *, washout: int, alpha: float, dtype: Any,
                  pool: bool = False) -> LinearReadout:
    """The ridge ``LinearReadout`` (``alpha`` per row, fitted in float64 on ``readout_view``'s rows) of
    ``states`` and ``targets``, as JAX arrays of ``dtype``."""
    x, y = readout_view(np.asarray(states, np.float64), np.asarray(targets, np.float64), washout, pool)
    return readout_as(Ridge(ridge_penalty(alpha, x)).fit(x, y).readout_, dtype)


def held_out_statistics(states: Any, targets: Any, n_held: int, *, washout: int,
                        pool: bool = False) -> tuple[RidgeStatistics, RidgeStatistics]:
    """Ridge statistics of ``readout_view``'s rows of the first B − ``n_held`` sequences (the fit) and of the
    last ``n_held`` (held out), from states (B, T, N) and targets (B, T, O) or (B, O) with ``pool``."""
    x, y = readout_view(np.asarray(states, np.float64), np.asarray(targets, np.float64), washout, pool)
    x, y = x.reshape(len(x), -1, x.shape[-1]), y.reshape(len(y), -1, y.shape[-1])  # (B, rows, ·) either way
    return ridge_statistics(x[:-n_held], y[:-n_held]), ridge_statistics(x[-n_held:], y[-n_held:])


def held_out_score(states: Any, targets: Any, n_held: int, *, washout: int, alpha: float,
                   pool: bool = False) -> float:
    """Out-of-sample NMSE of the ridge readout (``alpha`` per row) fitted on all sequences but the last
    ``n_held`` and scored on those: the early-stopping and selection score (never the fit's own rows)."""
    fit, held = held_out_statistics(states, targets, n_held, washout=washout, pool=pool)
    return held_out_nmse(fit, held, alpha * fit.count)  # ridge_penalty of the fit's rows


def n_held_out(fraction: float, n_sequences: int) -> int:
    """Sequences held out for ``fraction`` of ``n_sequences`` (at least one, leaving at least one to fit)."""
    fraction = check_scalar("validation_fraction", fraction, FRACTION)
    n_held = max(1, round(fraction * n_sequences))
    if n_held >= n_sequences:
        raise ValueError(f"validation_fraction={fraction} leaves none of the {n_sequences} training sequences "
                         f"to fit on")
    return n_held


def train_held_out(loss: Callable[..., jax.Array], start: dict[str, Any], inputs: Any, targets: Any, *,
                   n_held: int, score: Callable[[dict[str, Any]], float],
                   callback: Callable[[int, Any], None] | None = None, **train_options: Any) -> TrainResult:
    """``readout.train`` on all sequences but the last ``n_held``, early-stopped out of sample: after every
    epoch (and at the start) ``score(input_side)`` is the held-out NMSE of a readout fitted on the fit
    sequences only (``held_out_score``); the input side with the lowest score is returned (the start if no
    epoch beats it, ``best_epoch`` −1).  ``history["validation"]``: the score per epoch."""
    if train_options.get("patience") is not None or train_options.get("validation") is not None:
        raise ValueError("patience and validation are not supported with the held-out early stopping of "
                         "readout='ridge' (its score fits the readout on the training chunks, not the batch); "
                         "use validation_fraction alone")
    train_options.pop("patience", None)
    train_options.pop("validation", None)
    initial = score(start["input_side"])
    best = {"score": initial, "side": start["input_side"], "epoch": -1}
    scores: list[float] = []

    def track(epoch: int, params: Any) -> None:
        scores.append(score(params["input_side"]))
        if scores[-1] < best["score"]:
            best.update(score=scores[-1], side=params["input_side"], epoch=epoch)
        if callback is not None:
            callback(epoch, params)

    result = train(loss, start, (inputs[:-n_held], targets[:-n_held]), callback=track, **train_options)
    history = dict(result.history, validation=scores, initial_validation=[initial])
    return TrainResult(dict(result.params, input_side=best["side"]), history, best["epoch"])


def train_projected(loss: Callable[..., jax.Array], start: dict[str, jax.Array], inputs: Any, targets: Any, *,
                    states_of: Callable[[dict[str, Any]], Any], washout: int = 0, alpha: float = 1e-6,
                    pool: bool = False, dtype: Any = None, seed: int = 0, context: Any = None,
                    validation_fraction: float = 0.0, **train_options: Any) -> TrainResult:
    """Train the input side ``start`` on a loss with the readout projected out, then fit the final readout.

    Args:
        loss: ``loss(params, inputs, targets, context)`` of ``params = {"input_side": ...}``, usually a
            ``ProjectedLoss`` (or a device's own, such as augmented DFA with the projected readout).
        start: the input side to start from, a dict of arrays.
        inputs, targets: the training sequences (B, T, D) and targets (B, T, O), or (B, O) with ``pool``.
        states_of: ``states_of(input_side)``: the training set's states (B, T, N) at ``input_side``, evaluated
            outside the compiled step (a model run, or a device measurement): they score the held-out
            sequences and fit the final readout.
        washout, alpha, pool: the readout's view (``readout_view``) and its ridge penalty per row.
        dtype: of the final readout (default: the states').
        seed, context: ``train``'s.
        validation_fraction: in [0, 1): hold out that fraction of the sequences (the last ones) and early-stop
            on ``held_out_score`` (``train_held_out``): the projected loss solves the readout on its own batch,
            so scoring it on held-out chunks would be in-sample.
        train_options: ``train``'s (``optimizer``, ``learning_rate``, ``n_epochs``, ``batch_size``, ...).

    Returns:
        ``TrainResult`` whose ``params`` are ``{"input_side": ..., "readout": LinearReadout}``, the readout the
        ridge fit (``ridge_readout``) on the states of the whole training set at the returned input side.
    """
    start_params = {"input_side": start}
    if validation_fraction:
        n_held = n_held_out(validation_fraction, len(inputs))

        def score(side: dict[str, Any]) -> float:
            return held_out_score(states_of(side), targets, n_held, washout=washout, alpha=alpha, pool=pool)

        result = train_held_out(loss, start_params, inputs, targets, n_held=n_held, score=score, seed=seed,
                                context=context, **train_options)
    else:
        result = train(loss, start_params, (inputs, targets), seed=seed, context=context, **train_options)
    side = result.params["input_side"]
    states = states_of(side)
    readout = ridge_readout(states, targets, washout=washout, alpha=alpha, pool=pool,
                            dtype=jnp.result_type(states) if dtype is None else dtype)
    return dataclasses.replace(result, params=dict(result.params, readout=readout))
