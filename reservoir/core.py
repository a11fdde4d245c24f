"""The one entry point that runs any reservoir: validation, batching, jit and the divergence check.

A reservoir is a value: a frozen dataclass pytree (``ESNParams``, ``DelayParams``, ...) that knows how to
run *one* sequence through ``params.sequence(inputs, initial_state, teacher)`` and carries its own metadata
(sizes, dtype, the fields that may be trained): the ``Reservoir`` protocol.  ``pytree_dataclass`` and
``static_field`` declare such a class, each field once.  Everything shared by all
models lives here, once: checking arguments, accepting ``(T, D)`` or ``(B, T, D)`` inputs (batches come
from ``jax.vmap``: of ``sequence`` when traced, of the model's one-period ``scan_step`` written in place when
the values are concrete), compiling with ``jax.jit`` and reporting the first time step where states stop
being finite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from reservoir.validation import _is_tracer, check_array, check_instance, check_same_length

_Class = TypeVar("_Class", bound=type)


def static_field(**options: Any) -> Any:
    """A field of a ``pytree_dataclass`` that is part of the tree's structure, not a leaf (equinox's
    ``field(static=True)``): a hashable constant such as a model's exponent, compared by value by ``jit``, so a
    new value recompiles.  ``options`` are ``dataclasses.field``'s (``default``, ...)."""
    metadata = {**options.pop("metadata", {}), "static": True}
    return dataclasses.field(metadata=metadata, **options)


def pytree_dataclass(cls: _Class | None = None, /, **options: Any) -> Any:
    """Make ``cls`` a frozen dataclass registered as a JAX pytree whose leaves are its fields, except those
    declared with ``static_field()`` (part of the tree structure); each field is stated once, in the class body.

    ``options`` go to ``dataclasses.dataclass`` (e.g. ``eq=False``).  A subclass of a pytree dataclass is
    decorated again: its fields are the inherited ones followed by its own, leaves in that order.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> @pytree_dataclass
        ... class Scaled:
        ...     weight: jax.Array
        ...     power: float = static_field(default=2.0)
        >>> jax.tree_util.tree_leaves(Scaled(jnp.ones(3)))  # the static power is not a leaf
        [Array([1., 1., 1.], dtype=float32)]
        >>> jax.grad(lambda s: jnp.sum(s.weight ** s.power))(Scaled(jnp.ones(2))).weight
        Array([2., 2.], dtype=float32)
    """

    def register(cls: _Class) -> _Class:
        cls = dataclasses.dataclass(frozen=True, **options)(cls)
        fields = dataclasses.fields(cls)
        static = [field.name for field in fields if field.metadata.get("static", False)]
        data = [field.name for field in fields if not field.metadata.get("static", False)]
        return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=static)

    return register if cls is None else register(cls)


@runtime_checkable
class Reservoir(Protocol):
    """What ``run``, ``reservoir.trainable`` and the simulated devices need from a parameter pytree: a model
    declares it all on its class, so a new reservoir family is one new class (plus, for a simulated device, its
    registration in ``hardware_sim.models``)."""

    # the input-side fields ``split_trainable`` may train; a class may also declare ``SCALES`` {name: field},
    # trainable scalar gains on a field (``reservoir.trainable.trainable_scales``)
    TRAINABLE: ClassVar[tuple[str, ...]]
    n_units: int  # length of the state vector returned at every time step
    n_inputs: int
    n_feedback: int  # 0 when the model has no output feedback
    dtype: Any  # of the states

    def scan_step(self, initial_state: jax.Array) -> tuple[Callable, Any]:
        """``(step, carry)``: ``step(carry, u(t)) -> (carry, x(t))`` and the carry before the first step, for a
        model without output feedback.  ``run`` batches it in place, BPTT scans it in segments."""
        ...

    def sequence(self, inputs: jax.Array, initial_state: jax.Array, teacher: jax.Array | None) -> jax.Array:
        """(T, D) inputs, (n_units,) state before the first step -> (T, n_units) states."""
        ...


class DivergenceError(FloatingPointError, ValueError):
    """The reservoir's states became NaN or infinite."""


def _sequence(params: Reservoir, inputs: jax.Array, initial_state: jax.Array, teacher: jax.Array | None):
    return params.sequence(inputs, initial_state, teacher)


def _batch_in_place(params: Reservoir, inputs: jax.Array, initial_state: jax.Array) -> jax.Array:
    """Forward only: one scan over time of the batched step, each step's (B, N) states written straight
    into the (B, T, N) result.

    ``vmap`` of ``sequence`` stacks time-major and transposes at the end, a full extra pass over the states
    (64 × 2000 × 500 states: 0.69 s → 0.54 s with this).  Not for differentiation: reverse mode through the
    carried buffer copies it at every step (40× slower), so ``run`` takes this path only on concrete values.
    """
    step = params.scan_step(initial_state[0])[0]
    carry = jax.vmap(lambda state: params.scan_step(state)[1])(initial_state)
    batched_step = jax.vmap(step)
    n_batch, n_steps = inputs.shape[:2]

    def body(loop, u):
        carry, states, t = loop
        carry, x = batched_step(carry, u)
        return (carry, jax.lax.dynamic_update_slice(states, x[:, None, :], (0, t, 0)), t + 1), None

    states = jnp.zeros((n_batch, n_steps, params.n_units), params.dtype)
    return jax.lax.scan(body, (carry, states, 0), jnp.swapaxes(inputs, 0, 1))[0][1]


