"""What the simulated devices are: states under each profile, the physical gradient's fidelity against in-loop
noise, the structural gap a calibrated twin cannot remove, and what the in-loop physics costs to simulate.

Four parts, per delay model (``"sine"``, ``"sin2_lowpass"``):

1. *states*: one input sequence through the nominal model and through a device of each profile (``ideal``,
   ``knob_mismatch``, ``benchtop``): the first periods of a few virtual nodes.
2. *gradient*: the physical backward pass (``Device.adjoint``) against the exact gradient of the same true device
   with its noise off (``Device.exact_gradient``, simulation only), as a cosine similarity, for in-loop noise
   levels given as SNR at a node RMS of 0.3, per profile, over several devices.
3. *calibration*: ``calibrate_twin`` on each profile's devices; the held-out state NMSE of the nominal and the
   calibrated twin, the noise floor and the structural gap (what the twin's model class cannot express).
4. *speed*: one measurement of N = 100 nodes and 10⁴ input samples on the benchtop and the ideal profile, timed
   in alternating rounds in this process (median of the rounds' ratios; compile excluded).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.results import open_run, pyplot, read_rows, save_figure, write_rows
from experiments.statistics import median_interval
from experiments.sweep import require_inprocess, run_sweep
from hardware_sim import calibrate_twin, delay_device
from hardware_sim.device import PROFILES
from hardware_sim.loop import noise_floor_for_snr
from reservoir import run
from reservoir.trainable import split_trainable

DESCRIPTION = "device profiles: states, physical-gradient fidelity vs in-loop noise, calibration gap, cost"
COLUMNS = ("part", "model", "profile", "seed", "metric", "value")
MODELS = ("sine", "sin2_lowpass")
NAMES = ("mask", "bias_mask", "input_gain", "feedback_gain", "phase")
SNRS_DB = (None, 60.0, 40.0, 30.0, 20.0, 10.0)  # None: no in-loop noise
SIGNAL_RMS = 0.3


def config(quick: bool, n_seeds: int) -> dict[str, Any]:
    """The run's settings (recorded in ``config.json``): profiles, models, seeds, SNR levels, sizes; smaller
    when ``quick``."""
    return {"experiment": "device_physics", "profiles": list(PROFILES), "models": list(MODELS),
            "seeds": list(range(n_seeds)), "snrs_db": list(SNRS_DB), "signal_rms": SIGNAL_RMS,
            "n_units": 20 if quick else 50, "gradient_shape": [2, 40] if quick else [4, 200],
            "probe_shape": [4, 40] if quick else [6, 150], "calibration_steps": 100 if quick else 1000,
            "speed": {"n_units": 20 if quick else 100, "n_samples": 500 if quick else 10_000,
                      "rounds": 2 if quick else 7}}


def run_experiment(out: Path | str = "results", quick: bool = False, seeds: int | None = None,
                   scheduler: str | None = None, fresh: bool = False) -> Path:
    """The four parts for both delay models over ``seeds`` devices per profile (8; 2 when ``quick``), in this
    process (the speed part times measurements); ``results.csv`` and the figure under ``out``, summary printed."""
    require_inprocess(scheduler, "device_physics", "it times measurements, which must run in this process")
    jax.config.update("jax_enable_x64", True)  # the gradient comparison runs in float64; speed stays float32
    settings = config(quick, seeds or (2 if quick else 8))
    directory = open_run(out, "device_physics", settings, fresh=fresh)
    units = [dict(part="states", model=m) for m in MODELS]
    units += [dict(part=part, model=m, profile=p, seed=s) for part in ("gradient", "calibration")
              for m in MODELS for p in PROFILES for s in settings["seeds"]]
    units += [dict(part="speed", model=m) for m in MODELS]
    units = [dict(unit, settings=settings) for unit in units]
    rows = [row for unit_rows in run_sweep(run_unit, units, directory, desc="device physics")
            for row in unit_rows]
    write_rows(directory / "results.csv", rows, COLUMNS)
    print(summary(rows))
    plot(directory)
    return directory


def run_unit(unit: dict[str, Any]) -> list[dict[str, Any]]:
    """One unit of the sweep: the rows of its part (states, gradient, calibration or speed)."""
    return {"states": states_rows, "gradient": gradient_rows, "calibration": calibration_rows,
            "speed": speed_rows}[unit["part"]](unit, unit["settings"])


def states_rows(unit, settings) -> list[dict]:
    """Part 1: the states of the first 20 nodes over 30 input periods, nominal model and one device per
    profile, all driven by the same input."""
    model, n = unit["model"], settings["n_units"]
    u = np.random.default_rng(0).uniform(-1, 1, (30, 1))
    nominal = delay_device(n, seed=0, model=model, profile="ideal").nominal_twin()
    traces = {"nominal": np.asarray(run(nominal, u))}
    for profile in PROFILES:
        traces[profile] = np.asarray(delay_device(n, seed=0, model=model, profile=profile).measure(u))
    return [dict(part="states", model=model, profile=name, seed=0, metric="state", period=t, node=i,
                 value=float(trace[t, i]))
            for name, trace in traces.items() for t in range(trace.shape[0]) for i in range(min(n, 20))]


def _noise(snr_db: float | None) -> dict[str, float]:
    """In-loop noise options replacing the profile's own: none at all, or a thermal floor at ``snr_db``."""
    floor = 0.0 if snr_db is None else noise_floor_for_snr(snr_db, SIGNAL_RMS)
    return {"noise_floor": floor, "rin": 0.0, "shot": 0.0}


