"""Malformed arguments thrown at the public API: every one must be refused with a ValueError/TypeError whose
message names the argument, raised by the project's own validation (never from inside JAX, NumPy, SciPy or
optax, never a silent NaN).

Hypothesis generates the malformed values: numbers outside their interval, NaN/inf, wrong types (strings,
None, booleans, complex numbers, arrays where a scalar belongs), arrays of the wrong rank or axis length,
with NaN/inf or float32-overflowing entries, of non-numeric or complex dtype, empty or ragged, unknown names
for choices, and inconsistent combinations (washout ≥ T, batch_size > samples, labels out of range, ...).
``derandomize=True`` makes every run (and CI) see the same examples.  Each executed example is counted;
``test_zz_count`` (last in the file, so last to run) checks that at least ``MIN_EXAMPLES`` generated ones ran
when the whole module was run, and reports the count.

Validation happens before anything is compiled, so the whole module runs in a few seconds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, given, settings
from hypothesis import strategies as st

import hardware_sim.nonidealities as nl
from experiments import metrics, tasks
from hardware_sim import Device, delay_device, wrap_device
from readout import (
    LinearReadout,
    Ridge,
    RidgeCV,
    RLSState,
    StreamingRidge,
    apply_readout,
    fit_readout,
    learning_rate_schedule,
    linear_readout,
    lms_fit,
    make_optimizer,
    mlp_readout,
    one_hot,
    pool_states,
    predict_labels,
    readout_loss,
    ridge_statistics,
    rls_fit,
    rls_init,
    solve_ridge,
    train,
    with_inputs,
)
from reservoir import (
    DivergenceError,
    bptt_loss,
    delay_from_arrays,
    delay_reservoir,
    esn,
    esn_from_arrays,
    generate,
    run,
    run_states,
    simple_cycle_reservoir,
    split_trainable,
)
from reservoir.validation import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    UNIT_OPEN_LEFT,
    Interval,
)

MIN_EXAMPLES = 500
REAL = Interval(None, None)
FRACTION = Interval(0, 1, "left")
BITS = Interval(1, 32, "both", integer=True)
EXPONENT = Interval(1, None, "left")
OPEN_UNIT = Interval(0, 1, "neither")

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# ----------------------------------------------------------------------------------------------- counting

_EXECUTED = {"generated": 0, "fixed": 0}  # calls with a malformed argument: drawn by hypothesis, or written out
_TESTS_RUN: set[str] = set()


def rejected(call: Callable[[], Any], *names: str) -> BaseException:
    """``call()`` must raise ValueError/TypeError from the project's code, naming one of ``names``."""
    _EXECUTED["generated" if currently_in_test_context() else "fixed"] += 1
    _TESTS_RUN.add(os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0])
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    error, message = info.value, str(info.value)
    assert message, f"{type(error).__name__} without a message"
    assert any(name in message for name in names), f"message does not name {names}: {message!r}"
    frame = info.traceback[-1]
    assert "site-packages" not in str(frame.path), f"raised inside a dependency ({frame.path}): {message!r}"
    return error


def validation_error(call: Callable[[], Any], *names: str) -> None:
    """``rejected``, and by argument checking, not by a run that went on to diverge."""
    error = rejected(call, *names)
    assert not isinstance(error, DivergenceError), f"validation let the run start: {error}"


# ------------------------------------------------------------------------------------------------ fixtures

RNG = np.random.default_rng(0)


ESN = esn(6, 2, seed=0)
ESN_FB = esn(6, 1, seed=0, n_feedback=1)
DELAY = delay_reservoir(5, 2, seed=0)
U = RNG.uniform(-1, 1, (8, 2))
X = RNG.normal(size=(20, 3))
Y = RNG.normal(size=(20, 1))
STATS = ridge_statistics(X, Y)
FITTED = Ridge().fit(X, Y)
READOUT = linear_readout(3, 1, seed=0)
ESN_READOUT = LinearReadout(np.zeros((8, 2)), np.zeros(2))  # reads [x(t), u(t)] of ESN, feeds its 2 inputs
LABELS = np.arange(20) % 3
DEVICE = delay_device(5, 2, seed=0)
TRAINABLE, COMBINE = split_trainable(DELAY, ["mask"])
SEQUENCES = RNG.uniform(size=(12, 4, 3))
SEQUENCE_LABELS = np.arange(12) % 2
SYMBOL_TRUE = np.tile(tasks.SYMBOLS, 5)
CURVES = RNG.normal(size=(3, 90))
MC_TARGETS = RNG.normal(size=(30, 4))
MG_HISTORY = np.ones(171)


def linear(readout: LinearReadout, state: jnp.ndarray) -> jnp.ndarray:
    return readout(state)


BPTT_READOUT = LinearReadout(jnp.zeros((5, 1)), jnp.zeros(1))


def fit_short(features: Any = X, targets: Any = Y, **options: Any):
    return fit_readout(features, targets, **{"n_epochs": 1, "batch_size": 4, "progress": False, **options})


def train_short(**options: Any):
    return train(readout_loss("mse"), READOUT, (X, Y), **{"n_epochs": 1, "batch_size": 4, "progress": False,
                                                           **options})


# ------------------------------------------------------------------------------------ malformed scalars

NOT_A_NUMBER = st.one_of(
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.just(np.True_),
    st.complex_numbers(allow_nan=False, allow_infinity=False, max_magnitude=1e3).filter(lambda z: z.imag != 0),
    st.just(np.complex128(0.5 + 0.5j)),
    st.just(np.str_("1")),
    st.lists(st.floats(0, 1), min_size=2, max_size=3),
    st.just(np.array([0.5, 0.5])),
    st.just(object()),
)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf")])


