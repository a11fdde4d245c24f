"""Digital vs hardware-in-the-loop training of opto-electronic delay devices (the main experiment).

The comparison of Hermans, Antonik, Haelterman & Massar (PRL 117, 128301, 2016) — train in a digital model of
the device, or with the device in the loop — rebuilt so that its answer comes from the devices and not from how
the baselines were built:

* **Devices** (``hardware_sim.delay_device``, sine delay loop) from two profiles: ``knob_mismatch`` (the device
  differs from its nominal twin only in the three written knobs, behind 30 dB detection noise: there physical
  backprop is BPTT on the truth and a calibrated twin can match it) and ``benchtop`` (square-law detection,
  the RF band-pass, in-loop noise, delay offset and drift, bias drift, DAC/ADC, node spread; values and sources
  in ``hardware_sim.device.PROFILE_SOURCES``).  Each (profile, mismatch) level draws its own devices
  (``device_seed``), independent across levels; in a level every method runs on the same devices (paired).
* **Tasks** (``experiments.tasks``, one split interface): NARMA10 (3000 + 1000 training steps, 2000 test) by
  default; Japanese vowels (270 / 370 utterances, N = 100), channel equalisation (200,000 test symbols,
  24 dB), MNIST-1D (4000 / 1000, N = 100) and the 8×8 digits (row by row, N = 50) with ``--tasks``.  The
  task's validation part is what every search holds out; the test part is measured once, on the device, at
  the end.
* **Methods**, every hyperparameter chosen on the held-out validation part (``hardware_sim.baselines``; device
  queries of an in-situ search count as that method's cost):

  - no device: ``linear_taps`` / ``volterra_taps`` (time series) or ``ridge_raw`` / ``logistic_raw`` /
    ``mlp_raw`` (classification), ``experiments.baselines``;
  - in-situ reservoir: ``reservoir`` (random mask, α chosen; one call), ``reservoir_tuned`` (its three knobs
    scanned on the device, the protocol of the 2016 paper's baseline);
  - digital (trained in a model, deployed with the readout re-fitted on one measurement): ``digital+readout``,
    ``digital_noise_aware``, ``digital_randomized``, ``calibrated_twin``, and ``calibrated_twin+check`` (the
    same, its candidates, the untrained start among them, checked on the device: one call each);
  - in situ: ``hil`` (physics-aware training, Wright et al. 2022), ``physical_backprop`` (the device computes
    the backward pass, Hermans et al. 2016), ``dfa`` (augmented direct feedback alignment, Nakajima et al.
    2022), ``spsa``.

* **Statistics** (``experiments.statistics``): per cell (task, profile, mismatch) every method's median test
  error with a 95 % bootstrap interval over devices, and against the strongest digital baseline of the cell
  (lowest median) the fraction of devices where it wins (Wilson interval) and the median paired ratio of
  errors (bootstrap interval).  The no-device baselines use the same data seeds, so they pair with the devices.

Sizes: ``quick()`` (tests, about a minute), the default (``make demo``: NARMA10, both profiles, 4 devices each),
``full()`` (``--full``: 10 % and 30 % mismatch per profile, 20 devices per level); ``--tasks``, ``--profiles``,
``--methods`` select a larger or smaller grid (for a cluster: ``--scheduler tcp://...``).  Results:
``results.csv`` (one row per task, profile, mismatch, device and method: test error, device calls, samples and
device time, the chosen hyperparameters; byte-identical for the same command), ``timings.csv`` (wall seconds,
which vary), figures.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from experiments import baselines as no_device
from experiments import tasks
from experiments.results import ConfigError, open_run, pyplot, read_rows, save_figure, write_rows
from experiments.statistics import MethodSummary, markdown_table, median_interval, summarise_cell
from experiments.sweep import parse_scheduler, run_sweep
from hardware_sim import delay_device
from hardware_sim.baselines import (
    MismatchPrior,
    TwinNoise,
    deployed_readout,
    digital_tuned,
    in_situ_tuned,
    reservoir_tuned,
    spsa_tuned,
)
from hardware_sim.training import DFA_FIELDS, device_predictions, device_seconds
from readout.features import one_hot
from reservoir.core import DivergenceError
from reservoir.trainable import split_trainable

DESCRIPTION = "Digital vs hardware-in-the-loop training on knob-mismatched and benchtop delay devices"
COLUMNS = ("task", "profile", "mismatch", "device", "method", "test_error", "n_calls", "n_samples",
           "device_seconds", "hyperparameters")
DIGITAL = ("digital+readout", "digital_noise_aware", "digital_randomized", "calibrated_twin",
           "calibrated_twin+check")
IN_SITU = ("hil", "physical_backprop", "dfa", "spsa")
RESERVOIR = ("reservoir", "reservoir_tuned")
DEVICE_METHODS = (*RESERVOIR, *DIGITAL, *IN_SITU)
NO_DEVICE = {"regression": no_device.BASELINES["regression"],
             "classification": no_device.BASELINES["classification"]}
ERROR_NAMES = {"narma10": "test NMSE", "channel_equalisation": "symbol error rate"}  # others: "error rate"
DATA_SEED_OFFSET = 1000
# The input side every method trains (SPSA, the gradient modes, the digital baselines; DFA those of them in the
# written drive): the input and bias masks (each node's operating point) and the three knobs.
NAMES = ("mask", "bias_mask", "input_gain", "feedback_gain", "phase")


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a task meets the device: ``n_units`` virtual nodes; training in mini-batches of ``batch_size``
    sequences; a time series cut into chunks of ``chunk`` steps, each measured from rest, its first
    ``chunk_washout`` steps not fitted, and the test series preceded by ``test_warmup`` steps of the
    validation part; inputs multiplied by ``input_scale``; ``options`` go to ``tasks.load_task``."""

    n_units: int
    batch_size: int
    chunk: int = 0
    chunk_washout: int = 0
    test_warmup: int = 0
    input_scale: float = 1.0
    options: tuple[tuple[str, Any], ...] = ()


