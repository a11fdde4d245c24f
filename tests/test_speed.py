"""The speed experiment's files, from its quick run.  Timings are never asserted: the machine is shared."""

import math

import pytest

from experiments import speed
from experiments.results import read_rows

CASES = {"a_esn_one_sequence", "b_esn_64_sequences", "c_batched_states", "d_delay", "e_bptt", "e_bptt_memory",
         "f_streaming_ridge",
         "g_bptt_japanese_vowels", "g_bptt_mnist1d"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return speed.run_experiment(tmp_path_factory.mktemp("results"), quick=True)


def value(rows, case, implementation, metric):
    (match,) = [r["value"] for r in rows
                if (r["case"], r["implementation"], r["metric"]) == (case, implementation, metric)]
    return match


def test_quick_run_writes_every_case_with_targets_and_a_figure(quick_run):
    rows = read_rows(quick_run / "results.csv")
    assert list(rows[0])[:4] == ["case", "implementation", "metric", "value"]
    assert CASES <= {r["case"] for r in rows}
    targeted = {(r["case"], r["implementation"], r["metric"]) for r in rows if r["kind"] in ("min", "max")}
    assert targeted == {target[:3] for target in speed.TARGETS}
    assert all(math.isfinite(r["value"]) for r in rows)
    assert (quick_run / "speed.png").stat().st_size > 10_000
    assert (quick_run / "config.json").exists()


def test_ours_and_reservoirpy_compute_the_same_thing(quick_run):
    """Case a's cross-check: both NRMSEs finite and ours no worse than 1.5× ReservoirPy NumPy's."""
    rows = read_rows(quick_run / "results.csv")
    ours = value(rows, "a_esn_one_sequence", "ours_warm", "nrmse")
    theirs = value(rows, "a_esn_one_sequence", "reservoirpy_numpy", "nrmse")
    assert math.isfinite(ours) and math.isfinite(theirs) and 0 < theirs < 0.5
    assert ours <= 1.5 * theirs
    assert value(rows, "a_esn_one_sequence", "ours_first_call", "nrmse") == pytest.approx(ours, rel=1e-3)
    assert math.isfinite(value(rows, "a_esn_one_sequence", "reservoirpy_jax", "nrmse"))


def test_peak_memory_is_measured_in_the_child_not_inherited(quick_run):
    rows = read_rows(quick_run / "results.csv")
    for case in ("e_bptt_memory", "f_streaming_ridge"):
        assert 0 < value(rows, case, "ours", "peak_gib") < 2


def test_plot_redraws_from_the_csv_alone(quick_run):
    (quick_run / "speed.png").unlink()
    (figure,) = speed.plot(quick_run)
    assert figure.exists() and figure.stat().st_size > 10_000


def test_classification_bptt_step_is_reported_beside_the_forward_pass(quick_run):
    rows = read_rows(quick_run / "results.csv")
    for case in ("g_bptt_japanese_vowels", "g_bptt_mnist1d"):
        step, forward = value(rows, case, "ours", "seconds_median"), value(rows, case, "forward_run",
                                                                           "seconds_median")
        assert value(rows, case, "ours", "step_over_forward") == pytest.approx(step / forward)
        assert value(rows, case, "ours", "compile_seconds") >= 0
