"""What a device in another process costs: round-trip overhead, transfer share, latency, throughput, waiting.

    python -m experiments.remote_latency [--repeats 30] [--out results/remote_latency.json]

Servers run as separate processes on localhost (``python -m hardware_sim.serve``), as a lab's would.
Measured, medians of ``repeats`` calls after a warm-up call:

1. A 100-node, 10⁴-sample measurement (inputs (1, 10⁴, 1) float32 up, states (1, 10⁴, 100) float32 = 4 MB
   down): the simulated device in-process (its own compute), the same device through ``RemoteDevice``, and the
   transport alone, twice: a server whose device returns a ready-made array of that shape (wire format,
   framing, dispatch; no physics) and a bare ZeroMQ REQ/REP echo of the same bytes (the transfer itself).
   The round-trip overhead is the ready-made device's round trip; the transfer's share = bare echo / it.
2. Per-call latency of a small measurement (N = 100, T = 100) and throughput (samples/s) of the large one.
3. A ``hil`` training step against the remote device: the fraction of its wall time spent waiting for the
   device (inside ``measure``), next to the same step in-process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]

NULL_SERVER = textwrap.dedent("""
    import sys
    import numpy as np
    from hardware_sim import delay_device
    from hardware_sim.serve import DeviceServer

    class ReadyMade:  # the protocol with a measurement that costs nothing: only the transport is left
        def __init__(self, n_units):
            self.twin = delay_device(n_units, seed=0).nominal_twin()
            self.n_calls = self.n_samples = 0
            self.n_units, self.n_inputs, self.trainable_fields = n_units, 1, ("mask",)
            self.states = {}
        def nominal_twin(self):
            return self.twin
        def measure(self, inputs, input_side=None):
            shape = (*inputs.shape[:-1], self.n_units)
            if shape not in self.states:
                self.states[shape] = np.zeros(shape, np.float32)
            return self.states[shape]

    server = DeviceServer(ReadyMade(int(sys.argv[1])), "tcp://127.0.0.1:0")
    print(server.address, flush=True)
    server.serve()
""")

ECHO_SERVER = textwrap.dedent("""
    import sys
    import zmq
    socket = zmq.Context().socket(zmq.REP)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    reply = bytes(int(sys.argv[1]))
    print(f"tcp://127.0.0.1:{port}", flush=True)
    while True:
        socket.recv_multipart(copy=False)
        socket.send(reply, copy=False)
""")


def interleaved_medians(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each call, timed in rounds (one call of each per round) so that a change in the
    machine's load hits every contender alike; one warm-up call each first (compilation, connection)."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            begin = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - begin)
    return {name: float(np.median(values)) for name, values in times.items()}


def start(command: list[str]) -> tuple[subprocess.Popen, str]:
    """A server subprocess and the address it prints (its last word)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().split()[-1]


class Timed:
    """A protocol wrapper adding up the wall time spent inside ``measure`` (waiting for the device)."""

    def __init__(self, device: Any):
        self.device, self.waiting = device, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.device, name)

    def measure(self, inputs: Any, input_side: Any = None) -> Any:
        """The wrapped device's ``measure``, its wall time added to ``waiting``."""
        begin = time.perf_counter()
        try:
            return self.device.measure(inputs, input_side)
        finally:
            self.waiting += time.perf_counter() - begin


def waiting_fraction(device: Any, n_epochs: int) -> dict[str, float]:
    """Train ``hil`` twice (the first compiles) and return the second run's seconds per step and the fraction
    of them spent inside ``measure``."""
    from hardware_sim import train_on_device

    u, y = np.random.default_rng(0).uniform(0, 0.5, (2, 8, 200, 1))
    options = {"mode": "hil", "washout": 20, "n_epochs": n_epochs, "batch_size": 4, "learning_rate": 1e-2}
    timed = Timed(device)
    train_on_device(timed, u, y, **options)
    timed.waiting = 0.0
    begin = time.perf_counter()
    train_on_device(timed, u, y, **options)
    total = time.perf_counter() - begin
    steps = 2 * n_epochs + 1  # updates, plus the initial readout's measurement
    return {"seconds_per_step": total / steps, "waiting_fraction": timed.waiting / total}


