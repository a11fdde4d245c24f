"""Paired comparisons of methods over devices: medians with bootstrap intervals, win fractions, paired ratios.

An experiment's *cell* is one setting (task, device profile, mismatch, noise); in a cell every method is run on
the same n devices, so its errors form a paired design: ``errors[method][i]`` is method's test error on device
i.  All values are errors, lower is better (pass 1 - accuracy for an accuracy).  Per cell this module gives

- each method's median error with a 95 % bootstrap interval over devices (percentile or BCa, Efron &
  Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13-14);
- against a reference method (the strongest baseline of the cell, :func:`strongest`): the fraction of devices
  where the method wins, with a Wilson score interval (Wilson, JASA 22, 209 (1927)), and the median paired
  ratio error / reference error with a bootstrap interval over devices (pairs are resampled together);
- a Markdown table of those numbers (:func:`markdown_table`), readable in a terminal and in the README.

Every interval is seeded: the same inputs and seed give the same numbers.  The resamples are drawn exactly as
``scipy.stats.bootstrap(..., rng=numpy.random.default_rng(seed))`` draws them (one batch), so both give the same
interval on the same data; the tests hold this module to that.

Example:
    >>> summaries = summarise_cell({"ridge": [0.30, 0.20, 0.25, 0.40],
    ...                             "hil": [0.15, 0.20, 0.10, 0.30]}, baselines=["ridge"], n_resamples=2000)
    >>> hil = summaries[1]
    >>> hil.median.value, hil.versus.reference, hil.versus.win.wins, hil.versus.win.ties
    (0.175, 'ridge', 3, 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from reservoir.validation import POSITIVE, POSITIVE_INT, SEED, Interval, check_array, check_choice, check_scalar

__all__ = [
    "Estimate",
    "MethodSummary",
    "PairedComparison",
    "WinFraction",
    "bootstrap_indices",
    "markdown_table",
    "median_interval",
    "median_ratio",
    "paired_values",
    "strongest",
    "summarise_cell",
    "win_fraction",
    "wilson_interval",
]

INTERVALS = ("percentile", "bca")
CONFIDENCE = Interval(0, 1, "neither")
N_RESAMPLES = 9999  # scipy.stats.bootstrap's default; Monte-Carlo error of a 95 % limit well below its width


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its two-sided ``confidence`` interval [low, high]."""

    value: float
    low: float
    high: float
    confidence: float

    def format(self, digits: int = 3) -> str:
        """``value [low, high]`` with ``digits`` significant digits."""
        return f"{self.value:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


@dataclass(frozen=True)
class WinFraction:
    """Devices where a method beat (``wins``), equalled (``ties``) or lost to (``losses``) the reference.

    ``fraction`` counts a tie as half a win, so the fraction of A against B and of B against A sum to 1;
    [low, high] is the Wilson score interval of that fraction over n = wins + ties + losses devices.
    """

    wins: int
    ties: int
    losses: int
    low: float
    high: float
    confidence: float

    @property
    def n(self) -> int:
        """The number of devices compared: wins + ties + losses."""
        return self.wins + self.ties + self.losses

    @property
    def fraction(self) -> float:
        """(wins + ties / 2) / n: the fraction of devices won, a tie counting half."""
        return (self.wins + 0.5 * self.ties) / self.n

    def format(self, digits: int = 2) -> str:
        """``fraction [low, high]`` then the counts, e.g. ``0.85 [0.64, 0.95] 17/20``, ``+1 tie`` if any."""
        ties = f" +{self.ties} tie{'s' if self.ties > 1 else ''}" if self.ties else ""
        return (f"{self.fraction:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] "
                f"{self.wins}/{self.n}{ties}")


@dataclass(frozen=True)
class PairedComparison:
    """``method`` against ``reference`` on the same devices: win fraction and median ratio of errors.

    ``n_floored``: devices where either error was raised to the error floor (see :func:`median_ratio`).
    """

    method: str
    reference: str
    win: WinFraction
    ratio: Estimate
    n_floored: int


