"""Benchmark tasks: input/target sequences generated (or loaded offline) as defined in the sources below.

Every generator is a small pure NumPy function, deterministic given an explicit integer ``seed``, and returns
float64 arrays laid out as (T, features): time first, features last.

Sources
-------
- NARMA: A. F. Atiya & A. G. Parlos, IEEE Trans. Neural Netw. 11(3), 697-709 (2000); H. Jaeger, "Adaptive
  nonlinear system identification with echo state networks", NIPS 15 (2003).
- Mackey-Glass: M. C. Mackey & L. Glass, Science 197, 287-289 (1977); protocol of H. Jaeger, "The echo state
  approach to analysing and training recurrent neural networks", GMD Report 148 (2001), §6.
- Santa Fe laser (data set A): A. S. Weigend & N. A. Gershenfeld (eds.), "Time Series Prediction: Forecasting
  the Future and Understanding the Past" (1994); offline copy bundled with ReservoirPy (MIT).
- Channel equalisation: H. Jaeger & H. Haas, "Harnessing nonlinearity", Science 304, 78-80 (2004).
- Memory capacity: H. Jaeger, "Short term memory in echo state networks", GMD Report 152 (2002).
- Digits: scikit-learn's bundled copy of the UCI optical handwritten digits (8x8, 1797 images).
- Japanese vowels: M. Kudo, J. Toyama & M. Shimbo, Pattern Recognition Letters 20, 1103-1111 (1999); UCI,
  CC BY 4.0; shipped in ``experiments/data/japanese_vowels`` (the UEA ``.ts`` files of the aeon wheel).
- MNIST-1D: S. Greydanus, "Scaling down deep learning", arXiv:2011.14439 (2020); package ``mnist1d``.

Benchmark splits: every task has one builder, ``<task>_task(seed, ...) -> TaskData``, with train / validation /
test parts (:class:`TaskData`, :class:`Part`); ``load_task(name, seed)`` looks it up by name.
"""

from __future__ import annotations

import gzip
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from experiments import metrics
from experiments.metrics import SYMBOLS  # the channel's alphabet, defined with the decision that uses it
from reservoir.validation import (
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Interval,
    check_array,
    check_choice,
    check_scalar,
)

__all__ = [
    "KINDS",
    "SANTA_FE_LENGTH",
    "SeriesDiverged",
    "SYMBOLS",
    "TASKS",
    "OneStepSplit",
    "Part",
    "TaskData",
    "channel_equalisation_task",
    "digits_task",
    "japanese_vowels",
    "japanese_vowels_task",
    "load_task",
    "mnist1d",
    "mnist1d_task",
    "narma10_task",
    "read_ts",
    "variable_delay_task",
    "channel",
    "channel_equalisation",
    "digits_sequences",
    "digits_train_test_split",
    "integrate_mackey_glass",
    "mackey_glass",
    "memory_capacity_data",
    "narma",
    "narma10",
    "santa_fe_laser",
    "santa_fe_one_step",
    "variable_delay",
]

# ----------------------------------------------------------------------------------------------------------
# NARMA
# ----------------------------------------------------------------------------------------------------------

# Far above anything a stable NARMA10 run produces (|y| stays below ~1.5 for u in [0, 0.5]); once the
# quadratic term takes over, y grows super-exponentially, so this threshold is crossed within a few steps of
# the blow-up.
_NARMA_DIVERGENCE_THRESHOLD = 1e3


class SeriesDiverged(ValueError):
    """A generated series blew up (NARMA's recursion for an unlucky input draw): use another seed."""


def narma(u: np.ndarray, order: int = 10) -> np.ndarray:
    """NARMA output for a given input sequence (Atiya & Parlos 2000; NARMA10 for ``order=10``).

    Recurrence, with the NARMA10 constants used for every ``order`` n::

        y(t+1) = 0.3 y(t) + 0.05 y(t) * sum_{i=0}^{n-1} y(t-i) + 1.5 u(t-n+1) u(t) + 0.1

    Initial conditions: the system starts at rest, y(s) = 0 for s <= 0 and u(s) = 0 for s < 0.

    Alignment: the returned ``y[t]`` is y(t+1) of the equation, i.e. it depends on ``u[0..t]`` only, so a
    causal model reading ``u[t]`` at step t is trained to output ``y[t]`` at the same step. In particular
    ``y[0] = 0.1`` and ``y[1] = 0.3*0.1 + 0.05*0.1*0.1 + 0.1 = 0.1305`` (the input product needs u(t-n+1),
    which is zero until t = n-1).

    Args:
        u: input sequence, shape (T,) or (T, 1), finite.
        order: n, the number of past outputs summed and the input delay plus one.

    Returns:
        y, float64 array of shape (T, 1).

    Raises:
        ValueError: if the recurrence diverges (|y| > 1e3 or non-finite); the message names the first bad time
            step. NARMA is not stable for every input: large inputs or high orders can blow up.
    """
    u = check_array("u", u, ndim=(1, 2))
    if u.ndim == 2 and u.shape[1] != 1:
        raise ValueError(f"u must have shape (T,) or (T, 1), got shape {u.shape}")
    order = check_scalar("order", order, POSITIVE_INT)
    u = u.reshape(-1).astype(np.float64)
    n_steps = u.shape[0]
    # y_hist[s] holds y(s - order + 1) so that y_hist[t : t + order] is y(t-order+1..t): zero-padded history.
    y_hist = [0.0] * (order + n_steps)
    u_list = u.tolist()  # plain Python floats: a scalar loop over lists is ~10x faster than indexing ndarrays
    for t in range(n_steps):
        y_t = y_hist[t + order - 1]
        window_sum = sum(y_hist[t : t + order])
        u_delayed = u_list[t - order + 1] if t >= order - 1 else 0.0
        y_next = 0.3 * y_t + 0.05 * y_t * window_sum + 1.5 * u_delayed * u_list[t] + 0.1
        if not abs(y_next) <= _NARMA_DIVERGENCE_THRESHOLD:  # also catches NaN
            raise SeriesDiverged(
                f"NARMA{order} diverged at time step t={t}: y={y_next!r}, "
                f"|y| > {_NARMA_DIVERGENCE_THRESHOLD:g}; "
                "use inputs in [0, 0.5] or another seed"
            )
        y_hist[t + order] = y_next
    return np.asarray(y_hist[order:], dtype=np.float64).reshape(-1, 1)


