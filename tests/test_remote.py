"""A device served from another process: wire format, RemoteDevice against DeviceServer, fuzzed messages,
the command line, and a training killed with SIGKILL that resumes bit for bit."""

import contextlib
import functools
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import jax
import numpy as np
import pytest
import zmq

from hardware_sim import (
    DeviceProtocol,
    DeviceRestarted,
    DeviceTimeout,
    RetryingDevice,
    RetryPolicy,
    delay_device,
    train_on_device,
)
from hardware_sim.remote import ProtocolError, RemoteDevice, decode, encode
from hardware_sim.serve import DeviceServer

ROOT = Path(__file__).resolve().parents[1]
N = 8


def make_device(**options):
    return delay_device(N, seed=3, mismatch=0.1, snr_db=30, drift=1e-3, **options)


@contextlib.contextmanager
def serving(device, address="tcp://127.0.0.1:0", **options):
    """A DeviceServer on localhost in a thread, always stopped."""
    server = DeviceServer(device, address, **options)
    thread = threading.Thread(target=server.serve, kwargs={"poll_seconds": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join()
        server.close()


def inputs(batch=2, steps=20, seed=0):
    return np.random.default_rng(seed).uniform(0, 0.5, (batch, steps, 1)).astype(np.float32)


def same_leaves(a, b):
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(leaves_a) == len(leaves_b) and all(map(np.array_equal, leaves_a, leaves_b))


# One training problem for every test that trains (one compilation of each mode's step).
U, Y = np.random.default_rng(0).uniform(0, 0.5, (2, 8, 30, 1))
OPTIONS = {"washout": 5, "n_epochs": 4, "batch_size": 2, "learning_rate": 1e-2}


@functools.cache
def reference_training(mode):
    """The uninterrupted, in-process, fault-free run."""
    return train_on_device(make_device(), U, Y, mode=mode, **OPTIONS)


# ------------------------------------------------------------------------------------------ wire format


def test_encode_decode_round_trip_keeps_dtype_shape_and_bytes():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "k": np.array(7, np.int64),
              "big": np.arange(4, dtype=">f8")}  # big-endian in, little-endian on the wire, same values
    frames = encode({"op": "x", "n": 1}, arrays)
    assert json.loads(frames[0])["arrays"][1] == ["k", "<i8", []]
    header, decoded = decode([bytes(memoryview(f)) for f in frames])
    assert header == {"op": "x", "n": 1}
    assert decoded["a"].dtype == np.float32 and np.array_equal(decoded["a"], arrays["a"])
    assert decoded["k"].shape == () and int(decoded["k"]) == 7
    assert np.array_equal(decoded["big"], arrays["big"]) and decoded["big"].dtype.str == "<f8"


@pytest.mark.parametrize("frames, message", [
    ([], "empty message"),
    ([b"\xff\xfe"], "not UTF-8 JSON"),
    ([b"[1, 2]"], "JSON object"),
    ([b'{"arrays": [["x", "<f4", [2]]]}'], "carries 0 array frames"),
    ([b'{"arrays": [["x", "|O", [1]]]}', b"12345678"], "expected [name, dtype"),
    ([b'{"arrays": [["x", "<f4", [-1]]]}', b""], "expected [name, dtype"),
    ([b'{"arrays": [["x", "<f4", [3]]]}', b"12345678"], "8 bytes for shape (3,)"),
    ([b"[" * 100000], "header of 100000 bytes"),
])
def test_decode_refuses_malformed_messages_naming_the_problem(frames, message):
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        decode(frames)


# -------------------------------------------------------------------------------------- the remote device


def test_remote_device_measures_what_the_served_device_measures():
    local = make_device()
    with serving(make_device()) as server, RemoteDevice(server.address, timeout=60) as remote:
        assert isinstance(remote, DeviceProtocol)
        assert (remote.n_units, remote.n_inputs, remote.trainable_fields) == (N, 1, local.trainable_fields)
        assert same_leaves(remote.nominal_twin(), local.nominal_twin())
        assert remote.nominal_twin().model == "sine"
        mask = np.linspace(-1, 1, N, dtype=np.float32)[:, None]
        for side in (None, {"mask": mask}):
            assert np.array_equal(remote.measure(inputs(), side), local.measure(inputs(), side))
        cotangent = np.ones((2, 20, N), np.float32)
        gradients = remote.adjoint(inputs(), {"mask": mask}, cotangent)
        expected = local.adjoint(inputs(), {"mask": mask}, cotangent)
        assert np.array_equal(gradients["mask"], expected["mask"])
        # two measurements, then the adjoint: its own forward measurement (no states given), two derivative and
        # two backward passes
        assert (remote.n_calls, remote.n_samples) == (local.n_calls, local.n_samples) == (7, 280)
        with pytest.raises(ValueError, match=r"inputs must have length 1 on axis -1, got shape \(2, 20, 3\)"):
            remote.measure(np.zeros((2, 20, 3)))
        with pytest.raises(ValueError, match="unknown field 'gain'"):
            remote.measure(inputs(), {"gain": np.ones(1)})
        snapshot = remote.snapshot()  # replay: the same noise again after a restore
        first = remote.measure(inputs())
        remote.restore(snapshot)
        assert np.array_equal(remote.measure(inputs()), first)


def test_timeout_then_retry_replays_the_measurement_a_fault_free_device_makes():
    reference = make_device()
    expected = [np.asarray(reference.measure(inputs(seed=k))) for k in range(3)]
    with serving(make_device()) as server, RemoteDevice(server.address, timeout=60) as remote:
        fresh = remote.snapshot()  # before any measurement: the state make_device() starts in
        remote.measure(inputs(seed=9))  # compiles the server's measurement before anything is timed
        server.latency, remote.timeout = 0.6, 0.3
        with pytest.raises(DeviceTimeout, match=r"measure on RemoteDevice\('tcp://127.0.0.1:\d+'\): no reply"):
            remote.measure(inputs(seed=0))  # the server measures, its reply comes too late
        measures = itertools.count()  # from now on every first attempt is slow, every second one fast
        server.before_request = lambda op: setattr(
            server, "latency", 0.6 if op == "measure" and next(measures) % 2 == 0 else 0.0)
        remote.timeout = 60
        remote.restore(fresh)  # (waits for the late measurement to finish: one request at a time)
        retrying = RetryingDevice(remote, RetryPolicy(backoff=0.4))
        remote.timeout = 0.3
        got = [retrying.measure(inputs(seed=k)) for k in range(3)]
        assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))
        assert dict(retrying.faults) == {"timeout": 3} and retrying.n_requests == 6


