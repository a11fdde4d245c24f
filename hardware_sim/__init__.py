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
from hardware_sim.training import (
    MODES,
    DeviceTrainResult,
    device_nmse,
    device_states,
    spsa_loss,
    states_readout_loss,
    train_on_device,
    twin_states,
)

__all__ = [
    "MODES",
    "DeviceTrainResult",
    "device_nmse",
    "device_states",
    "states_readout_loss",
    "spsa_loss",
    "train_on_device",
    "twin_states",
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
