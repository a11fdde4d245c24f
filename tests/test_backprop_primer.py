"""The hand-written BP1-BP4 against central finite differences (independent of JAX) and the quick CLI run."""

import numpy as np

from experiments.backprop_primer import backprop, init_params, run_experiment, search_seconds, task_data
from experiments.results import read_rows


def test_hand_written_backprop_matches_finite_differences():
    params = init_params(4)
    x, y = task_data(30, seed=1)
    _, grads = backprop(params, x, y)
    h = 1e-6
    for layer, (W, b) in enumerate(params):
        for array, grad in ((W, grads[layer][0]), (b, grads[layer][1])):
            for index in np.ndindex(array.shape):
                saved = array[index]
                array[index] = saved + h
                plus = backprop(params, x, y)[0]
                array[index] = saved - h
                minus = backprop(params, x, y)[0]
                array[index] = saved
                assert abs((plus - minus) / (2 * h) - grad[index]) <= 1e-6 * max(abs(grad[index]), 1e-3)


def test_search_arithmetic_matches_the_article():
    assert search_seconds(2) == 1e-3
    assert search_seconds(4) / 60 == 1e12 / 1e9 / 60  # about 16.7 minutes
    assert round(search_seconds(5) / 86400, 1) == 11.6


def test_quick_primer_run(tmp_path):
    directory = run_experiment(tmp_path, quick=True)
    rows = read_rows(directory / "results.csv")
    error = next(r["value"] for r in rows if r["metric"] == "max_relative_error")
    assert error < 1e-10  # hand-written gradient == jax.grad
    losses = [r["value"] for r in rows if r["metric"] == "loss"]
    assert losses[-1] < 0.7 * losses[0]  # SGD makes progress (seed 0 leaves its plateau near epoch 400)
    assert (directory / "backprop_primer.png").exists()
