"""Delay-based reservoirs: one nonlinear node, N virtual nodes by time multiplexing.

The input u(n) (D channels) is held for one period (the *input period*) and multiplied by an input mask
M ∈ R^{N×D} plus a bias mask m_0 ∈ R^N, one value per virtual node (mask step):

    z_i(n) = m_{0,i} + Σ_d M_{i,d} u_d(n),    i = 0 … N−1.

Three node models are implemented, one class each on the shared base ``DelayParams`` (masks, gains, the drive
and the scan over periods), each with only the constants it uses and its own period update; ``β_in`` is
``input_gain``, ``α`` is ``feedback_gain``, ``φ`` is ``phase``:

``"sine"`` (``SineDelay``) — opto-electronic reservoir with desynchronised feedback (Paquot et al., Sci. Rep.
  2, 287 (2012)):

    x_i(n) = sin(α x_{i−1}(n−1) + β_in z_i(n) + φ),   i ≥ 1
    x_0(n) = sin(α x_{N−1}(n−2) + β_in z_0(n) + φ)

  The loop is one node duration longer than the input period (delay = (N+1) node durations), so each node is
  fed by its predecessor one round trip earlier.  (Form as quoted second-hand; not re-checked against the
  paper's full text.)

``"sin2_lowpass"`` (``Sin2LowpassDelay``) — electro-optic Ikeda-type node behind a first-order low-pass
  filter, in the discrete form of Hermans et al., "Photonic delay systems as machine learning
  implementations", JMLR 16 (2015), which is exact within one mask step.  With i counting mask steps
  continuously across periods (i = nN + k):

    ā_{i+1} = ρ0 ā_i + ρ1 γ_i + ρ2 γ_{i+1},    γ_i = α [sin²(ā_{i−N} + β_in z_i + φ) − 1/2]

  ρ0 = e^{−θ}, κ = 1 − e^{−θ}, ρ1 = κ/θ − e^{−θ}, ρ2 = 1 − κ/θ with θ = P_m/T (``node_separation``: mask-step
  duration P_m over the filter time constant T).  The paper writes ρ1 = Tκ − P_m e^{−P_m/T} and
  ρ2 = P_m − Tκ, which carry units of time (ρ1 + ρ2 = P_m κ); we divide both by P_m, which makes the update
  the exact solution of T dā/dt = −ā + γ(t) for γ linear within a mask step and gives unit DC gain, so only
  the ratio θ matters and α is dimensionless (the paper's gain equals ours divided by P_m).  The delay is one
  input period (N_m = N mask steps): virtual nodes are coupled by the filter's inertia, not by
  desynchronisation.
  Defaults follow the paper's set-up: φ = π/4, T = 0.241 µs and delay D = 20.82 µs split into N mask steps,
  θ = D / (N T).  The states of period n are x_k(n) = ā_{nN+k}, k = 0 … N−1.

``"mackey_glass"`` (``MackeyGlassDelay``) — Mackey–Glass node (Appeltant et al., Nat. Commun. 2, 468 (2011)):

    dX/dt = −X(t) + η s / (1 + |s|^p),   s = X(t − τ) + γ J(t),   J(t) = z_i(n) during mask step i

  with η = ``feedback_gain``, γ = ``input_gain``, τ = N θ.  Discretised per virtual node with the exact
  solution of the linear part over one node separation θ, the nonlinear drive held constant:

    X_i(n) = e^{−θ} X_{i−1}(n) + (1 − e^{−θ}) η s_i(n) / (1 + |s_i(n)|^p),   s_i(n) = X_i(n−1) + γ z_i(n)

  where X_{−1}(n) = X_{N−1}(n−1).  Appeltant's denominator 1 + s^p has a pole at s = −1 for p = 1; we use
  |s|^p, which agrees for s ≥ 0 and keeps the node bounded and smooth (C¹) for any sign.  The defaults
  (θ = 0.2, η = 0.4, γ = 0.05, p = 1) are Appeltant's as quoted second-hand, unverified.  This model has
  no bias point φ (no ``phase`` field).

Within one period every node's nonlinear drive depends only on earlier periods, so a period is one vectorised
update (``jax.lax.scan`` runs over periods, never over virtual nodes).  The low-pass and Mackey–Glass nodes
then follow a *linear* first-order recursion along the period, solved in closed form (``_linear_chain``).

**Initial state.**  ``initial_state`` (N,) is the previous period's node states x(−1) (ā_{−N} … ā_{−1} for the
low-pass model).  Whatever else the loop holds before the first input starts at zero: x_{N−1}(−2) = 0 for
``"sine"`` and the last filter drive γ_{−1} = 0 for ``"sin2_lowpass"`` (the rest value for zero input at
φ = π/4).  Consequently a run split in two and continued from its last state matches the unsplit run exactly
only for ``"mackey_glass"``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from reservoir import trig
from reservoir.core import as_dtype, pytree_dataclass, static_field
from reservoir.validation import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Interval,
    check_array,
    check_choice,
    check_scalar,
)

MASKS = ("binary", "uniform")

# Hermans et al. (2015), experimental set-up: delay D and low-pass time constant T, in µs.
HERMANS_DELAY = 20.82
HERMANS_TIME_CONSTANT = 0.241
# Paquot et al. (2012), opto-electronic set-up: fibre-loop round trip of about 8.5 µs for N = 50 virtual nodes.
PAQUOT_DELAY = 8.5

# The domain of each node-model constant, whichever model uses it.
_CONSTRAINTS = {
    "input_gain": NON_NEGATIVE,
    "feedback_gain": NON_NEGATIVE,
    "phase": Interval(None, None),
    "node_separation": POSITIVE,
    "exponent": Interval(1, None, "left"),
}


@pytree_dataclass
class DelayParams:
    """A delay-based reservoir: what every node model shares (a pytree; the array fields are what ``jax.grad``
    trains).  Each node model is a subclass with its own constants and period update: ``SineDelay``,
    ``Sin2LowpassDelay``, ``MackeyGlassDelay`` (``delay_reservoir(model=...)`` builds the right one).

    Shapes: ``mask`` (N, D), ``bias_mask`` (N,), ``input_gain`` and ``feedback_gain`` ().  The drive of period n
    is β_in (M u(n) + m₀); ``scan_step`` feeds it to the subclass's ``period_update``.  The equations are in the
    module docstring.
    """

    model: ClassVar[str]  # the node model's name, as ``delay_reservoir`` takes it
    DEFAULTS: ClassVar[dict[str, Any]]  # the model's constants left None: a value or a function of N
    TRAINABLE: ClassVar[tuple[str, ...]] = ("mask", "bias_mask", "input_gain", "feedback_gain")

    mask: jax.Array
    bias_mask: jax.Array
    input_gain: jax.Array
    feedback_gain: jax.Array

    @property
    def n_units(self) -> int:
        """N, the number of virtual nodes along the delay line (rows of the input mask)."""
        return self.mask.shape[0]

    @property
    def n_inputs(self) -> int:
        """D, the number of input channels (columns of the input mask)."""
        return self.mask.shape[1]

    @property
    def n_feedback(self) -> int:
        """0: a delay reservoir has no output feedback."""
        return 0

    @property
    def dtype(self) -> jnp.dtype:
        """The dtype of the input mask, and so of the states."""
        return self.mask.dtype

    @property
    def node_duration(self) -> float | None:
        """Duration θ of one virtual node in seconds on the set-up the model was written for, so that one input
        period (one sample of the input) lasts N θ on the device; None where no set-up fixes a time scale (here:
        the node models that do not say otherwise, such as ``MackeyGlassDelay``, whose θ is given in units of
        the node's time constant)."""
        return None

    def carry_with_states(self, carry: jax.Array, states: jax.Array) -> jax.Array:
        """The carry of ``scan_step``'s step after a period, with that period's node states (N,) replaced by
        ``states``: the loop's content as if the nodes had taken those values (e.g. measured ones).  Here the
        carry is the node states themselves; models whose carry holds more override this."""
        del carry
        return states

    def period_update(self, initial_state: jax.Array) -> tuple[Callable, jax.Array]:
        """``(period, carry)``: ``period(carry, drive) -> (carry, x(n))`` maps the loop's content and the drive
        β_in z(n) (N,) of one input period to the next content and the node states; ``carry`` is the content
        before the first period, from the (N,) states x(−1).  Each node model defines it."""
        raise NotImplementedError(f"{type(self).__name__} is not a node model: build one with delay_reservoir")

    def sequence(
        self, inputs: jax.Array, initial_state: jax.Array, teacher: jax.Array | None = None
    ) -> jax.Array:
        """Run one sequence: (T, D) inputs and the (N,) states x(−1) -> (T, N) node states.

        ``teacher`` is accepted for the ``run`` protocol and ignored (there is no output feedback).
        """
        del teacher
        step, carry = self.scan_step(initial_state)
        return jax.lax.scan(step, carry, inputs)[1]

    def scan_step(self, initial_state: jax.Array) -> tuple[Callable, Any]:
        """``(step, carry)``: ``step(carry, u(n)) -> (carry, x(n))`` for one input period, and the carry
        before the first period.  ``sequence`` scans it; BPTT with checkpointing scans it in segments."""
        period, carry = self.period_update(initial_state)

        def step(carry, u):
            return period(carry, self.input_gain * (self.mask @ u + self.bias_mask))  # β_in z_i(n)

        return step, carry


@pytree_dataclass
class SineDelay(DelayParams):
    """The ``"sine"`` node (Paquot et al. 2012): x_i(n) = sin(α x_{i−1}(n−1) + β_in z_i(n) + φ), the loop one
    node longer than the input period.  Adds the bias point ``phase`` φ (), trainable."""

    model: ClassVar[str] = "sine"
    DEFAULTS: ClassVar[dict[str, Any]] = {"input_gain": 0.5, "feedback_gain": 0.8, "phase": 0.0}
    TRAINABLE: ClassVar[tuple[str, ...]] = (*DelayParams.TRAINABLE, "phase")

    phase: jax.Array

    @property
    def node_duration(self) -> float:
        """θ = 8.5 µs / (N + 1): Paquot et al. (2012)'s loop of about 8.5 µs shared by N + 1 node durations (the
        loop is one node longer than the input period)."""
        return PAQUOT_DELAY * 1e-6 / (self.n_units + 1)

    def carry_with_states(self, carry: jax.Array, states: jax.Array) -> jax.Array:
        """The carry [x_{N−1}(n−1), x(n)] with the states (its last N entries) replaced by ``states``."""
        return carry.at[1:].set(states)

    def nonlinearity(self, argument: jax.Array) -> jax.Array:
        """The node's response to its argument a: sin(a)."""
        return trig.sin(argument)

    def period_update(self, initial_state: jax.Array) -> tuple[Callable, jax.Array]:
        """One period: x(n) = sin(α [x_{N−1}(n−2), x_0(n−1), …, x_{N−2}(n−1)] + β_in z(n) + φ)."""
        # The carry is the loop's content as one (N+1,) vector, [x_{N−1}(n−2), x_0(n−1), …, x_{N−1}(n−1)]: its
        # first N entries are exactly what feeds period n.  (A tuple (x(n−1), x_{N−1}(n−2)) with a scalar made
        # XLA's CPU loop 4× slower per period.)
        def step(loop, drive):
            x = self.nonlinearity(self.feedback_gain * loop[:-1] + drive + self.phase)
            return jnp.concatenate([loop[-1:], x]), x

        return step, jnp.concatenate([jnp.zeros(1, initial_state.dtype), initial_state])


@pytree_dataclass
class Sin2LowpassDelay(DelayParams):
    """The ``"sin2_lowpass"`` node (Hermans et al. 2015): sin² behind a first-order low-pass filter.  Adds the
    bias point ``phase`` φ () (trainable) and the static ``node_separation`` θ = P_m / T (mask step over the
    filter's time constant)."""

    model: ClassVar[str] = "sin2_lowpass"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "input_gain": 0.5,
        "feedback_gain": 0.9,
        "phase": math.pi / 4,
        "node_separation": lambda n_units: HERMANS_DELAY / (n_units * HERMANS_TIME_CONSTANT),
    }
    TRAINABLE: ClassVar[tuple[str, ...]] = (*DelayParams.TRAINABLE, "phase")

    phase: jax.Array
    node_separation: float = static_field()

    @property
    def node_duration(self) -> float:
        """θ = node_separation · T with T = 0.241 µs, Hermans et al. (2015)'s filter time constant (by default
        20.82 µs / N, their delay split into N mask steps)."""
        return self.node_separation * HERMANS_TIME_CONSTANT * 1e-6

    def carry_with_states(self, carry: jax.Array, states: jax.Array) -> jax.Array:
        """The carry [ā(n), γ_{N−1}(n)] with the states (its first N entries) replaced by ``states``."""
        return carry.at[:-1].set(states)

    def period_update(self, initial_state: jax.Array) -> tuple[Callable, jax.Array]:
        """One period of ā_{i+1} = ρ0 ā_i + ρ1 γ_i + ρ2 γ_{i+1}, γ_i = α [sin²(ā_{i−N} + β_in z_i + φ) − 1/2]."""
        theta = self.node_separation
        decay = math.exp(-theta)
        kappa_over_theta = -math.expm1(-theta) / theta
        # ā_{i+1} = ρ0 ā_i + (ρ1 γ_i + ρ2 γ_{i+1}) / P_m
        chain = _linear_chain(decay, self.n_units, kappa_over_theta - decay, 1.0 - kappa_over_theta)

        def step(carry, drive):
            # [ā over the previous period, its last filter drive γ], one vector (see SineDelay.period_update)
            a_prev, gamma_last = carry[:-1], carry[-1]
            gamma = self.feedback_gain * (trig.sin(a_prev + drive + self.phase) ** 2 - 0.5)
            a = chain(gamma, gamma_last, a_prev[-1])
            return jnp.concatenate([a, gamma[-1:]]), a

        return step, jnp.concatenate([initial_state, jnp.zeros(1, initial_state.dtype)])


