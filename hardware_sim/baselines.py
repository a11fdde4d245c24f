"""The strongest baselines a referee expects, each with its hyperparameters chosen on held-out training chunks.

Digital baselines train in a model of the device and never query it during training; what they do spend
(calibration, the one measurement that re-fits the deployed readout) is counted.  They differ in the model:

=========================  ===================================================================================
method                     the model trained in (``TwinModel``), then deployed with the readout re-fitted
                           on one measurement of the training set (alpha chosen on its held-out chunks)
=========================  ===================================================================================
``digital+readout``        the nominal twin (the hybrid of Hermans et al., JMLR 16, 2081 (2015))
``digital_noise_aware``    the nominal twin with the device's noise, quantisation and drive limits *as its
                           datasheet gives them* (``TwinNoise``) injected in the forward pass, fresh on every
                           step; quantisers pass the gradient straight through (hardware-aware training as
                           IBM aihwkit does it, Rasch et al., Nat. Commun. 14, 5282 (2023))
``digital_randomized``     each step on a twin drawn from the mismatch prior (``MismatchPrior``: relative
                           spread of the gains, absolute of the phase — the form of the ``mismatch``
                           non-ideality — and per-node detection gain/offset spread): domain randomisation
                           (Tobin et al., IROS 2017)
``calibrated_twin``        ``calibrate_twin`` first (its queries counted), then the noise-aware twin with the
                           calibrated response to what the trainer writes (``knob_map``) and the fitted
                           detection low-pass
=========================  ===================================================================================

Gradient training uses the project's loop (``readout.train``) with the readout solved in closed form inside
the loss (variable projection, ``readout.projection.ProjectedLoss``) and out-of-sample early stopping
(``readout.projection.train_held_out``); the learning rate is chosen by ``selection.select`` on the model's
held-out score.

In-situ baselines, with every query of their search counted:

* ``reservoir_tuned`` — the random mask, its knobs (input gain, feedback gain, phase) scanned on a grid and
  the ridge alpha chosen on held-out chunks measured on the device, one query per grid point (the tuned
  baseline of Hermans, Antonik, Haelterman, Massar, PRL 117, 128301 (2016));
* ``spsa_tuned`` — SPSA (Spall 1998) with its gains a and c chosen on held-out chunks;
* ``in_situ_tuned`` — ``hil``, ``physical_backprop`` or ``dfa`` with the learning rate chosen on held-out
  chunks.

Training code reads the device only through ``measure`` / ``adjoint`` and its public counters.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from hardware_sim import nonidealities as nl
from hardware_sim.calibration import FIELDS as CALIBRATED_FIELDS
from hardware_sim.calibration import calibrate_twin, lowpass_nodes
from hardware_sim.device import Device
from hardware_sim.models import hardware_fields
from hardware_sim.selection import ALPHAS, Selection, held_out_alphas, select
from hardware_sim.training import DFA_FIELDS, train_on_device
from readout.linear import LinearReadout
from readout.projection import (
    ProjectedLoss,
    held_out_score,
    n_held_out,
    readout_as,
    readout_view,
    train_held_out,
)
from readout.ridge import Ridge
from reservoir.core import DivergenceError, raise_if_diverged
from reservoir.trainable import merge_trainable, run_states, split_trainable
from reservoir.validation import NON_NEGATIVE, SEED, check_array, check_choice, check_instance, check_scalar

NAMES = ("mask", "input_gain", "feedback_gain", "phase")
TRAIN_ALPHA = 1e-6  # per row, of the projected loss (the deployed readout's alpha is chosen on held-out chunks)
# Default grids.  A first study over 10 devices (30 % mismatch, NARMA10 and digits) chose their top values most
# often on digits (learning rate 0.1, SPSA gain 2.0) and the reservoir's input gain 1.0 on NARMA10 (8 of 10):
# each grid reaches one step further than that.
LEARNING_RATES = {"learning_rate": (1e-2, 3e-2, 1e-1, 3e-1)}
SPSA_GAINS = {"spsa_gain": (0.1, 0.5, 2.0, 8.0), "spsa_perturbation": (0.03, 0.1, 0.3)}
# reservoir_tuned's scan around the sine device's nominal knobs (input gain 0.5, feedback gain 0.8, phase 0).
KNOBS = {"input_gain": (0.25, 0.5, 1.0, 2.0), "feedback_gain": (0.4, 0.8, 1.2), "phase": (-0.4, 0.0, 0.4)}
DIGITAL_KINDS = ("digital", "noise_aware", "randomized", "calibrated")
PRIOR_DRAWS = 4  # devices drawn from the mismatch prior to score domain randomisation's held-out chunks


@dataclasses.dataclass(frozen=True)
class TwinNoise:
    """The device's noise, quantisation and drive limits as its datasheet gives them (what the twin knows):
    detection SNR in dB (None: none), DAC bits for the inputs (on ``input_range``) and the written masks (on
    ``mask_range``), ADC bits for the states (on ``adc_range``); None bits: an ideal converter, no clipping.
    Same definitions as ``hardware_sim.nonidealities``' ``detection_noise``, ``dac`` and ``adc``."""

    snr_db: float | None = None
    dac_bits: int | None = None
    adc_bits: int | None = None
    input_range: tuple[float, float] = (-1.0, 1.0)
    mask_range: tuple[float, float] = (-1.0, 1.0)
    adc_range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        if self.snr_db is not None:
            check_scalar("snr_db", self.snr_db, nl.REAL)
        for name in ("dac_bits", "adc_bits"):
            if getattr(self, name) is not None:
                check_scalar(name, getattr(self, name), nl.BITS)
        for name in ("input_range", "mask_range", "adc_range"):
            object.__setattr__(self, name, nl._check_range(name, getattr(self, name)))


