"""Argument validation, declared once and used by every public function.

Every check raises ``ValueError`` (or ``TypeError`` for a wrong type) *before* any
computation, with a message naming the argument, the value received and what was
expected, in the spirit of scikit-learn's ``_parameter_constraints``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np


@dataclass(frozen=True)
class Interval:
    """A real number in an interval; ``closed`` is one of "both", "left", "right", "neither"."""

    low: float | None
    high: float | None
    closed: str = "both"
    integer: bool = False

    def describe(self) -> str:
        """The interval in words, for error messages: "a real number in (0, 1]", "an integer in [1, inf)"."""
        kind = "an integer" if self.integer else "a real number"
        if self.low is None and self.high is None:
            return f"{kind}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        low = "-inf" if self.low is None else _bound(self.low)
        high = "inf" if self.high is None else _bound(self.high)
        return f"{kind} in {left}{low}, {high}{right}"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the interval, its ends included or not as ``closed`` says."""
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
SEED = Interval(0, 2**63 - 1, "both", integer=True)  # what NumPy and jax.random.PRNGKey both accept


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) >= 1e6 else f"{value:g}"


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a malformed argument can be huge)."""
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than Python agrees to print
        return f"a {type(value).__name__} too large to print"
    return text if len(text) <= limit else f"{text[:limit]}..."


def check_scalar(name: str, value: Any, constraint: Interval) -> float | int:
    """Return ``value`` as a Python number if it satisfies ``constraint``, else raise.

    Accepts Python and NumPy reals and 0-d arrays (NumPy or concrete JAX); refuses booleans, complex numbers,
    strings and traced values (a scalar argument must be concrete: close over it or mark it static).
    """
    expected = constraint.describe()
    if _is_tracer(value):
        raise TypeError(f"{name} must be a concrete number ({expected}), got a traced value: "
                        "pass it as a Python number (a static argument under jax.jit)")
    if not isinstance(value, numbers.Number | np.ndarray | np.generic | str) and hasattr(value, "__array__"):
        value = np.asarray(value)  # a concrete JAX array
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise TypeError(f"{name} must be a scalar ({expected}), got an array of shape {value.shape}")
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {_short(value)} of type {type(value).__name__}")
    if constraint.integer:
        if not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be {expected}, got {_short(value)} of type {type(value).__name__}")
        value = int(value)
    elif isinstance(value, np.generic):
        value = value.item()
    try:
        finite = constraint.integer or math.isfinite(value)
    except OverflowError:  # a Python int (or fraction) beyond the float range
        finite = False
    if not finite or not constraint.contains(value):
        raise ValueError(f"{name} must be {expected}, got {_short(value)}")
    return value


def check_choice(name: str, value: Any, options: tuple[str, ...] | set[str]) -> str:
    """Return ``value`` if it is one of the string ``options``, else raise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {sorted(options)}, got {_short(value)} of type "
                        f"{type(value).__name__}")
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def check_instance(name: str, value: Any, kinds: type | tuple[type, ...]) -> Any:
    """Return ``value`` if it is an instance of ``kinds`` (classes or runtime-checkable protocols), else raise."""
    if not isinstance(value, kinds):
        names = " or ".join(kind.__name__ for kind in (kinds if isinstance(kinds, tuple) else (kinds,)))
        article = "an" if names[0] in "AEIOU" else "a"
        raise TypeError(f"{name} must be {article} {names}, got {_short(value)} of type {type(value).__name__}")
    return value