def narma10(n_steps: int, seed: int, warmup: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """NARMA10 input/target pair (Atiya & Parlos 2000; Jaeger 2003), u(t) ~ U[0, 0.5] i.i.d.

    y(t+1) = 0.3 y(t) + 0.05 y(t) sum_{i=0}^{9} y(t-i) + 1.5 u(t-9) u(t) + 0.1   (Atiya & Parlos 2000).

    ``n_steps + warmup`` steps are generated from rest and the first ``warmup`` dropped, so the returned
    segment does not start from the artificial all-zero history. Alignment as in :func:`narma`: ``y[t]`` is
    y(t+1), computed from ``u[..t]`` (inputs from the dropped warm-up included), so predict ``y[t]`` from
    ``u[..t]``.

    Returns:
        (u, y), each float64 of shape (n_steps, 1).
    """
    n_steps = check_scalar("n_steps", n_steps, POSITIVE_INT)
    seed = check_scalar("seed", seed, SEED)
    warmup = check_scalar("warmup", warmup, NON_NEGATIVE_INT)
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.0, 0.5, size=n_steps + warmup)
    y = narma(u, order=10)
    return u[warmup:].reshape(-1, 1), y[warmup:]


# ----------------------------------------------------------------------------------------------------------
# Mackey-Glass
# ----------------------------------------------------------------------------------------------------------

_MG_A, _MG_B, _MG_POWER = 0.2, 0.1, 10  # dx/dt = a x(t-tau) / (1 + x(t-tau)^n) - b x(t)


def _mg_feedback(x_delayed: np.ndarray) -> np.ndarray:
    return _MG_A * x_delayed / (1.0 + x_delayed**_MG_POWER)


def _rk4_linear_step(x: float, g0: float, g_half: float, g1: float, dt: float) -> float:
    """One classical RK4 step of dx/dt = -b x + g(t), with g given at t, t + dt/2 and t + dt."""
    k1 = -_MG_B * x + g0
    k2 = -_MG_B * (x + 0.5 * dt * k1) + g_half
    k3 = -_MG_B * (x + 0.5 * dt * k2) + g_half
    k4 = -_MG_B * (x + dt * k3) + g1
    return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def _grid(tau: float, dt: float) -> tuple[int, int]:
    """(steps per time unit, steps per delay): both samples and the delay must fall on the RK4 grid."""
    steps = []
    for duration, what in ((1.0, "the sampling interval 1 must be"), (tau, f"tau={tau!r} must be")):
        ratio = round(duration / dt)
        if ratio < 1 or abs(ratio * dt - duration) > 1e-9 * max(1.0, duration):
            raise ValueError(f"{what} a whole number of steps dt, got {duration / dt:g} steps of dt={dt!r}")
        steps.append(ratio)
    return steps[0], steps[1]


