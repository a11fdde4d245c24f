"""The command line and the benchmarks experiment's files (the quick run, as CI can afford)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from experiments.__main__ import main
from experiments.results import read_rows


def test_list_names_the_experiments(capsys):
    assert main(["--list"]) == 0
    assert "benchmarks" in capsys.readouterr().out


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    # A subprocess, as a user runs it: fresh JAX config, the real command line.
    subprocess.run([sys.executable, "-m", "experiments", "benchmarks", "--quick", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    return out / "benchmarks"


def test_quick_benchmarks_write_results_config_and_figures(quick_run):
    rows = read_rows(quick_run / "results.csv")
    for column in ("task", "model", "n_units", "seed", "metric", "value"):
        assert column in rows[0]
    tasks = {r["task"] for r in rows}
    assert {"narma10", "memory_capacity", "santa_fe", "mackey_glass"} <= tasks
    assert any(t.startswith("channel_equalisation@") for t in tasks)
    narma = [r["value"] for r in rows if r["task"] == "narma10" and r["model"] == "esn" and r["n_units"] == 200]
    assert len(narma) == 2 and all(0 < v < 0.16 for v in narma)  # uses nonlinearity: beats a shift register
    # Issue 14: a classification task at scale and the no-reservoir baselines beside the reservoirs.
    vowels = [r for r in rows if r["task"] == "japanese_vowels" and r["metric"] == "error_rate"]
    assert {(r["model"], r["n_units"]) for r in vowels} >= {("esn", 50), ("delay_sine", 50), ("ridge_raw", 0),
                                                            ("logistic_raw", 0)}
    assert all(0 <= r["value"] < 0.1 for r in vowels)  # 370 test utterances, 9 speakers: chance is 89 %
    linear = [r["value"] for r in rows if r["task"] == "narma10" and r["model"] == "linear_taps"]
    volterra = [r["value"] for r in rows if r["task"] == "narma10" and r["model"] == "volterra_taps"]
    assert len(linear) == len(volterra) == 2 and np.mean(volterra) < np.mean(linear)
    assert {r["model"] for r in rows if r["task"] == "channel_equalisation@28dB" and r["metric"] == "ser"} >= {
        "esn", "linear_taps", "volterra_taps"}
    config = json.loads((quick_run / "config.json").read_text())
    assert config["config"]["seeds"] == [0, 1] and "jax" in config["packages"] and "git_commit" in config
    for name in ("narma10_vs_n", "ser_vs_snr", "memory_capacity", "santa_fe_trace"):
        assert (quick_run / f"{name}.png").stat().st_size > 10_000


def test_plot_redraws_without_recomputing(quick_run):
    for figure in quick_run.glob("*.png"):
        figure.unlink()
    assert main(["plot", str(quick_run)]) == 0
    assert (quick_run / "narma10_vs_n.png").exists()


def test_delay_search_scores_validation_from_explicit_predictions():
    """The NARMA10 delay search's validation NMSE is that of an explicitly predicted ridge readout (the
    statistics-based shortcut went negative at alpha = 1e-13), never below zero."""
    import jax

    from experiments import benchmarks, metrics, tasks
    from readout import Ridge, with_inputs
    from reservoir import run

    jax.config.update("jax_enable_x64", True)
    split = tasks.narma10_task(0, n_train=600, n_validation=300, n_test=100)
    params = benchmarks.build("delay_sine", 30, 0, feedback_gain=1.0, input_gain=0.1, phase=0.3)
    score, alpha = benchmarks.series_validation_score(split, params)
    inputs = np.concatenate([split.train.inputs, split.validation.inputs])
    features = with_inputs(run(params, inputs), inputs)
    n_train = len(split.train.inputs)
    readout = Ridge(alpha).fit(features[:n_train], split.train.targets, washout=split.washout)
    assert score == pytest.approx(metrics.nmse(split.validation.targets, readout.predict(features[n_train:])),
                                  rel=1e-6)
    assert 0 < score < 1 and alpha in benchmarks.DELAY_ALPHAS
