"""Training "input side + linear readout" with a device in the loop: one optax loop, several gradient sources.

Every mode minimises the same loss with the same loop (``readout.train``),

    L(θ, W, b) = mean_{b, t ≥ washout} ‖ x_{b,t}(θ) W + b − y_{b,t} ‖²,

and differs only in where the states x(θ) (the forward) and their vector–Jacobian product (the backward) come
from:

=====================  =======================================  ==============================================
mode                   forward x(θ)                             backward
=====================  =======================================  ==============================================
``digital``            the nominal twin (``run_states``)        ``jax.vjp`` of the twin (BPTT)
``digital+readout``    as ``digital``; afterwards the readout is re-solved by ridge on states measured on the
                       device (JMLR 2015 hybrid)
``hil``                ``device.measure`` (one call per step)   physics-aware training (Wright et al., Nature
                                                                601, 549 (2022)): the twin's per-period
                                                                Jacobians evaluated along the *measured*
                                                                trajectory, in reversed time
                                                                (``measured_trajectory_states``)
``hil_twin_rerun``     ``device.measure``                       ablation: ``jax.vjp`` of the twin rerun from
                                                                rest at the same θ and inputs (BPTT along the
                                                                twin's own trajectory; the measurement enters
                                                                only through the error)
``physical_backprop``  ``device.measure``                       ``device.adjoint``: the error sent back through
                                                                the device in reversed time, σ' read with the
                                                                bias shifted by π/2 (Hermans et al. 2016)
``dfa``                ``device.measure``                       augmented direct feedback alignment (Nakajima
                                                                et al., Nat. Commun. 13, 7847 (2022)): the
                                                                readout error through a fixed random B, times
                                                                g(measured states) in place of f′; no model,
                                                                no backward query (``_dfa_loss``)
``spsa``               the in-sample ridge loss of the states measured at θ ± c_k Δ (two calls per step),
                       gradient (L⁺ − L⁻) / (2 c_k) · Δ, Δ Rademacher (Spall 1998); the readout is the ridge
                       solution on measured states, re-solved after training
``finite_difference``  the same loss, each of the P scalar input-side parameters perturbed alone: θ ± c_k e_j,
                       gradient_j = (L⁺_j − L⁻_j) / (2 c_k), 2P calls per step (Kiefer–Wolfowitz FDSA, with
                       SPSA's gains a_k and c_k, so the two differ only in the gradient estimate)
=====================  =======================================  ==============================================

``digital``, ``digital+readout`` and the ``hil`` backward use a twin: the device's nominal one by default, any
other model of the same shapes, or a ``calibrate_twin`` result given as ``twin=``, whose written → effective map
(factor · written + offset per calibrated scalar) makes the twin run where the device runs for what the trainer
writes.  The in-situ modes use only the device's public measurement interface (``measure``, ``adjoint``,
``nominal_twin``, the counters); every result reports the device calls, samples and device time spent
(``device_seconds``).

**Calling the device inside the jitted step.**  ``readout.train`` compiles its step with ``jax.jit``, and
``Device.measure`` is stateful Python (noise keys, drift, query counters) that cannot be traced.  The device is
therefore called from inside the compiled step through ``jax.experimental.io_callback`` placed in a
``jax.custom_vjp`` forward rule.  ``io_callback`` rather than ``pure_callback``: ``pure_callback`` declares the
function pure, so XLA may drop, duplicate or cache calls, which would make the query count (and the noise
stream) depend on the compiler; ``io_callback`` guarantees one device call per executed step, as on hardware.

Example:
    >>> from hardware_sim import delay_device
    >>> device = delay_device(10, seed=0, mismatch=0.1)
    >>> u, y = np.random.default_rng(0).uniform(0, 0.5, (2, 8, 50, 1))
    >>> result = train_on_device(device, u, y, mode="hil", washout=5, n_epochs=2, batch_size=4)
    >>> result.n_calls  # one call for the initial readout, one per step (2 steps per epoch)
    5
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import io_callback

from hardware_sim.calibration import CalibrationResult
from hardware_sim.protocol import DeviceProtocol, check_device, is_replayable
from readout.features import time_average
from readout.linear import LinearReadout
from readout.losses import nmse
from readout.optimise import host_function, train
from readout.projection import (
    JointLoss,
    ProjectedLoss,
    batch_ridge,
    readout_view,
    ridge_penalty,
    ridge_readout,
    train_projected,
)
from readout.ridge import Ridge
from reservoir.trainable import merge_trainable, run_states, split_trainable
from reservoir.validation import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    check_array,
    check_choice,
    check_scalar,
    check_washout,
)

MODES = ("digital", "digital+readout", "hil", "hil_twin_rerun", "physical_backprop", "dfa", "spsa",
         "finite_difference")
IN_SITU_MODES = ("hil", "hil_twin_rerun", "physical_backprop", "dfa", "spsa", "finite_difference")
BACKWARDS = ("measured", "twin_rerun", "device")
BACKWARD_OF_MODE = {"hil": "measured", "hil_twin_rerun": "twin_rerun", "physical_backprop": "device"}

StatesFn = Callable[[dict[str, jax.Array], jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class DeviceTrainResult:
    """``params``: ``{"input_side": {field: array}, "readout": LinearReadout(W (N, O), b (O,))}``;
    ``history``: ``{"train": [...]}`` the training loss per epoch (twin loss for ``digital``, device loss
    otherwise; for ``spsa`` the mean of L⁺ and L⁻ per step, for ``finite_difference`` the mean of its 2P
    evaluations per step); ``n_calls`` / ``n_samples``: device queries spent by training (measurements and
    B · T samples), evaluation excluded; ``device_seconds``: the time those samples occupy the device,
    n_samples · N · θ (``device_seconds``), None for a device whose twin has no ``node_duration``."""

    params: dict[str, Any]
    history: dict[str, list[float]]
    n_calls: int
    n_samples: int
    device_seconds: float | None = None


def device_seconds(device: DeviceProtocol, n_samples: int) -> float | None:
    """Device time of ``n_samples`` input samples: each holds the input for one period of N virtual nodes, so
    n_samples · N · θ with θ the twin's ``node_duration`` (``reservoir.delay.DelayParams.node_duration``: the
    published set-up's value); None when the twin gives no node duration.  Loop transients and the
    instrument's own overheads (writing masks, reading out) are not counted."""
    node_duration = getattr(device.nominal_twin(), "node_duration", None)
    return None if node_duration is None else n_samples * device.n_units * node_duration