LAYOUTS = {
    "narma10": Layout(n_units=50, batch_size=4, chunk=200, chunk_washout=20, test_warmup=50),
    "channel_equalisation": Layout(n_units=50, batch_size=4, chunk=200, chunk_washout=20, test_warmup=50,
                                   input_scale=0.25, options=(("snr_db", 24.0),)),
    "japanese_vowels": Layout(n_units=100, batch_size=32),
    "mnist1d": Layout(n_units=100, batch_size=100),
    "digits": Layout(n_units=50, batch_size=100),  # the 8×8 digits read row by row: a cheap classification task
}
# What the twin knows of each profile: the datasheet's noise, converters and tolerances (never a device's draw).
# knob_mismatch adds 30 dB detection noise to the profile; benchtop carries its own (30 dB in the loop, 40 dB
# at detection, a 10-bit ADC on ±2.5, node spread of 2 % gain and 0.01 offset).
PROFILE_NOISE = {"knob_mismatch": {"snr_db": 30.0}, "benchtop": {}}
TWIN_NOISE = {"knob_mismatch": TwinNoise(snr_db=30.0),
              "benchtop": TwinNoise(snr_db=30.0, adc_bits=10, adc_range=(-2.5, 2.5))}
NODE_SPREAD = {"knob_mismatch": {}, "benchtop": {"gain_spread": 0.02, "offset_spread": 0.01}}


@dataclasses.dataclass(frozen=True)
class Grid:
    """One run's configuration: ``tasks`` × ``levels`` ((profile, mismatch) pairs) × ``n_devices`` devices ×
    ``methods`` (device methods; the no-device baselines of each task always run).  ``n_epochs``: the
    gradient methods' epochs (early-stopped on the held-out part); ``spsa_steps``: SPSA steps per candidate;
    ``calibration``: ``calibrate_twin``'s options; ``sizes``: per-task ``load_task`` options that shrink it."""

    tasks: tuple[str, ...] = ("narma10",)
    levels: tuple[tuple[str, float], ...] = (("knob_mismatch", 0.3), ("benchtop", 0.3))
    n_devices: int = 4
    methods: tuple[str, ...] = DEVICE_METHODS
    n_epochs: int = 6
    spsa_steps: int = 15
    calibration: tuple[tuple[str, Any], ...] = (("n_steps", 1500), ("n_repeats", 2))
    sizes: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def __post_init__(self) -> None:
        check_grid(self)

    @classmethod
    def quick(cls) -> Grid:
        """About a minute: NARMA10 shortened, both profiles, 2 devices, short training."""
        return cls(n_devices=2, n_epochs=2, spsa_steps=3, calibration=(("n_steps", 300), ("n_repeats", 1)),
                   sizes=(("narma10", (("n_train", 1000), ("n_validation", 400), ("n_test", 1000))),))

    @classmethod
    def full(cls) -> Grid:
        """The publication grid: NARMA10 on both profiles at 10 % and 30 % mismatch, 20 devices per level;
        ``--tasks narma10,japanese_vowels`` adds the classification task (a vowels unit costs about twice a
        NARMA10 unit: run it on more cores)."""
        return cls(n_devices=20, levels=(("knob_mismatch", 0.1), ("knob_mismatch", 0.3),
                                         ("benchtop", 0.1), ("benchtop", 0.3)))

    def task_options(self, task: str) -> dict[str, Any]:
        """``tasks.load_task``'s options for ``task``: its layout's, then this grid's size overrides."""
        return dict(LAYOUTS[task].options) | dict(dict(self.sizes).get(task, ()))


