"""Hyperparameter selection on a validation split carved from the training data (never the test set).

``grid_search`` tries every combination of a small grid (or a random subset of it) and, for each, every ridge
``alpha``: the reservoir runs once per combination, the alphas cost one linear solve each (statistics are
shared, see ``readout.ridge``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from readout import ridge_statistics, solve_ridge, with_inputs
from reservoir import run
from reservoir.validation import NON_NEGATIVE_INT, POSITIVE_INT, check_array, check_scalar

DEFAULT_ALPHAS = tuple(10.0 ** np.arange(-10, 0))


@dataclass(frozen=True)
class SearchResult:
    """What ``grid_search`` found: the best configuration, its ridge α and validation error, and every trial."""

    config: dict[str, Any]  # the best reservoir hyperparameters
    alpha: float  # the best ridge regularisation for them
    score: float  # its validation error
    table: list[dict[str, Any]] = field(repr=False)  # every (config, alpha, score) tried


def grid_search(
    score: Callable[..., tuple[float, float]],
    grid: Mapping[str, Sequence[Any]],
    *,
    max_configs: int | None = None,
    seed: int = 0,
    progress: str | None = None,
) -> SearchResult:
    """Minimise ``score(**config) -> (validation_error, best_alpha)`` over the grid's combinations.

    With ``max_configs`` smaller than the grid, a random subset of that size (chosen by ``seed``) is tried:
    random search over the same grid.
    """
    if not grid:
        raise ValueError("grid must name at least one hyperparameter, got an empty mapping")
    for name, values in grid.items():
        if len(values) == 0:
            raise ValueError(f"grid[{name!r}] must hold at least one value, got an empty sequence")
    configs = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    if max_configs is not None:
        max_configs = check_scalar("max_configs", max_configs, POSITIVE_INT)
        rng = np.random.default_rng(check_scalar("seed", seed, NON_NEGATIVE_INT))
        if max_configs < len(configs):
            configs = [configs[i] for i in sorted(rng.choice(len(configs), max_configs, replace=False))]
    table = []
    for config in tqdm(configs, desc=progress, disable=progress is None, leave=False):
        error, alpha = score(**config)
        table.append({**config, "alpha": alpha, "score": error})
    best = min(table, key=lambda row: row["score"])
    return SearchResult({k: best[k] for k in grid}, best["alpha"], best["score"], table)


def ridge_validation_score(
    params: Any,
    inputs: Any,
    targets: Any,
    *,
    washout: int,
    n_validation: int,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    readout_sees_input: bool = True,
) -> tuple[float, float]:
    """Validation NMSE of the best ridge readout and that alpha.

    The reservoir runs once over ``inputs`` (T, D) (the training data only); the readout is fitted on steps
    ``[washout, T − n_validation)`` and scored on the last ``n_validation`` steps, for every alpha.
    """
    inputs = check_array("inputs", inputs, 2)
    targets = check_array("targets", targets, 2, {0: inputs.shape[0]})
    n_validation = check_scalar("n_validation", n_validation, POSITIVE_INT)
    if washout + n_validation >= inputs.shape[0]:
        raise ValueError(f"washout + n_validation must be smaller than the {inputs.shape[0]} training steps, "
                         f"got {washout} + {n_validation}")
    states = run(params, inputs)
    features = with_inputs(states, inputs) if readout_sees_input else np.asarray(states, np.float64)
    split = inputs.shape[0] - n_validation
    train = ridge_statistics(features[washout:split], targets[washout:split])
    validation = ridge_statistics(features[split:], targets[split:])
    scale = validation.count * validation.target_variance()
    errors = [float(np.mean(validation.squared_error(solve_ridge(train, a)) / scale)) for a in alphas]
    best = int(np.argmin(errors))
    return errors[best], float(alphas[best])