# Compiled code names a device by a small integer handle and receives the twin's parameters as arguments
# (``train``'s ``context``), so one compilation of the training step serves every device and twin of the same
# shapes: a sweep over mismatch levels and seeds compiles once per mode instead of once per unit.
_DEVICES: weakref.WeakValueDictionary[int, DeviceProtocol] = weakref.WeakValueDictionary()
_HANDLES: weakref.WeakKeyDictionary[DeviceProtocol, int] = weakref.WeakKeyDictionary()
_NEXT_HANDLE = itertools.count()


def device_context(device: DeviceProtocol, twin: Any = None) -> dict[str, Any]:
    """What the compiled states functions need of ``device``: a twin (its nominal one unless ``twin`` is given),
    the twin's written → effective map of its calibrated scalars and the device's handle.

    ``twin``: a model like the nominal twin, or a ``CalibrationResult`` whose ``twin`` and
    ``written_to_effective`` map are used (``effective = factor · written + offset`` per calibrated scalar).
    """
    if device not in _HANDLES:
        handle = next(_NEXT_HANDLE)
        _HANDLES[device], _DEVICES[handle] = handle, device
    nominal = device.nominal_twin()
    maps = twin.written_to_effective if isinstance(twin, CalibrationResult) else {}
    model = twin.twin if isinstance(twin, CalibrationResult) else twin
    model = nominal if model is None else check_twin(device, model)
    # Every scalar input-side field gets a (factor, offset), identity unless calibrated: one context structure
    # for every twin, so the compiled steps are shared.
    effective = {name: (np.ones((), model.dtype), np.zeros((), model.dtype))
                 for name in device.trainable_fields if np.ndim(getattr(nominal, name, None)) == 0
                 and getattr(nominal, name, None) is not None}
    for name, (factor, offset) in maps.items():
        effective[name] = (np.asarray(factor, model.dtype), np.asarray(offset, model.dtype))
    return {"twin": model, "effective": effective, "device": np.int32(_HANDLES[device])}


def effective_params(context: dict[str, Any], input_side: dict[str, jax.Array]) -> Any:
    """The twin with the trainer's written ``input_side`` put in at its effective values: each calibrated scalar
    mapped written → factor · written + offset (``calibrate_twin``'s ``written_to_effective``), the rest as
    written."""
    effective = {name: context["effective"][name][0] * value + context["effective"][name][1]
                 if name in context["effective"] else value for name, value in input_side.items()}
    return merge_trainable(context["twin"], effective)


def check_twin(device: DeviceProtocol, twin: Any) -> Any:
    """``twin`` if it can stand in for ``device``'s nominal twin: same type, pytree structure (static fields
    included), shapes and dtypes, so the compiled steps are shared and the input side fits it."""
    nominal = device.nominal_twin()
    if type(twin) is not type(nominal):
        raise TypeError(f"twin must be a {type(nominal).__name__} like the device's nominal twin, "
                        f"got {type(twin).__name__}")
    expected, got = jax.tree_util.tree_structure(nominal), jax.tree_util.tree_structure(twin)
    if expected != got:
        raise ValueError(f"twin must have the nominal twin's structure and static fields {expected}, got {got}")
    for (path, want), have in zip(jax.tree_util.tree_leaves_with_path(nominal), jax.tree_util.tree_leaves(twin),
                                  strict=True):
        if jnp.shape(have) != jnp.shape(want) or jnp.result_type(have) != jnp.result_type(want):
            raise ValueError(f"twin{jax.tree_util.keystr(path)} must have shape {jnp.shape(want)} and dtype "
                             f"{jnp.result_type(want)}, got {jnp.shape(have)} {jnp.result_type(have)}")
    return twin


def _twin_forward(input_side: dict[str, jax.Array], inputs: jax.Array, context: dict[str, Any], *,
                  checkpoint_every: int | None) -> jax.Array:
    return run_states(effective_params(context, input_side), inputs, checkpoint_every=checkpoint_every)


