"""Hardware-in-the-loop vs digital training of a mismatched opto-electronic delay device (the main experiment).

The device is the sine delay reservoir of ``hardware_sim.delay_device``: its physics differs from the nominal
digital twin by a relative parameter ``mismatch`` (0 … 0.3) and, optionally, detection noise (``snr_db``).  The
input side (``NAMES``) and a linear readout are trained on three tasks (``TASKS``) by each method (the gradient
modes move the input side by Adam while the readout is solved in closed form on every batch inside the loss —
``train_on_device(readout="ridge")`` — the same objective SPSA estimates):

* ``reservoir`` — no training of the input side: the random nominal mask, a ridge readout on measured
  device states (the "Reservoir" baseline of Hermans et al. 2016; one device query);
* ``digital`` — BPTT on the twin, deployed on the device as is (no device query during training);
* ``digital+readout`` — as ``digital``, then the readout re-solved by ridge on measured device states;
* ``hil`` — forward on the device, backward through the twin (physics-aware training, Wright et al. 2022);
* ``physical_backprop`` — forward *and* backward on the device (``Device.adjoint``, Hermans et al. 2016);
* ``spsa`` — gradient-free, two device measurements per step.

Tasks (inputs scaled so the nominal device is in a sensible regime; every sequence starts from rest):

* ``narma10`` — NARMA10, training in chunks of 100 steps, test NMSE on one long sequence;
* ``channel`` — nonlinear channel equalisation (Jaeger & Haas 2004) at ``CHANNEL_SNR_DB``: recover d(n−2)
  from the received u(n) (scaled by 1/4), chunks of 100 steps; the error is the symbol error rate (SER);
* ``digits`` — the 8×8 digits read row by row (8 steps of 8 inputs); the readout regresses the one-hot label
  from the states averaged over the 8 steps, the class is the argmax of its outputs; the error is the
  misclassification rate.  The readout is trained on the states averaged over the 8 steps (``pool``).

A unit is (task × mismatch × snr × seed): a fresh device (device seed = seed, data seed =
``DATA_SEED_OFFSET`` + seed) for every method, so no method sees another's drift or noise stream.  Digital
training does not touch the device, so it runs once per (task, seed) and is reused across mismatch and noise
levels (cached per process; it is deterministic, so every executor gives the same numbers).  Rows: the task's
error (``test_error``: NMSE, SER or error rate), ``test_nmse``, ``device_samples``, and per-epoch
``train_loss`` (with ``epoch``), each with ``device_queries`` (device calls spent by training; for
``train_loss`` the queries spent by the end of that epoch — every epoch makes the same calls).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from experiments import metrics, tasks
from experiments.results import open_run, pyplot, read_rows, save_figure, write_rows
from experiments.sweep import run_sweep
from hardware_sim import delay_device
from hardware_sim.training import device_predictions, device_ridge_readout, ridge_objective, train_on_device
from readout.features import one_hot
from reservoir.trainable import split_trainable

DESCRIPTION = "Reservoir vs digital vs HIL vs physical backprop vs SPSA on a mismatched, noisy delay device"
COLUMNS = ("task", "method", "mismatch", "snr_db", "seed", "metric", "value", "device_queries", "epoch")
TASKS = ("narma10", "channel", "digits")
ERROR_NAMES = {"narma10": "test NMSE", "channel": "symbol error rate", "digits": "error rate"}
METHODS = ("reservoir", "digital", "digital+readout", "hil", "physical_backprop", "spsa")
TRAINED_ON_DEVICE = ("hil", "physical_backprop", "spsa")
MISMATCHES = (0.0, 0.05, 0.1, 0.2, 0.3)
SNRS: tuple[float | None, ...] = (None, 30.0)  # None: no detection noise
QUICK_MISMATCHES = (0.0, 0.3)
QUICK_SNRS: tuple[float | None, ...] = (None,)
QUICK_TASKS = ("narma10", "digits")
DEFAULT_SEEDS, QUICK_SEEDS = 5, 1
N_UNITS = 30
NAMES = ("mask", "input_gain", "feedback_gain", "phase")
DATA_SEED_OFFSET = 1000
CHANNEL_SNR_DB = 24.0
CHANNEL_INPUT_SCALE = 0.25
# Time series: training in chunks of `chunk` steps (each from rest), test on one long sequence.
SERIES = dict(n_train=1000, n_test=1000, chunk=100, washout=20, test_washout=50)
QUICK_SERIES = dict(SERIES, n_train=600, n_test=600)
DIGITS = dict(n_train=500, n_test=400)
QUICK_DIGITS = dict(n_train=200, n_test=200)
# digital, digital+readout, hil, physical_backprop: Adam on the input side, the readout solved in closed form on
# every batch inside the loss (readout="ridge"); early-stopped on the last 20% of the chunks (start included).
GRADIENT = dict(n_epochs=12, learning_rate=3e-2, validation_fraction=0.2, readout="ridge")
BATCH_SIZE = {"narma10": 4, "channel": 4, "digits": 100}
SPSA = dict(n_epochs=30, spsa_gain=0.5, spsa_perturbation=0.1)  # one step per epoch
QUICK_GRADIENT = dict(GRADIENT, n_epochs=3)
QUICK_SPSA = dict(SPSA, n_epochs=6)
ALPHA = 1e-4
# Query cost of one training objective with many parameters (digits: 30 x 8 mask + 3 scalars = 243):
# hil with its default settings against SPSA given a budget of SPSA_BUDGET_STEPS steps (2 queries each).
QUERY_COST = dict(task="digits", mismatch=0.1, snr_db=None)
SPSA_BUDGET_STEPS, QUICK_SPSA_BUDGET_STEPS = 400, 10
COLORS = {"reservoir": "0.45", "digital": "C0", "digital+readout": "C1", "hil": "C3",
          "physical_backprop": "C4", "spsa": "C2"}


@dataclasses.dataclass(frozen=True)
class TaskData:
    """Training sequences (B, T, D) / targets (B, T, O); test inputs, targets and what scores them."""

    u_train: np.ndarray
    y_train: np.ndarray
    u_test: np.ndarray
    y_test: np.ndarray
    washout: int
    test_washout: int
    pool: bool = False  # digits: one target per sequence, read from the states averaged over its steps
    labels_test: np.ndarray | None = None


def snr_label(snr_db: Any) -> str:
    return "no noise" if snr_db in (None, "", "none") else f"{float(snr_db):g} dB"


@functools.cache
def task_data(task: str, seed: int, quick: bool) -> TaskData:
    """The task's data for ``seed`` (cached: every method and device level of a unit shares it)."""
    data_seed = DATA_SEED_OFFSET + seed
    if task == "digits":
        sizes = QUICK_DIGITS if quick else DIGITS
        sequences, labels = tasks.digits_sequences()
        x_train, x_test, l_train, l_test = tasks.digits_train_test_split(sequences, labels, seed=data_seed)
        x_train, l_train = x_train[: sizes["n_train"]], l_train[: sizes["n_train"]]
        x_test, l_test = x_test[: sizes["n_test"]], l_test[: sizes["n_test"]]
        return TaskData(x_train, one_hot(l_train, 10), x_test, one_hot(l_test, 10), 0, 0, True, l_test)
    series = QUICK_SERIES if quick else SERIES
    n_train, n_test, chunk = series["n_train"], series["n_test"], series["chunk"]
    if task == "narma10":
        u, y = tasks.narma10(n_train + n_test, seed=data_seed)
    elif task == "channel":
        u, y = tasks.channel_equalisation(n_train + n_test, snr_db=CHANNEL_SNR_DB, seed=data_seed)
        u = CHANNEL_INPUT_SCALE * u
    else:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return TaskData(u[:n_train].reshape(-1, chunk, 1), y[:n_train].reshape(-1, chunk, 1), u[n_train:], y[n_train:],
                    series["washout"], series["test_washout"])


