"""The device_physics experiment on tiny settings: its rows, its claims on the ideal profile, its figure."""

import pytest

from experiments import device_physics
from experiments.results import write_rows

pytestmark = pytest.mark.x64  # float64 references and tolerances


def test_tiny_run_rows_and_figure(tmp_path):
    settings = dict(device_physics.config(True, 1), n_units=6, gradient_shape=[1, 12], probe_shape=[3, 12],
                    calibration_steps=5, snrs_db=[None, 10.0], speed={"n_units": 6, "n_samples": 30, "rounds": 1})
    units = [dict(part="states", model="sine"), dict(part="speed", model="sine")]
    units += [dict(part=part, model="sine", profile=profile, seed=0) for part in ("gradient", "calibration")
              for profile in ("ideal", "benchtop")]
    rows = [row for unit in units for row in device_physics.run_unit(dict(unit, settings=settings))]
    ideal = [r["value"] for r in rows
             if r["part"] == "gradient" and r["profile"] == "ideal" and r["snr_db"] is None]
    assert len(ideal) == 1 and min(ideal) > 1 - 1e-9  # the physical pass is exact on the ideal device
    noisy = [r["value"] for r in rows if r["part"] == "gradient" and r["snr_db"] == 10.0]
    assert all(-1 <= value <= 1 for value in noisy)
    nominal = {r["profile"]: r["value"] for r in rows if r["metric"] == "state_nmse_nominal"}
    assert nominal["ideal"] < 1e-20 < 0.01 < nominal["benchtop"]  # the ideal device is its twin; benchtop is not
    assert any(r["metric"] == "time_ratio_benchtop_over_ideal" and r["value"] > 0 for r in rows)
    write_rows(tmp_path / "results.csv", rows, device_physics.COLUMNS)
    assert "Physical gradient vs exact" in device_physics.summary(rows)
    figure, = device_physics.plot(tmp_path)
    assert figure.exists() and figure.stat().st_size > 10_000