def integrate_mackey_glass(
    history: np.ndarray, n_samples: int, tau: float = 17.0, dt: float = 0.1
) -> np.ndarray:
    """Integrate the Mackey-Glass delay equation from a given history; sample every 1 time unit.

    dx/dt = 0.2 x(t-tau) / (1 + x(t-tau)^10) - 0.1 x(t)      (Mackey & Glass 1977)

    Scheme: classical RK4 with step ``dt``, where 1/dt and tau/dt are integers so that the delayed grid
    points t - tau and t - tau + dt are stored grid values. The delayed value at the RK4 half step,
    x(t - tau + dt/2), is the cubic Hermite interpolant between the two neighbouring grid points using their
    stored values and ODE derivatives:

        x_mid = (x_j + x_{j+1}) / 2 + dt / 8 (f_j - f_{j+1}).

    Its O(dt^4) error keeps RK4's global order 4; the derivative jumps of the solution ("breaking points" at
    0, tau, 2 tau, ...) fall on grid points, so they do not lower the order either. (Jaeger's GMD Report 148,
    Eq. 23, used forward Euler with dt = 1/10 instead.)

    Because x(t - tau) is known for the next tau/dt steps, the RK4 steps within one delay interval form the
    linear recurrence x_{k+1} = A x_k + B_k with A, B_k from the RK4 stages; it is solved in closed form with
    a cumulative sum, one vectorised block per delay interval. The result equals the step-by-step RK4 up to
    rounding (relative amplification at most e^{0.1 tau}).

    Args:
        history: x on the grid over [-tau, 0], shape (tau/dt + 1,), last element x(0). Between grid points the
            history is read as the cubic Hermite spline with finite-difference slopes (``np.gradient``).
        n_samples: number of samples returned, at t = 0, 1, ..., n_samples - 1 (t = 0 is ``history[-1]``).
        tau: delay, a positive multiple of dt.
        dt: RK4 step; 1/dt must be an integer.

    Returns:
        float64 array of shape (n_samples, 1).
    """
    n_samples = check_scalar("n_samples", n_samples, POSITIVE_INT)
    tau = check_scalar("tau", tau, POSITIVE)
    dt = check_scalar("dt", dt, Interval(0, 1, "right"))
    steps_per_unit, delay_steps = _grid(tau, dt)
    history = check_array("history", history, ndim=1, shape={0: delay_steps + 1}).astype(np.float64)

    n_total = delay_steps + 1 + (n_samples - 1) * steps_per_unit
    x = np.empty(n_total)
    x[: delay_steps + 1] = history
    slope = np.empty(n_total)  # right-sided dx/dt at each grid point once t >= 0
    slope[: delay_steps + 1] = np.gradient(history, dt)
    midpoint = np.empty(n_total - 1)  # x at the centre of grid interval [j, j+1]
    midpoint[:delay_steps] = 0.5 * (x[:delay_steps] + x[1 : delay_steps + 1]) + dt / 8.0 * (
        slope[:delay_steps] - slope[1 : delay_steps + 1]
    )
    # At t = 0 the history's slope is replaced by the ODE's: the interval [0, dt] belongs to the solution.
    slope[delay_steps] = -_MG_B * x[delay_steps] + _mg_feedback(x[0])

    # The RK4 update is affine in (x, g0, g_half, g1) with no constant term: read off its coefficients.
    decay = _rk4_linear_step(1.0, 0.0, 0.0, 0.0, dt)
    c0, c_half, c1 = (_rk4_linear_step(0.0, *np.eye(3)[i], dt) for i in range(3))
    powers = decay ** np.arange(1, delay_steps + 1)

    start = delay_steps
    while start < n_total - 1:
        length = min(delay_steps, n_total - 1 - start)
        lag = start - delay_steps  # grid index of t - tau for the first step of the block
        forcing = (
            c0 * _mg_feedback(x[lag : lag + length])
            + c_half * _mg_feedback(midpoint[lag : lag + length])
            + c1 * _mg_feedback(x[lag + 1 : lag + length + 1])
        )
        # x_{s+j} = A^j x_s + sum_{i<j} A^{j-1-i} B_i = A^j (x_s + sum_{i<j} B_i / A^{i+1})
        p = powers[:length]
        new = slice(start + 1, start + length + 1)
        x[new] = p * (x[start] + np.cumsum(forcing / p))
        slope[new] = -_MG_B * x[new] + _mg_feedback(x[lag + 1 : lag + length + 1])
        block = slice(start, start + length)
        midpoint[block] = 0.5 * (x[block] + x[new]) + dt / 8.0 * (slope[block] - slope[new])
        start += length
    return x[delay_steps::steps_per_unit].reshape(-1, 1)


def mackey_glass(
    n_steps: int, seed: int, tau: float = 17.0, dt: float = 0.1, discard: int = 1000, x0: float = 1.2
) -> np.ndarray:
    """Mackey-Glass series sampled every 1 time unit (Mackey & Glass 1977; default tau = 17, mildly chaotic).

    dx/dt = 0.2 x(t-tau) / (1 + x(t-tau)^10) - 0.1 x(t), integrated by :func:`integrate_mackey_glass` (RK4
    with step ``dt``, Hermite-interpolated delayed midpoints). Initial history on [-tau, 0]: ``x0`` plus an
    i.i.d. seed-dependent perturbation U[-0.1, 0.1] at every grid point; the first ``discard`` time units are
    dropped so the series is on the attractor. For tau = 17 the series stays within about [0.2, 1.4] with mean
    about 0.9.

    Returns:
        float64 array of shape (n_steps, 1), x(discard), x(discard + 1), ...
    """
    n_steps = check_scalar("n_steps", n_steps, POSITIVE_INT)
    seed = check_scalar("seed", seed, SEED)
    tau = check_scalar("tau", tau, POSITIVE)
    dt = check_scalar("dt", dt, Interval(0, 1, "right"))
    discard = check_scalar("discard", discard, NON_NEGATIVE_INT)
    x0 = check_scalar("x0", x0, POSITIVE)
    delay_steps = _grid(tau, dt)[1]
    rng = np.random.default_rng(seed)
    history = x0 + 0.2 * (rng.random(delay_steps + 1) - 0.5)
    return integrate_mackey_glass(history, discard + n_steps, tau=tau, dt=dt)[discard:]


# ----------------------------------------------------------------------------------------------------------
# Santa Fe laser
# ----------------------------------------------------------------------------------------------------------

SANTA_FE_LENGTH = 10_093


class OneStepSplit(NamedTuple):
    """One-step-ahead prediction data, z-scored: inputs z(t), targets z(t+1).

    ``train_*`` hold ``washout + n_train`` rows; the first ``washout`` rows only warm the reservoir up and
    must be discarded by the caller before fitting. ``test_*`` continue immediately after the training part,
    so the reservoir state at the end of training is the right initial state for the test part.
    """

    train_inputs: np.ndarray
    train_targets: np.ndarray
    test_inputs: np.ndarray
    test_targets: np.ndarray
    washout: int
    mean: float
    std: float


