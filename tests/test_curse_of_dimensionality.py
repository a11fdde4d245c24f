"""The curse-of-dimensionality experiment: the article's arithmetic, exact grid counts, the one-weight-at-a-time
gradient against jax.grad, and the quick run's files and cost ordering."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import curse_of_dimensionality as cod
from experiments.results import read_rows

pytestmark = pytest.mark.x64  # float64 references and tolerances


def test_the_articles_arithmetic():
    seconds = {p: cod.seconds_at(cod.grid_evaluations(p, 1000)) for p in (2, 4, 5)}
    assert seconds[2] == pytest.approx(1e-3, rel=1e-12)  # 1 ms
    assert round(seconds[4] / 60, 1) == 16.7  # about 16.7 minutes
    assert round(seconds[5] / 86400, 2) == 11.57  # about 11.6 days
    assert all(cod.search_seconds(p) == pytest.approx(s, rel=1e-12) for p, s in seconds.items())


def test_grid_search_evaluates_exactly_g_to_the_p_points():
    x, y, _ = cod.make_problem(3, seed=0)
    seen = []

    def losses(weights):
        seen.append(weights)
        return cod.loss_batch(weights, x, y)

    best, best_w, evaluations = cod.grid_search(losses, 3, 5, chunk=7)
    points = np.concatenate(seen)
    assert evaluations == 5 ** 3 == len(points) == len(np.unique(points, axis=0))
    assert set(np.unique(points)) == set(np.linspace(-cod.BOX, cod.BOX, 5))
    assert best == pytest.approx(cod.loss_batch(points, x, y).min()) == pytest.approx(
        cod.loss_batch(best_w[None], x, y)[0])
    found = cod.smallest_grid(lambda w: cod.loss_batch(w, x, y), 3, target=best, budget=10_000)
    assert found["reached_target"] and found["evaluations"] == found["values_per_weight"] ** 3


def _jax_loss(w, x, y):
    return 0.5 * jnp.mean((jax.nn.sigmoid(x @ w) - y[:, 0]) ** 2)


def test_one_weight_at_a_time_and_backprop_match_jax_grad():
    x, y, _ = cod.make_problem(6, seed=1)
    w = np.random.default_rng(0).uniform(-1, 1, 6)
    reference = np.asarray(jax.grad(_jax_loss)(w, x, y))
    cost, gradient, evaluations = cod.finite_difference_gradient(lambda v: cod.loss_batch(v, x, y), w)
    assert evaluations == 6 + 1
    assert cost == pytest.approx(float(_jax_loss(w, x, y)), rel=1e-12)
    assert np.max(np.abs(gradient - reference)) <= 1e-5 * np.max(np.abs(reference))
    cost, gradient = cod.loss_and_gradient(w, x, y)  # the primer's hand-written backprop
    np.testing.assert_allclose(gradient, reference, rtol=1e-10, atol=1e-14)


def test_descent_reaches_the_target_with_either_gradient():
    x, y, _ = cod.make_problem(4, seed=2)
    start, optimum = float(cod.loss_batch(np.zeros((1, 4)), x, y)[0]), cod.optimum_loss(x, y)
    target = cod.target_loss(start, optimum)
    assert optimum < target < start
    step = cod.safe_step(x)
    fd = cod.descend(lambda w: cod.finite_difference_gradient(lambda v: cod.loss_batch(v, x, y), w),
                     np.zeros(4), step, target)
    bp = cod.descend(lambda w: (*cod.loss_and_gradient(w, x, y), cod.GRADIENT_COST), np.zeros(4), step, target)
    assert fd["reached_target"] and bp["reached_target"] and fd["steps"] == bp["steps"]
    assert fd["evaluations"] == 5 * fd["steps"] and bp["evaluations"] == 3 * bp["steps"]


def test_other_schedulers_are_refused(tmp_path):
    with pytest.raises(ValueError, match="inprocess"):
        cod.run_experiment(tmp_path, quick=True, scheduler="local:2")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return cod.run_experiment(tmp_path_factory.mktemp("results"), quick=True)


def test_quick_run_writes_results_config_and_figure(quick_run):
    rows = read_rows(quick_run / "results.csv")
    for column in ("method", "n_weights", "seed", "metric", "value", "kind"):
        assert column in rows[0]
    assert {r["kind"] for r in rows} == {"measured", "extrapolated", "article"}
    config = json.loads((quick_run / "config.json").read_text())
    assert config["config"]["experiment"] == "curse_of_dimensionality" and config["config"]["seeds"] == [0]
    assert (quick_run / "curse_of_dimensionality.png").stat().st_size > 10_000
    (quick_run / "curse_of_dimensionality.png").unlink()
    assert cod.plot(quick_run) == [quick_run / "curse_of_dimensionality.png"]  # from results.csv alone
    assert (quick_run / "curse_of_dimensionality.png").exists()


def test_quick_run_cost_ordering(quick_run):
    """Where all three were measured (the largest P the grid reached): grid > one at a time > backprop."""
    rows = read_rows(quick_run / "results.csv")

    def measured(method, metric, p):
        return [r["value"] for r in rows if (r["method"], r["metric"], r["n_weights"], r["kind"])
                == (method, metric, p, "measured")]

    grid_sizes = sorted({r["n_weights"] for r in rows if r["method"] == "grid_search" and r["kind"] == "measured"})
    reached = [p for p in grid_sizes if all(measured("grid_search", "reached_target", p))]
    p = reached[-1]
    assert p >= 3
    grid, fd, bp = (np.median(measured(m, "evaluations", p)) for m in cod.METHODS)
    assert grid > fd > bp
    assert all(measured("finite_differences", "reached_target", p) + measured("backprop", "reached_target", p))