def check_grid(grid: Grid) -> None:
    """Refuse a grid that names an unknown task, profile or method, is empty, or has no devices
    (``ConfigError``: the command line turns it into a one-line error and exit code 2)."""
    for name, values, known in (("tasks", grid.tasks, tuple(LAYOUTS)),
                                ("profiles", tuple(p for p, _ in grid.levels), tuple(PROFILE_NOISE)),
                                ("methods", grid.methods, DEVICE_METHODS)):
        if not values:
            raise ConfigError(f"{name} must name at least one of {list(known)}, got an empty grid")
        unknown = [value for value in values if value not in known]
        if unknown:
            raise ConfigError(f"unknown {name} {unknown}: expected some of {list(known)}")
    if not isinstance(grid.n_devices, int) or grid.n_devices <= 0:
        raise ConfigError(f"the number of devices must be a positive integer, got {grid.n_devices!r}")
    for profile, mismatch in grid.levels:
        if not (isinstance(mismatch, (int, float)) and 0 <= mismatch < 1):
            raise ConfigError(f"mismatch of profile {profile!r} must be in [0, 1), got {mismatch!r}")


# ------------------------------------------------------------------------------------------------ data


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """A task laid out for the device: training sequences (B, T, D) with targets (B, T, O), or one one-hot
    row per sequence (B, C) with ``pool``; the last ``n_held`` sequences are the task's validation part
    (what every search holds out); the test inputs and how many warm-up steps precede the scored ones."""

    task: tasks.TaskData
    inputs: np.ndarray
    targets: np.ndarray
    n_held: int
    washout: int
    pool: bool
    test_inputs: np.ndarray
    test_warmup: int
    batch_size: int

    @property
    def validation_fraction(self) -> float:
        """The held-out share of the training sequences, as ``hardware_sim.baselines``' searches take it."""
        return self.n_held / len(self.inputs)


def _chunks(series: np.ndarray, chunk: int) -> np.ndarray:
    n = len(series) // chunk
    return series[: n * chunk].reshape(n, chunk, -1)


@functools.cache
def device_data(task_name: str, device: int, options: tuple[tuple[str, Any], ...]) -> DeviceData:
    """The data of device ``device`` (data seed ``DATA_SEED_OFFSET + device``; cached: every method and
    level of that device index shares it).  NARMA10's recursion diverges for a few input draws (about one
    seed in twenty at 6200 steps); such a seed is replaced by the next of ``seed + 1000 k``, k = 1, 2, …"""
    layout = LAYOUTS[task_name]
    for attempt in range(10):
        try:
            task = tasks.load_task(task_name, DATA_SEED_OFFSET + device + 1000 * attempt, **dict(options))
            break
        except tasks.SeriesDiverged:
            continue
    else:
        raise RuntimeError(f"{task_name}: ten data seeds in a row diverged for device {device}")
    scale = layout.input_scale
    if task.kind == "regression":
        fit = [_chunks(part.inputs[start:], layout.chunk) for part, start in
               ((task.train, task.washout), (task.validation, 0))]
        targets = [_chunks(part.targets[start:], layout.chunk) for part, start in
                   ((task.train, task.washout), (task.validation, 0))]
        test = np.concatenate([task.validation.inputs[-layout.test_warmup:], task.test.inputs])
        return DeviceData(task, scale * np.concatenate(fit), np.concatenate(targets), len(fit[1]),
                          layout.chunk_washout, False, scale * test, layout.test_warmup, layout.batch_size)
    fit = task.fit_part()
    return DeviceData(task, scale * fit.inputs, one_hot(fit.targets, task.n_classes), len(task.validation.inputs),
                      0, True, scale * task.test.inputs, 0, layout.batch_size)


