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


@pytest.fixture(scope="module")
def built_before_the_first_test():
    return jnp.zeros(1).dtype


@pytest.mark.x64
def test_a_module_fixture_of_a_marked_test_is_built_in_float64(built_before_the_first_test):
    assert built_before_the_first_test == jnp.float64
