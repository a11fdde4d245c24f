"""Test-wide settings: JAX's precision, per test.

A test (or module, ``pytestmark = pytest.mark.x64``) marked ``x64`` runs with 64-bit JAX
(``jax_enable_x64``); every other test runs in JAX's default 32-bit mode, whatever an earlier test or an
experiment it ran left behind.  Test modules never flip the flag at import time: collection imports every
module before any test runs, so one module's import would otherwise put the whole session in float64.
"""

import jax
import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "x64: run with 64-bit JAX (jax_enable_x64); unmarked tests run in float32")


@pytest.fixture(autouse=True)
def jax_precision(request: pytest.FixtureRequest):
    """``jax_enable_x64`` on for tests marked ``x64``, off for the others; off again afterwards."""
    jax.config.update("jax_enable_x64", request.node.get_closest_marker("x64") is not None)
    yield
    jax.config.update("jax_enable_x64", False)
