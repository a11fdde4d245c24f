"""One executor for every experiment's grid of units (configuration × seed), in-process or on Dask.

A *unit* is a JSON-serialisable dict of parameters; ``unit_fn(unit)`` returns its result rows (dicts).
``run_sweep`` runs the units that are not done yet and returns every unit's rows in the order of ``units``,
so the results do not depend on which executor ran them, nor in which order the units finished.

Crash safety: each finished unit is appended to ``DIRECTORY/units.jsonl`` as one line
``{"unit": ..., "rows": [...]}``, flushed and fsync'ed, before the next one is recorded.  A rerun reads the
log and skips the units found there, so a sweep killed at any point (``kill -9`` included) loses at most the
units that were running.  Only a torn *last* line (the write that was cut short) is repaired, with a warning;
anything else that does not parse is an error, never silently rewritten.

Rows go through JSON before they are returned, whether they were computed now or read back from the log:
a resumed sweep returns exactly what an uninterrupted one returns (floats round-trip exactly; NaN is kept).

Executors (``scheduler``): ``None``/``"inprocess"`` a loop in this process; ``"local:K"`` a Dask
``LocalCluster`` of K single-threaded worker processes on 127.0.0.1, started and closed here;
``"tcp://HOST:PORT"`` an existing Dask scheduler.  Dask is optional: ``pip install -e .[distributed]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

LOG_NAME = "units.jsonl"
SCHEDULER_FORMS = "None, 'inprocess', 'local:K' (K worker processes, K >= 1) or 'tcp://HOST:PORT'"
# A unit running on a worker that dies is rescheduled by Dask; after ALLOWED_FAILURES + 1 deaths the scheduler
# gives up on it (KilledWorker: a unit that kills every worker it runs on must not go on forever).  run_sweep
# then resubmits it up to RESUBMITS times, which also covers external clusters configured more strictly than
# the local clusters started here (whose setting is ALLOWED_FAILURES, Dask's default, whatever the config).
ALLOWED_FAILURES = 3
RESUBMITS = 2
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_TCP = re.compile(r"tcp://(\[[^\]\s]+\]|[^:/\s\[\]]+):(\d{1,5})")

UnitFn = Callable[[dict[str, Any]], list[dict[str, Any]]]


class UnitError(RuntimeError):
    """A unit's function raised; ``unit`` is the failing unit, the original exception is the ``__cause__``."""

    def __init__(self, message: str, unit: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.unit = dict(unit)


def parse_scheduler(scheduler: str | None) -> tuple[str, Any]:
    """``("inprocess", None)``, ``("local", K)`` or ``("tcp", address)``; a clear ValueError otherwise.

    Shared by ``run_sweep`` and the command line, so a typo fails before any work starts.
    """
    if scheduler is None or scheduler == "inprocess":
        return "inprocess", None
    if isinstance(scheduler, str):
        local = re.fullmatch(r"local:(\d+)", scheduler)
        if local and int(local.group(1)) >= 1:
            return "local", int(local.group(1))
        tcp = _TCP.fullmatch(scheduler)
        if tcp and 0 < int(tcp.group(2)) < 65536:
            return "tcp", scheduler
    raise ValueError(f"scheduler must be {SCHEDULER_FORMS}, got {scheduler!r}")


class SchedulerRefused(ValueError):
    """An experiment that must run in this process (timings) was given a Dask scheduler."""


def require_inprocess(scheduler: str | None, experiment: str, reason: str) -> None:
    """For experiments that must not run on Dask workers (e.g. timings): refuse any other scheduler early."""
    if parse_scheduler(scheduler)[0] != "inprocess":
        raise SchedulerRefused(f"scheduler must be None or 'inprocess' for {experiment} ({reason}), "
                               f"got {scheduler!r}")


def unit_key(unit: Mapping[str, Any]) -> str:
    """The unit's identity: its canonical JSON (keys sorted), the same in every process and every run."""
    return json.dumps(unit, sort_keys=True, allow_nan=True)


def run_sweep(unit_fn: UnitFn, units: Sequence[Mapping[str, Any]], directory: str | Path, *,
              scheduler: str | None = None, desc: str = "units") -> list[list[dict[str, Any]]]:
    """Run every unit not yet in ``directory/units.jsonl``; return all units' rows in the order of ``units``.

    ``unit_fn`` must be a module-level function (Dask workers import it by name).  Raises ValueError for
    duplicate or non-JSON units, for a log holding units of another sweep, for a corrupt log line other
    than the last, and for a bad ``scheduler``; ``UnitError`` (naming the unit) when a unit raises.
    """
    kind, value = parse_scheduler(scheduler)
    keys = _check_units(units)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _Log(directory / LOG_NAME) as log:
        _check_foreign(log, keys, directory)
        pending = [(key, json.loads(key)) for key in keys if key not in log.rows]
        if len(pending) < len(keys):
            tqdm.write(f"{desc}: resuming, {len(keys) - len(pending)} of {len(keys)} units already in {log.path}")
        with tqdm(total=len(keys), initial=len(keys) - len(pending), desc=desc) as bar:
            if pending and kind == "inprocess":
                _run_inprocess(unit_fn, pending, log, bar)
            elif pending:
                _run_dask(unit_fn, pending, log, bar, desc, kind, value, scheduler)
        return [log.rows[key] for key in keys]


def _check_units(units: Sequence[Mapping[str, Any]]) -> list[str]:
    keys, seen = [], {}
    for index, unit in enumerate(units):
        if not isinstance(unit, Mapping):
            raise ValueError(f"units[{index}] must be a dict of JSON-serialisable parameters, got "
                             f"{type(unit).__name__}: {unit!r}")
        try:
            key = unit_key(unit)
        except TypeError as exc:
            raise ValueError(f"units[{index}] must be JSON-serialisable (plain str/int/float/bool/None, lists "
                             f"and dicts), got {unit!r}: {exc}") from exc
        if key in seen:
            raise ValueError(f"units must be distinct, got units[{seen[key]}] == units[{index}] == {key}")
        seen[key] = index
        keys.append(key)
    return keys


def _check_foreign(log: _Log, keys: list[str], directory: Path) -> None:
    """Refuse a log written by a different sweep (different units): mixing them would corrupt both."""
    wanted = set(keys)
    foreign = [key for key in log.rows if key not in wanted]
    if foreign:
        raise ValueError(f"{log.path} holds {len(foreign)} unit(s) that are not in this sweep's units, e.g. "
                         f"{foreign[0]}: {directory} belongs to a different sweep (other parameters or code). "
                         f"Use another directory, or move {log.path} away to start this sweep afresh")


def _run_inprocess(unit_fn: UnitFn, pending: list[tuple[str, dict]], log: _Log, bar: tqdm) -> None:
    for key, unit in pending:
        try:
            rows = unit_fn(unit)
        except Exception as exc:
            raise UnitError(f"unit {key} failed: {type(exc).__name__}: {exc}", unit) from exc
        log.append(key, unit, rows)
        bar.update()


# --------------------------------------------------------------------------------------------------- Dask


def _run_dask(unit_fn: UnitFn, pending: list[tuple[str, dict]], log: _Log, bar: tqdm, desc: str, kind: str,
              value: Any, scheduler: str) -> None:
    """Submit every pending unit, record each as it completes; a unit whose worker died is resubmitted."""
    distributed = _import_distributed(scheduler)
    with _dask_client(distributed, kind, value, scheduler) as client:
        submitted = {}

        def submit(key: str, unit: dict, attempt: int):
            future = client.submit(unit_fn, unit, key=_task_key(unit_fn, key, attempt), pure=False)
            submitted[future] = (key, unit, attempt)
            return future

        queue = distributed.as_completed([submit(key, unit, 0) for key, unit in pending])
        for future in queue:
            key, unit, attempt = submitted.pop(future)
            if future.status == "finished":
                log.append(key, unit, future.result())
                bar.update()
                continue
            error = future.exception() if future.status == "error" else None
            if isinstance(error, distributed.KilledWorker) and attempt < RESUBMITS:
                tqdm.write(f"{desc}: unit {key} lost its worker too often ({error}); resubmitted")
                queue.add(submit(key, unit, attempt + 1))
                continue
            reason = f"{type(error).__name__}: {error}" if error else f"its task was {future.status}"
            raise UnitError(f"unit {key} failed on Dask ({scheduler}): {reason}", unit) from error


def _import_distributed(scheduler: str):
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"scheduler={scheduler!r} needs dask.distributed, an optional dependency: "
                          f"pip install -e .[distributed]  (or run with scheduler=None / --scheduler "
                          f"inprocess)") from exc
    return distributed


