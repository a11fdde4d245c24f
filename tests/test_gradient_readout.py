"""Gradient-trained readouts: gradients against finite differences, the optax loop against closed-form ridge,
classification, early stopping, the Nesterov schedule, determinism and argument validation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from readout import LinearReadout, Ridge
from readout.gradient import apply_readout, fit_readout, linear_readout, mlp_readout, readout_loss
from readout.optimise import learning_rate_schedule, make_optimizer, train
from reservoir.core import DivergenceError

pytestmark = pytest.mark.x64  # float64 references and tolerances

F64 = jnp.float64


def regression(n, f=5, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)) + 0.5
    Y = X @ rng.normal(size=(f, 2)) + 0.3 + noise * rng.normal(size=(n, 2))
    return X, Y


def blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    labels = rng.integers(0, 3, n)
    return centres[labels] + 0.6 * rng.normal(size=(n, 2)), labels


def central_differences(f, params, h=1e-6):
    """(f(θ + h eᵢ) − f(θ − h eᵢ)) / 2h for every coordinate i, all at once with vmap."""
    flat, unravel = ravel_pytree(params)
    f_flat = jax.jit(jax.vmap(lambda v: f(unravel(v))))
    steps = h * np.eye(flat.size)
    return (np.asarray(f_flat(flat + steps)) - np.asarray(f_flat(flat - steps))) / (2 * h)


@pytest.mark.parametrize("hidden", [(), (6, 4)])
@pytest.mark.parametrize("loss", ["mse", "softmax_cross_entropy"])
def test_gradient_matches_central_differences(hidden, loss):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(7, 4))
    targets = rng.integers(0, 3, 7) if loss == "softmax_cross_entropy" else rng.normal(size=(7, 3))
    params = mlp_readout(4, hidden, 3, seed=2, dtype=F64)
    params = jax.tree_util.tree_map(lambda w: np.asarray(w) + 0.1, params)  # non-zero biases too
    f = lambda p: readout_loss(loss)(p, X, targets)
    grad = ravel_pytree(jax.jit(jax.grad(f))(params))[0]
    numeric = central_differences(f, params)
    assert np.linalg.norm(grad - numeric) <= 1e-6 * np.linalg.norm(grad)


def test_readout_shapes_and_determinism():
    params = mlp_readout(4, [5], 2, seed=0)
    assert [layer.W.shape for layer in params.layers] == [(4, 5), (5, 2)]
    assert apply_readout(params, np.ones((3, 7, 4))).shape == (3, 7, 2)
    assert apply_readout(linear_readout(4, 2, seed=0), np.ones(4)).shape == (2,)
    same = mlp_readout(4, [5], 2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(params),
                                                    jax.tree_util.tree_leaves(same), strict=True))
    assert not np.array_equal(linear_readout(4, 2, seed=1).W, params.layers[0].W[:, :2])


def test_linear_readout_reaches_ridge_test_error():
    X, Y = regression(400)
    X_test, Y_test = regression(1000, seed=1)
    ridge_mse = np.mean((Ridge(1e-6).fit(X, Y).predict(X_test) - Y_test) ** 2)
    result = fit_readout(X, Y, optimizer="nesterov", learning_rate=0.05, n_epochs=60, batch_size=40,
                         dtype=F64, progress=False)
    mse = np.mean((np.asarray(apply_readout(result.params, X_test)) - Y_test) ** 2)
    assert mse <= 1.05 * ridge_mse
    assert len(result.history["train"]) == 60 and result.history["validation"] == []


def test_l2_penalty_is_ridge_with_the_documented_alpha():
    X, Y = regression(60)
    l2 = 0.05
    ridge = Ridge(alpha=0.5 * l2 * 60 * 2).fit(X, Y)
    result = fit_readout(X, Y, l2=l2, optimizer="adam", learning_rate=0.05, n_epochs=1500, batch_size=60,
                         dtype=F64, progress=False)
    np.testing.assert_allclose(result.params.W, ridge.coef_, atol=1e-5)
    np.testing.assert_allclose(result.params.b, ridge.intercept_, atol=1e-5)


def test_cross_entropy_separates_three_classes():
    X, labels = blobs()
    X_test, labels_test = blobs(seed=1)
    result = fit_readout(X, labels, loss="softmax_cross_entropy", learning_rate=0.05, n_epochs=30,
                         progress=False)
    accuracy = np.mean(np.argmax(apply_readout(result.params, X_test), -1) == labels_test)
    assert accuracy > 0.9


def test_mlp_readout_trains():
    X, labels = blobs()
    result = fit_readout(X, labels, loss="softmax_cross_entropy", hidden_sizes=(8,), learning_rate=0.05,
                         n_epochs=20, progress=False)
    assert result.history["train"][-1] < 0.5 * result.history["train"][0]


def test_early_stopping_keeps_the_best_validation_epoch():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 30)), rng.normal(size=(40, 1))  # pure noise: the fit can only overfit
    X_val, Y_val = rng.normal(size=(50, 30)), rng.normal(size=(50, 1))
    result = fit_readout(X, Y, validation=(X_val, Y_val), learning_rate=0.02, n_epochs=200, patience=10,
                         batch_size=10, dtype=F64, progress=False)
    val = result.history["validation"]
    assert result.best_epoch == int(np.argmin(val))
    assert len(val) == len(result.history["train"]) == result.best_epoch + 11 < 200  # stopped by patience
    best_loss = float(np.mean((apply_readout(result.params, X_val) - Y_val) ** 2))
    assert best_loss == pytest.approx(val[result.best_epoch], rel=1e-12)


def test_validation_fraction_holds_out_the_last_samples():
    X, Y = regression(100)
    result = fit_readout(X, Y, validation_fraction=0.2, n_epochs=3, batch_size=80, progress=False)
    assert len(result.history["validation"]) == 3


def test_nesterov_learning_rate_decays_to_zero():
    schedule = learning_rate_schedule("nesterov", 0.1, 100)
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(50)) == pytest.approx(0.05)
    assert float(schedule(100)) == 0.0
    assert float(learning_rate_schedule("adam", 0.1, 100)(100)) == pytest.approx(0.1)
    # The optimiser's own state counts the updates that drive the schedule: after the run its step is zero.
    opt = make_optimizer("nesterov", 0.1, 3)
    params = {"w": jnp.ones(2)}
    state = opt.init(params)
    for _ in range(3):
        _, state = opt.update({"w": jnp.ones(2)}, state, params)
    zero_update, _ = opt.update({"w": jnp.ones(2)}, state, params)
    assert np.all(np.asarray(zero_update["w"]) == 0.0)


def test_same_seed_gives_identical_results():
    X, Y = regression(90)  # 90 = 2·32 + 26: the remainder batch is topped up, not dropped
    runs = [fit_readout(X, Y, hidden_sizes=(4,), n_epochs=5, seed=seed, progress=False) for seed in (3, 3, 4)]
    leaves = [jax.tree_util.tree_leaves(run.params) for run in runs]
    assert all(np.array_equal(a, b) for a, b in zip(leaves[0], leaves[1], strict=True))
    assert runs[0].history == runs[1].history
    assert runs[0].history != runs[2].history


def test_generic_pytree_params_and_custom_optimizer():
    X, Y = regression(64)

    def loss_fn(p, x, y):
        return jnp.mean((p["readout"](x) - y) ** 2)

    params = {"readout": LinearReadout(jnp.zeros((5, 2)), jnp.zeros(2))}  # a dict holding a dataclass pytree
    result = train(loss_fn, params, (X, Y), optimizer=optax.adam(0.05), n_epochs=100, batch_size=16,
                   progress=False)
    assert result.history["train"][-1] < 0.05


def test_divergence_names_epoch_and_step():
    X, Y = regression(64)
    with pytest.raises(DivergenceError, match=r"epoch \d+, step \d+"):
        fit_readout(X, 1e3 * Y, optimizer="sgd", learning_rate=10.0, n_epochs=50, progress=False)


@pytest.mark.parametrize(("options", "match"), [
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"learning_rate": -1e-3}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 65}, "batch_size"),
    ({"n_epochs": 0}, "n_epochs"),
    ({"l2": -1.0}, "l2"),
    ({"optimizer": "adamw"}, "optimizer"),
    ({"optimizer": 3}, "optimizer"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"patience": 5}, "patience"),
    ({"patience": 0, "validation_fraction": 0.1}, "patience"),
    ({"seed": -1}, "seed"),
])
def test_train_rejects_bad_arguments(options, match):
    X, Y = regression(64)
    with pytest.raises((ValueError, TypeError), match=match):
        train(readout_loss("mse"), linear_readout(5, 2, seed=0), (X, Y), progress=False, **options)


def test_train_rejects_bad_data():
    X, Y = regression(64)
    params = linear_readout(5, 2, seed=0)
    with pytest.raises(ValueError, match="data"):
        train(readout_loss("mse"), params, (X, Y[:-1]), progress=False)
    with pytest.raises(ValueError, match=r"data\[1\]"):
        train(readout_loss("mse"), params, (X, np.full_like(Y, np.nan)), progress=False)
    with pytest.raises(TypeError, match="data"):
        train(readout_loss("mse"), params, X, progress=False)
    with pytest.raises(ValueError, match="validation"):
        train(readout_loss("mse"), params, (X, Y), validation=(X,), progress=False)


def test_bad_readout_and_loss_arguments():
    with pytest.raises(ValueError, match="loss"):
        readout_loss("hinge")
    with pytest.raises(ValueError, match="loss"):
        fit_readout(np.ones((4, 2)), np.ones(4), loss="hinge")
    with pytest.raises(TypeError, match="targets"):
        fit_readout(np.ones((4, 2)), np.ones(4), loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match="n_features"):
        linear_readout(0, 2, seed=0)
    with pytest.raises(ValueError, match=r"hidden_sizes\[1\]"):
        mlp_readout(3, (4, 0), 2, seed=0)
    with pytest.raises(TypeError, match="hidden_sizes"):
        mlp_readout(3, 4, 2, seed=0)
    with pytest.raises(ValueError, match="activation"):
        mlp_readout(3, (4,), 2, seed=0, activation="swish")
    with pytest.raises(ValueError, match="features"):
        apply_readout(linear_readout(3, 2, seed=0), np.ones((5, 4)))


def test_early_stopping_keeps_the_start_when_training_never_beats_it():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    Y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(200, 1))
    ridge = Ridge(0.0).fit(X[:160], Y[:160])
    start = jax.tree_util.tree_map(jnp.asarray, ridge.readout_)
    loss = lambda p, x, y: jnp.mean((apply_readout(p, x) - y) ** 2)
    result = train(loss, start, (X, Y), learning_rate=5.0, optimizer="sgd", n_epochs=3, batch_size=20,
                   validation_fraction=0.2, progress=False)  # a step size far too large: every epoch is worse
    assert result.best_epoch == -1
    assert result.history["initial_validation"][0] < min(result.history["validation"])
    np.testing.assert_array_equal(result.params.W, start.W)


def test_train_calls_the_callback_after_every_epoch_with_the_current_parameters():
    from readout import train

    seen = []
    loss = lambda p, x, y: jnp.mean((x * p["w"] - y) ** 2)
    x = np.linspace(0, 1, 8)
    result = train(loss, {"w": jnp.zeros(())}, (x, 2 * x), learning_rate=0.1, n_epochs=3, batch_size=4,
                   progress=False, callback=lambda epoch, params: seen.append((epoch, float(params["w"]))))
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    assert seen[-1][1] == float(result.params["w"]) and 0 < seen[0][1] < seen[-1][1]
    with pytest.raises(TypeError, match="callback"):
        train(loss, {"w": jnp.zeros(())}, (x, 2 * x), callback=3)