def measured_trajectory_states(params: Any, inputs: jax.Array, measured: jax.Array) -> jax.Array:
    """The twin ``params`` driven period by period from the *measured* states: returns ``measured`` (…, T, N),
    and its derivative is physics-aware training's (Wright et al., Nature 601, 549 (2022)).

    Each period n runs the twin's own step (``scan_step``) from the loop content the device actually had,
    c̃(n−1) (``carry_with_states`` of the measured x̃(n−1); for ``"sine"`` also x̃_{N−1}(n−2), for
    ``"sin2_lowpass"`` the filter drive γ_{N−1}(n−1) recomputed from the measured states).  Its output and the
    carry it hands on take the measured values, value = measured, derivative = the twin step's
    (x + stop_gradient(x̃ − x)).  Reverse-mode differentiation therefore runs the reverse-time recursion

        g(n) = ∂L/∂x̃(n) + Σ_k (∂f_{n+k}/∂x(n))ᵀ g(n+k),     ∂L/∂θ = Σ_n (∂f_n/∂θ)ᵀ g(n),

    with every Jacobian of the twin's step f_n evaluated at the measured states and the inputs of period n.
    When the measured trajectory is the twin's own, this is exactly BPTT of the twin.
    """

    def one(u: jax.Array, x: jax.Array) -> jax.Array:
        step, carry = params.scan_step(jnp.zeros(params.n_units, params.dtype))

        def period(carry, u_and_x):
            u_n, measured_n = u_and_x
            carry, state = step(carry, u_n)
            carry = carry + jax.lax.stop_gradient(params.carry_with_states(carry, measured_n) - carry)
            return carry, state + jax.lax.stop_gradient(measured_n - state)

        return jax.lax.scan(period, carry, (u, x))[1]

    inputs, measured = jnp.asarray(inputs, params.dtype), jnp.asarray(measured, params.dtype)
    return jax.vmap(one)(inputs, measured) if inputs.ndim == 3 else one(inputs, measured)


def _measure(input_side: dict[str, jax.Array], inputs: jax.Array, context: dict[str, Any]) -> jax.Array:
    """``device.measure`` from compiled code: one call per executed evaluation (``io_callback``)."""
    twin = context["twin"]
    shape = jax.ShapeDtypeStruct((*inputs.shape[:-1], twin.n_units), twin.dtype)
    return io_callback(_measure_callback, shape, context["device"], input_side, inputs)


@host_function
def _measure_callback(handle: np.ndarray, input_side: dict[str, np.ndarray], inputs: np.ndarray) -> np.ndarray:
    device = _DEVICES[int(handle)]
    return np.asarray(device.measure(inputs, input_side), device.nominal_twin().dtype)


@host_function
def _adjoint_callback(handle: np.ndarray, input_side: dict[str, np.ndarray], inputs: np.ndarray,
                      states: np.ndarray, cotangent: np.ndarray) -> dict[str, np.ndarray]:
    device = _DEVICES[int(handle)]
    gradients = device.adjoint(inputs, input_side, cotangent, states=states)
    return {name: np.asarray(value, device.nominal_twin().dtype) for name, value in gradients.items()}


@functools.cache
def _twin_states(checkpoint_every: int | None) -> Callable[..., jax.Array]:
    """``states(input_side, inputs, context)`` of the twin, one function object per configuration."""
    return functools.partial(_twin_forward, checkpoint_every=checkpoint_every)


@functools.cache
def _in_situ_states(backward: str, checkpoint_every: int | None) -> Callable[..., jax.Array]:
    """``states(input_side, inputs, context)``: forward on the device, backward per ``backward`` (one of
    ``BACKWARDS``; one function object per configuration, so ``train`` reuses its compilation)."""
    twin = _twin_states(checkpoint_every)

    @jax.custom_vjp
    def states(input_side, inputs, context):
        return _measure(input_side, inputs, context)

    def forward(input_side, inputs, context):
        measured = _measure(input_side, inputs, context)
        return measured, (input_side, inputs, context, measured)

    def backward_rule(residuals, cotangent):
        input_side, inputs, context, measured = residuals
        if backward == "measured":
            pat = lambda s, u: measured_trajectory_states(effective_params(context, s), u, measured)
            return (*jax.vjp(pat, input_side, inputs)[1](cotangent), None)
        if backward == "twin_rerun":
            return (*jax.vjp(lambda s, u: twin(s, u, context), input_side, inputs)[1](cotangent), None)
        shapes = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), input_side)
        gradients = io_callback(_adjoint_callback, shapes, context["device"], input_side, inputs, measured,
                                cotangent)
        return gradients, jnp.zeros_like(inputs), None

    states.defvjp(forward, backward_rule)
    return states


def twin_states(device: DeviceProtocol, names: Sequence[str], *, checkpoint_every: int | None = None,
                twin: Any = None) -> StatesFn:
    """``states(input_side, inputs)``: the twin's differentiable states, (…, T, D) -> (…, T, N); the nominal
    twin unless ``twin`` is given."""
    split_trainable(device.nominal_twin(), list(names))  # validates names
    context, states = device_context(device, twin), _twin_states(checkpoint_every)
    return lambda input_side, inputs: states(input_side, inputs, context)