_run_one = jax.jit(_sequence)
_run_batch = jax.jit(jax.vmap(_sequence, in_axes=(None, 0, 0, 0)))
_run_batch_in_place = jax.jit(_batch_in_place)


def run(
    params: Reservoir,
    inputs: Any,
    initial_state: Any = None,
    *,
    teacher: Any = None,
    check_finite: bool = True,
) -> jax.Array:
    """Drive a reservoir with ``inputs`` and return its states.

    Args:
        params: a reservoir parameter pytree (``ESNParams``, ``DelayParams``, ...).
        inputs: ``(T, D)`` for one sequence or ``(B, T, D)`` for a batch.
        initial_state: state before the first step, ``(N,)`` or ``(B, N)``; zeros when omitted.
        teacher: for models with output feedback, the target outputs ``(T, O)`` or ``(B, T, O)``;
            step ``t`` is fed ``teacher[t - 1]`` (zero at ``t = 0``): teacher forcing.
        check_finite: raise ``DivergenceError`` naming the first time step whose state is NaN/inf.

    Returns:
        states ``(T, N)`` or ``(B, T, N)`` in the parameters' dtype.

    Works under ``jax.jit``/``grad``/``vmap`` too (checks that need concrete values are then skipped).
    """
    inputs, initial_state = checked_inputs_and_state(params, inputs, initial_state)
    batched, dtype = inputs.ndim == 3, params.dtype
    if teacher is not None:
        if params.n_feedback == 0:
            raise ValueError("teacher was given but this reservoir has no output feedback (n_feedback = 0)")
        teacher = check_array("teacher", teacher, inputs.ndim, {-1: params.n_feedback}, dtype=dtype)
        check_same_length("inputs", inputs, "teacher", teacher)
        teacher = jnp.asarray(teacher, dtype)
    elif params.n_feedback:
        raise ValueError(f"teacher is required: this reservoir feeds back {params.n_feedback} outputs")
    if not batched:
        states = _run_one(params, inputs, initial_state, teacher)
    elif teacher is None and not _any_tracer((params, inputs, initial_state)):
        states = _run_batch_in_place(params, inputs, initial_state)
    else:  # traced (under jit/grad/vmap), or teacher forcing
        states = _run_batch(params, inputs, initial_state, teacher)
    if check_finite and not _is_tracer(states):
        raise_if_diverged(states)
    return states


def _any_tracer(tree: Any) -> bool:
    return any(_is_tracer(leaf) for leaf in jax.tree_util.tree_leaves(tree))


def checked_inputs_and_state(params: Reservoir, inputs: Any, initial_state: Any) -> tuple[jax.Array, jax.Array]:
    """Validate the parameters, ``(T, D)``/``(B, T, D)`` inputs (at least one step and sequence) and the
    matching initial state (zeros when None); cast both to the parameters' dtype."""
    check_instance("params", params, Reservoir)
    inputs = check_array("inputs", inputs, (2, 3), {-1: params.n_inputs}, nonempty=True, dtype=params.dtype)
    state_shape = (inputs.shape[0], params.n_units) if inputs.ndim == 3 else (params.n_units,)
    if initial_state is None:  # NumPy zeros: jnp.zeros would compile a broadcast on a fresh process's first run
        initial_state = np.zeros(state_shape, params.dtype)
    else:
        initial_state = check_array("initial_state", initial_state, len(state_shape), dtype=params.dtype)
        if tuple(initial_state.shape) != state_shape:
            raise ValueError(f"initial_state must have shape {state_shape}, got {tuple(initial_state.shape)}")
    return jnp.asarray(inputs, params.dtype), jnp.asarray(initial_state, params.dtype)


def raise_if_diverged(
    states: Any,
    what: str = "states",
    advice: str = "the reservoir diverged (lower the spectral radius / feedback gain or the input scaling)",
) -> None:
    """Raise ``DivergenceError`` naming the first time step (and sequence) with a non-finite value.

    ``states`` is laid out ``(T, N)`` or ``(B, T, N)``; ``advice`` ends the message (what to change)."""
    finite = np.isfinite(np.asarray(states))
    if finite.all():
        return
    bad = np.argwhere(~finite)[0]
    where = f"time step {bad[-2]}" + (f" of sequence {bad[0]}" if finite.ndim == 3 else "")
    raise DivergenceError(f"{what} became NaN/inf at {where}: {advice}")


def compute_dtype(dtype: Any) -> np.dtype:
    """The floating dtype JAX computes an array of ``dtype`` in: float32 (integers and float64 included)
    unless x64 is enabled."""
    return jax.dtypes.canonicalize_dtype(np.result_type(dtype, np.float32))


def as_dtype(dtype: Any) -> jnp.dtype:
    """float32 by default; float64 only when JAX has x64 enabled, otherwise say how to enable it."""
    try:
        dtype = jnp.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (jnp.float32, jnp.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if dtype == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            "dtype float64 needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) first "
            "(or set JAX_ENABLE_X64=1)"
        )
    return dtype
