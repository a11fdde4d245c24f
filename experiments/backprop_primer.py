"""The backprop primer: the four equations of backpropagation, written by hand and checked.

A tiny network, 2 inputs → 3 hidden → 1 output ("two sales people report to three managers, who report to a
CEO"), with sigmoid units and the quadratic cost C = ½ (a^L − y)².  With z^l = W^l a^(l−1) + b^l and
a^l = σ(z^l) (Nielsen, *Neural Networks and Deep Learning*, ch. 2):

    δ^L = ∇_a C ⊙ σ'(z^L)                       (BP1)
    δ^l = ((W^(l+1))ᵀ δ^(l+1)) ⊙ σ'(z^l)        (BP2)
    ∂C/∂b^l = δ^l                               (BP3)
    ∂C/∂W^l = δ^l (a^(l−1))ᵀ                    (BP4)

The hand-written NumPy gradient is checked against ``jax.grad`` (and, in the tests, central finite differences),
the network is trained by mini-batch SGD, and the cost of exhaustive search (1000 values per weight at 10⁹
evaluations/s) is printed next to the measured cost of one backprop gradient.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.results import open_run, pyplot, read_rows, save_figure, write_rows
from experiments.sweep import require_inprocess, run_sweep

DESCRIPTION = "backprop by hand (2-3-1 network) vs jax.grad, SGD training, and the cost of exhaustive search"
COLUMNS = ("task", "method", "metric", "value")
LAYER_SIZES = (2, 3, 1)
VALUES_PER_WEIGHT = 1000
EVALUATIONS_PER_SECOND = 1e9


def sigmoid(z):
    """σ(z) = 1 / (1 + e^(−z)), elementwise: the network's unit."""
    return 1.0 / (1.0 + np.exp(-z))


def init_params(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W^1 (3, 2), b^1 (3,)), (W^2 (1, 3), b^2 (1,))], Gaussian with variance 1/fan-in."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(n_out, n_in)) / np.sqrt(n_in), rng.normal(size=n_out) * 0.1)
            for n_in, n_out in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:], strict=True)]


def backprop(params, x: np.ndarray, y: np.ndarray):
    """Mean cost over a batch and its gradient by BP1–BP4, vectorised over the batch (columns = examples).

    x: (B, 2), y: (B, 1).  Returns (cost, [(∂C/∂W^l, ∂C/∂b^l) for each layer]).
    """
    activations, zs = [x.T], []
    for W, b in params:  # forward pass, keeping z^l and a^l for the backward pass
        zs.append(W @ activations[-1] + b[:, None])
        activations.append(sigmoid(zs[-1]))
    batch = x.shape[0]
    cost = 0.5 * np.mean(np.sum((activations[-1] - y.T) ** 2, axis=0))
    sigma_prime = lambda z: sigmoid(z) * (1 - sigmoid(z))
    delta = (activations[-1] - y.T) * sigma_prime(zs[-1])  # BP1, ∇_a C = a^L − y
    grads = [None] * len(params)
    for layer in range(len(params) - 1, -1, -1):
        grads[layer] = (delta @ activations[layer].T / batch, delta.mean(axis=1))  # BP4, BP3 (batch means)
        if layer:
            delta = (params[layer][0].T @ delta) * sigma_prime(zs[layer - 1])  # BP2
    return cost, grads


def jax_cost(params, x, y):
    """The mean quadratic cost C of ``backprop``, written for JAX: ``jax.grad`` of it is the independent check
    of the hand-written BP1–BP4 gradient."""
    a = x.T
    for W, b in params:
        a = jax.nn.sigmoid(W @ a + b[:, None])
    return 0.5 * jnp.mean(jnp.sum((a - y.T) ** 2, axis=0))


def task_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The CEO's decision: 'yes' when exactly one of the two sales reports is strong (a soft XOR)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 2))
    y = ((x[:, 0] > 0.5) ^ (x[:, 1] > 0.5)).astype(float)
    return x, y[:, None]