def run(repeats: int) -> dict[str, Any]:
    """Start the three servers, take the three measurements (medians of ``repeats`` interleaved calls) and
    stop the servers; the numbers as a JSON-ready dict."""
    from hardware_sim import delay_device
    from hardware_sim.remote import RemoteDevice

    n_units, big, small = 100, 10_000, 100
    u_big = np.random.default_rng(0).uniform(0, 0.5, (1, big, 1)).astype(np.float32)
    u_small = u_big[:, :small]
    results: dict[str, Any] = {"n_units": n_units, "big_samples": big, "small_samples": small,
                               "repeats": repeats}
    local = delay_device(n_units, seed=0)
    servers = []
    try:
        servers.append(start([sys.executable, "-m", "hardware_sim.serve", "--profile", "ideal", "--port", "0",
                              "--n-units", str(n_units)]))
        servers.append(start([sys.executable, "-c", NULL_SERVER, str(n_units)]))
        servers.append(start([sys.executable, "-c", ECHO_SERVER, str(4 * big * n_units)]))
        (_, device_address), (_, null_address), (_, echo_address) = servers
        remote, null = RemoteDevice(device_address, timeout=600), RemoteDevice(null_address, timeout=600)
        echo = zmq.Context.instance().socket(zmq.REQ)
        echo.connect(echo_address)
        payload = u_big.tobytes()

        def bare_round_trip():
            echo.send(payload, copy=False)
            echo.recv(copy=False)

        for size, u in (("big", u_big), ("small", u_small)):
            calls = {"in_process": lambda u=u: np.asarray(local.measure(u)),
                     "remote": lambda u=u: remote.measure(u), "ready_made": lambda u=u: null.measure(u)}
            if size == "big":
                calls["bare_zmq"] = bare_round_trip
            medians = interleaved_medians(calls, repeats)
            results.update({f"{name}_{size}_s": value for name, value in medians.items()})
        echo.close(linger=0)
        results["transfer_share_of_overhead"] = results["bare_zmq_big_s"] / results["ready_made_big_s"]
        results["remote_throughput_samples_per_s"] = big / results["remote_big_s"]
        results["in_process_throughput_samples_per_s"] = big / results["in_process_big_s"]
        results["hil_remote"] = waiting_fraction(remote, n_epochs=5)
        results["hil_in_process"] = waiting_fraction(delay_device(n_units, seed=0), n_epochs=5)
        remote.close()
        null.close()
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait()
    return results


def report(results: dict[str, Any]) -> str:
    """The numbers of ``run`` as printed lines: overhead and transfer share, latency, throughput, waiting."""
    ms = lambda key: f"{1e3 * results[key]:.2f} ms"
    lines = [
        f"{results['n_units']}-node measurement of {results['big_samples']} samples (medians of "
        f"{results['repeats']}, interleaved):",
        f"  round-trip overhead (a device that returns ready-made states: wire format, framing, dispatch, "
        f"transfer) {ms('ready_made_big_s')}, of which the transfer (bare ZeroMQ echo of the same bytes) "
        f"{ms('bare_zmq_big_s')} = {100 * results['transfer_share_of_overhead']:.0f} %",
        f"  the simulated device: in-process {ms('in_process_big_s')}, remote {ms('remote_big_s')} (its own "
        f"process); throughput remote {results['remote_throughput_samples_per_s']:.3g} samples/s, in-process "
        f"{results['in_process_throughput_samples_per_s']:.3g}",
        f"small measurement ({results['small_samples']} samples): overhead {ms('ready_made_small_s')}; "
        f"in-process {ms('in_process_small_s')}, remote {ms('remote_small_s')}",
    ]
    for where in ("remote", "in_process"):
        step = results[f"hil_{where}"]
        lines.append(f"hil step (N = 100, B = 4, T = 200) {where.replace('_', '-')}: "
                     f"{1e3 * step['seconds_per_step']:.1f} ms, {100 * step['waiting_fraction']:.0f} % of it "
                     f"waiting for the device")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: run, print the report, and write the numbers as JSON to ``--out`` if given."""
    parser = argparse.ArgumentParser(prog="python -m experiments.remote_latency", description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)
    results = run(args.repeats)
    print(report(results))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
