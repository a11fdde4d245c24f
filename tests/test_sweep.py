"""The sweep executor (in-process and Dask, resume after kill -9, the checkpoint log's repairs and refusals),
run directories that refuse to be clobbered, and the distributed ridge fit."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from experiments.__main__ import main
from experiments.results import RunConflict, open_run
from experiments.sweep import LOG_NAME, UnitError, _example_unit, _local_cluster, _Log, parse_scheduler, run_sweep

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]


def units_for(seeds, **extra):
    return [dict(seed=seed, **extra) for seed in seeds]


def reference_rows(seeds):
    """The rows of the example units, computed here without sleeping or recording (rows depend on seed only)."""
    return [_example_unit({"seed": seed}) for seed in seeds]


def log_lines(directory):
    path = Path(directory) / LOG_NAME
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on loopback, shared by the Dask tests of this module.

    ``allowed_failures=0``: the scheduler gives up on a unit at its first lost worker, as a strict external
    cluster might, so the worker-kill test exercises run_sweep's own resubmission.
    """
    with _local_cluster(distributed, 2, allowed_failures=0) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as client:
        yield client


# ------------------------------------------------------------------------------------------------ executors


def test_inprocess_and_local_dask_give_identical_rows_in_unit_order(tmp_path):
    psutil = pytest.importorskip("psutil")
    earlier = {p.pid for p in psutil.Process().children(recursive=True)}  # e.g. loky workers of other tests
    seeds = list(range(16))
    here = run_sweep(_example_unit, units_for(seeds), tmp_path / "here")
    # later units finish first on the cluster: the result is still in the order of the units
    units = [dict(seed=seed, sleep=0.01 * (len(seeds) - i)) for i, seed in enumerate(seeds)]
    there = run_sweep(_example_unit, units, tmp_path / "there", scheduler="local:2")
    assert there == here == reference_rows(seeds)
    assert log_lines(tmp_path / "there") == 16
    assert _children(psutil, earlier) == []  # the cluster run_sweep started is gone


def _children(psutil, earlier: set[int]) -> list:
    """Child processes started since ``earlier`` was taken, except multiprocessing's resource tracker (it lives
    as long as this process)."""
    deadline, found = time.monotonic() + 10, [None]
    while found and time.monotonic() < deadline:
        found = [p for p in psutil.Process().children(recursive=True)
                 if p.pid not in earlier and "resource_tracker" not in " ".join(p.cmdline())]
        time.sleep(0.05 if found else 0)
    return found


def test_a_worker_killed_mid_sweep_does_not_fail_it(tmp_path, cluster, client, capsys):
    seeds = list(range(10))
    directory = tmp_path / "sweep"
    victim, landed = next(iter(client.run(os.getpid).values())), []

    def kill_after_three_units():
        deadline = time.monotonic() + 20
        while log_lines(directory) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(victim, signal.SIGKILL)
        landed.append(log_lines(directory))

    killer = threading.Thread(target=kill_after_three_units)
    killer.start()
    try:
        rows = run_sweep(_example_unit, units_for(seeds, sleep=0.2), directory,
                         scheduler=cluster.scheduler_address)
    finally:
        killer.join()
    assert rows == reference_rows(seeds)
    assert 3 <= landed[0] < len(seeds)  # the kill happened during the sweep
    assert "lost its worker too often" in capsys.readouterr().out  # resubmitted by run_sweep
    assert victim not in client.run(os.getpid).values()


def test_a_unit_error_names_the_unit_inprocess_and_on_dask(tmp_path, cluster):
    units = units_for([0, 1]) + [dict(seed=2, fail=True)]
    for name, scheduler in (("here", None), ("there", cluster.scheduler_address)):
        with pytest.raises(UnitError, match=r'unit \{"fail": true, "seed": 2\} failed.*asked to fail') as error:
            run_sweep(_example_unit, units, tmp_path / name, scheduler=scheduler)
        assert error.value.unit == {"seed": 2, "fail": True}


def test_kill_9_at_a_random_point_then_rerun_redoes_at_most_one_unit(tmp_path):
    """Five times: a sweep in a subprocess is SIGKILLed after at least one unit landed, then run again here."""
    seeds, rng = list(range(8)), random.Random(0)
    expected = reference_rows(seeds)
    for attempt in range(5):
        directory, record = tmp_path / f"run{attempt}", tmp_path / f"executions{attempt}.txt"
        units = units_for(seeds, sleep=0.04, record=str(record))
        code = (f"from experiments.sweep import run_sweep, _example_unit; "
                f"run_sweep(_example_unit, {units!r}, {str(directory)!r})")
        process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while log_lines(directory) < 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.2))
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=10)
        landed = log_lines(directory)
        assert 1 <= landed < len(units), f"attempt {attempt}: the kill came after {landed} units"
        assert run_sweep(_example_unit, units, directory) == expected
        executions = record.read_text().splitlines()
        assert len(executions) <= len(units) + 1, f"attempt {attempt}: {len(executions)} executions"
        assert log_lines(directory) == len(units)


# ------------------------------------------------------------------------------------------- checkpoint log