def test_errors(task: str, device, params: dict[str, Any], data: TaskData) -> dict[str, float]:
    """``test_error`` (the task's own measure) and ``test_nmse`` of ``params`` measured on ``device``."""
    predictions = device_predictions(device, params, data.u_test, washout=data.test_washout, pool=data.pool)
    if data.pool:
        nmse = metrics.nmse(data.y_test, predictions)
        error = 1 - metrics.accuracy(data.labels_test, predictions.argmax(axis=-1))
        return {"test_error": float(error), "test_nmse": float(nmse)}
    w = data.test_washout
    nmse = metrics.nmse(data.y_test[w:], predictions[w:])
    error = metrics.symbol_error_rate(data.y_test[w:], predictions[w:]) if task == "channel" else nmse
    return {"test_error": float(error), "test_nmse": float(nmse)}


def make_device(unit: dict[str, Any]):
    n_inputs = task_data(unit["task"], unit["seed"], unit["quick"]).u_train.shape[-1]
    return delay_device(N_UNITS, n_inputs, seed=unit["seed"], mismatch=unit["mismatch"], snr_db=unit["snr_db"])


def training_options(task: str, method: str, quick: bool) -> dict[str, Any]:
    if method == "spsa":
        return dict(QUICK_SPSA if quick else SPSA)
    return dict(QUICK_GRADIENT if quick else GRADIENT, batch_size=BATCH_SIZE[task])


