"""Readouts trained on reservoir states: ridge regression (one-shot, streamed, cross-validated), gradient-trained
linear/MLP readouts with one generic optax loop, and online LMS/RLS; every linear readout a ``LinearReadout``."""

from readout.features import one_hot, pool_states, predict_labels, with_inputs
from readout.gradient import (
    LOSSES,
    OPTIMIZERS,
    Readout,
    TrainResult,
    apply_readout,
    fit_readout,
    learning_rate_schedule,
    linear_readout,
    make_optimizer,
    mlp_readout,
    readout_loss,
    train,
)
from readout.linear import LinearReadout
from readout.online import RLSState, lms_fit, lms_step, rls_fit, rls_init, rls_step
from readout.ridge import Ridge, RidgeCV, RidgeStatistics, StreamingRidge, ridge_statistics, solve_ridge

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "LinearReadout",
    "RLSState",
    "Readout",
    "Ridge",
    "RidgeCV",
    "RidgeStatistics",
    "StreamingRidge",
    "TrainResult",
    "apply_readout",
    "fit_readout",
    "learning_rate_schedule",
    "linear_readout",
    "lms_fit",
    "lms_step",
    "make_optimizer",
    "mlp_readout",
    "one_hot",
    "pool_states",
    "predict_labels",
    "readout_loss",
    "ridge_statistics",
    "rls_fit",
    "rls_init",
    "rls_step",
    "solve_ridge",
    "train",
    "with_inputs",
]
