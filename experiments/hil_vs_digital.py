"""Hardware-in-the-loop vs digital training of a mismatched opto-electronic delay device (the main experiment).

The device is the sine delay reservoir of ``hardware_sim.delay_device``: its physics differs from the nominal
digital twin by a relative parameter ``mismatch`` (0 … 0.3) and, optionally, detection noise (``snr_db``).  The
input side (``NAMES``) and a linear readout are trained on NARMA10 in each of ``hardware_sim.training.MODES``:

* ``digital`` — BPTT on the twin, deployed on the device as is (no device query during training);
* ``digital+readout`` — as ``digital``, then the readout re-solved by ridge on measured device states;
* ``hil`` — forward on the device, backward through the twin (physics-aware training);
* ``physical_backprop`` — forward *and* backward on the device (``Device.adjoint``, Hermans et al. 2016);
* ``spsa`` — gradient-free, two device measurements per step.

Every unit (task × mismatch × snr × mode × seed) builds a fresh device from the run seed (device seed = seed,
task data seed = ``DATA_SEED_OFFSET`` + seed), trains, measures the test NMSE on the device, and appends rows
to ``results.csv``: ``test_nmse``, ``device_samples`` and the per-epoch ``train_loss`` (with ``epoch``), each
with ``device_queries`` (device calls spent by training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from experiments import tasks
from experiments.results import prepare_directory, pyplot, read_rows, save_figure, write_config, write_rows
from hardware_sim import delay_device
from hardware_sim.training import MODES, device_nmse, train_on_device

DESCRIPTION = "HIL vs digital vs SPSA training of a mismatched, noisy delay device (NARMA10)"
COLUMNS = ("task", "method", "mismatch", "snr_db", "seed", "metric", "value", "device_queries", "epoch")
TASKS = ("narma10",)
MISMATCHES = (0.0, 0.05, 0.1, 0.2, 0.3)
SNRS: tuple[float | None, ...] = (None, 30.0)  # None: no detection noise
QUICK_MISMATCHES = (0.0, 0.3)
QUICK_SNRS: tuple[float | None, ...] = (None,)
N_UNITS = 30
NAMES = ("mask", "input_gain", "feedback_gain", "phase")
DATA_SEED_OFFSET = 1000
# NARMA10: training in chunks of CHUNK steps (each starts from rest), test on one long sequence.
DATA = dict(n_train=1000, n_test=600, chunk=100, washout=20, test_washout=50)
QUICK_DATA = dict(DATA, n_train=600)
GRADIENT = dict(n_epochs=15, batch_size=4, learning_rate=3e-3,  # digital, digital+readout, hil (Adam),
                validation_fraction=0.2)  # early-stopped on the last 20% of the chunks (start included)
SPSA = dict(n_epochs=30, spsa_gain=0.5, spsa_perturbation=0.1)  # one step per epoch
QUICK_GRADIENT = dict(GRADIENT, n_epochs=4)
QUICK_SPSA = dict(SPSA, n_epochs=8)
ALPHA = 1e-4
COLORS = {"digital": "C0", "digital+readout": "C1", "hil": "C3", "spsa": "C2"}


def snr_label(snr_db: Any) -> str:
    return "no noise" if snr_db in (None, "", "none") else f"{float(snr_db):g} dB"


def task_data(task: str, seed: int, data: dict) -> tuple[np.ndarray, ...]:
    """(u_train (B, chunk, 1), y_train (B, chunk, 1), u_test (T, 1), y_test (T, 1))."""
    if task != "narma10":
        raise ValueError(f"unknown task {task!r}")
    n_train, n_test, chunk = data["n_train"], data["n_test"], data["chunk"]
    u, y = tasks.narma10(n_train + n_test, seed=DATA_SEED_OFFSET + seed)
    return (u[:n_train].reshape(-1, chunk, 1), y[:n_train].reshape(-1, chunk, 1), u[n_train:], y[n_train:])


def unit(task: str, mismatch: float, snr_db: float | None, mode: str, seed: int, quick: bool) -> list[dict]:
    """Train one mode on a fresh device and measure it: the unit's rows."""
    data = QUICK_DATA if quick else DATA
    u_train, y_train, u_test, y_test = task_data(task, seed, data)
    device = delay_device(N_UNITS, seed=seed, mismatch=mismatch, snr_db=snr_db)
    options = (QUICK_SPSA if quick else SPSA) if mode == "spsa" else (QUICK_GRADIENT if quick else GRADIENT)
    result = train_on_device(device, u_train, y_train, mode=mode, names=NAMES, washout=data["washout"],
                             alpha=ALPHA, seed=seed, **options)
    nmse = device_nmse(device, result.params, u_test, y_test, washout=data["test_washout"])
    base = dict(task=task, method=mode, mismatch=mismatch, snr_db="none" if snr_db is None else snr_db,
                seed=seed, device_queries=result.n_calls)
    return [dict(base, metric="test_nmse", value=nmse),
            dict(base, metric="device_samples", value=result.n_samples),
            *[dict(base, metric="train_loss", value=float(v), epoch=e)
              for e, v in enumerate(result.history["train"])]]


