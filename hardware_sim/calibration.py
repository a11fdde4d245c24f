"""Twin calibration: fit the digital twin's physical parameters to what the device measures.

The trainer's twin is the *nominal* model, but the device runs hidden "true" parameters (``mismatch``) behind a
detection chain of finite bandwidth (``lowpass``).  Every gradient a twin provides — the ``digital`` modes, the
``hil`` backward — is only as good as the twin, so before training one can spend a few device queries to make
the twin look like the device:

1. Measure the device on probe inputs u (B, T, D) with its nominal input side, ``n_repeats`` times, and
   average the measurements: detection noise is independent between measurements, so averaging R of them
   divides its variance by R, while the fit below is otherwise unbiased by it (the noise sits on the targets
   of a least-squares fit, not on its regressors).
2. Fit the twin's scalar physical fields p (``input_gain``, ``feedback_gain``, ``phase``) and, optionally, a
   first-order low-pass y_k = a y_{k−1} + (1 − a) x_k along the virtual nodes in detection order (``bandwidth``:
   the same recursion ``nonidealities.lowpass`` applies, from rest at the start of every sequence, a = exp(−2π
   bandwidth)) by minimising the state MSE

       L(p, a) = mean_{b, t, i} ( lowpass_a( twin_p(u) )_{b,t,i} − measured_{b,t,i} )²

   with Adam (learning rate decayed to 0 by a cosine schedule, so the fit settles instead of jittering) in the
   project's one optax loop (``readout.train``, the whole fit set as one batch, one step per "epoch").  The
   nominal twin enters as ``train``'s ``context``, so one compilation serves every device of the same shapes
   (a sweep over mismatch levels and seeds).  Fields start at their nominal values, a at 0 (infinite
   bandwidth, as the nominal twin assumes).
3. Optionally repeat 1–2 at further written operating points (``settings``) and fit, per calibrated scalar, the
   line effective = factor · written + offset through the (written, fitted) pairs: the written → effective map
   a trainer needs when it writes new values of a calibrated field (``hil`` evaluates its twin there).
4. Report, on held-out probe sequences (the last ``validation_fraction`` of u, never used by the fit), the state
   NMSE of the nominal twin and of the calibrated model.  Only public measurements are used; in simulation,
   ``mismatch_removed(result, true_params(device))`` reports the fraction of each field's mismatch removed,
   1 − |calibrated − true| / |nominal − true|, from the hidden truth.

Only the physical fields go into ``CalibrationResult.twin`` (a ``DelayParams`` like the nominal twin, usable as
``train_on_device(..., twin=...)``): ``DelayParams`` has no detection bandwidth, so the fitted low-pass is
reported (``fitted["decay"]``, ``fitted["bandwidth"]``) and used by ``CalibrationResult.states``, but the
twin used in training stays without it.  Not modelled: per-node detection gain/offset (``node_spread``),
harmonic distortion, DAC/ADC quantisation and drift — they bias the fit (drift: the fit sees the average
device over the R measurements).

Example:
    >>> import numpy as np
    >>> from hardware_sim import delay_device
    >>> device = delay_device(20, seed=0, mismatch=0.2, bandwidth=0.2)
    >>> probe = np.random.default_rng(0).uniform(-1, 1, (8, 60, 1))
    >>> result = calibrate_twin(device, probe, n_repeats=1)
    >>> result.n_calls, result.state_nmse["calibrated"] < result.state_nmse["nominal"]
    (1, True)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hardware_sim import nonidealities as nl
from hardware_sim.device import Device
from hardware_sim.protocol import DeviceProtocol, check_device
from readout.losses import mean_squared_error
from readout.optimise import train
from reservoir.delay import DelayParams
from reservoir.trainable import run_states
from reservoir.validation import (
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    Interval,
    check_array,
    check_scalar,
)

FIELDS = ("input_gain", "feedback_gain", "phase")
OPEN_UNIT = Interval(0, 1, "neither")


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    """What ``calibrate_twin`` found.

    ``twin``: the nominal ``DelayParams`` with the fitted fields put in (usable wherever the nominal twin is).
    ``fitted`` / ``nominal``: {field: value} of the fitted fields, for the calibrated model and the nominal twin;
    with ``bandwidth``, ``fitted`` also holds the low-pass coefficient ``"decay"`` a and the cut-off
    ``"bandwidth"`` = −ln a / 2π in units of the node rate (inf for a ≤ 0), ``nominal`` a = 0 and an infinite
    bandwidth.  (How much of the hidden mismatch that removed: ``mismatch_removed``, simulation only.)
    ``written_to_effective``: {field: (factor, offset)}: the device runs factor · w + offset when w is written
    (``effective``), so a trainer that writes new values can evaluate its twin where the device really is
    (``hardware_sim.training``'s ``hil`` with ``twin=`` this result).  From the line through the fitted values
    at the written operating points (``calibrate_twin``'s ``settings``); with a single point, the physical prior:
    a gain error is a factor (offset 0), a bias-point error an offset (factor 1).
    ``state_nmse``: {"nominal", "calibrated"} NMSE of the predicted against the measured (averaged) states on
    the held-out probe sequences, mean (x̂ − x)² over mean per-node variance of x; ``"fit"``: the calibrated
    model's on the fitted sequences; ``"noise_floor"``: the part of a held-out NMSE that measurement noise alone
    explains, estimated from the spread of the ``n_repeats`` measurements (their variance / R; NaN for R = 1);
    ``"structural_gap"``: calibrated − noise floor (≥ 0): what the twin's model class cannot express (in-loop
    physics, square-law detection, clock mismatch, drift...), the reason to train in situ at all.
    ``history``: ``{"train": [...]}`` the nominal point's fit, state MSE per Adam step.
    ``n_calls`` / ``n_samples``: device queries spent (``n_repeats`` measurements of the whole probe per
    operating point).
    """

    twin: DelayParams
    fitted: dict[str, float]
    nominal: dict[str, float]
    written_to_effective: dict[str, tuple[float, float]]
    state_nmse: dict[str, float]
    history: dict[str, list[float]]
    n_calls: int
    n_samples: int

    def effective(self, written: dict[str, Any]) -> dict[str, Any]:
        """The values the device runs for the ``written`` ones: factor · w + offset for every calibrated
        scalar, the rest unchanged."""
        return {name: self.written_to_effective[name][0] * value + self.written_to_effective[name][1]
                if name in self.written_to_effective else value for name, value in written.items()}

    def states(self, inputs: Any) -> jax.Array:
        """What the calibrated model predicts the device measures for ``inputs`` (B, T, D): the calibrated
        twin's states through the fitted low-pass (if any)."""
        inputs = jnp.asarray(check_array("inputs", inputs, 3, {-1: self.twin.n_inputs}), self.twin.dtype)
        fields = tuple(name for name in FIELDS if name in self.written_to_effective)
        params = _start(self.twin, fields)  # the fit's parameter structure: calibrate_twin's compilation is reused
        params["decay"] = jnp.asarray(self.fitted.get("decay", 0.0), self.twin.dtype)
        return _predict(_StateModel("decay" in self.fitted), params, inputs, {"twin": self.twin})


def mismatch_removed(result: CalibrationResult, truth: Any) -> dict[str, float]:
    """{field: 1 − |fitted − true| / |nominal − true|} for the true parameters ``truth`` (a simulation-only
    oracle such as ``true_params(device)``): 1 all of the field's mismatch removed, 0 none, < 0 worse; NaN when
    the nominal value is already the truth.  A ratio: for a field whose own mismatch draw happens to be tiny, a
    small absolute fitting error makes it strongly negative — read it with the values themselves."""
    removed = {}
    for name in result.written_to_effective:
        true, nominal = float(getattr(truth, name)), result.nominal[name]
        removed[name] = 1 - abs(result.fitted[name] - true) / abs(nominal - true) if nominal != true else math.nan
    return removed


def lowpass_nodes(states: jax.Array, decay: jax.Array) -> jax.Array:
    """y_k = decay · y_{k−1} + (1 − decay) · x_k over the virtual nodes of each sequence (B, T, N) in detection
    order k = t·N + i, from y_{−1} = 0: ``nonidealities.lowpass(along="nodes")``'s recursion, differentiable in
    ``decay`` and the states.  A sequential ``lax.scan`` over the T·N nodes rather than the device's parallel
    (associative) scan: as fast at these sizes, and its gradient compiles in ~1 s instead of ~10 s on CPU."""
    flat = states.reshape(states.shape[0], -1).T  # (T·N, B)

    def step(previous, current):
        filtered = decay * previous + (1 - decay) * current
        return filtered, filtered

    return jax.lax.scan(step, jnp.zeros_like(flat[0]), flat)[1].T.reshape(states.shape)


@dataclasses.dataclass(frozen=True)
class _StateModel:
    """Twin states (B, T, N), through the detection low-pass if ``bandwidth``.  Hashable by value (``train``
    compiles once per model and shapes); the twin comes in ``context``."""

    bandwidth: bool

    def predict(self, params: dict[str, Any], inputs: jax.Array, context: dict[str, Any]) -> jax.Array:
        states = run_states(dataclasses.replace(context["twin"], **params["fields"]), inputs)
        return lowpass_nodes(states, params["decay"]) if self.bandwidth else states

    def __call__(self, params, inputs, measured, context):
        return mean_squared_error(self.predict(params, inputs, context), measured)


@functools.partial(jax.jit, static_argnums=0)
def _predict(model: _StateModel, params: dict[str, Any], inputs: jax.Array, context: dict[str, Any]) -> jax.Array:
    return model.predict(params, inputs, context)


@functools.lru_cache(maxsize=32)  # one optimiser object per configuration: train's compiled step is reused
def _optimizer(learning_rate: float, n_steps: int) -> optax.GradientTransformation:
    return optax.adam(optax.cosine_decay_schedule(learning_rate, n_steps))


def state_loss(twin: DelayParams, inputs: Any, measured: Any, *, fields: Sequence[str] = FIELDS,
               bandwidth: bool = True) -> tuple[Callable[[dict[str, Any]], jax.Array], dict[str, Any]]:
    """``(loss, start)``: the objective ``calibrate_twin`` minimises, as a function of
    ``params = {"fields": {field: ()}, "decay": ()}``, and its starting point (the twin's values, decay 0).

    ``loss(params)`` = mean (lowpass_decay(twin with ``params["fields"]``(inputs)) − measured)²; without
    ``bandwidth`` the decay is ignored.  Differentiable (``jax.grad``): this is the function whose gradient
    drives the fit.
    """
    fields = _check_fields(fields)
    inputs = check_array("inputs", inputs, 3, {-1: twin.n_inputs})
    measured = check_array("measured", measured, 3)
    if measured.shape != (*inputs.shape[:2], twin.n_units):
        raise ValueError(f"measured must have shape {(*inputs.shape[:2], twin.n_units)}, got {measured.shape}")
    model = _StateModel(bool(bandwidth))
    context = {"twin": twin}
    inputs, measured = jnp.asarray(inputs, twin.dtype), jnp.asarray(measured, twin.dtype)
    return (lambda params: model(params, inputs, measured, context)), _start(twin, fields)


def _start(twin: DelayParams, fields: tuple[str, ...]) -> dict[str, Any]:
    return {"fields": {name: getattr(twin, name) for name in fields}, "decay": jnp.zeros((), twin.dtype)}


def true_params(device: Device, input_side: dict[str, Any] | None = None) -> Any:
    """The parameters the device would run on its next measurement with ``input_side`` (None: the nominal
    one): ``device.truth(input_side).params``.  A simulation-only oracle for reporting how much mismatch a
    calibration removes; no query is counted and nothing advances."""
    if not isinstance(device, Device):
        raise TypeError(f"device must be a hardware_sim.Device, got {type(device).__name__}")
    return device.truth(input_side).params


def calibrate_twin(
    device: DeviceProtocol,
    inputs: Any,
    *,
    fields: Sequence[str] = FIELDS,
    bandwidth: bool = True,
    n_steps: int = 3000,
    learning_rate: float = 0.03,
    n_repeats: int = 4,
    validation_fraction: float = 0.25,
    settings: Sequence[Mapping[str, float]] = (),
    seed: int = 0,
    progress: bool = False,
) -> CalibrationResult:
    """Fit the twin's physical fields (and the detection bandwidth) to the device's measured states, and the
    written → effective map of each fitted field.

    Only the device's public measurement interface is used (``measure``, ``nominal_twin``, the counters): no
    hidden truth.

    Args:
        device: a delay device (``DelayParams`` nominal twin; any ``hardware_sim.protocol`` device); it is
            measured ``n_repeats`` times with its nominal input side, and as many times at every operating point
            of ``settings``.
        inputs: probe sequences (B, T, D), B ≥ 2; the last ``validation_fraction`` of them (at least one) are
            held out for the reported state NMSE.  Rich probes (inputs spanning the operating range, several
            sequences) make the fields identifiable.
        fields: the scalar fields fitted, a non-empty subset of ``FIELDS``.
        bandwidth: also fit a first-order low-pass along the virtual nodes (the device's finite detection
            bandwidth); reported in ``fitted``, used by ``CalibrationResult.states``, not part of ``twin``.
        n_steps: Adam steps (full batch) per fit; learning_rate: its initial rate, decayed to 0 (cosine).  The
            fit is a small nonlinear least-squares problem with a narrow valley (gains and phase trade off),
            which Adam crosses slowly: large mismatch draws need a few thousand steps — ``history`` shows it.
            Measured at 30 % mismatch, N = 30, 5 seeds: 1000 steps left up to 8 % error on a gain, 3000 (the
            default) at most 0.6 % (phase within 0.002 rad), with or without 30 dB noise.
        n_repeats: measurements averaged (detection noise variance / n_repeats; costs n_repeats queries per
            operating point).
        validation_fraction: fraction in (0, 1) of the B probe sequences held out.
        settings: further operating points, each {field: written value} for some of ``fields`` (the others
            written at their nominal values): the fields are fitted again there, and each field's
            ``written_to_effective`` map is the least-squares line through its (written, fitted) pairs, nominal
            point included.  Empty (default): one point, and the map follows the physical prior (a gain's
            error a factor, the bias point's an offset).
        seed: ``train``'s seed (the fit is full-batch and deterministic; kept for interface symmetry).
        progress: tqdm bar over the steps.

    Returns:
        ``CalibrationResult``.

    Raises:
        ValueError / TypeError before any device query, naming the bad argument.
    """
    check_device(device)
    nominal = device.nominal_twin()
    if not isinstance(nominal, DelayParams):
        raise ValueError(f"calibrate_twin fits delay devices (DelayParams twins), got a {type(nominal).__name__}")
    fields = _check_fields(fields)
    if not isinstance(bandwidth, bool):
        raise TypeError(f"bandwidth must be True or False, got {bandwidth!r}")
    n_steps = check_scalar("n_steps", n_steps, POSITIVE_INT)
    learning_rate = check_scalar("learning_rate", learning_rate, POSITIVE)
    n_repeats = check_scalar("n_repeats", n_repeats, POSITIVE_INT)
    validation_fraction = check_scalar("validation_fraction", validation_fraction, OPEN_UNIT)
    settings = _check_settings(settings, fields)
    seed = check_scalar("seed", seed, NON_NEGATIVE_INT)
    inputs = check_array("inputs", inputs, 3, {-1: device.n_inputs})
    n_sequences, n_times = inputs.shape[:2]
    if n_sequences < 2 or n_times < 1:
        raise ValueError(f"inputs must hold at least 2 sequences (some are held out) of at least 1 step, "
                         f"shape (B, T, {device.n_inputs}); got shape {inputs.shape}")
    n_held = min(max(1, round(validation_fraction * n_sequences)), n_sequences - 1)
    n_fit = len(inputs) - n_held
    calls, samples = device.n_calls, device.n_samples
    model = _StateModel(bandwidth)

    def fit(written: dict[str, float]) -> tuple[dict[str, Any], dict[str, Any], np.ndarray, Any, np.ndarray]:
        """Measure the probe with ``written`` and fit the model started there: (params, context, measured,
        history, the noise variance of the averaged measurement estimated from the repeats' spread)."""
        side = {name: np.asarray(value, nominal.dtype) for name, value in written.items()} or None
        repeats = np.stack([np.asarray(device.measure(inputs, side), np.float64) for _ in range(n_repeats)])
        noise_variance = (repeats.var(axis=0, ddof=1) / n_repeats if n_repeats > 1
                          else np.full(repeats.shape[1:], np.nan))
        measured = repeats.mean(axis=0).astype(nominal.dtype)
        context = {"twin": dataclasses.replace(nominal, **(side or {}))}
        probe = np.asarray(inputs, nominal.dtype)
        result = train(model, _start(context["twin"], fields), (probe[:n_fit], measured[:n_fit]),
                       optimizer=_optimizer(learning_rate, n_steps), n_epochs=n_steps, batch_size=n_fit, seed=seed,
                       progress=progress, context=context)
        return result.params, context, measured, result.history["train"], noise_variance

    params, context, measured, history, noise_variance = fit({})
    points = [({name: float(getattr(nominal, name)) for name in fields}, params["fields"])]
    for setting in settings:
        written = {name: float(setting.get(name, getattr(nominal, name))) for name in fields}
        points.append((written, fit(setting)[0]["fields"]))
    twin = dataclasses.replace(nominal, **{name: jnp.asarray(params["fields"][name], nominal.dtype)
                                           for name in fields})
    fitted = {name: float(params["fields"][name]) for name in fields}
    nominal_report = {name: float(getattr(nominal, name)) for name in fields}
    maps = {name: _written_to_effective(name, [(w[name], float(e[name])) for w, e in points]) for name in fields}
    if bandwidth:
        decay = float(params["decay"])
        fitted.update(decay=decay, bandwidth=-math.log(decay) / (2 * math.pi) if 0 < decay < 1 else
                      (math.inf if decay <= 0 else 0.0))
        nominal_report.update(decay=0.0, bandwidth=math.inf)

    # The nominal twin is the same model at the starting point (nominal fields, decay 0: the low-pass is then
    # the identity), so both predictions share one compilation; each covers the whole probe, split afterwards.
    def scale(part: slice) -> float:
        target = np.asarray(measured[part], np.float64)
        return float(np.mean(target.reshape(-1, target.shape[-1]).var(axis=0)))

    def nmse(predicted: np.ndarray, part: slice) -> float:
        return float(mean_squared_error(predicted[part], np.asarray(measured[part], np.float64)) / scale(part))

    before, after = (np.asarray(_predict(model, p, jnp.asarray(inputs, nominal.dtype), context), np.float64)
                     for p in (_start(nominal, fields), params))
    fit_part, held_part = slice(0, n_fit), slice(n_fit, None)
    state_nmse = {"nominal": nmse(before, held_part), "calibrated": nmse(after, held_part),
                  "fit": nmse(after, fit_part),
                  "noise_floor": float(np.mean(noise_variance[held_part]) / scale(held_part))}
    state_nmse["structural_gap"] = (max(state_nmse["calibrated"] - state_nmse["noise_floor"], 0.0)
                                    if n_repeats > 1 else math.nan)
    return CalibrationResult(twin, fitted, nominal_report, maps, state_nmse, {"train": history},
                             device.n_calls - calls, device.n_samples - samples)


# How a field's error acts when only one operating point is measured: gains multiply, the bias point shifts.
RELATIVE_FIELDS = ("input_gain", "feedback_gain")


def _written_to_effective(name: str, pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """(factor, offset) of the least-squares line effective = factor · written + offset through ``pairs``; with
    a single written value, the prior: factor only for a gain (offset only when the written gain is 0), offset
    only for the bias point."""
    written, effective = np.array(pairs, np.float64).T
    if np.ptp(written) > 0:
        factor, offset = np.polyfit(written, effective, 1)
        return float(factor), float(offset)
    if name in RELATIVE_FIELDS and written[0] != 0:
        return float(np.mean(effective) / written[0]), 0.0
    return 1.0, float(np.mean(effective) - written[0])


def _check_settings(settings: Any, fields: tuple[str, ...]) -> tuple[dict[str, float], ...]:
    if isinstance(settings, Mapping) or not isinstance(settings, Sequence):
        raise TypeError(f"settings must be a sequence of {{field: written value}} dicts, got {settings!r}")
    checked = []
    for index, setting in enumerate(settings):
        if not isinstance(setting, Mapping) or not setting:
            raise TypeError(f"settings[{index}] must be a non-empty dict {{field: written value}}, "
                            f"got {setting!r}")
        for name, value in setting.items():
            if name not in fields:
                raise ValueError(f"settings[{index}] may only set calibrated fields {list(fields)}, got {name!r}")
            check_scalar(f"settings[{index}][{name!r}]", value, nl.REAL)
        checked.append({name: float(value) for name, value in setting.items()})
    return tuple(checked)


def _check_fields(fields: Any) -> tuple[str, ...]:
    if isinstance(fields, str) or not isinstance(fields, Sequence):
        raise TypeError(f"fields must be a sequence of field names from {list(FIELDS)}, got {fields!r}")
    fields = tuple(fields)
    if not fields:
        raise ValueError(f"fields must name at least one of {list(FIELDS)}, got an empty sequence")
    for name in fields:
        if name not in FIELDS:
            raise ValueError(f"fields must be names from {list(FIELDS)}, got unknown field {name!r}")
    if len(set(fields)) != len(fields):
        raise ValueError(f"fields must not repeat a name, got {list(fields)}")
    return fields