def check_array(
    name: str,
    value: Any,
    ndim: int | tuple[int, ...],
    shape: dict[int, int] | None = None,
    finite: bool = True,
    *,
    nonempty: bool = False,
    dtype: Any = None,
) -> np.ndarray:
    """Check a real numeric array's rank, selected axis lengths and finiteness; return it as NumPy.

    ``shape`` maps an axis (negative allowed) to the length it must have, e.g. ``{-1: n_inputs}``.
    ``nonempty``: every axis must have length at least 1.  ``dtype``: the array is returned cast to this
    floating dtype, and values that overflow it (1e39 in float32) are refused instead of becoming inf.
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
        if np.issubdtype(value.dtype, np.complexfloating):
            raise TypeError(f"{name} must be a real numeric array, got dtype {value.dtype}")
    if value.ndim not in ndims:
        contiguous = len(ndims) > 3 and tuple(ndims) == tuple(range(ndims[0], ndims[-1] + 1))
        expected = f"{ndims[0]}-D to {ndims[-1]}-D" if contiguous else " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name} must be a {expected} array, got shape {tuple(value.shape)}")
    for axis, length in (shape or {}).items():
        if value.shape[axis] != length:
            raise ValueError(
                f"{name} must have length {length} on axis {axis}, got shape {tuple(value.shape)}"
            )
    if nonempty and 0 in value.shape:
        raise ValueError(f"{name} must not be empty (every axis of length at least 1), got shape "
                         f"{tuple(value.shape)}")
    if is_tracer:
        return value
    if finite:
        _check_finite(name, value)
    if dtype is not None and value.dtype != dtype:
        with np.errstate(over="ignore"):
            cast = value.astype(dtype)
        if finite and value.size and not np.all(np.isfinite(cast)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(cast))[0])
            raise ValueError(f"{name} must fit in {np.dtype(dtype).name}, got {value[bad]} at index {bad}, "
                             f"which overflows it")
        value = cast
    return value


def _check_finite(name: str, value: np.ndarray) -> None:
    if value.size and not np.all(np.isfinite(value)):
        bad = np.argwhere(~np.isfinite(value))[0]
        raise ValueError(f"{name} must be finite, got {value[tuple(bad)]} at index {tuple(int(i) for i in bad)}")


def check_linear_readout(name: str, value: Any, n_features: int | None = None, n_outputs: int | None = None,
                         *, dtype: Any = None) -> Any:
    """Return the linear readout ``value`` (``readout.LinearReadout``: ``W`` (F, O), ``b`` (O,), finite) with its
    two arrays checked (and cast to ``dtype``, as NumPy arrays), else raise naming ``name.W`` or ``name.b``.

    The type is recognised by its fields, a dataclass with ``W`` and ``b`` (not by ``isinstance``), so the
    reservoir package, which the readout package builds on, can check one without importing it.
    """
    if not (dataclasses.is_dataclass(value) and not isinstance(value, type)
            and {"W", "b"} <= {field.name for field in dataclasses.fields(value)}):
        raise TypeError(f"{name} must be a LinearReadout (readout.LinearReadout(W, b)), got {_short(value)} of "
                        f"type {type(value).__name__}")
    shape = {} if n_features is None else {0: n_features}
    W = check_array(f"{name}.W", value.W, 2, shape if n_outputs is None else {**shape, 1: n_outputs},
                    nonempty=True, dtype=dtype)
    b = check_array(f"{name}.b", value.b, 1, {0: W.shape[1]}, dtype=dtype)
    return dataclasses.replace(value, W=W, b=b)


def check_not_constant(name: str, value: np.ndarray, where: str = "") -> None:
    """Every column of a non-empty (T, K) array (or the (T,) array) must take at least two values: a constant
    target has no variance to normalise an error or a correlation by.  Tested on the raw values (after
    centring, rounding leaves ~1e-17 residues instead of zeros)."""
    value = np.asarray(value)
    columns = value.reshape(value.shape[0], -1)
    constant = np.ptp(columns, axis=0) == 0.0
    if not np.any(constant):
        return
    if columns.shape[1] == 1:
        raise ValueError(f"{name} must not be constant (zero variance){where}, got the constant value "
                         f"{columns[0, 0]}")
    column = int(np.argmax(constant))
    raise ValueError(f"{name} must not have a constant column (zero variance){where}, but column {column} "
                     f"is constant")


def check_same_length(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Two arrays laid out as (..., T, features) must agree on every axis but the last."""
    if tuple(a.shape[:-1]) != tuple(b.shape[:-1]):
        raise ValueError(
            f"{name_a} and {name_b} must have the same batch and time lengths, "
            f"got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_pair(name_a: str, a: Any, name_b: str, b: Any,
               ndim: int | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Two numeric, finite arrays of the same shape holding at least one time step (a target and a prediction),
    returned as float64."""
    a = check_array(name_a, a, ndim=ndim)
    b = check_array(name_b, b, ndim=ndim)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name_a} must hold at least one time step, got shape {a.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def check_washout(washout: Any, n_steps: int) -> int:
    """``washout`` as an int: the number of leading steps left out of a fit, a non-negative integer smaller
    than the sequence length ``n_steps`` (something must remain to fit)."""
    washout = check_scalar("washout", washout, NON_NEGATIVE_INT)
    if washout >= n_steps:
        raise ValueError(f"washout must be smaller than the sequence length {n_steps}, got {washout}")
    return washout


def _is_tracer(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)
