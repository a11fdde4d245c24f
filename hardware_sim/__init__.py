"""Simulated analog hardware: reservoirs behind mismatch, noise, quantisation, finite bandwidth and drift."""

from hardware_sim.device import Device, delay_device, wrap_device
from hardware_sim.models import HarmonicSine
from hardware_sim.nonidealities import (
    Nonideality,
    Written,
    adc,
    chain,
    dac,
    detection_noise,
    drift,
    harmonic,
    lowpass,
    mismatch,
    multiplicative_noise,
    node_spread,
    quantise,
)

__all__ = [
    "Device",
    "HarmonicSine",
    "Nonideality",
    "Written",
    "adc",
    "chain",
    "dac",
    "delay_device",
    "detection_noise",
    "drift",
    "harmonic",
    "lowpass",
    "mismatch",
    "multiplicative_noise",
    "node_spread",
    "quantise",
    "wrap_device",
]
