"""Experiments: tasks, metrics, and one module per experiment, run from the command line.

``python -m experiments --list`` lists them; ``python -m experiments run NAME [--quick] [--seeds K]
[--out DIR] [--scheduler inprocess|local:K|tcp://HOST:PORT] [--fresh]`` runs one (resuming an interrupted run
of the same configuration); ``python -m experiments plot DIR`` redraws a finished run's figures.
"""

# name -> module; each module has DESCRIPTION, run_experiment(out, quick, seeds, scheduler, fresh) and
# plot(directory).
EXPERIMENTS = {
    "backprop_primer": "experiments.backprop_primer",
    "benchmarks": "experiments.benchmarks",
    "curse_of_dimensionality": "experiments.curse_of_dimensionality",
    "device_physics": "experiments.device_physics",
    "embodied_learning": "experiments.embodied_learning",
    "hil_vs_digital": "experiments.hil_vs_digital",
    "speed": "experiments.speed",
}