@dataclasses.dataclass(frozen=True)
class MismatchPrior:
    """The spread of devices around the nominal twin: each draw scales the model's relative mismatch fields
    (delay: input and feedback gain) by 1 + ``relative`` ξ, shifts its absolute ones (delay: phase) by
    ``absolute`` ξ — the form of ``nonidealities.mismatch`` — and, structurally, applies a per-node detection
    gain 1 + ``gain_spread`` ξ and offset ``offset_spread`` ξ (``nonidealities.node_spread``); ξ ~ N(0, 1)."""

    relative: float = 0.0
    absolute: float = 0.0
    gain_spread: float = 0.0
    offset_spread: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check_scalar(field.name, getattr(self, field.name), NON_NEGATIVE)


# ----------------------------------------------------------------------------------------- the twin model

# Host-side key streams: the model draws fresh noise on every training step through ``io_callback`` (as the
# device does), from a seeded generator, so runs are reproducible and no two steps share a draw.
_STREAMS: weakref.WeakValueDictionary[int, _KeyStream] = weakref.WeakValueDictionary()
_HANDLES = itertools.count()


class _KeyStream:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(check_scalar("seed", seed, SEED))
        self.handle = next(_HANDLES)
        _STREAMS[self.handle] = self


def _next_key(handle: np.ndarray) -> np.ndarray:
    return _STREAMS[int(handle)].rng.integers(0, 2**32, 2, dtype=np.uint32)


def _straight_through_quantise(x: jax.Array, bits: int, span: tuple[float, float]) -> jax.Array:
    """``nonidealities.quantise`` (clip to the range, round to 2^bits levels) whose gradient is the clip's:
    the rounding passes the gradient straight through (Bengio, Léonard, Courville, arXiv:1308.3432 (2013)),
    so training sees the quantised forward but a usable gradient."""
    clipped = jnp.clip(x, *span)
    return clipped + jax.lax.stop_gradient(nl.quantise(clipped, bits, *span) - clipped)


def _with_knobs(params: Any, factors: Mapping[str, jax.Array], offsets: Mapping[str, jax.Array]) -> Any:
    """What the device runs for the written ``params``: p · factor for the relative fields, p + offset for the
    absolute ones (a calibration's written → effective map, or one draw of the mismatch prior)."""
    fields = {name: getattr(params, name) * factor for name, factor in factors.items()}
    fields.update({name: getattr(params, name) + offset for name, offset in offsets.items()})
    return dataclasses.replace(params, **fields)