def device_seed(profile: str, mismatch: float, device: int) -> int:
    """An independent device for every (profile, mismatch level, index): levels do not share a draw."""
    entropy = [sorted(PROFILE_NOISE).index(profile), round(1000 * mismatch), device]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] % 2**31)


def make_device(task_name: str, profile: str, mismatch: float, device: int, n_inputs: int):
    """A fresh device of the profile and level, the task's size, and the seed of device index ``device``."""
    return delay_device(LAYOUTS[task_name].n_units, n_inputs, seed=device_seed(profile, mismatch, device),
                        profile=profile, mismatch=mismatch, **PROFILE_NOISE[profile])


# --------------------------------------------------------------------------------------------- methods


def run_method(method: str, device, data: DeviceData, grid: Grid, profile: str, mismatch: float, seed: int):
    """``method`` trained on ``device``: a ``hardware_sim.baselines.MethodResult``-like tuple
    (params, n_calls, n_samples, hyperparameters); every query it spends is on ``device``'s counters."""
    common = dict(washout=data.washout, pool=data.pool, validation_fraction=data.validation_fraction)
    gradient = dict(n_epochs=grid.n_epochs, batch_size=data.batch_size, seed=seed)
    names = [name for name in NAMES if method != "dfa" or name in DFA_FIELDS]
    u, y = data.inputs, data.targets
    if method == "reservoir":  # the nominal random mask, alpha chosen on the held-out part (one call)
        side, _ = split_trainable(device.nominal_twin(), ["mask"])
        readout, alpha, _ = deployed_readout(device, side, u, y, data.n_held, washout=data.washout,
                                             pool=data.pool)
        return {"input_side": side, "readout": readout}, device.n_calls, device.n_samples, {"alpha": alpha}
    if method == "reservoir_tuned":
        result = reservoir_tuned(device, u, y, **common)
    elif method == "spsa":
        result = spsa_tuned(device, u, y, names=names, n_steps=grid.spsa_steps, seed=seed, **common)
    elif method in IN_SITU:
        result = in_situ_tuned(device, u, y, mode=method, names=names, **common, **gradient)
    else:
        kind = {"digital+readout": "digital", "digital_noise_aware": "noise_aware",
                "digital_randomized": "randomized", "calibrated_twin": "calibrated",
                "calibrated_twin+check": "calibrated"}[method]
        prior = MismatchPrior(relative=mismatch, absolute=mismatch, **NODE_SPREAD[profile])
        result = digital_tuned(device, u, y, kind=kind, names=names, noise=TWIN_NOISE[profile], prior=prior,
                               calibration_options=dict(grid.calibration),
                               select_on="device" if method.endswith("+check") else "model", **common, **gradient)
    return result.params, result.n_calls, result.n_samples, result.hyperparameters


def test_error(device, params: dict[str, Any], data: DeviceData) -> float:
    """The task's metric of ``params`` deployed on ``device``: the test part measured once."""
    predictions = device_predictions(device, params, data.test_inputs, pool=data.pool)
    return data.task.score(data.task.test, predictions[data.test_warmup:])


def run_unit(unit: dict[str, Any]) -> list[dict[str, Any]]:
    """One device index of one (task, profile, mismatch) level: every method on a fresh device of the same
    seed (no method sees another's drift or noise stream); or, for a unit with ``profile`` None, the task's
    no-device baselines on that device index's data."""
    grid = Grid(**{k: _tuples(v) for k, v in unit["grid"].items()})
    data = device_data(unit["task"], unit["device"], tuple(sorted(grid.task_options(unit["task"]).items())))
    base = dict(task=unit["task"], profile=unit["profile"] or "", mismatch=unit["mismatch"], device=unit["device"])
    rows = []
    with threadpool_limits(1, "blas"):  # small matrices: BLAS threads only fight over the cores
        if unit["profile"] is None:
            for name in NO_DEVICE[data.task.kind]:
                start = time.perf_counter()
                result = no_device.fit_baseline(name, data.task)
                rows.append(dict(base, method=name, test_error=float(result.test), n_calls=0, n_samples=0,
                                 device_seconds=0.0, hyperparameters=_json(result.hyperparameters),
                                 seconds=time.perf_counter() - start))
            return rows
        for method in unit["methods"]:
            device = make_device(unit["task"], unit["profile"], unit["mismatch"], unit["device"],
                                 data.inputs.shape[-1])
            start = time.perf_counter()
            try:
                params, n_calls, n_samples, chosen = run_method(method, device, data, grid, unit["profile"],
                                                                unit["mismatch"], unit["device"])
                error = test_error(device, params, data)
            except DivergenceError as exc:  # every candidate diverged: nothing better than a constant output
                n_calls, n_samples, chosen = device.n_calls, device.n_samples, {"diverged": str(exc)[:160]}
                error = constant_error(data)
            seconds = time.perf_counter() - start
            rows.append(dict(base, method=method, test_error=error, n_calls=n_calls, n_samples=n_samples,
                             device_seconds=device_seconds(device, n_samples), hyperparameters=_json(chosen),
                             seconds=seconds))
    return rows