def device_states(device: DeviceProtocol, names: Sequence[str], *, checkpoint_every: int | None = None,
                  backward: str = "measured", twin: Any = None) -> StatesFn:
    """In-situ states: forward = ``device.measure``, backward per ``backward``.

    ``states(input_side, inputs)`` returns what the device measures for ``inputs`` (…, T, D) with the input
    side ``input_side``, one device call per evaluation, also under ``jax.jit`` (via ``io_callback``).  Its
    custom VJP pulls the cotangent of the states back

    * ``"measured"`` (physics-aware training, Wright et al., Nature 601, 549 (2022)): through the twin's
      per-period Jacobians evaluated along the *measured* trajectory, the reverse-time recursion of
      ``measured_trajectory_states``, with the twin at the effective values of what is written;
    * ``"twin_rerun"`` (an ablation): through ``jax.vjp`` of the twin rerun from rest at the same
      ``input_side`` and ``inputs``, i.e. BPTT along the twin's own trajectory, the measurement entering only
      through the cotangent;
    * ``"device"``: through the device itself (``Device.adjoint``: physical backprop, Hermans et al. 2016), two
      more device calls per step.

    ``twin``: the model of the backward (default: the nominal twin), or a ``CalibrationResult``;
    ``checkpoint_every`` applies to the twin rerun of ``"twin_rerun"``.
    """
    check_choice("backward", backward, BACKWARDS)
    split_trainable(device.nominal_twin(), list(names))  # validates names
    context = device_context(device, twin)
    states = _in_situ_states(backward, checkpoint_every)
    return lambda input_side, inputs: states(input_side, inputs, context)


def dfa_node_factor(states: jax.Array) -> jax.Array:
    """g(x) = 1 − x², the default stand-in for f′ of augmented DFA: a function of the measured node signal x
    alone (for a sine node x = sin a it is cos² a = f′(a)², of f′'s magnitude without its sign)."""
    return 1 - states**2


def _drive(params: Any, inputs: jax.Array) -> jax.Array:
    """The written part of every node's argument, β (M u(n) + m₀) + φ (…, T, N): how the input side enters a
    delay node (``reservoir.delay``), known to whoever writes it."""
    return params.input_gain * (inputs @ params.mask.T + params.bias_mask) + params.phase


DFA_FIELDS = ("mask", "bias_mask", "input_gain", "phase")


@functools.cache
def _dfa_loss(washout: int, pool: bool, alpha: float | None,
              node_factor: Callable[[jax.Array], jax.Array]) -> Callable[..., jax.Array]:
    """``loss(params, inputs, targets, context)`` of ``dfa``: the readout's MSE on states measured on the device
    (one call), differentiated by augmented direct feedback alignment (Nakajima et al., Nat. Commun. 13, 7847
    (2022)).

    Forward: x̃ = device.measure(u, θ); the readout error e = x̃ W + b − y on ``readout_view``'s steps (W, b:
    ``params["readout"]``, or with ``alpha`` the ridge fit of the batch, variable projection).  Backward, from
    measured quantities only (inputs, recorded states, e, the fixed random matrix B (N, O) in
    ``context["feedback"]``):

        δ(n) = (B ē(n)) ⊙ g(x̃(n)),      ē = ∂L/∂ŷ = 2 e / (number of entries of e),
        Δθ ∝ Σ_n (∂d(n)/∂θ)ᵀ δ(n),      d(n) = β (M u(n) + m₀) + φ   (the written drive of every node),

    i.e. ∂L/∂M ≈ β Σ_n δ(n) u(n)ᵀ, ∂L/∂m₀ ≈ β Σ δ, ∂L/∂β ≈ Σ δ ⊙ (M u + m₀), ∂L/∂φ ≈ Σ δ: the error reaches
    every node directly through B instead of back through the readout Wᵀ and the loop, and g (``node_factor``)
    replaces the unknown f′.  No model and no derivative of the physics; one device call per step.  The
    readout's own gradient (``"joint"``) is exact: it is linear in the measured states.
    """

    def errors(params, inputs, targets, measured):
        x, y = readout_view(measured, targets, washout, pool)
        if alpha is None:
            readout = params["readout"]
        else:
            readout = batch_ridge(x, y, alpha)
        return x, readout(x) - y

    @jax.custom_vjp
    def loss(params, inputs, targets, context):
        return jnp.mean(errors(params, inputs, targets, _measure(params["input_side"], inputs, context))[1] ** 2)

    def forward(params, inputs, targets, context):
        measured = _measure(params["input_side"], inputs, context)
        x, error = errors(params, inputs, targets, measured)
        return jnp.mean(error**2), (params, inputs, targets, context, measured, x, error)

    def backward(residuals, cotangent):
        params, inputs, targets, context, measured, x, error = residuals
        output = (cotangent * 2 * error / error.size).astype(measured.dtype)  # ∂L/∂ŷ
        projected = output @ context["feedback"].T  # B ē in place of Wᵀ ē
        _, view = jax.vjp(lambda states: readout_view(states, targets, washout, pool)[0], measured)
        delta = view(projected)[0] * node_factor(measured)
        written = lambda side: _drive(merge_trainable(context["twin"], side), inputs.astype(measured.dtype))
        gradients = {"input_side": jax.vjp(written, params["input_side"])[1](delta)[0]}
        if "readout" in params:
            flat, flat_output = x.reshape(-1, x.shape[-1]), output.reshape(-1, output.shape[-1])
            gradients["readout"] = LinearReadout(flat.T @ flat_output, flat_output.sum(0))
        return gradients, jnp.zeros_like(inputs), jnp.zeros_like(targets), None

    loss.defvjp(forward, backward)
    return loss


def ridge_objective(device: DeviceProtocol, *, washout: int, alpha: float,
                    pool: bool = False) -> Callable[..., float]:
    """``J(input_side, inputs, targets)``: the in-sample ridge NMSE of the states measured on ``device`` with
    ``input_side`` (one call), min over (W, b) of the NMSE on ``readout_view``'s states and targets; the
    objective of the gradient-free modes (``spsa``, ``finite_difference``)."""

    def objective(side, inputs, targets) -> float:
        states = np.asarray(device.measure(inputs, side), np.float64)
        x, y = readout_view(states, np.asarray(targets, np.float64), washout, pool)
        return Ridge(ridge_penalty(alpha, x)).fit(x, y).score(x, y)

    return objective