def sgd(params, x, y, *, learning_rate: float, batch_size: int, n_epochs: int, seed: int):
    """Plain mini-batch stochastic gradient descent with the hand-written gradient; returns the loss history."""
    rng = np.random.default_rng(seed)
    params = [(W.copy(), b.copy()) for W, b in params]
    history = []
    for _ in range(n_epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            _, grads = backprop(params, x[batch], y[batch])
            params = [(W - learning_rate * gW, b - learning_rate * gb) for (W, b), (gW, gb) in zip(params, grads,
                                                                                                   strict=True)]
        history.append(backprop(params, x, y)[0])
    return params, history


def search_seconds(n_weights: int) -> float:
    """Exhaustive grid search: VALUES_PER_WEIGHT ** n_weights evaluations at EVALUATIONS_PER_SECOND."""
    return VALUES_PER_WEIGHT ** n_weights / EVALUATIONS_PER_SECOND


def human(seconds: float) -> str:
    """A duration in the largest unit it reaches, from nanoseconds to years: ``human(90) == "1.5 min"``."""
    for unit, size in (("years", 3.156e7), ("days", 86400), ("min", 60), ("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def run_experiment(out: Path | str = "results", quick: bool = False, seeds: int | None = None,
                   scheduler: str | None = None, fresh: bool = False) -> Path:
    """Gradient check and SGD per seed, then the cost measurements; units run in this process (timings)."""
    require_inprocess(scheduler, "backprop_primer", "it times gradients, which must run in this process")
    jax.config.update("jax_enable_x64", True)
    n_seeds = seeds or (1 if quick else 3)
    n_epochs = 600 if quick else 2000
    directory = open_run(out, "backprop_primer",
                         {"experiment": "backprop_primer", "seeds": list(range(n_seeds)), "n_epochs": n_epochs,
                          "learning_rate": 2.0, "batch_size": 16, "layer_sizes": LAYER_SIZES}, fresh=fresh)
    units = [dict(part="seed", seed=seed, n_epochs=n_epochs) for seed in range(n_seeds)] + [dict(part="cost")]
    results = run_sweep(run_unit, units, directory, desc="backprop primer")
    rows = [row for unit_rows in results for row in unit_rows]
    write_rows(directory / "results.csv", rows, COLUMNS)
    print(summary(rows))
    plot(directory)
    return directory


def run_unit(unit: dict) -> list[dict]:
    """One seed's gradient check and SGD training, or (``part == "cost"``) the timing rows."""
    x, y = task_data(200, seed=0)
    if unit["part"] == "cost":
        return cost_rows(x, y)
    seed, rows = unit["seed"], []
    params = init_params(seed)
    # 1. The hand-written gradient against jax.grad (and, in the tests, central finite differences).
    _, grads = backprop(params, x, y)
    reference = jax.grad(jax_cost)([(jnp.asarray(W), jnp.asarray(b)) for W, b in params], x, y)
    mine, theirs = np.concatenate([g.ravel() for pair in grads for g in pair]), \
        np.concatenate([np.asarray(g).ravel() for pair in reference for g in pair])
    rows.append(dict(task="primer", method="hand_vs_jax_grad", seed=seed, metric="max_relative_error",
                     value=float(np.max(np.abs(mine - theirs)) / np.max(np.abs(theirs)))))
    # 2. Training by mini-batch SGD.
    _, history = sgd(params, x, y, learning_rate=2.0, batch_size=16, n_epochs=unit["n_epochs"], seed=seed)
    rows += [dict(task="primer", method="sgd", seed=seed, metric="loss", epoch=e + 1, value=v)
             for e, v in enumerate(history)]
    return rows


def cost_rows(x: np.ndarray, y: np.ndarray) -> list[dict]:
    """One measured backprop gradient vs one forward pass, and exhaustive search for P weights."""
    params = init_params(0)
    forward = _median_seconds(lambda: jax_cost_numpy(params, x, y))
    gradient = _median_seconds(lambda: backprop(params, x, y))
    n_weights = sum(W.size + b.size for W, b in params)
    cost = dict(task="cost", n_weights=n_weights)
    rows = [dict(cost, method="backprop", metric="seconds_per_gradient", value=gradient),
            dict(cost, method="forward", metric="seconds_per_evaluation", value=forward),
            dict(cost, method="one_weight_at_a_time", metric="evaluations_per_gradient", value=2 * n_weights)]
    return rows + [dict(task="cost", method="exhaustive_search", metric="seconds_at_1e9_per_s",
                        value=search_seconds(p), n_weights=p) for p in range(1, n_weights + 1)]


def jax_cost_numpy(params, x, y) -> float:
    """Forward pass only (the cost), in NumPy: the unit of 'one evaluation'."""
    a = x.T
    for W, b in params:
        a = sigmoid(W @ a + b[:, None])
    return 0.5 * float(np.mean(np.sum((a - y.T) ** 2, axis=0)))


def _median_seconds(function, repeats: int = 7, number: int = 200) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        times.append((time.perf_counter() - start) / number)
    return float(np.median(times))


def summary(rows) -> str:
    """The printed summary: the gradient check's largest relative error, the SGD cost before and after, the
    measured cost of one backprop gradient in forward passes, and exhaustive search's time per network size."""
    errors = [r["value"] for r in rows if r["metric"] == "max_relative_error"]
    final = [r["value"] for r in rows if r["metric"] == "loss" and r["epoch"] == max(
        q["epoch"] for q in rows if q["metric"] == "loss")]
    cost = {r["method"]: r for r in rows if r["task"] == "cost" and r["method"] != "exhaustive_search"}
    n_weights = cost["backprop"]["n_weights"]
    lines = [f"hand-written BP1-BP4 vs jax.grad: max relative error {max(errors):.2e}",
             f"SGD training: final cost {np.mean(final):.4f} (from {rows[1]['value']:.4f} after epoch 1)",
             f"one backprop gradient ({n_weights} weights): {cost['backprop']['value'] * 1e6:.1f} µs measured = "
             f"{cost['backprop']['value'] / cost['forward']['value']:.1f} forward passes; one weight at a time: "
             f"{2 * n_weights} forward passes",
             "exhaustive search, 1000 values per weight at 10^9 evaluations/s:"]
    for p in (2, 4, 5, n_weights):
        lines.append(f"  {p:2d} weights: {human(search_seconds(p))}")
    return "\n".join(lines)


def plot(directory: Path | str) -> list[Path]:
    """Redraw the figure from ``results.csv``: the SGD cost per epoch and seed, and exhaustive search's time
    against the number of weights beside one measured backprop gradient."""
    plt = pyplot()
    directory = Path(directory)
    rows = read_rows(directory / "results.csv")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for seed in sorted({r["seed"] for r in rows if r["metric"] == "loss"}):
        history = [(r["epoch"], r["value"]) for r in rows if r["metric"] == "loss" and r["seed"] == seed]
        left.plot(*zip(*history, strict=True), label=f"seed {seed}")
    left.set(xlabel="epoch", ylabel="cost C (whole data set)", yscale="log",
             title="2-3-1 network, mini-batch SGD, hand-written backprop")
    left.legend(fontsize=8)
    search = [(r["n_weights"], r["value"]) for r in rows if r["method"] == "exhaustive_search"]
    right.semilogy(*zip(*search, strict=True), "o-", label="exhaustive search (1000 values/weight)")
    gradient = next(r for r in rows if r["method"] == "backprop")
    right.axhline(gradient["value"], color="C2", label="one backprop gradient (measured)")
    landmarks = ((1e-3, "1 ms"), (1000, "16.7 min"), (1e6, "11.6 days"), (3.156e7 * 13.8e9, "age of the universe"))
    for seconds, text in landmarks:
        right.axhline(seconds, color="gray", lw=0.6, ls=":")
        right.text(1, seconds * 1.5, text, fontsize=7, color="gray")
    right.set(xlabel="number of weights P", ylabel="seconds at 10⁹ evaluations/s", title="Why not search?")
    right.legend(fontsize=8, loc="lower right")
    return [save_figure(fig, directory, "backprop_primer")]
