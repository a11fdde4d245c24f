"""The float32 sine of the delay nodes against NumPy's float64 sine and cosine (an independent reference)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reservoir import trig


@pytest.mark.parametrize("limit", [4.0, 100.0, 2000.0])
@pytest.mark.parametrize(("fast", "reference"), [(trig.sin, np.sin), (trig.cos, np.cos)])
def test_float32_sine_and_cosine_match_numpy_float64(fast, reference, limit):
    x = np.linspace(-limit, limit, 400_001).astype(np.float32)
    error = np.abs(np.asarray(fast(jnp.asarray(x)), np.float64) - reference(x.astype(np.float64)))
    assert error.max() < 3e-7  # a few float32 ulps of 1; jnp.sin itself is within 4e-8


def test_exact_values_at_multiples_of_half_pi():
    x = jnp.asarray(np.arange(-20, 21) * np.pi / 2, jnp.float32)
    np.testing.assert_allclose(trig.sin(x), np.sin(np.asarray(x, np.float64)), atol=3e-7)


def test_derivative_is_the_cosine():
    x = np.linspace(-30, 30, 10_001).astype(np.float32)
    slope = jax.vmap(jax.grad(trig.sin))(jnp.asarray(x))
    np.testing.assert_allclose(slope, np.cos(x.astype(np.float64)), atol=3e-7)


def test_non_finite_inputs_give_nan():
    assert np.isnan(trig.sin(jnp.asarray([np.nan, np.inf, -np.inf], jnp.float32))).all()


@pytest.mark.x64
def test_float64_uses_the_exact_sine():
    x = jnp.linspace(-10, 10, 1001, dtype=jnp.float64)
    assert trig.sin(x).dtype == jnp.float64
    np.testing.assert_allclose(trig.sin(x), np.sin(np.asarray(x)), atol=1e-15, rtol=0)
