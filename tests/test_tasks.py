"""Task generators checked against references computed independently of the code under test."""

import sys

import numpy as np
import pytest

from experiments import tasks
from experiments.tasks import (
    SYMBOLS,
    channel,
    channel_equalisation,
    digits_sequences,
    digits_train_test_split,
    integrate_mackey_glass,
    mackey_glass,
    memory_capacity_data,
    narma,
    narma10,
    santa_fe_laser,
    santa_fe_one_step,
)

# ---------------------------------------------------------------------------------------------------------
# NARMA10
# ---------------------------------------------------------------------------------------------------------

FIXED_U = np.array([0.1, 0.4, 0.25, 0.05, 0.3, 0.45, 0.2, 0.15, 0.35, 0.0, 0.5, 0.1, 0.3, 0.2, 0.4])


def narma10_by_hand(u):
    """y(t+1) = 0.3 y(t) + 0.05 y(t) sum_{i=0}^{9} y(t-i) + 1.5 u(t-9) u(t) + 0.1, at rest before t = 0."""
    past = {}  # y(s) by time s; y(s) = 0 for s <= 0

    def y_at(s):
        return past.get(s, 0.0)

    out = []
    for t in range(len(u)):
        ten_sum = sum(y_at(t - i) for i in range(10))
        u_nine_back = u[t - 9] if t - 9 >= 0 else 0.0
        past[t + 1] = 0.3 * y_at(t) + 0.05 * y_at(t) * ten_sum + 1.5 * u_nine_back * u[t] + 0.1
        out.append(past[t + 1])
    return np.array(out)


def test_narma_first_values_by_hand():
    y = narma(FIXED_U).ravel()
    assert y[0] == pytest.approx(0.1)  # only the constant: y(0) = 0 and u(-9) = 0
    assert y[1] == pytest.approx(0.3 * 0.1 + 0.05 * 0.1 * 0.1 + 0.1)  # = 0.1305
    # t = 9 is the first step where the input product is non-zero: 1.5 u(0) u(9) = 1.5 * 0.1 * 0.0.
    # t = 10: 1.5 u(1) u(10) = 1.5 * 0.4 * 0.5 = 0.3 enters y[10].
    no_input = 0.3 * y[9] + 0.05 * y[9] * y[:10].sum() + 0.1
    assert y[10] == pytest.approx(no_input + 0.3)


def test_narma_matches_recurrence_written_out():
    np.testing.assert_allclose(narma(FIXED_U).ravel(), narma10_by_hand(FIXED_U), rtol=1e-14, atol=0)


def test_narma_accepts_column_input_and_returns_column():
    assert narma(FIXED_U.reshape(-1, 1)).shape == (15, 1)


def test_narma10_shapes_alignment_and_range():
    u, y = narma10(500, seed=3, warmup=100)
    assert u.shape == y.shape == (500, 1) and u.dtype == y.dtype == np.float64
    assert 0.0 <= u.min() and u.max() <= 0.5
    # The warm-up is dropped, not skipped: the kept segment is the tail of the full 600-step run.
    u_full, y_full = narma10(600, seed=3, warmup=0)
    np.testing.assert_array_equal(u, u_full[100:])
    np.testing.assert_allclose(y, y_full[100:])
    np.testing.assert_allclose(y_full.ravel(), narma10_by_hand(u_full.ravel()), rtol=1e-12)


def test_narma10_seeded():
    a, b, c = narma10(300, seed=1), narma10(300, seed=1), narma10(300, seed=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], c[0])


def test_narma_divergence_names_time_step():
    # Constant u = 0.5 has no fixed point (0.5 y^2 - 0.7 y + 0.475 = 0 has no real root), so y blows up.
    with pytest.raises(ValueError, match=r"diverged at time step t=\d+"):
        narma(np.full(200, 0.5))


@pytest.mark.parametrize("n_steps", [0, -5])
def test_narma10_rejects_bad_n_steps(n_steps):
    with pytest.raises(ValueError, match="n_steps"):
        narma10(n_steps, seed=0)


def test_narma_rejects_nan_input():
    with pytest.raises(ValueError, match="u must be finite"):
        narma(np.array([0.1, np.nan, 0.2]))


def test_narma10_rejects_float_seed():
    with pytest.raises(TypeError, match="seed"):
        narma10(10, seed=1.5)