def test_a_restarted_server_is_detected_and_the_retry_restores_the_device():
    reference = make_device()
    expected = [np.asarray(reference.measure(inputs(seed=k))) for k in range(2)]
    with serving(make_device()) as first:
        address = first.address
        retrying = RetryingDevice(RemoteDevice(address, timeout=60), RetryPolicy(backoff=0.0))
        assert np.array_equal(retrying.measure(inputs(seed=0)), expected[0])
    with serving(make_device(), address):  # the device comes back fresh on the same port, between two calls
        assert np.array_equal(retrying.measure(inputs(seed=1)), expected[1])  # restored, then measured
        assert dict(retrying.faults) == {"restart": 1}
        with pytest.raises(DeviceRestarted, match="the server restarted"):
            with serving(make_device(), "tcp://127.0.0.1:0") as other:
                retrying.device.address = other.address  # (a new server seen by the same client)
                retrying.device.close()
                retrying.device.measure(inputs())
    retrying.device.close()


def test_every_training_mode_runs_unchanged_against_a_remote_device():
    for mode in ("hil", "physical_backprop", "spsa"):
        with serving(make_device()) as server, RemoteDevice(server.address, timeout=60) as remote:
            result = train_on_device(remote, U, Y, mode=mode, **OPTIONS)
        reference = reference_training(mode)
        assert same_leaves(result.params, reference.params), mode
        assert (result.n_calls, result.n_samples) == (reference.n_calls, reference.n_samples)


