"""The Full-vs-Reservoir experiment runs end to end and writes tidy results (numbers are in the closing note)."""

import numpy as np

from experiments.embodied_learning import run_experiment
from experiments.results import read_rows


def test_quick_embodied_learning_run(tmp_path):
    directory = run_experiment(tmp_path, quick=True)
    rows = read_rows(directory / "results.csv")
    for task, metric in (("narma10", "nmse"), ("variable_delay", "nmse"), ("digits", "test_error")):
        methods = {r["method"] for r in rows if r["task"] == task and r["metric"] == metric}
        assert {"reservoir", "full", "full+ridge", "full_projected"} <= methods
        values = [r["value"] for r in rows if r["task"] == task and r["metric"] == metric]
        assert all(np.isfinite(values)) and all(0 <= v < 1.5 for v in values)
    # training made the validation loss fall from where the ridge-initialised system started
    for task in ("narma10", "variable_delay", "digits"):
        history = [r["value"] for r in rows if r["task"] == task and r["metric"] == "validation_loss"]
        assert min(history) < history[0]
    assert (directory / "full_vs_reservoir.png").exists()