# ---------------------------------------------------------------------------------------------------------
# Mackey-Glass
# ---------------------------------------------------------------------------------------------------------


def mg_feedback(x):
    return 0.2 * x / (1.0 + x**10)


def test_mackey_glass_first_delay_interval_closed_form():
    # With a constant history x = 1.2 on [-tau, 0], the delayed term is constant on [0, tau], so
    # x(t) = c + (1.2 - c) exp(-0.1 t) with c = g(1.2) / 0.1 exactly.
    x = integrate_mackey_glass(np.full(171, 1.2), n_samples=18, tau=17, dt=0.1).ravel()
    c = mg_feedback(1.2) / 0.1
    np.testing.assert_allclose(x, c + (1.2 - c) * np.exp(-0.1 * np.arange(18)), rtol=0, atol=1e-9)


def test_mackey_glass_converges_with_fourth_order():
    # Over several delay intervals (so delayed midpoints come from the interpolant), halving dt must cut the
    # error against a fine-step solution by ~2^4.
    horizon = 120

    def solve(steps_per_unit):
        return integrate_mackey_glass(np.full(17 * steps_per_unit + 1, 1.2), horizon, dt=1 / steps_per_unit)

    reference = solve(64)
    errors = [np.abs(solve(k) - reference).max() for k in (2, 4, 8)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 3.7), (errors, orders)


def test_mackey_glass_block_solution_equals_plain_rk4_loop():
    # Independent step-by-step RK4 with the documented Hermite midpoints, one scalar step at a time.
    dt, tau, n_samples = 0.25, 17, 60
    m = int(tau / dt)
    history = 1.2 + 0.1 * np.sin(np.linspace(0.0, 3.0, m + 1))
    x = list(history)
    slope = list(np.gradient(history, dt))
    mid = [0.5 * (x[j] + x[j + 1]) + dt / 8 * (slope[j] - slope[j + 1]) for j in range(m)]
    slope[m] = -0.1 * x[m] + mg_feedback(x[0])
    for k in range(m, m + (n_samples - 1) * 4):
        g0, gh, g1 = mg_feedback(x[k - m]), mg_feedback(mid[k - m]), mg_feedback(x[k - m + 1])
        k1 = -0.1 * x[k] + g0
        k2 = -0.1 * (x[k] + dt / 2 * k1) + gh
        k3 = -0.1 * (x[k] + dt / 2 * k2) + gh
        k4 = -0.1 * (x[k] + dt * k3) + g1
        x.append(x[k] + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4))
        slope.append(-0.1 * x[k + 1] + mg_feedback(x[k + 1 - m]))
        mid.append(0.5 * (x[k] + x[k + 1]) + dt / 8 * (slope[k] - slope[k + 1]))
    expected = np.array(x[m::4])
    got = integrate_mackey_glass(history, n_samples, tau=tau, dt=dt).ravel()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_mackey_glass_tau17_statistics():
    x = mackey_glass(5000, seed=0)
    assert x.shape == (5000, 1) and x.dtype == np.float64
    assert 0.2 < x.min() and x.max() < 1.4
    assert x.mean() == pytest.approx(0.92, abs=0.03)
    assert 0.04 < x.var() < 0.065


def test_mackey_glass_statistics_match_reservoirpy():
    datasets = pytest.importorskip("reservoirpy.datasets")
    # ReservoirPy integrates with RK4 at h = 1 holding x(t - tau) fixed, a coarser scheme: compare statistics.
    theirs = datasets.mackey_glass(6000, tau=17, seed=0)[1000:]
    ours = mackey_glass(5000, seed=0)
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.02)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.1)


def test_mackey_glass_seeded_and_fast():
    import time

    start = time.perf_counter()
    a = mackey_glass(25_000, seed=4)
    assert time.perf_counter() - start < 3.0
    np.testing.assert_array_equal(a, mackey_glass(25_000, seed=4))
    assert not np.allclose(a[:100], mackey_glass(100, seed=5))


def test_mackey_glass_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_steps"):
        mackey_glass(0, seed=0)
    with pytest.raises(ValueError, match="tau"):
        mackey_glass(10, seed=0, tau=17.05)  # not a multiple of dt
    with pytest.raises(ValueError, match="dt"):
        mackey_glass(10, seed=0, dt=0.3)  # 1/dt not an integer
    with pytest.raises(ValueError, match="history"):
        integrate_mackey_glass(np.ones(10), 5)
    with pytest.raises(ValueError, match="history must be finite"):
        integrate_mackey_glass(np.r_[np.ones(170), np.nan], 5)


