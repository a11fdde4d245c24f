"""Backpropagation through time into the reservoir's input side (Hermans et al., PRL 117, 128301 (2016)).

The recurrent part of a reservoir (``W`` and the leak of an ESN; the loop itself of a delay reservoir) stays
fixed; what enters it may be trained by gradient descent, jointly with the readout:

Each model declares its trainable fields on its class (``TRAINABLE``, read by ``trainable_fields``):

| model                         | trainable fields                                                          |
| ----------------------------- | ------------------------------------------------------------------------- |
| SineDelay, Sin2LowpassDelay   | ``mask`` (N, D), ``bias_mask`` (N,), ``input_gain``, ``feedback_gain``,    |
|                               | ``phase`` ()                                                              |
| MackeyGlassDelay              | ``mask`` (N, D), ``bias_mask`` (N,), ``input_gain``, ``feedback_gain`` () |
| ESNParams                     | ``W_in`` (N, D), ``bias`` (N,), ``input_scaling`` () — a scalar           |
|                               | multiplying ``W_in``                                                      |

``split_trainable`` picks the named fields as a dict (what an optax optimiser updates) and returns the pure
``combine`` that rebuilds the full parameters.  ``run_states`` is a differentiable run with two options for
long sequences:

* ``checkpoint_every=K`` — rematerialisation: the time axis is cut into segments of K steps, an outer
  ``lax.scan`` over segments stores only the state at each segment boundary and an inner scan, wrapped in
  ``jax.checkpoint``, recomputes a segment's intermediates during the backward pass.  BPTT memory then grows
  like (T/K + K)·N instead of T·N·(intermediates per step); states and gradients are unchanged.
* ``truncate_every=L`` — truncated BPTT: gradients flow only within windows of L steps; the state carried
  into the next window passes through ``jax.lax.stop_gradient``.  The forward states are unchanged.

``observe`` maps each state to what is kept (e.g. a readout's output) *inside* the time loop, so the (T, N)
states need never be stored: with checkpointing, memory is then dominated by the (T/K)·N boundary states.
``bptt_loss`` is the scalar loss of a reservoir plus a per-time-step readout built on it.

Example (joint "mask + readout" training, Hermans 2016 "Full"; ``loss_fn(params, *batch)`` is what a generic
optax loop needs):
    >>> import jax, jax.numpy as jnp
    >>> from readout import LinearReadout
    >>> from reservoir.delay import delay_reservoir
    >>> trainable, combine = split_trainable(delay_reservoir(20, seed=0), ["mask", "bias_mask"])
    >>> params = {"reservoir": trainable, "readout": LinearReadout(jnp.zeros((20, 1)), jnp.zeros(1))}
    >>> apply = lambda readout, state: readout(state)  # y(t) = x(t) W + b
    >>> loss_fn = lambda p, u, y: bptt_loss(p["reservoir"], combine, apply, p["readout"], u, y,
    ...                                     washout=10, checkpoint_every=25)
    >>> inputs, targets = jnp.ones((4, 100, 1)), jnp.ones((4, 100, 1))  # (B, T, D), (B, T, O)
    >>> grads = jax.jit(jax.grad(loss_fn))(params, inputs, targets)
    >>> grads["reservoir"]["mask"].shape
    (20, 1)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from reservoir.core import Reservoir, checked_inputs_and_state
from reservoir.validation import (
    POSITIVE_INT,
    check_array,
    check_choice,
    check_instance,
    check_scalar,
    check_washout,
)


def mean_squared_error(predictions: Any, targets: Any) -> Any:
    """Mean over every sample and output of (prediction − target)², in the arrays' own library (JAX, traced
    or not, or NumPy): the project's one MSE, ``bptt_loss``'s ``"mse"`` (``readout.losses`` re-exports it)."""
    return ((predictions - targets) ** 2).mean()


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {"mse": mean_squared_error}


def trainable_fields(params: Reservoir) -> tuple[str, ...]:
    """The input-side fields of ``params`` that ``split_trainable`` may train: its class's ``TRAINABLE``.

    Example:
        >>> from reservoir.delay import delay_reservoir
        >>> trainable_fields(delay_reservoir(10, seed=0, model="mackey_glass"))
        ('mask', 'bias_mask', 'input_gain', 'feedback_gain')
    """
    return check_instance("params", params, Reservoir).TRAINABLE


def trainable_scales(params: Reservoir) -> dict[str, str]:
    """{name: field} for the trainable names of ``params`` that are scalar gains on a field rather than fields
    (a model declares them in its class's optional ``SCALES``, e.g. ``ESNParams``' ``input_scaling`` on
    ``W_in``); split starts each at 1, merge multiplies its field by it."""
    return dict(getattr(type(params), "SCALES", {}))


def split_trainable(
    params: Reservoir, names: str | Sequence[str]
) -> tuple[dict[str, jax.Array], Callable[[dict[str, jax.Array]], Reservoir]]:
    """Split a reservoir into its trainable input side and a pure function that puts it back.

    Args:
        params: a reservoir (``DelayParams``, ``ESNParams``, ...: a ``reservoir.core.Reservoir``).
        names: the fields to train, a subset of ``trainable_fields(params)`` (a single name is allowed).
            A scale (``trainable_scales``, e.g. ``"input_scaling"`` of an ESN) is a scalar leaf initialised
            to 1 that multiplies its field (``W_in``), the field itself trained or not.

    Returns:
        ``(trainable, combine)``: ``trainable`` a dict {name: array} and ``combine(trainable) -> params``, pure
        and jit-able, rebuilding the full parameters with ``dataclasses.replace`` (the fixed rest closed over).
        ``combine(trainable)`` returns the original parameters exactly.
    """
    allowed = trainable_fields(params)
    if not isinstance(names, str | Sequence):
        raise TypeError(f"names must be a field name or a sequence of them, one or more of {list(allowed)}; "
                        f"got {names!r} of type {type(names).__name__}")
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    for name in names:
        if name not in allowed:
            raise ValueError(f"names must list trainable input-side fields of {type(params).__name__}, "
                             f"one or more of {list(allowed)}; got {name!r}")
    scales = trainable_scales(params)
    trainable = {name: jnp.ones((), params.dtype) if name in scales else getattr(params, name) for name in names}
    return trainable, functools.partial(merge_trainable, params)


def merge_trainable(params: Reservoir, trainable: dict[str, jax.Array]) -> Reservoir:
    """``params`` with the input-side fields of ``trainable`` put in (``split_trainable``'s ``combine``).

    Pure and jit-able; ``params`` may itself be a traced argument, so one compiled function serves every
    reservoir of the same shapes (the hardware trainer passes its twin this way).
    """
    scales = trainable_scales(params)
    fields = {name: value for name, value in trainable.items() if name not in scales}
    for name, field in scales.items():
        if name in trainable:
            fields[field] = fields.get(field, getattr(params, field)) * trainable[name]
    return dataclasses.replace(params, **fields)


def run_states(
    params: Reservoir,
    inputs: Any,
    initial_state: Any = None,
    *,
    checkpoint_every: int | None = None,
    truncate_every: int | None = None,
    observe: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
    """Differentiable run of a reservoir for BPTT, with optional rematerialisation and truncation.

    Same states as ``reservoir.run`` (no divergence check, no output feedback), written so that ``jax.grad``
    of a long run fits in memory.

    Args:
        params: a reservoir without output feedback (``DelayParams``, ``ESNParams``, ...).
        inputs: ``(T, D)`` or ``(B, T, D)`` (batches by ``jax.vmap``).
        initial_state: ``(N,)`` or ``(B, N)``; zeros when omitted.
        checkpoint_every: K: recompute the intermediates of each K-step segment in the backward pass
            (``jax.checkpoint``); T need not be a multiple of K (the sequence is zero-padded at the end, the
            padding cut off again, which changes nothing before it).
        truncate_every: L: truncated BPTT, no gradient through the state carried from one L-step window into
            the next (``lax.stop_gradient``).  With both options, L must be a multiple of K.
        observe: applied to each (N,) state inside the time loop, returning what is kept per step, e.g.
            ``lambda state: state @ W_out`` (default: the state itself).

    Returns:
        ``(T, …)`` or ``(B, T, …)``: ``observe(state)`` at every step, states ``(…, T, N)`` by default.

    ``checkpoint_every``, ``truncate_every`` and ``observe`` are static: under ``jax.jit`` close over them
    (``functools.partial``) or mark them ``static_argnames``.
    """
    inputs, initial_state = checked_inputs_and_state(params, inputs, initial_state)
    if params.n_feedback:
        raise ValueError(f"run_states does not support output feedback: params has n_feedback = "
                         f"{params.n_feedback} (build the ESN without W_fb)")
    if observe is not None and not callable(observe):
        raise TypeError(f"observe must be a function state -> observation or None, got {observe!r}")
    segments = _segment_lengths(checkpoint_every, truncate_every)
    batched = inputs.ndim == 3

    def one(inputs: jax.Array, initial_state: jax.Array) -> jax.Array:
        step, carry = _step_and_carry(params, initial_state, observe or (lambda state: state))
        return _segmented_scan(step, carry, inputs, segments)

    return jax.vmap(one)(inputs, initial_state) if batched else one(inputs, initial_state)


def bptt_loss(
    trainable: dict[str, jax.Array],
    combine: Callable[[dict[str, jax.Array]], Reservoir],
    readout_apply: Callable[[Any, jax.Array], jax.Array],
    readout_params: Any,
    inputs: Any,
    targets: Any,
    *,
    loss: str | Callable[[jax.Array, jax.Array], jax.Array] = "mse",
    washout: int = 0,
    initial_state: Any = None,
    checkpoint_every: int | None = None,
    truncate_every: int | None = None,
) -> jax.Array:
    """Scalar loss of a reservoir with a trained input side and a per-time-step readout.

    predictions(t) = readout_apply(readout_params, x(t)), x = run_states(combine(trainable), inputs), and
    the loss compares predictions and targets after the first ``washout`` steps.  The readout is applied
    inside the time loop, so with ``checkpoint_every`` the (T, N) states are never stored.

    Args:
        trainable, combine: from ``split_trainable``.
        readout_apply: ``(readout_params, state (N,)) -> prediction (O,)``, e.g. ``lambda readout, state:
            readout(state)`` for a ``readout.LinearReadout``.
        readout_params: any pytree (differentiated like ``trainable``).
        inputs: ``(T, D)`` or ``(B, T, D)``; targets: ``(T, O)`` or ``(B, T, O)``.
        loss: ``"mse"`` (mean over every step, sequence and output) or a function
            ``(predictions, targets) -> scalar`` of the post-washout arrays.
        washout: number of leading steps left out of the loss (they still drive the reservoir).
        initial_state, checkpoint_every, truncate_every: as in ``run_states``.

    Returns:
        the scalar loss; ``jax.grad`` with respect to ``trainable`` and ``readout_params`` is BPTT.
    """
    loss_fn = loss if callable(loss) else LOSSES[check_choice("loss", loss, tuple(LOSSES))]
    if not callable(readout_apply):
        raise TypeError(f"readout_apply must be a function (readout_params, state) -> prediction, "
                        f"got {readout_apply!r}")
    # Everything but the readout's output shape is checked before the run (run_states checks the rest).
    params = combine(trainable)
    inputs = check_array("inputs", inputs, (2, 3), dtype=params.dtype)
    washout = check_washout(washout, inputs.shape[-2])
    targets = check_array("targets", targets, tuple(range(inputs.ndim - 1, 33)), dtype=params.dtype)
    if tuple(targets.shape[:inputs.ndim - 1]) != tuple(inputs.shape[:-1]):
        raise ValueError(f"targets must have the batch and time lengths of inputs {tuple(inputs.shape[:-1])}, "
                         f"got shape {tuple(targets.shape)}")
    predictions = run_states(params, inputs, initial_state, checkpoint_every=checkpoint_every,
                             truncate_every=truncate_every,
                             observe=lambda state: readout_apply(readout_params, state))
    targets = jnp.asarray(targets, predictions.dtype)
    if targets.shape != predictions.shape:
        raise ValueError(f"targets must have the readout's output shape {tuple(predictions.shape)}, "
                         f"got {tuple(targets.shape)}")
    return loss_fn(predictions[..., washout:, :], targets[..., washout:, :])


def _step_and_carry(params: Reservoir, initial_state: jax.Array, observe: Callable):
    """The model's own ``scan_step`` (the updates ``run`` uses), its output passed through ``observe``."""
    step, carry = params.scan_step(initial_state)

    def observed(carry, u):
        carry, state = step(carry, u)
        return carry, observe(state)

    return observed, carry


def _segment_lengths(checkpoint_every: int | None, truncate_every: int | None) -> list[tuple[int, bool]]:
    """Nested segments, innermost first, as (number of inner units per segment, truncate?)."""
    segments = []
    if checkpoint_every is not None:
        checkpoint_every = check_scalar("checkpoint_every", checkpoint_every, POSITIVE_INT)
        segments.append((checkpoint_every, False))
    if truncate_every is not None:
        truncate_every = check_scalar("truncate_every", truncate_every, POSITIVE_INT)
        if checkpoint_every is not None and truncate_every % checkpoint_every:
            raise ValueError(f"truncate_every must be a multiple of checkpoint_every = {checkpoint_every}, "
                             f"got {truncate_every}")
        segments.append((truncate_every // (checkpoint_every or 1), True))
    return segments


def _segmented_scan(step: Callable, carry: Any, inputs: jax.Array, segments: list[tuple[int, bool]]):
    """``lax.scan(step, carry, inputs)[1]``, the time axis cut into nested segments.

    Each level scans the level below over its segment: a checkpointed level (``truncate`` False) is wrapped in
    ``jax.checkpoint``, so only its boundary carries are saved; a truncating level stops the gradient of the
    carry it hands on to the next window.
    """
    n_steps = inputs.shape[0]
    shape = []
    for length, truncate in segments:
        step = _segment(step, truncate)
        shape.insert(0, length)
    block = math.prod(shape)
    n_blocks = -(-n_steps // block)
    inputs = jnp.pad(inputs, [(0, n_blocks * block - n_steps)] + [(0, 0)] * (inputs.ndim - 1))
    outputs = jax.lax.scan(step, carry, inputs.reshape(n_blocks, *shape, *inputs.shape[1:]))[1]
    return outputs.reshape(n_blocks * block, *outputs.shape[1 + len(shape):])[:n_steps]


def _segment(step: Callable, truncate: bool) -> Callable:
    def segment(carry, inputs):
        carry, outputs = jax.lax.scan(step, carry, inputs)
        return (jax.tree_util.tree_map(jax.lax.stop_gradient, carry) if truncate else carry), outputs

    return segment if truncate else jax.checkpoint(segment)
