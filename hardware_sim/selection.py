"""Hyperparameters chosen on held-out training chunks, with the device queries of the search counted.

A comparison of training methods is only as fair as the care given to each method's settings.  Every method
here gets the same protocol, run on the *training* data only (the test set is never seen):

1. The training sequences are split in two: the first ones fit, the last ``n_held`` are held out
   (``readout.projection.n_held_out``; time order kept for chunked series).
2. Each candidate of a small grid (``candidates``) is trained on the fit sequences and scored on the held-out
   ones out of sample: a ridge readout fitted on the fit sequences' states, its NMSE on the held-out sequences'
   states (``held_out_alphas``; the ridge ``alpha``, per row, is chosen the same way for free: statistics are
   shared, one solve per alpha).
3. The candidate with the lowest held-out NMSE wins (``select``).

For an in-situ method the queries the search spends on the device (every candidate's training and scoring) are
part of the method's cost: ``select`` reads them off the device's public counters (``n_calls``,
``n_samples``), never its hidden state.  A ``budget`` of device calls stops the search before a candidate
once it is spent (the winner is then the best of the candidates tried).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hardware_sim.device import Device
from readout.projection import held_out_statistics
from readout.ridge import held_out_nmse
from reservoir.core import DivergenceError
from reservoir.validation import NON_NEGATIVE, POSITIVE_INT, Interval, check_instance, check_scalar

REAL = Interval(None, None)  # any finite real number
ALPHAS = tuple(10.0 ** np.arange(-9, 0))  # ridge alpha per row: mean squared error + alpha |W|^2


def check_space(space: Any, name: str = "space") -> dict[str, tuple[float, ...]]:
    """A search space ``{hyperparameter: candidate values}``: a non-empty mapping of non-empty sequences of
    finite real numbers (refused otherwise, naming the entry)."""
    if not isinstance(space, Mapping):
        raise TypeError(f"{name} must be a dict of hyperparameter -> sequence of values, "
                        f"got {type(space).__name__}")
    if not space:
        raise ValueError(f"{name} must name at least one hyperparameter, got an empty mapping")
    return {key: _check_values(f"{name}[{key!r}]", values, REAL) for key, values in space.items()}


def check_alphas(alphas: Any) -> tuple[float, ...]:
    """Ridge alphas (per row): a non-empty sequence of finite numbers ≥ 0."""
    return _check_values("alphas", alphas, NON_NEGATIVE)


def _check_values(name: str, values: Any, constraint: Interval) -> tuple[float, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}")
    if len(values) == 0:
        raise ValueError(f"{name} must hold at least one value, got an empty sequence")
    return tuple(check_scalar(f"{name}[{i}]", value, constraint) for i, value in enumerate(values))


def candidates(space: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Every combination of the space's values, in grid order (the last hyperparameter varies fastest)."""
    space = check_space(space)
    return [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]


def held_out_alphas(states: Any, targets: Any, n_held: int, *, washout: int, alphas: Sequence[float] = ALPHAS,
                    pool: bool = False) -> tuple[float, float]:
    """``(score, alpha)``: the lowest held-out NMSE over ``alphas`` (per row) of a ridge readout fitted on all
    sequences of ``states`` (B, T, N) but the last ``n_held`` and scored on those, and the alpha that gives it."""
    alphas = check_alphas(alphas)
    fit, held = held_out_statistics(states, targets, n_held, washout=washout, pool=pool)
    scores = [held_out_nmse(fit, held, alpha * fit.count) for alpha in alphas]
    best = int(np.nanargmin(scores)) if not np.all(np.isnan(scores)) else 0
    return float(scores[best]), float(alphas[best])


@dataclasses.dataclass(frozen=True)
class Selection:
    """What ``select`` found: ``best`` the winning candidate's hyperparameters (with any extra values its
    evaluation reported, e.g. the chosen ``alpha``), ``score`` its held-out NMSE, ``outcome`` what its
    evaluation returned (e.g. trained parameters), ``table`` one row per candidate tried (hyperparameters,
    ``score``, ``n_calls``, ``n_samples``), ``n_calls`` / ``n_samples`` the device queries of the whole search,
    ``exhausted``: whether the budget stopped it before every candidate was tried."""

    best: dict[str, Any]
    score: float
    outcome: Any
    table: list[dict[str, Any]]
    n_calls: int
    n_samples: int
    exhausted: bool


def select(evaluate: Callable[..., tuple[float, dict[str, Any], Any]], space: Mapping[str, Sequence[float]], *,
           device: Device | None = None, budget: int | None = None) -> Selection:
    """Minimise a held-out score over the grid ``space``.

    Args:
        evaluate: ``evaluate(**candidate) -> (score, extra, outcome)``: trains with the candidate's
            hyperparameters on the fit sequences and returns its held-out NMSE, extra chosen values (say the
            ridge ``alpha``: ``{}`` if none) and whatever the caller wants back for the winner.  A candidate
            whose training diverges may return ``math.inf``.
        space: ``{hyperparameter: values}`` (``check_space``).
        device: the device the evaluations query, whose public counters give the search's cost (None: a
            search that queries no device).
        budget: at most this many device calls (> 0): no candidate starts once they are spent.

    Returns:
        ``Selection``.  Raises ``DivergenceError`` (a ``ValueError``) if no candidate gives a finite score.
    """
    grid = candidates(space)
    if device is not None:
        check_instance("device", device, Device)
    if budget is not None:
        budget = check_scalar("budget", budget, POSITIVE_INT)
        if device is None:
            raise ValueError(f"budget={budget} needs the device whose calls it counts, got device=None")
    start_calls, start_samples = _counters(device)
    table, outcomes, exhausted = [], [], False
    for candidate in grid:
        calls, samples = _counters(device)
        if budget is not None and calls - start_calls >= budget:
            exhausted = True
            break
        score, extra, outcome = evaluate(**candidate)
        after_calls, after_samples = _counters(device)
        table.append({**candidate, **extra, "score": float(score), "n_calls": after_calls - calls,
                      "n_samples": after_samples - samples})
        outcomes.append(outcome)
    finite = [i for i, row in enumerate(table) if math.isfinite(row["score"])]
    if not finite:
        raise DivergenceError(f"no candidate of {dict(space)} gave a finite held-out score (every training "
                              f"diverged): {table}")
    best = min(finite, key=lambda i: table[i]["score"])
    end_calls, end_samples = _counters(device)
    chosen = {k: v for k, v in table[best].items() if k not in ("score", "n_calls", "n_samples")}
    return Selection(chosen, table[best]["score"], outcomes[best], table, end_calls - start_calls,
                     end_samples - start_samples, exhausted)


def _counters(device: Device | None) -> tuple[int, int]:
    return (0, 0) if device is None else (device.n_calls, device.n_samples)