TORN = [b'{"unit": {"seed": 3}, "rows": [{"se', b"garbage\n", b'{"unit": {}, "rows": []}']


@pytest.mark.parametrize("torn", TORN)
def test_a_torn_last_line_is_repaired_with_a_warning(tmp_path, torn):
    seeds = [0, 1, 2, 3]
    run_sweep(_example_unit, units_for(seeds[:3]), tmp_path)
    with open(tmp_path / LOG_NAME, "ab") as handle:
        handle.write(torn)
    with pytest.warns(RuntimeWarning, match=r"units.jsonl, line 4: torn last line"):
        rows = run_sweep(_example_unit, units_for(seeds), tmp_path)
    assert rows == reference_rows(seeds)
    assert log_lines(tmp_path) == 4 and (tmp_path / LOG_NAME).read_bytes().endswith(b"\n")


def test_a_corrupt_line_before_the_last_is_an_error_and_the_log_is_kept(tmp_path):
    run_sweep(_example_unit, units_for([0, 1, 2]), tmp_path)
    path = tmp_path / LOG_NAME
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][:-5]
    path.write_bytes(b"\n".join(lines))
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"units.jsonl, line 2: not a complete checkpoint record"):
        run_sweep(_example_unit, units_for([0, 1, 2]), tmp_path)
    assert path.read_bytes() == before


def test_units_of_another_sweep_in_the_log_are_refused(tmp_path):
    run_sweep(_example_unit, units_for([0, 1]), tmp_path)
    with pytest.raises(ValueError, match=r"not in this sweep's units.*belongs to a different sweep"):
        run_sweep(_example_unit, units_for([0, 5]), tmp_path)


def test_resume_skips_the_logged_units_and_a_subset_is_allowed(tmp_path):
    record = tmp_path / "executions.txt"
    first = run_sweep(_example_unit, units_for([0, 1], record=str(record)), tmp_path / "s")
    both = run_sweep(_example_unit, units_for([0, 1, 2], record=str(record)), tmp_path / "s")
    assert both[:2] == first and len(record.read_text().splitlines()) == 3


def test_bad_units_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"units must be distinct.*units\[0\] == units\[2\]"):
        run_sweep(_example_unit, units_for([0, 1, 0]), tmp_path)
    with pytest.raises(ValueError, match=r"units\[1\] must be JSON-serialisable"):
        run_sweep(_example_unit, [{"seed": 0}, {"seed": object()}], tmp_path)
    with pytest.raises(ValueError, match=r"units\[0\] must be a dict"):
        run_sweep(_example_unit, [3], tmp_path)


VALUES = [0.1, 1 / 3, 2.0**-1074, 1.7976931348623157e308, float("nan"), np.float32(0.1), -0.0]


def _rows_of_values(unit):
    return [{"value": value} for value in VALUES]


def test_floats_and_nan_round_trip_exactly(tmp_path):
    fresh = run_sweep(_rows_of_values, [{"n": len(VALUES)}], tmp_path)
    resumed = run_sweep(_rows_of_values, [{"n": len(VALUES)}], tmp_path)
    for rows in (fresh, resumed):
        got = [row["value"] for row in rows[0]]
        assert [repr(g) for g in got[:4]] == [repr(v) for v in VALUES[:4]]
        assert np.isnan(got[4]) and got[5] == float(np.float32(0.1)) and repr(got[6]) == "-0.0"
        assert all(type(g) is float for g in got)


def test_a_second_sweep_on_the_same_directory_is_refused_while_the_first_runs(tmp_path):
    with _Log(tmp_path / LOG_NAME), pytest.raises(RuntimeError, match="locked: another sweep is running"):
        run_sweep(_example_unit, units_for([0]), tmp_path)


# ------------------------------------------------------------------------------------------------ scheduler


@pytest.mark.parametrize("bad", ["local:0", "local:x", "local", "local:2 ", "tcp://host", "tcp://:8786",
                                 "tcp://host:0", "http://host:8786", "in-process", "", 2])
def test_bad_scheduler_strings_are_refused(bad, tmp_path):
    with pytest.raises(ValueError, match=r"scheduler must be None, 'inprocess', 'local:K'.*got"):
        run_sweep(_example_unit, units_for([0]), tmp_path, scheduler=bad)


def test_good_scheduler_strings_parse():
    assert parse_scheduler(None) == parse_scheduler("inprocess") == ("inprocess", None)
    assert parse_scheduler("local:4") == ("local", 4)
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("tcp", "tcp://10.0.0.5:8786")
    assert parse_scheduler("tcp://[::1]:8786") == ("tcp", "tcp://[::1]:8786")


def test_the_command_line_checks_the_scheduler_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "benchmarks", "--scheduler", "local:zero"])
    assert exit_.value.code == 2
    assert "argument --scheduler: scheduler must be" in capsys.readouterr().err


def test_missing_dask_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"pip install -e \.\[distributed\]"):
        run_sweep(_example_unit, units_for([0]), tmp_path, scheduler="local:2")