def violating(constraint: Interval, none_is_valid: bool = False) -> st.SearchStrategy:
    """Values that ``constraint`` refuses: out of the interval, non-finite, of the wrong type."""
    options = [NOT_A_NUMBER.filter(lambda v: v is not None) if none_is_valid else NOT_A_NUMBER, NON_FINITE]
    low, high = constraint.low, constraint.high
    low_in = constraint.closed in ("both", "left")
    high_in = constraint.closed in ("both", "right")
    if constraint.integer:
        options.append(st.floats(allow_nan=False, allow_infinity=False))  # a float is not an integer
        options.append(st.just(np.float64(2.0)))
        if low is not None:
            options.append(st.integers(max_value=math.ceil(low) - (1 if low_in else 0)))
        if high is not None:
            options.append(st.integers(min_value=math.floor(high) + (1 if high_in else 0)))
    else:
        if low is not None:
            below = float(np.nextafter(low, -np.inf)) if low_in else float(low)
            options.append(st.floats(max_value=below, allow_nan=False, allow_infinity=False))
            options.append(st.integers(max_value=math.ceil(low) - 1))
        if high is not None:
            above = float(np.nextafter(high, np.inf)) if high_in else float(high)
            options.append(st.floats(min_value=above, allow_nan=False, allow_infinity=False))
        options.append(st.just(10**400))  # beyond the float range
    return st.one_of(options)


@dataclass(frozen=True)
class Scalar:
    call: Callable[[Any], Any]  # the public function, the malformed value in place of one argument
    name: str
    constraint: Interval
    none_is_valid: bool = False
    inf_is_valid: bool = False  # +inf is a valid value (a noiseless channel)