# ---------------------------------------------------------------------------------------------------------
# Santa Fe laser
# ---------------------------------------------------------------------------------------------------------


def test_santa_fe_laser_raw_series():
    pytest.importorskip("reservoirpy")
    x = santa_fe_laser()
    assert x.shape == (10_093, 1) and x.dtype == np.float64
    assert np.all(x == np.round(x)) and x.min() >= 0
    np.testing.assert_array_equal(x[:5].ravel(), [86, 141, 95, 41, 22])  # first values of data set A


def test_santa_fe_one_step_split():
    pytest.importorskip("reservoirpy")
    split = santa_fe_one_step()
    raw = santa_fe_laser()
    assert split.train_inputs.shape == split.train_targets.shape == (4200, 1)
    assert split.test_inputs.shape == split.test_targets.shape == (1000, 1)
    assert split.washout == 200
    # Targets are the next inputs, the test part follows the training part, z-scoring uses training stats.
    np.testing.assert_array_equal(split.train_targets[:-1], split.train_inputs[1:])
    assert split.train_targets[-1, 0] == split.test_inputs[0, 0]
    np.testing.assert_allclose(split.train_inputs * split.std + split.mean, raw[:4200])
    np.testing.assert_allclose(split.test_targets * split.std + split.mean, raw[4201:5201])
    assert split.train_inputs.mean() == pytest.approx(0.0, abs=1e-12)
    assert split.train_inputs.std() == pytest.approx(1.0)


def test_santa_fe_one_step_rejects_too_long_split():
    with pytest.raises(ValueError, match="n_train"):
        santa_fe_one_step(n_train=10_000)


def test_santa_fe_without_reservoirpy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "reservoirpy", None)
    monkeypatch.setitem(sys.modules, "reservoirpy.datasets", None)
    with pytest.raises(ImportError, match=r"pip install -e \.\[compare\]"):
        santa_fe_laser()


# ---------------------------------------------------------------------------------------------------------
# Channel equalisation
# ---------------------------------------------------------------------------------------------------------

FIXED_SYMBOLS = np.array([1, -1, 3, -3, 1, 1, -1, 3, 3, -1, 1, -3], dtype=float)


def channel_by_hand(d, n):
    """u(n) for d(n) = d[n], taps written out as in Jaeger & Haas (2004)."""
    q = (
        0.08 * d[n + 2]
        - 0.12 * d[n + 1]
        + d[n]
        + 0.18 * d[n - 1]
        - 0.1 * d[n - 2]
        + 0.091 * d[n - 3]
        - 0.05 * d[n - 4]
        + 0.04 * d[n - 5]
        + 0.03 * d[n - 6]
        + 0.01 * d[n - 7]
    )
    return q + 0.036 * q**2 - 0.011 * q**3


def test_channel_all_ones_closed_form():
    q = 0.08 - 0.12 + 1 + 0.18 - 0.1 + 0.091 - 0.05 + 0.04 + 0.03 + 0.01  # = 1.161
    u = channel(np.ones(10))
    assert u.shape == (1, 1)
    assert u[0, 0] == pytest.approx(1.161 + 0.036 * 1.161**2 - 0.011 * 1.161**3)
    assert q == pytest.approx(1.161)


def test_channel_matches_taps_written_out():
    u = channel(FIXED_SYMBOLS).ravel()
    expected = [channel_by_hand(FIXED_SYMBOLS, n) for n in range(7, len(FIXED_SYMBOLS) - 2)]
    assert u.shape == (3,)
    np.testing.assert_allclose(u, expected, rtol=1e-14)


def test_channel_equalisation_noiseless_alignment():
    u, d = channel_equalisation(200, snr_db=None, seed=7)
    assert u.shape == d.shape == (200, 1)
    assert set(np.unique(d)) <= set(SYMBOLS)
    # Rebuild the transmitted sequence: d holds d(n-2), so the symbols needed by u(n) are d[n-5 .. n+4] here.
    for n in range(5, 196):
        window = {k: d[n + 2 + k, 0] for k in range(-7, 3)}  # window[k] = d(n + k)
        q = (
            0.08 * window[2]
            - 0.12 * window[1]
            + window[0]
            + 0.18 * window[-1]
            - 0.1 * window[-2]
            + 0.091 * window[-3]
            - 0.05 * window[-4]
            + 0.04 * window[-5]
            + 0.03 * window[-6]
            + 0.01 * window[-7]
        )
        assert u[n, 0] == pytest.approx(q + 0.036 * q**2 - 0.011 * q**3, rel=1e-12)