def santa_fe_laser() -> np.ndarray:
    """The Santa Fe laser series (data set A, Weigend & Gershenfeld 1994): raw integer intensities.

    Loaded offline from the copy bundled in the ReservoirPy wheel (``reservoirpy.datasets.santafe_laser``,
    which reads a packaged ``.npy`` file; nothing is downloaded).

    Returns:
        float64 array of shape (10093, 1).

    Raises:
        ImportError: if ReservoirPy is not installed (``pip install -e .[compare]``).
    """
    try:
        from reservoirpy.datasets import santafe_laser as _load_santafe_laser
    except ImportError as error:
        raise ImportError(
            "santa_fe_laser() reads the copy of the data bundled with reservoirpy, which is not installed; "
            "install the optional extra 'compare': pip install -e .[compare]"
        ) from error
    return np.asarray(_load_santafe_laser(), dtype=np.float64).reshape(-1, 1)


def santa_fe_one_step(washout: int = 200, n_train: int = 4000, n_test: int = 1000) -> OneStepSplit:
    """Santa Fe one-step prediction split (Weigend & Gershenfeld 1994): 200 washout, 4000 train, 1000 test.

    The series is z-scored with the mean and standard deviation of the washout + training part only, so no
    test statistics leak into training. Inputs are z(t), targets z(t+1), from the start of the series: rows
    [0, washout + n_train) for training and the next ``n_test`` rows for testing.
    """
    washout = check_scalar("washout", washout, NON_NEGATIVE_INT)
    n_train = check_scalar("n_train", n_train, POSITIVE_INT)
    n_test = check_scalar("n_test", n_test, POSITIVE_INT)
    n_used = washout + n_train + n_test
    if n_used + 1 > SANTA_FE_LENGTH:  # +1: the last target is one step after the last input
        raise ValueError(
            f"washout + n_train + n_test must be at most {SANTA_FE_LENGTH - 1}, "
            f"got {washout} + {n_train} + {n_test}"
        )
    series = santa_fe_laser()
    n_fit = washout + n_train
    mean, std = float(series[:n_fit].mean()), float(series[:n_fit].std())
    z = (series[: n_used + 1] - mean) / std
    return OneStepSplit(
        train_inputs=z[:n_fit],
        train_targets=z[1 : n_fit + 1],
        test_inputs=z[n_fit:n_used],
        test_targets=z[n_fit + 1 : n_used + 1],
        washout=washout,
        mean=mean,
        std=std,
    )


# ----------------------------------------------------------------------------------------------------------
# Channel equalisation
# ----------------------------------------------------------------------------------------------------------

# Tap weights h_k of q(n) = sum_k h_k d(n - k) for k = -2..7 (Jaeger & Haas 2004).
_CHANNEL_TAPS = np.array([0.08, -0.12, 1.0, 0.18, -0.1, 0.091, -0.05, 0.04, 0.03, 0.01])
_TAPS_AHEAD = 2  # q(n) uses d(n+2) and d(n+1)
_TAPS_BEHIND = 7  # ... down to d(n-7)
_TARGET_DELAY = 2  # the equaliser outputs d(n-2)


def channel(d: np.ndarray) -> np.ndarray:
    """Noiseless nonlinear channel of Jaeger & Haas (Science 2004).

    q(n) = 0.08 d(n+2) - 0.12 d(n+1) + d(n) + 0.18 d(n-1) - 0.1 d(n-2) + 0.091 d(n-3) - 0.05 d(n-4)
           + 0.04 d(n-5) + 0.03 d(n-6) + 0.01 d(n-7)
    u(n) = q(n) + 0.036 q(n)^2 - 0.011 q(n)^3

    Only the n for which every tap is available are returned: output ``i`` is u(n) with d(n) = ``d[i + 7]``,
    so ``len(d) - 9`` values. The equalisation target d(n-2) of output ``i`` is ``d[i + 5]``.

    Args:
        d: symbol sequence, shape (L,) or (L, 1), L >= 10.

    Returns:
        float64 array of shape (L - 9, 1).
    """
    d = check_array("d", d, ndim=(1, 2))
    if d.ndim == 2 and d.shape[1] != 1:
        raise ValueError(f"d must have shape (L,) or (L, 1), got shape {d.shape}")
    d = d.reshape(-1).astype(np.float64)
    n_taps = _CHANNEL_TAPS.size
    if d.size < n_taps:
        raise ValueError(f"d must hold at least {n_taps} symbols (one full channel window), got {d.size}")
    # np.convolve flips the kernel: full[j] = sum_k taps[k] d[j - k], and taps[k] multiplies d(n + 2 - k).
    q = np.convolve(d, _CHANNEL_TAPS, mode="valid")
    return (q + 0.036 * q**2 - 0.011 * q**3).reshape(-1, 1)


