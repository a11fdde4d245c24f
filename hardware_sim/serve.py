"""Serve a simulated device to other processes over ZeroMQ (``hardware_sim.remote`` has the wire format).

    python -m hardware_sim.serve --profile knob_mismatch --seed 0 --port 5555 [--n-units 100] [--latency 0.01]

then, in the training process, ``RemoteDevice("tcp://127.0.0.1:5555")``.  The server answers every message:
a well-formed request with its result, anything else (malformed, truncated, an unknown operation, arguments
the device refuses) with an error reply naming what is wrong; a connection that breaks the framing itself is
dropped by ZeroMQ.  It serves one request at a time (the device is a single instrument) and stops cleanly on
SIGTERM or Ctrl-C.  Operations: ``info``, ``measure``, ``adjoint``, ``counters``, ``snapshot``, ``restore``,
``stats``.

The same ``DeviceServer`` serves any object of ``hardware_sim.protocol`` (say, your instrument's driver class,
so that training runs in another process or on another machine than the instrument).
"""

from __future__ import annotations

import argparse
import collections
import secrets
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import zmq

from hardware_sim.device import delay_device
from hardware_sim.protocol import DeviceProtocol, check_device, is_replayable
from hardware_sim.remote import (
    MAX_MESSAGE_BYTES,
    ProtocolError,
    decode,
    encode,
    encode_twin,
    prefixed,
    unprefixed,
)
from reservoir.validation import NON_NEGATIVE, POSITIVE_INT, SEED, check_choice, check_scalar

# Device profiles: ``delay_device`` options by name.  This is the one place a profile name becomes a device:
# new profiles (a bench-top instrument's measured non-idealities) are added here, or ``build_device`` replaced.
PROFILES: dict[str, dict[str, Any]] = {
    "ideal": {},  # the nominal model exactly: no mismatch, no noise
    "knob_mismatch": {"mismatch": 0.1},  # hidden 10 % gain and 0.1 rad phase mismatch, noiseless
}


def build_device(profile: str, *, seed: int, n_units: int = 100, n_inputs: int = 1) -> DeviceProtocol:
    """The simulated device ``profile`` names: ``delay_device(n_units, n_inputs, seed=seed, **PROFILES[profile])``
    (the hook where profiles that are more than options plug in)."""
    check_choice("profile", profile, tuple(PROFILES))
    return delay_device(n_units, n_inputs, seed=seed, **PROFILES[profile])