def run_experiment(out: Path | str = "results", quick: bool = False, seeds: int | None = None) -> Path:
    seed_list = list(range(seeds or (1 if quick else 3)))
    mismatches, snrs = (QUICK_MISMATCHES, QUICK_SNRS) if quick else (MISMATCHES, SNRS)
    directory = prepare_directory(out, "hil_vs_digital")
    write_config(directory, {"experiment": "hil_vs_digital", "quick": quick, "seeds": seed_list,
                             "tasks": TASKS, "mismatches": mismatches, "snrs_db": snrs, "modes": MODES,
                             "n_units": N_UNITS, "names": NAMES, "alpha": ALPHA,
                             "data": QUICK_DATA if quick else DATA, "data_seed_offset": DATA_SEED_OFFSET,
                             "gradient": QUICK_GRADIENT if quick else GRADIENT,
                             "spsa": QUICK_SPSA if quick else SPSA})
    rows: list[dict[str, Any]] = []
    units = [(task, m, s, mode, seed) for task in TASKS for s in snrs for m in mismatches for seed in seed_list
             for mode in MODES]
    for task, mismatch, snr_db, mode, seed in tqdm(units, desc="hil vs digital"):
        rows += unit(task, mismatch, snr_db, mode, seed, quick)
        write_rows(directory / "results.csv", rows, COLUMNS)  # after every unit: a crash keeps what finished
    print(summary(rows))
    print(targets_report(rows))
    plot(directory)
    return directory


def _values(rows: list[dict], **match: Any) -> list[float]:
    return [float(r["value"]) for r in rows if all(_same(r[k], v) for k, v in match.items())]


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


