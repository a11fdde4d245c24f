"""Echo state networks: leaky-integrator tanh reservoirs, random or built from given matrices.

Update (Jaeger 2001; leaky form of Jaeger, Lukoševičius et al. 2007):

    x(t) = (1 − a) x(t−1) + a · tanh(W x(t−1) + W_in u(t) + b + W_fb y(t−1))

with leak rate ``a`` in (0, 1], a recurrent matrix ``W`` rescaled to a requested spectral radius, input
weights ``W_in`` scaled by an input scaling, a bias ``b`` and optional output feedback ``W_fb``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from reservoir.core import as_dtype, pytree_dataclass, static_field
from reservoir.validation import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    UNIT_OPEN_LEFT,
    check_array,
    check_choice,
    check_instance,
    check_linear_readout,
    check_scalar,
)

# Unit nonlinearities by name, shared by reservoirs and readouts.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda pre: pre,
}


@pytree_dataclass
class ESNParams:
    """Parameters of a leaky echo state network (a pytree: every field but ``activation`` is a JAX array).

    Shapes: ``W`` (N, N), ``W_in`` (N, D), ``bias`` (N,), ``leak_rate`` () and ``W_fb`` (N, O) or None.
    ``activation`` (static) names one of ``ACTIVATIONS``, e.g. "tanh" or "identity" (a linear reservoir, the
    reference case of memory capacity).  Trainable (``TRAINABLE``): ``W_in``, ``bias`` and ``input_scaling``, a
    scalar multiplying ``W_in`` that is not a field (declared in ``SCALES``;
    ``reservoir.trainable.split_trainable`` starts it at 1).
    """

    TRAINABLE: ClassVar[tuple[str, ...]] = ("W_in", "bias", "input_scaling")
    SCALES: ClassVar[dict[str, str]] = {"input_scaling": "W_in"}  # a trained gain on W_in, not a field

    W: jax.Array
    W_in: jax.Array
    bias: jax.Array
    leak_rate: jax.Array
    W_fb: jax.Array | None = None
    activation: str = static_field(default="tanh")

    @property
    def n_units(self) -> int:
        """N, the number of neurons: the length of the state vector."""
        return self.W.shape[0]

    @property
    def n_inputs(self) -> int:
        """D, the number of input channels (columns of ``W_in``)."""
        return self.W_in.shape[1]

    @property
    def n_feedback(self) -> int:
        """The number of fed-back output channels (columns of ``W_fb``); 0 without output feedback."""
        return 0 if self.W_fb is None else self.W_fb.shape[1]

    @property
    def dtype(self) -> jnp.dtype:
        """The dtype of the weights, and so of the states."""
        return self.W.dtype

    def step(self, state: jax.Array, u: jax.Array, y_prev: jax.Array | None = None) -> jax.Array:
        """One update x(t−1) -> x(t) for input u(t) (and fed-back output y(t−1))."""
        pre = self.W @ state + self.W_in @ u + self.bias
        if self.W_fb is not None:
            pre = pre + self.W_fb @ y_prev
        return (1 - self.leak_rate) * state + self.leak_rate * ACTIVATIONS[self.activation](pre)

    @property
    def node_duration(self) -> None:
        """None: a digital network has no physical clock (see ``DelayParams.node_duration``)."""
        return None

    def carry_with_states(self, carry: jax.Array, states: jax.Array) -> jax.Array:
        """The carry after a step with its states replaced by ``states``: the carry is the state itself."""
        del carry
        return states

    def scan_step(self, initial_state: jax.Array) -> tuple[Callable, jax.Array]:
        """``(step, carry)``: ``step(x(t−1), u(t)) -> (x(t), x(t))`` and the carry before the first step."""
        if self.W_fb is not None:
            raise ValueError(f"scan_step needs a reservoir without output feedback, got n_feedback = "
                             f"{self.n_feedback}: use sequence(inputs, initial_state, teacher)")

        def step(state, u):
            state = self.step(state, u)
            return state, state

        return step, initial_state

    def sequence(self, inputs: jax.Array, initial_state: jax.Array, teacher: jax.Array | None) -> jax.Array:
        """Run one sequence: (T, D) inputs and the (N,) state x(−1) -> (T, N) states.

        With ``teacher`` (T, O), step t is fed the target y(t − 1) through ``W_fb`` (zero at t = 0): teacher
        forcing, as Jaeger (2001) trains networks with output feedback.
        """
        if teacher is None:
            return jax.lax.scan(*self.scan_step(initial_state), inputs)[1]
        # Teacher forcing: step t sees the target of step t − 1 (zero before the first step).
        previous = jnp.concatenate([jnp.zeros_like(teacher[:1]), teacher[:-1]])

        def body_fb(state, u_y):
            state = self.step(state, *u_y)
            return state, state

        return jax.lax.scan(body_fb, initial_state, (inputs, previous))[1]


def esn_from_arrays(W: Any, W_in: Any, bias: Any = None, leak_rate: float = 1.0, W_fb: Any = None,
                    dtype: Any = jnp.float32, activation: str = "tanh") -> ESNParams:
    """Build an ESN from user-supplied matrices, used exactly as given (no rescaling)."""
    dtype = as_dtype(dtype)
    check_choice("activation", activation, tuple(ACTIVATIONS))
    W = check_array("W", W, 2, nonempty=True, dtype=dtype)
    n = W.shape[0]
    if W.shape != (n, n):
        raise ValueError(f"W must be square (N, N), got shape {W.shape}")
    W_in = check_array("W_in", W_in, 2, {0: n}, nonempty=True, dtype=dtype)
    bias = np.zeros(n) if bias is None else check_array("bias", bias, 1, {0: n}, dtype=dtype)
    if W_fb is not None:
        W_fb = jnp.asarray(check_array("W_fb", W_fb, 2, {0: n}, nonempty=True, dtype=dtype), dtype)
    leak_rate = check_scalar("leak_rate", leak_rate, UNIT_OPEN_LEFT)
    return ESNParams(jnp.asarray(W, dtype), jnp.asarray(W_in, dtype), jnp.asarray(bias, dtype),
                     jnp.asarray(leak_rate, dtype), W_fb, activation)


def spectral_radius(W: Any) -> float:
    """Largest eigenvalue modulus of a square matrix (dense eigvals; ARPACK for large sparse ones)."""
    if scipy.sparse.issparse(W) and W.shape[0] > 1500:
        # Not k=1: a random matrix's eigenvalues crowd the rim of its disc, and ARPACK asked for one of them
        # returned a smaller one in half of our draws (1 % low at N = 1600-2000).  Twenty with a wide Krylov
        # basis matched dense eigvals to 1e-14 in every draw we tried (N = 2000 and 4000, density 0.01-0.1).
        n_wanted = min(20, W.shape[0] - 2)
        return float(np.max(np.abs(scipy.sparse.linalg.eigs(
            W, k=n_wanted, ncv=min(W.shape[0], 4 * n_wanted), which="LM", return_eigenvectors=False,
            tol=1e-10))))
    W = W.toarray() if scipy.sparse.issparse(W) else check_array("W", W, 2)
    return float(np.max(np.abs(np.linalg.eigvals(W))))


MAX_DRAWS = 100  # of a sparse recurrent matrix, before a density too low to give a usable one is reported


def random_recurrent_matrix(n_units: int, spectral_radius_: float, density: float,
                            rng: np.random.Generator) -> np.ndarray:
    """Sparse random matrix, nonzeros ~ N(0, 1) at the given density, rescaled to the spectral radius."""
    if round(density * n_units**2) < 1:  # scipy's count of nonzeros
        raise ValueError(f"density must leave at least one nonzero recurrent weight among the n_units² = "
                         f"{n_units**2} entries, got density = {density} (density · n_units² rounds to 0)")
    for _ in range(MAX_DRAWS):
        W = scipy.sparse.random(n_units, n_units, density=density, random_state=rng,
                                data_rvs=rng.standard_normal, format="csr")
        radius = spectral_radius(W)
        if radius > 0:  # an all-nilpotent draw (tiny N, tiny density) cannot be rescaled: redraw
            return (W * (spectral_radius_ / radius)).toarray()
    raise ValueError(f"density = {density} is too low for n_units = {n_units}: {MAX_DRAWS} random recurrent "
                     "matrices in a row had spectral radius 0 (no cycle to rescale); raise density")


def random_orthogonal_matrix(n_units: int, spectral_radius_: float, rng: np.random.Generator) -> np.ndarray:
    """Haar-random orthogonal matrix times the spectral radius: every eigenvalue has modulus exactly r.

    QR of a Gaussian matrix with the signs of R's diagonal moved into Q (Mezzadri 2007), so the draw is
    uniform over the orthogonal group.  Its well-spread eigenvalues give a linear reservoir a memory capacity
    close to N, where a sparse random matrix falls well short.
    """
    q, r = np.linalg.qr(rng.standard_normal((n_units, n_units)))
    return q * np.sign(np.diag(r)) * spectral_radius_


TOPOLOGIES = ("sparse", "orthogonal")


def esn(
    n_units: int,
    n_inputs: int = 1,
    *,
    seed: int,
    spectral_radius: float = 0.9,
    density: float = 0.1,
    topology: str = "sparse",
    input_scaling: float = 1.0,
    input_density: float = 1.0,
    bias_scaling: float = 0.0,
    leak_rate: float = 1.0,
    n_feedback: int = 0,
    feedback_scaling: float = 1.0,
    activation: str = "tanh",
    dtype: Any = jnp.float32,
) -> ESNParams:
    """A random echo state network.

    ``W``: sparse Gaussian at ``density``, rescaled to ``spectral_radius`` (``topology="sparse"``), or a
    random orthogonal matrix times ``spectral_radius`` (``topology="orthogonal"``, dense); ``W_in``,
    ``bias`` and ``W_fb`` uniform in [−1, 1] times ``input_scaling``, ``bias_scaling`` and
    ``feedback_scaling``; ``W_in`` keeps a fraction ``input_density`` of its entries.  Deterministic in
    ``seed``.

    Example:
        >>> import numpy as np
        >>> from reservoir import run
        >>> params = esn(100, seed=0, spectral_radius=0.9, leak_rate=0.3)
        >>> run(params, np.zeros((50, 1))).shape  # inputs (T, 1) -> states (T, 100)
        (50, 100)
    """
    n_units = check_scalar("n_units", n_units, POSITIVE_INT)
    n_inputs = check_scalar("n_inputs", n_inputs, POSITIVE_INT)
    radius = check_scalar("spectral_radius", spectral_radius, POSITIVE)
    density = check_scalar("density", density, UNIT_OPEN_LEFT)
    input_density = check_scalar("input_density", input_density, UNIT_OPEN_LEFT)
    input_scaling = check_scalar("input_scaling", input_scaling, NON_NEGATIVE)
    bias_scaling = check_scalar("bias_scaling", bias_scaling, NON_NEGATIVE)
    feedback_scaling = check_scalar("feedback_scaling", feedback_scaling, NON_NEGATIVE)
    n_feedback = check_scalar("n_feedback", n_feedback, NON_NEGATIVE_INT)
    seed = check_scalar("seed", seed, SEED)
    check_choice("topology", topology, TOPOLOGIES)
    # Checked again by esn_from_arrays; here too, so a bad argument is refused before the matrices are drawn.
    check_scalar("leak_rate", leak_rate, UNIT_OPEN_LEFT)
    check_choice("activation", activation, tuple(ACTIVATIONS))
    as_dtype(dtype)
    rng = np.random.default_rng(seed)
    if topology == "sparse":
        W = random_recurrent_matrix(n_units, radius, density, rng)
    else:
        W = random_orthogonal_matrix(n_units, radius, rng)
    W_in = rng.uniform(-1, 1, (n_units, n_inputs)) * (rng.random((n_units, n_inputs)) < input_density)
    bias = rng.uniform(-1, 1, n_units) * bias_scaling
    W_fb = rng.uniform(-1, 1, (n_units, n_feedback)) * feedback_scaling if n_feedback else None
    return esn_from_arrays(W, W_in * input_scaling, bias, leak_rate, W_fb, dtype, activation)


def simple_cycle_reservoir(
    n_units: int,
    n_inputs: int = 1,
    *,
    cycle_weight: float = 0.9,
    input_weight: float = 0.5,
    bias_scaling: float = 0.0,
    leak_rate: float = 1.0,
    seed: int = 0,
    activation: str = "tanh",
    dtype: Any = jnp.float32,
) -> ESNParams:
    """Simple cycle reservoir (Rodan & Tino, IEEE TNN 22(1), 2011): a ring of units with one weight r.

    ``W[i+1, i] = r`` (and ``W[0, N−1] = r``), so the spectral radius is exactly ``r``; every input weight has
    magnitude ``v``, its sign drawn deterministically.  Rodan & Tino take the signs from the binary expansion
    of π; we take them from the decimal digits of π (digit < 5 → −, else +), a deterministic aperiodic pattern
    in the same spirit, and use ``seed`` only for the optional bias.
    """
    n_units = check_scalar("n_units", n_units, POSITIVE_INT)
    n_inputs = check_scalar("n_inputs", n_inputs, POSITIVE_INT)
    r = check_scalar("cycle_weight", cycle_weight, POSITIVE)
    v = check_scalar("input_weight", input_weight, POSITIVE)
    bias_scaling = check_scalar("bias_scaling", bias_scaling, NON_NEGATIVE)
    seed = check_scalar("seed", seed, SEED)
    W = np.roll(np.eye(n_units), 1, axis=0) * r
    signs = np.where(_pi_digits(n_units * n_inputs) < 5, -1.0, 1.0).reshape(n_units, n_inputs)
    bias = np.random.default_rng(seed).uniform(-1, 1, n_units) * bias_scaling
    return esn_from_arrays(W, v * signs, bias, leak_rate, dtype=dtype, activation=activation)


def _pi_digits(count: int) -> np.ndarray:
    """The first ``count`` decimal digits of π after the point (Gibbons' unbounded spigot)."""
    digits, q, r, t, k, n, m = [], 1, 0, 1, 1, 3, 3
    while len(digits) < count + 1:
        if 4 * q + r - t < n * t:
            digits.append(n)
            q, r, n = 10 * q, 10 * (r - n * t), (10 * (3 * q + r)) // t - 10 * n
        else:
            q, r, t, k, n, m = q * k, (2 * q + r) * m, t * m, k + 1, (q * (7 * k + 2) + r * m) // (t * m), m + 2
    return np.array(digits[1:count + 1])


def generate(params: ESNParams, readout: Any, initial_state: Any, last_input: Any, n_steps: int, *,
             readout_sees_input: bool = True) -> jax.Array:
    """Free-running generation: the readout's output becomes the next input (and the fed-back output).

    ``readout`` is a ``readout.LinearReadout``, ``y(t) = [x(t), u(t)] W + b`` (or ``x(t) W + b`` when
    ``readout_sees_input`` is False): the ``Ridge.readout_`` of a ``readout.Ridge`` fitted on
    ``readout.with_inputs(states, inputs)``.  Starting from the state ``x(t0)`` reached under input
    ``u(t0) = last_input``, each step emits ``y(t)``, then feeds it back: ``u(t+1) = y(t)`` and, with ``W_fb``,
    ``y(t)`` as feedback (Jaeger & Haas, Science 304, 78 (2004)).
    Batches of trials: give ``initial_state`` (B, N) and ``last_input`` (B, D).

    Returns:
        outputs ``(n_steps, O)`` (or ``(B, n_steps, O)``); output 0 is the prediction of step t0 + 1.
    """
    check_instance("params", params, ESNParams)
    n_steps = check_scalar("n_steps", n_steps, POSITIVE_INT)
    n_features = params.n_units + (params.n_inputs if readout_sees_input else 0)
    readout = check_linear_readout("readout", readout, n_features, dtype=params.dtype)
    if readout.W.shape[1] != params.n_inputs:
        raise ValueError(f"readout.W must have {params.n_inputs} outputs (they become the next inputs), "
                         f"got shape {tuple(readout.W.shape)}")
    readout = jax.tree_util.tree_map(jnp.asarray, readout)
    initial_state = check_array("initial_state", initial_state, (1, 2), {-1: params.n_units}, nonempty=True,
                                dtype=params.dtype)
    last_input = check_array("last_input", last_input, initial_state.ndim, {-1: params.n_inputs},
                             dtype=params.dtype)
    if last_input.shape[:-1] != initial_state.shape[:-1]:
        raise ValueError(f"last_input must have one row per initial state, {initial_state.shape[:-1]}, "
                         f"got shape {last_input.shape}")
    run_one = jax.vmap(_generate, (None, None, 0, 0, None, None)) if initial_state.ndim == 2 else _generate
    return run_one(params, readout, jnp.asarray(initial_state, params.dtype),
                   jnp.asarray(last_input, params.dtype), n_steps, readout_sees_input)


@partial(jax.jit, static_argnums=(4, 5))
def _generate(params, readout, state, last_input, n_steps, readout_sees_input):
    def body(carry, _):
        state, u = carry
        features = jnp.concatenate([state, u]) if readout_sees_input else state
        y = readout(features)
        return (params.step(state, y, y if params.W_fb is not None else None), y), y

    return jax.lax.scan(body, (state, last_input), None, length=n_steps)[1]