SCALARS = {
    # reservoir
    "esn.n_units": Scalar(lambda v: esn(v, seed=0), "n_units", POSITIVE_INT),
    "esn.n_inputs": Scalar(lambda v: esn(4, v, seed=0), "n_inputs", POSITIVE_INT),
    "esn.seed": Scalar(lambda v: esn(4, seed=v), "seed", SEED),
    "esn.spectral_radius": Scalar(lambda v: esn(4, seed=0, spectral_radius=v), "spectral_radius", POSITIVE),
    "esn.density": Scalar(lambda v: esn(4, seed=0, density=v), "density", UNIT_OPEN_LEFT),
    "esn.input_scaling": Scalar(lambda v: esn(4, seed=0, input_scaling=v), "input_scaling", NON_NEGATIVE),
    "esn.input_density": Scalar(lambda v: esn(4, seed=0, input_density=v), "input_density", UNIT_OPEN_LEFT),
    "esn.bias_scaling": Scalar(lambda v: esn(4, seed=0, bias_scaling=v), "bias_scaling", NON_NEGATIVE),
    "esn.leak_rate": Scalar(lambda v: esn(4, seed=0, leak_rate=v), "leak_rate", UNIT_OPEN_LEFT),
    "esn.n_feedback": Scalar(lambda v: esn(4, seed=0, n_feedback=v), "n_feedback", NON_NEGATIVE_INT),
    "esn.feedback_scaling": Scalar(lambda v: esn(4, seed=0, n_feedback=1, feedback_scaling=v),
                                   "feedback_scaling", NON_NEGATIVE),
    "scr.n_units": Scalar(lambda v: simple_cycle_reservoir(v), "n_units", POSITIVE_INT),
    "scr.cycle_weight": Scalar(lambda v: simple_cycle_reservoir(4, cycle_weight=v), "cycle_weight", POSITIVE),
    "scr.input_weight": Scalar(lambda v: simple_cycle_reservoir(4, input_weight=v), "input_weight", POSITIVE),
    "scr.leak_rate": Scalar(lambda v: simple_cycle_reservoir(4, leak_rate=v), "leak_rate", UNIT_OPEN_LEFT),
    "scr.seed": Scalar(lambda v: simple_cycle_reservoir(4, seed=v), "seed", SEED),
    "esn_from_arrays.leak_rate": Scalar(lambda v: esn_from_arrays(np.eye(3), np.ones((3, 1)), leak_rate=v),
                                        "leak_rate", UNIT_OPEN_LEFT),
    "delay.n_units": Scalar(lambda v: delay_reservoir(v, seed=0), "n_units", POSITIVE_INT),
    "delay.n_inputs": Scalar(lambda v: delay_reservoir(4, v, seed=0), "n_inputs", POSITIVE_INT),
    "delay.seed": Scalar(lambda v: delay_reservoir(4, seed=v), "seed", SEED),
    "delay.input_gain": Scalar(lambda v: delay_reservoir(4, seed=0, input_gain=v), "input_gain", NON_NEGATIVE,
                               none_is_valid=True),
    "delay.feedback_gain": Scalar(lambda v: delay_reservoir(4, seed=0, feedback_gain=v), "feedback_gain",
                                  NON_NEGATIVE, none_is_valid=True),
    "delay.phase": Scalar(lambda v: delay_reservoir(4, seed=0, phase=v), "phase", REAL, none_is_valid=True),
    "delay.bias_mask_scaling": Scalar(lambda v: delay_reservoir(4, seed=0, bias_mask_scaling=v),
                                      "bias_mask_scaling", NON_NEGATIVE),
    "delay.node_separation": Scalar(lambda v: delay_reservoir(4, seed=0, model="sin2_lowpass", node_separation=v),
                                    "node_separation", POSITIVE, none_is_valid=True),
    "delay.exponent": Scalar(lambda v: delay_reservoir(4, seed=0, model="mackey_glass", exponent=v), "exponent",
                             EXPONENT, none_is_valid=True),
    "generate.n_steps": Scalar(lambda v: generate(ESN, ESN_READOUT, np.zeros(6), np.zeros(2), v),
                               "n_steps", POSITIVE_INT),
    "run_states.checkpoint_every": Scalar(lambda v: run_states(DELAY, U, checkpoint_every=v), "checkpoint_every",
                                          POSITIVE_INT, none_is_valid=True),
    "run_states.truncate_every": Scalar(lambda v: run_states(DELAY, U, truncate_every=v), "truncate_every",
                                        POSITIVE_INT, none_is_valid=True),
    "bptt_loss.washout": Scalar(lambda v: bptt_loss(TRAINABLE, COMBINE, linear, BPTT_READOUT, U, U[:, :1],
                                                    washout=v), "washout", NON_NEGATIVE_INT),
    # readout
    "Ridge.alpha": Scalar(lambda v: Ridge(alpha=v), "alpha", NON_NEGATIVE),
    "StreamingRidge.alpha": Scalar(lambda v: StreamingRidge(alpha=v), "alpha", NON_NEGATIVE),
    "RidgeCV.n_folds": Scalar(lambda v: RidgeCV(n_folds=v), "n_folds", POSITIVE_INT),
    "solve_ridge.alpha": Scalar(lambda v: solve_ridge(STATS, v), "alpha", NON_NEGATIVE),
    "Ridge.fit.washout": Scalar(lambda v: Ridge().fit(X, Y, washout=v), "washout", NON_NEGATIVE_INT),
    "train.learning_rate": Scalar(lambda v: train_short(learning_rate=v), "learning_rate", POSITIVE),
    "train.n_epochs": Scalar(lambda v: train_short(n_epochs=v), "n_epochs", POSITIVE_INT),
    "train.batch_size": Scalar(lambda v: train_short(batch_size=v), "batch_size", POSITIVE_INT),
    "train.l2": Scalar(lambda v: train_short(l2=v), "l2", NON_NEGATIVE),
    "train.validation_fraction": Scalar(lambda v: train_short(validation_fraction=v), "validation_fraction",
                                        FRACTION),
    "train.patience": Scalar(lambda v: train_short(patience=v, validation_fraction=0.2), "patience",
                             POSITIVE_INT, none_is_valid=True),
    "train.seed": Scalar(lambda v: train_short(seed=v), "seed", SEED),
    "fit_readout.learning_rate": Scalar(lambda v: fit_short(learning_rate=v), "learning_rate", POSITIVE),
    "fit_readout.batch_size": Scalar(lambda v: fit_short(batch_size=v), "batch_size", POSITIVE_INT),
    "fit_readout.seed": Scalar(lambda v: fit_short(seed=v), "seed", SEED),
    "mlp_readout.n_features": Scalar(lambda v: mlp_readout(v, (4,), 1, seed=0), "n_features", POSITIVE_INT),
    "mlp_readout.hidden_sizes": Scalar(lambda v: mlp_readout(3, (4, v), 1, seed=0), "hidden_sizes[1]",
                                       POSITIVE_INT),
    "linear_readout.n_outputs": Scalar(lambda v: linear_readout(3, v, seed=0), "n_outputs", POSITIVE_INT),
    "learning_rate_schedule.learning_rate": Scalar(lambda v: learning_rate_schedule("sgd", v, 10),
                                                   "learning_rate", POSITIVE),
    "learning_rate_schedule.total_steps": Scalar(lambda v: learning_rate_schedule("nesterov", 0.1, v),
                                                 "total_steps", POSITIVE_INT),
    "lms_fit.step_size": Scalar(lambda v: lms_fit(X, Y, step_size=v), "step_size", POSITIVE),
    "rls_fit.forgetting": Scalar(lambda v: rls_fit(X, Y, forgetting=v), "forgetting", UNIT_OPEN_LEFT),
    "rls_fit.delta": Scalar(lambda v: rls_fit(X, Y, delta=v), "delta", POSITIVE),
    "rls_init.n_features": Scalar(lambda v: rls_init(v, 1), "n_features", POSITIVE_INT),
    "rls_init.delta": Scalar(lambda v: rls_init(3, 1, delta=v), "delta", POSITIVE),
    "one_hot.n_classes": Scalar(lambda v: one_hot(LABELS, v), "n_classes", POSITIVE_INT),
    # experiments.tasks
    "narma10.n_steps": Scalar(lambda v: tasks.narma10(v, seed=0), "n_steps", POSITIVE_INT),
    "narma10.seed": Scalar(lambda v: tasks.narma10(10, seed=v), "seed", SEED),
    "narma10.warmup": Scalar(lambda v: tasks.narma10(10, seed=0, warmup=v), "warmup", NON_NEGATIVE_INT),
    "narma.order": Scalar(lambda v: tasks.narma(np.zeros(5), order=v), "order", POSITIVE_INT),
    "mackey_glass.n_steps": Scalar(lambda v: tasks.mackey_glass(v, seed=0), "n_steps", POSITIVE_INT),
    "mackey_glass.tau": Scalar(lambda v: tasks.mackey_glass(10, seed=0, tau=v), "tau", POSITIVE),
    "mackey_glass.dt": Scalar(lambda v: tasks.mackey_glass(10, seed=0, dt=v), "dt", UNIT_OPEN_LEFT),
    "mackey_glass.discard": Scalar(lambda v: tasks.mackey_glass(10, seed=0, discard=v), "discard",
                                   NON_NEGATIVE_INT),
    "mackey_glass.x0": Scalar(lambda v: tasks.mackey_glass(10, seed=0, x0=v), "x0", POSITIVE),
    "integrate_mackey_glass.n_samples": Scalar(lambda v: tasks.integrate_mackey_glass(MG_HISTORY, v),
                                               "n_samples", POSITIVE_INT),
    "channel_equalisation.n_symbols": Scalar(lambda v: tasks.channel_equalisation(v, 20.0, seed=0), "n_symbols",
                                             POSITIVE_INT),
    "channel_equalisation.snr_db": Scalar(lambda v: tasks.channel_equalisation(10, v, seed=0), "snr_db",
                                          REAL, none_is_valid=True, inf_is_valid=True),
    "channel_equalisation.seed": Scalar(lambda v: tasks.channel_equalisation(10, 20.0, seed=v), "seed", SEED),
    "memory_capacity_data.n_steps": Scalar(lambda v: tasks.memory_capacity_data(v, 0, 2), "n_steps",
                                           POSITIVE_INT),
    "memory_capacity_data.max_delay": Scalar(lambda v: tasks.memory_capacity_data(10, 0, v), "max_delay",
                                             POSITIVE_INT),
    "variable_delay.n_steps": Scalar(lambda v: tasks.variable_delay(v, seed=0), "n_steps", POSITIVE_INT),
    "variable_delay.max_delay": Scalar(lambda v: tasks.variable_delay(10, seed=0, max_delay=v), "max_delay",
                                       POSITIVE_INT),
    "santa_fe_one_step.n_train": Scalar(lambda v: tasks.santa_fe_one_step(n_train=v), "n_train", POSITIVE_INT),
    "digits_train_test_split.test_size": Scalar(
        lambda v: tasks.digits_train_test_split(SEQUENCES, SEQUENCE_LABELS, test_size=v), "test_size", OPEN_UNIT),
    # experiments.metrics
    "nrmse84.signal_variance": Scalar(lambda v: metrics.nrmse84(CURVES, CURVES, v), "signal_variance", POSITIVE),
    "nrmse84.step": Scalar(lambda v: metrics.nrmse84(CURVES, CURVES, 0.1, step=v), "step", POSITIVE_INT),
    # hardware_sim
    "wrap_device.seed": Scalar(lambda v: wrap_device(DELAY, seed=v), "seed", SEED),
    "wrap_device.mismatch": Scalar(lambda v: wrap_device(DELAY, seed=0, mismatch=v), "mismatch", NON_NEGATIVE),
    "wrap_device.harmonic": Scalar(lambda v: wrap_device(DELAY, seed=0, harmonic=v), "harmonic", REAL),
    "wrap_device.gain_spread": Scalar(lambda v: wrap_device(DELAY, seed=0, gain_spread=v), "gain_spread",
                                      NON_NEGATIVE),
    "wrap_device.offset_spread": Scalar(lambda v: wrap_device(DELAY, seed=0, offset_spread=v), "offset_spread",
                                        NON_NEGATIVE),
    "wrap_device.bandwidth": Scalar(lambda v: wrap_device(DELAY, seed=0, bandwidth=v), "bandwidth", POSITIVE,
                                    none_is_valid=True),
    "wrap_device.multiplicative_noise": Scalar(lambda v: wrap_device(DELAY, seed=0, multiplicative_noise=v),
                                               "multiplicative_noise", NON_NEGATIVE),
    "wrap_device.snr_db": Scalar(lambda v: wrap_device(DELAY, seed=0, snr_db=v), "snr_db", REAL,
                                 none_is_valid=True),
    "wrap_device.dac_bits": Scalar(lambda v: wrap_device(DELAY, seed=0, dac_bits=v), "dac_bits", BITS,
                                   none_is_valid=True),
    "wrap_device.adc_bits": Scalar(lambda v: wrap_device(DELAY, seed=0, adc_bits=v), "adc_bits", BITS,
                                   none_is_valid=True),
    "wrap_device.drift": Scalar(lambda v: wrap_device(DELAY, seed=0, drift=v), "drift", NON_NEGATIVE),
    "delay_device.n_units": Scalar(lambda v: delay_device(v, seed=0), "n_units", POSITIVE_INT),
    "Device.seed": Scalar(lambda v: Device(DELAY, seed=v), "seed", SEED),
    "mismatch.relative": Scalar(lambda v: nl.mismatch({"input_gain": v}, seed=0), "relative['input_gain']",
                                NON_NEGATIVE),
    "drift.absolute": Scalar(lambda v: nl.drift(absolute={"phase": v}, seed=0), "absolute['phase']",
                             NON_NEGATIVE),
    "node_spread.gain_std": Scalar(lambda v: nl.node_spread(v, seed=0), "gain_std", NON_NEGATIVE),
    "lowpass.bandwidth": Scalar(lambda v: nl.lowpass(v), "bandwidth", POSITIVE),
    "multiplicative_noise.std": Scalar(lambda v: nl.multiplicative_noise(v), "std", NON_NEGATIVE),
    "detection_noise.snr_db": Scalar(lambda v: nl.detection_noise(v), "snr_db", REAL),
    "harmonic.strength": Scalar(lambda v: nl.harmonic(v), "strength", REAL),
    "adc.bits": Scalar(lambda v: nl.adc(v), "bits", BITS),
    "dac.bits": Scalar(lambda v: nl.dac(v), "bits", BITS),
    "quantise.bits": Scalar(lambda v: nl.quantise(jnp.zeros(3), v, -1.0, 1.0), "bits", BITS),
    "quantise.low": Scalar(lambda v: nl.quantise(jnp.zeros(3), 4, v, 1.0), "low", Interval(None, 1, "left")),
}


