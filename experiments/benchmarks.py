"""The standard reservoir-computing benchmarks, for the echo state network and the delay reservoir.

NARMA10, linear memory capacity, Mackey–Glass NRMSE84, Santa Fe one-step prediction and channel
equalisation (definitions: ``experiments.tasks`` / ``experiments.metrics``, REFERENCE §4).  For every task the
hyperparameters are chosen on a validation split carved from the *training* data of seed 0 (never the test
set), then the chosen configuration is trained and tested on every seed (fresh reservoir, fresh data).
Results: ``DIR/benchmarks/results.csv`` (one row per task × model × size × seed × metric), ``config.json``,
``selected.json`` (the hyperparameters chosen), figures, and a table against the published numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from experiments import metrics, tasks
from experiments.results import (
    atomic_write_text,
    prepare_directory,
    pyplot,
    read_rows,
    save_figure,
    write_config,
    write_rows,
)
from experiments.search import grid_search, ridge_validation_score
from readout import Ridge, with_inputs
from reservoir import delay_reservoir, diagnostics, esn, generate, run, simple_cycle_reservoir

DESCRIPTION = "NARMA10, memory capacity, Mackey-Glass, Santa Fe, channel equalisation vs published numbers"
COLUMNS = ("task", "model", "n_units", "seed", "metric", "value")
ALPHAS = tuple(10.0 ** np.arange(-10, 0))

# (task, model, n_units, metric, kind, target, basis): kind "max" means value must be <= target.
TARGETS = [
    ("narma10", "esn", 50, "nmse", "max", 0.13, "ReservoirPy 0.4.2: 0.150"),
    ("narma10", "esn", 200, "nmse", "max", 0.03, "ReservoirPy 0.4.2: 0.032"),
    ("narma10", "esn", 400, "nmse", "max", 0.018, "ReservoirPy 0.4.2: 0.018"),
    ("narma10", "delay_sine", 50, "nmse", "max", 0.16, "linear shift register: 0.16"),
    ("memory_capacity", "cycle_linear", 50, "memory_capacity", "min", 47.5, "theory: MC = N"),
    ("memory_capacity", "esn_linear", 50, "memory_capacity", "min", 47.5, "theory: MC = N"),
    ("memory_capacity", "esn_linear_sparse", 50, "memory_capacity", "min", 47.5, "theory: MC = N"),
    ("mackey_glass", "esn", 400, "nrmse84", "max", 3e-4, "Jaeger GMD148: 2.8e-4"),
    ("santa_fe", "esn", 200, "nmse", "max", 0.0035, "ReservoirPy 0.4.2: 0.0035"),
    ("channel_equalisation@20dB", "esn", 50, "ser", "max", 3e-3, "measured here (REFERENCE §5)"),
    ("channel_equalisation@28dB", "esn", 50, "ser", "max", 1e-4, "measured here (REFERENCE §5)"),
]


def build(model: str, n_units: int, seed: int, **hyper: Any):
    """A reservoir of the named family, in float64 (the benchmarks' precision targets need it)."""
    if model == "esn":
        return esn(n_units, seed=seed, dtype="float64", **hyper)
    if model == "delay_sine":
        return delay_reservoir(n_units, model="sine", seed=seed, dtype="float64", **hyper)
    if model == "esn_linear":
        return esn(n_units, seed=seed, activation="identity", topology="orthogonal", dtype="float64", **hyper)
    if model == "esn_linear_sparse":
        return esn(n_units, seed=seed, activation="identity", dtype="float64", **hyper)
    if model == "cycle_linear":
        return simple_cycle_reservoir(n_units, seed=seed, activation="identity", dtype="float64", **hyper)
    raise ValueError(f"model must be one of esn, delay_sine, esn_linear(_sparse), cycle_linear, got {model!r}")


# Search grids (full run / --quick).  Ranges follow the usual recommendations (Lukoševičius 2012).
GRIDS = {
    "esn": {"spectral_radius": [0.7, 0.85, 0.95], "input_scaling": [0.03, 0.1, 0.3],
            "bias_scaling": [0.0, 0.3], "leak_rate": [1.0, 0.5]},
    "delay_sine": {"feedback_gain": [0.6, 0.8, 0.9, 1.0], "input_gain": [0.2, 0.5, 1.0], "phase": [0.0, 0.3]},
}
QUICK_GRIDS = {
    "esn": {"spectral_radius": [0.85], "input_scaling": [0.03, 0.1], "bias_scaling": [0.3], "leak_rate": [1.0]},
    "delay_sine": {"feedback_gain": [0.8, 0.9], "input_gain": [0.5], "phase": [0.0]},
}

MACKEY_GLASS_GRID = {"spectral_radius": [0.95, 1.0], "leak_rate": [0.2, 0.3, 0.5], "bias_scaling": [0.0, 0.5],
                     "alpha": [1e-12, 1e-10]}
MACKEY_GLASS_QUICK_GRID = {"spectral_radius": [0.95], "leak_rate": [0.5], "bias_scaling": [0.5], "alpha": [1e-10]}


def fit_predict(params, u_train, y_train, u_test, washout: int, alpha: float) -> np.ndarray:
    """Ridge readout on [x(t), u(t)] fitted after washout; test states continue from the training run."""
    states = run(params, np.concatenate([u_train, u_test]))
    features = with_inputs(states, np.concatenate([u_train, u_test]))
    n_train = len(u_train)
    readout = Ridge(alpha).fit(features[:n_train], y_train, washout=washout)
    return readout.predict(features[n_train:])


def regression_task(task: str, model: str, n_units: int, data: Callable[[int], tuple], seeds: list[int],
                    grid: dict, washout: int, n_validation: int, score: Callable, selected: dict) -> list[dict]:
    """Search on seed 0's training data, then train/test every seed; rows of ``score(y_test, prediction)``."""
    u_train, y_train, _, _ = data(0)
    search = grid_search(
        lambda **hyper: ridge_validation_score(build(model, n_units, 0, **hyper), u_train, y_train,
                                               washout=washout, n_validation=n_validation, alphas=ALPHAS),
        grid, progress=f"{task} {model} N={n_units}: search")
    selected[f"{task}/{model}/{n_units}"] = {**search.config, "alpha": search.alpha,
                                             "validation_nmse": search.score}
    rows = []
    for seed in seeds:
        u_train, y_train, u_test, y_test = data(seed)
        prediction = fit_predict(build(model, n_units, seed, **search.config), u_train, y_train, u_test,
                                 washout, search.alpha)
        for metric, value in score(y_test, prediction).items():
            rows.append(dict(task=task, model=model, n_units=n_units, seed=seed, metric=metric, value=value))
    return rows


def narma10_data(seed: int):
    u, y = tasks.narma10(6200, seed=seed)
    return u[:4200], y[:4200], u[4200:], y[4200:]


def nmse_score(y_test, prediction) -> dict[str, float]:
    return {"nmse": metrics.nmse(y_test, prediction)}


def narma10(quick: bool, seeds: list[int], selected: dict) -> list[dict]:
    grids = QUICK_GRIDS if quick else GRIDS
    sizes = [("esn", n) for n in ([50, 200] if quick else [50, 200, 400])] + [("delay_sine", 50)]
    rows = []
    for model, n_units in sizes:
        rows += regression_task("narma10", model, n_units, narma10_data, seeds, grids[model], washout=200,
                                n_validation=1000, score=nmse_score, selected=selected)
    return rows


def santa_fe(quick: bool, seeds: list[int], selected: dict, directory: Path) -> list[dict]:
    split = tasks.santa_fe_one_step()
    data = lambda seed: (split.train_inputs, split.train_targets, split.test_inputs, split.test_targets)
    grid = dict(QUICK_GRIDS["esn"] if quick else GRIDS["esn"], input_scaling=[0.1, 0.3, 1.0])
    rows = regression_task("santa_fe", "esn", 200, data, seeds, grid, washout=split.washout,
                           n_validation=1000, score=nmse_score, selected=selected)
    # One prediction trace for the figure (seed 0), in the laser's own units.
    config = selected["santa_fe/esn/200"]
    hyper = {k: v for k, v in config.items() if k not in ("alpha", "validation_nmse")}
    prediction = fit_predict(build("esn", 200, seeds[0], **hyper), split.train_inputs, split.train_targets,
                             split.test_inputs, split.washout, config["alpha"])
    trace = [dict(step=t, target=split.test_targets[t, 0] * split.std + split.mean,
                  prediction=prediction[t, 0] * split.std + split.mean) for t in range(len(prediction))]
    write_rows(directory / "santa_fe_trace.csv", trace)
    return rows


def channel_equalisation(quick: bool, seeds: list[int], selected: dict) -> list[dict]:
    n_train, n_test = 10_000, (20_000 if quick else 200_000)
    snrs = [12, 20, 28] if quick else [12, 16, 20, 24, 28, 32]
    rows = []
    for snr in tqdm(snrs, desc="channel equalisation: SNR", leave=False):
        def data(seed, snr=snr):
            u, d = tasks.channel_equalisation(n_train + n_test, snr_db=snr, seed=seed)
            return u[:n_train], d[:n_train], u[n_train:], d[n_train:]

        grid = QUICK_GRIDS["esn"] if quick else dict(GRIDS["esn"], bias_scaling=[0.3, 1.0])
        found = regression_task(f"channel_equalisation@{snr}dB", "esn", 50, data, seeds, grid, washout=100,
                                n_validation=2000,
                                score=lambda d, p: {"ser": metrics.symbol_error_rate(d, p)}, selected=selected)
        rows += [dict(row, snr_db=snr) for row in found]
    return rows


def memory_capacity(quick: bool, seeds: list[int]) -> list[dict]:
    """Linear reservoirs (identity activation), N = 50, one readout per delay k = 1..2N, held-out r²."""
    n_units = 50
    models = {"cycle_linear": dict(cycle_weight=0.95, input_weight=1.0),
              "esn_linear": dict(spectral_radius=0.95),
              "esn_linear_sparse": dict(spectral_radius=0.95, density=1.0)}
    rows = []
    for model, hyper in models.items():
        for seed in seeds:
            total, per_delay = diagnostics.memory_capacity(build(model, n_units, seed, **hyper), seed=seed)
            base = dict(task="memory_capacity", model=model, n_units=n_units, seed=seed)
            rows.append(dict(base, metric="memory_capacity", value=total))
            rows += [dict(base, metric="r2", value=r2, delay=k + 1) for k, r2 in enumerate(per_delay)]
    return rows


def mackey_glass(quick: bool, seeds: list[int], selected: dict) -> list[dict]:
    """Jaeger's NRMSE84 protocol (GMD Report 148): the network sees s = tanh(x − 1), is trained by
    teacher forcing for one-step prediction on 3000 steps (first 1000 discarded), then 20 trials of 1000
    teacher-forced steps followed by 84 free-running steps; error at step 84 in the original coordinates."""
    n_units, n_trials, n_free, warm = 400, (5 if quick else 20), 84, 1000
    grid = MACKEY_GLASS_QUICK_GRID if quick else MACKEY_GLASS_GRID

    def nrmse84(seed: int, validation: bool, alpha: float, **hyper) -> float:
        x = tasks.mackey_glass(3000 + 2 * n_trials * (warm + n_free), seed=seed)
        s = np.tanh(x - 1)
        params = build("esn", n_units, seed, input_scaling=1.0, **hyper)
        states = run(params, s[:3000])
        readout = Ridge(alpha).fit(with_inputs(states[:-1], s[:2999]), s[1:3000], washout=warm)
        # Validation trials come right after the training data; test trials after those.
        first = 3000 + (0 if validation else n_trials * (warm + n_free))
        starts = first + np.arange(n_trials) * (warm + n_free)
        driven = np.stack([s[t:t + warm] for t in starts])
        final_states = run(params, driven)[:, -1]
        outputs = generate(params, readout.coef_, readout.intercept_, final_states, driven[:, -1], n_free)
        truth = np.stack([x[t + warm:t + warm + n_free] for t in starts])
        predicted = np.arctanh(np.clip(np.asarray(outputs), -1 + 1e-12, 1 - 1e-12)) + 1
        return metrics.nrmse84(truth, predicted, signal_variance=float(np.var(x)))

    search = grid_search(lambda alpha, **hyper: (nrmse84(0, True, alpha, **hyper), alpha), grid,
                         progress="mackey_glass esn N=400: search")
    selected["mackey_glass/esn/400"] = {**search.config, "validation_nrmse84": search.score}
    return [dict(task="mackey_glass", model="esn", n_units=n_units, seed=seed, metric="nrmse84",
                 value=nrmse84(seed, False, **search.config)) for seed in seeds]


def run_experiment(out: Path | str = "results", quick: bool = False, seeds: int | None = None) -> Path:
    jax.config.update("jax_enable_x64", True)
    n_seeds = seeds or (2 if quick else 3)
    seed_list = list(range(n_seeds))
    directory = prepare_directory(out, "benchmarks")
    write_config(directory, {"experiment": "benchmarks", "quick": quick, "seeds": seed_list,
                             "grids": QUICK_GRIDS if quick else GRIDS, "alphas": ALPHAS,
                             "mackey_glass_grid": MACKEY_GLASS_QUICK_GRID if quick else MACKEY_GLASS_GRID})
    selected: dict[str, Any] = {}
    rows: list[dict] = []
    parts = [("NARMA10", lambda: narma10(quick, seed_list, selected)),
             ("memory capacity", lambda: memory_capacity(quick, seed_list)),
             ("Santa Fe", lambda: santa_fe(quick, seed_list, selected, directory)),
             ("channel equalisation", lambda: channel_equalisation(quick, seed_list, selected)),
             ("Mackey-Glass", lambda: mackey_glass(quick, seed_list, selected))]
    for name, part in tqdm(parts, desc="benchmarks"):
        tqdm.write(f"running {name}")
        rows += part()
        # Written after every part, so a crash keeps what finished.
        write_rows(directory / "results.csv", rows, COLUMNS)
        atomic_write_text(directory / "selected.json", json.dumps(selected, indent=2) + "\n")
    print(summary_table(rows))
    plot(directory)
    return directory




def summary_table(rows: list[dict]) -> str:
    """Ours (mean ± std over seeds) against the targets of the foundation issue."""
    lines = [f"{'task':28s} {'model':18s} {'N':>4s} {'metric':16s} {'ours (mean ± std)':>22s} "
             f"{'target':>10s}  met  basis"]
    for task, model, n_units, metric, kind, target, basis in TARGETS:
        values = [r["value"] for r in rows if (r["task"], r["model"], r["n_units"], r["metric"])
                  == (task, model, n_units, metric)]
        if not values:
            continue
        mean, std = float(np.mean(values)), float(np.std(values))
        met = mean <= target if kind == "max" else mean >= target
        sign = "≤" if kind == "max" else "≥"
        lines.append(f"{task:28s} {model:18s} {n_units:4d} {metric:16s} {mean:11.3g} ± {std:<8.2g} "
                     f"{sign}{target:<9.3g}  {'yes' if met else 'NO ':3s}  {basis}")
    return "\n".join(lines)


def plot(directory: Path | str) -> list[Path]:
    """Redraw every figure from results.csv (and santa_fe_trace.csv) without recomputing."""
    plt = pyplot()
    directory = Path(directory)
    rows = read_rows(directory / "results.csv")
    figures = []

    def save(fig, name):
        figures.append(save_figure(fig, directory, name))

    def mean_std(selection):
        keys = sorted({k for k, _ in selection})
        values = [[v for k2, v in selection if k2 == k] for k in keys]
        return np.array(keys), np.array([np.mean(v) for v in values]), np.array([np.std(v) for v in values])

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for model, label in (("esn", "ESN (ours)"), ("delay_sine", "sine delay reservoir (ours)")):
        pts = [(r["n_units"], r["value"]) for r in rows if r["task"] == "narma10" and r["model"] == model]
        if pts:
            n, m, s = mean_std(pts)
            ax.errorbar(n, m, s, marker="o", capsize=3, label=label)
    ax.plot([50, 200, 400], [0.150, 0.032, 0.018], "k--", marker="x", label="ReservoirPy 0.4.2 (REFERENCE)")
    ax.axhline(0.16, color="gray", lw=0.8, ls=":", label="linear shift register")
    ax.set(xlabel="reservoir size N", ylabel="test NMSE", yscale="log", title="NARMA10")
    ax.legend(fontsize=8)
    save(fig, "narma10_vs_n")

    channel = [(r["snr_db"], r["value"]) for r in rows
               if str(r["task"]).startswith("channel") and r["metric"] == "ser"]
    if channel:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        snr, m, s = mean_std(channel)
        floor = 1.0 / 200_000
        ax.errorbar(snr, np.maximum(m, floor), s, marker="o", capsize=3, label="ESN N=50 (ours)")
        ax.plot([20, 28], [3e-3, 1e-4], "rv", label="targets (upper bounds)")
        ax.set(xlabel="SNR (dB)", ylabel="symbol error rate", yscale="log", title="Channel equalisation")
        ax.legend(fontsize=8)
        save(fig, "ser_vs_snr")

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for model, label in (("cycle_linear", "linear cycle reservoir"), ("esn_linear", "linear ESN, orthogonal W"),
                         ("esn_linear_sparse", "linear ESN, random W")):
        pts = [(r["delay"], r["value"]) for r in rows if r["task"] == "memory_capacity" and r["model"] == model
               and r["metric"] == "r2"]
        if pts:
            k, m, _ = mean_std(pts)
            total = np.mean([r["value"] for r in rows if r["model"] == model and r["metric"] == "memory_capacity"])
            ax.plot(k, m, label=f"{label}: MC = {total:.1f}")
    ax.axvline(50, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="delay k", ylabel="r²(u(n−k), y_k(n))", title="Memory capacity, N = 50")
    ax.legend(fontsize=8)
    save(fig, "memory_capacity")

    trace_path = directory / "santa_fe_trace.csv"
    if trace_path.exists():
        trace = read_rows(trace_path)[:300]
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot([t["step"] for t in trace], [t["target"] for t in trace], "k", lw=1, label="laser")
        ax.plot([t["step"] for t in trace], [t["prediction"] for t in trace], "r--", lw=1,
                label="ESN one-step prediction")
        ax.set(xlabel="test step", ylabel="intensity", title="Santa Fe laser, N = 200")
        ax.legend(fontsize=8)
        save(fig, "santa_fe_trace")
    return figures
