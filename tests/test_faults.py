"""Faults and retries: checked measurements, backoff, budget, replay of a simulated device, training through
injected faults equal to a fault-free run, and training state saved when a device gives up."""

import jax
import numpy as np
import pytest

from hardware_sim import (
    BadMeasurement,
    DeviceProtocol,
    DeviceTimeout,
    DeviceUnavailable,
    FaultyDevice,
    QueryBudgetExceeded,
    RetryingDevice,
    RetryPolicy,
    check_device,
    delay_device,
    train_on_device,
)
from hardware_sim.faults import check_measurement

N = 8
U, Y = np.random.default_rng(0).uniform(0, 0.5, (2, 8, 30, 1))
OPTIONS = {"washout": 5, "n_epochs": 4, "batch_size": 2, "learning_rate": 1e-2}


def make_device():
    return delay_device(N, seed=3, mismatch=0.1, snr_db=30, drift=1e-3)


def inputs(seed=0):
    return np.random.default_rng(seed).uniform(0, 0.5, (2, 20, 1))


def same_leaves(a, b):
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(leaves_a) == len(leaves_b) and all(map(np.array_equal, leaves_a, leaves_b))


class Sleeps(list):
    """A stand-in for time.sleep that records the delays."""

    def __call__(self, seconds):
        self.append(seconds)


def test_policy_refuses_bad_options_naming_them():
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="backoff_factor"):
        RetryPolicy(backoff_factor=0.5)
    with pytest.raises(ValueError, match="budget"):
        RetryPolicy(budget=0)
    with pytest.raises(ValueError, match="timeout"):
        FaultyDevice(make_device(), timeout=1.5, seed=0)
    with pytest.raises(ValueError, match="at most 1"):
        FaultyDevice(make_device(), timeout=0.6, nonfinite=0.6, seed=0)
    with pytest.raises(TypeError, match=r"lacks \['measure'"):
        RetryingDevice(object())


def test_bad_measurements_are_caught_by_kind():
    states = np.zeros((2, 20, N))
    assert check_measurement(states, inputs(), N) is not None
    with pytest.raises(BadMeasurement, match=r"shape \(2, 20, 7\), expected \(2, 20, 8\)") as caught:
        check_measurement(states[..., :-1], inputs(), N)
    assert caught.value.kind == "shape"
    states[1, 3, 2] = np.inf
    with pytest.raises(BadMeasurement, match="1 non-finite values of 320") as caught:
        check_measurement(states, inputs(), N)
    assert caught.value.kind == "nonfinite"


def test_wrappers_follow_the_protocol_and_expose_only_what_the_device_has():
    class Minimal:  # measure and counters only: no adjoint, no replay
        n_calls = n_samples = 0
        n_units, n_inputs, trainable_fields = N, 1, ("mask",)

        def nominal_twin(self):
            return make_device().nominal_twin()

        def measure(self, inputs, input_side=None):
            return np.zeros((*np.shape(inputs)[:-1], N))

    for device in (RetryingDevice(make_device()), FaultyDevice(make_device(), seed=0)):
        assert isinstance(device, DeviceProtocol) and hasattr(device, "adjoint") and hasattr(device, "snapshot")
    bare = RetryingDevice(Minimal())
    assert check_device(bare) is bare and not hasattr(bare, "adjoint") and not hasattr(bare, "snapshot")
    with pytest.raises(TypeError, match=r"for mode='physical_backprop'.*lacks \['adjoint'\]"):
        check_device(bare, "physical_backprop")
    with pytest.raises(TypeError, match=r"lacks \['adjoint'\]"):
        train_on_device(bare, U, Y, mode="physical_backprop")


def test_retries_back_off_exponentially_and_give_up_naming_call_device_and_failure():
    sleeps = Sleeps()
    always = FaultyDevice(make_device(), timeout=1.0, seed=0)
    device = RetryingDevice(always, RetryPolicy(max_retries=4, backoff=0.1, backoff_factor=3, max_backoff=2.0),
                            sleep=sleeps)
    with pytest.raises(DeviceUnavailable, match=r"measure on FaultyDevice\(<hardware_sim.device.Device .*\) "
                                                r"failed 5 times; last failure: DeviceTimeout \(timeout\): "
                                                r"injected timeout at request 4") as caught:
        device.measure(inputs())
    assert isinstance(caught.value.__cause__, DeviceTimeout)
    assert sleeps == pytest.approx([0.1, 0.3, 0.9, 2.0])
    assert device.faults == {"timeout": 5} and always.injected == {"timeout": 5} and device.n_requests == 5


def test_errors_that_are_not_faults_are_not_retried():
    device = RetryingDevice(make_device(), RetryPolicy(backoff=0.0))
    with pytest.raises(ValueError, match="inputs must have length 1"):
        device.measure(np.zeros((5, 3)))
    assert device.n_requests == 1 and not device.faults