def test_timing_experiments_refuse_dask(tmp_path):
    from experiments import backprop_primer, speed

    for module in (speed, backprop_primer):
        with pytest.raises(ValueError, match=r"scheduler must be None or 'inprocess' for .*got 'local:2'"):
            module.run_experiment(tmp_path, quick=True, scheduler="local:2")
    assert list(tmp_path.iterdir()) == []  # refused before creating anything


# ----------------------------------------------------------------------------------------- run directories


def test_open_run_resumes_the_same_configuration(tmp_path):
    directory = open_run(tmp_path, "demo", {"seeds": (0, 1), "alpha": 0.1, "nan": float("nan")})
    (directory / "results.csv").write_text("kept\n")
    again = open_run(tmp_path, "demo", {"seeds": [0, 1], "alpha": 0.1, "nan": float("nan")})  # tuple == list
    assert again == directory and (directory / "results.csv").read_text() == "kept\n"
    assert json.loads((directory / "config.json").read_text())["config"]["seeds"] == [0, 1]


def test_open_run_refuses_a_different_configuration_and_says_what_differs(tmp_path):
    directory = open_run(tmp_path, "demo", {"seeds": [0, 1], "quick": True, "alpha": 0.1})
    with pytest.raises(RunConflict) as conflict:
        open_run(tmp_path, "demo", {"seeds": [0, 1, 2], "quick": True, "n_units": 50})
    message = str(conflict.value)
    assert str(directory) in message and "--fresh" in message and "--out" in message
    assert "seeds: [0, 1] (stored) -> [0, 1, 2] (now)" in message
    assert "alpha: 0.1 (stored) -> <absent> (now)" in message and "n_units: <absent>" in message
    assert "quick" not in message
    assert isinstance(conflict.value, ValueError)


def test_the_command_line_reports_a_conflict_without_a_traceback(tmp_path, capsys):
    (tmp_path / "speed").mkdir()
    (tmp_path / "speed" / "config.json").write_text(json.dumps({"config": {"quick": "other"}}))
    assert main(["run", "speed", "--quick", "--out", str(tmp_path)]) == 2
    assert "holds a run with a different configuration" in capsys.readouterr().err


def test_fresh_moves_the_old_run_aside(tmp_path):
    directory = open_run(tmp_path, "demo", {"seeds": [0]})
    (directory / "results.csv").write_text("old\n")
    run_sweep(_example_unit, units_for([0]), directory)
    open_run(tmp_path, "demo", {"seeds": [0, 1]}, fresh=True)
    (previous,) = directory.glob("previous-*")
    assert (previous / "results.csv").read_text() == "old\n" and (previous / LOG_NAME).exists()
    assert (previous / "config.json").exists() and not (directory / "results.csv").exists()
    assert json.loads((directory / "config.json").read_text())["config"] == {"seeds": [0, 1]}


def test_a_corrupt_config_is_an_error_naming_the_file_and_is_not_rewritten(tmp_path):
    directory = open_run(tmp_path, "demo", {"seeds": [0]})
    text = (directory / "config.json").read_text()[:-20]
    (directory / "config.json").write_text(text)
    with pytest.raises(RunConflict, match=r"config.json is not valid JSON"):
        open_run(tmp_path, "demo", {"seeds": [0]})
    assert (directory / "config.json").read_text() == text


# ---------------------------------------------------------------------------------------- distributed ridge


def _shard(seed):
    """A shard of 3 sequences × 60 steps × 8 features (numpy only), made on the worker from its seed."""
    rng = np.random.default_rng(seed)
    features = np.tanh(rng.normal(size=(3, 60, 8)))
    targets = features @ np.linspace(-1, 1, 16).reshape(8, 2) + 0.1 * rng.normal(size=(3, 60, 2))
    return features, targets


def test_distributed_ridge_equals_the_single_machine_fit(client):
    import cloudpickle

    from readout import Ridge
    from readout.distributed import fit_ridge_distributed

    shards = [_shard(seed) for seed in range(5)]
    features = np.concatenate([f for f, _ in shards])
    targets = np.concatenate([t for _, t in shards])
    single = Ridge(1e-3).fit(features, targets, washout=5)
    on_data = fit_ridge_distributed(client, shards, 1e-3, washout=5)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    try:
        loaded = fit_ridge_distributed(client, range(5), 1e-3, load=_shard, washout=5)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    here = fit_ridge_distributed(None, shards, 1e-3, washout=5)
    for fitted in (on_data, loaded, here):
        np.testing.assert_allclose(fitted.coef_, single.coef_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fitted.intercept_, single.intercept_, rtol=1e-10, atol=1e-12)


def test_distributed_ridge_refuses_bad_shards(client):
    from readout.distributed import fit_ridge_distributed

    with pytest.raises(ValueError, match="at least one shard"):
        fit_ridge_distributed(client, [])
    with pytest.raises(ValueError, match=r"shards\[1\] must be a \(features, targets\) pair"):
        fit_ridge_distributed(None, [_shard(0), np.zeros(3)])
    mixed = [_shard(0), (np.zeros((10, 3)), np.zeros((10, 2)))]
    with pytest.raises(ValueError, match=r"shard 1 has \(features, outputs\) = \(3, 2\).*shard 0 has \(8, 2\)"):
        fit_ridge_distributed(client, mixed)