def gradient_rows(unit, settings) -> list[dict]:
    """Part 2: cos(physical, exact) = a·b / (|a| |b|) between the physical backward pass (``Device.adjoint``)
    and the noise-free exact gradient of the same device, at each in-loop SNR, for one device."""
    model, profile, seed = unit["model"], unit["profile"], unit["seed"]
    batch, steps = settings["gradient_shape"]
    rng = np.random.default_rng(100 + seed)
    inputs, cotangent = rng.uniform(-1, 1, (batch, steps, 1)), rng.normal(size=(batch, steps, settings["n_units"]))
    rows = []
    for snr_db in settings["snrs_db"]:
        device = delay_device(settings["n_units"], seed=seed, model=model, profile=profile, **_noise(snr_db),
                              reservoir_options={"dtype": jnp.float64})
        side = {k: np.asarray(v) for k, v in split_trainable(device.nominal_twin(), NAMES)[0].items()}
        states = device.measure(inputs, side)
        exact = device.exact_gradient(inputs, side, cotangent)  # before the passes: the drifts at the forward's
        physical = device.adjoint(inputs, side, cotangent, states=states)
        flat = lambda g: np.concatenate([np.ravel(g[k]) for k in NAMES])
        a, b = flat(physical), flat(exact)
        rows.append(dict(part="gradient", model=model, profile=profile, seed=seed, snr_db=snr_db,
                         metric="cosine", value=float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))))
    return rows


def calibration_rows(unit, settings) -> list[dict]:
    """Part 3: ``calibrate_twin`` on one device; the held-out state NMSE of the nominal and the calibrated
    twin, the noise floor and the structural gap."""
    model, profile, seed = unit["model"], unit["profile"], unit["seed"]
    device = delay_device(settings["n_units"], seed=seed, model=model, profile=profile)
    probe = np.random.default_rng(200 + seed).uniform(-1, 1, (*settings["probe_shape"], 1))
    result = calibrate_twin(device, probe, n_repeats=2, n_steps=settings["calibration_steps"])
    return [dict(part="calibration", model=model, profile=profile, seed=seed, metric=f"state_nmse_{name}",
                 value=value) for name, value in result.state_nmse.items()]


def speed_rows(unit, settings) -> list[dict]:
    """Part 4: seconds per measurement on the ideal and the benchtop profile, timed in alternating rounds after
    compilation, and the median of the rounds' ratios."""
    model, speed = unit["model"], settings["speed"]
    u = np.random.default_rng(0).uniform(-1, 1, (speed["n_samples"], 1))
    devices = {p: delay_device(speed["n_units"], seed=0, model=model, profile=p) for p in ("ideal", "benchtop")}
    for device in devices.values():
        np.asarray(device.measure(u))  # compile
    seconds = {p: [] for p in devices}
    for _ in range(speed["rounds"]):
        for profile, device in devices.items():
            start = time.perf_counter()
            np.asarray(device.measure(u))
            seconds[profile].append(time.perf_counter() - start)
    ratios = np.array(seconds["benchtop"]) / np.array(seconds["ideal"])
    base = dict(part="speed", model=model, profile="benchtop", seed=0)
    return [dict(base, metric="seconds_ideal", value=float(np.median(seconds["ideal"]))),
            dict(base, metric="seconds_benchtop", value=float(np.median(seconds["benchtop"]))),
            dict(base, metric="time_ratio_benchtop_over_ideal", value=float(np.median(ratios)))]


def _same_snr(stored: Any, snr: float | None) -> bool:
    """A row's SNR against a level; "no in-loop noise" is None in memory and an empty field in results.csv."""
    missing = stored is None or stored == "" or (isinstance(stored, float) and np.isnan(stored))
    return missing if snr is None else stored == snr


def _median_interval(values: list[float]) -> str:
    """``median [95 % bootstrap interval]`` over the devices (the median alone for fewer than two)."""
    return f"{np.median(values):.3g}" if len(values) < 2 else median_interval(values).format()