@dataclasses.dataclass(frozen=True)
class TwinModel:
    """``states(input_side, inputs, context)``: what the trainer's model predicts the device measures.

    The written parameters (twin with the input side) pass through the calibrated written → effective map
    (``context["factors"]``, ``context["offsets"]``; identity for an uncalibrated twin), a fresh draw of the
    mismatch ``prior`` (if any), the DAC; the twin runs; its states pass the per-node spread of the prior, the
    calibrated detection low-pass (``lowpass``, decay ``context["decay"]``), detection noise and the ADC
    (``noise``).  Noise and prior draws come fresh on every call from the key stream ``context["stream"]``.
    Hashable by value: ``readout.train`` compiles once per configuration and shapes.
    """

    noise: TwinNoise | None = None
    prior: MismatchPrior | None = None
    lowpass: bool = False

    def __call__(self, input_side: dict[str, jax.Array], inputs: jax.Array, context: dict[str, Any]) -> jax.Array:
        twin = context["twin"]
        params = _with_knobs(merge_trainable(twin, input_side), context["factors"], context["offsets"])
        key = io_callback(_next_key, jax.ShapeDtypeStruct((2,), jnp.uint32), context["stream"])
        prior_key, spread_key, noise_key = jax.random.split(key, 3)
        if self.prior is not None:
            relative, absolute = hardware_fields(twin).mismatch
            draws = _normals(prior_key, params, (*relative, *absolute))
            params = _with_knobs(params, {f: 1 + self.prior.relative * draws[f] for f in relative},
                                 {f: self.prior.absolute * draws[f] for f in absolute})
        if self.noise is not None and self.noise.dac_bits is not None:
            bits = self.noise.dac_bits
            params = dataclasses.replace(params, **{
                f: _straight_through_quantise(getattr(params, f), bits, self.noise.mask_range)
                for f in hardware_fields(twin).dac})
            inputs = _straight_through_quantise(inputs, bits, self.noise.input_range)
        states = run_states(params, inputs)
        if self.prior is not None and (self.prior.gain_spread or self.prior.offset_spread):
            gain_key, offset_key = jax.random.split(spread_key)
            shape = (states.shape[-1],)
            states = (states * (1 + self.prior.gain_spread * jax.random.normal(gain_key, shape, states.dtype))
                      + self.prior.offset_spread * jax.random.normal(offset_key, shape, states.dtype))
        if self.lowpass:
            states = lowpass_nodes(states.reshape(-1, *states.shape[-2:]), context["decay"]).reshape(states.shape)
        if self.noise is not None and self.noise.snr_db is not None:
            states, _ = nl.detection_noise(self.noise.snr_db).apply(states, (), noise_key)
        if self.noise is not None and self.noise.adc_bits is not None:
            states = _straight_through_quantise(states, self.noise.adc_bits, self.noise.adc_range)
        return states


def _normals(key: jax.Array, params: Any, fields: Sequence[str]) -> dict[str, jax.Array]:
    """One N(0, 1) draw shaped like each field, from independent keys."""
    keys = jax.random.split(key, len(fields))
    return {f: jax.random.normal(k, jnp.shape(getattr(params, f)), params.dtype)
            for f, k in zip(fields, keys, strict=True)}


def identity_knobs(twin: Any) -> dict[str, Any]:
    """The identity written → effective map of ``twin`` (factors 1, offsets 0, no low-pass)."""
    relative, absolute = hardware_fields(twin).mismatch
    return {"factors": {f: jnp.ones_like(getattr(twin, f)) for f in relative},
            "offsets": {f: jnp.zeros_like(getattr(twin, f)) for f in absolute},
            "decay": jnp.zeros((), twin.dtype)}