@pytree_dataclass
class MackeyGlassDelay(DelayParams):
    """The ``"mackey_glass"`` node (Appeltant et al. 2011).  Adds the static ``node_separation`` θ (in units of
    the node's time constant) and ``exponent`` p; it has no bias point (no ``phase``)."""

    model: ClassVar[str] = "mackey_glass"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "input_gain": 0.05,
        "feedback_gain": 0.4,
        "node_separation": lambda n_units: 0.2,
        "exponent": 1.0,
    }

    node_separation: float = static_field()
    exponent: float = static_field()

    def period_update(self, initial_state: jax.Array) -> tuple[Callable, jax.Array]:
        """One period: X_i(n) = e^{−θ} X_{i−1}(n) + (1 − e^{−θ}) η s_i / (1 + |s_i|^p) with
        s_i = X_i(n−1) + γ z_i(n)."""
        decay = math.exp(-self.node_separation)
        chain = _linear_chain(decay, self.n_units, 0.0, 1.0 - decay)

        def step(x_prev, drive):
            s = x_prev + drive  # X(t − τ) + γ J(t)
            nonlinear = self.feedback_gain * s / (1 + jnp.abs(s) ** self.exponent)
            x = chain(nonlinear, None, x_prev[-1])
            return x, x

        return step, initial_state