def constant_error(data: DeviceData) -> float:
    """The test error of a constant output, the training targets' mean: what a method deploys when every
    hyperparameter candidate's training diverged (NMSE ≈ 1; for classes, the most frequent training class).
    Recorded with the queries it spent, so a diverging method keeps its cost and loses its devices."""
    targets = data.targets.reshape(-1, data.targets.shape[-1])
    mean = targets.mean(axis=0)
    n_test = len(data.task.test.inputs) if data.pool else len(data.test_inputs)
    return data.task.score(data.task.test, np.broadcast_to(mean, (n_test, len(mean)))[data.test_warmup:])


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples of a frozen ``Grid``."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _json(values: Mapping[str, Any]) -> str:
    return json.dumps({k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in values.items()},
                      sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------- the run


# Wall seconds of one unit (all device methods of one device) in one process on this 2-core machine, for the
# estimate printed before a run: NARMA10 measured end to end by the in-process --full run (66.5 min for 80
# device units); the others scaled from NARMA10 by their units' ratios in runs on two Dask workers (digits 1.5x,
# Japanese vowels about 2x from single units); channel and MNIST-1D guessed from their sizes.
UNIT_SECONDS = {"narma10": 50, "channel_equalisation": 70, "japanese_vowels": 115, "mnist1d": 410,
                "digits": 75}


def units_of(grid: Grid) -> list[dict[str, Any]]:
    """Device-major order: a run stopped part-way has every level with the same number of devices."""
    plain = json.loads(json.dumps(dataclasses.asdict(grid)))
    units = []
    for device in range(grid.n_devices):
        for task in grid.tasks:
            units.append(dict(task=task, profile=None, mismatch=None, device=device, methods=[], grid=plain))
            units += [dict(task=task, profile=profile, mismatch=mismatch, device=device,
                           methods=list(grid.methods), grid=plain) for profile, mismatch in grid.levels]
    return units


def estimate_seconds(grid: Grid, scheduler: str | None) -> float:
    """A rough duration of the run before it starts, from ``UNIT_SECONDS`` and the number of workers."""
    kind, value = parse_scheduler(scheduler)
    workers = value if kind == "local" else 1
    share = len(grid.methods) / len(DEVICE_METHODS)
    total = sum(UNIT_SECONDS[task] * share * grid.n_devices * len(grid.levels) for task in grid.tasks)
    return total / workers


def run_experiment(out: Path | str = "results", quick: bool = False, seeds: int | None = None,
                   scheduler: str | None = None, fresh: bool = False, full: bool = False,
                   tasks: Sequence[str] | None = None, profiles: Sequence[str] | None = None,
                   methods: Sequence[str] | None = None, grid: Grid | None = None) -> Path:
    """Run the grid (``grid``, else ``Grid.quick()``, the default ``Grid()`` or ``Grid.full()``; ``seeds``
    devices per level, ``tasks`` / ``profiles`` / ``methods`` select), write ``results.csv``,
    ``timings.csv``, the summary and the figures; resumes a stopped run of the same configuration."""
    if quick and full:
        raise ConfigError("choose one of --quick and --full")
    if grid is None:
        grid = Grid.quick() if quick else Grid.full() if full else Grid()
    changes: dict[str, Any] = {}
    if seeds is not None:
        changes["n_devices"] = seeds
    if tasks is not None:
        changes["tasks"] = tuple(tasks)
    if profiles is not None:
        mismatch = dict(grid.levels)
        changes["levels"] = tuple((profile, mismatch.get(profile, 0.3)) for profile in profiles)
    if methods is not None:
        changes["methods"] = tuple(methods)
    grid = dataclasses.replace(grid, **changes)  # checked by Grid.__post_init__
    settings = {"experiment": "hil_vs_digital", "grid": dataclasses.asdict(grid),
                "data_seed_offset": DATA_SEED_OFFSET, "layouts": {t: dataclasses.asdict(LAYOUTS[t])
                                                                   for t in grid.tasks},
                "profile_noise": PROFILE_NOISE, "twin_noise": {k: dataclasses.asdict(v)
                                                               for k, v in TWIN_NOISE.items()}}
    directory = open_run(out, "hil_vs_digital", settings, fresh=fresh)
    units = units_of(grid)
    device_units = sum(1 for unit in units if unit["profile"] is not None)
    print(f"hil_vs_digital: {len(grid.tasks)} task(s) × {len(grid.levels)} level(s) × {grid.n_devices} devices "
          f"× {len(grid.methods)} device methods = {device_units} device units (+ the no-device baselines); "
          f"estimated {estimate_seconds(grid, scheduler) / 60:.0f} min on this kind of 2-core machine",
          flush=True)
    results = run_sweep(run_unit, units, directory, scheduler=scheduler, desc="hil vs digital")
    rows = [row for unit_rows in results for row in unit_rows]
    write_rows(directory / "results.csv", [{k: r[k] for k in COLUMNS} for r in rows], COLUMNS)
    write_rows(directory / "timings.csv", [dict(task=r["task"], profile=r["profile"], mismatch=r["mismatch"],
                                                device=r["device"], method=r["method"],
                                                seconds=round(r["seconds"], 2)) for r in rows])
    text = summary(rows)
    (directory / "summary.md").write_text(text + "\n")
    print(text)
    plot(directory)
    return directory


# ------------------------------------------------------------------------------------------- reporting


def cells(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, float], dict[str, list[float]]]:
    """{(task, profile, mismatch): {method: errors by device index}}, the no-device baselines joined into
    every level of their task by device index (the same data seed)."""
    baselines: dict[str, dict[str, dict[int, float]]] = {}
    table: dict[tuple, dict[str, dict[int, float]]] = {}
    for r in rows:
        if r["profile"] in ("", None):
            baselines.setdefault(r["task"], {}).setdefault(r["method"], {})[int(r["device"])] = float(
                r["test_error"])
        else:
            key = (r["task"], r["profile"], float(r["mismatch"]))
            table.setdefault(key, {}).setdefault(r["method"], {})[int(r["device"])] = float(r["test_error"])
    out = {}
    for key, methods in table.items():
        devices = sorted(set.intersection(*(set(v) for v in methods.values())))
        joined = {**baselines.get(key[0], {}), **methods}
        out[key] = {m: [values[d] for d in devices] for m, values in joined.items()
                    if all(d in values for d in devices)}
    return out


