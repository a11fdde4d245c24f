"""Every baseline with its hyperparameters chosen on held-out training chunks, on many mismatched devices.

NARMA10 and the 8×8 digits (``hil_vs_digital``'s data, N = 30 sine delay device) at 30 % knob mismatch with
30 dB detection noise: for each of ``n_devices`` devices (device seed = data seed offset as in
``hil_vs_digital``), each method of ``METHODS`` is run on a fresh device of that seed and scored on the test
set measured on it.  Reported per task and method: the median test error over devices with a 95 % percentile
bootstrap interval, and the median device cost (calls and samples spent by calibration, search, training and
the deployed readout's measurement; test evaluation excluded).

The twin's knowledge is the datasheet's: ``TwinNoise(snr_db=30)`` and a mismatch prior of the profile's spread
(30 % relative on the gains, 0.3 absolute on the phase); never the device's hidden draw.

Run (outside the test suite): ``python -m experiments.baselines_study [--quick] [--devices 10] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from experiments.hil_vs_digital import BATCH_SIZE, N_UNITS, task_data, test_errors
from experiments.statistics import median_interval
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
from hardware_sim.training import n_held_out
from reservoir.trainable import split_trainable

MISMATCH, SNR_DB = 0.3, 30.0
NOISE = TwinNoise(snr_db=SNR_DB)  # the datasheet's detection SNR
PRIOR = MismatchPrior(relative=MISMATCH, absolute=MISMATCH)  # the profile's tolerance
METHODS = ("reservoir", "reservoir_tuned", "digital+readout", "digital_noise_aware", "digital_randomized",
           "calibrated_twin", "spsa", "hil", "physical_backprop")
GRADIENT = dict(n_epochs=10)
SPSA_STEPS = 20
CALIBRATION = dict(n_steps=1500, n_repeats=2)
VALIDATION_FRACTION = 0.2
COLUMNS = ("task", "method", "device", "test_error", "test_nmse", "n_calls", "n_samples", "seconds",
           "hyperparameters")


def run_method(method: str, device, data, task: str, seed: int, quick: bool) -> Any:
    """The method's ``MethodResult``-like (params, n_calls, n_samples, hyperparameters) on ``device``."""
    common = dict(washout=data.washout, pool=data.pool, validation_fraction=VALIDATION_FRACTION)
    gradient = dict(GRADIENT, batch_size=BATCH_SIZE[task], seed=seed)
    if quick:
        gradient["n_epochs"] = 3
    u, y = data.u_train, data.y_train
    if method == "reservoir":  # the nominal random mask, alpha chosen on held-out chunks (one call)
        side, _ = split_trainable(device.nominal_twin(), ["mask"])
        readout, alpha, _ = deployed_readout(device, side, u, y, n_held_out(VALIDATION_FRACTION, len(u)),
                                             washout=data.washout, pool=data.pool)
        return {"input_side": side, "readout": readout}, device.n_calls, device.n_samples, {"alpha": alpha}
    if method == "reservoir_tuned":
        result = reservoir_tuned(device, u, y, **common)
    elif method == "spsa":
        result = spsa_tuned(device, u, y, n_steps=3 if quick else SPSA_STEPS, seed=seed, **common)
    elif method in ("hil", "physical_backprop"):
        result = in_situ_tuned(device, u, y, mode=method, **common, **gradient)
    else:
        kind = {"digital+readout": "digital", "digital_noise_aware": "noise_aware",
                "digital_randomized": "randomized", "calibrated_twin": "calibrated"}[method]
        calibration = dict(CALIBRATION, n_steps=200) if quick else CALIBRATION
        result = digital_tuned(device, u, y, kind=kind, noise=NOISE, prior=PRIOR,
                               calibration_options=calibration, **common, **gradient)
    return result.params, result.n_calls, result.n_samples, result.hyperparameters


def run(out: Path, n_devices: int, quick: bool, tasks: tuple[str, ...]) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.csv"
    rows: list[dict[str, Any]] = []
    with threadpool_limits(1, "blas"), open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        for task in tasks:
            for seed in range(n_devices):
                data = task_data(task, seed, quick)
                for method in METHODS:
                    device = delay_device(N_UNITS, data.u_train.shape[-1], seed=seed, mismatch=MISMATCH,
                                          snr_db=SNR_DB)
                    start = time.perf_counter()
                    params, n_calls, n_samples, chosen = run_method(method, device, data, task, seed, quick)
                    seconds = time.perf_counter() - start
                    errors = test_errors(task, device, params, data)
                    row = dict(task=task, method=method, device=seed, **errors, n_calls=n_calls,
                               n_samples=n_samples, seconds=round(seconds, 1),
                               hyperparameters={k: _short(v) for k, v in chosen.items()})
                    writer.writerow(row)
                    file.flush()
                    rows.append(row)
                    print(f"{task} device {seed} {method:20s} error {errors['test_error']:.4g} "
                          f"calls {n_calls} ({seconds:.0f} s)", flush=True)
    return rows


def _short(value: Any) -> Any:
    return float(f"{value:.4g}") if isinstance(value, float) else value


def summary(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'task':8s} {'method':20s} {'test error: median [95% CI]':>34s} {'calls':>7s} {'samples':>9s} "
             f"{'s/device':>8s}"]
    for task in dict.fromkeys(r["task"] for r in rows):
        for method in METHODS:
            chosen = [r for r in rows if r["task"] == task and r["method"] == method]
            if not chosen:
                continue
            error = median_interval([float(r["test_error"]) for r in chosen])
            lines.append(f"{task:8s} {method:20s} {error.value:12.4g} [{error.low:8.4g}, {error.high:8.4g}] "
                         f"{np.median([float(r['n_calls']) for r in chosen]):7.0f} "
                         f"{np.median([float(r['n_samples']) for r in chosen]):9.0f} "
                         f"{np.mean([float(r['seconds']) for r in chosen]):8.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", default="narma10,digits")
    parser.add_argument("--out", default="results/baselines_study")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = run(Path(args.out), args.devices, args.quick, tuple(args.tasks.split(",")))
    text = summary(rows) + f"\n({len(rows)} runs in {time.perf_counter() - start:.0f} s)"
    (Path(args.out) / "summary.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