@pytest.mark.parametrize("case", list(SCALARS.values()), ids=list(SCALARS))
@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_malformed_scalar_is_rejected(case: Scalar, data: st.DataObject):
    bad = violating(case.constraint, case.none_is_valid)
    if case.inf_is_valid:
        bad = bad.filter(lambda v: not (isinstance(v, float) and v == math.inf))
    value = data.draw(bad, label=case.name)
    validation_error(lambda: case.call(value), case.name)


# ------------------------------------------------------------------------------------- malformed arrays


@dataclass(frozen=True)
class Array:
    call: Callable[[Any], Any]  # the public function, the malformed array in place of one argument
    name: str
    shape: tuple[int, ...]  # a valid shape for the argument
    ndims: tuple[int, ...]  # the ranks accepted (given the other arguments)
    fixed: tuple[int, ...] = ()  # axes whose length is prescribed by the other arguments
    nonempty: bool = False  # a zero-length axis is refused
    float32: bool = False  # the values are computed in float32: 1e39 must be refused, not become inf


@st.composite
def malformed_array(draw: st.DrawFn, spec: Array) -> np.ndarray | list:
    kinds = ["rank", "non_finite", "dtype"]
    kinds += ["length"] if spec.fixed else []
    kinds += ["empty"] if spec.nonempty or spec.fixed else []
    kinds += ["overflow"] if spec.float32 else []
    kinds += ["ragged"] if len(spec.shape) >= 2 else []
    kind = draw(st.sampled_from(kinds))
    shape = list(spec.shape)
    if kind == "rank":
        ndim = draw(st.sampled_from(sorted(set(range(5)) - set(spec.ndims))))
        shape = (shape + [2] * 4)[:ndim]
        return np.full(shape, 0.5)
    if kind == "length":
        axis = draw(st.sampled_from(spec.fixed))
        shape[axis] = draw(st.integers(0, shape[axis] + 3).filter(lambda n: n != shape[axis]))
        return np.full(shape, 0.5)
    if kind == "empty":
        axes = spec.fixed if not spec.nonempty else range(len(shape))
        shape[draw(st.sampled_from(list(axes)))] = 0
        return np.zeros(shape)
    if kind == "ragged":
        rows = np.full(shape, 0.5).tolist()
        rows[-1] = rows[-1][:-1] if len(rows[-1]) > 1 else rows[-1] + [0.5]
        return rows
    if kind == "dtype":
        return draw(st.sampled_from([np.full(shape, "a"), np.full(shape, None, dtype=object),
                                     np.full(shape, 0.5 + 0.5j), np.full(shape, np.datetime64("2020-01-01"))]))
    value = np.full(shape, 0.5)
    index = tuple(draw(st.integers(0, n - 1)) for n in shape)
    if kind == "non_finite":
        value[index] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    else:  # overflow: finite in float64, inf in float32
        value[index] = draw(st.sampled_from([1e39, -3.5e38, 1e300]))
    return value


