"""The linear readout, ``y = x W + b``: one type for every place a linear readout is held or passed.

Ridge regression (``Ridge.readout_``, ``solve_ridge``), online LMS/RLS, gradient training (``linear_readout``,
the layers of an MLP), free-running generation (``reservoir.generate``) and the device trainers all produce or
take a ``LinearReadout(W, b)``: ``W`` (F, O), ``b`` (O,), applied to features (..., F) as ``readout(features)``.

Example:
    >>> import numpy as np, jax, jax.numpy as jnp
    >>> readout = LinearReadout(jnp.ones((3, 2)), jnp.array([0.0, 1.0]))
    >>> readout(jnp.ones((4, 3))).shape  # (..., F) -> (..., O)
    (4, 2)
    >>> grads = jax.grad(lambda r, x: jnp.sum(r(x) ** 2))(readout, jnp.ones((4, 3)))
    >>> type(grads).__name__, grads.W.shape  # a gradient is a LinearReadout too (what optax updates)
    ('LinearReadout', (3, 2))
"""

from __future__ import annotations

from typing import Any

from reservoir.core import pytree_dataclass


@pytree_dataclass(eq=False)
class LinearReadout:
    """A linear readout ``y = x W + b``: ``W`` (F, O), ``b`` (O,); ``readout(x)`` maps (..., F) to (..., O).

    A frozen dataclass registered as a JAX pytree with two leaves, ``W`` and ``b``, so ``jit``, ``grad``,
    ``vmap`` and optax (whose updates and states mirror the parameters' pytree) take it as it is, like the
    project's reservoirs.  Chosen over a ``NamedTuple``, which needs no registration but is a tuple: ``len``,
    indexing, unpacking and ``+`` (concatenation, where an update would mean addition) would silently work on
    it.  The leaves may be JAX or NumPy arrays: ``x @ W + b`` then runs in that library, so a readout of NumPy
    float64 arrays (``Ridge.readout_``) predicts in float64 on the host.  Equality is identity (``eq=False``):
    element-wise array comparison has no single truth value.

    No validation here (JAX builds instances with tracers and placeholders); functions that take a readout
    from a user check it with ``reservoir.validation.check_linear_readout``.
    """

    W: Any
    b: Any

    def __call__(self, features: Any) -> Any:
        """``features @ W + b``: features (..., F) -> outputs (..., O)."""
        return features @ self.W + self.b

    @property
    def n_features(self) -> int:
        """F, the number of features the readout takes."""
        return self.W.shape[0]

    @property
    def n_outputs(self) -> int:
        """O, the number of outputs."""
        return self.W.shape[1]