class DeviceServer:
    """Serves ``device`` on a ZeroMQ ROUTER socket bound to ``address`` (port 0: a free port, read
    ``self.address``).

    Args:
        device: any ``hardware_sim.protocol`` device.
        address: ZeroMQ endpoint to bind.
        latency: seconds added to every measurement and backward pass (an instrument's own time, for
            rehearsals and for measuring what waiting costs a training).
        before_request: called with the operation name before each well-formed request is served (logging,
            rate limits, rehearsing a crash).
    """

    def __init__(self, device: DeviceProtocol, address: str = "tcp://127.0.0.1:0", *, latency: float = 0.0,
                 before_request: Callable[[str], None] | None = None):
        self.device = check_device(device)
        self.latency = check_scalar("latency", latency, NON_NEGATIVE)
        self.before_request = before_request
        self.boot = secrets.token_hex(8)  # names this server run (a restart changes it); not a result
        self.stats: collections.Counter[str] = collections.Counter()
        self._socket = zmq.Context.instance().socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self._socket.bind(address)
        self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._stop = threading.Event()

    def serve(self, poll_seconds: float = 0.1) -> None:
        """Answer requests until ``stop()``."""
        while not self._stop.is_set():
            if not self._socket.poll(poll_seconds * 1000, zmq.POLLIN):
                continue
            frames = self._socket.recv_multipart(copy=False)
            identity, rest = frames[0], frames[1:]
            envelope = [b""] if rest and len(rest[0]) == 0 else []  # REQ peers put an empty frame first
            reply = self.handle([frame.buffer for frame in rest[len(envelope):]])
            self._socket.send_multipart([identity, *envelope, *reply], copy=False)

    def stop(self) -> None:
        """Ask ``serve`` to return after the request at hand (safe from another thread or a signal handler)."""
        self._stop.set()

    def close(self) -> None:
        """Close the socket at once, dropping unsent replies (call after ``serve`` has returned)."""
        self._socket.close(linger=0)

    def handle(self, frames: Sequence[Any]) -> list[Any]:
        """The reply to one message; never raises (a failure becomes an error reply)."""
        try:
            header, arrays = decode(frames)
            op = header.get("op")
            if op not in OPERATIONS:
                raise ProtocolError(f"unknown op {str(op)[:100]!r}; expected one of {sorted(OPERATIONS)}")
            if self.before_request is not None:
                self.before_request(op)
            result, out = OPERATIONS[op](self, header, arrays)
            self.stats[op] += 1
            counters = {"n_calls": int(self.device.n_calls), "n_samples": int(self.device.n_samples)}
            return encode({"ok": True, "boot": self.boot, **counters, **result}, out)
        except Exception as error:  # noqa: BLE001 -- the server must outlive any request
            self.stats["errors"] += 1
            kind = "ValueError" if isinstance(error, ValueError) else (
                "TypeError" if isinstance(error, TypeError) else type(error).__name__)
            return encode({"ok": False, "boot": self.boot, "kind": kind, "error": str(error)[:2000]})

    # ---------------------------------------------------------------------------------------- operations

    def _info(self, header: dict, arrays: dict) -> tuple[dict, dict]:
        twin, twin_arrays = encode_twin(self.device.nominal_twin())
        return ({"n_units": int(self.device.n_units), "n_inputs": int(self.device.n_inputs),
                 "trainable_fields": list(self.device.trainable_fields), "twin": twin,
                 "adjoint": hasattr(self.device, "adjoint"), "replayable": is_replayable(self.device)},
                twin_arrays)

    def _measure(self, header: dict, arrays: dict) -> tuple[dict, dict]:
        if "inputs" not in arrays:
            raise ProtocolError("measure needs an 'inputs' array")
        side = unprefixed(arrays, "input_side") if header.get("input_side") else None
        time.sleep(self.latency)
        return {}, {"states": np.asarray(self.device.measure(arrays["inputs"], side))}

    def _adjoint(self, header: dict, arrays: dict) -> tuple[dict, dict]:
        if not hasattr(self.device, "adjoint"):
            raise TypeError(f"the served {type(self.device).__name__} has no adjoint")
        if "inputs" not in arrays or "cotangent" not in arrays:
            raise ProtocolError("adjoint needs 'inputs' and 'cotangent' arrays")
        side = unprefixed(arrays, "input_side") if header.get("input_side") else None
        time.sleep(self.latency)
        gradients = self.device.adjoint(arrays["inputs"], side, arrays["cotangent"], states=arrays.get("states"))
        return {}, prefixed({name: np.asarray(value) for name, value in gradients.items()}, "gradients")

    def _counters(self, header: dict, arrays: dict) -> tuple[dict, dict]:
        return {}, {}

    def _snapshot(self, header: dict, arrays: dict) -> tuple[dict, dict]:
        self._check_replayable()
        leaves = jax.tree_util.tree_leaves(self.device.snapshot())
        return {}, {f"leaf/{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}

    def _restore(self, header: dict, arrays: dict) -> tuple[dict, dict]:
        """Rebuild the snapshot in the structure of the device's own: only arrays of the same count, shapes and
        dtypes are accepted (never an object from the wire)."""
        self._check_replayable()
        own, structure = jax.tree_util.tree_flatten(self.device.snapshot())
        if sorted(arrays) != sorted(f"leaf/{i}" for i in range(len(own))):
            raise ProtocolError(f"restore needs arrays leaf/0 ... leaf/{len(own) - 1}, got {len(arrays)} arrays")
        leaves = []
        for i, mine in enumerate(own):
            given = arrays[f"leaf/{i}"]
            if isinstance(mine, int):
                if given.shape != () or given.dtype.kind not in "iu":
                    raise ProtocolError(f"leaf/{i} must be an integer scalar, got {given.dtype} {given.shape}")
                leaves.append(int(given))
            else:
                leaves.append(np.array(given))
        self.device.restore(jax.tree_util.tree_unflatten(structure, leaves))
        return {}, {}

    def _stats(self, header: dict, arrays: dict) -> tuple[dict, dict]:
        return {"stats": dict(self.stats)}, {}

    def _check_replayable(self) -> None:
        if not is_replayable(self.device):
            raise TypeError(f"the served {type(self.device).__name__} cannot be replayed (no snapshot/restore)")


OPERATIONS: dict[str, Callable[[DeviceServer, dict, dict], tuple[dict, dict]]] = {
    "info": DeviceServer._info, "measure": DeviceServer._measure, "adjoint": DeviceServer._adjoint,
    "counters": DeviceServer._counters, "snapshot": DeviceServer._snapshot, "restore": DeviceServer._restore,
    "stats": DeviceServer._stats,
}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line (``python -m hardware_sim.serve --profile P --port K``): build a simulated device of profile
    P and serve it until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m hardware_sim.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ideal")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=5555, help="TCP port (0: any free port, printed)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1: this machine only)")
    parser.add_argument("--n-units", type=int, default=100)
    parser.add_argument("--n-inputs", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every measurement")
    args = parser.parse_args(argv)
    seed = check_scalar("seed", args.seed, SEED)
    device = build_device(args.profile, seed=seed, n_units=check_scalar("n_units", args.n_units, POSITIVE_INT),
                          n_inputs=check_scalar("n_inputs", args.n_inputs, POSITIVE_INT))
    server = DeviceServer(device, f"tcp://{args.host}:{args.port or '*'}", latency=args.latency)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.stop())
    print(f"serving {args.profile} device (seed {seed}, N = {device.n_units}) on {server.address}", flush=True)
    try:
        server.serve()
    finally:
        server.close()


if __name__ == "__main__":
    main()
