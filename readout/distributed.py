"""Ridge readouts fitted on a Dask cluster: sufficient statistics per shard on the workers, summed here.

``RidgeStatistics`` add (``readout.ridge``): the statistics of a data set are the sum of its shards'.  So each
worker computes ``ridge_statistics`` of one shard, sends back only ``O(F²)`` numbers whatever the shard's
length, and the client sums them in shard order (deterministic, whichever worker finished first) and solves
once.  The result is the single-machine fit up to the float64 rounding of the sums.

A shard is either data, ``(features, targets)`` with features ``(T, F)`` or ``(B, T, F)``, or, with ``load``,
any small description (a seed, a file name) that ``load(shard) -> (features, targets)`` turns into data *on
the worker*: then the states never travel.  ``washout`` drops the first steps of every sequence of every shard,
as ``Ridge.fit`` does, so shards should be whole sequences (or batches of them), not pieces of one sequence.

Dask is optional (``pip install -e .[distributed]``); with ``client=None`` the same code runs in this process.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

from readout.ridge import Ridge, RidgeStatistics, _as_2d_targets, ridge_statistics, solve_ridge

Load = Callable[[Any], tuple[Any, Any]]


def shard_statistics(features: Any, targets: Any, washout: int = 0) -> RidgeStatistics:
    """``ridge_statistics`` of one shard (a 1-D target is one output, as in ``Ridge.fit``)."""
    return ridge_statistics(features, _as_2d_targets(targets), washout)


def _statistics(shard: Any, load: Load | None, washout: int) -> RidgeStatistics:
    """The task a worker runs: load the shard if it is a description, then its statistics."""
    features, targets = shard if load is None else load(shard)
    return shard_statistics(features, targets, washout)


def distributed_statistics(client: Any, shards: Sequence[Any], *, load: Load | None = None,
                           washout: int = 0) -> RidgeStatistics:
    """The statistics of all shards: mapped over the cluster behind ``client`` (or here if None), summed here.

    ``load`` must be importable by the workers (a module-level function, or a ``functools.partial`` of one).
    """
    shards = list(shards)
    if not shards:
        raise ValueError("shards must hold at least one shard, got an empty sequence")
    if load is None:
        for index, shard in enumerate(shards):
            if not (isinstance(shard, Sequence) and len(shard) == 2):
                raise ValueError(f"shards[{index}] must be a (features, targets) pair (or pass load=), got "
                                 f"{type(shard).__name__}")
    if client is None:
        return _combine([_statistics(shard, load, washout) for shard in shards])
    inputs = client.scatter(shards) if load is None else shards  # data: sent once, not embedded in the graph
    futures = client.map(_statistics, inputs, load=load, washout=washout, pure=False)
    return _combine(client.gather(futures))  # gather keeps shard order


def _combine(parts: list[RidgeStatistics]) -> RidgeStatistics:
    """Sum in shard order; shards whose feature or output counts differ cannot be pooled."""
    first = parts[0]
    for index, part in enumerate(parts):
        if part.xty.shape != first.xty.shape:
            raise ValueError(f"shard {index} has (features, outputs) = {part.xty.shape}, but shard 0 has "
                             f"{first.xty.shape}: every shard must have the same columns")
    return functools.reduce(operator.add, parts)


def fit_ridge_distributed(client: Any, shards: Sequence[Any], alpha: float = 1e-6, *, load: Load | None = None,
                          washout: int = 0, fit_intercept: bool = True) -> Ridge:
    """A fitted ``Ridge`` from shards whose statistics are computed on the workers (see the module doc)."""
    ridge = Ridge(alpha, fit_intercept)
    stats = distributed_statistics(client, shards, load=load, washout=washout)
    ridge.readout_ = solve_ridge(stats, ridge.alpha, fit_intercept)
    return ridge