def device_measure(inputs: Any) -> Any:
    return DEVICE.measure(inputs)


ARRAYS = {
    # reservoir
    "run(esn).inputs": Array(lambda a: run(ESN, a), "inputs", (8, 2), (2, 3), (-1,), True, True),
    "run(delay).inputs": Array(lambda a: run(DELAY, a), "inputs", (8, 2), (2, 3), (-1,), True, True),
    "run.initial_state": Array(lambda a: run(ESN, U, a), "initial_state", (6,), (1,), (0,), float32=True),
    "run(batch).initial_state": Array(lambda a: run(ESN, U[None], a), "initial_state", (1, 6), (2,), (0, 1),
                                      float32=True),
    "run.teacher": Array(lambda a: run(ESN_FB, U[:, :1], teacher=a), "teacher", (8, 1), (2,), (0, 1),
                         float32=True),
    "run_states.inputs": Array(lambda a: run_states(DELAY, a), "inputs", (8, 2), (2, 3), (-1,), True, True),
    "esn_from_arrays.W": Array(lambda a: esn_from_arrays(a, np.ones((4, 1))), "W", (4, 4), (2,), (0, 1), True,
                               True),
    "esn_from_arrays.W_in": Array(lambda a: esn_from_arrays(np.eye(4), a), "W_in", (4, 2), (2,), (0,), True, True),
    "esn_from_arrays.bias": Array(lambda a: esn_from_arrays(np.eye(4), np.ones((4, 1)), a), "bias", (4,), (1,),
                                  (0,), float32=True),
    "esn_from_arrays.W_fb": Array(lambda a: esn_from_arrays(np.eye(4), np.ones((4, 1)), W_fb=a), "W_fb", (4, 1),
                                  (2,), (0,), True, True),
    "delay_from_arrays.mask": Array(lambda a: delay_from_arrays(a, model="sine"), "mask", (5, 2), (2,), (), True,
                                    True),
    "delay_from_arrays.bias_mask": Array(lambda a: delay_from_arrays(np.ones((5, 1)), a, model="sine"),
                                         "bias_mask", (5,), (1,), (0,), float32=True),
    "generate.readout.W": Array(lambda a: generate(ESN, LinearReadout(a, np.zeros(2)), np.zeros(6), np.zeros(2),
                                                   3), "readout.W", (8, 2), (2,), (0, 1), True, float32=True),
    "generate.readout.b": Array(lambda a: generate(ESN, LinearReadout(np.zeros((8, 2)), a), np.zeros(6),
                                                   np.zeros(2), 3), "readout.b", (2,), (1,), (0,), float32=True),
    "generate.initial_state": Array(lambda a: generate(ESN, ESN_READOUT, a, np.zeros(2), 3),
                                    "initial_state", (6,), (1, 2), (-1,), float32=True),
    "bptt_loss.targets": Array(lambda a: bptt_loss(TRAINABLE, COMBINE, linear, BPTT_READOUT, U, a), "targets",
                               (8, 1), (2,), (0, 1), float32=True),
    # readout
    "Ridge.fit.features": Array(lambda a: Ridge().fit(a, Y), "features", (20, 3), (2,), (0,), True),
    "Ridge.fit.targets": Array(lambda a: Ridge().fit(X, a), "targets", (20, 1), (1, 2), (0,), True),
    "Ridge.predict.features": Array(lambda a: FITTED.predict(a), "features", (5, 3), (1, 2, 3), (-1,)),
    "Ridge.score.targets": Array(lambda a: FITTED.score(X, a), "targets", (20, 1), (1, 2), (0,), True),
    "RidgeCV.fit.features": Array(lambda a: RidgeCV(n_folds=2).fit(a, Y), "features", (20, 3), (2,), (0,), True),
    "RidgeCV.alphas": Array(lambda a: RidgeCV(alphas=a), "alphas", (3,), (1,), (), True),
    "StreamingRidge.update.targets": Array(lambda a: StreamingRidge().update(X, a), "targets", (20, 1), (2,),
                                           (0,), True),
    "ridge_statistics.features": Array(lambda a: ridge_statistics(a, Y[None]), "features", (1, 20, 3), (3,),
                                       (0, 1), True),
    "apply_readout.features": Array(lambda a: apply_readout(READOUT, a), "features", (5, 3), (1, 2, 3, 4),
                                    (-1,), float32=True),
    "train.data": Array(lambda a: train(readout_loss("mse"), READOUT, (X, a), n_epochs=1, progress=False),
                        "data", (20, 1), (1, 2, 3, 4), (0,), True, True),
    "fit_readout.features": Array(lambda a: fit_short(a, Y), "features", (20, 3), (2, 3, 4), (0,), True, True),
    "fit_readout.targets": Array(lambda a: fit_short(X, a), "targets", (20, 1), (1, 2), (0,), True, True),
    "lms_fit.features": Array(lambda a: lms_fit(a, Y, step_size=0.1), "features", (20, 3), (2,), (0,), True, True),
    "rls_fit.targets": Array(lambda a: rls_fit(X, a), "targets", (20, 1), (1, 2), (0,), True, True),
    "lms_fit.initial_readout.W": Array(lambda a: lms_fit(X, Y, step_size=0.1, initial_readout=LinearReadout(
        a, np.zeros(1))), "initial_readout.W", (3, 1), (2,), (0, 1), True, True),
    "rls_fit.initial_state.readout.b": Array(lambda a: rls_fit(X, Y, initial_state=RLSState(
        LinearReadout(np.zeros((3, 1)), a), jnp.eye(4))), "initial_state.readout.b", (1,), (1,), (0,),
        float32=True),
    "one_hot.labels": Array(lambda a: one_hot(a, 3), "labels", (6,), (1,)),
    "pool_states.states": Array(lambda a: pool_states(a), "states", (2, 4, 3), (3,)),
    "with_inputs.inputs": Array(lambda a: with_inputs(X, a), "inputs", (20, 2), (2,), (0,)),
    "predict_labels.scores": Array(lambda a: predict_labels(a), "scores", (5, 3), (1, 2, 3)),
    # experiments
    "narma.u": Array(lambda a: tasks.narma(a), "u", (10,), (1, 2)),
    "channel.d": Array(lambda a: tasks.channel(a), "d", (12,), (1, 2)),
    "integrate_mackey_glass.history": Array(lambda a: tasks.integrate_mackey_glass(a, 5), "history", (171,), (1,),
                                            (0,)),
    "digits_train_test_split.sequences": Array(lambda a: tasks.digits_train_test_split(a, SEQUENCE_LABELS),
                                               "sequences", (12, 4, 3), (3,), (0,)),
    "nmse.y_pred": Array(lambda a: metrics.nmse(Y, a), "y_pred", (20, 1), (1, 2), (0, 1)),
    "nmse.y_true": Array(lambda a: metrics.nmse(a, Y), "y_true", (20, 1), (1, 2), (0, 1)),
    "symbol_error_rate.d_pred_continuous": Array(lambda a: metrics.symbol_error_rate(SYMBOL_TRUE, a),
                                                 "d_pred_continuous", (20,), (1, 2), (0,)),
    "accuracy.labels_pred": Array(lambda a: metrics.accuracy(LABELS, a), "labels_pred", (20,), (1,), (0,)),
    "memory_capacity.predictions": Array(lambda a: metrics.memory_capacity(MC_TARGETS, a), "predictions",
                                         (30, 4), (2,), (0, 1)),
    "nrmse84.y_pred": Array(lambda a: metrics.nrmse84(CURVES, a, 0.1), "y_pred", (3, 90), (2, 3), (0, 1)),
    # hardware_sim
    "Device.measure.inputs": Array(device_measure, "inputs", (8, 2), (2, 3), (-1,), True, True),
    "Device.measure.input_side": Array(lambda a: DEVICE.measure(U, {"mask": a}), "input_side['mask']", (5, 2),
                                       (2,), (0, 1), float32=True),
    "Device.adjoint.cotangent": Array(lambda a: DEVICE.adjoint(U, None, a), "cotangent", (8, 5), (2,), (0, 1)),
}