@dataclass(frozen=True)
class MethodSummary:
    """One method in one cell: its median error over ``n`` devices, and its comparison with the cell's
    reference (``None`` for the reference itself)."""

    method: str
    n: int
    median: Estimate
    versus: PairedComparison | None


# ------------------------------------------------------------------------------------------ the bootstrap


def bootstrap_indices(n_items: int, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_items) indices of resamples with replacement: row b is the b-th bootstrap sample.

    Drawn as ``numpy.random.default_rng(seed).integers(0, n_items, (n_resamples, n_items))``, the draws
    ``scipy.stats.bootstrap`` makes with ``rng=default_rng(seed)`` when it resamples in one batch.  In a paired
    design the same rows index every method, so pairs stay together.
    """
    n_items = check_scalar("n_items", n_items, POSITIVE_INT)
    n_resamples = check_scalar("n_resamples", n_resamples, POSITIVE_INT)
    seed = check_scalar("seed", seed, SEED)
    return np.random.default_rng(seed).integers(0, n_items, (n_resamples, n_items))


def median_interval(
    values: Any,
    *,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    interval: str = "percentile",
) -> Estimate:
    """The median of ``values`` with a bootstrap interval over them (the devices of a cell).

    With theta* the medians of the resamples and alpha = (1 - confidence) / 2, the interval is
    [Q(alpha_1), Q(alpha_2)], Q the quantile of theta* (linear interpolation, as ``numpy.quantile``):

    - ``"percentile"``: alpha_1 = alpha, alpha_2 = 1 - alpha (Efron & Tibshirani 1993, ch. 13);
    - ``"bca"``: alpha_1,2 = Phi(z0 + (z0 + z) / (1 - a (z0 + z))) for z = Phi^-1(alpha), Phi^-1(1 - alpha),
      with the bias correction z0 = Phi^-1(#{theta* < theta} / B), ties counted half, and the acceleration
      a = sum U^3 / (6 (sum U^2)^(3/2)) from the jackknife, U_i = (n - 1)(mean_j theta_(j) - theta_(i))
      (Efron & Tibshirani 1993, §14.3; ``scipy.stats.bootstrap``'s definitions).

    The percentile interval is the default: for the median its coverage is near nominal and no worse than
    BCa's (measured on lognormal cells of 10, 20 and 50 devices, 600 cells each: 0.928, 0.940, 0.938
    percentile; 0.940, 0.935, 0.945 BCa), and it needs no jackknife, whose estimates are not consistent for
    the median (Efron & Tibshirani 1993, ch. 11).

    Args:
        values: (n,) finite values, n >= 2.
        confidence: in (0, 1), 0.95 for a 95 % interval.
        n_resamples: bootstrap samples B.
        seed: seed of the resampling (:func:`bootstrap_indices`).
        interval: ``"percentile"`` or ``"bca"``.
    """
    values = _sample("values", values)
    confidence = check_scalar("confidence", confidence, CONFIDENCE)
    check_choice("interval", interval, INTERVALS)
    indices = bootstrap_indices(len(values), n_resamples, seed)
    low, high = _bootstrap_limits(values, indices, confidence, interval)
    return Estimate(float(np.median(values)), low, high, confidence)


def _bootstrap_limits(values: np.ndarray, indices: np.ndarray, confidence: float, interval: str
                      ) -> tuple[float, float]:
    medians = np.median(values[indices], axis=1)
    alpha = (1 - confidence) / 2
    if interval == "percentile" or np.ptp(medians) == 0.0:  # a degenerate bootstrap has nothing to correct
        levels = np.array([alpha, 1 - alpha])
    else:
        estimate = np.median(values)
        z0 = ndtri((np.count_nonzero(medians < estimate) + np.count_nonzero(medians <= estimate))
                   / (2 * len(medians)))
        n = len(values)
        others = np.broadcast_to(values, (n, n))[~np.eye(n, dtype=bool)].reshape(n, n - 1)  # row i: all but i
        leave_one_out = np.median(others, axis=1)
        u = (n - 1) * (leave_one_out.mean() - leave_one_out)
        spread = np.sum(u**2)
        acceleration = np.sum(u**3) / (6 * spread**1.5) if spread > 0 else 0.0
        z = ndtri(np.array([alpha, 1 - alpha]))
        levels = ndtr(z0 + (z0 + z) / (1 - acceleration * (z0 + z)))
    low, high = np.quantile(medians, levels)
    return float(low), float(high)


# ---------------------------------------------------------------------------------- paired comparisons


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion p = successes / n (Wilson 1927):

        (p + z^2 / 2n -/+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n),  z = Phi^-1((1 + confidence) / 2).

    Unlike a bootstrap interval it does not collapse to [1, 1] when every device wins, and its coverage stays
    near nominal for n ~ 20 (Brown, Cai & DasGupta, Stat. Sci. 16, 101 (2001)).  ``successes`` may be a half
    integer (ties counted half); the interval then uses the Bernoulli variance, an upper bound on the variance
    of scores in {0, 1/2, 1}, so it is conservative.
    """
    n = check_scalar("n", n, POSITIVE_INT)
    successes = check_scalar("successes", successes, Interval(0, n))
    confidence = check_scalar("confidence", confidence, CONFIDENCE)
    z = ndtri((1 + confidence) / 2)
    p = successes / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half_width = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def win_fraction(errors: Any, reference_errors: Any, *, floor: float | None = None, confidence: float = 0.95
                 ) -> WinFraction:
    """How often ``errors[i] < reference_errors[i]`` over the devices i, with a Wilson interval.

    A tie is an exact equality after both errors are raised to ``floor`` (when given): two errors below the
    test set's resolution cannot be told apart.  Ties count half a win (:class:`WinFraction`).

    Args:
        errors, reference_errors: (n,) non-negative errors of the two methods on the same n devices.
        floor: the smallest error the test set can resolve, or ``None`` (errors compared as they are).
        confidence: in (0, 1).
    """
    errors, reference_errors, _ = _paired(errors, reference_errors, floor)
    wins = int(np.count_nonzero(errors < reference_errors))
    ties = int(np.count_nonzero(errors == reference_errors))
    low, high = wilson_interval(wins + 0.5 * ties, len(errors), confidence)
    return WinFraction(wins, ties, len(errors) - wins - ties, low, high, confidence)


def median_ratio(
    errors: Any,
    reference_errors: Any,
    *,
    floor: float | None = None,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    interval: str = "percentile",
) -> Estimate:
    """Median over devices of the paired ratio errors[i] / reference_errors[i], with a bootstrap interval.

    The median is taken of the log ratios and exponentiated (for an odd n this is the median ratio itself),
    so the ratio of A to B is exactly the inverse of the ratio of B to A, and multiplying every error by the
    same factor leaves it unchanged.  The interval is :func:`median_interval`'s on the log ratios (pairs are
    resampled together), exponentiated.

    A zero error has no ratio.  Error rates measured on a finite test set resolve nothing below one error in
    it, so pass ``floor`` = 1 / (test-set size) (a symbol error rate of 0 on 10^5 symbols means "below about
    1e-5"): both errors are raised to ``floor`` first, and a ratio involving a floored value is then a bound,
    not an estimate (:attr:`PairedComparison.n_floored` counts such devices).  Without ``floor`` a zero error
    is refused.

    Args:
        errors, reference_errors: (n,) non-negative errors on the same n >= 2 devices.
        floor: > 0, the test set's error floor, or ``None``.
        confidence, n_resamples, seed, interval: as in :func:`median_interval`.
    """
    errors, reference_errors, _ = _paired(errors, reference_errors, floor)
    if floor is None and (np.any(errors == 0) or np.any(reference_errors == 0)):
        name, where = (("errors", errors) if np.any(errors == 0) else ("reference_errors", reference_errors))
        raise ValueError(f"{name} holds a zero error (device {int(np.argmin(where))}), which has no ratio: "
                         "pass floor, the smallest error the test set resolves (1 / its size for a rate)")
    log_ratio = median_interval(np.log(errors) - np.log(reference_errors), confidence=confidence,
                                n_resamples=n_resamples, seed=seed, interval=interval)
    return Estimate(*(float(np.exp(v)) for v in (log_ratio.value, log_ratio.low, log_ratio.high)), confidence)


def _paired(errors: Any, reference_errors: Any, floor: float | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Both error arrays checked (1-D, same length >= 2, finite, >= 0), raised to ``floor``; and how many
    devices had either error raised."""
    errors = _sample("errors", errors, non_negative=True)
    reference_errors = _sample("reference_errors", reference_errors, non_negative=True)
    if errors.shape != reference_errors.shape:
        raise ValueError(f"errors and reference_errors must hold one value per device of the same devices, got "
                         f"shapes {errors.shape} and {reference_errors.shape}")
    if floor is None:
        return errors, reference_errors, 0
    floor = check_scalar("floor", floor, POSITIVE)
    floored = int(np.count_nonzero((errors < floor) | (reference_errors < floor)))
    return np.maximum(errors, floor), np.maximum(reference_errors, floor), floored


def _sample(name: str, values: Any, non_negative: bool = False) -> np.ndarray:
    values = check_array(name, values, ndim=1).astype(np.float64)
    if len(values) < 2:
        raise ValueError(f"{name} must hold at least 2 values (one per device) for an interval, got "
                         f"{len(values)}")
    if non_negative and np.any(values < 0):
        index = int(np.argmax(values < 0))
        raise ValueError(f"{name} must be non-negative errors, got {values[index]} at index {index}")
    return values


# --------------------------------------------------------------------------------------------- cells


def paired_values(rows: Sequence[Mapping[str, Any]], *, unit: str = "seed", method: str = "method",
                  value: str = "value") -> dict[str, np.ndarray]:
    """The errors of one cell's tidy rows as ``{method: (n,) array}``, every array in the same device order.

    Rows are dicts (as :func:`experiments.results.read_rows` returns) with a method column, a device column
    ``unit`` and a ``value``; devices are sorted.  Every method must have exactly one row per device: a method
    missing a device would silently unpair the comparison, so it is refused.
    """
    table: dict[str, dict[Any, float]] = {}
    for row in rows:
        for key in (method, unit, value):
            if key not in row:
                raise ValueError(f"rows must have a {key!r} column, got a row with columns {sorted(row)}")
        by_unit = table.setdefault(str(row[method]), {})
        if row[unit] in by_unit:
            raise ValueError(f"rows hold two values for {method} {row[method]!r} on {unit} {row[unit]!r}")
        by_unit[row[unit]] = float(row[value])
    if not table:
        raise ValueError("rows must hold at least one row, got none")
    units = sorted({u for by_unit in table.values() for u in by_unit}, key=lambda u: (str(type(u)), u))
    for name, by_unit in table.items():
        missing = [u for u in units if u not in by_unit]
        if missing:
            raise ValueError(f"rows are not paired: {method} {name!r} has no value for {unit} {missing[:5]} "
                             f"that other methods have")
    return {name: np.array([by_unit[u] for u in units]) for name, by_unit in table.items()}


def strongest(errors_by_method: Mapping[str, Any], among: Sequence[str]) -> str:
    """The method of ``among`` with the lowest median error (the first listed on a tie)."""
    if isinstance(among, str) or not among:
        raise ValueError(f"among must be a non-empty sequence of method names, got {among!r}")
    missing = [name for name in among if name not in errors_by_method]
    if missing:
        raise ValueError(f"among names methods with no errors in this cell: {missing}; the cell has "
                         f"{sorted(errors_by_method)}")
    medians = [float(np.median(_sample(f"errors_by_method[{name!r}]", errors_by_method[name]))) for name in among]
    return among[int(np.argmin(medians))]


def summarise_cell(
    errors_by_method: Mapping[str, Any],
    baselines: Sequence[str],
    *,
    floor: float | None = None,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    interval: str = "percentile",
) -> list[MethodSummary]:
    """Every method of one cell: its median with an interval and, against the strongest of ``baselines``
    (:func:`strongest`), its win fraction and median paired ratio.  Methods in the mapping's order.

    Args:
        errors_by_method: {method: (n,) errors on the same n devices}, e.g. from :func:`paired_values`.
        baselines: the methods the reference is chosen from (each must be in ``errors_by_method``).
        floor, confidence, n_resamples, seed, interval: as in :func:`median_ratio`; one seed for the cell,
            so every method is resampled over the same devices.
    """
    if not isinstance(errors_by_method, Mapping) or not errors_by_method:
        raise ValueError(f"errors_by_method must be a non-empty mapping of method to errors, got "
                         f"{type(errors_by_method).__name__} {errors_by_method!r:.60}")
    reference = strongest(errors_by_method, baselines)
    options = dict(confidence=confidence, n_resamples=n_resamples, seed=seed, interval=interval)
    summaries = []
    for name, errors in errors_by_method.items():
        errors = _sample(f"errors_by_method[{name!r}]", errors, non_negative=True)
        versus = None
        if name != reference:
            reference_errors = errors_by_method[reference]
            _, _, n_floored = _paired(errors, reference_errors, floor)
            versus = PairedComparison(
                name, reference, win_fraction(errors, reference_errors, floor=floor, confidence=confidence),
                median_ratio(errors, reference_errors, floor=floor, **options), n_floored)
        summaries.append(MethodSummary(name, len(errors), median_interval(errors, **options), versus))
    return summaries


def markdown_table(
    cells: Mapping[Any, Sequence[MethodSummary]],
    cell_columns: Sequence[str] = ("cell",),
    digits: int = 3,
) -> str:
    """A Markdown table with one line per (cell, method): median [interval], then against the cell's
    reference the win fraction [Wilson interval] with its counts, and the median ratio [interval].

    ``cells`` maps a cell's key (a value, or a tuple with one entry per ``cell_columns``) to
    :func:`summarise_cell`'s list.  A ratio resting on an error raised to the floor is marked ``*``, with a
    note under the table.  Ties are listed after the wins (``17/20 +1 tie``).
    """
    digits = check_scalar("digits", digits, POSITIVE_INT)
    cell_columns = tuple(cell_columns)
    percent = None
    lines, floored = [], False
    for key, summaries in cells.items():
        key = key if isinstance(key, tuple) else (key,)
        if len(key) != len(cell_columns):
            raise ValueError(f"cells has key {key!r} with {len(key)} entries, but cell_columns names "
                             f"{len(cell_columns)}: {cell_columns}")
        for summary in summaries:
            percent = percent or f"{summary.median.confidence:.0%}".replace("%", " %")
            versus = summary.versus
            if versus is None:
                comparison = ["(reference)", "", ""]
            else:
                mark = "*" if versus.n_floored else ""
                floored = floored or bool(mark)
                comparison = [versus.reference, versus.win.format(), versus.ratio.format(digits) + mark]
            cells_text = [*map(str, key), summary.method, str(summary.n), summary.median.format(digits),
                          *comparison]
            lines.append("| " + " | ".join(text.replace("|", "\\|") for text in cells_text) + " |")
    if not lines:
        raise ValueError("cells must hold at least one method summary, got none")
    header = [*cell_columns, "method", "devices", f"median [{percent} CI]", "against",
              f"wins [{percent} CI]", f"median ratio [{percent} CI]"]
    rule = ["---"] * len(cell_columns) + ["---", "---:", "---:", "---", "---:", "---:"]
    note = ["", "\\* some devices' errors were raised to the test set's error floor: a bound, not an estimate"]
    return "\n".join(["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |", *lines,
                      *(note if floored else [])])
