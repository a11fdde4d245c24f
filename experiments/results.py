"""Results on disk: a tidy ``results.csv``, a ``config.json`` that is enough to rerun, and figures.

Files are written to a temporary name and renamed into place, so a crash never leaves half a file; a
previous run's files in the same directory are moved to ``previous-<time>/`` rather than overwritten.
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


def prepare_directory(out: str | Path, name: str) -> Path:
    """``out/name``, created; files of an earlier run there are moved to ``previous-<timestamp>/``."""
    directory = Path(out) / name
    directory.mkdir(parents=True, exist_ok=True)
    old = [p for p in directory.iterdir() if p.is_file()]
    if old:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        keep = directory / f"previous-{stamp}"
        keep.mkdir()
        for path in old:
            path.rename(keep / path.name)
    return directory


def atomic_write_text(path: Path, text: str) -> None:
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


def write_config(directory: Path, config: Mapping[str, Any]) -> None:
    atomic_write_text(directory / "config.json", json.dumps(run_metadata(config), indent=2, default=str) + "\n")


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