@pytest.mark.parametrize("case", list(ARRAYS.values()), ids=list(ARRAYS))
@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_malformed_array_is_rejected(case: Array, data: st.DataObject):
    value = data.draw(malformed_array(case), label=case.name)
    validation_error(lambda: case.call(value), case.name)


def test_device_counts_no_refused_measurement():
    calls = DEVICE.n_calls
    validation_error(lambda: DEVICE.measure(np.full((3, 2), np.nan)), "inputs")
    validation_error(lambda: DEVICE.measure(np.zeros((0, 3, 2))), "inputs")
    assert DEVICE.n_calls == calls


# ------------------------------------------------------------------------------ unknown choices and types

UNKNOWN_NAME = st.one_of(st.text(max_size=8), st.none(), st.integers(), st.just(["tanh"]),
                         st.just(np.array(["sine", "mse"])), st.just(b"sine"))
CHOICES = {
    "esn.topology": (lambda v: esn(4, seed=0, topology=v), "topology", ("sparse", "orthogonal")),
    "esn.activation": (lambda v: esn(4, seed=0, activation=v), "activation", ("tanh", "relu", "sigmoid",
                                                                               "identity")),
    "esn.dtype": (lambda v: esn(4, seed=0, dtype=v), "dtype", ("float32",)),
    "delay.model": (lambda v: delay_reservoir(4, seed=0, model=v), "model", ("sine", "sin2_lowpass",
                                                                              "mackey_glass")),
    "delay.mask": (lambda v: delay_reservoir(4, seed=0, mask=v), "mask", ("binary", "uniform")),
    "bptt_loss.loss": (lambda v: bptt_loss(TRAINABLE, COMBINE, linear, BPTT_READOUT, U, U[:, :1], loss=v), "loss",
                       ("mse",)),
    "pool_states.method": (lambda v: pool_states(SEQUENCES, v), "method", ("last", "mean", "flatten")),
    "readout_loss.loss": (lambda v: readout_loss(v), "loss", ("mse", "softmax_cross_entropy")),
    "fit_readout.loss": (lambda v: fit_short(loss=v), "loss", ("mse", "softmax_cross_entropy")),
    "train.optimizer": (lambda v: train_short(optimizer=v), "optimizer", ("adam", "sgd", "nesterov")),
    "make_optimizer.optimizer": (lambda v: make_optimizer(v, 0.1, 10), "optimizer", ("adam", "sgd", "nesterov")),
    "mlp_readout.activation": (lambda v: mlp_readout(3, (2,), 1, seed=0, activation=v), "activation",
                               ("tanh", "relu", "sigmoid", "identity")),
    "rls_init.dtype": (lambda v: rls_init(3, 1, dtype=v), "dtype", ("float32",)),
    "lowpass.along": (lambda v: nl.lowpass(0.5, along=v), "along", ("nodes", "time")),
    "digits_sequences.order": (lambda v: tasks.digits_sequences(v), "order", ("rows", "columns")),
    "split_trainable.names": (lambda v: split_trainable(DELAY, v), "names", ("mask", "bias_mask", "input_gain",
                                                                             "feedback_gain", "phase")),
}


def _is_valid(value: Any, valid: tuple[str, ...]) -> bool:
    if not isinstance(value, str):
        return False
    if valid == ("float32",):  # a dtype: whatever NumPy reads as float32
        try:
            return np.dtype(value) == np.float32
        except TypeError:
            return False
    return value in valid


@pytest.mark.parametrize("case", list(CHOICES.values()), ids=list(CHOICES))
@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_unknown_choice_is_rejected(case, data: st.DataObject):
    call, name, valid = case
    value = data.draw(UNKNOWN_NAME.filter(lambda v: not _is_valid(v, valid)), label=name)
    validation_error(lambda: call(value), name)


WRONG_OBJECT = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.just(np.zeros((3, 3))),
                         st.just({"W": np.eye(2)}), st.just(READOUT), st.just(STATS))