@functools.cache
def digital_training(task: str, seed: int, quick: bool) -> tuple[dict[str, Any], tuple[float, ...]]:
    """BPTT on the nominal twin (the device is not queried, so its mismatch and noise do not matter):
    the trained parameters and the per-epoch training loss; once per (task, seed) and process."""
    device = make_device(dict(task=task, seed=seed, quick=quick, mismatch=0.0, snr_db=None))
    data = task_data(task, seed, quick)
    result = train_on_device(device, data.u_train, data.y_train, mode="digital", names=NAMES,
                             washout=data.washout, alpha=ALPHA, seed=seed, pool=data.pool,
                             **training_options(task, "digital", quick))
    assert result.n_calls == 0, "digital training must not query the device"
    return result.params, tuple(result.history["train"])


def method_params(method: str, unit: dict[str, Any], device, data: TaskData) -> tuple[dict, tuple[float, ...]]:
    """The deployed parameters of ``method`` on ``device`` and its per-epoch training losses."""
    ridge = functools.partial(device_ridge_readout, device, inputs=data.u_train, targets=data.y_train,
                              washout=data.washout, alpha=ALPHA, pool=data.pool)
    if method == "reservoir":
        start, _ = split_trainable(device.nominal_twin(), list(NAMES))
        return {"input_side": start, "readout": ridge(start)}, ()
    if method in ("digital", "digital+readout"):
        params, losses = digital_training(unit["task"], unit["seed"], unit["quick"])
        if method == "digital+readout":
            params = dict(params, readout=ridge(params["input_side"]))
        return params, losses
    result = train_on_device(device, data.u_train, data.y_train, mode=method, names=NAMES,
                             washout=data.washout, alpha=ALPHA, seed=unit["seed"], pool=data.pool,
                             **training_options(unit["task"], method, unit["quick"]))
    return result.params, tuple(result.history["train"])


def run_unit(unit: dict[str, Any]) -> list[dict[str, Any]]:
    """Every method on fresh devices of one (task, mismatch, snr, seed): the unit's rows (or, for a unit of
    ``kind="query_cost"``, ``query_cost_rows``)."""
    if unit.get("kind") == "query_cost":
        return query_cost_rows(unit)
    # Small matrices (N = 30): BLAS threads only add overhead, and they fight over the 2 cores when a Dask
    # cluster runs one unit per core.
    with threadpool_limits(1, "blas"):
        data = task_data(unit["task"], unit["seed"], unit["quick"])
        rows = []
        for method in METHODS:
            device = make_device(unit)
            params, losses = method_params(method, unit, device, data)
            queries, samples = device.n_calls, device.n_samples  # spent by training (evaluation excluded)
            errors = test_errors(unit["task"], device, params, data)
            base = dict(task=unit["task"], method=method, mismatch=unit["mismatch"],
                        snr_db="none" if unit["snr_db"] is None else unit["snr_db"], seed=unit["seed"],
                        device_queries=queries)
            rows += [dict(base, metric=name, value=value) for name, value in errors.items()]
            rows.append(dict(base, metric="device_samples", value=samples))
            rows += [dict(base, metric="train_loss", value=float(loss), epoch=epoch,
                          device_queries=round(queries * (epoch + 1) / len(losses)))
                     for epoch, loss in enumerate(losses)]
    return rows