def _perturbation_sizes(perturbation: float) -> Callable[[], float]:
    """c_k = c / (k + 1)^0.101 (Spall 1998), k counting the calls: the perturbation size of step k."""
    step = itertools.count()
    return lambda: perturbation / (next(step) + 1) ** 0.101


def _gradient_free_loss(objective: Callable[..., float], estimate: Callable[..., tuple[float, dict]]
                        ) -> Callable[..., jax.Array]:
    """``loss(params, inputs, targets)`` with ``params = {"input_side": ...}`` whose value and gradient come
    from the device through ``io_callback``: evaluated alone it returns ``objective(side, inputs, targets)``;
    under ``jax.grad`` its forward runs ``estimate(side, inputs, targets) -> (value, gradient)`` once (all the
    measurements of the step) and its backward returns that gradient times the cotangent."""
    scalar = jax.ShapeDtypeStruct((), jnp.float32)

    @host_function
    def estimate_callback(side, inputs, targets):
        value, gradient = estimate(side, inputs, targets)
        return (np.asarray(value, np.float32),
                {n: np.asarray(gradient[n], np.asarray(v).dtype) for n, v in side.items()})

    @jax.custom_vjp
    def loss_of_side(side, inputs, targets):
        return io_callback(host_function(lambda *a: np.asarray(objective(*a), np.float32)), scalar, side, inputs,
                           targets)

    def forward(side, inputs, targets):
        shapes = (scalar, jax.tree_util.tree_map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), side))
        value, gradient = io_callback(estimate_callback, shapes, side, inputs, targets)
        return value, (gradient, inputs, targets)

    def backward(residuals, cotangent):
        gradient, inputs, targets = residuals
        return (jax.tree_util.tree_map(lambda g: g * cotangent.astype(g.dtype), gradient),
                jnp.zeros_like(inputs), jnp.zeros_like(targets))

    loss_of_side.defvjp(forward, backward)
    return lambda params, inputs, targets: loss_of_side(params["input_side"], inputs, targets)


def spsa_loss(device: DeviceProtocol, names: Sequence[str], *, washout: int, alpha: float, perturbation: float,
              seed: int, pool: bool = False) -> Callable[..., jax.Array]:
    """``loss(params, inputs, targets)`` for SPSA with ``params = {"input_side": ...}``.

    The objective is the in-sample ridge NMSE of the measured states, J(θ) = min_{W,b} NMSE
    (``ridge_objective``).  Its forward (under ``jax.grad``) measures twice, at θ ± c_k Δ with Δ Rademacher and
    c_k = c / (k + 1)^0.101 (k = step), and returns (J⁺ + J⁻) / 2; its backward returns the SPSA estimate
    (J⁺ − J⁻) / (2 c_k) · Δ times the cotangent.  Evaluated without a gradient it measures once, at θ.
    ``pool``: as in ``train_on_device``.
    """
    objective = ridge_objective(device, washout=washout, alpha=alpha, pool=pool)
    sizes, rng = _perturbation_sizes(perturbation), np.random.default_rng(seed)

    def estimate(side, inputs, targets):
        c = sizes()
        delta = {name: rng.choice([-1.0, 1.0], size=np.shape(value)) for name, value in side.items()}
        plus = objective({n: v + c * delta[n] for n, v in side.items()}, inputs, targets)
        minus = objective({n: v - c * delta[n] for n, v in side.items()}, inputs, targets)
        slope = (plus - minus) / (2 * c)
        return 0.5 * (plus + minus), {n: slope * delta[n] for n in side}

    return _gradient_free_loss(objective, estimate)


def finite_difference_loss(device: DeviceProtocol, names: Sequence[str], *, washout: int, alpha: float,
                           perturbation: float, pool: bool = False) -> Callable[..., jax.Array]:
    """``loss(params, inputs, targets)`` for finite differences with ``params = {"input_side": ...}``.

    Same objective J as ``spsa_loss``, gradient by central differences one scalar parameter at a time: for
    every entry j of every input-side field (a mask (N, D) counts N · D), J is measured at θ ± c_k e_j, and
    ∂J/∂θ_j ≈ (J⁺_j − J⁻_j) / (2 c_k) with c_k = c / (k + 1)^0.101 as in SPSA.  One gradient costs 2P device
    calls for P scalar parameters (SPSA: 2, whatever P): the price of an estimate whose error is the O(c_k²)
    truncation and the measurement noise / c_k of each coordinate, rather than SPSA's random cross-talk
    between coordinates.  The forward returns the mean of the 2P measured J (≈ J(θ) + O(c_k²)); evaluated
    without a gradient the loss measures once, at θ.  ``pool``: as in ``train_on_device``.
    """
    objective = ridge_objective(device, washout=washout, alpha=alpha, pool=pool)
    sizes = _perturbation_sizes(perturbation)

    def estimate(side, inputs, targets):
        c = sizes()
        values, gradient = [], {}
        for name, value in side.items():
            value = np.asarray(value)
            partials = np.zeros(value.size)
            for j in range(value.size):
                step = np.zeros(value.size)
                step[j] = c
                plus = objective({**side, name: value + step.reshape(value.shape)}, inputs, targets)
                minus = objective({**side, name: value - step.reshape(value.shape)}, inputs, targets)
                partials[j] = (plus - minus) / (2 * c)
                values += [plus, minus]
            gradient[name] = partials.reshape(value.shape)
        return float(np.mean(values)), gradient

    return _gradient_free_loss(objective, estimate)


