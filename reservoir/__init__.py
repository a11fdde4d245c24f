"""Reservoirs as values: parameter pytrees plus one pure ``run`` that jit/vmap/grad all apply to."""

from reservoir.core import DivergenceError, raise_if_diverged, run
from reservoir.delay import DelayParams, delay_from_arrays, delay_reservoir
from reservoir.esn import ESNParams, esn, esn_from_arrays, generate, simple_cycle_reservoir, spectral_radius
from reservoir.trainable import TRAINABLE_FIELDS, bptt_loss, run_states, split_trainable

__all__ = [
    "TRAINABLE_FIELDS",
    "bptt_loss",
    "run_states",
    "split_trainable",
    "DelayParams",
    "delay_from_arrays",
    "delay_reservoir",
    "DivergenceError",
    "ESNParams",
    "esn",
    "esn_from_arrays",
    "generate",
    "raise_if_diverged",
    "run",
    "simple_cycle_reservoir",
    "spectral_radius",
]