def test_channel_equalisation_snr():
    clean, d_clean = channel_equalisation(50_000, snr_db=np.inf, seed=3)
    noisy, d_noisy = channel_equalisation(50_000, snr_db=12.0, seed=3)
    np.testing.assert_array_equal(d_clean, d_noisy)  # symbols are drawn before the noise
    measured = 10 * np.log10(clean.var() / (noisy - clean).var())
    assert measured == pytest.approx(12.0, abs=0.1)
    symbol_counts = np.unique(d_clean, return_counts=True)[1]
    assert np.all(np.abs(symbol_counts / 50_000 - 0.25) < 0.01)


def test_channel_equalisation_seeded():
    a = channel_equalisation(100, 20.0, seed=1)
    b = channel_equalisation(100, 20.0, seed=1)
    c = channel_equalisation(100, 20.0, seed=2)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], c[0])


def test_channel_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_symbols"):
        channel_equalisation(0, 20.0, seed=0)
    with pytest.raises(ValueError, match="snr_db"):
        channel_equalisation(10, float("nan"), seed=0)
    with pytest.raises(ValueError, match="d must"):
        channel(np.ones(5))


# ---------------------------------------------------------------------------------------------------------
# Memory capacity data
# ---------------------------------------------------------------------------------------------------------


def test_memory_capacity_data_delays():
    u, targets = memory_capacity_data(300, seed=0, max_delay=20)
    assert u.shape == (300, 1) and targets.shape == (300, 20)
    assert -0.5 <= u.min() and u.max() <= 0.5
    for k in range(1, 21):
        np.testing.assert_array_equal(targets[k:, k - 1], u[:-k, 0])
        np.testing.assert_array_equal(targets[:k, k - 1], 0.0)


def test_memory_capacity_data_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_delay"):
        memory_capacity_data(10, seed=0, max_delay=10)
    with pytest.raises(ValueError, match="n_steps"):
        memory_capacity_data(-1, seed=0, max_delay=2)


# ---------------------------------------------------------------------------------------------------------
# Digits
# ---------------------------------------------------------------------------------------------------------


def test_digits_rows_and_columns():
    rows, labels = digits_sequences("rows")
    columns, labels_c = digits_sequences("columns")
    assert rows.shape == columns.shape == (1797, 8, 8) and rows.dtype == np.float64
    assert labels.shape == (1797,) and set(labels) == set(range(10))
    np.testing.assert_array_equal(labels, labels_c)
    assert 0.0 <= rows.min() and rows.max() <= 1.0
    np.testing.assert_array_equal(columns[5], rows[5].T)
    from sklearn.datasets import load_digits

    np.testing.assert_array_equal(rows[0] * 16, load_digits().images[0])


def test_digits_split_stratified_and_deterministic():
    x, y = digits_sequences()
    x_tr, x_te, y_tr, y_te = digits_train_test_split(x, y, test_size=0.25, seed=0)
    assert len(x_tr) + len(x_te) == 1797 and x_te.shape[1:] == (8, 8)
    np.testing.assert_allclose(np.bincount(y_te) / len(y_te), np.bincount(y) / len(y), atol=0.01)
    again = digits_train_test_split(x, y, test_size=0.25, seed=0)
    np.testing.assert_array_equal(y_te, again[3])
    assert not np.array_equal(y_te, digits_train_test_split(x, y, test_size=0.25, seed=1)[3])


def test_digits_rejects_bad_order():
    with pytest.raises(ValueError, match="order"):
        digits_sequences("diagonal")


def test_module_exports_exist():
    for name in tasks.__all__:
        assert hasattr(tasks, name), name


def test_variable_delay_recalls_the_indicated_step():
    from experiments.tasks import variable_delay

    inputs, target = variable_delay(200, seed=3, max_delay=5)
    assert inputs.shape == (200, 2) and target.shape == (200, 1)
    delays = np.rint((inputs[:, 1] + 1) * 2).astype(int) + 1  # invert c = 2 (d - 1) / 4 - 1 by hand
    assert set(delays) == {1, 2, 3, 4, 5}
    for n in range(5, 200):
        assert target[n, 0] == inputs[n - delays[n], 0]
    with pytest.raises(ValueError, match="max_delay"):
        variable_delay(10, seed=0, max_delay=1)


