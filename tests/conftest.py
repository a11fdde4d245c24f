"""Test-wide settings: JAX's precision, per test.

A test (or module, ``pytestmark = pytest.mark.x64``) marked ``x64`` runs with 64-bit JAX
(``jax_enable_x64``); every other test runs in JAX's default 32-bit mode, whatever an earlier test or an
experiment it ran left behind.  Test modules never flip the flag at import time: collection imports every
module before any test runs, so one module's import would otherwise put the whole session in float64.

The flag is set in the setup hook, before any fixture of the test is built, so a module-scoped fixture of a
marked module (built for its first test) runs in float64 too.
"""

import jax
import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "x64: run with 64-bit JAX (jax_enable_x64); unmarked tests run in float32")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    jax.config.update("jax_enable_x64", item.get_closest_marker("x64") is not None)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    jax.config.update("jax_enable_x64", False)