def query_cost_rows(unit: dict[str, Any]) -> list[dict[str, Any]]:
    """hil vs SPSA on one objective: J(θ), the in-sample ridge NMSE of the training set measured on the device
    (what SPSA descends), after every epoch (hil) or step (SPSA), against the device queries spent so far.
    J is scored on a second, identical device (same seed; this configuration has no noise), so scoring costs
    the trained devices nothing."""
    with threadpool_limits(1, "blas"):
        data = task_data(unit["task"], unit["seed"], unit["quick"])
        objective = ridge_objective(make_device(unit), washout=data.washout, alpha=ALPHA, pool=data.pool)
        rows = []
        for method in ("hil", "spsa"):
            device, scores = make_device(unit), []

            def score(epoch, params, device=device, scores=scores):
                scores.append((epoch, device.n_calls, objective(params["input_side"], data.u_train, data.y_train)))

            options = training_options(unit["task"], method, unit["quick"])
            if method == "spsa":
                options["n_epochs"] = QUICK_SPSA_BUDGET_STEPS if unit["quick"] else SPSA_BUDGET_STEPS
            train_on_device(device, data.u_train, data.y_train, mode=method, names=NAMES, washout=data.washout,
                            alpha=ALPHA, seed=unit["seed"], pool=data.pool, callback=score, **options)
            trained = split_trainable(device.nominal_twin(), list(NAMES))[0]
            n_parameters = sum(int(np.size(value)) for value in trained.values())
            rows += [dict(task=unit["task"], method=method, mismatch=unit["mismatch"], snr_db="none",
                          seed=unit["seed"], metric="train_objective", value=float(value), device_queries=queries,
                          epoch=epoch, n_parameters=n_parameters) for epoch, queries, value in scores]
    return rows


def config(quick: bool, seed_list: list[int]) -> dict[str, Any]:
    return {"experiment": "hil_vs_digital", "quick": quick, "seeds": seed_list,
            "tasks": QUICK_TASKS if quick else TASKS, "methods": METHODS,
            "mismatches": QUICK_MISMATCHES if quick else MISMATCHES, "snrs_db": QUICK_SNRS if quick else SNRS,
            "n_units": N_UNITS, "names": NAMES, "alpha": ALPHA, "data_seed_offset": DATA_SEED_OFFSET,
            "series": QUICK_SERIES if quick else SERIES, "digits": QUICK_DIGITS if quick else DIGITS,
            "channel_snr_db": CHANNEL_SNR_DB, "channel_input_scale": CHANNEL_INPUT_SCALE,
            "gradient": QUICK_GRADIENT if quick else GRADIENT, "batch_size": BATCH_SIZE,
            "spsa": QUICK_SPSA if quick else SPSA, "query_cost": QUERY_COST,
            "spsa_budget_steps": QUICK_SPSA_BUDGET_STEPS if quick else SPSA_BUDGET_STEPS}


def run_experiment(out: Path | str = "results", quick: bool = False, seeds: int | None = None,
                   scheduler: str | None = None, fresh: bool = False) -> Path:
    seed_list = list(range(seeds or (QUICK_SEEDS if quick else DEFAULT_SEEDS)))
    settings = config(quick, seed_list)
    directory = open_run(out, "hil_vs_digital", settings, fresh=fresh)
    units = [dict(task=task, mismatch=m, snr_db=s, seed=seed, quick=quick) for task in settings["tasks"]
             for s in settings["snrs_db"] for m in settings["mismatches"] for seed in seed_list]
    units += [dict(QUERY_COST, kind="query_cost", seed=seed, quick=quick) for seed in seed_list]
    results = run_sweep(run_unit, units, directory, scheduler=scheduler, desc="hil vs digital")
    rows = [row for unit_rows in results for row in unit_rows]
    write_rows(directory / "results.csv", rows, COLUMNS)
    print(summary(rows))
    print(targets_report(rows))
    plot(directory)
    return directory


