"""Readouts trained on reservoir states, and training in one place: ridge regression (one-shot, streamed,
cross-validated), gradient-trained linear/MLP readouts, online LMS/RLS (every linear readout a ``LinearReadout``);
the one optax loop (``readout.optimise``), its losses (``readout.losses``) and variable projection, the readout
solved inside the loss (``readout.projection``)."""

from readout.features import one_hot, pool_states, predict_labels, with_inputs
from readout.gradient import Readout, apply_readout, fit_readout, linear_readout, mlp_readout, readout_loss
from readout.linear import LinearReadout
from readout.losses import LOSSES
from readout.online import RLSState, lms_fit, lms_step, rls_fit, rls_init, rls_step
from readout.optimise import OPTIMIZERS, TrainResult, learning_rate_schedule, make_optimizer, train
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
