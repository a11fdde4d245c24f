"""The curse of dimensionality, measured: grid search vs one weight at a time vs backprop, as P grows.

The seed article's argument: try 1000 values for each of P weights at 10⁹ loss evaluations per second and
exhaustive search costs 1000^P / 10⁹ s — 1 ms for 2 weights, 16.7 min for 4, 11.6 days for 5.  Here the three
ways of training are run on the same small problem, and their cost to reach the same loss is counted.

**Problem** (one per number of weights P and seed): the primer's sigmoid unit with P inputs and no bias,
``f(x) = σ(w·x)``, cost ``C(w) = ½ mean (f(x) − y)²`` over N = max(64, 4P) examples (the primer's
``backprop`` with a single layer).  A teacher ``w*`` (drawn from U(−1, 1)^P, then rescaled to that
distribution's mean norm √(P/3), so every seed has the same signal) labels Gaussian inputs
``x ~ N(0, 12/P · I)`` (so ``w*·x`` has a standard deviation of 2 whatever P is), plus noise of standard
deviation 0.1.  The seed fixes the teacher, the inputs and the noise.

**Target loss**: with ``C₀ = C(0)`` (knowing nothing) and ``C* =`` backprop's converged loss (L-BFGS driven by
the hand-written backprop gradient, from w = 0, to a relative change below 1e-15),
``target = C* + TOLERANCE · (C₀ − C*)`` with TOLERANCE = 0.01: a method is done when it has come 99% of the
way from knowing nothing to the optimum.  Every method stops the first time it *evaluates* a point at or
below the target.

**Methods and their cost** (main cost: loss evaluations, a machine-independent count; second: wall seconds):

* ``grid_search`` — all G^P points of ``linspace(−BOX, BOX, G)^P`` (BOX = 2: the teacher and the optimum lie
  well inside, so the grid is handed the right box for free), vectorised with NumPy.  G is the smallest grid
  size that contains a point at or below the target, found by growing G by half until one does, then
  bisecting (the best grid loss is nearly, not exactly, monotone in G).  Cost = G^P evaluations of that one
  grid (a lower bound for anyone who does not know G in advance; the whole hunt is the ``scan_evaluations``
  metric).  Measured for P up to ``grid_up_to`` and while G^P stays within the run's ``grid_budget``;
  where no such grid reaches the target, the largest one tried is reported with ``reached_target = 0``
  (its cost is then a lower bound).
* ``finite_differences`` — "one weight at a time": nudge each weight by h, see how the loss changes
  (forward differences, P + 1 evaluations per step: the cheapest such gradient; central ones cost 2P), and
  take a gradient-descent step.
* ``backprop`` — the same gradient descent with the hand-written backprop gradient (the primer's BP1–BP4).
  A gradient is counted as ``GRADIENT_COST = 3`` loss evaluations whatever P: one forward pass, plus a
  backward pass that does about twice its arithmetic (the "cheap gradient principle" of reverse-mode
  differentiation).  The measured wall-time ratio of one gradient to one loss evaluation is reported next to
  it (``gradient_over_loss_seconds``) so the constant can be checked on the machine at hand.

Both gradient methods start at w = 0 and use the same fixed step ``16 N / λ_max(XᵀX)``: the Hessian of the
cost's Gauss–Newton part is at most ``XᵀX / 16N`` (σ' ≤ ¼), so this step is stable from any starting point,
with a factor 2 to spare for the small residual part of the Hessian.

Wall times (the fastest of 3 repeats for the gradient methods, one pass for the grid) are dominated at these
sizes by NumPy's per-call overhead: the P + 1 evaluations of a finite-difference step are one vectorised
call, so its wall time grows far more slowly than its evaluation count.  The count is the honest cost.

**Extrapolation** (``kind = "extrapolated"``, beyond what was measured, up to ``EXTRAPOLATE_TO`` weights):
grid search at the measured G (the largest median-over-seeds G found, or tried in vain, at any measured P: a
lower bound, as the G needed does not shrink with P) costs G^P evaluations, and G^P over the grid's measured
evaluations per second on this machine; one weight at a time costs (P + 1) × steps and backprop
GRADIENT_COST × steps, with the median steps measured at the largest P.  ``kind = "article"``: the
article's 1000 values per weight, 1000^P.

Results: ``DIR/curse_of_dimensionality/results.csv`` (tidy: method, n_weights, seed, metric, value, kind),
``config.json``, ``units.jsonl`` (one line per measured (P, seed): a rerun with the same options reuses them,
``fresh=True`` measures again) and ``curse_of_dimensionality.png``/``.pdf``.  Timings are only meaningful
in-process, so the only scheduler accepted is ``None``/``"inprocess"``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import numpy as np
from scipy.optimize import minimize

from experiments.backprop_primer import (
    EVALUATIONS_PER_SECOND,
    VALUES_PER_WEIGHT,
    _median_seconds,
    backprop,
    human,
    jax_cost_numpy,
    search_seconds,
    sigmoid,
)
from experiments.results import open_run, pyplot, read_rows, save_figure, write_rows
from experiments.sweep import require_inprocess, run_sweep

DESCRIPTION = "cost of grid search, one-weight-at-a-time and backprop to reach the same loss as P grows"
NAME = "curse_of_dimensionality"
COLUMNS = ("method", "n_weights", "seed", "metric", "value", "kind")
METHODS = ("grid_search", "finite_differences", "backprop")
TOLERANCE = 0.01  # done = 99% of the way from C(0) to the optimum C*
NOISE = 0.1
BOX = 2.0
GRADIENT_COST = 3  # loss evaluations counted per backprop gradient
FD_STEP = 1e-7  # forward-difference nudge (about sqrt(float64 epsilon) times the weights' scale)
MAX_STEPS = 20_000
EXTRAPOLATE_TO = 40
ARTICLE = {2: "1 ms", 4: "16.7 min", 5: "11.6 days"}  # the article's figures, 1000 values/weight at 1e9/s
AGE_OF_UNIVERSE = 4.35e17  # seconds
SIZES = {
    False: dict(n_seeds=3, weights=(1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32), grid_up_to=5, grid_budget=2_000_000),
    True: dict(n_seeds=1, weights=(1, 2, 3, 4, 6, 8, 16), grid_up_to=4, grid_budget=200_000),
}

LossBatch = Callable[[np.ndarray], np.ndarray]  # (K, P) weights -> (K,) costs


# ------------------------------------------------------------------------------------------ the problem


def make_problem(n_weights: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (N, P), y (N, 1), teacher (P,)): a noisy sigmoid teacher; see the module docstring."""
    rng = np.random.default_rng([seed, n_weights])
    n_examples = max(64, 4 * n_weights)
    teacher = rng.uniform(-1, 1, n_weights)
    teacher *= np.sqrt(n_weights / 3) / np.linalg.norm(teacher)  # the mean norm: same signal for every seed
    x = rng.normal(size=(n_examples, n_weights)) * np.sqrt(12 / n_weights)
    y = sigmoid(x @ teacher) + NOISE * rng.normal(size=n_examples)
    return x, y[:, None], teacher