# ---------------------------------------------------------------------------------------------- fuzzing


def fuzzed_messages(rng, good):
    """400 malformed ZeroMQ messages: mutations of good requests and random garbage."""
    header, *arrays = good
    for k in range(400):
        choice = k % 8
        if choice == 0:  # a random byte of the header replaced
            raw = bytearray(header)
            raw[rng.integers(len(raw))] = rng.integers(256)
            yield [bytes(raw), *arrays]
        elif choice == 1:  # an array frame truncated
            yield [header, *(a[: rng.integers(len(a))] for a in arrays)]
        elif choice == 2:  # frames missing or added
            yield [header, *arrays[:-1]] if k % 16 < 8 else [header, *arrays, rng.bytes(8)]
        elif choice == 3:  # random bytes as frames
            yield [rng.bytes(int(rng.integers(0, 64))) for _ in range(int(rng.integers(1, 4)))]
        elif choice == 4:  # a header that lies about the arrays
            spec = json.loads(header)
            spec["arrays"][0][rng.integers(3)] = [["x"], "<c16", [2**40, 2**40], "|O", -3, None][k % 6]
            yield [json.dumps(spec).encode(), *arrays]
        elif choice == 5:  # unknown or missing operations and fields
            yield [json.dumps({"op": ["nope", None, 3, "measure"][k % 4], "arrays": []}).encode()]
        elif choice == 6:  # header truncated
            yield [header[: rng.integers(len(header))], *arrays]
        else:  # a well-formed restore with wrong leaves
            yield encode({"op": "restore"}, {"leaf/0": np.zeros(3, np.float32)})


def test_server_survives_500_fuzzed_messages_and_serves_the_next_good_request():
    rng = np.random.default_rng(0)
    context = zmq.Context.instance()
    with serving(make_device()) as server, RemoteDevice(server.address, timeout=60) as remote:
        good = [bytes(memoryview(f)) for f in encode({"op": "measure", "input_side": False},
                                                     {"inputs": inputs()})]
        remote.measure(inputs())  # compiled before the fuzzing
        host, port = server.address.removeprefix("tcp://").rsplit(":", 1)
        answered = errors = 0
        request = context.socket(zmq.REQ)
        request.setsockopt(zmq.LINGER, 0)
        request.connect(server.address)
        for frames in fuzzed_messages(rng, good):  # 400 through a REQ socket: each gets a reply
            request.send_multipart(frames)
            assert request.poll(30000), "no reply to a malformed message"
            reply, _ = decode(request.recv_multipart())
            answered += 1
            errors += not reply["ok"]
        request.close()
        dealer = context.socket(zmq.DEALER)  # 50 without the REQ envelope: answered as they came
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(server.address)
        for _ in range(50):
            dealer.send_multipart([rng.bytes(int(rng.integers(1, 32)))])
            assert dealer.poll(30000)
            reply, _ = decode(dealer.recv_multipart()[-1:])
            answered += 1
            errors += not reply["ok"]
        dealer.close()
        for k in range(50):  # 50 raw TCP connections breaking ZeroMQ's own framing: dropped by the server
            with socket.create_connection((host, int(port)), timeout=5) as raw:
                greeting = b"\xff" + bytes(8) + b"\x7f\x03\x00NULL" + bytes(16) + b"\x00" + bytes(31)
                raw.sendall(greeting[: k + 1] if k % 2 else greeting + rng.bytes(int(rng.integers(1, 200))))
        assert answered == 450 and errors >= 445  # a byte flip in an array frame can leave a valid request
        assert server.stats["errors"] == errors
        before = remote.snapshot()
        states = remote.measure(inputs(seed=5))
        replay = make_device()
        replay.restore(jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(replay.snapshot()),
                                                    [int(v) if v.dtype.kind == "i" and v.shape == () else v
                                                     for v in before]))
        assert np.array_equal(states, replay.measure(inputs(seed=5)))


