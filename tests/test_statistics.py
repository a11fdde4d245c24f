"""Paired-comparison statistics against independent references: scipy.stats.bootstrap on the same resamples,
a hand-written resampling loop, scipy's Wilson interval, closed forms, and coverage on simulated data."""

import numpy as np
import pytest
from scipy import stats

from experiments.statistics import (
    bootstrap_indices,
    markdown_table,
    median_interval,
    median_ratio,
    paired_values,
    strongest,
    summarise_cell,
    wilson_interval,
    win_fraction,
)

RNG = np.random.default_rng(0)
A = RNG.lognormal(size=21)
B = A * RNG.lognormal(0.2, 0.4, size=21)


# ------------------------------------------------------------------------------------------ the bootstrap


@pytest.mark.parametrize("interval", ["percentile", "bca"])
@pytest.mark.parametrize("values", [A, A[:8], np.round(A[:20], 1)], ids=["n21", "n8", "n20-rounded"])
def test_median_interval_matches_scipy_bootstrap_on_the_same_resamples(values, interval):
    ours = median_interval(values, interval=interval, n_resamples=3000, seed=5, confidence=0.9)
    reference = stats.bootstrap((values,), np.median, method=interval, confidence_level=0.9, n_resamples=3000,
                                batch=None, rng=np.random.default_rng(5)).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((reference.low, reference.high), rel=1e-12)
    assert ours.value == np.median(values)


def test_bootstrap_indices_are_resamples_with_replacement():
    indices = bootstrap_indices(7, 4000, seed=1)
    assert indices.shape == (4000, 7) and indices.min() == 0 and indices.max() == 6
    np.testing.assert_array_equal(indices, bootstrap_indices(7, 4000, seed=1))
    counts = np.bincount(indices.ravel(), minlength=7) / indices.size  # every device equally likely
    np.testing.assert_allclose(counts, 1 / 7, atol=0.01)


def test_median_of_a_known_sample_and_a_degenerate_one():
    assert median_interval([3.0, 1.0, 2.0, 10.0, 4.0]).value == 3.0
    assert median_interval([4.0, 1.0, 2.0, 3.0]).value == 2.5
    constant = median_interval([0.2] * 6, interval="bca")
    assert (constant.value, constant.low, constant.high) == (0.2, 0.2, 0.2)


def test_same_seed_same_numbers_other_seed_other_draws():
    assert median_interval(A, seed=3) == median_interval(A, seed=3)
    assert median_ratio(A, B, seed=3) == median_ratio(A, B, seed=3)
    assert not np.array_equal(bootstrap_indices(21, 100, seed=3), bootstrap_indices(21, 100, seed=4))


def test_interval_coverage_of_the_median_is_near_95_percent():
    # 400 simulated cells of 20 devices, lognormal errors with true median 1 (binomial s.d. of the coverage
    # over 400 draws: 0.011; measured with 600 draws and 2000 resamples: 0.94 percentile, 0.935 BCa).
    draws = np.random.default_rng(11).lognormal(size=(400, 20))
    covered = [(e := median_interval(d, n_resamples=1000, seed=i)).low <= 1.0 <= e.high
               for i, d in enumerate(draws)]
    assert 0.91 <= np.mean(covered) <= 0.99


# ---------------------------------------------------------------------------------- paired comparisons


def test_median_ratio_matches_a_hand_written_resampling_loop():
    # Odd n: the median of the log ratios is a log ratio, so exp(median log) is the median ratio itself; with
    # B = 4001 the 2.5 % and 97.5 % quantiles fall on order statistics (positions 100 and 3900), where linear
    # interpolation in log and in linear scale agree.
    ratios = A / B
    draws = np.random.default_rng(9)
    medians = []
    for _ in range(4001):
        index = draws.integers(0, len(A), len(A))  # pairs resampled together
        medians.append(np.median(A[index] / B[index]))
    ours = median_ratio(A, B, n_resamples=4001, seed=9)
    assert ours.value == pytest.approx(np.median(ratios), rel=1e-12)
    assert (ours.low, ours.high) == pytest.approx(tuple(np.sort(medians)[[100, 3900]]), rel=1e-12)


