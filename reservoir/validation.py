"""Argument validation, declared once and used by every public function.

Every check raises ``ValueError`` (or ``TypeError`` for a wrong type) *before* any
computation, with a message naming the argument, the value received and what was
expected, in the spirit of scikit-learn's ``_parameter_constraints``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A real number in an interval; ``closed`` is one of "both", "left", "right", "neither"."""

    low: float | None
    high: float | None
    closed: str = "both"
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a real number"
        if self.low is None and self.high is None:
            return f"{kind}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{kind} in {left}{low}, {high}{right}"

    def contains(self, value: float) -> bool:
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True


POSITIVE = Interval(0, None, "neither")
NON_NEGATIVE = Interval(0, None, "left")
UNIT_OPEN_LEFT = Interval(0, 1, "right")  # (0, 1]: leak rates, densities
POSITIVE_INT = Interval(1, None, "left", integer=True)
NON_NEGATIVE_INT = Interval(0, None, "left", integer=True)


def check_scalar(name: str, value: Any, constraint: Interval) -> float | int:
    """Return ``value`` as a Python number if it satisfies ``constraint``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.ndarray | np.generic):
        raise TypeError(f"{name} must be {constraint.describe()}, got {value!r} of type {type(value).__name__}")
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise TypeError(
                f"{name} must be a scalar ({constraint.describe()}), got an array of shape {value.shape}"
            )
        value = value.item()
    if constraint.integer:
        if not isinstance(value, numbers.Integral):
            kind = type(value).__name__
            raise TypeError(f"{name} must be {constraint.describe()}, got {value!r} of type {kind}")
        value = int(value)
    if not math.isfinite(value) or not constraint.contains(value):
        raise ValueError(f"{name} must be {constraint.describe()}, got {value!r}")
    return value


def check_choice(name: str, value: Any, options: tuple[str, ...] | set[str]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def check_array(
    name: str,
    value: Any,
    ndim: int | tuple[int, ...],
    shape: dict[int, int] | None = None,
    finite: bool = True,
) -> np.ndarray:
    """Check a numeric array's rank, selected axis lengths and finiteness; return it as NumPy.

    ``shape`` maps an axis (negative allowed) to the length it must have, e.g. ``{-1: n_inputs}``.
    Tracers (inside ``jax.jit``/``grad``) are passed through with only the shape checked.
    """
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    is_tracer = _is_tracer(value)
    if not is_tracer:
        try:
            value = np.asarray(value)
        except Exception as error:  # ragged lists and the like
            raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}: {error}") from None
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            raise TypeError(f"{name} must be a numeric array, got dtype {value.dtype}")
    if value.ndim not in ndims:
        expected = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name} must be a {expected} array, got shape {tuple(value.shape)}")
    for axis, length in (shape or {}).items():
        if value.shape[axis] != length:
            raise ValueError(
                f"{name} must have length {length} on axis {axis}, got shape {tuple(value.shape)}"
            )
    if finite and not is_tracer and value.size and not np.all(np.isfinite(value)):
        bad = np.argwhere(~np.isfinite(value))[0]
        raise ValueError(f"{name} must be finite, got {value[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return value


def check_same_length(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Two arrays laid out as (..., T, features) must agree on every axis but the last."""
    if tuple(a.shape[:-1]) != tuple(b.shape[:-1]):
        raise ValueError(
            f"{name_a} and {name_b} must have the same batch and time lengths, "
            f"got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_washout(washout: Any, n_steps: int) -> int:
    washout = check_scalar("washout", washout, NON_NEGATIVE_INT)
    if washout >= n_steps:
        raise ValueError(f"washout must be smaller than the sequence length {n_steps}, got {washout}")
    return washout


def _is_tracer(value: Any) -> bool:
    try:
        import jax

        return isinstance(value, jax.core.Tracer)
    except ImportError:  # pragma: no cover
        return False