NODE_MODELS: tuple[type[DelayParams], ...] = (SineDelay, Sin2LowpassDelay, MackeyGlassDelay)
MODELS = tuple(kind.model for kind in NODE_MODELS)


def _linear_chain(decay: float, n: int, weight_previous: float, weight_current: float) -> Callable:
    """Solver for x_k = decay · x_{k−1} + w_p f_{k−1} + w_c f_k, k = 0 … n−1, without a loop over k.

    ``solve(f, f_before, start)`` takes the forcing f (n,), f_{−1} (ignored when w_p = 0) and x_{−1}.
    Closed form in two levels: split the n nodes into blocks of b ≈ √n and solve every block from a zero start
    with one (b × b) matrix (lower-triangular powers of ``decay`` times the two-tap forcing), then add each
    block's incoming value, itself the same recursion over the blocks (an (m × m) matrix of powers of
    decay^b).  About n√n multiply-adds instead of n² for a dense (n × n) matrix (≈ 3× faster per period at
    n = 400 on CPU), and only powers ≤ 1 (no overflow, unlike a cumulative sum of decay^{−k}).
    """
    block = math.isqrt(n - 1) + 1 if n > 1 else 1
    n_blocks = -(-n // block)
    powers = _power_matrix(decay, block, strict=False)  # decay^(k − j), j ≤ k
    within = powers @ (weight_current * np.eye(block) + weight_previous * np.eye(block, k=-1))
    first_in_block = weight_previous * decay ** np.arange(block)  # reach of the forcing just before a block
    across = _power_matrix(decay**block, n_blocks, strict=True)  # decay^(b (m − 1 − l)), l < m
    start_weight = (decay**block) ** np.arange(n_blocks)  # decay^(b m): x_{−1} carried into block m
    offsets = decay ** np.arange(1, block + 1)  # decay^(k + 1): a block's incoming value at position k

    def solve(forcing: jax.Array, forcing_before: jax.Array | None, start: jax.Array) -> jax.Array:
        dtype = forcing.dtype
        forcing = jnp.pad(forcing, (0, n_blocks * block - n)).reshape(n_blocks, block)
        local = forcing @ jnp.asarray(within.T, dtype)  # each block from a zero start
        if weight_previous:
            before = jnp.concatenate([forcing_before[None], forcing[:-1, -1]])  # f just before each block
            local = local + before[:, None] * jnp.asarray(first_in_block, dtype)
        incoming = jnp.asarray(across, dtype) @ local[:, -1] + jnp.asarray(start_weight, dtype) * start
        return (local + incoming[:, None] * jnp.asarray(offsets, dtype)).reshape(-1)[:n]

    return solve


def _power_matrix(base: float, size: int, strict: bool) -> np.ndarray:
    """Lower-triangular base^(k − j) (``strict``: base^(k − j − 1) below the diagonal, zero on it)."""
    lag = np.subtract.outer(np.arange(size), np.arange(size)) - int(strict)
    return np.where(lag >= 0, base ** np.maximum(lag, 0), 0.0)


def _model_constants(model: Any, n_units: int, dtype: Any, **given: Any) -> tuple[type[DelayParams], dict]:
    """The node model's class and its constants, validated, the ones left None filled with the model's defaults:
    arrays of ``dtype`` for leaves (gains, phase), floats for static fields.  A constant the model does not use
    must be None."""
    kind = dict(zip(MODELS, NODE_MODELS, strict=True))[check_choice("model", model, MODELS)]
    static = {field.name for field in dataclasses.fields(kind) if field.metadata.get("static", False)}
    constants = {}
    for name, value in given.items():
        if name not in kind.DEFAULTS:
            if value is not None:
                raise ValueError(f"{name} is not used by model {kind.model!r}: leave it None, got {value!r}")
            continue
        if value is None:
            default = kind.DEFAULTS[name]
            value = default(n_units) if callable(default) else default
        value = float(check_scalar(name, value, _CONSTRAINTS[name]))
        constants[name] = value if name in static else jnp.asarray(check_array(name, value, 0, dtype=dtype))
    return kind, constants


def delay_from_arrays(
    mask: Any,
    bias_mask: Any = None,
    *,
    model: str,
    input_gain: float | None = None,
    feedback_gain: float | None = None,
    phase: float | None = None,
    node_separation: float | None = None,
    exponent: float | None = None,
    dtype: Any = jnp.float32,
) -> DelayParams:
    """Build a delay reservoir from a given input mask (N, D) and optional bias mask (N,), used as given.

    Constants left None take the model's defaults (see ``delay_reservoir``); a constant the model does not use
    (``node_separation`` for ``"sine"``, ``exponent`` outside ``"mackey_glass"``, ``phase`` for
    ``"mackey_glass"``) must stay None.

    Example:
        >>> import numpy as np
        >>> params = delay_from_arrays(np.ones((20, 1)), model="sin2_lowpass", feedback_gain=0.8)
        >>> params.n_units, params.node_separation == 20.82 / (20 * 0.241)
        (20, True)
    """
    dtype = as_dtype(dtype)
    mask = check_array("mask", mask, 2, dtype=dtype)
    n_units = mask.shape[0]
    if n_units == 0 or mask.shape[1] == 0:
        raise ValueError(f"mask must have at least one virtual node and one input, got shape {mask.shape}")
    if bias_mask is None:
        bias_mask = np.zeros(n_units)
    bias_mask = check_array("bias_mask", bias_mask, 1, {0: n_units}, dtype=dtype)
    kind, constants = _model_constants(model, n_units, dtype, input_gain=input_gain, feedback_gain=feedback_gain,
                                       phase=phase, node_separation=node_separation, exponent=exponent)
    return kind(jnp.asarray(mask, dtype), jnp.asarray(bias_mask, dtype), **constants)


def delay_reservoir(
    n_units: int,
    n_inputs: int = 1,
    *,
    model: str = "sine",
    seed: int,
    input_gain: float | None = None,
    feedback_gain: float | None = None,
    phase: float | None = None,
    mask: str = "uniform",
    bias_mask_scaling: float = 0.0,
    node_separation: float | None = None,
    exponent: float | None = None,
    dtype: Any = jnp.float32,
) -> DelayParams:
    """A delay-based reservoir with a random input mask (equations and sources in the module docstring).

    Args:
        n_units: number of virtual nodes N.
        n_inputs: number of input channels D.
        model: ``"sine"`` (Paquot 2012), ``"sin2_lowpass"`` (Hermans 2015) or ``"mackey_glass"``
            (Appeltant 2011).
        seed: the only source of randomness: the same seed gives the same masks.
        input_gain: β_in (γ for Mackey–Glass), ≥ 0.
        feedback_gain: α (β in Hermans 2015, η for Mackey–Glass), ≥ 0.
        phase: φ, any real (unused by ``"mackey_glass"``).
        mask: ``"binary"`` (entries ±1) or ``"uniform"`` (entries uniform in [−1, 1]); mask (N, D).
        bias_mask_scaling: bias mask m_0 (N,) uniform in [−1, 1] times this (default 0: no bias mask).
        node_separation: θ > 0, node duration over the node's time constant (not used by ``"sine"``).
        exponent: p ≥ 1 of the Mackey–Glass nonlinearity (``"mackey_glass"`` only).
        dtype: float32 (default) or float64 (needs ``jax_enable_x64``).

    Defaults (arguments left None):

    | model         | input_gain | feedback_gain | phase    | node_separation  | exponent |
    | ------------- | ---------- | ------------- | -------- | ---------------- | -------- |
    | sine          | 0.5        | 0.8           | 0        | –                | –        |
    | sin2_lowpass  | 0.5        | 0.9           | π/4      | 20.82/(0.241 N)  | –        |
    | mackey_glass  | 0.05       | 0.4           | (unused) | 0.2              | 1        |

    Example:
        >>> import jax.numpy as jnp
        >>> from reservoir import run
        >>> params = delay_reservoir(50, seed=0)  # sine model, 50 virtual nodes
        >>> run(params, jnp.zeros((100, 1))).shape  # inputs (T, D) -> states (T, N)
        (100, 50)
    """
    n_units = check_scalar("n_units", n_units, POSITIVE_INT)
    n_inputs = check_scalar("n_inputs", n_inputs, POSITIVE_INT)
    seed = check_scalar("seed", seed, SEED)
    mask_kind = check_choice("mask", mask, MASKS)
    bias_mask_scaling = check_scalar("bias_mask_scaling", bias_mask_scaling, NON_NEGATIVE)
    rng = np.random.default_rng(seed)
    if mask_kind == "binary":
        weights = rng.choice([-1.0, 1.0], (n_units, n_inputs))
    else:
        weights = rng.uniform(-1, 1, (n_units, n_inputs))
    bias_mask = rng.uniform(-1, 1, n_units) * bias_mask_scaling
    return delay_from_arrays(weights, bias_mask, model=model, input_gain=input_gain,
                             feedback_gain=feedback_gain, phase=phase, node_separation=node_separation,
                             exponent=exponent, dtype=dtype)