def knob_map(nominal: Any, calibrated: Any, decay: float = 0.0) -> dict[str, Any]:
    """The written → effective map a calibration implies: the device ran ``calibrated``'s knob values when
    ``nominal``'s were written, so a written p runs as p · (calibrated / nominal) for the relative fields and
    p + (calibrated − nominal) for the absolute ones (the form of the ``mismatch`` non-ideality); ``decay``:
    the fitted detection low-pass."""
    knobs = identity_knobs(nominal)
    for name in knobs["factors"]:
        written = np.asarray(getattr(nominal, name))
        if np.any(written == 0):
            raise ValueError(f"the nominal {name} must be non-zero to calibrate a relative map, got {written}")
        knobs["factors"][name] = jnp.asarray(getattr(calibrated, name) / written, nominal.dtype)
    for name in knobs["offsets"]:
        knobs["offsets"][name] = jnp.asarray(getattr(calibrated, name) - getattr(nominal, name), nominal.dtype)
    knobs["decay"] = jnp.asarray(decay, nominal.dtype)
    return knobs


@functools.partial(jax.jit, static_argnums=0)
def _model_states(model: TwinModel, input_side: dict[str, Any], inputs: jax.Array, context: dict[str, Any]):
    return model(input_side, inputs, context)


# ------------------------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class MethodResult:
    """A baseline's deployed ``params`` (``{"input_side", "readout"}``), its device cost (``n_calls``,
    ``n_samples``: calibration, search, training and the deployed readout's measurement; test evaluation
    excluded), the ``hyperparameters`` chosen and the search's ``table`` (one row per candidate)."""

    params: dict[str, Any]
    n_calls: int
    n_samples: int
    hyperparameters: dict[str, Any]
    table: list[dict[str, Any]]


def deployed_readout(device: Device, input_side: dict[str, Any], inputs: Any, targets: Any, n_held: int, *,
                     washout: int, pool: bool, alphas: Sequence[float] = ALPHAS,
                     states: Any = None) -> tuple[LinearReadout, float, float]:
    """``(readout, alpha, held-out NMSE)``: the training set measured on ``device`` with ``input_side`` (one
    call, unless its ``states`` are given), alpha chosen on the last ``n_held`` sequences (``held_out_alphas``),
    then the ridge ``LinearReadout`` (in the twin's dtype) of every training sequence with that alpha."""
    states = np.asarray(device.measure(inputs, input_side) if states is None else states, np.float64)
    score, alpha = held_out_alphas(states, targets, n_held, washout=washout, alphas=alphas, pool=pool)
    x, y = readout_view(states, np.asarray(targets, np.float64), washout, pool)
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    readout = Ridge(alpha * len(x)).fit(x, y).readout_
    return readout_as(readout, device.nominal_twin().dtype), alpha, score


def _checked(device: Device, inputs: Any, targets: Any, pool: bool) -> tuple[np.ndarray, np.ndarray]:
    check_instance("device", device, Device)
    inputs = check_array("inputs", inputs, 3, {-1: device.n_inputs})
    targets = check_array("targets", targets, 2 if pool else 3)
    if len(targets) != len(inputs):
        raise ValueError(f"targets must hold one entry per input sequence ({len(inputs)}), got {targets.shape}")
    return inputs, targets


# ------------------------------------------------------------------------------------ in-situ baselines


def reservoir_tuned(device: Device, inputs: Any, targets: Any, *, washout: int = 0, pool: bool = False,
                    space: Mapping[str, Sequence[float]] = KNOBS, alphas: Sequence[float] = ALPHAS,
                    validation_fraction: float = 0.2, budget: int | None = None) -> MethodResult:
    """The random-mask reservoir with its knobs and alpha chosen on held-out chunks measured on the device.

    Every candidate of ``space`` (written knob values, e.g. ``KNOBS``: 36 points) is measured once on the
    whole training set; its score is the best held-out NMSE over ``alphas`` of a ridge readout fitted on the
    other chunks.  The winner's readout is re-fitted on every chunk of its measurement (no extra call).
    Cost: one call per candidate (Hermans et al. 2016 tuned their baseline the same way, on the hardware).
    """
    inputs, targets = _checked(device, inputs, targets, pool)
    n_held = n_held_out(validation_fraction, len(inputs))
    for name in space:
        check_choice("space key", name, device.trainable_fields)

    def evaluate(**knobs: float):
        side = {name: jnp.asarray(value, device.nominal_twin().dtype) for name, value in knobs.items()}
        return _measured_score(device, side, inputs, targets, n_held, washout=washout, alphas=alphas, pool=pool)

    return _deployed(device, select(evaluate, space, device=device, budget=budget), inputs, targets, n_held,
                     washout=washout, pool=pool)