def train_on_device(
    device: DeviceProtocol,
    inputs: Any,
    targets: Any,
    *,
    mode: str,
    names: Sequence[str] = ("mask",),
    washout: int = 0,
    alpha: float = 1e-6,
    checkpoint_every: int | None = None,
    spsa_gain: float = 0.05,
    spsa_perturbation: float = 0.05,
    spsa_stability: float | None = None,
    seed: int = 0,
    pool: bool = False,
    twin: Any = None,
    readout: str = "joint",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_interval: int = 1,
    dfa_feedback_scale: float = 1.0,
    dfa_node_factor: Callable[[jax.Array], jax.Array] = dfa_node_factor,
    max_device_calls: int | None = None,
    **train_options: Any,
) -> DeviceTrainResult:
    """Train the input side ``names`` and a linear readout of ``device`` in one of the ``MODES``.

    Args:
        device: the device (its nominal twin gives the starting input side and the digital model).
        inputs: ``(B, T, D)`` training sequences (each starts from rest); targets: ``(B, T, O)``, or ``(B, O)``
            with ``pool``.
        mode: one of ``MODES`` (module docstring).
        names: trained input-side fields, a subset of ``device.trainable_fields``.
        washout: leading steps of every sequence left out of the loss and of the ridge fits.
        alpha: ridge regularisation per row (``ridge_penalty``: the fits minimise mean ‖xW + b − y‖² + α‖W‖²,
            so one value means the same at any data size) of the initial readout (fitted on the mode's forward
            states: the twin's for the digital modes, measured ones otherwise — one device call), of the
            projected loss, of the ``digital+readout`` refit and of the readouts of ``spsa`` and
            ``finite_difference``.
        checkpoint_every: passed to ``run_states`` for the twin's forward/backward.
        spsa_gain, spsa_perturbation, spsa_stability: SPSA's a, c and A in the standard gains
            a_k = a / (k + 1 + A)^0.602 (the optax learning-rate schedule of plain SGD) and
            c_k = c / (k + 1)^0.101; A defaults to 10 % of the steps (Spall 1998).  One step per epoch (the
            whole training set is the batch: the in-sample ridge loss needs it).  ``finite_difference`` uses
            the same gains (c_k its difference step), so it differs from ``spsa`` only in its gradient
            estimate: 2P calls per step for P scalar parameters instead of 2.
        seed: batch order and SPSA's perturbation draws.
        pool: sequence classification/regression: the readout sees each sequence's states averaged over its
            steps after ``washout`` and predicts one target per sequence (``readout_view``).
        readout: for the gradient modes, ``"joint"``: the readout is trained by the gradient together with the
            input side, from its ridge start (the "Full" system of Hermans et al. 2016); ``"ridge"``: the
            readout is solved in closed form on every batch inside the loss (``alpha``), the gradient moves the
            input side only, and the final readout is the ridge fit on the whole training set.
        twin: the model of the ``digital`` modes' forward and backward and of the ``hil`` backward (default:
            the device's nominal twin): a model with the nominal twin's type, static fields, shapes and dtypes,
            or a ``CalibrationResult`` (``calibrate_twin``), whose twin is then run at the *effective* values of
            what the trainer writes (its ``written_to_effective`` map per calibrated scalar), so calibrated
            fields may be trained.  A plain model that differs from the nominal twin in a trained field is
            refused: training would overwrite that field with the written values.  ``dfa`` uses no model.
        checkpoint, checkpoint_interval: ``readout.train``'s: the training state, the query counters and (for a
            replayable device, ``hardware_sim.protocol``) the device's snapshot are saved to the file
            ``checkpoint`` every ``checkpoint_interval`` updates; after a crash the same call resumes from it
            (bit-identical to an uninterrupted run on a replayable device) without re-measuring the initial
            readout.  Not for ``spsa`` and ``finite_difference`` (their perturbation stream is not saved).
        dfa_feedback_scale: ``dfa``'s feedback scale s: B (N, O) has i.i.d. entries N(0, s²), drawn from
            ``seed`` (a hyperparameter, like a learning rate).  ``dfa_node_factor``: its g(x̃) in place of f′,
            a function of the measured states (default ``dfa_node_factor``, 1 − x²).  ``dfa`` trains the
            fields of ``DFA_FIELDS`` (the written drive of a sine or sin² delay device).
        max_device_calls: a budget of device calls for the training (None: no limit): the gradient modes stop
            after the epoch at which one more epoch, costing what the last one did, would exceed it (the final
            readout fit included); ``spsa`` and ``finite_difference`` likewise per step.  At least one epoch
            (step) runs, so a budget below one epoch's cost is overrun by that epoch.
        train_options: passed to ``readout.train`` (``optimizer``, ``learning_rate``, ``n_epochs``,
            ``batch_size``, ``l2``, ``callback``, ...); ``progress`` is off by default.  With ``readout="ridge"``,
            ``validation_fraction`` early-stops out of sample (``train_held_out``): the last chunks are held out,
            and after every epoch a ridge readout fitted on the other chunks' states (measured for the in-situ
            modes: one device call per epoch, counted) is scored on them.  For ``spsa`` and
            ``finite_difference`` only ``n_epochs`` (their number of steps) and the non-gradient options apply:
            ``batch_size``, ``learning_rate`` and ``optimizer`` are ignored, so one set of options can drive
            every mode.

    Returns:
        ``DeviceTrainResult`` with the device queries spent (initial readout, training, final readout fits) and
        the device time they took.
    """
    check_choice("mode", mode, MODES)
    check_device(device, mode)
    check_choice("readout", readout, ("joint", "ridge"))
    if checkpoint is not None and mode in ("spsa", "finite_difference"):
        raise ValueError(f"checkpoint is not supported for mode={mode!r}: its perturbation draws and step "
                         f"count live outside the optimiser state")
    alpha = check_scalar("alpha", alpha, NON_NEGATIVE)
    inputs = check_array("inputs", inputs, 3, {-1: device.n_inputs})
    if pool:
        targets = check_array("targets", targets, 2)
        if len(targets) != len(inputs):
            raise ValueError(f"targets must hold one row per sequence with pool=True ({len(inputs)}), "
                             f"got shape {targets.shape}")
    else:
        targets = check_array("targets", targets, 3)
        if targets.shape[:2] != inputs.shape[:2]:
            raise ValueError(f"targets must share the (B, T) axes of inputs {inputs.shape[:2]}, "
                             f"got {targets.shape}")
    washout = check_washout(washout, inputs.shape[1])
    start, _ = split_trainable(device.nominal_twin(), list(names))
    if max_device_calls is not None:
        max_device_calls = check_scalar("max_device_calls", max_device_calls, POSITIVE_INT)
    calibrated = isinstance(twin, CalibrationResult)
    context = device_context(device, twin)
    twin = context["twin"]
    if not calibrated:
        for name, value in split_trainable(twin, list(names))[0].items():
            if not np.array_equal(np.asarray(value), np.asarray(start[name])):
                raise ValueError(f"twin differs from the nominal twin in the trained field {name!r}, which "
                                 f"training would overwrite with the written values; leave {name!r} out of names "
                                 f"or give the CalibrationResult (its written → effective map) as twin "
                                 f"(names = {list(names)})")
    if mode == "dfa":
        _check_dfa(device, names)
    counters = _QueryCounters(device)
    train_options.setdefault("progress", False)
    if checkpoint is not None:
        train_options.update(checkpoint=checkpoint, checkpoint_interval=checkpoint_interval, resumable=counters)
    if max_device_calls is not None:
        train_options["callback"] = _budget_callback(device, device.n_calls, max_device_calls,
                                                     train_options.get("callback"))

    def forward_states(side: dict[str, Any], measured: bool) -> Any:
        """The training set's states: measured on the device (one call) or the twin's (no call; at the effective
        values of what is written, for a calibrated twin)."""
        if measured:
            return device.measure(inputs, side)
        return _twin_states(None)(side, jnp.asarray(inputs, twin.dtype), twin_context)

    def fitted_readout(side: dict[str, Any], measured: bool) -> LinearReadout:
        return ridge_readout(forward_states(side, measured), targets, washout=washout, alpha=alpha,
                             dtype=twin.dtype, pool=pool)

    twin_context = context
    if mode in ("spsa", "finite_difference"):
        # SPSA and FD take one step per epoch on the whole training set with their own gain schedule, so the
        # gradient modes' batch_size / learning_rate / optimizer do not apply (a loop over MODES may pass them).
        for option in ("batch_size", "learning_rate", "optimizer"):
            train_options.pop(option, None)
        n_steps = train_options.pop("n_epochs", 100)
        stability = 0.1 * n_steps if spsa_stability is None else check_scalar("spsa_stability", spsa_stability,
                                                                                NON_NEGATIVE)
        gain = check_scalar("spsa_gain", spsa_gain, POSITIVE)
        optimizer = optax.sgd(lambda k: gain / (k + 1 + stability) ** 0.602)
        perturbation = check_scalar("spsa_perturbation", spsa_perturbation, POSITIVE)
        if mode == "spsa":
            loss = spsa_loss(device, names, washout=washout, alpha=alpha, perturbation=perturbation, seed=seed,
                             pool=pool)
        else:
            loss = finite_difference_loss(device, names, washout=washout, alpha=alpha, perturbation=perturbation,
                                          pool=pool)
        result = train(loss, {"input_side": start}, (inputs, targets), optimizer=optimizer, n_epochs=n_steps,
                       batch_size=len(inputs), seed=seed, **train_options)
        side = result.params["input_side"]
        params = {"input_side": side, "readout": fitted_readout(side, measured=True)}
    else:
        in_situ = mode in IN_SITU_MODES
        projected = readout == "ridge"
        if mode == "dfa":
            scale = check_scalar("dfa_feedback_scale", dfa_feedback_scale, POSITIVE)
            if not callable(dfa_node_factor):
                raise TypeError(f"dfa_node_factor must be a function of the measured states, "
                                f"got {dfa_node_factor!r}")
            outputs = targets.shape[-1]
            feedback = scale * np.random.default_rng(seed).normal(size=(device.n_units, outputs))
            # dfa is model-free: its drive is built from the written values (the nominal twin's fixed fields).
            context = dict(context, twin=device.nominal_twin(), feedback=jnp.asarray(feedback, twin.dtype))
            loss = _dfa_loss(washout, pool, alpha if projected else None, dfa_node_factor)
        else:
            states = _in_situ_states(BACKWARD_OF_MODE[mode], checkpoint_every) if in_situ else \
                _twin_states(checkpoint_every)
            loss = (ProjectedLoss(states, washout, pool, alpha) if projected
                    else JointLoss(states, washout, pool))
        if projected:  # the readout solved on every batch; the final one of the whole training set, on the
            # mode's states (measured for the in-situ modes: one device call per held-out score and at the end)
            result = train_projected(loss, start, inputs, targets,
                                     states_of=functools.partial(forward_states, measured=in_situ),
                                     washout=washout, alpha=alpha, pool=pool, dtype=twin.dtype, seed=seed,
                                     context=context, **train_options)
        else:  # the start readout measured lazily: a resumed training takes it from the checkpoint
            start_params = lambda: {"input_side": start, "readout": fitted_readout(start, in_situ)}  # noqa: E731
            result = train(loss, start_params, (inputs, targets), seed=seed, context=context, **train_options)
        params = result.params
        if mode == "digital+readout":
            params = dict(params, readout=fitted_readout(params["input_side"], measured=True))
    n_calls, n_samples = counters.spent()
    return DeviceTrainResult(params, result.history, n_calls, n_samples, device_seconds(device, n_samples))