# ---------------------------------------------------------------------------------------- command line


def test_serve_command_line_serves_a_profile_and_stops_on_sigterm():
    command = [sys.executable, "-m", "hardware_sim.serve", "--profile", "knob_mismatch", "--seed", "4",
               "--port", "0", "--n-units", str(N)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = server.stdout.readline()
        assert line.startswith("serving knob_mismatch device (seed 4, N = 8) on tcp://127.0.0.1:"), line
        with RemoteDevice(line.split()[-1], timeout=60) as remote:
            assert same_leaves(remote.nominal_twin(), delay_device(N, seed=4).nominal_twin())
            assert remote.n_calls == 0 and remote.stats() == {"info": 1, "counters": 1}
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()


# --------------------------------------------------------------------------------------- kill -9, resume

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from hardware_sim import train_on_device
    from hardware_sim.remote import RemoteDevice
    address, checkpoint, output, problem, options = sys.argv[1:]
    problem = np.load(problem)
    result = train_on_device(RemoteDevice(address, timeout=120), problem["u"], problem["y"],
                             mode="physical_backprop", checkpoint=checkpoint, checkpoint_interval=3,
                             **json.loads(options))
    np.savez(output, n_calls=result.n_calls, n_samples=result.n_samples,
             **{str(i): leaf for i, leaf in enumerate(__import__("jax").tree_util.tree_leaves(result.params))})
""")


def test_kill_9_mid_training_then_the_same_call_resumes_bit_for_bit(tmp_path):
    reference = reference_training("physical_backprop")
    steps, interval = 16, 3  # 4 epochs of 4 updates; checkpoints before updates 0, 3, 6, ...
    # initial readout, then measure (1) + adjoint (2 derivative, 2 backward passes) per update
    assert reference.n_calls == 1 + 5 * steps
    script, checkpoint, output = tmp_path / "child.py", tmp_path / "train.ckpt", tmp_path / "result.npz"
    script.write_text(CHILD)
    np.savez(tmp_path / "problem.npz", u=U, y=Y)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_ENABLE_X64": str(jax.config.jax_enable_x64)}
    child = {}
    measures = iter(range(10**6))

    def kill_at_update_8(op):  # the 10th measurement: update 8's forward pass (the 1st was the readout's)
        if op == "measure" and next(measures) == 9:
            os.kill(child["process"].pid, signal.SIGKILL)
            child["process"].wait()

    with serving(make_device(), before_request=kill_at_update_8) as server:
        command = [sys.executable, str(script), server.address, str(checkpoint), str(output),
                   str(tmp_path / "problem.npz"), json.dumps(OPTIONS)]
        child["process"] = subprocess.Popen(command, cwd=ROOT, env=env)
        assert child["process"].wait(timeout=300) == -signal.SIGKILL
        assert checkpoint.exists() and not output.exists()
        assert not list(tmp_path.glob(".train.ckpt.*")), "a temporary checkpoint file was left behind"
        assert subprocess.run(command, cwd=ROOT, env=env, timeout=300).returncode == 0
        requests = server.stats["measure"] + server.stats["adjoint"]
    result = np.load(output)
    leaves = jax.tree_util.tree_leaves(reference.params)
    assert all(np.array_equal(result[str(i)], leaf) for i, leaf in enumerate(leaves)), "not bit-identical"
    assert (int(result["n_calls"]), int(result["n_samples"])) == (reference.n_calls, reference.n_samples)
    uninterrupted = 1 + 2 * steps  # device requests: readout measurement, then measure + adjoint per update
    repeated = requests - uninterrupted
    # killed during update 8; the last checkpoint was before update 6: updates 6, 7 and 8's measure again
    assert repeated == 5 <= 2 * interval