def test_median_ratio_invariant_to_a_common_scale_and_inverse_when_swapped():
    ratio = median_ratio(A, B, seed=2)
    scaled = median_ratio(1e-4 * A, 1e-4 * B, seed=2)
    assert (scaled.value, scaled.low, scaled.high) == pytest.approx((ratio.value, ratio.low, ratio.high), rel=1e-9)
    tripled = median_ratio(3 * A, B, seed=2)
    assert (tripled.value, tripled.low, tripled.high) == pytest.approx(
        (3 * ratio.value, 3 * ratio.low, 3 * ratio.high), rel=1e-9)
    swapped = median_ratio(B, A, seed=2)
    assert (swapped.value, swapped.low, swapped.high) == pytest.approx(
        (1 / ratio.value, 1 / ratio.high, 1 / ratio.low), rel=1e-9)


def test_median_ratio_coverage_on_simulated_pairs():
    # log(error / reference) ~ N(log 0.7, 0.5): the true median ratio is 0.7; a device effect common to both
    # methods (the lognormal reference) must cancel in the pairing.
    draws = np.random.default_rng(12)
    covered = []
    for seed in range(300):
        reference = draws.lognormal(0, 2, 25)
        errors = reference * np.exp(draws.normal(np.log(0.7), 0.5, 25))
        estimate = median_ratio(errors, reference, n_resamples=1000, seed=seed)
        covered.append(estimate.low <= 0.7 <= estimate.high)
    assert 0.90 <= np.mean(covered) <= 0.99


def test_zero_errors_need_a_floor_and_the_floor_is_counted():
    errors, reference = np.array([0.0, 1e-3, 2e-3, 0.0]), np.array([1e-3, 1e-3, 4e-3, 0.0])
    with pytest.raises(ValueError, match="errors holds a zero error .*pass floor"):
        median_ratio(errors, reference)
    with pytest.raises(ValueError, match="reference_errors holds a zero error"):
        median_ratio(reference + 1, np.array([1.0, 0.0, 1.0, 1.0]))
    # floor 1e-4 (10^4 test symbols): ratios 0.1, 1, 0.5, 1 -> median of logs = log sqrt(0.5 * 1)
    assert median_ratio(errors, reference, floor=1e-4).value == pytest.approx(np.sqrt(0.5))
    win = win_fraction(errors, reference, floor=1e-4)
    assert (win.wins, win.ties, win.losses) == (2, 2, 0)  # two sub-floor errors tie: both read as 1e-4
    cell = summarise_cell({"a": reference, "b": errors}, ["a"], floor=1e-4)
    assert cell[1].versus.n_floored == 2
    assert markdown_table({"x": cell}).endswith("a bound, not an estimate")


@pytest.mark.parametrize(("successes", "n"), [(0, 20), (7, 20), (20, 20), (1, 3), (150, 200)])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_wilson_interval_matches_scipy(successes, n, confidence):
    reference = stats.binomtest(successes, n).proportion_ci(confidence, method="wilson")
    assert wilson_interval(successes, n, confidence) == pytest.approx((reference.low, reference.high), abs=1e-12)


def test_wilson_interval_coverage_in_closed_form():
    # Exact coverage: sum over k of Binomial(k; n, p) [p in interval(k)], averaged over p in (0.05, 0.95).
    n = 20
    intervals = np.array([wilson_interval(k, n) for k in range(n + 1)])
    coverage = [stats.binom.pmf(np.arange(n + 1), n, p)[(intervals[:, 0] <= p) & (p <= intervals[:, 1])].sum()
                for p in np.linspace(0.05, 0.95, 181)]
    assert np.mean(coverage) == pytest.approx(0.95, abs=0.01)  # measured: 0.954
    assert min(coverage) > 0.92  # measured: 0.925; Wilson's coverage oscillates but its dips stay shallow


def test_win_fraction_counts_ties_as_half_and_is_symmetric():
    errors = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    reference = np.array([0.2, 0.2, 0.1, 0.5, 0.9])
    win = win_fraction(errors, reference)
    assert (win.wins, win.ties, win.losses, win.n) == (3, 1, 1, 5)
    assert win.fraction == 0.7
    assert (win.low, win.high) == pytest.approx(wilson_interval(3.5, 5))
    other = win_fraction(reference, errors)
    assert win.fraction + other.fraction == 1.0
    assert (other.low, other.high) == pytest.approx((1 - win.high, 1 - win.low))
    # by hand: z^2 = 3.8415, centre (0.7 + 0.3841) / 1.7683 = 0.6131, half-width 1.96 * 0.2836 / 1.7683 = 0.3143
    assert win.format() == "0.70 [0.30, 0.93] 3/5 +1 tie"


# --------------------------------------------------------------------------------------------- cells