def _floor(task: str) -> float | None:
    """The test set's resolution for error rates (one error), None for NMSE (ratios of zero error rates
    would be undefined; ``experiments.statistics.median_ratio`` raises them to this floor and marks them)."""
    return {"channel_equalisation": 1 / 200_000, "japanese_vowels": 1 / 370, "mnist1d": 1 / 1000,
            "digits": 1 / 450}.get(task)


def cell_summaries(by_cell: Mapping[tuple, Mapping[str, list[float]]]) -> dict[tuple, list[MethodSummary]]:
    """``summarise_cell`` of every cell (of ``cells``) that has a digital baseline, against the strongest of
    them, with the task's error floor."""
    return {key: summarise_cell(errors, baselines=[m for m in DIGITAL if m in errors], floor=_floor(key[0]))
            for key, errors in by_cell.items() if any(m in errors for m in DIGITAL)}


def summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """The headline tables (medians, intervals, win fractions and paired ratios against the strongest digital
    baseline of each cell), then the cost table."""
    summaries = cell_summaries(cells(rows))
    tables = []
    for task in dict.fromkeys(key[0] for key in summaries):
        task_cells = {key: cell for key, cell in summaries.items() if key[0] == task}
        n = min(s.n for cell in task_cells.values() for s in cell)
        title = (f"### {task}: {ERROR_NAMES.get(task, 'error rate')}, median over {n} devices, against the "
                 f"strongest digital baseline")
        tables.append(title + "\n\n" + markdown_table(task_cells, ("task", "profile", "mismatch")))
    return "\n\n".join([headline_table(summaries), *tables, cost_table(rows)])