def channel_equalisation(n_symbols: int, snr_db: float | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Channel equalisation task (Jaeger & Haas, Science 2004): received signal u(n) and target d(n-2).

    Symbols d(n) are i.i.d. uniform over {-3, -1, 1, 3}; u(n) = :func:`channel` + v(n) with v white Gaussian
    noise. SNR is defined as SNR_dB = 10 log10(Var(u_clean) / Var(v)), with Var(u_clean) the sample variance
    of the generated noiseless signal. ``snr_db=None`` or ``inf`` gives the noiseless channel (the same
    symbols as with noise, for the same seed: symbols are drawn before the noise).

    Returns:
        (u, d) each float64 of shape (n_symbols, 1), with ``d[n]`` = d(n-2) aligned with ``u[n]`` = u(n).
    """
    n_symbols = check_scalar("n_symbols", n_symbols, POSITIVE_INT)
    seed = check_scalar("seed", seed, SEED)
    noiseless = snr_db is None or (isinstance(snr_db, int | float | np.floating) and snr_db == np.inf)
    if not noiseless:
        snr_db = check_scalar("snr_db", snr_db, Interval(None, None))
    rng = np.random.default_rng(seed)
    # Extra symbols at both ends so every u(n) has its full window d(n+2) .. d(n-7).
    d = rng.choice(SYMBOLS, size=n_symbols + _TAPS_AHEAD + _TAPS_BEHIND)
    u = channel(d)
    if not noiseless:
        noise_std = np.sqrt(u.var() / 10.0 ** (snr_db / 10.0))
        u = u + noise_std * rng.standard_normal(u.shape)
    target = d[_TAPS_BEHIND - _TARGET_DELAY : _TAPS_BEHIND - _TARGET_DELAY + n_symbols]
    return u, target.reshape(-1, 1)


# ----------------------------------------------------------------------------------------------------------
# Memory capacity
# ----------------------------------------------------------------------------------------------------------


def memory_capacity_data(n_steps: int, seed: int, max_delay: int) -> tuple[np.ndarray, np.ndarray]:
    """Input and delayed-copy targets for the memory capacity task (Jaeger 2002, GMD Report 152).

    u(n) i.i.d. uniform in [-0.5, 0.5] (a common choice; the MC of a linear reservoir does not depend on the
    input scale, and for a nonlinear one the scale belongs to the reservoir's input scaling); target column
    k-1 is u(n-k) for k = 1..max_delay. For n < k, u(n-k) lies before the sequence and is set to 0 (what a
    reservoir started from rest has "seen"), which is not a valid target: the caller must discard at least
    ``max_delay`` steps (washout >= max_delay).

    Returns:
        (u, targets): shapes (n_steps, 1) and (n_steps, max_delay), float64.
    """
    n_steps = check_scalar("n_steps", n_steps, POSITIVE_INT)
    seed = check_scalar("seed", seed, SEED)
    max_delay = check_scalar("max_delay", max_delay, POSITIVE_INT)
    if max_delay >= n_steps:
        raise ValueError(f"max_delay must be smaller than n_steps={n_steps}, got {max_delay}")
    u = np.random.default_rng(seed).uniform(-0.5, 0.5, size=n_steps)
    targets = np.zeros((n_steps, max_delay))
    for k in range(1, max_delay + 1):
        targets[k:, k - 1] = u[:-k]
    return u.reshape(-1, 1), targets


def variable_delay(n_steps: int, seed: int, max_delay: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Variable-delay memory task, in the spirit of the VARDEL5 task of Hermans et al. (PRL 117, 128301, 2016).

    The paper's exact definition was not retrieved; this one is ours.  Two input channels:
    u(n) i.i.d. uniform in [−1, 1], and a delay indicator c(n) = 2 (d(n) − 1) / (max_delay − 1) − 1 in [−1, 1]
    encoding a delay d(n) drawn i.i.d. uniformly from {1, …, max_delay} at every step.  The target is
    y(n) = u(n − d(n)): recall the input from d(n) steps ago, with d(n) chosen by the second channel.  A fixed
    linear readout of a reservoir cannot simply pick one delay: it has to combine c(n) with the memory of u
    multiplicatively, which is what training the input side can help with.

    Returns:
        (inputs (n_steps, 2), targets (n_steps, 1)), float64.  For n < d(n) the target lies before the
        sequence and is 0: discard at least ``max_delay`` steps (washout ≥ max_delay).
    """
    n_steps = check_scalar("n_steps", n_steps, POSITIVE_INT)
    seed = check_scalar("seed", seed, SEED)
    max_delay = check_scalar("max_delay", max_delay, POSITIVE_INT)
    if max_delay < 2:
        raise ValueError(f"max_delay must be at least 2 (a choice of delays), got {max_delay}")
    if max_delay >= n_steps:
        raise ValueError(f"max_delay must be smaller than n_steps={n_steps}, got {max_delay}")
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.0, 1.0, n_steps)
    delay = rng.integers(1, max_delay + 1, n_steps)
    indicator = 2.0 * (delay - 1) / (max_delay - 1) - 1.0
    source = np.arange(n_steps) - delay
    target = np.where(source >= 0, u[np.maximum(source, 0)], 0.0)
    return np.stack([u, indicator], axis=1), target.reshape(-1, 1)


# ----------------------------------------------------------------------------------------------------------
# Digits (stand-in for MNIST / TIMIT)
# ----------------------------------------------------------------------------------------------------------


def digits_sequences(order: str = "rows") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as sequences of 8 steps with 8 features (offline, no download).

    Pixel values 0..16 are divided by 16 into [0, 1]. With ``order="rows"`` step t is image row t (top to
    bottom); with ``order="columns"`` step t is image column t (left to right).

    Returns:
        (sequences, labels): float64 (1797, 8, 8) laid out (sample, time, feature), and int64 (1797,).
    """
    order = check_choice("order", order, ("rows", "columns"))
    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0
    if order == "columns":
        images = images.transpose(0, 2, 1)
    return np.ascontiguousarray(images), digits.target.astype(np.int64)


def digits_train_test_split(
    sequences: np.ndarray, labels: np.ndarray, test_size: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic stratified split (class proportions kept in both parts).

    Returns:
        (train_sequences, test_sequences, train_labels, test_labels).
    """
    sequences = check_array("sequences", sequences, ndim=3)
    labels = check_array("labels", labels, ndim=1)
    if len(labels) != len(sequences):
        raise ValueError(f"sequences and labels must hold the same number of samples, got shapes "
                         f"{sequences.shape} and {labels.shape}")
    test_size = check_scalar("test_size", test_size, Interval(0, 1, "neither"))
    seed = check_scalar("seed", seed, SEED)
    return tuple(train_test_split(sequences, labels, test_size=test_size, random_state=seed, stratify=labels))


# ----------------------------------------------------------------------------------------------------------
# Japanese vowels (speaker identification from LPC cepstra)
# ----------------------------------------------------------------------------------------------------------

JAPANESE_VOWELS_DIR = Path(__file__).resolve().parent / "data" / "japanese_vowels"
# SHA-256 of the uncompressed .ts files (aeon 1.6.0's copy; see data/japanese_vowels/README.md).
_JAPANESE_VOWELS_SHA256 = {
    "TRAIN": "68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd",
    "TEST": "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462",
}
_JAPANESE_VOWELS_RESTORE = (
    "the file ships with this repository (experiments/data/japanese_vowels/): restore it with "
    "'git checkout -- experiments/data/japanese_vowels' or reinstall the package (pip install -e .)"
)


def read_ts(text: str, source: str) -> tuple[list[np.ndarray], list[str]]:
    """Parse a UEA/UCR ``.ts`` file's text: every case as a (T, D) float64 array, and its class label.

    Format: ``#`` comment lines and ``@`` header lines, then after ``@data`` one case per line, its D
    dimensions separated by ``:`` and ending with the class label, each dimension a comma-separated series.
    ``source`` names the file in error messages.
    """
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    except StopIteration:
        raise ValueError(f"{source} is not a .ts file (no @data line); {_JAPANESE_VOWELS_RESTORE}") from None
    cases, labels = [], []
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        *dimensions, label = line.strip().split(":")
        try:
            series = [np.array(d.split(","), dtype=np.float64) for d in dimensions]
            cases.append(np.stack(series, axis=1))
        except ValueError as error:
            raise ValueError(f"{source}, line {number}: malformed case ({error})") from None
        labels.append(label.strip())
    return cases, labels


def _read_japanese_vowels_part(part: str) -> tuple[list[np.ndarray], np.ndarray]:
    path = JAPANESE_VOWELS_DIR / f"JapaneseVowels_{part}.ts.gz"
    if not path.is_file():
        raise FileNotFoundError(f"Japanese vowels data file {path} is missing; {_JAPANESE_VOWELS_RESTORE}")
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as error:
        raise ValueError(f"Japanese vowels data file {path} is corrupted ({error}); "
                         f"{_JAPANESE_VOWELS_RESTORE}") from None
    if hashlib.sha256(raw).hexdigest() != _JAPANESE_VOWELS_SHA256[part]:
        raise ValueError(f"Japanese vowels data file {path} is corrupted (SHA-256 differs from the shipped "
                         f"file's); {_JAPANESE_VOWELS_RESTORE}")
    cases, labels = read_ts(raw.decode("utf-8"), str(path))
    return cases, np.array([int(label) - 1 for label in labels], dtype=np.int64)  # speakers 1..9 -> 0..8


def japanese_vowels() -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]:
    """The Japanese vowels data (Kudo, Toyama & Shimbo 1999; UCI, CC BY 4.0), read from the shipped files.

    Nine speakers, 12 LPC cepstrum coefficients per frame, 7-29 frames per utterance; the published split of
    270 training (30 per speaker) and 370 test utterances. Nothing is downloaded: the UEA ``.ts`` files ship
    gzip-compressed in ``experiments/data/japanese_vowels`` and are checked against their SHA-256 first.

    Returns:
        (train_sequences, train_labels, test_sequences, test_labels): lists of (T_i, 12) float64 arrays and
        int64 speaker labels 0..8.

    Raises:
        FileNotFoundError / ValueError: a missing or corrupted file, named, with how to restore it.
    """
    train, train_labels = _read_japanese_vowels_part("TRAIN")
    test, test_labels = _read_japanese_vowels_part("TEST")
    return train, train_labels, test, test_labels