def summary(rows: list[dict]) -> str:
    """The printed summary: gradient cosine per model, profile and SNR, the calibration NMSEs, the speed ratio,
    each a median [95 % bootstrap interval] over devices."""
    lines = ["Physical gradient vs exact (cosine; median [95 % bootstrap interval] over devices)"]
    for model in MODELS:
        for profile in PROFILES:
            cells = []
            for snr in SNRS_DB:
                values = [r["value"] for r in rows if r["part"] == "gradient" and r["model"] == model
                          and r["profile"] == profile and _same_snr(r.get("snr_db"), snr)]
                cells.append(f"{'none' if snr is None else f'{snr:g} dB'}: {_median_interval(values)}")
            lines.append(f"  {model:13s} {profile:13s} " + "; ".join(cells))
    lines.append("Calibrated twin, held-out state NMSE (median [95 % interval])")
    for model in MODELS:
        for profile in PROFILES:
            def get(metric, model=model, profile=profile):
                return [r["value"] for r in rows if r["part"] == "calibration" and r["model"] == model
                        and r["profile"] == profile and r["metric"] == metric]

            lines.append(f"  {model:13s} {profile:13s} nominal {_median_interval(get('state_nmse_nominal'))}  "
                         f"calibrated {_median_interval(get('state_nmse_calibrated'))}  noise floor "
                         f"{_median_interval(get('state_nmse_noise_floor'))}  structural gap "
                         f"{_median_interval(get('state_nmse_structural_gap'))}")
    for r in rows:
        if r["part"] == "speed" and r["metric"] == "time_ratio_benchtop_over_ideal":
            lines.append(f"Speed ({r['model']}): one benchtop measurement costs {r['value']:.2f}x the ideal one")
    return "\n".join(lines)


def plot(directory: Path | str) -> list[Path]:
    """Redraw the figure from ``results.csv``, one row per model: a node's states per profile, the gradient
    cosine against SNR, and the calibration NMSEs."""
    plt = pyplot()
    directory = Path(directory)
    rows = read_rows(directory / "results.csv")
    models = [m for m in MODELS if any(r["model"] == m and r["part"] == "states" for r in rows)]
    fig, axes = plt.subplots(len(models), 3, figsize=(14, 3.5 * len(models)), squeeze=False)
    for row_axes, model in zip(axes, models, strict=True):
        traces = [r for r in rows if r["part"] == "states" and r["model"] == model]
        nodes = sorted({r["node"] for r in traces})[:3]
        for j, profile in enumerate(["nominal", *PROFILES]):
            for node in nodes[:1]:
                points = sorted((r["period"], r["value"]) for r in traces if r["profile"] == profile
                                and r["node"] == node)
                row_axes[0].plot(*zip(*points, strict=True), color=f"C{j}", lw=1.2 if j else 2.2,
                                 ls="-" if j else ":", label=profile)
        row_axes[0].set(title=f"{model}: node {nodes[0]} for one input", xlabel="input period n",
                        ylabel="state at the readout tap")
        row_axes[0].legend(fontsize=7)
        for j, profile in enumerate(PROFILES):
            x, med, lo, hi = [], [], [], []
            for k, snr in enumerate(SNRS_DB):
                values = np.array([r["value"] for r in rows if r["part"] == "gradient" and r["model"] == model
                                   and r["profile"] == profile and _same_snr(r.get("snr_db"), snr)])
                if values.size:
                    x.append(k)
                    med.append(np.median(values))
                    lo.append(np.min(values))
                    hi.append(np.max(values))
            row_axes[1].plot(x, med, "o-", color=f"C{j + 1}", label=profile)
            row_axes[1].fill_between(x, lo, hi, color=f"C{j + 1}", alpha=0.15)
        row_axes[1].set_xticks(range(len(SNRS_DB)), ["none" if s is None else f"{s:g}" for s in SNRS_DB])
        row_axes[1].set(title=f"{model}: physical vs exact gradient",
                        xlabel="in-loop SNR (dB) at node RMS 0.3, replacing the profile's own in-loop noise",
                        ylabel="cosine similarity (median, min–max)", ylim=(-0.1, 1.05))
        row_axes[1].legend(fontsize=7)
        metrics = ("state_nmse_nominal", "state_nmse_calibrated", "state_nmse_structural_gap")
        for j, profile in enumerate(PROFILES):
            values = [np.median([r["value"] for r in rows if r["part"] == "calibration" and r["model"] == model
                                 and r["profile"] == profile and r["metric"] == m] or [np.nan]) for m in metrics]
            row_axes[2].bar(np.arange(3) + 0.27 * j, np.maximum(values, 1e-12), width=0.27, color=f"C{j + 1}",
                            label=profile)
        row_axes[2].set_xticks(np.arange(3) + 0.27, ["nominal twin", "calibrated twin", "structural gap"])
        row_axes[2].set(yscale="log", ylabel="held-out state NMSE, median",
                        title=f"{model}: what a twin misses (0 drawn at 1e-12)")
        row_axes[2].legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, directory, "device_physics")]