def _check_dfa(device: DeviceProtocol, names: Sequence[str]) -> None:
    nominal = device.nominal_twin()
    if getattr(nominal, "model", None) not in ("sine", "sin2_lowpass"):
        raise ValueError(f"mode 'dfa' trains the written drive of a sine or sin2_lowpass delay device, got a "
                         f"{type(nominal).__name__} {getattr(nominal, 'model', '')}".rstrip())
    for name in names:
        if name not in DFA_FIELDS:
            raise ValueError(f"names must be fields of the written drive {list(DFA_FIELDS)} with mode 'dfa' "
                             f"(its update has no feedback path for the others), got {name!r}")


def _budget_callback(device: DeviceProtocol, start: int, budget: int,
                     user: Callable[[int, Any], Any] | None) -> Callable[[int, Any], bool]:
    """``train``'s callback: True (stop) after the epoch at which one more epoch, costing what this one did, and
    the final readout fit (one call) would exceed ``budget`` calls."""
    spent = [start]

    def callback(epoch: int, params: Any) -> bool:
        if user is not None:
            user(epoch, params)
        last, spent[0] = device.n_calls - spent[0], device.n_calls
        return device.n_calls - start + last + 1 > budget

    return callback


class _QueryCounters:
    """The device queries a training has spent, saved with its checkpoints (``readout.train``'s ``resumable``),
    with the device's snapshot when it is replayable: a resumed training goes on counting from the saved values
    (a replayable device's own counters are restored with it)."""

    def __init__(self, device: DeviceProtocol):
        self.device, self.start = device, (device.n_calls, device.n_samples)

    def spent(self) -> tuple[int, int]:
        return self.device.n_calls - self.start[0], self.device.n_samples - self.start[1]

    def snapshot(self) -> dict[str, Any]:
        return {"spent": self.spent(), "device": self.device.snapshot() if is_replayable(self.device) else None}

    def restore(self, snapshot: dict[str, Any]) -> None:
        if snapshot["device"] is not None:
            self.device.restore(snapshot["device"])
        calls, samples = snapshot["spent"]
        self.start = (self.device.n_calls - calls, self.device.n_samples - samples)