# ---------------------------------------------------------------------------------------------------------
# Japanese vowels, MNIST-1D and the split interface
# ---------------------------------------------------------------------------------------------------------


def test_read_ts_parses_a_hand_written_file():
    text = "# comment\n@problemName toy\n@data\n1,2,3:4,5,6:2\n\n7,8:9,10:1\n"
    cases, labels = tasks.read_ts(text, "toy.ts")
    np.testing.assert_array_equal(cases[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(cases[1], [[7, 9], [8, 10]])
    assert labels == ["2", "1"]
    with pytest.raises(ValueError, match="toy.ts, line 2"):
        tasks.read_ts("@data\n1,x:2\n", "toy.ts")
    with pytest.raises(ValueError, match="no @data line"):
        tasks.read_ts("just text", "toy.ts")


def test_japanese_vowels_matches_the_documented_counts():
    """UCI: 9 speakers, 12 LPC coefficients, 7-29 frames; 270 train (30 per speaker), 370 test with
    31, 35, 88, 44, 29, 24, 40, 50, 29 utterances of speakers 1-9."""
    train, train_y, test, test_y = tasks.japanese_vowels()
    assert len(train) == 270 and len(test) == 370
    lengths = [len(s) for s in train + test]
    assert min(lengths) == 7 and max(lengths) == 29
    assert all(s.shape[1] == 12 for s in train + test)
    np.testing.assert_array_equal(np.bincount(train_y), [30] * 9)
    np.testing.assert_array_equal(np.bincount(test_y), [31, 35, 88, 44, 29, 24, 40, 50, 29])
    # The first frame of the first training utterance, as printed in the .ts file.
    assert train[0][0, 0] == 1.860936 and train[0][1, 0] == 1.891651 and train[0][0, 1] == -0.207383


def test_japanese_vowels_task_pads_and_keeps_lengths():
    split = tasks.japanese_vowels_task(seed=0)
    train, _, test, _ = tasks.japanese_vowels()
    assert split.kind == "classification" and split.metric == "error_rate" and split.n_classes == 9
    assert len(split.train.targets) + len(split.validation.targets) == 270 and len(split.test.targets) == 370
    assert split.train.inputs.shape[1:] == (29, 12) == split.test.inputs.shape[1:]
    for b in (0, 100, 369):
        n = split.test.lengths[b]
        np.testing.assert_array_equal(split.test.inputs[b, :n], test[b])
        assert not split.test.inputs[b, n:].any()
    np.testing.assert_array_equal(np.bincount(split.validation.targets), [6] * 9)  # stratified fifth


@pytest.fixture
def vowels_copy(tmp_path, monkeypatch):
    for part in ("TRAIN", "TEST"):
        (tmp_path / f"JapaneseVowels_{part}.ts.gz").write_bytes(
            (tasks.JAPANESE_VOWELS_DIR / f"JapaneseVowels_{part}.ts.gz").read_bytes())
    monkeypatch.setattr(tasks, "JAPANESE_VOWELS_DIR", tmp_path)
    return tmp_path


def test_japanese_vowels_missing_file_names_it_and_how_to_restore(vowels_copy):
    (vowels_copy / "JapaneseVowels_TEST.ts.gz").unlink()
    with pytest.raises(FileNotFoundError, match="JapaneseVowels_TEST.ts.gz is missing.*git checkout"):
        tasks.japanese_vowels()


def test_japanese_vowels_corrupted_file_names_it(vowels_copy):
    import gzip

    (vowels_copy / "JapaneseVowels_TRAIN.ts.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="JapaneseVowels_TRAIN.ts.gz is corrupted.*git checkout"):
        tasks.japanese_vowels()
    # Valid gzip, one digit changed: caught by the checksum, before parsing.
    original = gzip.decompress((tasks.Path(__file__).parents[1] / "experiments" / "data" / "japanese_vowels"
                                / "JapaneseVowels_TRAIN.ts.gz").read_bytes())
    (vowels_copy / "JapaneseVowels_TRAIN.ts.gz").write_bytes(gzip.compress(original.replace(b"1.860936",
                                                                                              b"1.860937")))
    with pytest.raises(ValueError, match="JapaneseVowels_TRAIN.ts.gz is corrupted \\(SHA-256"):
        tasks.japanese_vowels()


@pytest.fixture(scope="module")
def mnist1d_data():
    return tasks.mnist1d()


def test_mnist1d_matches_the_documented_statistics(mnist1d_data):
    """Greydanus 2020 / the package's make_dataset: 5000 sequences of length 40, 500 per class, split
    4000/1000, standardised over the whole set to mean 0 and standard deviation 1."""
    train_x, train_y, test_x, test_y = mnist1d_data
    assert train_x.shape == (4000, 40, 1) and test_x.shape == (1000, 40, 1)
    labels = np.concatenate([train_y, test_y])
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    everything = np.concatenate([train_x, test_x])
    assert abs(everything.mean()) < 1e-12 and everything.std() == pytest.approx(1.0, abs=1e-12)


def test_mnist1d_is_deterministic_offline_and_leaves_global_randomness_alone(monkeypatch, tmp_path,
                                                                            mnist1d_data):
    import random

    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("MNIST-1D must not be downloaded")

    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.chdir(tmp_path)
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    before = (np.random.random(), random.random())  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    again = tasks.mnist1d()
    assert (np.random.random(), random.random()) == before  # noqa: NPY002
    for a, b in zip(again, mnist1d_data, strict=True):
        np.testing.assert_array_equal(a, b)
    assert list(tmp_path.iterdir()) == []  # no pickle written to the working directory


def test_mnist1d_without_the_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match="pip install mnist1d"):
        tasks.mnist1d()


def test_series_split_cuts_one_series_in_time_order():
    split = tasks.narma10_task(seed=3)
    u, y = narma10(6200, seed=3)
    assert (len(split.train.inputs), len(split.validation.inputs), len(split.test.inputs)) == (3200, 1000, 2000)
    np.testing.assert_array_equal(split.series_inputs(), u)
    np.testing.assert_array_equal(split.test.targets, y[4200:])
    fit = split.fit_part()
    np.testing.assert_array_equal(fit.inputs, u[:4200])
    np.testing.assert_array_equal(fit.targets, y[:4200])
    assert split.washout == 200 and split.kind == "regression" and split.metric == "nmse"
    # score() is the metric of experiments.metrics.
    assert split.score(split.test, np.full_like(split.test.targets, split.test.targets.mean())) == pytest.approx(1)


def test_channel_equalisation_task_resolves_ser_at_1e5_symbols():
    split = tasks.channel_equalisation_task(seed=0, snr_db=24)
    assert len(split.test.targets) == 200_000 and split.metric == "symbol_error_rate"
    u, d = channel_equalisation(210_000, snr_db=24, seed=0)
    np.testing.assert_array_equal(split.series_inputs(), u)
    wrong = split.test.targets.copy()
    wrong[:20] = -wrong[:20]  # 20 errors out of 2e5
    assert split.score(split.test, wrong) == pytest.approx(1e-4)


def test_classification_split_is_stratified_disjoint_and_seeded():
    a, b, c = tasks.digits_task(seed=0), tasks.digits_task(seed=0), tasks.digits_task(seed=1)
    np.testing.assert_array_equal(a.validation.inputs, b.validation.inputs)
    assert not np.array_equal(a.validation.targets, c.validation.targets)
    assert len(a.train.targets) + len(a.validation.targets) + len(a.test.targets) == 1797
    flat = {row.tobytes() for part in (a.train, a.validation) for row in part.inputs}
    assert not any(row.tobytes() in flat for row in a.test.inputs[:50])  # no test image in the fit part
    fractions = np.bincount(a.validation.targets, minlength=10) / np.bincount(a.train.targets, minlength=10)
    assert np.allclose(fractions, 0.25, atol=0.05)  # one fifth held out of every class
    scores = np.eye(10)[a.test.targets]
    assert a.score(a.test, scores) == 0.0 and a.score(a.test, a.test.targets) == 0.0


def test_load_task_names_the_choices():
    with pytest.raises(ValueError, match="name must be one of"):
        tasks.load_task("timit", 0)
    with pytest.raises(ValueError, match="seed"):
        tasks.load_task("narma10", -1)
    with pytest.raises(ValueError, match="n_test"):
        tasks.narma10_task(0, n_test=0)