# ----------------------------------------------------------------------------------------------------------
# MNIST-1D
# ----------------------------------------------------------------------------------------------------------


def mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D (Greydanus 2020, package ``mnist1d``, Apache-2.0), generated locally with the package's own
    generator and default arguments: 5000 sequences of length 40, 10 classes (500 each), standardised over
    the whole set to mean 0 and standard deviation 1; its split, 4000 train / 1000 test.

    ``mnist1d.data.make_dataset`` is called directly (numpy and scipy only; no torch). The package's
    ``get_dataset`` would download a pickle or write one to the working directory: never called. The
    generator seeds NumPy's and Python's *global* generators with its default seed 42; their states are
    saved and restored around the call, so generating the data leaves the caller's randomness untouched.

    Returns:
        (train_x (4000, 40, 1), train_y (4000,), test_x (1000, 40, 1), test_y (1000,)): float64 and int64.

    Raises:
        ImportError: if ``mnist1d`` is not installed (``pip install mnist1d``, declared in pyproject.toml).
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as error:
        raise ImportError("MNIST-1D is generated by the mnist1d package, which is not installed: "
                          "pip install mnist1d (or pip install -e . to get every declared dependency)") from error
    # The generator's own legacy global seeding, undone afterwards (not our randomness: ours uses Generators).
    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)
    return (data["x"][..., None].astype(np.float64), data["y"].astype(np.int64),
            data["x_test"][..., None].astype(np.float64), data["y_test"].astype(np.int64))


