"""Hyperparameter selection on held-out chunks and the digital / tuned baselines (``hardware_sim.selection``,
``hardware_sim.baselines``), against hand-written NumPy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hardware_sim import delay_device, true_params
from hardware_sim import nonidealities as nl
from hardware_sim.baselines import (
    MismatchPrior,
    TwinModel,
    TwinNoise,
    _KeyStream,
    _model_states,
    _straight_through_quantise,
    digital_tuned,
    identity_knobs,
    in_situ_tuned,
    knob_map,
    reservoir_tuned,
    spsa_tuned,
)
from hardware_sim.device import Device
from hardware_sim.selection import candidates, check_space, held_out_alphas, select
from hardware_sim.training import device_ridge_readout, train_on_device, twin_states
from readout.projection import held_out_score
from reservoir.trainable import run_states, split_trainable

NAMES = ("mask", "input_gain", "feedback_gain", "phase")


def _problem(n_sequences=6, n_steps=30, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.uniform(0, 0.5, (n_sequences, n_steps, 1))
    y = np.cumsum(u, axis=1) * 0.1 + np.roll(u, 2, axis=1) ** 2  # a target with memory and a nonlinearity
    return u, y


def _numpy_ridge(x, y, penalty):
    """Ridge with an unpenalised intercept by a hand-written solve of the augmented normal equations."""
    design = np.hstack([x, np.ones((len(x), 1))])
    regulariser = penalty * np.diag([1.0] * x.shape[1] + [0.0])
    solution = np.linalg.solve(design.T @ design + regulariser, design.T @ y)
    return solution[:-1], solution[-1]


def test_held_out_score_is_a_ridge_fitted_on_the_other_chunks_and_alpha_is_per_row():
    """held_out_score = NMSE on the last chunks of a ridge (alpha * fit rows) fitted on the others (NumPy)."""
    u, y = _problem()
    states = np.random.default_rng(1).normal(size=(6, 30, 5)) + u  # any features
    washout, alpha, n_held = 4, 1e-2, 2
    x_fit, y_fit = states[:-n_held, washout:].reshape(-1, 5), y[:-n_held, washout:].reshape(-1, 1)
    x_held, y_held = states[-n_held:, washout:].reshape(-1, 5), y[-n_held:, washout:].reshape(-1, 1)
    coef, intercept = _numpy_ridge(x_fit, y_fit, alpha * len(x_fit))
    expected = np.mean((x_held @ coef + intercept - y_held) ** 2) / np.var(y_held)
    assert held_out_score(states, y, n_held, washout=washout, alpha=alpha) == pytest.approx(expected, rel=1e-9)
    score, chosen = held_out_alphas(states, y, n_held, washout=washout, alphas=[1e-6, alpha, 1e3])
    scores = [held_out_score(states, y, n_held, washout=washout, alpha=a) for a in (1e-6, alpha, 1e3)]
    assert score == min(scores) and chosen == [1e-6, alpha, 1e3][int(np.argmin(scores))]


def test_alpha_per_row_means_the_same_at_any_data_size():
    """The same alpha on the training set and on it repeated three times gives the same readout (an absolute
    alpha would be three times weaker on the larger set)."""
    device = delay_device(6, seed=0)
    u, y = _problem()
    once = device_ridge_readout(device, None, u, y, washout=3, alpha=0.1)
    thrice = device_ridge_readout(device, None, np.tile(u, (3, 1, 1)), np.tile(y, (3, 1, 1)), washout=3, alpha=0.1)
    np.testing.assert_allclose(np.asarray(once.W), np.asarray(thrice.W), rtol=1e-4, atol=1e-6)


def test_early_stopping_of_the_projected_loss_is_scored_out_of_sample():
    """readout='ridge' with validation_fraction: the start's score is the held-out NMSE of a readout fitted on
    the training chunks (NumPy), not the validation batch's own fit, which with more features than held-out
    rows would be ~0; the returned input side is the best-scored one."""
    device = delay_device(12, seed=1)
    u, _ = _problem(n_sequences=5, n_steps=12)
    y = np.random.default_rng(7).normal(size=u.shape)  # unpredictable: a readout fitted elsewhere scores ~1
    result = train_on_device(device, u, y, mode="digital", names=NAMES, washout=2, alpha=1e-4, n_epochs=2,
                             batch_size=2, learning_rate=1e-2, readout="ridge", validation_fraction=0.2)
    start, _ = split_trainable(device.nominal_twin(), list(NAMES))
    states = np.asarray(twin_states(device, NAMES)(start, u), np.float64)
    x_fit, y_fit = states[:4, 2:].reshape(-1, 12), y[:4, 2:].reshape(-1, 1)
    x_held, y_held = states[4:, 2:].reshape(-1, 12), y[4:, 2:].reshape(-1, 1)  # 10 rows < 12 features
    coef, intercept = _numpy_ridge(x_fit, y_fit, 1e-4 * len(x_fit))
    expected = np.mean((x_held @ coef + intercept - y_held) ** 2) / np.var(y_held)
    assert result.history["initial_validation"][0] == pytest.approx(expected, rel=1e-4)
    in_sample_coef, in_sample_intercept = _numpy_ridge(x_held, y_held, 1e-4 * len(x_held))
    in_sample = np.mean((x_held @ in_sample_coef + in_sample_intercept - y_held) ** 2) / np.var(y_held)
    assert expected > 1 and in_sample < 0.1  # so the score above is not the in-sample one
    scores = result.history["initial_validation"] + result.history["validation"]
    best = int(np.argmin(scores)) - 1
    side = result.params["input_side"] if best >= 0 else start
    rescored = held_out_score(twin_states(device, NAMES)(side, u), y, 1, washout=2, alpha=1e-4)
    assert rescored == pytest.approx(min(scores), rel=1e-4)


@pytest.mark.parametrize("space, match", [
    ({}, "space must name at least one"),
    ({"learning_rate": []}, r"space\['learning_rate'\] must hold at least one value"),
    ({"learning_rate": [1e-2, float("nan")]}, r"space\['learning_rate'\]\[1\]"),
    ({"spsa_gain": [float("inf")]}, r"space\['spsa_gain'\]\[0\]"),
])
def test_empty_or_non_finite_search_spaces_are_refused(space, match):
    with pytest.raises(ValueError, match=match):
        check_space(space)
    with pytest.raises(ValueError, match=match):
        select(lambda **c: (0.0, {}, None), space)


def test_empty_or_negative_alphas_are_refused():
    states, targets = np.zeros((3, 4, 2)), np.random.default_rng(0).normal(size=(3, 4, 1))
    for alphas, match in (([], "alphas must hold at least one"), ([1e-3, -1.0], r"alphas\[1\]")):
        with pytest.raises(ValueError, match=match):
            held_out_alphas(states, targets, 1, washout=0, alphas=alphas)


@pytest.mark.parametrize("budget", [0, -3])
def test_a_query_budget_of_zero_or_less_is_refused(budget):
    device = delay_device(4, seed=0)
    with pytest.raises(ValueError, match="budget"):
        select(lambda **c: (0.0, {}, None), {"a": [1.0]}, device=device, budget=budget)
    u, y = _problem(n_sequences=3, n_steps=6)
    with pytest.raises(ValueError, match="budget"):
        reservoir_tuned(device, u, y, budget=budget)
    assert device.n_calls == 0  # refused before any query


def test_select_counts_the_device_queries_of_the_search_and_stops_at_the_budget():
    device = delay_device(4, seed=0)
    u = np.zeros((1, 5, 1))

    def evaluate(a, b):  # a candidate measures the device `a` times; its score is known in advance
        for _ in range(int(a)):
            device.measure(u)
        return (a - 2) ** 2 + b, {"extra": a * 10}, (a, b)

    full = select(evaluate, {"a": [1, 2, 3], "b": [0.0, 0.5]}, device=device)
    assert candidates({"a": [1, 2], "b": [0, 1]}) == [{"a": 1, "b": 0}, {"a": 1, "b": 1}, {"a": 2, "b": 0},
                                                      {"a": 2, "b": 1}]
    assert full.best == {"a": 2, "b": 0.0, "extra": 20} and full.outcome == (2, 0.0) and full.score == 0.0
    assert full.n_calls == 2 * (1 + 2 + 3) == sum(row["n_calls"] for row in full.table)
    assert full.n_samples == 5 * full.n_calls and not full.exhausted
    limited = select(evaluate, {"a": [1, 2, 3], "b": [0.0, 0.5]}, device=device, budget=3)
    assert [row["a"] for row in limited.table] == [1, 1, 2] and limited.n_calls == 4 and limited.exhausted


def test_twin_model_without_noise_is_the_twin_and_a_true_knob_map_is_the_device():
    """TwinModel with identity knobs = run_states of the twin; with the written -> effective map of the
    device's true knobs (read through the simulation oracle, as a test may), it reproduces the noiseless
    mismatched device for a written input side other than the nominal one."""
    device = delay_device(8, seed=3, mismatch=0.3)
    twin = device.nominal_twin()
    u, _ = _problem(n_sequences=2, n_steps=15)
    side, _ = split_trainable(twin, list(NAMES))
    side = dict(side, input_gain=side["input_gain"] * 1.3, phase=side["phase"] + 0.2)
    stream = _KeyStream(0)
    plain = {"twin": twin, **identity_knobs(twin), "stream": np.int32(stream.handle)}
    states = _model_states(TwinModel(), side, jnp.asarray(u, twin.dtype), plain)
    reference = run_states(split_trainable(twin, list(NAMES))[1](side), jnp.asarray(u, twin.dtype))
    np.testing.assert_allclose(np.asarray(states), np.asarray(reference), rtol=1e-6, atol=1e-6)
    calibrated = {"twin": twin, **knob_map(twin, true_params(device)), "stream": np.int32(stream.handle)}
    states = _model_states(TwinModel(), side, jnp.asarray(u, twin.dtype), calibrated)
    np.testing.assert_allclose(np.asarray(states), np.asarray(device.measure(u, side)), rtol=1e-5, atol=1e-5)


def test_noise_and_prior_draws_are_fresh_per_call_reproducible_per_seed_and_at_the_datasheet_level():
    device = delay_device(16, seed=0)
    twin = device.nominal_twin()
    u = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (4, 50, 1)), twin.dtype)
    side, _ = split_trainable(twin, list(NAMES))
    clean = np.asarray(run_states(twin, u), np.float64)

    def draws(model, seed, n=2):
        context = {"twin": twin, **identity_knobs(twin), "stream": np.int32((stream := _KeyStream(seed)).handle)}
        out = [np.asarray(_model_states(model, side, u, context), np.float64) for _ in range(n)]
        del stream
        return out

    noisy = TwinModel(noise=TwinNoise(snr_db=20.0))
    first, second = draws(noisy, seed=5)
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(first, draws(noisy, seed=5)[0])
    ratio = np.mean((first - clean) ** 2) / (np.mean(clean**2) / 100)  # SNR 20 dB: noise power = P / 100
    assert 0.9 < ratio < 1.1
    randomized = TwinModel(prior=MismatchPrior(relative=0.3, absolute=0.3))
    first, second = draws(randomized, seed=1)
    assert not np.allclose(first, second) and not np.allclose(first, clean)
    np.testing.assert_allclose(draws(TwinModel(prior=MismatchPrior()), seed=1)[0], clean, atol=1e-6)


def test_straight_through_quantiser_rounds_forward_and_passes_the_clip_gradient_back():
    x = jnp.asarray([-1.5, -0.33, 0.0, 0.41, 2.0])
    quantised = _straight_through_quantise(x, 3, (-1.0, 1.0))
    np.testing.assert_array_equal(np.asarray(quantised), np.asarray(nl.quantise(x, 3, -1.0, 1.0)))
    gradient = jax.grad(lambda v: jnp.sum(_straight_through_quantise(v, 3, (-1.0, 1.0))))(x)
    np.testing.assert_array_equal(np.asarray(gradient), [0.0, 1.0, 1.0, 1.0, 0.0])


class PublicOnly(Device):
    """A device proxy with only the public measurement surface: no hidden parameters, pieces or state exist on
    it (``Device.__init__`` is never run), so any read of them raises AttributeError."""

    def __init__(self, device: Device):  # noqa: D107 - deliberately not calling Device.__init__
        object.__setattr__(self, "_PublicOnly__device", device)

    def __getattribute__(self, name):
        if name.startswith("_") and name not in ("_PublicOnly__device", "__class__", "__dict__") \
                and not name.startswith("__"):
            raise AttributeError(f"training read the device's private attribute {name!r}")
        return object.__getattribute__(self, name)

    n_calls = property(lambda self: self._PublicOnly__device.n_calls)
    n_samples = property(lambda self: self._PublicOnly__device.n_samples)
    n_units = property(lambda self: self._PublicOnly__device.n_units)
    n_inputs = property(lambda self: self._PublicOnly__device.n_inputs)
    trainable_fields = property(lambda self: self._PublicOnly__device.trainable_fields)

    def nominal_twin(self):
        return self._PublicOnly__device.nominal_twin()

    def measure(self, inputs, input_side=None):
        return self._PublicOnly__device.measure(inputs, input_side)

    def adjoint(self, inputs, input_side, cotangent):
        return self._PublicOnly__device.adjoint(inputs, input_side, cotangent)


def test_tuned_baselines_use_only_public_measurements_and_count_every_query():
    """reservoir_tuned, spsa_tuned, in_situ_tuned (hil) and a noise-aware digital baseline run through a proxy
    with no private state; their reported cost is what the device counted."""
    u, y = _problem(n_sequences=5, n_steps=20)
    knobs = {"input_gain": [0.3, 0.6], "phase": [0.0]}
    device = PublicOnly(delay_device(6, seed=0, mismatch=0.2, snr_db=30))
    tuned = reservoir_tuned(device, u, y, washout=2, space=knobs)
    assert tuned.n_calls == device.n_calls == 2 and len(tuned.table) == 2
    assert tuned.hyperparameters["input_gain"] == min(tuned.table, key=lambda r: r["score"])["input_gain"]
    spsa = spsa_tuned(PublicOnly(delay_device(6, seed=0, mismatch=0.2)), u, y, washout=2, n_steps=2,
                      space={"spsa_gain": [0.1], "spsa_perturbation": [0.05, 0.1]})
    assert spsa.n_calls == 2 * (2 * 2 + 1 + 1)  # per candidate: 2 per step, the readout, the held-out score
    hil_device = PublicOnly(delay_device(6, seed=0, mismatch=0.2))
    hil = in_situ_tuned(hil_device, u, y, mode="hil", washout=2, space={"learning_rate": [1e-2]}, n_epochs=1,
                        batch_size=2)
    # 2 steps, the start's and 1 epoch's held-out scores, the final readout, then the deployed readout
    assert hil.n_calls == hil_device.n_calls == 2 + 2 + 1 + 1
    digital_device = PublicOnly(delay_device(6, seed=0, mismatch=0.2, snr_db=30))
    digital = digital_tuned(digital_device, u, y, kind="noise_aware", noise=TwinNoise(snr_db=30, adc_bits=8),
                            washout=2, space={"learning_rate": [1e-2, 3e-2]}, n_epochs=1, batch_size=2)
    assert digital.n_calls == digital_device.n_calls == 1 and len(digital.table) == 2
    assert set(digital.params) == {"input_side", "readout"}
    with pytest.raises(AttributeError, match="private"):
        true_params(PublicOnly(delay_device(6, seed=0)))  # the proxy does catch a private read


def test_digital_baseline_selected_on_the_device_scores_every_candidate_by_one_measurement():
    """select_on="device": each candidate (the untrained start as learning rate 0, then each learning rate's
    side trained in the model) costs one call, its score is the held-out NMSE of that measurement (checked
    against an independent measurement of the same side on a noise-free twin device), the winner is the
    lowest score, and the deployed readout re-uses its measurement (no further call)."""
    u, y = _problem(n_sequences=5, n_steps=20)
    device = PublicOnly(delay_device(6, seed=0, mismatch=0.2))
    result = digital_tuned(device, u, y, kind="digital", washout=2, space={"learning_rate": [1e-2, 3e-1]},
                           n_epochs=1, batch_size=2, select_on="device")
    assert result.n_calls == device.n_calls == 3
    assert [row["learning_rate"] for row in result.table] == [0.0, 1e-2, 3e-1]
    assert result.hyperparameters["learning_rate"] == min(result.table, key=lambda r: r["score"])["learning_rate"]
    start, _ = split_trainable(device.nominal_twin(), list(NAMES))
    states = delay_device(6, seed=0, mismatch=0.2).measure(u, start)
    expected, _ = held_out_alphas(np.asarray(states, np.float64), y, 1, washout=2)
    assert result.table[0]["score"] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="select_on"):
        digital_tuned(device, u, y, kind="digital", select_on="test_set")


def test_digital_baselines_refuse_missing_knowledge():
    device = delay_device(4, seed=0)
    u, y = _problem(n_sequences=3, n_steps=6)
    with pytest.raises(ValueError, match="noise"):
        digital_tuned(device, u, y, kind="noise_aware")
    with pytest.raises(ValueError, match="prior"):
        digital_tuned(device, u, y, kind="randomized")
    with pytest.raises(ValueError, match="kind"):
        digital_tuned(device, u, y, kind="magic")
    with pytest.raises(ValueError, match="relative"):
        MismatchPrior(relative=-0.1)
    with pytest.raises(ValueError, match="snr_db"):
        TwinNoise(snr_db=float("nan"))
    assert device.n_calls == 0


def test_dfa_tuned_uses_public_measurements_and_its_feedback_scale_is_inert_under_adam():
    """in_situ_tuned(mode="dfa") trains the written drive only, through the public proxy, one call per step;
    scaling DFA's feedback matrix by 10 leaves Adam's steps unchanged (up to ε), which is why the default
    search does not spend device queries on it."""
    u, y = _problem(n_sequences=5, n_steps=20)
    results = {}
    for scale in (1.0, 10.0):
        device = PublicOnly(delay_device(6, seed=0, mismatch=0.2))
        results[scale] = in_situ_tuned(device, u, y, mode="dfa", washout=2, n_epochs=2, batch_size=2,
                                       space={"learning_rate": [3e-2], "dfa_feedback_scale": [scale]})
        # per epoch 2 steps and a held-out score, the start's score, the final readout, the deployed readout
        assert results[scale].n_calls == device.n_calls == 2 * (2 + 1) + 1 + 1 + 1
    side = results[1.0].params["input_side"]
    assert set(side) == {"mask", "input_gain", "phase"}  # not the feedback gain: DFA cannot reach it
    start, _ = split_trainable(delay_device(6, seed=0).nominal_twin(), list(side))
    assert not np.allclose(side["mask"], start["mask"])  # it did move
    for name, value in side.items():  # the two runs differ by < 1 % of how far training moved
        moved = np.abs(np.asarray(value) - np.asarray(start[name])).max()
        assert np.abs(np.asarray(results[10.0].params["input_side"][name]) - value).max() < 1e-2 * moved