# ------------------------------------------------------------------------------------------- reporting


def _matches(row: dict, match: dict[str, Any]) -> bool:
    return all(_same(row[k], v) for k, v in match.items())


def _values(rows: list[dict], **match: Any) -> list[float]:
    return [float(r["value"]) for r in rows if _matches(r, match)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) < 1e-12
    return str(a) == str(b)


def _levels(rows: list[dict], key: str) -> list:
    seen = []
    for r in rows:
        if r[key] not in seen:
            seen.append(r[key])
    return seen


def _errors(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["metric"] == "test_error"]


def summary(rows: list[dict]) -> str:
    """Mean ± std of the test error over seeds, and the mean device queries, per task × snr × mismatch × method."""
    errors = _errors(rows)
    methods = [m for m in METHODS if any(r["method"] == m for r in errors)]
    lines = [f"{'task':8s} {'noise':8s} {'mismatch':>8s} " + " ".join(f"{m:>20s}" for m in methods),
             f"{'':26s} " + " ".join(f"{'error (queries)':>20s}" for _ in methods)]
    for task in _levels(errors, "task"):
        for snr in _levels(errors, "snr_db"):
            for mismatch in sorted(_levels(errors, "mismatch"), key=float):
                cells = []
                for method in methods:
                    match = dict(task=task, snr_db=snr, mismatch=mismatch, method=method)
                    values = _values(errors, **match)
                    queries = [r["device_queries"] for r in errors if _matches(r, match)]
                    cells.append(f"{np.mean(values):8.3g} ±{np.std(values):<6.2g}({np.mean(queries):3.0f})"
                                 if values else f"{'—':>20s}")
                lines.append(f"{task:8s} {snr_label(snr):8s} {float(mismatch):8.2f} " + " ".join(cells))
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[dict]:
    """The experiment's targets evaluated on the rows: one dict per check (target, where, values, met)."""
    errors = _errors(rows)
    checks: list[dict] = []
    if not errors:
        return _query_cost_checks(rows)
    strongest = max(float(m) for m in _levels(errors, "mismatch"))
    for task in _levels(errors, "task"):
        for snr in _levels(errors, "snr_db"):
            where = dict(task=task, snr_db=snr, mismatch=strongest)
            hil, digital = (_values(errors, method=m, **where) for m in ("hil", "digital"))
            if hil and digital:
                ratio = np.mean(hil) / np.mean(digital)
                checks.append(dict(target="(1) hil <= 0.5 x digital at the strongest mismatch",
                                   where=f"{task}, {snr_label(snr)}, mismatch {strongest:g}",
                                   values=f"hil {np.mean(hil):.4g}, digital {np.mean(digital):.4g}, "
                                          f"ratio {ratio:.3g}", met=bool(ratio <= 0.5)))
        where = dict(task=task, snr_db="none", mismatch=0.0)
        compared = ("digital", "hil", "physical_backprop")
        means = {m: np.mean(v) for m in compared if (v := _values(errors, method=m, **where))}
        if len(means) >= 2:
            low, high = min(means.values()), max(means.values())
            spread = 0.0 if high == low else (high / low - 1 if low > 0 else math.inf)
            checks.append(dict(target=f"(2) {', '.join(means)} within 20% at zero mismatch, no noise",
                               where=f"{task}, no noise, mismatch 0",
                               values=", ".join(f"{m} {v:.4g}" for m, v in means.items())
                                      + f"; max/min - 1 = {spread:.1%}", met=bool(spread <= 0.2)))
        for snr in _levels(errors, "snr_db"):
            levels = sorted(_levels([r for r in errors if _same(r["snr_db"], snr)], "mismatch"), key=float)
            compared = {m: [_values(errors, method=method, task=task, snr_db=snr, mismatch=m)
                            for method in ("physical_backprop", "reservoir")] for m in levels}
            pairs = [(m, np.mean(pb), np.mean(res)) for m, (pb, res) in compared.items() if pb and res]
            if pairs:
                wins = sum(pb < res for _, pb, res in pairs)
                checks.append(dict(target="(3) physical_backprop beats the random-mask Reservoir baseline",
                                   where=f"{task}, {snr_label(snr)}, every mismatch level",
                                   values="; ".join(f"{m:g}: {pb:.4g} vs {res:.4g}" for m, pb, res in pairs)
                                          + f" ({wins}/{len(pairs)} levels)", met=wins == len(pairs)))
    checks += _query_cost_checks(rows)
    return checks


