"""The HIL-vs-digital experiment runs end to end (quick) and writes tidy, redrawable results."""

import numpy as np

from experiments.hil_vs_digital import COLUMNS, plot, run_experiment, summary, targets
from experiments.results import read_rows
from hardware_sim.training import MODES


def test_quick_hil_vs_digital_run(tmp_path):
    directory = run_experiment(tmp_path, quick=True)
    rows = read_rows(directory / "results.csv")
    assert set(COLUMNS) <= set(rows[0])
    nmse = [r for r in rows if r["metric"] == "test_nmse"]
    assert {r["method"] for r in nmse} == set(MODES)
    assert {r["metric"] for r in rows} == {"test_nmse", "device_samples", "train_loss"}
    assert len(nmse) == 2 * len(MODES)  # 2 mismatch levels × 1 noise level × 1 seed
    assert all(np.isfinite(float(r["value"])) for r in rows)
    for r in rows:
        assert (r["device_queries"] == 0) if r["method"] == "digital" else (r["device_queries"] > 0)
    losses = [r for r in rows if r["metric"] == "train_loss"]
    assert all(isinstance(r["epoch"], int) for r in losses)
    samples = {r["method"]: r["value"] for r in rows if r["metric"] == "device_samples"}
    assert samples["digital"] == 0 and samples["hil"] > samples["digital+readout"] > 0

    figures = ["nmse_vs_mismatch_narma10.png", "nmse_vs_queries_narma10.png"]
    for name in figures:
        assert (directory / name).exists()
        (directory / name).unlink()
    redrawn = plot(directory)  # from results.csv only
    assert sorted(p.name for p in redrawn) == sorted(figures)
    assert all(p.exists() for p in redrawn)
    assert "hil" in summary(rows) and len(targets(rows)) == 2