def _measured_score(device: Device, side: dict[str, Any], inputs: Any, targets: Any, n_held: int, *,
                    washout: int, alphas: Sequence[float], pool: bool) -> tuple[float, dict, tuple]:
    """A candidate's ``select`` outcome: the training set measured once with ``side``, scored out of sample
    (ridge on the fit chunks, the best of ``alphas`` on the held-out ones)."""
    states = np.asarray(device.measure(inputs, side), np.float64)
    score, alpha = held_out_alphas(states, targets, n_held, washout=washout, alphas=alphas, pool=pool)
    return score, {"alpha": alpha}, (side, states)


def _deployed(device: Device, chosen: Selection, inputs: Any, targets: Any, n_held: int, *, washout: int,
              pool: bool) -> MethodResult:
    """The chosen candidate with its readout re-fitted on every chunk of the measurement that scored it."""
    side, states = chosen.outcome
    readout, _, _ = deployed_readout(device, side, inputs, targets, n_held, washout=washout, pool=pool,
                                     alphas=[chosen.best["alpha"]], states=states)
    return MethodResult({"input_side": side, "readout": readout}, chosen.n_calls, chosen.n_samples, chosen.best,
                        chosen.table)


def spsa_tuned(device: Device, inputs: Any, targets: Any, *, washout: int = 0, pool: bool = False,
               names: Sequence[str] = NAMES, space: Mapping[str, Sequence[float]] = SPSA_GAINS,
               n_steps: int = 30, alphas: Sequence[float] = ALPHAS, validation_fraction: float = 0.2,
               seed: int = 0, budget: int | None = None) -> MethodResult:
    """SPSA with its gains a (``spsa_gain``) and c (``spsa_perturbation``) chosen on held-out chunks.

    Each candidate runs ``n_steps`` SPSA steps (``train_on_device(mode="spsa")``, 2 calls each) on the fit
    chunks, then the whole training set is measured once with the result and scored out of sample (ridge on
    the fit chunks, NMSE on the held-out ones, best of ``alphas``).  The winner's readout is re-fitted on
    every chunk of that measurement.  Cost: every candidate's 2 · ``n_steps`` + 2 calls.
    """
    inputs, targets = _checked(device, inputs, targets, pool)
    n_held = n_held_out(validation_fraction, len(inputs))

    def evaluate(spsa_gain: float, spsa_perturbation: float):
        try:
            result = train_on_device(device, inputs[:-n_held], targets[:-n_held], mode="spsa", names=names,
                                     washout=washout, alpha=TRAIN_ALPHA, pool=pool, seed=seed, n_epochs=n_steps,
                                     spsa_gain=spsa_gain, spsa_perturbation=spsa_perturbation)
        except DivergenceError:
            return math.inf, {}, None
        return _measured_score(device, result.params["input_side"], inputs, targets, n_held, washout=washout,
                               alphas=alphas, pool=pool)

    return _deployed(device, select(evaluate, space, device=device, budget=budget), inputs, targets, n_held,
                     washout=washout, pool=pool)