OBJECTS = {
    "run.params": (lambda v: run(v, U), "params", ()),
    "run_states.params": (lambda v: run_states(v, U), "params", ()),
    "generate.params": (lambda v: generate(v, ESN_READOUT, np.zeros(6), np.zeros(2), 3), "params", ()),
    "generate.readout": (lambda v: generate(ESN, v, np.zeros(6), np.zeros(2), 3), "readout", ()),
    "lms_fit.initial_readout": (lambda v: lms_fit(X, Y, step_size=0.1, initial_readout=v), "initial_readout",
                                (None, READOUT)),
    "split_trainable.params": (lambda v: split_trainable(v, "mask"), "params", ()),
    "apply_readout.params": (lambda v: apply_readout(v, X), "params", (READOUT,)),
    "solve_ridge.stats": (lambda v: solve_ridge(v, 1.0), "stats", (STATS,)),
    "rls_fit.initial_state": (lambda v: rls_fit(X, Y, initial_state=v), "initial_state", (None,)),
    "Device.nominal": (lambda v: Device(v, seed=0), "nominal", ()),
    "Device.pieces": (lambda v: Device(DELAY, v, seed=0), "pieces", ("",)),  # "" is an empty sequence
    "wrap_device.params": (lambda v: wrap_device(v, seed=0), "params", ()),
    "train.params": (lambda v: train_short_params(v), "params", (READOUT,)),
    "train.loss_fn": (lambda v: train(v, READOUT, (X, Y), n_epochs=1, progress=False), "loss_fn", ()),
    "train.data": (lambda v: train(readout_loss("mse"), READOUT, v, n_epochs=1, progress=False), "data", ()),
    "chain.pieces": (lambda v: nl.chain(nl.lowpass(0.5), v), "pieces[1]", ()),
}


def train_short_params(params: Any):
    return train(readout_loss("mse"), params, (X, Y), n_epochs=1, batch_size=4, progress=False)


@pytest.mark.parametrize("case", list(OBJECTS.values()), ids=list(OBJECTS))
@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_wrong_object_is_rejected(case, data: st.DataObject):
    call, name, valid = case
    value = data.draw(WRONG_OBJECT.filter(lambda v: not (any(v is ok for ok in valid)
                                                         or isinstance(v, str) and v in valid)), label=name)
    validation_error(lambda: call(value), name)


# ------------------------------------------------------------------------ inconsistent argument combinations

n_steps = st.integers(1, 30)


@settings(max_examples=20, **SETTINGS)
@given(length=n_steps, extra=st.integers(0, 5))
def test_washout_not_shorter_than_the_sequence(length, extra):
    features, targets = np.ones((length, 2)), np.ones((length, 1))
    validation_error(lambda: Ridge().fit(features, targets, washout=length + extra), "washout")
    validation_error(lambda: ridge_statistics(features, targets, washout=length + extra), "washout")
    validation_error(lambda: RidgeCV().fit(features, targets, washout=length + extra), "washout")


@settings(max_examples=15, **SETTINGS)
@given(length=n_steps, extra=st.integers(0, 5))
def test_bptt_washout_not_shorter_than_the_sequence(length, extra):
    inputs = np.ones((length, 2))
    validation_error(lambda: bptt_loss(TRAINABLE, COMBINE, linear, BPTT_READOUT, inputs, np.ones((length, 1)),
                                       washout=length + extra), "washout")


@settings(max_examples=15, **SETTINGS)
@given(samples=st.integers(1, 12), extra=st.integers(1, 50))
def test_batch_size_larger_than_the_data(samples, extra):
    validation_error(lambda: train(readout_loss("mse"), READOUT, (X[:samples], Y[:samples]),
                                   batch_size=samples + extra, n_epochs=1, progress=False), "batch_size")
    validation_error(lambda: fit_short(X[:samples], Y[:samples], batch_size=samples + extra), "batch_size")


@settings(max_examples=15, **SETTINGS)
@given(labels=st.lists(st.integers(-5, 8), min_size=1, max_size=10), n_classes=st.integers(1, 4))
def test_labels_out_of_range(labels, n_classes):
    labels = np.array(labels)
    if np.all((labels >= 0) & (labels < n_classes)):
        labels[0] = n_classes
    validation_error(lambda: one_hot(labels, n_classes), "labels")


@settings(max_examples=15, **SETTINGS)
@given(bad=st.integers(-9, -1), seen=st.integers(3, 9))
def test_class_labels_out_of_range(bad, seen):
    features = X[:10]
    validation_error(lambda: fit_short(features, np.r_[np.arange(9) % 3, bad], loss="softmax_cross_entropy"),
                     "targets")
    validation = (features[:4], np.array([0, 1, 2, seen]))
    validation_error(lambda: fit_short(features, np.arange(10) % 3, loss="softmax_cross_entropy",
                                       validation=validation), "targets")
    validation_error(lambda: fit_short(features, np.arange(10) % 3 * 1.5, loss="softmax_cross_entropy"),
                     "targets")


@settings(max_examples=10, **SETTINGS)
@given(outputs=st.integers(2, 4), features=st.integers(1, 5).filter(lambda f: f != 3))
def test_validation_unlike_the_training_data(outputs, features):
    validation_error(lambda: fit_short(validation=(X[:4], np.ones((4, outputs)))), "validation targets")
    validation_error(lambda: fit_short(validation=(np.ones((4, features)), Y[:4])), "validation features")


@settings(max_examples=15, **SETTINGS)
@given(length=st.integers(1, 12), extra=st.integers(0, 4))
def test_delays_not_shorter_than_the_series(length, extra):
    validation_error(lambda: tasks.memory_capacity_data(length, 0, length + extra), "max_delay")
    validation_error(lambda: tasks.variable_delay(length, 0, max_delay=max(length + extra, 2)), "max_delay")


@settings(max_examples=10, **SETTINGS)
@given(max_delay=st.integers(-3, 1))
def test_variable_delay_needs_a_choice_of_delays(max_delay):
    validation_error(lambda: tasks.variable_delay(20, 0, max_delay=max_delay), "max_delay")


@settings(max_examples=10, **SETTINGS)
@given(samples=st.integers(1, 6), folds=st.integers(2, 10))
def test_more_folds_than_samples(samples, folds):
    if folds <= samples:
        folds = samples + 1
    validation_error(lambda: RidgeCV(n_folds=folds).fit(X[:samples], Y[:samples]), "n_folds")


@settings(max_examples=10, **SETTINGS)
@given(column=st.integers(0, 2), value=st.floats(-10, 10))
def test_constant_targets_have_no_normalised_error(column, value):
    targets = RNG.normal(size=(20, 3))
    targets[:, column] = value
    validation_error(lambda: FITTED.score(X, targets[:, :1] * 0 + value), "targets")
    validation_error(lambda: metrics.nmse(targets, targets + 1), "y_true")
    validation_error(lambda: metrics.memory_capacity(targets, targets), "targets_delayed")
    validation_error(lambda: RidgeCV(n_folds=2).fit(X, targets), "targets")