def device_ridge_readout(device: DeviceProtocol, input_side: dict[str, Any] | None, inputs: Any, targets: Any, *,
                         washout: int = 0, alpha: float = 1e-6, pool: bool = False) -> LinearReadout:
    """The ridge ``LinearReadout`` (``alpha`` per row) of states measured on ``device`` (one call) with
    ``input_side``: the "Reservoir" baseline for the nominal input side, the ``digital+readout`` refit for a
    trained one."""
    states = device.measure(inputs, input_side)
    return ridge_readout(states, targets, washout=washout, alpha=alpha, dtype=device.nominal_twin().dtype,
                         pool=pool)


def device_predictions(device: DeviceProtocol, params: dict[str, Any], inputs: Any, *, washout: int = 0,
                       pool: bool = False) -> np.ndarray:
    """The readout's outputs for ``inputs`` measured on ``device`` (one call) with ``params``: (…, T, O), or
    one row per sequence (B, O) with ``pool`` (states averaged over the steps after ``washout``)."""
    states = np.asarray(device.measure(inputs, params["input_side"]), np.float64)
    if pool:
        states = time_average(states, washout)
    host = jax.tree_util.tree_map(functools.partial(np.asarray, dtype=np.float64), params["readout"])
    return host(states)  # NumPy float64 arrays: computed on the host in float64


def device_nmse(device: DeviceProtocol, params: dict[str, Any], inputs: Any, targets: Any, *,
                washout: int = 0) -> float:
    """Test NMSE of ``params`` deployed on the device: one measurement of ``inputs`` ((T, D) or (B, T, D)),
    mean over outputs of mean_t (ŷ − y)² / Var(y) after ``washout`` steps of every sequence."""
    predictions = device_predictions(device, params, inputs)
    targets = np.asarray(targets, np.float64)
    rows = lambda array: array[..., washout:, :].reshape(-1, targets.shape[-1])  # noqa: E731
    return nmse(rows(targets), rows(predictions))
