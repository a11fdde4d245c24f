"""Readouts trained on reservoir states: ridge regression (one-shot, streamed, cross-validated)."""

from readout.features import one_hot, pool_states, predict_labels, with_inputs
from readout.ridge import Ridge, RidgeCV, RidgeStatistics, StreamingRidge, ridge_statistics, solve_ridge

__all__ = [
    "Ridge",
    "RidgeCV",
    "RidgeStatistics",
    "StreamingRidge",
    "one_hot",
    "pool_states",
    "predict_labels",
    "ridge_statistics",
    "solve_ridge",
    "with_inputs",
]