def headline_table(summaries: Mapping[tuple, Sequence[MethodSummary]]) -> str:
    """One line per method, one column per cell (of ``cell_summaries``): the median test error [95 % interval]
    and, against the strongest digital baseline of the cell (marked *ref*), the devices where the method wins
    (ties half)."""
    by_method = {key: {s.method: s for s in cell} for key, cell in summaries.items()}
    methods = list(dict.fromkeys(m for cell in by_method.values() for m in cell))
    header = ["method", *(f"{task}, {profile} {mismatch:g}" for task, profile, mismatch in by_method)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for method in methods:
        entries = [method]
        for cell in by_method.values():
            s = cell.get(method)
            if s is None:
                entries.append("")
                continue
            text = s.median.format(3)
            if s.versus is None:
                text += " *ref*"
            elif method not in NO_DEVICE["regression"] + NO_DEVICE["classification"]:
                win = s.versus.win
                text += f", wins {win.wins + 0.5 * win.ties:g}/{win.n}"
            entries.append(text)
        lines.append("| " + " | ".join(entries) + " |")
    n = min(s.n for cell in summaries.values() for s in cell)
    return (f"### test error, median [95 % CI] over {n}+ devices; wins against the strongest digital baseline "
            f"(*ref*)\n\n" + "\n".join(lines))


def cost_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Median device calls, samples and device time per method (every query: calibration, search, training,
    the deployed readout; the test measurement excluded)."""
    lines = ["### device cost per method (median over devices; test measurement excluded)", "",
             "| task | profile | method | calls | samples | device time [s] |", "|---|---|---|---:|---:|---:|"]
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["profile"] not in ("", None):
            groups.setdefault((r["task"], r["profile"], r["method"]), []).append(r)
    for (task, profile, method), chosen in groups.items():
        seconds = [float(r["device_seconds"]) for r in chosen if r["device_seconds"] not in ("", None)]
        lines.append(f"| {task} | {profile} | {method} | {np.median([float(r['n_calls']) for r in chosen]):.0f} | "
                     f"{np.median([float(r['n_samples']) for r in chosen]):.3g} | "
                     f"{np.median(seconds) if seconds else float('nan'):.2g} |")
    return "\n".join(lines)


COLORS = {"reservoir": "0.6", "reservoir_tuned": "0.3", "digital+readout": "C0", "digital_noise_aware": "C9",
          "digital_randomized": "C8", "calibrated_twin": "C1", "calibrated_twin+check": "C6", "hil": "C3",
          "physical_backprop": "C4", "dfa": "C5", "spsa": "C2"}


def plot(directory: Path | str) -> list[Path]:
    """Redraw every figure from ``results.csv``."""
    directory = Path(directory)
    rows = read_rows(directory / "results.csv")
    by_cell = cells(rows)
    figures = [_plot_error_vs_cost(directory, rows, by_cell), _plot_paired_ratios(directory, by_cell)]
    levels = collections.Counter((task, profile) for task, profile, _ in by_cell)
    if max(levels.values()) > 1:  # a grid with several mismatch levels of one profile
        figures.append(_plot_error_vs_mismatch(directory, by_cell))
    return figures


def _legend_below(fig, ax) -> None:
    """One legend for all panels, under them: the methods of the first panel."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=5, fontsize=7, bbox_to_anchor=(0.5, 0.0))


def _no_device_line(ax, method: str, value: float) -> None:
    """A no-device baseline, which does not depend on the device: a dotted horizontal line, named."""
    ax.axhline(value, color="0.75", lw=1, ls=":")
    ax.annotate(method, (1.0, value), xycoords=("axes fraction", "data"), fontsize=6, ha="right", va="bottom",
                color="0.45")


def _plot_error_vs_mismatch(directory: Path, by_cell: Mapping[tuple, Mapping[str, list[float]]]) -> Path:
    """Test error (median, 95 % interval) against the mismatch level, one panel per (task, profile); the
    no-device baselines, which do not depend on the device, as horizontal lines."""
    plt = pyplot()
    panels = list(dict.fromkeys((task, profile) for task, profile, _ in by_cell))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (task, profile) in zip(axes[0], panels, strict=True):
        levels = sorted(m for t, p, m in by_cell if (t, p) == (task, profile))
        methods = dict.fromkeys(m for level in levels for m in by_cell[(task, profile, level)])
        for method in methods:
            estimates = [median_interval(by_cell[(task, profile, level)][method]) for level in levels]
            values = [e.value for e in estimates]
            if method not in COLORS:
                _no_device_line(ax, method, values[0])
                continue
            spread = [[e.value - e.low for e in estimates], [e.high - e.value for e in estimates]]
            ax.errorbar(levels, values, yerr=spread, color=COLORS[method], label=method, marker="o", ms=3,
                        capsize=2)
        ax.set_yscale("log")
        ax.set_xticks(levels, [f"{level:.0%}" for level in levels])
        ax.set_xlabel("mismatch of the written knobs")
        ax.set_title(f"{task}, {profile}", fontsize=9)
    axes[0][0].set_ylabel("test error (median, 95 % CI)")
    _legend_below(fig, axes[0][0])
    return save_figure(fig, directory, "error_vs_mismatch")


def _plot_error_vs_cost(directory: Path, rows: list[dict], by_cell: Mapping[tuple, Mapping[str, list[float]]]
                        ) -> Path:
    """Test error (median, 95 % interval) against device calls per method, one panel per (task, level); the
    no-device baselines as horizontal lines; the Pareto front of the device methods dashed."""
    plt = pyplot()
    keys = list(by_cell)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        points = []
        for method, errors in by_cell[key].items():
            estimate = median_interval(errors)
            if method not in COLORS:  # no device: a line
                _no_device_line(ax, method, estimate.value)
                continue
            calls = float(np.median([float(r["n_calls"]) for r in rows if r["method"] == method and
                                     r["task"] == key[0] and r["profile"] == key[1] and
                                     float(r["mismatch"] or 0) == key[2]]))
            calls = max(calls, 0.5)
            spread = [[estimate.value - estimate.low], [estimate.high - estimate.value]]
            ax.errorbar(calls, estimate.value, yerr=spread, fmt="o", color=COLORS[method], label=method, capsize=2,
                        ms=4)
            points.append((calls, estimate.value))
        front, best = [], math.inf
        for calls, value in sorted(points):
            if value < best:
                front.append((calls, value))
                best = value
        ax.plot(*zip(*front, strict=True), color="0.2", lw=0.8, ls="--", zorder=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("device calls (every query but the test)", fontsize=8)
        ax.set_title(f"{key[0]}, {key[1]}, mismatch {key[2]:g}", fontsize=9)
    axes[0][0].set_ylabel("test error (median, 95 % CI)")
    _legend_below(fig, axes[0][0])
    return save_figure(fig, directory, "error_vs_cost")


def _plot_paired_ratios(directory: Path, by_cell: Mapping[tuple, Mapping[str, list[float]]]) -> Path:
    """Every device method's median paired ratio of test errors against the strongest digital baseline of the
    cell, with its 95 % interval (below 1: the method wins)."""
    plt = pyplot()
    from matplotlib import ticker  # after pyplot(): matplotlib is imported lazily

    summaries = cell_summaries(by_cell)
    fig, axes = plt.subplots(1, len(summaries), figsize=(4.2 * len(summaries), 3.4), squeeze=False, sharey=True)
    for ax, (key, cell) in zip(axes[0], summaries.items(), strict=True):
        shown = [s for s in cell if s.method in COLORS]
        for i, s in enumerate(shown):
            if s.versus is None:
                ax.plot(1, i, "s", color=COLORS[s.method])
                continue
            ratio = s.versus.ratio
            ax.errorbar(ratio.value, i, xerr=[[ratio.value - ratio.low], [ratio.high - ratio.value]], fmt="o",
                        color=COLORS[s.method], capsize=2, ms=4)
        ax.axvline(1, color="0.5", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))
        ax.xaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))
        ax.set_yticks(range(len(shown)), [s.method for s in shown], fontsize=7)
        reference = next(s.method for s in shown if s.versus is None)
        ax.set_xlabel(f"error / error of {reference} (paired)", fontsize=8)
        ax.set_title(f"{key[0]}, {key[1]}, mismatch {key[2]:g}", fontsize=9)
    return save_figure(fig, directory, "paired_ratios")
