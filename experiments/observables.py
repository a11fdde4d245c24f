"""Observables of a reservoir that need tasks and readouts to be measured: (short-term) memory capacity.

They sit above ``reservoir``, ``readout`` and the task and metric layers of ``experiments`` and import them at
the top, in dependency order (as ReservoirPy's ``observables`` sits above its nodes); observables of the
parameters alone, such as ``reservoir.esn.spectral_radius``, stay with the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments import metrics
from experiments.tasks import memory_capacity_data
from readout.ridge import Ridge
from reservoir.core import run
from reservoir.validation import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE_INT, check_scalar

__all__ = ["memory_capacity"]


def memory_capacity(
    params: Any,
    *,
    max_delay: int | None = None,
    n_train: int = 10_000,
    n_test: int = 5_000,
    washout: int = 200,
    alpha: float = 1e-10,
    seed: int = 0,
) -> tuple[float, np.ndarray]:
    """Jaeger's memory capacity (GMD Report 152, 2002): MC = Σ_k r²(u(n−k), y_k(n)), k = 1 … max_delay.

    The reservoir is driven by i.i.d. input (``experiments.tasks.memory_capacity_data``); one ridge readout per
    delay is fitted on ``n_train`` steps after ``washout`` and scored on the next ``n_test`` (held out) with
    ``experiments.metrics.memory_capacity``.  A linear reservoir reaches MC ≈ N; ``max_delay`` defaults to 2N.
    Only for single-input reservoirs.

    Returns:
        (MC, r² per delay (max_delay,)).
    """
    if params.n_inputs != 1:
        raise ValueError(f"memory_capacity needs a reservoir with one input, got n_inputs = {params.n_inputs}")
    max_delay = 2 * params.n_units if max_delay is None else check_scalar("max_delay", max_delay, POSITIVE_INT)
    n_train = check_scalar("n_train", n_train, POSITIVE_INT)
    n_test = check_scalar("n_test", n_test, POSITIVE_INT)
    washout = check_scalar("washout", washout, NON_NEGATIVE_INT)
    if washout < max_delay:
        raise ValueError(f"washout must be at least max_delay = {max_delay} (earlier targets are undefined), "
                         f"got {washout}")
    alpha = check_scalar("alpha", alpha, NON_NEGATIVE)
    u, targets = memory_capacity_data(washout + n_train + n_test, seed=seed, max_delay=max_delay)
    states = np.asarray(run(params, u))
    split = washout + n_train
    readout = Ridge(alpha).fit(states[:split], targets[:split], washout=washout)
    return metrics.memory_capacity(targets[split:], readout.predict(states[split:]))