# ----------------------------------------------------------------------------------------------------------
# One split interface: train / validation / test parts of a task, from one data seed
# ----------------------------------------------------------------------------------------------------------

KINDS = ("regression", "classification")


class Part(NamedTuple):
    """One part of a task's data.

    Regression (one continuing series): ``inputs`` (T, D), ``targets`` (T, O). Classification (independent
    sequences): ``inputs`` (B, T, D), zero-padded at the end to a common T; ``targets`` (B,) int64 labels;
    ``lengths`` (B,) the number of valid steps of each sequence (``None`` for regression).
    """

    inputs: np.ndarray
    targets: np.ndarray
    lengths: np.ndarray | None = None


@dataclass(frozen=True)
class TaskData:
    """A task's train / validation / test parts and what is needed to score them.

    Protocol: hyperparameters are chosen by fitting on ``train`` and scoring on ``validation``; the chosen
    model is then re-fitted on :meth:`fit_part` (train followed by validation) and scored once on ``test``.

    Regression parts are consecutive segments of one series, ``train | validation | test`` in time order, so
    a reservoir run over :meth:`series_inputs` is in the right state at the start of every part; the first
    ``washout`` steps of ``train`` only warm it up and are never fitted. Classification parts are sets of
    independent sequences (``washout`` is 0), all padded to the same length.

    Attributes:
        name: the task's name.
        kind: ``"regression"`` or ``"classification"``.
        metric: the name of the test metric in ``experiments.metrics`` (``"nmse"``, ``"symbol_error_rate"``,
            ``"error_rate"``); :meth:`score` applies it.
        washout: leading steps of ``train`` not fitted (regression).
        train, validation, test: the parts.
        n_classes: number of classes (classification), else 0.
        seed: the data seed the split was built from.
    """

    name: str
    kind: str
    metric: str
    washout: int
    train: Part
    validation: Part
    test: Part
    n_classes: int = 0
    seed: int = 0

    def fit_part(self) -> Part:
        """Train and validation together: what the chosen model is re-fitted on before the test."""
        return _concatenate(self.train, self.validation)

    def series_inputs(self) -> np.ndarray:
        """Regression: the whole input series, train | validation | test, (T_total, D)."""
        if self.kind != "regression":
            raise ValueError(f"series_inputs() is for regression tasks, {self.name!r} is {self.kind}")
        return np.concatenate([self.train.inputs, self.validation.inputs, self.test.inputs])

    def score(self, part: Part, prediction: np.ndarray) -> float:
        """The task's metric on ``part``: ``prediction`` is the continuous output (T, O) for regression
        (symbols are decided inside ``symbol_error_rate``), class scores (B, C) or labels (B,) for
        classification."""
        if self.kind == "classification":
            prediction = np.asarray(prediction)
            labels = prediction.argmax(-1) if prediction.ndim == 2 else prediction
            return metrics.error_rate(part.targets, labels)
        return float(getattr(metrics, self.metric)(part.targets, prediction))


def _concatenate(first: Part, second: Part) -> Part:
    lengths = None if first.lengths is None else np.concatenate([first.lengths, second.lengths])
    return Part(np.concatenate([first.inputs, second.inputs]), np.concatenate([first.targets, second.targets]),
                lengths)


def series_split(name: str, metric: str, inputs: np.ndarray, targets: np.ndarray, washout: int, n_train: int,
                 n_validation: int, seed: int) -> TaskData:
    """Cut one series into washout + ``n_train`` train steps, then validation, then test (the rest)."""
    first, second = washout + n_train, washout + n_train + n_validation
    if second >= len(inputs):
        raise ValueError(f"washout + n_train + n_validation must be smaller than the series length "
                         f"{len(inputs)}, got {washout} + {n_train} + {n_validation}")
    parts = [Part(inputs[a:b], targets[a:b]) for a, b in ((0, first), (first, second), (second, None))]
    return TaskData(name, "regression", metric, washout, *parts, seed=seed)


