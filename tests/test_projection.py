"""Training in one place: variable projection on any states function, one NMSE, MSE and pooling, and an honest
import order."""

import ast
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import experiments.metrics
import readout
import reservoir.trainable
from hardware_sim import wrap_device
from hardware_sim.training import train_on_device
from readout import Ridge, pool_states
from readout.features import time_average
from readout.losses import mean_squared_error, nmse
from readout.projection import ProjectedLoss, model_states, readout_view, train_projected
from reservoir import delay_reservoir, split_trainable

ROOT = Path(__file__).resolve().parent.parent
# Each package may import only the packages below it.
LAYERS = ("reservoir", "readout", "hardware_sim", "experiments")


def _hand_ridge(x, y, alpha):
    """Ridge with an unpenalised intercept and alpha per row, by the normal equations on centred data."""
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    xc, yc = x - x.mean(0), y - y.mean(0)
    W = np.linalg.solve(xc.T @ xc + alpha * len(x) * np.eye(x.shape[1]), xc.T @ yc)
    return W, y.mean(0) - x.mean(0) @ W


@pytest.mark.x64
def test_projected_loss_is_the_mse_of_the_batch_ridge_fit_written_by_hand():
    rng = np.random.default_rng(0)
    states, targets = rng.normal(size=(3, 12, 4)), rng.normal(size=(3, 12, 2))
    loss = ProjectedLoss(lambda side, inputs, context: side["x"], washout=2, pool=False, alpha=1e-2)
    W, b = _hand_ridge(states[:, 2:], targets[:, 2:], 1e-2)
    expected = np.mean((states[:, 2:] @ W + b - targets[:, 2:]) ** 2)
    assert float(loss({"input_side": {"x": jnp.asarray(states)}}, None, jnp.asarray(targets), None)) == \
        pytest.approx(expected, rel=1e-10)
    pooled = ProjectedLoss(lambda side, inputs, context: side["x"], washout=2, pool=True, alpha=1e-2)
    W, b = _hand_ridge(states[:, 2:].mean(1), targets[:, 0], 1e-2)
    expected = np.mean((states[:, 2:].mean(1) @ W + b - targets[:, 0]) ** 2)
    assert float(pooled({"input_side": {"x": jnp.asarray(states)}}, None, jnp.asarray(targets[:, 0]), None)) == \
        pytest.approx(expected, rel=1e-10)


@pytest.mark.x64
def test_train_projected_on_a_model_is_the_device_trainer_on_a_perfect_device_without_the_device():
    params = delay_reservoir(8, seed=0, model="sine", dtype=jnp.float64)
    rng = np.random.default_rng(1)
    u = rng.uniform(0, 0.5, (8, 30, 1))
    y = np.roll(u, 2, axis=1) ** 2
    names = ["mask", "input_gain"]
    options = dict(washout=4, alpha=1e-4, seed=3, n_epochs=3, batch_size=3, learning_rate=1e-2,
                   validation_fraction=0.25)
    start, _ = split_trainable(params, names)
    ours = train_projected(ProjectedLoss(model_states, 4, False, 1e-4), start, u, y,
                           states_of=lambda side: model_states(side, jnp.asarray(u), params), context=params,
                           progress=False, **options)
    device = train_on_device(wrap_device(params, seed=0), u, y, mode="digital", names=names, readout="ridge",
                             **options)
    for name in names:
        np.testing.assert_allclose(ours.params["input_side"][name], device.params["input_side"][name], rtol=1e-10)
    np.testing.assert_allclose(ours.params["readout"].W, device.params["readout"].W, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.history["validation"], device.history["validation"], rtol=1e-10)
    assert ours.best_epoch >= -1 and len(ours.history["validation"]) == 3
    # the final readout is the ridge fit of the whole training set's states at the returned input side
    states = np.asarray(model_states(ours.params["input_side"], jnp.asarray(u), params))
    W, b = _hand_ridge(states[:, 4:], y[:, 4:], 1e-4)
    np.testing.assert_allclose(ours.params["readout"].W, W, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(ours.params["readout"].b, b, rtol=1e-6, atol=1e-10)


def test_pooling_is_one_time_average():
    states = np.random.default_rng(2).normal(size=(3, 7, 4))
    by_hand = np.array([[sum(states[b, t, n] for t in range(2, 7)) / 5 for n in range(4)] for b in range(3)])
    np.testing.assert_allclose(time_average(states, 2), by_hand, rtol=1e-12)
    np.testing.assert_array_equal(pool_states(states, "mean"), time_average(states))
    x, y = readout_view(states, np.ones((3, 2)), 2, pool=True)
    np.testing.assert_array_equal(x, time_average(states, 2))
    assert y.shape == (3, 2)


def test_nmse_and_mse_are_each_defined_once_and_score_by_their_formulas():
    assert experiments.metrics.nmse is nmse
    assert reservoir.trainable.LOSSES["mse"] is mean_squared_error is readout.LOSSES["mse"]
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    ridge = Ridge(1e-3).fit(X[:40], Y[:40])
    prediction = ridge.predict(X[40:])
    by_hand = np.mean([np.mean((Y[40:, o] - prediction[:, o]) ** 2) / np.var(Y[40:, o]) for o in range(2)])
    assert ridge.score(X[40:], Y[40:]) == pytest.approx(by_hand, rel=1e-12)
    assert mean_squared_error(Y, 2 * Y) == pytest.approx(np.sum(Y**2) / Y.size, rel=1e-12)
    assert isinstance(mean_squared_error(Y, 2 * Y), np.floating)  # NumPy in, NumPy float64 out
    assert mean_squared_error(jnp.asarray(Y), 0.0).dtype == jnp.float32  # JAX in, JAX out


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, inside a function?) for every import of ``path``."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                found.append((child.module, in_function))
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return found


def test_packages_import_only_the_layers_below_them_and_never_inside_a_function():
    wrong = []
    for rank, package in enumerate(LAYERS):
        for path in sorted((ROOT / package).rglob("*.py")):
            for module, in_function in _imports(path):
                top = module.split(".")[0]
                if top in LAYERS[rank + 1:]:
                    wrong.append(f"{path.relative_to(ROOT)} imports {module} from a layer above")
                elif top in LAYERS and in_function and package != "experiments":
                    wrong.append(f"{path.relative_to(ROOT)} imports {module} inside a function")
    assert not wrong, "\n".join(wrong)