def in_situ_tuned(device: Device, inputs: Any, targets: Any, *, mode: str, washout: int = 0, pool: bool = False,
                  names: Sequence[str] | None = None, space: Mapping[str, Sequence[float]] = LEARNING_RATES,
                  alphas: Sequence[float] = ALPHAS, validation_fraction: float = 0.2, seed: int = 0,
                  budget: int | None = None, **train_options: Any) -> MethodResult:
    """``hil``, ``physical_backprop`` or ``dfa`` with the learning rate chosen on held-out chunks.

    Each candidate trains by ``train_on_device(mode, readout="ridge", validation_fraction=...)``, which
    early-stops out of sample on the last chunks (one call per epoch); its score is the best held-out NMSE
    reached.  The winner is deployed with its readout re-fitted (alpha chosen on the held-out chunks) on one
    more measurement.  Cost: every candidate's training and scoring calls, plus one.

    ``names`` defaults to ``NAMES`` (for ``dfa``, those of them in the written drive, ``DFA_FIELDS``: DFA
    cannot reach the feedback gain).  DFA's feedback scale s is not searched by default: Adam's update is
    invariant to a common scale of the gradient (up to its ε), so s only moves the result through ε
    (``tests/test_selection.py`` measures this); pass ``space={"dfa_feedback_scale": ...}`` to search it.
    """
    check_choice("mode", mode, ("hil", "physical_backprop", "dfa"))
    if names is None:
        names = [name for name in NAMES if mode != "dfa" or name in DFA_FIELDS]
    inputs, targets = _checked(device, inputs, targets, pool)
    n_held = n_held_out(validation_fraction, len(inputs))

    def evaluate(**hyperparameters: float):
        try:
            result = train_on_device(device, inputs, targets, mode=mode, names=names, washout=washout,
                                     alpha=TRAIN_ALPHA, pool=pool, seed=seed, readout="ridge",
                                     validation_fraction=validation_fraction, **train_options, **hyperparameters)
        except DivergenceError:
            return math.inf, {}, None
        history = result.history
        return min(history["initial_validation"] + history["validation"]), {}, result.params["input_side"]

    chosen = select(evaluate, space, device=device, budget=budget)
    calls, samples = device.n_calls, device.n_samples
    readout, alpha, _ = deployed_readout(device, chosen.outcome, inputs, targets, n_held, washout=washout,
                                         pool=pool, alphas=alphas)
    return MethodResult({"input_side": chosen.outcome, "readout": readout},
                        chosen.n_calls + device.n_calls - calls, chosen.n_samples + device.n_samples - samples,
                        dict(chosen.best, alpha=alpha), chosen.table)


# ------------------------------------------------------------------------------------ digital baselines


def train_in_model(device: Device, inputs: Any, targets: Any, *, model: TwinModel, knobs: dict[str, Any],
                   n_held: int, names: Sequence[str] = NAMES, washout: int = 0, pool: bool = False,
                   alpha: float = TRAIN_ALPHA, seed: int = 0, **train_options: Any) -> tuple[dict, float]:
    """``(input_side, held-out score)``: the input side trained in ``model`` (no device query) by the projected
    loss on all sequences but the last ``n_held``, early-stopped on those out of sample, scored in the same
    model: with a mismatch prior, the median score over ``PRIOR_DRAWS`` devices drawn from it (the same draws
    at every epoch, so epochs compare; the median, because a draw past the loop's stability limit scores
    anything badly) — domain randomisation's own objective, the typical device of the prior, not its centre."""
    twin = device.nominal_twin()
    start, _ = split_trainable(twin, list(names))
    stream = _KeyStream(seed)
    context = {"twin": twin, **knobs, "stream": np.int32(stream.handle)}
    # fixed streams: every call scores the same noise and prior draws
    draw_seeds = [np.random.SeedSequence([seed, draw]).generate_state(1)[0]
                  for draw in range(1 if model.prior is None else PRIOR_DRAWS)]

    def score(side: dict[str, Any]) -> float:
        scores = []
        for draw_seed in draw_seeds:
            fixed = _KeyStream(draw_seed)
            states = _model_states(model, side, jnp.asarray(inputs, twin.dtype),
                                   dict(context, stream=np.int32(fixed.handle)))
            raise_if_diverged(states, "the model's states on the held-out chunks", "the learning rate is too high")
            scores.append(held_out_score(states, targets, n_held, washout=washout, alpha=alpha, pool=pool))
        return float(np.median(scores))

    train_options.setdefault("progress", False)
    result = train_held_out(ProjectedLoss(model, washout, pool, alpha), {"input_side": start}, inputs, targets,
                            n_held=n_held, score=score, seed=seed, context=context, **train_options)
    history = result.history
    return result.params["input_side"], min(history["initial_validation"] + history["validation"])


