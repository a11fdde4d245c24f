"""Reservoirs as values: parameter pytrees plus one pure ``run`` that jit/vmap/grad all apply to."""

from reservoir.core import DivergenceError, Reservoir, pytree_dataclass, raise_if_diverged, run, static_field
from reservoir.delay import (
    DelayParams,
    MackeyGlassDelay,
    Sin2LowpassDelay,
    SineDelay,
    delay_from_arrays,
    delay_reservoir,
)
from reservoir.esn import ESNParams, esn, esn_from_arrays, generate, simple_cycle_reservoir, spectral_radius
from reservoir.trainable import bptt_loss, run_states, split_trainable, trainable_fields

__all__ = [
    "bptt_loss",
    "run_states",
    "split_trainable",
    "trainable_fields",
    "DelayParams",
    "MackeyGlassDelay",
    "Sin2LowpassDelay",
    "SineDelay",
    "delay_from_arrays",
    "delay_reservoir",
    "DivergenceError",
    "ESNParams",
    "esn",
    "esn_from_arrays",
    "generate",
    "pytree_dataclass",
    "raise_if_diverged",
    "Reservoir",
    "run",
    "simple_cycle_reservoir",
    "spectral_radius",
    "static_field",
]