def as_params(w: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The weight vector as the primer's parameter list: one layer, W (1, P), bias fixed at 0."""
    return [(np.asarray(w, dtype=float)[None, :], np.zeros(1))]


def loss_batch(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The cost at K weight vectors at once, (K, P) -> (K,): K loss evaluations in one vectorised call."""
    return 0.5 * np.mean((sigmoid(weights @ x.T) - y[:, 0]) ** 2, axis=1)


def loss_and_gradient(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Cost and its gradient by the primer's hand-written backprop (BP1, BP3, BP4 for a single layer)."""
    cost, grads = backprop(as_params(w), x, y)
    return float(cost), grads[0][0][0]


def optimum_loss(x: np.ndarray, y: np.ndarray) -> float:
    """Backprop's converged loss C*: L-BFGS on the hand-written gradient, from w = 0, run to convergence."""
    result = minimize(loss_and_gradient, np.zeros(x.shape[1]), args=(x, y), jac=True, method="L-BFGS-B",
                      options=dict(ftol=1e-15, gtol=1e-12, maxiter=10_000))
    return float(result.fun)


def target_loss(start: float, optimum: float, tolerance: float = TOLERANCE) -> float:
    """``optimum + tolerance · (start − optimum)``: done when 1 − tolerance of the way to the optimum."""
    return optimum + tolerance * (start - optimum)


def safe_step(x: np.ndarray) -> float:
    """``16 N / λ_max(XᵀX)``: the inverse of a bound on the Gauss–Newton curvature (σ' ≤ ¼) anywhere."""
    return 16 * len(x) / float(np.linalg.eigvalsh(x.T @ x)[-1])


# ---------------------------------------------------------------------------- the article's arithmetic


def grid_evaluations(n_weights: int, values_per_weight: int) -> int:
    """Exhaustive search tries every combination: ``values_per_weight ** n_weights`` evaluations."""
    return values_per_weight ** n_weights


def seconds_at(evaluations: float, per_second: float = EVALUATIONS_PER_SECOND) -> float:
    """Seconds to do ``evaluations`` at the article's 10⁹ evaluations per second (or ``per_second``)."""
    return evaluations / per_second


# ---------------------------------------------------------------------------------------- grid search


def grid_search(losses: LossBatch, n_weights: int, values_per_weight: int, box: float = BOX,
                chunk: int = 1 << 15) -> tuple[float, np.ndarray, int]:
    """Evaluate every point of ``linspace(−box, box, G)^P``; (best cost, its weights, evaluations made).

    Chunked so memory stays bounded; the evaluation count is the number of points actually evaluated.
    """
    axis = np.linspace(-box, box, values_per_weight)
    total = grid_evaluations(n_weights, values_per_weight)
    best, best_w, evaluations = np.inf, None, 0
    for start in range(0, total, chunk):
        index = np.arange(start, min(total, start + chunk))
        weights = axis[np.stack(np.unravel_index(index, (values_per_weight,) * n_weights), axis=1)]
        costs = losses(weights)
        evaluations += len(costs)
        if costs.min() < best:
            best, best_w = float(costs.min()), weights[costs.argmin()]
    return best, best_w, evaluations


def smallest_grid(losses: LossBatch, n_weights: int, target: float, budget: int) -> dict:
    """The smallest G whose grid reaches ``target`` (G grows by half, then bisection), within ``budget``.

    Returns values_per_weight, evaluations (of that grid), seconds (its wall time), final_loss,
    reached_target and scan_evaluations (every grid tried).  If no grid within the budget reaches the
    target, the largest one tried is reported with reached_target False.
    """
    tried: dict[int, tuple[float, int, float]] = {}

    def run(size: int) -> bool:
        start = time.perf_counter()
        best, _, evaluations = grid_search(losses, n_weights, size)
        tried[size] = (best, evaluations, time.perf_counter() - start)
        return best <= target

    low, high, size = 1, None, 2
    while grid_evaluations(n_weights, size) <= budget:
        if run(size):
            high = size
            break
        low, size = size, max(size + 1, math.ceil(1.5 * size))
    if high is None:
        size = max(tried) if tried else 1
        result = tried.get(size, (math.inf, 0, 0.0))
        reached = False
    else:
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if run(middle) else (middle, high)
        size, result, reached = high, tried[high], True
    return dict(values_per_weight=size, evaluations=result[1], seconds=result[2], final_loss=result[0],
                reached_target=reached, scan_evaluations=sum(t[1] for t in tried.values()))


# ------------------------------------------------------------------------------------ gradient descent


def finite_difference_gradient(losses: LossBatch, w: np.ndarray, h: float = FD_STEP
                               ) -> tuple[float, np.ndarray, int]:
    """One weight at a time: the cost at w and at w + h·e_i for each i (one vectorised call of P + 1
    evaluations), forward differences.  Returns (cost at w, gradient estimate, evaluations)."""
    points = np.vstack([w, w + h * np.eye(len(w))])
    costs = losses(points)
    return float(costs[0]), (costs[1:] - costs[0]) / h, len(points)


def descend(oracle: Callable[[np.ndarray], tuple[float, np.ndarray, float]], w0: np.ndarray, step: float,
            target: float, max_steps: int = MAX_STEPS) -> dict:
    """Gradient descent ``w ← w − step·g`` until the oracle reports a cost at or below ``target``.

    ``oracle(w) -> (cost, gradient, evaluations it cost)``.  Returns steps (oracle calls), evaluations,
    final_loss, reached_target.
    """
    w, evaluations = np.array(w0, dtype=float), 0.0
    for calls in range(1, max_steps + 1):
        cost, gradient, spent = oracle(w)
        evaluations += spent
        if cost <= target:
            return dict(steps=calls, evaluations=evaluations, final_loss=cost, reached_target=True)
        w = w - step * gradient
    return dict(steps=max_steps, evaluations=evaluations, final_loss=cost, reached_target=False)


# ------------------------------------------------------------------------------------------- one unit


def run_unit(unit: dict) -> list[dict]:
    """Measure the three methods on one (P, seed) problem; the grid only if ``unit["grid"]``."""
    n_weights, seed = unit["n_weights"], unit["seed"]
    x, y = make_problem(n_weights, seed)[:2]
    losses = lambda weights: loss_batch(weights, x, y)
    start = float(losses(np.zeros((1, n_weights)))[0])
    optimum = optimum_loss(x, y)
    target = target_loss(start, optimum)
    step = safe_step(x)
    base = dict(n_weights=n_weights, seed=seed, kind="measured")
    rows = [dict(base, method="problem", metric=metric, value=value) for metric, value in
            (("start_loss", start), ("optimum_loss", optimum), ("target_loss", target), ("step_size", step),
             ("n_examples", len(x)))]

    def record(method: str, result: dict) -> None:
        rows.extend(dict(base, method=method, metric=metric, value=float(value)) for metric, value in
                    result.items())

    if unit["grid"]:
        record("grid_search", smallest_grid(losses, n_weights, target, unit["grid_budget"]))
    by_differences = lambda: descend(lambda w: finite_difference_gradient(losses, w), np.zeros(n_weights), step,
                                     target)
    result, seconds = timed(by_differences)
    record("finite_differences", dict(result, seconds=seconds))
    by_backprop = lambda: descend(lambda w: (*loss_and_gradient(w, x, y), GRADIENT_COST), np.zeros(n_weights),
                                  step, target)
    result, seconds = timed(by_backprop)
    w = np.full(n_weights, 0.1)
    ratio = (fastest_seconds(lambda: loss_and_gradient(w, x, y))
             / fastest_seconds(lambda: jax_cost_numpy(as_params(w), x, y)))
    record("backprop", dict(result, gradients=result["steps"], seconds=seconds, gradient_over_loss_seconds=ratio))
    return rows


def timed(function: Callable[[], dict], repeats: int = 3) -> tuple[dict, float]:
    """(result, fastest wall time of ``repeats`` runs): the minimum is the run least disturbed by other load."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, min(times)


def fastest_seconds(function: Callable[[], object], repeats: int = 7, number: int = 100) -> float:
    """Seconds per call, the fastest of ``repeats`` batches of ``number`` calls (as ``timeit`` advises)."""
    return min(_median_seconds(function, repeats=1, number=number) for _ in range(repeats))


# ------------------------------------------------------------------------------------------ extrapolate


def _values(rows: list[dict], method: str, metric: str, n_weights: int | None = None) -> list[float]:
    return [r["value"] for r in rows if r["method"] == method and r["metric"] == metric
            and r.get("kind", "measured") == "measured" and (n_weights is None or r["n_weights"] == n_weights)]


def _all_reached(rows: list[dict], method: str, n_weights: int) -> bool:
    reached = _values(rows, method, "reached_target", n_weights)
    return bool(reached) and all(reached)


def extrapolate(rows: list[dict], up_to: int = EXTRAPOLATE_TO) -> list[dict]:
    """Rows of the extrapolated costs (see the module docstring) and of the article's 1000^P."""
    out = [dict(method="grid_search", n_weights=p, seed="", metric="evaluations", kind="article",
                value=float(grid_evaluations(p, VALUES_PER_WEIGHT))) for p in range(1, up_to + 1)]
    grid_sizes = sorted({r["n_weights"] for r in rows if r["method"] == "grid_search" and r["kind"] == "measured"})
    if grid_sizes:
        # The largest G seen at any P: found there, or tried there in vain (so at least that much is needed).
        size = max(median(_values(rows, "grid_search", "values_per_weight", p)) for p in grid_sizes)
        rate = sum(_values(rows, "grid_search", "evaluations")) / sum(_values(rows, "grid_search", "seconds"))
        for p in range(grid_sizes[-1] + 1, up_to + 1):
            evaluations = float(size) ** p
            common = dict(method="grid_search", n_weights=p, seed="", kind="extrapolated")
            out += [dict(common, metric="values_per_weight", value=float(size)),
                    dict(common, metric="evaluations", value=evaluations),
                    dict(common, metric="seconds", value=evaluations / rate)]
    measured = sorted({r["n_weights"] for r in rows if r["method"] == "backprop" and r["kind"] == "measured"})
    if measured:
        last = measured[-1]
        steps = {m: median(_values(rows, m, "steps", last)) for m in ("finite_differences", "backprop")}
        for p in range(last + 1, up_to + 1):
            common = dict(n_weights=p, seed="", metric="evaluations", kind="extrapolated")
            out += [dict(common, method="finite_differences", value=(p + 1) * steps["finite_differences"]),
                    dict(common, method="backprop", value=GRADIENT_COST * steps["backprop"])]
    return out


# ------------------------------------------------------------------------------------------------ run


def run_experiment(out: Path | str = "results", quick: bool = False, seeds: int | None = None,
                   scheduler: str | None = None, fresh: bool = False) -> Path:
    """Run the three methods on every (P, seed) problem in this process (wall times are measured), add the
    extrapolated costs beyond the measured P, write ``results.csv`` and the figure under ``out`` and print the
    table."""
    require_inprocess(scheduler, NAME, "its wall times must be measured in this process")
    size = SIZES[quick]
    seed_list = list(range(seeds or size["n_seeds"]))
    config = dict(experiment=NAME, quick=quick, seeds=seed_list, weights=size["weights"],
                  grid_up_to=size["grid_up_to"], grid_budget=size["grid_budget"], tolerance=TOLERANCE,
                  noise=NOISE, box=BOX, gradient_cost=GRADIENT_COST, fd_step=FD_STEP, max_steps=MAX_STEPS,
                  extrapolate_to=EXTRAPOLATE_TO)
    directory = open_run(out, NAME, config, fresh=fresh)
    # Grid search only up to grid_up_to weights: beyond, the grids that fit in the budget are far too coarse.
    units = [dict(n_weights=p, seed=seed, grid=p <= size["grid_up_to"], grid_budget=size["grid_budget"])
             for p in size["weights"] for seed in seed_list]
    results = run_sweep(run_unit, units, directory, scheduler=scheduler, desc=NAME)
    rows = [dict(row) for unit_rows in results for row in unit_rows]
    rows += extrapolate(rows)
    write_rows(directory / "results.csv", rows, COLUMNS)
    print(summary(rows))
    plot(directory)
    return directory


# -------------------------------------------------------------------------------------------- summary


def _cell(rows: list[dict], method: str, metric: str, p: int) -> str:
    """Median over seeds (measured), '>=' if some seed did not reach the target, '~' if extrapolated."""
    values = _values(rows, method, metric, p)
    if values:
        prefix = "" if _all_reached(rows, method, p) else ">="
        return f"{prefix}{median(values):.3g}"
    guess = [r["value"] for r in rows if (r["method"], r["metric"], r["n_weights"], r["kind"])
             == (method, metric, p, "extrapolated")]
    return f"~{guess[0]:.3g}" if guess else "-"


def summary(rows: list[dict]) -> str:
    """The table: evaluations to reach the target for each P, and the article's arithmetic beside it."""
    measured = sorted({r["n_weights"] for r in rows if r.get("kind") == "measured"})
    shown = sorted(set(measured) | set(ARTICLE) | {10, 20, EXTRAPOLATE_TO})
    ratios = _values(rows, "backprop", "gradient_over_loss_seconds")
    ratio = (f"median {median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-")
    lines = [f"Loss evaluations to come {1 - TOLERANCE:.0%} of the way from C(0) to the optimum, median over "
             f"seeds ('~' extrapolated, '>=' target not reached within the grid budget).",
             f"A backprop gradient counts as {GRADIENT_COST} evaluations (measured wall time of a gradient over "
             f"a loss evaluation: {ratio}).",
             f"{'P':>3s} {'grid G':>7s} {'grid':>10s} {'1-at-a-time':>11s} {'backprop':>9s} {'steps':>6s}   "
             f"{'1000^P evaluations at 1e9/s':<30s} {'article':>9s}"]
    for p in shown:
        seconds = search_seconds(p)
        lines.append(f"{p:3d} {_cell(rows, 'grid_search', 'values_per_weight', p):>7s} "
                     f"{_cell(rows, 'grid_search', 'evaluations', p):>10s} "
                     f"{_cell(rows, 'finite_differences', 'evaluations', p):>11s} "
                     f"{_cell(rows, 'backprop', 'evaluations', p):>9s} "
                     f"{_cell(rows, 'backprop', 'steps', p):>6s}   "
                     f"{f'{seconds:.3g} s = {human(seconds)}':<30s} {ARTICLE.get(p, ''):>9s}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- plot


STYLE = {"grid_search": ("C0", "s", "grid search (measured G)"),
         "finite_differences": ("C1", "^", "one weight at a time (finite differences)"),
         "backprop": ("C2", "o", "backprop")}


def plot(directory: Path | str) -> list[Path]:
    """Redraw the figure from results.csv alone: (a) evaluations vs P for all three methods, with seconds at
    10⁹/s alongside and the article's figures; (b) the two gradient methods up close; (c) measured seconds."""
    plt = pyplot()
    directory = Path(directory)
    rows = read_rows(directory / "results.csv")
    fig, (cost, gradients, clock) = plt.subplots(1, 3, figsize=(17, 5.6),
                                                 gridspec_kw=dict(width_ratios=(1.6, 1, 1), wspace=0.42))
    _cost_panel(cost, rows)
    for method in ("finite_differences", "backprop"):
        _measured_and_extrapolated(gradients, rows, method, "evaluations", *STYLE[method])
    gradients.set(xscale="log", yscale="log", xlabel="number of weights P", ylabel="loss evaluations",
                  title=f"(b) the gradient methods up close\n(evaluations a step: P + 1 vs {GRADIENT_COST})")

    for method, style in STYLE.items():
        _measured_and_extrapolated(clock, rows, method, "seconds", *style)
    clock.set(yscale="log", xlabel="number of weights P", ylabel="seconds on this machine")
    top = 3.156e7 * 1e4
    for seconds, text in ((1, "1 s"), (60, "1 min"), (3600, "1 hour"), (86400, "1 day"), (3.156e7, "1 year")):
        clock.axhline(seconds, color="gray", lw=0.6, ls=":")
        clock.text(clock.get_xlim()[1], seconds * 1.3, f"{text} ", fontsize=7, color="gray", ha="right")
    clock.set_ylim(top=top)
    ratios = _values(rows, "backprop", "gradient_over_loss_seconds")
    note = f"\none gradient took {median(ratios):.1f}× one loss evaluation" if ratios else ""
    clock.set_title(f"(c) wall time measured here (grid extrapolated at its rate){note}", fontsize=10)
    ticker = plt.matplotlib.ticker
    for axis in (cost.yaxis, clock.yaxis, *(a.yaxis for a in cost.child_axes)):
        # Labelled powers of ten only: ~40 decades of default ticks mean thousands of labels to lay out.
        axis.set_major_locator(ticker.LogLocator(numticks=8))
        axis.set_major_formatter(ticker.FuncFormatter(_power_of_ten))
        axis.set_minor_locator(ticker.NullLocator())
    for axis in (gradients.xaxis, gradients.yaxis):
        axis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
        axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_locator(ticker.NullLocator())
    legend = {}  # one legend for the three panels, under them
    for ax in (cost, clock):
        legend.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    fig.legend(legend.values(), legend.keys(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4,
               fontsize=9, frameon=False)
    return [save_figure(fig, directory, NAME)]


def _power_of_ten(value: float, _position=None) -> str:
    """'10²⁶' in plain text: the same look as matplotlib's default, without typesetting each label as math."""
    exponent = round(math.log10(value)) if value > 0 else 0
    return "10" + str(exponent).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def _cost_panel(ax, rows: list[dict]) -> None:
    """Evaluations to reach the target, log scale, with the article's 1000^P and reference durations."""
    article = sorted((r["n_weights"], r["value"]) for r in rows
                     if (r["method"], r["metric"], r["kind"]) == ("grid_search", "evaluations", "article"))
    if article:
        ax.plot(*zip(*article, strict=True), color="gray", ls="--", lw=1.2,
                label="grid search, 1000 values/weight (the article)")
    for p, text in ARTICLE.items():
        value = grid_evaluations(p, VALUES_PER_WEIGHT)
        ax.plot(p, value, "*", color="k", ms=11, zorder=5)
        ax.annotate(f"{p} weights: {text}", (p, value), xytext=(7, -3), textcoords="offset points", fontsize=8)
    for method, style in STYLE.items():
        _measured_and_extrapolated(ax, rows, method, "evaluations", *style)
    top = AGE_OF_UNIVERSE * EVALUATIONS_PER_SECOND * 1e12
    for seconds, text in ((1, "1 second"), (86400, "1 day"), (3.156e7, "1 year"),
                          (AGE_OF_UNIVERSE, "age of the universe")):
        ax.axhline(seconds * EVALUATIONS_PER_SECOND, color="gray", lw=0.6, ls=":")
        ax.text(ax.get_xlim()[1], seconds * EVALUATIONS_PER_SECOND * 2, f"{text} ", fontsize=7, color="gray",
                ha="right", va="bottom")
    ax.set(yscale="log", xlabel="number of weights P", ylabel="loss evaluations to reach the target",
           ylim=(0.5, top))
    ax.set_title(f"(a) cost of coming {1 - TOLERANCE:.0%} of the way to the optimum\n"
                 "(markers measured, median of seeds; dashed extrapolated)", fontsize=10)
    seconds_axis = ax.secondary_yaxis("right", functions=(lambda e: e / EVALUATIONS_PER_SECOND,
                                                          lambda s: s * EVALUATIONS_PER_SECOND))
    seconds_axis.set_ylabel("seconds at 10⁹ evaluations/s")


def _measured_and_extrapolated(ax, rows: list[dict], method: str, metric: str, color: str, marker: str,
                               label: str) -> None:
    """Median over seeds as markers (hollow where some seed missed the target), extrapolation dashed."""
    sizes = sorted({r["n_weights"] for r in rows if (r["method"], r["metric"], r["kind"])
                    == (method, metric, "measured")})
    medians = [median(_values(rows, method, metric, p)) for p in sizes]
    reached = [_all_reached(rows, method, p) for p in sizes]
    if sizes:
        ax.plot(sizes, medians, "-", color=color, lw=1)
        ax.plot([p for p, ok in zip(sizes, reached, strict=True) if ok],
                [m for m, ok in zip(medians, reached, strict=True) if ok], marker, color=color, label=label)
        missed = [(p, m) for p, m, ok in zip(sizes, medians, reached, strict=True) if not ok]
        if missed:
            ax.plot(*zip(*missed, strict=True), marker, color=color, mfc="none",
                    label=f"{label}: target not reached (lower bound)")
    guess = sorted((r["n_weights"], r["value"]) for r in rows if (r["method"], r["metric"], r["kind"])
                   == (method, metric, "extrapolated"))
    if guess:
        reached_sizes = [p for p, ok in zip(sizes, reached, strict=True) if ok]
        anchor = [(reached_sizes[-1], medians[sizes.index(reached_sizes[-1])])] if reached_sizes else []
        ax.plot(*zip(*(anchor + guess), strict=True), "--", color=color, lw=1.2,
                label=f"{label}, extrapolated")
