"""Command line: ``python -m experiments {--list | run NAME | NAME | plot DIR}``.

``run NAME [--quick | --full] [--seeds K] [--out DIR] [--scheduler {inprocess|local:K|tcp://HOST:PORT}]
[--fresh] [--tasks A,B] [--profiles A,B] [--methods A,B]``: a run killed part-way resumes when started again
with the same options (finished units are skipped); a run with other options in the same ``--out`` is refused
unless ``--fresh`` (which keeps the old one in ``previous-<time>/``).  ``--full`` and the selections are for
experiments that have a grid (``hil_vs_digital``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from pathlib import Path

from experiments import EXPERIMENTS
from experiments.results import ConfigError, RunConflict
from experiments.sweep import SchedulerRefused, parse_scheduler


def _module(name: str):
    return importlib.import_module(EXPERIMENTS[name])


def _scheduler(text: str) -> str | None:
    """argparse type: the scheduler string, checked before any work starts."""
    try:
        parse_scheduler(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _names(text: str) -> tuple[str, ...]:
    """argparse type: a comma-separated list (an empty list is kept, so the experiment can refuse it)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")  # headless
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in EXPERIMENTS:  # short form: python -m experiments NAME ...
        argv.insert(0, "run")
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="run an experiment and write its results, config and figures")
    run.add_argument("name", choices=sorted(EXPERIMENTS))
    run.add_argument("--quick", action="store_true", help="a small version that finishes in about a minute")
    run.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the experiment's)")
    run.add_argument("--out", type=Path, default=Path("results"), help="results directory (default: results)")
    run.add_argument("--scheduler", type=_scheduler, default=None, metavar="{inprocess|local:K|tcp://HOST:PORT}",
                     help="where the units run: this process (default), K local Dask worker processes, or an "
                          "existing Dask scheduler (needs: pip install -e .[distributed])")
    run.add_argument("--fresh", action="store_true",
                     help="start over: move an earlier run in DIR/NAME to previous-<time>/ instead of resuming it")
    run.add_argument("--full", action="store_true", help="the publication grid (experiments with a grid)")
    for name in ("tasks", "profiles", "methods"):
        run.add_argument(f"--{name}", type=_names, default=None, metavar="A,B",
                         help=f"comma-separated {name} to run instead of the grid's (experiments with a grid)")
    plot = commands.add_parser("plot", help="redraw the figures of a finished run from its results.csv")
    plot.add_argument("directory", type=Path, help="DIR/NAME of a finished run (or DIR holding one run)")
    args = parser.parse_args(argv)

    if args.list or args.command is None:
        for name in sorted(EXPERIMENTS):
            print(f"{name:24s} {_module(name).DESCRIPTION}")
        return 0
    if args.command == "run":
        if args.seeds is not None and args.seeds < 1:
            parser.error(f"--seeds must be a positive integer, got {args.seeds}")
        run_experiment = _module(args.name).run_experiment
        grid = {name: getattr(args, name) for name in ("full", "tasks", "profiles", "methods")
                if getattr(args, name) not in (None, False)}
        refused = sorted(set(grid) - set(inspect.signature(run_experiment).parameters))
        if refused:
            parser.error(f"{args.name} has no grid: --{', --'.join(refused)} not accepted")
        try:
            directory = run_experiment(out=args.out, quick=args.quick, seeds=args.seeds, scheduler=args.scheduler,
                                       fresh=args.fresh, **grid)
        except (RunConflict, SchedulerRefused, ConfigError) as exc:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 2
        print(f"results in {directory}")
        return 0
    directory = args.directory
    if not (directory / "config.json").exists():
        runs = [name for name in EXPERIMENTS if (directory / name / "config.json").exists()]
        if len(runs) != 1:
            parser.error(f"{directory} holds no finished run (no config.json)")
        directory = directory / runs[0]
    name = directory.name if directory.name in EXPERIMENTS else None
    if name is None:
        parser.error(f"cannot tell which experiment wrote {directory}: expected a folder named one of "
                     f"{sorted(EXPERIMENTS)}")
    for figure in _module(name).plot(directory):
        print(f"wrote {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