def _query_cost_setting(rows: list[dict]) -> str:
    row = next(r for r in rows if r["metric"] == "train_objective")
    return f"{row['task']}, {row['n_parameters']} parameters, mismatch {float(row['mismatch']):g}, no noise"


def _curve(rows: list[dict], **match: Any) -> list[dict]:
    """The rows matching ``match``, in epoch order: one training curve."""
    return sorted((r for r in rows if _matches(r, match)), key=lambda r: int(r["epoch"]))


def _plot_curves(ax, rows: list[dict], methods: tuple[str, ...], alpha: float, **match: Any) -> None:
    """One line per method and seed: ``value`` against the device queries spent, labelled once per method."""
    seeds = _levels(rows, "seed")
    for method in methods:
        for seed in seeds:
            curve = _curve(rows, method=method, seed=seed, **match)
            ax.plot([r["device_queries"] for r in curve], [r["value"] for r in curve], lw=1, alpha=alpha,
                    color=COLORS[method], label=method if seed == seeds[0] else None)


def query_cost_ratios(rows: list[dict]) -> list[tuple[Any, float, bool, float, float]]:
    """Per seed: (seed, SPSA queries / hil queries to reach hil's lowest J, whether SPSA reached it at all —
    if not, the ratio is a lower bound: SPSA's whole budget —, hil's queries, hil's lowest J)."""
    objective = [r for r in rows if r["metric"] == "train_objective"]
    ratios = []
    for seed in _levels(objective, "seed"):
        curve = {m: _curve(objective, method=m, seed=seed) for m in ("hil", "spsa")}
        if not curve["hil"] or not curve["spsa"]:
            continue
        goal = min(float(r["value"]) for r in curve["hil"])
        hil_queries = next(float(r["device_queries"]) for r in curve["hil"] if float(r["value"]) <= goal)
        reached = [float(r["device_queries"]) for r in curve["spsa"] if float(r["value"]) <= goal]
        spsa_queries = reached[0] if reached else float(curve["spsa"][-1]["device_queries"])
        ratios.append((seed, spsa_queries / hil_queries, bool(reached), hil_queries, goal))
    return ratios


def _query_cost_checks(rows: list[dict]) -> list[dict]:
    ratios = query_cost_ratios(rows)
    if not ratios:
        return []
    values = "; ".join(f"seed {seed}: {'' if reached else '>= '}{ratio:.3g}x (hil J = {goal:.3g} after "
                       f"{queries:.0f} queries{'' if reached else ', never reached by SPSA'})"
                       for seed, ratio, reached, queries, goal in ratios)
    return [dict(target="(4) spsa needs >= 10x hil's device queries to reach hil's training objective",
                 where=_query_cost_setting(rows),
                 values=values, met=all(ratio >= 10 for _, ratio, *_ in ratios))]


def targets_report(rows: list[dict]) -> str:
    lines = ["Targets:"]
    for check in targets(rows):
        lines.append(f"  [{'met' if check['met'] else 'NOT met'}] {check['target']} — {check['where']}: "
                     f"{check['values']}")
    return "\n".join(lines)


def plot(directory: Path | str) -> list[Path]:
    """Redraw every figure from ``results.csv``: error vs mismatch (tasks × noise levels) and training loss
    vs device queries."""
    directory = Path(directory)
    rows = read_rows(directory / "results.csv")
    figures = [_plot_error_vs_mismatch(directory, rows), _plot_loss_vs_queries(directory, rows)]
    if any(r["metric"] == "train_objective" for r in rows):
        figures.append(_plot_objective_vs_queries(directory, rows))
    return figures


