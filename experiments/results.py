"""Results on disk: a tidy ``results.csv``, a ``config.json`` that is enough to rerun, and figures.

Files are written to a temporary name and renamed into place, so a crash never leaves half a file.  A run
directory is never clobbered: ``open_run`` resumes a run of the same configuration (the sweep's checkpoint log
then skips the finished units), refuses a different configuration (``RunConflict``), and with ``fresh=True``
moves the earlier run to ``previous-<time>/`` rather than deleting it.
"""

from __future__ import annotations

import csv
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGES = ("jax", "jaxlib", "numpy", "scipy", "optax", "matplotlib", "scikit-learn", "reservoirpy")


class ConfigError(ValueError):
    """A run's configuration names something unknown or is empty: refused before anything is written."""


class RunConflict(ValueError):
    """``out/name`` holds a run of another configuration (or an unreadable one): resuming would mix them."""


def open_run(out: str | Path, name: str, config: Mapping[str, Any], *, fresh: bool = False) -> Path:
    """``out/name``, created, with ``config.json`` describing this run; the directory to write results in.

    Same configuration as the run already there: everything is kept (the experiment resumes) and the
    metadata rewritten.  A different one: ``RunConflict`` naming the differing keys.  ``fresh``: the earlier
    run's files go to ``previous-<timestamp>/`` (never deleted) and the run starts clean.
    """
    directory = Path(out) / name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    if fresh:
        _move_aside(directory)
    elif path.exists():
        stored = _stored_config(path)
        first_started = _check_same_config(directory, stored, config)
        write_config(directory, config, first_started=first_started)
        return directory
    else:
        _move_aside(directory)  # files without a config.json: no run to resume, keep them out of the way
    write_config(directory, config)
    return directory


def _move_aside(directory: Path) -> None:
    """Move everything of an earlier run (not earlier ``previous-*`` folders) to ``previous-<timestamp>/``."""
    old = [p for p in directory.iterdir() if not (p.is_dir() and p.name.startswith("previous-"))]
    if old:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        keep = directory / f"previous-{stamp}"
        keep.mkdir()
        for path in old:
            path.rename(keep / path.name)


def _stored_config(path: Path) -> dict[str, Any]:
    """The stored run metadata; a truncated or foreign file is an error, never silently replaced."""
    try:
        stored = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunConflict(f"{path} is not valid JSON ({exc}): truncated or edited? Repair it, or pass --fresh "
                          f"(moves that run to {path.parent}/previous-<timestamp>/) or another --out") from exc
    if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
        raise RunConflict(f"{path} has no \"config\" object, so it was not written by open_run: pass --fresh "
                          f"(moves it to {path.parent}/previous-<timestamp>/) or another --out")
    return stored


def _check_same_config(directory: Path, stored: dict[str, Any], config: Mapping[str, Any]) -> str | None:
    """Compare as JSON (tuples == lists, NaN == NaN); return when the run first started, or raise."""
    old, new = stored["config"], json.loads(_json(config))
    if _json(old) == _json(new):
        return stored.get("first_started", stored.get("started"))
    missing = _Absent()
    changes = [f"  {key}: {_short(old.get(key, missing))} (stored) -> {_short(new.get(key, missing))} (now)"
               for key in sorted(set(old) | set(new), key=str)
               if _json(old.get(key, missing)) != _json(new.get(key, missing))]
    raise RunConflict(f"{directory} holds a run with a different configuration:\n" + "\n".join(changes)
                      + f"\nPass --fresh to move that run to {directory}/previous-<timestamp>/ and start again, "
                        "or choose another --out")


class _Absent:
    """A key present in only one of the two configurations."""

    def __str__(self) -> str:
        return "<absent>"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _short(value: Any, limit: int = 200) -> str:
    text = str(value) if isinstance(value, _Absent) else _json(value)
    return text if len(text) <= limit else text[:limit] + "..."


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` all at once: to a temporary file beside it, then renamed over it, so that a
    crash leaves the old file or the new one, never half of one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_rows(path: Path, rows: Iterable[Mapping[str, Any]], first_columns: tuple[str, ...] = ()) -> None:
    """Write tidy rows (dicts) as CSV; columns are ``first_columns`` then any others in order of appearance."""
    rows = list(rows)
    columns = list(first_columns)
    for row in rows:
        columns += [key for key in row if key not in columns]
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results CSV, numbers converted back from text."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results file at {path}: run the experiment first")
    with path.open(newline="") as handle:
        return [{key: _parse(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _parse(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run_metadata(config: Mapping[str, Any]) -> dict[str, Any]:
    """Everything needed to rerun: the configuration, command line, versions, git commit, machine."""
    return {
        "config": dict(config),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
    }


def write_config(directory: Path, config: Mapping[str, Any], first_started: str | None = None) -> None:
    """``config.json``: ``run_metadata(config)``, plus when a resumed run first started."""
    metadata = run_metadata(config)
    if first_started and first_started != metadata["started"]:
        metadata["first_started"] = first_started
    atomic_write_text(directory / "config.json", json.dumps(metadata, indent=2, default=str) + "\n")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (imported lazily: runs that never plot don't pay for it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, directory: Path, name: str) -> Path:
    """Save ``name.png`` and ``name.pdf`` in ``directory``, close the figure, return the PNG's path."""
    for suffix in ("png", "pdf"):
        fig.savefig(directory / f"{name}.{suffix}", dpi=150, bbox_inches="tight")
    pyplot().close(fig)
    return directory / f"{name}.png"