def padded(sequences: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length (T_i, D) sequences -> zero-padded (B, max T_i, D) array and the lengths (B,)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    batch = np.zeros((len(sequences), int(lengths.max()), sequences[0].shape[1]))
    for row, sequence in zip(batch, sequences, strict=True):
        row[: len(sequence)] = sequence
    return batch, lengths


def classification_split(name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                         test_y: np.ndarray, n_classes: int, validation_fraction: float, seed: int,
                         train_lengths: np.ndarray | None = None,
                         test_lengths: np.ndarray | None = None) -> TaskData:
    """A published train/test split, with a stratified validation part carved from train by ``seed``."""
    validation_fraction = check_scalar("validation_fraction", validation_fraction, Interval(0, 1, "neither"))
    if train_lengths is None:
        train_lengths = np.full(len(train_x), train_x.shape[1], dtype=np.int64)
        test_lengths = np.full(len(test_x), test_x.shape[1], dtype=np.int64)
    fit, held = train_test_split(np.arange(len(train_y)), test_size=validation_fraction, random_state=seed,
                                 stratify=train_y)
    fit, held = np.sort(fit), np.sort(held)
    return TaskData(name, "classification", "error_rate", 0,
                    Part(train_x[fit], train_y[fit], train_lengths[fit]),
                    Part(train_x[held], train_y[held], train_lengths[held]),
                    Part(test_x, test_y, test_lengths), n_classes=n_classes, seed=seed)


def narma10_task(seed: int, washout: int = 200, n_train: int = 3000, n_validation: int = 1000,
                 n_test: int = 2000) -> TaskData:
    """NARMA10 (the usual protocol): 200 washout, 3000 train + 1000 validation (4000 fitted after the
    search), 2000 test steps, from :func:`narma10` with ``seed``."""
    n_test = check_scalar("n_test", n_test, POSITIVE_INT)
    u, y = narma10(washout + n_train + n_validation + n_test, seed=seed)
    return series_split("narma10", "nmse", u, y, washout, n_train, n_validation, seed)


def variable_delay_task(seed: int, washout: int = 200, n_train: int = 3000, n_validation: int = 1000,
                        n_test: int = 2000) -> TaskData:
    """The variable-delay recall task (:func:`variable_delay`), laid out as :func:`narma10_task`."""
    n_test = check_scalar("n_test", n_test, POSITIVE_INT)
    u, y = variable_delay(washout + n_train + n_validation + n_test, seed=seed)
    return series_split("variable_delay", "nmse", u, y, washout, n_train, n_validation, seed)


def channel_equalisation_task(seed: int, snr_db: float | None = 28.0, washout: int = 100,
                              n_train: int = 7900, n_validation: int = 2000,
                              n_test: int = 200_000) -> TaskData:
    """Channel equalisation (Jaeger & Haas 2004) at ``snr_db``: 100 washout, 7900 train, 2000 validation
    (10,000 symbols fitted after the search) and 200,000 test symbols, so the test SER resolves 5e-6 (one
    error). The metric is the symbol error rate; validation scores use the same."""
    n_test = check_scalar("n_test", n_test, POSITIVE_INT)
    u, d = channel_equalisation(washout + n_train + n_validation + n_test, snr_db=snr_db, seed=seed)
    suffix = "" if snr_db is None else f"@{snr_db:g}dB"
    return series_split(f"channel_equalisation{suffix}", "symbol_error_rate", u, d, washout, n_train,
                        n_validation, seed)


def digits_task(seed: int, order: str = "rows", test_size: float = 0.25,
                validation_fraction: float = 0.2) -> TaskData:
    """scikit-learn's 8x8 digits as 8-step sequences (:func:`digits_sequences`): a stratified test quarter
    and a stratified validation fifth of the rest, both drawn by ``seed``."""
    sequences, labels = digits_sequences(order)
    train_x, test_x, train_y, test_y = digits_train_test_split(sequences, labels, test_size, seed)
    return classification_split("digits", train_x, train_y, test_x, test_y, 10, validation_fraction, seed)


def japanese_vowels_task(seed: int, validation_fraction: float = 0.2) -> TaskData:
    """Japanese vowels (:func:`japanese_vowels`): the published 270 / 370 split, a stratified validation part
    (a fifth, 6 utterances per speaker) carved from the 270 by ``seed``; sequences zero-padded to 29 frames,
    their lengths in ``Part.lengths``."""
    train, train_y, test, test_y = japanese_vowels()
    train_x, train_lengths = padded(train)
    test_x, test_lengths = padded(test)
    width = max(train_x.shape[1], test_x.shape[1])
    train_x, test_x = (np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0))) for x in (train_x, test_x))
    return classification_split("japanese_vowels", train_x, train_y, test_x, test_y, 9, validation_fraction,
                                seed, train_lengths, test_lengths)


def mnist1d_task(seed: int, validation_fraction: float = 0.2) -> TaskData:
    """MNIST-1D (:func:`mnist1d`): the package's 4000 / 1000 split, a stratified validation fifth of the
    4000 drawn by ``seed``; sequences of 40 steps with one input channel."""
    train_x, train_y, test_x, test_y = mnist1d()
    return classification_split("mnist1d", train_x, train_y, test_x, test_y, 10, validation_fraction, seed)


TASKS = {
    "narma10": narma10_task,
    "variable_delay": variable_delay_task,
    "channel_equalisation": channel_equalisation_task,
    "digits": digits_task,
    "japanese_vowels": japanese_vowels_task,
    "mnist1d": mnist1d_task,
}


def load_task(name: str, seed: int, **options: Any) -> TaskData:
    """The :class:`TaskData` of task ``name`` (one of ``TASKS``) for data seed ``seed``; ``options`` go to its
    builder (e.g. ``snr_db`` for channel equalisation, shorter parts for quick runs)."""
    name = check_choice("name", name, tuple(TASKS))
    seed = check_scalar("seed", seed, SEED)
    return TASKS[name](seed, **options)