@settings(max_examples=10, **SETTINGS)
@given(outputs=st.integers(2, 4))
def test_streamed_chunks_must_agree(outputs):
    stream = StreamingRidge().update(X, Y)
    validation_error(lambda: stream.update(X, np.ones((20, outputs))), "targets")
    validation_error(lambda: stream.update(np.ones((20, outputs + 3)), Y), "features")


@settings(max_examples=10, **SETTINGS)
@given(length=st.integers(1, 8).filter(lambda n: n != 8))
def test_teacher_mismatches(length):
    validation_error(lambda: run(ESN_FB, U[:, :1], teacher=np.ones((length, 1))), "teacher")
    validation_error(lambda: run(ESN_FB, U[:, :1]), "teacher")
    validation_error(lambda: run(ESN, U, teacher=np.ones((8, 1))), "teacher")


@settings(max_examples=10, **SETTINGS)
@given(batch=st.integers(0, 4).filter(lambda b: b != 2))
def test_initial_state_batch_mismatch(batch):
    validation_error(lambda: run(ESN, np.stack([U, U]), np.zeros((batch, 6))), "initial_state")
    validation_error(lambda: run_states(DELAY, np.stack([U, U]), np.zeros((batch, 5))), "initial_state")


@settings(max_examples=10, **SETTINGS)
@given(checkpoint=st.integers(2, 6), factor=st.integers(1, 4), offset=st.integers(1, 5))
def test_truncation_not_a_multiple_of_checkpointing(checkpoint, factor, offset):
    truncate = checkpoint * factor + (offset % checkpoint or 1)
    validation_error(lambda: run_states(DELAY, U, checkpoint_every=checkpoint, truncate_every=truncate),
                     "truncate_every")


@settings(max_examples=10, **SETTINGS)
@given(fraction=st.floats(0.96, 0.999))
def test_validation_fraction_leaving_no_training_data(fraction):
    validation_error(lambda: train(readout_loss("mse"), READOUT, (X[:5], Y[:5]), validation_fraction=fraction,
                                   batch_size=1, n_epochs=1, progress=False), "validation_fraction")


@settings(max_examples=10, **SETTINGS)
@given(tau=st.floats(0.01, 40).filter(lambda t: abs(round(t * 10) - t * 10) > 1e-6))
def test_delay_off_the_integration_grid(tau):
    validation_error(lambda: tasks.mackey_glass(10, seed=0, tau=tau), "tau")


@settings(max_examples=10, **SETTINGS)
@given(low=st.floats(-5, 5), gap=st.floats(0, 5))
def test_empty_ranges(low, gap):
    validation_error(lambda: wrap_device(DELAY, seed=0, adc_bits=8, adc_range=(low, low - gap)), "adc_range")
    validation_error(lambda: nl.dac(8, input_range=(low + gap, low)), "input_range")
    validation_error(lambda: nl.quantise(jnp.zeros(2), 8, low + gap, low), "low")


@settings(max_examples=10, **SETTINGS)
@given(n_units=st.integers(1, 6), density=st.floats(1e-6, 1.0))
def test_density_too_low_for_any_recurrent_weight(n_units, density):
    density = min(density, 0.49 / n_units**2)
    validation_error(lambda: esn(n_units, seed=0, density=density), "density")


@settings(max_examples=10, **SETTINGS)
@given(field=st.sampled_from(["W_in", "mask2", "", "bias"]))
def test_device_refuses_unknown_input_side_fields(field):
    validation_error(lambda: DEVICE.measure(U, {field: np.zeros((5, 2))}), "input_side")


@settings(max_examples=10, **SETTINGS)
@given(steps=st.integers(91, 200))
def test_horizon_beyond_the_free_run(steps):
    validation_error(lambda: metrics.nrmse84(CURVES, CURVES, 0.1, step=steps), "step")


def test_misc_relations():
    validation_error(lambda: RidgeCV(alphas=[]), "alphas")
    validation_error(lambda: RidgeCV(n_folds=1), "n_folds")
    validation_error(lambda: StreamingRidge().to_ridge(), "update")
    validation_error(lambda: Ridge().predict(X), "fit")
    validation_error(lambda: rls_fit(X, Y, initial_state=RLSState(READOUT, jnp.eye(2))), "initial_state")
    validation_error(lambda: wrap_device(ESN, seed=0, harmonic=0.1), "harmonic")
    validation_error(lambda: wrap_device(ESN_FB, seed=0), "nominal")
    validation_error(lambda: Device(DELAY, nl.lowpass(0.5), seed=0), "pieces")
    validation_error(lambda: delay_from_arrays(np.ones((4, 1)), model="sine", exponent=2.0), "exponent")
    validation_error(lambda: train(lambda p, x, y: jnp.zeros(3), READOUT, (X, Y), n_epochs=1, batch_size=4,
                                   progress=False), "loss_fn")
    validation_error(lambda: train(lambda p, x: jnp.sum(p) * x, jnp.arange(3), (X,), n_epochs=1, progress=False),
                     "params")
    validation_error(lambda: fit_short(learnig_rate=0.1), "learnig_rate")


def test_silent_divergence_is_reported():
    """Not malformed arguments as such, but the runs they start must not end in silent NaNs."""
    rejected(lambda: lms_fit(X * 30, Y, step_size=10.0), "step_size")


# ------------------------------------------------------------------------------------------------ the count


def _expected_test_count() -> int:
    total = 0
    for name, function in globals().items():
        if name.startswith("test_") and name != "test_zz_count" and callable(function):
            count = 1
            for mark in getattr(function, "pytestmark", []):
                if mark.name == "parametrize":
                    count *= len(mark.args[1])
            total += count
    return total


def test_zz_count(request):
    """Runs last: at least MIN_EXAMPLES malformed inputs were executed (when the whole module ran)."""
    if len(_TESTS_RUN) < _expected_test_count():
        pytest.skip(f"only {len(_TESTS_RUN)} of {_expected_test_count()} tests ran: the count needs the module")
    count = _EXECUTED["generated"]
    message = (f"{count} generated malformed inputs executed (and {_EXECUTED['fixed']} written-out ones), every "
               "one rejected with a clear message")
    print(message)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\n[test_malformed_inputs] {message}")
    assert count >= MIN_EXAMPLES
