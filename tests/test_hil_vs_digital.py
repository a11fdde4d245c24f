"""The headline experiment: its grid, data layout, pairing, statistics tables, resumable and redrawable runs,
and the refusals of a bad configuration."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from experiments import hil_vs_digital as experiment
from experiments.__main__ import main
from experiments.results import ConfigError, read_rows, write_rows
from experiments.tasks import load_task

TINY_NARMA = (("narma10", (("n_train", 800), ("n_validation", 200), ("n_test", 300))),)
# Four device methods (each of the others compiles its own programs; hardware_sim's tests cover them), one
# epoch, 2 devices per level.
TINY = experiment.Grid(n_devices=2, n_epochs=1, spsa_steps=1, calibration=(("n_steps", 120), ("n_repeats", 1)),
                       sizes=TINY_NARMA, methods=("reservoir", "reservoir_tuned", "digital+readout", "hil"))


def test_device_data_lays_out_the_task_split():
    """Training chunks = the train part after its washout, then the validation part (the held-out chunks);
    the test series is preceded by the validation part's last steps as a warm-up."""
    options = TINY_NARMA[0][1]
    data = experiment.device_data("narma10", 3, options)
    task = load_task("narma10", experiment.DATA_SEED_OFFSET + 3, **dict(options))
    layout = experiment.LAYOUTS["narma10"]
    assert data.inputs.shape == (5, layout.chunk, 1) and data.n_held == 1  # 800 / 200 train, 200 / 200 held
    np.testing.assert_array_equal(data.inputs[:4].reshape(-1), task.train.inputs[task.washout:].reshape(-1))
    np.testing.assert_array_equal(data.inputs[4:].reshape(-1), task.validation.inputs.reshape(-1))
    np.testing.assert_array_equal(data.targets[4:].reshape(-1), task.validation.targets.reshape(-1))
    warm = layout.test_warmup
    np.testing.assert_array_equal(data.test_inputs[:warm], task.validation.inputs[-warm:])
    np.testing.assert_array_equal(data.test_inputs[warm:], task.test.inputs)
    assert data.validation_fraction == pytest.approx(1 / 5)


def test_devices_are_independent_across_levels_and_repeatable():
    seeds = {(p, m, d): experiment.device_seed(p, m, d) for p in ("knob_mismatch", "benchtop")
             for m in (0.1, 0.3) for d in range(5)}
    assert len(set(seeds.values())) == len(seeds)  # no level reuses another's draw
    assert experiment.device_seed("benchtop", 0.3, 2) == seeds[("benchtop", 0.3, 2)]


def test_cells_pair_methods_and_join_the_no_device_baselines_by_device():
    rows = [dict(task="narma10", profile="", mismatch="", device=d, method="volterra_taps", test_error=0.1 * d)
            for d in range(3)]
    rows += [dict(task="narma10", profile="benchtop", mismatch=0.3, device=d, method=m, test_error=e)
             for d in (2, 0) for m, e in (("hil", d + 1.0), ("calibrated_twin", d + 2.0))]
    cells = experiment.cells(rows)
    assert list(cells) == [("narma10", "benchtop", 0.3)]
    # devices in index order, only those every device method has; the baseline of the same data seed beside
    assert cells[("narma10", "benchtop", 0.3)] == {"volterra_taps": [0.0, 0.2], "hil": [1.0, 3.0],
                                                    "calibrated_twin": [2.0, 4.0]}


def test_grid_refuses_unknown_or_empty_values():
    for change, match in ((dict(levels=(("lab", 0.3),)), "unknown profiles"),
                          (dict(methods=("hil", "magic")), "unknown methods"),
                          (dict(tasks=()), "empty grid"), (dict(n_devices=0), "positive integer"),
                          (dict(levels=(("benchtop", 1.5),)), r"\[0, 1\)")):
        with pytest.raises(ConfigError, match=match):
            dataclasses.replace(TINY, **change)


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own refusals
        return exc.code