def test_query_budget_caps_the_requests_failed_ones_included():
    device = RetryingDevice(FaultyDevice(make_device(), nonfinite=0.5, seed=2), RetryPolicy(backoff=0.0, budget=6))
    with pytest.raises(QueryBudgetExceeded, match="query budget of 6 requests is spent"):
        for k in range(10):
            device.measure(inputs(k))
    assert device.n_requests == 6


def test_retried_measurements_are_the_fault_free_ones_bit_for_bit():
    reference = make_device()
    expected = [np.asarray(reference.measure(inputs(k))) for k in range(12)]
    faulty = FaultyDevice(make_device(), timeout=0.2, nonfinite=0.1, shape=0.1, restart_at=(3, 4), seed=5)
    device = RetryingDevice(faulty, RetryPolicy(backoff=0.0))
    got = [device.measure(inputs(k)) for k in range(12)]
    assert all(map(np.array_equal, got, expected))
    assert device.faults == faulty.injected and sum(faulty.injected.values()) >= 5
    assert faulty.injected["restart"] == 2 and device.n_calls == reference.n_calls == 12
    # without replay, a retry after a lost reply measures on the noise that came next
    lossy = FaultyDevice(make_device(), timeout=1.0, seed=0)
    plain = RetryingDevice(lossy, RetryPolicy(replay=False), sleep=lambda _: lossy.rates.update(timeout=0.0))
    twice = make_device()
    first, second = (np.asarray(twice.measure(inputs(0))) for _ in range(2))
    assert np.array_equal(plain.measure(inputs(0)), second) and not np.array_equal(second, first)


@pytest.mark.parametrize("mode", ["hil", "physical_backprop"])
def test_training_through_faults_equals_the_fault_free_training(mode):
    reference = train_on_device(make_device(), U, Y, mode=mode, **OPTIONS)
    faulty = FaultyDevice(make_device(), timeout=0.10, nonfinite=0.05, restart_at=(7,), seed=1)
    device = RetryingDevice(faulty, RetryPolicy(backoff=0.0))
    result = train_on_device(device, U, Y, mode=mode, **OPTIONS)
    assert same_leaves(result.params, reference.params)
    assert result.history == reference.history
    assert (result.n_calls, result.n_samples) == (reference.n_calls, reference.n_samples)
    assert device.faults == faulty.injected and faulty.injected["restart"] == 1
    assert faulty.injected["timeout"] >= 1 and faulty.injected["nonfinite"] >= 1
    requests = 1 + 16 * (2 if mode == "physical_backprop" else 1)  # readout fit, then per update
    assert device.n_requests == requests + sum(faulty.injected.values())


def test_a_device_that_gives_up_leaves_the_training_state_saved_and_the_same_call_resumes(tmp_path):
    reference = train_on_device(make_device(), U, Y, mode="physical_backprop", **OPTIONS)
    checkpoint = tmp_path / "train.ckpt"
    device = make_device()  # the instrument; it restarts at requests 13-15 of its first session, then recovers
    session = RetryingDevice(FaultyDevice(device, restart_at=(13, 14, 15), seed=0), RetryPolicy(max_retries=2,
                                                                                              backoff=0.0))
    with pytest.raises(DeviceUnavailable, match="failed 3 times") as caught:
        train_on_device(session, U, Y, mode="physical_backprop", checkpoint=checkpoint, checkpoint_interval=5,
                        **OPTIONS)
    # requests 0: readout; 2k+1, 2k+2: update k; the 13th is update 6's measure: saved before update 6
    assert any(f"before update 6 (epoch 1, step 2) saved to '{checkpoint}'" in note
               for note in caught.value.__notes__)
    result = train_on_device(RetryingDevice(device), U, Y, mode="physical_backprop", checkpoint=checkpoint,
                             **OPTIONS)
    assert same_leaves(result.params, reference.params)
    assert result.history == reference.history
    assert (result.n_calls, result.n_samples) == (reference.n_calls, reference.n_samples)


def test_checkpoint_is_refused_for_the_gradient_free_modes():
    with pytest.raises(ValueError, match="checkpoint is not supported for mode='spsa'"):
        train_on_device(make_device(), U, Y, mode="spsa", checkpoint="unused.ckpt")


def test_calibration_takes_any_protocol_device():
    from hardware_sim import calibrate_twin

    probe = np.random.default_rng(2).uniform(0, 0.5, (3, 30, 1))
    options = {"n_steps": 20, "n_repeats": 2, "bandwidth": False}
    bare = calibrate_twin(make_device(), probe, **options)
    wrapped = calibrate_twin(RetryingDevice(FaultyDevice(make_device(), timeout=0.5, seed=0),
                                            RetryPolicy(backoff=0.0)), probe, **options)
    assert wrapped.fitted == bare.fitted and wrapped.n_calls == bare.n_calls == 2  # the same measurements
    assert wrapped.state_nmse == bare.state_nmse  # calibration reads measurements only, never the truth