def _plot_objective_vs_queries(directory: Path, rows: list[dict]) -> Path:
    """J(θ) (in-sample ridge NMSE of the training set on the device) against device queries, hil vs SPSA."""
    plt = pyplot()
    objective = [r for r in rows if r["metric"] == "train_objective"]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    _plot_curves(ax, objective, ("hil", "spsa"), alpha=0.8)
    ax.set(xscale="log", yscale="log", xlabel="device queries spent",
           ylabel="training objective J on the device\n(in-sample ridge NMSE)",
           title=f"hil vs SPSA: {_query_cost_setting(rows)}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, directory, "objective_vs_queries")


def _plot_error_vs_mismatch(directory: Path, rows: list[dict]) -> Path:
    plt = pyplot()
    errors = _errors(rows)
    task_list, snrs = _levels(errors, "task"), _levels(errors, "snr_db")
    methods = [m for m in METHODS if any(r["method"] == m for r in errors)]
    fig, axes = plt.subplots(len(task_list), len(snrs), figsize=(4.2 * len(snrs), 3.2 * len(task_list)),
                             squeeze=False, sharex=True)
    for row_axes, task in zip(axes, task_list, strict=True):
        task_rows = [r for r in errors if r["task"] == task]
        # an error of exactly 0 (no symbol or digit wrong) is drawn at half the smallest non-zero value
        floor = 0.5 * min([float(r["value"]) for r in task_rows if float(r["value"]) > 0] or [1.0])
        for ax, snr in zip(row_axes, snrs, strict=True):
            for method in methods:
                mismatches = sorted({float(r["mismatch"]) for r in task_rows if r["method"] == method})
                values = [np.maximum(_values(task_rows, snr_db=snr, method=method, mismatch=m), floor)
                          for m in mismatches]
                keep = [i for i, v in enumerate(values) if len(v)]
                means = np.array([np.mean(values[i]) for i in keep])
                # error bars: the range over seeds (mean ± std would cross zero on the log axis)
                spread = [means - [min(values[i]) for i in keep], [max(values[i]) for i in keep] - means]
                style = dict(ls="--", marker=None) if method == "reservoir" else dict(marker="o", ms=4)
                ax.errorbar([mismatches[i] for i in keep], means, yerr=spread, capsize=3, lw=1.3,
                            color=COLORS.get(method), label=method, **style)
            ax.set(yscale="log", title=f"{task}, {snr_label(snr)}")
            ax.set_ylabel(f"{ERROR_NAMES.get(task, 'error')} on the device")
        for ax in axes[-1]:
            ax.set_xlabel("model mismatch (relative)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(methods), fontsize=8, frameon=False)
    n_seeds = len(_levels(errors, "seed"))
    fig.suptitle(f"Sine delay device, N = {N_UNITS}: test error vs mismatch (mean, min–max over {n_seeds} "
                 f"seed{'s' if n_seeds > 1 else ''}; an error of 0 is drawn at half the smallest non-zero one)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.035, 1, 1))
    return save_figure(fig, directory, "error_vs_mismatch")


def _plot_loss_vs_queries(directory: Path, rows: list[dict]) -> Path:
    """Training loss on the device vs cumulative device queries at the strongest mismatch, no noise."""
    plt = pyplot()
    losses = [r for r in rows if r["metric"] == "train_loss" and r["method"] in TRAINED_ON_DEVICE]
    task_list = _levels(losses, "task")
    fig, axes = plt.subplots(1, max(len(task_list), 1), figsize=(4.2 * max(len(task_list), 1), 3.4),
                             squeeze=False)
    for ax, task in zip(axes[0], task_list, strict=True):
        task_rows = [r for r in losses if r["task"] == task]
        strongest = max(float(r["mismatch"]) for r in task_rows)
        snr = _levels(task_rows, "snr_db")[0]
        _plot_curves(ax, task_rows, TRAINED_ON_DEVICE, alpha=0.7, snr_db=snr, mismatch=strongest)
        ax.set(xscale="log", yscale="log", xlabel="device queries spent",
               ylabel="training loss on the device\n(hil, physical_backprop: MSE; spsa: ridge NMSE)",
               title=f"{task}: mismatch {strongest:g}, {snr_label(snr)}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, directory, "loss_vs_queries")
