"""Hermans et al. (PRL 117, 128301, 2016) in simulation and on simulated devices: a delay reservoir whose input
side is trained by backpropagation against the same reservoir with a random input mask.

Every reservoir is a sine delay reservoir (Paquot et al., Sci. Rep. 2, 287 (2012)),

    x_i(n) = sin(α x_{i−1}(n−1) + β m_i · u(n) + b_i + φ)   (the virtual nodes i = 1..N),

and "trained input side" means the mask m, the bias mask b, β, α and φ (``TRAINED``), trained by Adam on the
loss with the readout solved in closed form on every batch (variable projection, Golub & Pereyra 1973:
``train_on_device(..., readout="ridge")``, the trainer of the hardware experiments) and early-stopped out of
sample.  Classification reads the time average of each sequence's states with a linear readout.

**Part 1, at scale** (``scale_unit``): Japanese vowels (Kudo et al. 1999; N = 100) and MNIST-1D (Greydanus
2020; N = 200), each seed a fresh reservoir and a fresh validation carve of the task's training data:

* ``reservoir`` — the random mask; its input and feedback gains (grid ``SCALE[task]["gains"]``) and the ridge
  alpha chosen on the validation part;
* ``full_projected`` — that reservoir's input side trained on the training part, early-stopped on the
  validation part, the learning rate chosen (``SCALE_LEARNING_RATES``) by the best validation score;
* the no-device baselines of ``experiments.baselines`` (ridge, logistic regression and an MLP on the raw
  sequence), hyperparameters chosen on the same validation part.

Every readout is then re-fitted on train + validation (alpha chosen on validation) and the test part is read
once.  Japanese vowels' utterances (7–29 frames) are resampled to 29 frames over their own duration (the
no-device baselines' ``raw_features``), so the time average covers the utterance only.

**Part 2, the device half** (``device_unit``): NARMA10 and the 8×8 digits at N = 50, the rows of Hermans et
al., JMLR 16, 2081 (2015), Table 1 and of the PRL's device column, on devices of two profiles
(``hardware_sim.device.PROFILES``): ``knob_mismatch`` (10 % mismatch of the input gain, feedback gain and phase
behind 30 dB detection noise) and ``benchtop`` (the same mismatch plus square-law detection, band-pass, in-loop
noise, drifting bias and loop delay, driver distortion, converters).  Per task, device seed and profile, each
method runs on a fresh device of that seed (the same hidden truth for every method: a paired design):

* ``reservoir`` — the random mask written on the device;
* ``digital+readout`` — the input side trained in the nominal model (``full_projected`` of the simulation),
  written on the device (the hybrid of JMLR 2015);
* ``time-shuffled`` — the same values with the virtual nodes permuted (the value distribution kept, the order
  lost);
* ``calibrated_twin`` — ``hardware_sim.baselines.digital_tuned(kind="calibrated")``: the twin calibrated on
  the device, then the input side trained in it with the datasheet's detection noise;
* ``physical_backprop`` — the input side trained on the device itself, the backward pass through the device
  (``train_on_device(mode="physical_backprop")``).

Each is scored on the device with its readout re-fitted by ridge on the *measured* training states; the
simulation column scores the first three in the nominal model.  Device calls spent before the test (the
calibration, the training and the readout's measurement) are recorded.

Statistics (``experiments.statistics``): per cell, the median test error over seeds with a 95 % bootstrap
interval and, against a reference (the random-mask reservoir at scale; the strongest digital method,
``digital+readout`` or ``calibrated_twin``, on a device), the win fraction and the median paired ratio.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from experiments import baselines, metrics, tasks
from experiments.results import open_run, pyplot, read_rows, save_figure, write_rows
from experiments.search import grid_search, ridge_validation_score
from experiments.statistics import markdown_table, median_interval, paired_values, summarise_cell
from experiments.sweep import run_sweep
from hardware_sim import wrap_device
from hardware_sim.baselines import TwinNoise, digital_tuned
from hardware_sim.device import profile_options
from hardware_sim.training import train_on_device
from readout import Ridge, one_hot, pool_states
from readout.projection import n_held_out
from reservoir import delay_reservoir, run, split_trainable
from reservoir.trainable import merge_trainable
from reservoir.validation import POSITIVE_INT, check_scalar

DESCRIPTION = ("trained input side vs random mask: Japanese vowels and MNIST-1D at N = 100-200 with the no-device "
               "baselines; NARMA10 and digits on knob-mismatch and benchtop devices (calibrated twin, physical "
               "backprop)")
COLUMNS = ("part", "task", "method", "platform", "n_units", "seed", "metric", "value", "device_calls")
TRAINED = ("mask", "bias_mask", "input_gain", "feedback_gain", "phase")
ALPHAS = tuple(10.0 ** np.arange(-8, 1))
PROJECTED_ALPHA = 1e-4  # per row, of the loss with the readout projected out

# ----------------------------------------------------------------------------------------- part 1: at scale
# Gain grids around the benchmarks' choices for these tasks (``experiments.benchmarks``); batch sizes leave
# several rows per readout weight in every batch (the projected loss solves a ridge problem on each batch).
SCALE = {
    "japanese_vowels": dict(n_units=100, gains={"feedback_gain": [0.5, 0.9], "input_gain": [0.1, 0.3, 1.0]},
                            training=dict(n_epochs=60, batch_size=216)),
    "mnist1d": dict(n_units=200, gains={"feedback_gain": [0.5, 0.8], "input_gain": [0.3, 1.0]},
                    training=dict(n_epochs=15, batch_size=400)),
}
SCALE_LEARNING_RATES = (1e-2, 3e-2)
# --quick: the first (train, validation, test) sequences of each part, fewer epochs, no MLP baseline
QUICK_SCALE = dict(sizes=(400, 100, 300), n_units=50, n_epochs=4, learning_rates=(1e-2,))

# ----------------------------------------------------------------------------------------- part 2: devices
DEVICE_TASKS = ("narma10", "digits")
DEVICE_UNITS = 50
GAIN_GRID = {"input_gain": [0.2, 0.5, 1.0], "feedback_gain": [0.5, 0.8, 0.95]}
PROFILES = {"knob_mismatch": {"snr_db": 30.0}, "benchtop": {}}  # overrides of hardware_sim's profiles
DETECTION_SNR_DB = {"knob_mismatch": 30.0, "benchtop": 40.0}  # the datasheet value the calibrated twin knows
# NARMA10's learning rate: of {1e-2, 3e-2}, the one with the lower held-out score in simulation on seed 0 (0.017
# against 0.131 after 40 epochs; at 1e-2 the score had barely left the random mask's).
DEVICE_TRAINING = {"narma10": dict(learning_rate=3e-2, n_epochs=30, batch_size=4, validation_fraction=0.2),
                   "digits": dict(learning_rate=1e-2, n_epochs=12, batch_size=100, validation_fraction=0.2)}
CALIBRATION = dict(n_steps=1000, n_repeats=2)
CALIBRATION_PROBE = 256  # at most this many training sequences probe the device for the calibration
CHUNK, CHUNK_WASHOUT = 200, 30  # NARMA10 trains on chunks of the series, each restarting from rest
QUICK_DEVICE = dict(narma10=dict(n_train=1000, n_validation=400, n_test=600), digits=(320, 80, 200), n_epochs=2,
                    calibration_steps=100)
DEVICE_METHODS = ("reservoir", "time-shuffled", "digital+readout", "calibrated_twin", "physical_backprop")
DIGITAL_METHODS = ("digital+readout", "calibrated_twin")
SIMULATION_METHODS = ("reservoir", "time-shuffled", "full_projected")


# ------------------------------------------------------------------------------------------------ helpers


def truncated(split: tasks.TaskData, sizes: tuple[int, int, int]) -> tasks.TaskData:
    """A classification split keeping ``sizes`` evenly spaced sequences of train, validation and test (quick
    runs and tests; evenly spaced, because a part may be sorted by class, as Japanese vowels' speakers are)."""
    def subset(part: tasks.Part, size: int) -> tasks.Part:
        keep = np.unique(np.round(np.linspace(0, len(part.targets) - 1, min(size, len(part.targets)))).astype(int))
        return tasks.Part(*(None if field is None else field[keep] for field in part))

    return dataclasses.replace(split, train=subset(split.train, sizes[0]),
                               validation=subset(split.validation, sizes[1]), test=subset(split.test, sizes[2]))


def sequence_inputs(part: tasks.Part) -> np.ndarray:
    """(B, T, D) inputs of a classification part, every sequence spanning all T steps: a shorter one is
    resampled over its own duration (``baselines.raw_features``), not zero-padded."""
    if part.lengths is None or np.all(part.lengths == part.inputs.shape[1]):
        return np.asarray(part.inputs, np.float64)
    return baselines.raw_features(part).reshape(part.inputs.shape)


def mean_states(params: Any, inputs: np.ndarray) -> np.ndarray:
    """Each sequence's time-averaged states (B, N): the features of every classification readout here."""
    return pool_states(np.asarray(run(params, inputs), np.float64), "mean")


def projected_training(device: Any, inputs: np.ndarray, targets: np.ndarray, *, mode: str, washout: int,
                       pool: bool, seed: int, **options: Any):
    """``train_on_device`` with the readout projected out of the loss (``readout="ridge"``), on ``TRAINED``."""
    return train_on_device(device, inputs, targets, mode=mode, names=TRAINED, washout=washout,
                           alpha=PROJECTED_ALPHA, pool=pool, readout="ridge", seed=seed, **options)


def _row(base: dict[str, Any], method: str, value: float, **extra: Any) -> dict[str, Any]:
    return dict(base, method=method, value=float(value), **extra)


# ------------------------------------------------------------------------------------- part 1: at scale


def scale_unit(task: str, seed: int, quick: bool) -> list[dict]:
    """Part 1 for one task and seed: no-device baselines, the random-mask reservoir and the trained input side,
    every hyperparameter chosen on the validation part, the test part read once per method."""
    setting = SCALE[task]
    split = tasks.load_task(task, seed)
    n_units, n_epochs, learning_rates = setting["n_units"], setting["training"]["n_epochs"], SCALE_LEARNING_RATES
    if quick:
        split = truncated(split, QUICK_SCALE["sizes"])
        n_units, n_epochs, learning_rates = QUICK_SCALE["n_units"], QUICK_SCALE["n_epochs"], \
            QUICK_SCALE["learning_rates"]
    parts = (split.train, split.validation, split.test)
    inputs = [sequence_inputs(part) for part in parts]
    base = dict(part="scale", task=task, platform="simulation", n_units=n_units, seed=seed, metric="error_rate",
                n_test=len(split.test.targets))

    def features(params: Any) -> baselines.Features:
        return baselines.Features(*(mean_states(params, x) for x in inputs))

    def reservoir(**gains: float) -> Any:
        return delay_reservoir(n_units, inputs[0].shape[-1], model="sine", seed=seed, **gains)

    def gain_score(**gains: float) -> tuple[float, float]:
        result = baselines.ridge_readout(split, features(reservoir(**gains)), ALPHAS)
        return result.validation, result.hyperparameters["alpha"]

    search = grid_search(gain_score, setting["gains"])
    params = reservoir(**search.config)
    random_mask = baselines.ridge_readout(split, features(params), ALPHAS)
    # The trained input side: fitted on the training part, early-stopped on the validation part (the last
    # n_validation sequences are held out by validation_fraction), the learning rate chosen by that score.
    fit_inputs = np.concatenate(inputs[:2])
    fit_targets = one_hot(np.concatenate([split.train.targets, split.validation.targets]), split.n_classes)
    fraction = len(inputs[1]) / len(fit_inputs)
    batch_size = min(setting["training"]["batch_size"], len(inputs[0]))
    runs = []
    for learning_rate in learning_rates:
        result = projected_training(wrap_device(params, seed=seed), fit_inputs, fit_targets, mode="digital",
                                    washout=0, pool=True, seed=seed, learning_rate=learning_rate,
                                    n_epochs=n_epochs, batch_size=batch_size, validation_fraction=fraction)
        scores = result.history["initial_validation"] + result.history["validation"]
        runs.append((min(scores), learning_rate, scores, result.params["input_side"]))
    best_score, learning_rate, scores, side = min(runs, key=lambda run_: run_[0])
    trained = baselines.ridge_readout(split, features(merge_trainable(params, side)), ALPHAS)
    names = ("ridge_raw", "logistic_raw") if quick else baselines.BASELINES["classification"]
    rows = [_row(base, name, baselines.fit_baseline(name, split).test, platform="none") for name in names]
    rows += [_row(base, "reservoir", random_mask.test, validation=random_mask.validation, **search.config),
             _row(base, "full_projected", trained.test, validation=trained.validation, learning_rate=learning_rate,
                  best_epoch=int(np.argmin(scores)) - 1),
             *[_row(base, "full_projected", score, metric="validation_score", epoch=epoch - 1)
               for epoch, score in enumerate(scores)]]
    return rows


# ------------------------------------------------------------------------------------- part 2: devices


@dataclasses.dataclass(frozen=True)
class DeviceTask:
    """What the device half needs of a task: the training sequences (``inputs``, ``targets``: chunks of the
    series for NARMA10, one-hot labels for digits), how the readout sees them (``washout``, ``pool``), the
    task's no-device split, ``gain_score(**gains) -> (validation error, alpha)`` of a random-mask reservoir, and
    ``score(states_of, alpha)``: the test error given ``states_of(inputs) -> states`` (a model's or a device's)
    with the readout re-fitted by ridge on the training data's states."""

    split: tasks.TaskData
    inputs: np.ndarray
    targets: np.ndarray
    washout: int
    pool: bool
    n_inputs: int
    gain_score: Callable[..., tuple[float, float]]
    score: Callable[[Callable[[np.ndarray], Any], float], float]


def narma10_device_task(seed: int, quick: bool) -> DeviceTask:
    """NARMA10 (200 washout, 3000 train + 1000 validation, 2000 test steps): the gains and alpha chosen on the
    validation steps; training on 200-step chunks of the fitted series; the test error is the NMSE of a ridge
    readout (the chosen alpha) fitted on the fitted series' states, the test steps continuing the same run."""
    split = tasks.load_task("narma10", seed, **(QUICK_DEVICE["narma10"] if quick else {}))
    fit, series = split.fit_part(), split.series_inputs()
    n_fit = len(fit.inputs)

    def gain_score(**gains: float) -> tuple[float, float]:
        params = delay_reservoir(DEVICE_UNITS, 1, model="sine", seed=seed, **gains)
        return ridge_validation_score(params, fit.inputs, fit.targets, washout=split.washout,
                                      n_validation=len(split.validation.inputs), alphas=ALPHAS,
                                      readout_sees_input=False)

    def score(states_of: Callable[[np.ndarray], Any], alpha: float) -> float:
        states = np.asarray(states_of(series), np.float64)
        readout = Ridge(alpha).fit(states[:n_fit], fit.targets, washout=split.washout)
        return metrics.nmse(split.test.targets, readout.predict(states[n_fit:]))

    n_chunks = n_fit // CHUNK
    inputs = fit.inputs[: n_chunks * CHUNK].reshape(n_chunks, CHUNK, 1)
    targets = fit.targets[: n_chunks * CHUNK].reshape(n_chunks, CHUNK, 1)
    return DeviceTask(split, inputs, targets, CHUNK_WASHOUT, False, 1, gain_score, score)


def digits_device_task(seed: int, quick: bool) -> DeviceTask:
    """The 8×8 digits read row by row: the gains and alpha chosen on the validation part; training on train +
    validation (one-hot targets); the test error of a ridge readout (the chosen alpha) on the time-averaged
    states of train + validation."""
    split = tasks.digits_task(seed)
    if quick:
        split = truncated(split, QUICK_DEVICE["digits"])
    fit = split.fit_part()

    def gain_score(**gains: float) -> tuple[float, float]:
        params = delay_reservoir(DEVICE_UNITS, 8, model="sine", seed=seed, **gains)
        result = baselines.ridge_readout(split, baselines.Features(
            *(mean_states(params, part.inputs) for part in (split.train, split.validation, split.test))), ALPHAS)
        return result.validation, result.hyperparameters["alpha"]

    def score(states_of: Callable[[np.ndarray], Any], alpha: float) -> float:
        train, test = (pool_states(np.asarray(states_of(x), np.float64), "mean")
                       for x in (fit.inputs, split.test.inputs))
        readout = Ridge(alpha).fit(train, one_hot(fit.targets, 10))
        return metrics.error_rate(split.test.targets, readout.predict(test).argmax(-1))

    return DeviceTask(split, fit.inputs, one_hot(fit.targets, 10), 0, True, 8, gain_score, score)


DEVICE_TASK_BUILDERS = {"narma10": narma10_device_task, "digits": digits_device_task}


def device_unit(task: str, seed: int, quick: bool) -> list[dict]:
    """Part 2 for one task and device seed: the simulation column, the no-device baselines, and every method of
    ``DEVICE_METHODS`` on a fresh device of each profile (``PROFILES``)."""
    data = DEVICE_TASK_BUILDERS[task](seed, quick)
    search = grid_search(data.gain_score, GAIN_GRID)
    params = delay_reservoir(DEVICE_UNITS, data.n_inputs, model="sine", seed=seed, **search.config)
    options = dict(DEVICE_TRAINING[task], **({"n_epochs": QUICK_DEVICE["n_epochs"]} if quick else {}))
    n_fit = len(data.inputs) - n_held_out(options["validation_fraction"], len(data.inputs))
    options["batch_size"] = min(options["batch_size"], n_fit)  # tiny quick runs
    common = dict(washout=data.washout, pool=data.pool, seed=seed)
    simulated = projected_training(wrap_device(params, seed=seed), data.inputs, data.targets, mode="digital",
                                   **common, **options)
    trained = simulated.params["input_side"]
    order = np.random.default_rng(seed).permutation(DEVICE_UNITS)
    sides = {"reservoir": split_trainable(params, TRAINED)[0], "digital+readout": trained,
             "time-shuffled": dict(trained, mask=trained["mask"][order], bias_mask=trained["bias_mask"][order])}
    metric = "nmse" if task == "narma10" else "error_rate"
    base = dict(part="device", task=task, n_units=DEVICE_UNITS, seed=seed, metric=metric,
                **({} if task == "narma10" else {"n_test": len(data.split.test.targets)}))

    def measured(method: str, platform: str, states_of: Callable[[np.ndarray], Any], **extra: Any) -> dict:
        return _row(base, method, data.score(states_of, search.alpha), platform=platform, **extra)

    rows = [measured("full_projected" if name == "digital+readout" else name, "simulation",
                     functools.partial(run, merge_trainable(params, side)),
                     **(search.config if name == "reservoir" else {}))
            for name, side in sides.items()]
    names = baselines.BASELINES[data.split.kind][: 2 if quick else None]
    rows += [_row(base, name, baselines.fit_baseline(name, data.split).test, platform="none") for name in names]
    calibration = dict(CALIBRATION, **({"n_steps": QUICK_DEVICE["calibration_steps"]} if quick else {}))
    for profile, overrides in PROFILES.items():
        settings = profile_options(profile, "sine", seed, None, **overrides)
        for name, side in sides.items():
            device = wrap_device(params, seed=seed, **settings)
            rows.append(measured(name, profile, functools.partial(device.measure, input_side=side),
                                 device_calls=1))
        device = wrap_device(params, seed=seed, **settings)
        result = digital_tuned(device, data.inputs, data.targets, kind="calibrated", names=TRAINED,
                               probe=data.inputs[:CALIBRATION_PROBE],
                               noise=TwinNoise(snr_db=DETECTION_SNR_DB[profile]), calibration_options=calibration,
                               space={"learning_rate": (options["learning_rate"],)},
                               validation_fraction=options["validation_fraction"], alpha=PROJECTED_ALPHA,
                               n_epochs=options["n_epochs"], batch_size=options["batch_size"], **common)
        rows.append(measured("calibrated_twin", profile,
                             functools.partial(device.measure, input_side=result.params["input_side"]),
                             device_calls=result.n_calls))
        device = wrap_device(params, seed=seed, **settings)
        result = projected_training(device, data.inputs, data.targets, mode="physical_backprop", **common,
                                    **options)
        rows.append(measured("physical_backprop", profile,
                             functools.partial(device.measure, input_side=result.params["input_side"]),
                             device_calls=result.n_calls))
    return rows


# ------------------------------------------------------------------------------------------------ the run


def run_unit(unit: dict[str, Any]) -> list[dict]:
    """One part × task × seed (a sweep unit, run in this process or on a Dask worker).

    ``unit["x64"]`` carries the caller's JAX precision, so a worker process computes what this one would.
    """
    jax.config.update("jax_enable_x64", unit["x64"])
    if unit["part"] == "scale":
        return scale_unit(unit["task"], unit["seed"], unit["quick"])
    return device_unit(unit["task"], unit["seed"], unit["quick"])


def run_experiment(out: Path | str = "results", quick: bool = False, seeds: int | None = None,
                   scheduler: str | None = None, fresh: bool = False) -> Path:
    """Both parts over ``seeds`` seeds (default 5, quick 2; at least 2, for an interval); writes
    ``results.csv``, ``summary.md`` and the figures, prints the summary."""
    n_seeds = check_scalar("seeds", seeds if seeds is not None else (2 if quick else 5), POSITIVE_INT)
    if n_seeds < 2:
        raise ValueError(f"seeds must be at least 2 (medians come with intervals over seeds), got {n_seeds}")
    seed_list = list(range(n_seeds))
    x64 = bool(jax.config.read("jax_enable_x64"))
    config = {"experiment": "embodied_learning", "quick": quick, "seeds": seed_list, "x64": x64,
              "trained": TRAINED, "alphas": ALPHAS, "projected_alpha": PROJECTED_ALPHA, "scale": SCALE,
              "scale_learning_rates": SCALE_LEARNING_RATES, "device_tasks": DEVICE_TASKS,
              "device_units": DEVICE_UNITS, "gain_grid": GAIN_GRID, "profiles": PROFILES,
              "detection_snr_db": DETECTION_SNR_DB, "device_training": DEVICE_TRAINING,
              "calibration": CALIBRATION,
              "calibration_probe": CALIBRATION_PROBE, "chunk": [CHUNK, CHUNK_WASHOUT],
              **({"quick_scale": QUICK_SCALE, "quick_device": QUICK_DEVICE} if quick else {})}
    directory = open_run(out, "embodied_learning", config, fresh=fresh)
    # seed by seed: an interrupted run (it resumes) holds whole seeds
    units = [dict(part=part, task=task, seed=seed, quick=quick, x64=x64) for seed in seed_list
             for part, task_list in (("scale", tuple(SCALE)), ("device", DEVICE_TASKS)) for task in task_list]
    results = run_sweep(run_unit, units, directory, scheduler=scheduler, desc="embodied learning")
    rows = [row for unit_rows in results for row in unit_rows]
    write_rows(directory / "results.csv", rows, COLUMNS)
    text = summary(rows)
    (directory / "summary.md").write_text(text + "\n")
    print(text)
    plot(directory)
    return directory


# ---------------------------------------------------------------------------------------------- reporting


def _cell(rows: list[dict], part: str, task: str, platforms: tuple[str, ...], methods: tuple[str, ...]
          ) -> dict[str, np.ndarray]:
    """{method: test errors over seeds} of one cell, every method on the same seeds, in ``methods``' order."""
    chosen = [r for r in rows if (r["part"], r["task"]) == (part, task) and r["metric"] != "validation_score"
              and r["platform"] in platforms and r["method"] in methods]
    values = paired_values(chosen) if chosen else {}
    return {name: values[name] for name in methods if name in values}


def _floor(rows: list[dict], part: str, task: str) -> float | None:
    """The test set's resolution for an error rate (one error in ``n_test``), None for NMSE."""
    sizes = [r["n_test"] for r in rows
             if (r["part"], r["task"]) == (part, task) and r.get("n_test") not in (None, "")]
    return 1.0 / min(sizes) if sizes else None


def cells(rows: list[dict]) -> dict[tuple[str, str], list]:
    """Every cell's summaries: at scale (reference: the random-mask reservoir), the simulation column of the
    device tasks (reference: the random mask) and each device profile (reference: the strongest digital
    method).  The no-device baselines sit in every cell."""
    out = {}
    for task in SCALE:
        none = tuple(baselines.BASELINES["classification"])
        errors = _cell(rows, "scale", task, ("none", "simulation"), (*none, "reservoir", "full_projected"))
        if len(errors) > 1:
            out[(task, "simulation")] = summarise_cell(errors, ["reservoir"], floor=_floor(rows, "scale", task))
    for task in DEVICE_TASKS:
        kind = "regression" if task == "narma10" else "classification"
        none = tuple(baselines.BASELINES[kind])
        errors = _cell(rows, "device", task, ("none", "simulation"), (*none, *SIMULATION_METHODS))
        if "reservoir" in errors:
            out[(task, "simulation")] = summarise_cell(errors, ["reservoir"], floor=_floor(rows, "device", task))
        for profile in PROFILES:
            errors = _cell(rows, "device", task, ("none", profile), (*none, *DEVICE_METHODS))
            if all(name in errors for name in DIGITAL_METHODS):
                out[(task, profile)] = summarise_cell(errors, list(DIGITAL_METHODS),
                                                          floor=_floor(rows, "device", task))
    return out


def summary(rows: list[dict]) -> str:
    """Markdown: the tables of every cell, then the device calls each device method spent (median)."""
    table = markdown_table(cells(rows), ("task", "platform"))
    n_seeds = len({r["seed"] for r in rows})
    calls = []
    for task in DEVICE_TASKS:
        for method in DEVICE_METHODS:
            spent = [r["device_calls"] for r in rows if (r["part"], r["task"], r["method"]) == ("device", task,
                     method) and r["platform"] in PROFILES and r.get("device_calls") not in (None, "")]
            if spent:
                calls.append(f"{task} {method}: {np.median(spent):.0f}")
    return (f"Test error (NMSE for NARMA10, error rate otherwise): median over {n_seeds} seeds with a 95 % "
            f"bootstrap interval; wins and paired ratios against the reference of each cell (the random mask "
            f"in simulation, the strongest of {' and '.join(DIGITAL_METHODS)} on a device; platform 'none' rows "
            f"are the no-device baselines).\n\n{table}\n\nDevice calls before the test (median): "
            + "; ".join(calls))


_LABELS = {"ridge_raw": "ridge\n(raw)", "logistic_raw": "logistic\n(raw)", "mlp_raw": "MLP\n(raw)",
           "linear_taps": "linear\ntaps", "volterra_taps": "Volterra\ntaps", "reservoir": "random\nmask",
           "full_projected": "trained\ninput side", "time-shuffled": "time-\nshuffled",
           "digital+readout": "digital\n+readout", "calibrated_twin": "calibrated\ntwin",
           "physical_backprop": "physical\nbackprop"}


def _bars(ax, errors: dict[str, np.ndarray], colors: list[str]) -> None:
    """Medians with their 95 % intervals, and each seed as a dot."""
    estimates = [median_interval(v) for v in errors.values()]
    medians = [e.value for e in estimates]
    spans = np.array([[e.value - e.low for e in estimates], [e.high - e.value for e in estimates]])
    ax.bar(range(len(errors)), medians, yerr=spans, capsize=3, color=colors)
    for i, values in enumerate(errors.values()):
        ax.plot([i] * len(values), values, "k.", ms=3)
    ax.set_xticks(range(len(errors)), [_LABELS.get(name, name) for name in errors], fontsize=7)


def plot(directory: Path | str) -> list[Path]:
    """Redraw the experiment's figures from ``results.csv``."""
    plt = pyplot()
    directory = Path(directory)
    rows = read_rows(directory / "results.csv")
    paths = []
    scale_tasks = [t for t in SCALE if any(r["part"] == "scale" and r["task"] == t for r in rows)]
    if scale_tasks:
        fig, axes = plt.subplots(1, len(scale_tasks), figsize=(4.4 * len(scale_tasks), 3.4), squeeze=False)
        for ax, task in zip(axes[0], scale_tasks, strict=True):
            errors = _cell(rows, "scale", task, ("none", "simulation"),
                           (*baselines.BASELINES["classification"], "reservoir", "full_projected"))
            _bars(ax, errors, ["0.75"] * (len(errors) - 2) + ["0.45", "C4"])
            n_units = next(r["n_units"] for r in rows if r["part"] == "scale" and r["task"] == task
                           and r["method"] == "reservoir")
            ax.set(title=f"{task.replace('_', ' ')} (delay reservoir N = {n_units})", ylabel="test error rate")
        fig.suptitle("Trained vs random input side, no-device baselines in grey (median, 95 % interval)",
                     fontsize=9)
        fig.tight_layout()
        paths.append(save_figure(fig, directory, "full_vs_reservoir"))
    device_tasks = [t for t in DEVICE_TASKS if any(r["part"] == "device" and r["task"] == t for r in rows)]
    if device_tasks:
        platforms = ("simulation", *PROFILES)
        fig, axes = plt.subplots(len(device_tasks), len(platforms), figsize=(4.0 * len(platforms),
                                 3.3 * len(device_tasks)), squeeze=False)
        for row_axes, task in zip(axes, device_tasks, strict=True):
            for ax, platform in zip(row_axes, platforms, strict=True):
                methods = SIMULATION_METHODS if platform == "simulation" else DEVICE_METHODS
                errors = _cell(rows, "device", task, (platform,), methods)
                colors = ["0.45", "0.65", "C0", "C2", "C3"] if platform != "simulation" else ["0.45", "0.65", "C4"]
                _bars(ax, errors, colors[:len(errors)])
                ax.set(title=f"{task}: {platform}", ylabel="test NMSE" if task == "narma10" else "test error rate")
        fig.suptitle(f"Sine delay reservoir N = {DEVICE_UNITS}: in simulation and on devices (median, 95 % "
                     f"interval; readout re-fitted on each platform)", fontsize=9)
        fig.tight_layout()
        paths.append(save_figure(fig, directory, "masks_simulation_vs_device"))
    return paths