def digital_tuned(device: Device, inputs: Any, targets: Any, *, kind: str, washout: int = 0, pool: bool = False,
                  names: Sequence[str] = NAMES, noise: TwinNoise | None = None, prior: MismatchPrior | None = None,
                  probe: Any = None, calibration_options: Mapping[str, Any] | None = None,
                  space: Mapping[str, Sequence[float]] = LEARNING_RATES, alphas: Sequence[float] = ALPHAS,
                  validation_fraction: float = 0.2, seed: int = 0, select_on: str = "model",
                  **train_options: Any) -> MethodResult:
    """A digital baseline (``kind`` in ``DIGITAL_KINDS``; module docstring) with its learning rate chosen on
    held-out chunks, deployed with the readout re-fitted on one device measurement (alpha chosen on its
    held-out chunks).

    Args:
        kind: ``"digital"`` (``digital+readout``), ``"noise_aware"`` (needs ``noise``), ``"randomized"``
            (needs ``prior``; ``noise`` optional), ``"calibrated"`` (``calibrate_twin`` on ``probe``, default
            the training inputs, with ``calibration_options``; ``noise`` optional).
        select_on: ``"model"``: every candidate is scored in the model (no device query); ``"device"``: what
            an experimenter checks before trusting a model, every candidate (each learning rate's input side,
            early-stopped in the model, and the untrained starting side, learning rate 0) is written to the
            device and scored on its held-out chunks, one call each, and the deployed readout re-uses the
            winner's measurement. A model that misleads then deploys no worse than the untrained side
            measures.
        train_options: ``readout.train``'s (``n_epochs``, ``batch_size``, ...).

    Cost: the calibration's calls (``calibrated``), then the deployed readout's one call (``select_on="model"``)
    or one call per candidate (``"device"``).
    """
    check_choice("kind", kind, DIGITAL_KINDS)
    check_choice("select_on", select_on, ("model", "device"))
    inputs, targets = _checked(device, inputs, targets, pool)
    n_held = n_held_out(validation_fraction, len(inputs))
    if kind == "noise_aware" and noise is None:
        raise ValueError("kind='noise_aware' needs noise=TwinNoise(...) (the device's datasheet levels)")
    if kind == "randomized" and prior is None:
        raise ValueError("kind='randomized' needs prior=MismatchPrior(...)")
    if noise is not None:
        check_instance("noise", noise, TwinNoise)
    if prior is not None:
        check_instance("prior", prior, MismatchPrior)
    twin = device.nominal_twin()
    calls, samples = device.n_calls, device.n_samples
    knobs, extra = identity_knobs(twin), {}
    if kind == "calibrated":
        calibration = calibrate_twin(device, inputs if probe is None else probe,
                                     **{"fields": CALIBRATED_FIELDS, **dict(calibration_options or {})})
        knobs = knob_map(twin, calibration.twin, calibration.fitted.get("decay", 0.0))
        extra = {f"calibrated_{name}": value for name, value in calibration.fitted.items()}
    model = TwinModel(noise=None if kind == "digital" else noise, prior=prior if kind == "randomized" else None,
                      lowpass=kind == "calibrated")

    def evaluate(**hyperparameters: float):
        if select_on == "device" and hyperparameters.get("learning_rate") == 0:  # the untrained start
            side, _ = split_trainable(twin, list(names))
        else:
            try:
                side, score = train_in_model(device, inputs, targets, model=model, knobs=knobs, n_held=n_held,
                                             names=names, washout=washout, pool=pool, seed=seed,
                                             **train_options, **hyperparameters)
            except DivergenceError:
                return math.inf, {}, None
            if select_on == "model":
                return score, {}, side
        return _measured_score(device, side, inputs, targets, n_held, washout=washout, alphas=alphas, pool=pool)

    if select_on == "device":
        space = {**space, "learning_rate": (0.0, *space["learning_rate"])}
        chosen = select(evaluate, space, device=device)
        result = _deployed(device, chosen, inputs, targets, n_held, washout=washout, pool=pool)
        return MethodResult(result.params, device.n_calls - calls, device.n_samples - samples,
                            dict(result.hyperparameters, **extra), result.table)
    chosen = select(evaluate, space)
    side = chosen.outcome
    readout, alpha, _ = deployed_readout(device, side, inputs, targets, n_held, washout=washout, pool=pool,
                                         alphas=alphas)
    return MethodResult({"input_side": side, "readout": readout}, device.n_calls - calls,
                        device.n_samples - samples, dict(chosen.best, alpha=alpha, **extra), chosen.table)
