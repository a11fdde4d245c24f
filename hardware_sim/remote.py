"""A device in another process: ``RemoteDevice(address)`` speaks to ``python -m hardware_sim.serve``.

Transport: ZeroMQ (pyzmq), REQ on the client, ROUTER on the server.  ZeroMQ because it frames messages (a
request arrives whole or not at all: no partial reads to reassemble), reconnects by itself when the server
restarts, lets the client wait for a reply with a timeout (``poll``) and sends NumPy buffers without copying
them (``copy=False``); the library is mature (libzmq) and its Python binding is a wheel.

Wire format, one request or reply = a multipart message:

    frame 0      a UTF-8 JSON header (at most 64 kB): {"op": ..., other small fields ...,
                 "arrays": [[name, dtype, shape], ...]}
    frame 1...   one frame per array: its raw bytes, C order, little-endian (dtype one of ``DTYPES``)

Arrays never travel as JSON lists.  A reply's header holds ``"ok"`` (and ``"error"``, ``"kind"`` when false),
the server's ``"boot"`` (an id drawn when it started: a change means the device restarted) and its counters.
Every frame is checked (``decode``): count, dtype, shape against the bytes received; anything else is a
``ProtocolError`` answered with an error reply, so a fuzzed message never reaches the device.

A ``RemoteDevice`` implements the whole ``hardware_sim.protocol``: ``measure``, ``adjoint`` (when the served
device has one), ``snapshot``/``restore`` (when it is replayable, a simulation), the counters, the nominal
twin.  A request that gets no reply within ``timeout`` seconds raises ``DeviceTimeout`` and the socket is
replaced (a REQ socket cannot send again before it has a reply: the "lazy pirate" pattern of the ZeroMQ guide);
a reply from a device that restarted since the last one raises ``DeviceRestarted``.  Wrap the device in
``hardware_sim.faults.RetryingDevice`` to retry both.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
import zmq

from hardware_sim.faults import DeviceRestarted, DeviceTimeout
from hardware_sim.models import model_classes
from reservoir.validation import POSITIVE, check_scalar

DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "<u4", "<u8"})
MAX_HEADER_BYTES = 65536
MAX_DIMENSIONS = 8
MAX_MESSAGE_BYTES = 1 << 30  # a larger frame closes the connection (libzmq's ZMQ_MAXMSGSIZE)


class ProtocolError(ValueError):
    """A message that does not follow the wire format."""


class RemoteError(RuntimeError):
    """The server failed while serving a well-formed request (not a bad argument, not a fault)."""


def encode(header: Mapping[str, Any], arrays: Mapping[str, Any] = {}) -> list[Any]:  # noqa: B006 (read only)
    """A message: the JSON header (with the arrays' names, dtypes and shapes) and one buffer per array."""
    buffers = {name: _little_endian_c_order(array) for name, array in arrays.items()}
    meta = dict(header, arrays=[[name, a.dtype.str, list(a.shape)] for name, a in buffers.items()])
    return [json.dumps(meta).encode(), *buffers.values()]


def _little_endian_c_order(array: Any) -> np.ndarray:
    array = np.asarray(array)
    return np.asarray(array, array.dtype.newbyteorder("<"), order="C")  # 0-d stays 0-d (unlike ascontiguousarray)


def decode(frames: Sequence[Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` of a message; ``ProtocolError`` naming what is wrong with a malformed one."""
    if len(frames) < 1:
        raise ProtocolError("empty message: expected a JSON header frame")
    raw = memoryview(frames[0])
    if raw.nbytes > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {raw.nbytes} bytes, at most {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ProtocolError(f"header is not UTF-8 JSON: {error}") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a JSON object, got {type(header).__name__}")
    specs = header.pop("arrays", [])
    if not isinstance(specs, list) or len(specs) != len(frames) - 1:
        raise ProtocolError(f"header lists {len(specs) if isinstance(specs, list) else specs!r} arrays, the "
                            f"message carries {len(frames) - 1} array frames")
    arrays = {}
    for index, (spec, frame) in enumerate(zip(specs, frames[1:], strict=True)):
        if (not isinstance(spec, list) or len(spec) != 3 or not isinstance(spec[0], str)
                or spec[1] not in DTYPES or not isinstance(spec[2], list) or len(spec[2]) > MAX_DIMENSIONS
                or not all(type(n) is int and 0 <= n < 2**31 for n in spec[2])):
            raise ProtocolError(f"array {index}: expected [name, dtype in {sorted(DTYPES)}, shape of at most "
                                f"{MAX_DIMENSIONS} non-negative ints], got {str(spec)[:200]}")
        name, dtype, shape = spec[0], np.dtype(spec[1]), tuple(spec[2])
        data = memoryview(frame)
        if data.nbytes != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise ProtocolError(f"array {name!r}: {data.nbytes} bytes for shape {shape} of {dtype.str}")
        if name in arrays:
            raise ProtocolError(f"array {name!r} given twice")
        arrays[name] = np.frombuffer(data, dtype).reshape(shape)
    return header, arrays


def prefixed(arrays: Mapping[str, Any] | None, prefix: str) -> dict[str, Any]:
    """``{prefix/name: array}``: a dict of arrays (an input side, gradients) in a message's flat namespace."""
    return {f"{prefix}/{name}": value for name, value in (arrays or {}).items()}


def unprefixed(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The inverse of ``prefixed``: ``{name: array}`` for the message's arrays named ``prefix/name``."""
    return {name[len(prefix) + 1:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}


def encode_twin(twin: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A nominal twin as JSON (type and static fields) and arrays (array fields)."""
    fields, arrays = {}, {}
    for field in dataclasses.fields(twin):
        value = getattr(twin, field.name)
        if value is None or isinstance(value, str | int | float):
            fields[field.name] = value
        else:
            arrays[f"twin/{field.name}"] = np.asarray(value)
    return {"type": type(twin).__name__, "fields": fields}, arrays


def decode_twin(description: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """The inverse of ``encode_twin``: the nominal twin rebuilt from its JSON description and ``twin/`` arrays;
    ``ProtocolError`` for a twin type this side does not know."""
    types = model_classes()  # read now: a model registered after import is known too
    if not isinstance(description, dict) or description.get("type") not in types:
        raise ProtocolError(f"twin must be one of {sorted(types)}, got {str(description)[:200]}")
    values = {**description["fields"], **{k: jnp.asarray(v) for k, v in unprefixed(arrays, "twin").items()}}
    return types[description["type"]](**values)


class RemoteDevice:
    """A device served by ``python -m hardware_sim.serve`` at ``address`` (e.g. ``"tcp://127.0.0.1:5555"``).

    Args:
        address: the server's ZeroMQ endpoint.
        timeout: seconds to wait for each reply before ``DeviceTimeout`` (a measurement's own duration
            included: set it above the instrument's longest measurement).

    Example (with ``python -m hardware_sim.serve --port 5555`` running; the README's "Bring your own device"
    runs it end to end)::

        device = RemoteDevice("tcp://127.0.0.1:5555")
        result = train_on_device(RetryingDevice(device), u, y, mode="physical_backprop", washout=10)
    """

    def __init__(self, address: str, *, timeout: float = 30.0):
        if not isinstance(address, str) or "://" not in address:
            raise ValueError(f"address must be a ZeroMQ endpoint like 'tcp://host:port', got {address!r}")
        self.address = address
        self.timeout = check_scalar("timeout", timeout, POSITIVE)
        self._context = zmq.Context.instance()
        self._socket = None
        self._boot = None
        self._request_id = 0
        header, arrays = self._request("info", restarted_ok=True)
        self._info = header
        self._twin = decode_twin(header["twin"], arrays)

    # ---------------------------------------------------------------------------------------- transport

    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            socket = self._context.socket(zmq.REQ)
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            socket.connect(self.address)
            self._socket = socket
        return self._socket

    def _drop(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def close(self) -> None:
        """Close the connection (a later request reconnects)."""
        self._drop()

    def __enter__(self) -> RemoteDevice:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteDevice({self.address!r})"

    def _request(self, op: str, header: Mapping[str, Any] | None = None, arrays: Mapping[str, Any] | None = None,
                 *, restarted_ok: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Send one request and wait for its reply; raise the server's error, ``DeviceTimeout`` or (unless
        ``restarted_ok``) ``DeviceRestarted``."""
        self._request_id += 1
        socket = self._connect()
        socket.send_multipart(encode({"op": op, "id": self._request_id, **(header or {})}, arrays or {}),
                              copy=False)
        if not socket.poll(self.timeout * 1000, zmq.POLLIN):
            self._drop()  # a REQ socket waiting for a lost reply cannot send again: start a fresh one
            raise DeviceTimeout(f"{op} on {self!r}: no reply within {self.timeout:g} s")
        frames = socket.recv_multipart(copy=False)
        reply, arrays = decode([frame.buffer for frame in frames])
        boot, self._boot = self._boot, reply.get("boot")
        if not reply.get("ok"):
            kind, message = reply.get("kind"), f"{op} on {self!r}: {reply.get('error')}"
            raise {"ValueError": ValueError, "TypeError": TypeError}.get(kind, RemoteError)(message)
        if boot is not None and boot != self._boot and not restarted_ok:
            raise DeviceRestarted(f"{op} on {self!r}: the server restarted (boot {boot} -> {self._boot})")
        return reply, arrays

    # ------------------------------------------------------------------------------------------ protocol

    @property
    def n_calls(self) -> int:
        """The served device's measurements so far (asked from the server)."""
        return self._request("counters")[0]["n_calls"]

    @property
    def n_samples(self) -> int:
        """The served device's B · T samples so far (asked from the server)."""
        return self._request("counters")[0]["n_samples"]

    @property
    def n_units(self) -> int:
        """The served device's N states per step (told at connection)."""
        return self._info["n_units"]

    @property
    def n_inputs(self) -> int:
        """The served device's D input channels (told at connection)."""
        return self._info["n_inputs"]

    @property
    def trainable_fields(self) -> tuple[str, ...]:
        """The served device's writable input-side fields (told at connection)."""
        return tuple(self._info["trainable_fields"])

    def nominal_twin(self) -> Any:
        """The served device's nominal twin, sent once at connection."""
        return self._twin

    def measure(self, inputs: Any, input_side: Mapping[str, Any] | None = None) -> np.ndarray:
        """The served device's ``measure``; its ``ValueError``/``TypeError`` for bad arguments re-raised here.
        The states are a read-only view of the received buffer (no copy)."""
        header = {"input_side": input_side is not None}
        arrays = {"inputs": np.asarray(inputs), **prefixed(_host(input_side), "input_side")}
        return self._request("measure", header, arrays)[1]["states"]

    @property
    def adjoint(self) -> Any:
        """The served device's physical backward pass (``DeviceProtocol``'s ``adjoint``); an ``AttributeError``
        when it has none, so that ``hasattr(device, "adjoint")`` tells, as for a local device."""
        if not self._info["adjoint"]:
            raise AttributeError(f"{self!r}: the served device has no adjoint (physical backward pass)")
        return self._adjoint

    def _adjoint(self, inputs: Any, input_side: Mapping[str, Any] | None, cotangent: Any, *,
                 states: Any = None) -> dict[str, np.ndarray]:
        header = {"input_side": input_side is not None}
        arrays = {"inputs": np.asarray(inputs), "cotangent": np.asarray(cotangent),
                  **({} if states is None else {"states": np.asarray(states)}),
                  **prefixed(_host(input_side), "input_side")}
        return unprefixed(self._request("adjoint", header, arrays)[1], "gradients")

    @property
    def snapshot(self) -> Any:
        """The served device's ``snapshot``, returning its state as a tuple of arrays; an ``AttributeError`` when
        it cannot be replayed (``hasattr`` tells)."""
        if not self._info["replayable"]:
            raise AttributeError(f"{self!r}: the served device cannot be replayed (no snapshot)")
        return self._snapshot

    @property
    def restore(self) -> Any:
        """The served device's ``restore``, taking what ``snapshot()`` returned; an ``AttributeError`` when it
        cannot be replayed (``hasattr`` tells)."""
        if not self._info["replayable"]:
            raise AttributeError(f"{self!r}: the served device cannot be replayed (no restore)")
        return self._restore

    def _snapshot(self) -> tuple[np.ndarray, ...]:
        """The served device's snapshot as its flattened leaves (the server rebuilds the structure)."""
        _, arrays = self._request("snapshot")
        return tuple(arrays[f"leaf/{i}"].copy() for i in range(len(arrays)))

    def _restore(self, snapshot: Sequence[np.ndarray]) -> None:
        """Restore the served device; accepted from a device that restarted (that is what it is for)."""
        if not isinstance(snapshot, tuple | list):
            raise TypeError(f"snapshot must be the tuple RemoteDevice.snapshot() returned, "
                            f"got {type(snapshot).__name__}")
        self._request("restore", {}, {f"leaf/{i}": leaf for i, leaf in enumerate(snapshot)}, restarted_ok=True)

    def stats(self) -> dict[str, Any]:
        """The server's own tally: requests served by operation and errors answered (never reset by restore)."""
        return self._request("stats", restarted_ok=True)[0]["stats"]


def _host(tree: Mapping[str, Any] | None) -> dict[str, np.ndarray] | None:
    return None if tree is None else {name: np.asarray(value) for name, value in tree.items()}