def summary(rows: list[dict]) -> str:
    """Mean ± std of test NMSE over seeds, and the mean device queries, per task × snr × mismatch × mode."""
    nmse = [r for r in rows if r["metric"] == "test_nmse"]
    modes = [m for m in MODES if any(r["method"] == m for r in nmse)]
    lines = [f"{'task':9s} {'noise':9s} {'mismatch':>8s} " + " ".join(f"{m:>22s}" for m in modes),
             f"{'':28s} " + " ".join(f"{'NMSE (queries)':>22s}" for _ in modes)]
    for task in _levels(nmse, "task"):
        for snr in _levels(nmse, "snr_db"):
            for mismatch in sorted(_levels(nmse, "mismatch"), key=float):
                cells = []
                for mode in modes:
                    match = dict(task=task, snr_db=snr, mismatch=mismatch, method=mode)
                    values = _values(nmse, **match)
                    queries = [r["device_queries"] for r in nmse if all(_same(r[k], v) for k, v in match.items())]
                    cells.append(f"{np.mean(values):9.3g} ± {np.std(values):<7.2g}({np.mean(queries):3.0f})"
                                 if values else f"{'—':>22s}")
                lines.append(f"{task:9s} {snr_label(snr):9s} {float(mismatch):8.2f} " + " ".join(cells))
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets evaluated on the rows: one dict per check (target, where, values, met)."""
    nmse = [r for r in rows if r["metric"] == "test_nmse"]
    checks = []
    if not nmse:
        return checks
    strongest = max(float(m) for m in _levels(nmse, "mismatch"))
    for task in _levels(nmse, "task"):
        for snr in _levels(nmse, "snr_db"):
            where = dict(task=task, snr_db=snr, mismatch=strongest)
            hil, digital = (_values(nmse, method=m, **where) for m in ("hil", "digital"))
            if hil and digital:
                ratio = np.mean(hil) / np.mean(digital)
                checks.append(dict(target="(1) hil <= 0.5 x digital at strongest mismatch",
                                   where=f"{task}, {snr_label(snr)}, mismatch {strongest:g}",
                                   values=f"hil {np.mean(hil):.4g}, digital {np.mean(digital):.4g}, "
                                          f"ratio {ratio:.3g}", met=bool(ratio <= 0.5)))
        where = dict(task=task, snr_db="none", mismatch=0.0)
        compared = ("digital", "hil", "physical_backprop")
        means = {m: np.mean(v) for m in compared if (v := _values(nmse, method=m, **where))}
        if len(means) >= 2:
            spread = max(means.values()) / min(means.values()) - 1
            checks.append(dict(target=f"(2) {', '.join(means)} within 20% at zero mismatch, no noise",
                               where=f"{task}, no noise, mismatch 0",
                               values=", ".join(f"{m} {v:.4g}" for m, v in means.items())
                                      + f"; max/min - 1 = {spread:.1%}", met=bool(spread <= 0.2)))
    return checks


def targets_report(rows: list[dict]) -> str:
    lines = ["Targets:"]
    for check in targets(rows):
        lines.append(f"  [{'met' if check['met'] else 'NOT met'}] {check['target']} — {check['where']}: "
                     f"{check['values']}")
    return "\n".join(lines)


def plot(directory: Path | str) -> list[Path]:
    plt = pyplot()
    directory = Path(directory)
    rows = [r for r in read_rows(directory / "results.csv") if r["metric"] == "test_nmse"]
    modes = [m for m in MODES if any(r["method"] == m for r in rows)]
    figures = []
    for task in _levels(rows, "task"):
        task_rows = [r for r in rows if r["task"] == task]
        snrs = _levels(task_rows, "snr_db")
        fig, axes = plt.subplots(1, len(snrs), figsize=(4.2 * len(snrs), 3.6), squeeze=False, sharey=True)
        for ax, snr in zip(axes[0], snrs, strict=True):
            for mode in modes:
                mismatches = sorted({float(r["mismatch"]) for r in task_rows if r["method"] == mode}, key=float)
                values = [_values(task_rows, snr_db=snr, method=mode, mismatch=m) for m in mismatches]
                keep = [i for i, v in enumerate(values) if v]
                means = np.array([np.mean(values[i]) for i in keep])
                # error bars: the range over seeds (mean ± std would cross zero on the log axis)
                spread = [means - [min(values[i]) for i in keep], [max(values[i]) for i in keep] - means]
                ax.errorbar([mismatches[i] for i in keep], means, yerr=spread, marker="o", ms=4, capsize=3,
                            color=COLORS.get(mode), label=mode)
            ax.set(yscale="log", xlabel="model mismatch", title=f"{task}, {snr_label(snr)}")
        axes[0][0].set_ylabel("test NMSE on the device\n(mean, min–max over seeds)")
        axes[0][-1].legend(fontsize=8)
        fig.suptitle(f"Sine delay device, N = {N_UNITS}: training modes under model mismatch", fontsize=10)
        fig.tight_layout()
        figures.append(save_figure(fig, directory, f"nmse_vs_mismatch_{task}"))

        fig, ax = plt.subplots(figsize=(4.6, 3.6))
        for mode in modes:
            points = [r for r in task_rows if r["method"] == mode]
            # log x: queries 0 (the digital modes) are drawn at 0.5, marked on the axis label
            ax.scatter([max(float(r["device_queries"]), 0.5) for r in points], [r["value"] for r in points],
                       s=14, alpha=0.7, color=COLORS.get(mode), label=mode)
        ax.set(xscale="log", yscale="log", xlabel="device queries in training (0 drawn at 0.5)",
               ylabel="test NMSE on the device", title=f"{task}: error vs device queries")
        ax.legend(fontsize=8)
        fig.tight_layout()
        figures.append(save_figure(fig, directory, f"nmse_vs_queries_{task}"))
    return figures