def test_strongest_baseline_by_median_first_listed_on_a_tie():
    errors = {"ridge": [1.0, 5.0, 3.0], "volterra": [2.0, 2.0, 9.0], "esn": [2.0, 1.0, 3.0]}
    assert strongest(errors, ["ridge", "volterra"]) == "volterra"  # medians 3, 2
    assert strongest(errors, ["volterra", "esn"]) == "volterra"  # both 2
    assert strongest(errors, ["esn", "volterra"]) == "esn"


def test_paired_values_aligns_devices_and_refuses_unpaired_rows():
    rows = [dict(method=m, seed=s, value=10 * s + i) for i, m in enumerate(("a", "b")) for s in (3, 1, 2)]
    values = paired_values(rows)
    np.testing.assert_array_equal(values["a"], [10, 20, 30])
    np.testing.assert_array_equal(values["b"], [11, 21, 31])
    with pytest.raises(ValueError, match=r"not paired: method 'b' has no value for seed \[2\]"):
        paired_values(rows[:-1])
    with pytest.raises(ValueError, match="two values for method 'a' on seed 3"):
        paired_values(rows + rows[:1])
    with pytest.raises(ValueError, match="'device' column"):
        paired_values(rows, unit="device")


def test_summarise_cell_and_its_markdown_table():
    errors = {"ridge": B, "volterra": 2 * B, "hil": A}
    cell = summarise_cell(errors, ["ridge", "volterra"], n_resamples=500, seed=4)
    assert [s.method for s in cell] == ["ridge", "volterra", "hil"]
    assert cell[0].versus is None  # the reference, ridge (the lower median of the two baselines)
    hil = cell[2]
    assert hil.median == median_interval(A, n_resamples=500, seed=4)
    assert hil.versus.ratio == median_ratio(A, B, n_resamples=500, seed=4)
    assert hil.versus.win == win_fraction(A, B)
    table = markdown_table({("narma10", 0.1): cell}, ("task", "mismatch")).splitlines()
    assert table[0] == ("| task | mismatch | method | devices | median [95 % CI] | against | wins [95 % CI] "
                        "| median ratio [95 % CI] |")
    assert len(table) == 2 + 3 and all(line.count("|") == 9 for line in table)
    assert table[2] == f"| narma10 | 0.1 | ridge | 21 | {cell[0].median.format()} | (reference) |  |  |"
    assert table[4] == (f"| narma10 | 0.1 | hil | 21 | {hil.median.format()} | ridge | {hil.versus.win.format()} "
                        f"| {hil.versus.ratio.format()} |")


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("call", "message"), [
    (lambda: median_interval([1.0]), "values must hold at least 2 values"),
    (lambda: median_interval([[1.0, 2.0]]), "values must be a 1-D array"),
    (lambda: median_interval([1.0, np.nan]), "values must be finite"),
    (lambda: median_interval(A, confidence=1.0), r"confidence must be a real number in \(0, 1\)"),
    (lambda: median_interval(A, n_resamples=0), "n_resamples must be an integer"),
    (lambda: median_interval(A, seed=-1), "seed must be an integer"),
    (lambda: median_interval(A, interval="basic"), "interval must be one of"),
    (lambda: median_ratio(A, B[:5]), "errors and reference_errors must hold one value per device"),
    (lambda: median_ratio(-A, B), "errors must be non-negative"),
    (lambda: median_ratio(A, B, floor=0.0), r"floor must be a real number in \(0, inf\)"),
    (lambda: win_fraction(A, -B), "reference_errors must be non-negative"),
    (lambda: wilson_interval(21, 20), r"successes must be a real number in \[0, 20\]"),
    (lambda: wilson_interval(1, 0), "n must be an integer"),
    (lambda: strongest({"a": A}, ["b"]), r"among names methods with no errors in this cell: \['b'\]"),
    (lambda: strongest({"a": A}, "a"), "among must be a non-empty sequence"),
    (lambda: summarise_cell({}, ["a"]), "errors_by_method must be a non-empty mapping"),
    (lambda: summarise_cell({"a": A, "b": [1.0, 2.0]}, ["a"]), "errors and reference_errors must hold"),
    (lambda: markdown_table({("x", 1): []}, ("task",)), "cells has key"),
    (lambda: markdown_table({}), "cells must hold at least one"),
    (lambda: paired_values([]), "rows must hold at least one row"),
])
def test_bad_input_is_refused_with_the_argument_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