def test_command_line_refuses_a_bad_grid_with_exit_code_2(tmp_path, capsys):
    for argv in (["--profiles", "lab"], ["--methods", "hil,magic"], ["--tasks", ""], ["--seeds", "0"],
                 ["--quick", "--full"]):
        assert _exit_code(["run", "hil_vs_digital", "--out", str(tmp_path), *argv]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert "error" in error[-1] and len(error[-1]) < 300  # one line
    assert not any(tmp_path.iterdir())  # nothing written
    assert _exit_code(["run", "speed", "--full", "--out", str(tmp_path)]) == 2  # no grid there


def test_tiny_run_writes_every_method_resumes_and_redraws(tmp_path):
    directory = experiment.run_experiment(tmp_path, grid=TINY)
    rows = read_rows(directory / "results.csv")
    assert tuple(rows[0]) == experiment.COLUMNS
    device_rows = [r for r in rows if r["profile"]]
    assert len(device_rows) == 2 * 2 * len(TINY.methods)  # levels × devices × methods
    assert {r["method"] for r in rows if not r["profile"]} == set(experiment.NO_DEVICE["regression"])
    assert all(np.isfinite(float(r["test_error"])) for r in rows)
    calls = {r["method"]: int(r["n_calls"]) for r in device_rows if r["profile"] == "knob_mismatch"}
    assert calls["reservoir"] == calls["digital+readout"] == 1
    assert calls["reservoir_tuned"] == 36  # one per knob candidate
    # per learning rate: the start's held-out score, one epoch of 1 step and its score, the final readout
    assert calls["hil"] == 4 * 4 + 1
    text = (directory / "summary.md").read_text()
    assert "volterra_taps" in text and "wins [95 % CI]" in text and "device time" in text
    timings = read_rows(directory / "timings.csv")
    assert len(timings) == len(rows) and all(float(r["seconds"]) >= 0 for r in timings)

    figures = {name: (directory / f"{name}.png").read_bytes() for name in ("error_vs_cost", "paired_ratios")}
    for name in figures:
        (directory / f"{name}.png").unlink()
    redrawn = experiment.plot(directory)  # from results.csv only
    assert {p.stem for p in redrawn} == set(figures)
    assert all(p.read_bytes() == figures[p.stem] for p in redrawn)

    # the same command again resumes from units.jsonl: nothing recomputed, byte-identical results
    before = (directory / "results.csv").read_bytes()
    calls_made = []
    original = experiment.run_unit
    try:
        experiment.run_unit = lambda unit: calls_made.append(unit) or original(unit)
        experiment.run_experiment(tmp_path, grid=TINY)
    finally:
        experiment.run_unit = original
    assert calls_made == [] and (directory / "results.csv").read_bytes() == before


def test_a_unit_recomputed_from_scratch_gives_identical_rows():
    """Reproducible: the same unit in a fresh process (no cache) gives the same rows, wall time aside."""
    grid = dataclasses.replace(TINY, methods=("reservoir_tuned",))
    unit = next(u for u in experiment.units_of(grid) if u["profile"] == "benchtop")
    here = [{k: v for k, v in row.items() if k != "seconds"} for row in experiment.run_unit(unit)]
    code = ("import json, sys; from experiments.hil_vs_digital import run_unit; "
            "rows = run_unit(json.loads(sys.argv[1])); "
            "print(json.dumps([{k: v for k, v in r.items() if k != 'seconds'} for r in rows]))")
    there = json.loads(subprocess.run([sys.executable, "-c", code, json.dumps(unit)], check=True,
                                      capture_output=True, text=True).stdout)
    assert there == json.loads(json.dumps(here))


def test_a_diverged_method_scores_as_a_constant_output():
    """NARMA10: the training mean's NMSE on the test part, about 1 (NMSE is normalised by the variance; the
    test mean differs a little from the training mean)."""
    data = experiment.device_data("narma10", 0, TINY_NARMA[0][1])
    test = data.task.test.targets[:, 0]
    expected = np.mean((test - data.targets.mean()) ** 2) / np.var(test)
    assert experiment.constant_error(data) == pytest.approx(expected) and 0.95 < expected < 1.2


def test_a_diverging_narma_seed_is_replaced_by_the_next_one():
    """Device index 11's data seed (1011) diverges at 6200 steps; its data come from seed 2011 instead."""
    with pytest.raises(ValueError, match="diverged"):
        load_task("narma10", experiment.DATA_SEED_OFFSET + 11)
    data = experiment.device_data("narma10", 11, ())
    assert data.task.seed == experiment.DATA_SEED_OFFSET + 11 + 1000


def test_several_mismatch_levels_draw_error_against_mismatch(tmp_path):
    """With two levels of one profile, plot() adds the error-against-mismatch figure (from results.csv only)."""
    rng = np.random.default_rng(0)
    rows = [dict(task="narma10", profile="", mismatch="", device=d, method="volterra_taps",
                 test_error=0.02 + 0.001 * d, n_calls=0, n_samples=0, device_seconds=0.0, hyperparameters="{}")
            for d in range(3)]
    rows += [dict(task="narma10", profile="benchtop", mismatch=m, device=d, method=method,
                  test_error=float(rng.uniform(0.1, 0.5)), n_calls=1, n_samples=10, device_seconds=1e-3,
                  hyperparameters="{}")
             for m in (0.1, 0.3) for d in range(3) for method in ("digital+readout", "hil")]
    write_rows(tmp_path / "results.csv", rows, experiment.COLUMNS)
    names = [path.stem for path in experiment.plot(tmp_path)]
    assert names == ["error_vs_cost", "paired_ratios", "error_vs_mismatch"]
    assert (tmp_path / "error_vs_mismatch.png").stat().st_size > 10_000
