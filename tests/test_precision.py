"""The ``x64`` marker of ``conftest.py``: float64 where asked for, float32 everywhere else, leaks undone."""

import jax
import jax.numpy as jnp
import pytest


def test_a_test_that_leaves_x64_on():
    jax.config.update("jax_enable_x64", True)  # as an experiment run inside a test may do
    assert jnp.zeros(1).dtype == jnp.float64


def test_unmarked_tests_run_in_float32_after_a_leak():
    assert not jax.config.read("jax_enable_x64")
    assert jnp.zeros(1).dtype == jnp.float32


@pytest.mark.x64
def test_marked_tests_run_in_float64():
    assert jnp.zeros(1).dtype == jnp.float64