@contextlib.contextmanager
def _dask_client(distributed, kind: str, value: Any, scheduler: str) -> Iterator[Any]:
    """A Client on a LocalCluster we start (and always close) or on the existing scheduler at ``value``."""
    if kind == "local":
        with _local_cluster(distributed, value) as cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(value, timeout="20s")
    except OSError as exc:
        raise ConnectionError(f"scheduler={scheduler!r}: no Dask scheduler answered at {value}: {exc}") from exc
    with client:
        yield client


@contextlib.contextmanager
def _local_cluster(distributed, n_workers: int, allowed_failures: int = ALLOWED_FAILURES) -> Iterator[Any]:
    """K single-threaded Dask workers on loopback (no dashboard: its health routes on a free port, not 8787).

    Dask's nannies set OMP/MKL/OPENBLAS_NUM_THREADS=1 in the workers (and in this process's environment).
    They are left as they are here instead: BLAS results depend on the thread count (an ill-conditioned ridge
    solve shows it in the 4th digit), and a worker must compute exactly what this process computes.
    """
    import dask

    saved = dict(os.environ)
    unset = {f"distributed.nanny.pre-spawn-environ.{name}": None for name in THREAD_VARIABLES}
    try:
        with dask.config.set(unset):  # read when the nannies are created, kept for restarts
            cluster = distributed.LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, scheduler_kwargs={"allowed_failures": allowed_failures, "dashboard": False,
                                                          "dashboard_address": "127.0.0.1:0"})
        with cluster:
            yield cluster
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _task_key(unit_fn: UnitFn, key: str, attempt: int) -> str:
    """Deterministic Dask key: readable in the dashboard, unique per unit and per (re)submission."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return f"{getattr(unit_fn, '__name__', 'unit')}-{digest}-{attempt}"


# ------------------------------------------------------------------------------------------ checkpoint log


class _Log:
    """``units.jsonl``: read (repairing only a torn last line), locked against a second writer, appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def __enter__(self) -> _Log:
        self._handle = open(self.path, "ab")  # closed in __exit__
        try:
            _lock(self._handle, self.path)
            self._read()
        except BaseException:
            self._handle.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.close()

    def append(self, key: str, unit: dict[str, Any], rows: Any) -> None:
        """One line per finished unit, on disk (fsync) before the next; rows kept as JSON reads them back."""
        if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
            raise UnitError(f"unit {key} must return a list of dicts (rows), got {type(rows).__name__}", unit)
        try:
            line = json.dumps({"unit": unit, "rows": rows}, default=_plain, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise UnitError(f"unit {key} returned rows that cannot be written as JSON: {exc}", unit) from exc
        self._handle.write(line.encode() + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.rows[key] = json.loads(line)["rows"]

    def _read(self) -> None:
        *complete, tail = self.path.read_bytes().split(b"\n")  # tail: bytes after the last newline (torn)
        offset = 0
        for index, raw in enumerate(complete):
            record = _parse_record(raw)
            if record is None:
                if index == len(complete) - 1 and not tail:
                    self._truncate(offset, index + 1)
                    return
                raise ValueError(f"{self.path}, line {index + 1}: not a complete checkpoint record "
                                 f"({raw[:80]!r}). Only a torn last line is repaired automatically; move the "
                                 f"file away (or rerun with --fresh) to start the sweep again")
            self._add(record, index + 1)
            offset += len(raw) + 1
        if tail:
            self._truncate(offset, len(complete) + 1)

    def _add(self, record: dict[str, Any], number: int) -> None:
        key = unit_key(record["unit"])
        if key in self.rows and json.dumps(self.rows[key]) != json.dumps(record["rows"]):  # NaN == NaN
            raise ValueError(f"{self.path}, line {number}: unit {key} is recorded twice with different rows "
                             f"(two sweeps writing the same directory?)")
        self.rows.setdefault(key, record["rows"])

    def _truncate(self, offset: int, number: int) -> None:
        warnings.warn(f"{self.path}, line {number}: torn last line (a write interrupted by a crash) removed; "
                      f"that unit will run again", RuntimeWarning, stacklevel=5)
        os.ftruncate(self._handle.fileno(), offset)
        os.fsync(self._handle.fileno())


def _parse_record(raw: bytes) -> dict[str, Any] | None:
    """The record on one complete line, or None if it is not one."""
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = (isinstance(record, dict) and isinstance(record.get("unit"), dict)
          and isinstance(record.get("rows"), list) and all(isinstance(row, dict) for row in record["rows"]))
    return record if ok else None


def _lock(handle, path: Path) -> None:
    """An exclusive advisory lock for the sweep's lifetime (released by the OS even on kill -9)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the rest works
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise RuntimeError(f"{path} is locked: another sweep is running in {path.parent}; wait for it or use "
                           f"another directory") from exc


def _plain(value: Any) -> Any:
    """NumPy/JAX scalars and arrays as plain Python numbers and lists (exact: float32 widens to float64)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


# --------------------------------------------------------------------------------------------- example unit


def _example_unit(unit: dict[str, Any]) -> list[dict[str, Any]]:
    """A tiny, cheap, deterministic unit for tests and demonstrations (importable by Dask workers).

    ``unit``: ``seed`` (int), optional ``sleep`` (seconds, to make it last), ``record`` (a file each
    execution appends a line to: lets a test count how often units ran), ``fail`` (raise ValueError).
    Rows: three floats from a small NumPy computation seeded by ``seed``.
    """
    import numpy as np

    if unit.get("record"):
        with open(unit["record"], "a") as handle:
            handle.write(unit_key(unit) + "\n")
    if unit.get("fail"):
        raise ValueError(f"unit asked to fail: seed {unit['seed']}")
    time.sleep(unit.get("sleep", 0.0))
    rng = np.random.default_rng(unit["seed"])
    matrix = rng.normal(size=(12, 12)) / np.sqrt(12)
    state = np.tanh(matrix @ rng.normal(size=12))
    return [dict(seed=unit["seed"], metric="norm", value=float(np.linalg.norm(state))),
            dict(seed=unit["seed"], metric="mean", value=float(state.mean())),
            dict(seed=unit["seed"], metric="max_eig", value=float(np.max(np.abs(np.linalg.eigvals(matrix)))))]
