"""Resumable training (``readout.train(checkpoint=...)``): interrupted anywhere, the same call finishes with the
numbers of an uninterrupted run; checkpoints are atomic, checked and refused when they belong to another run."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import io_callback

from readout.gradient import fit_readout
from readout.optimise import host_function, train

X = np.random.default_rng(0).normal(size=(50, 4))
Y = X @ np.arange(4.0)[:, None] + 0.1 * np.random.default_rng(1).normal(size=(50, 1))
OPTIONS = {"learning_rate": 1e-2, "n_epochs": 6, "batch_size": 8, "progress": False}  # 7 updates an epoch


class Interrupt(Exception):
    pass


def same_leaves(a, b):
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(leaves_a) == len(leaves_b) and all(map(np.array_equal, leaves_a, leaves_b))


class Counter:
    """A resumable stand-in for a device: its state is a number the training advances."""

    def __init__(self):
        self.value = 0

    def snapshot(self):
        return self.value

    def restore(self, snapshot):
        self.value = snapshot


@pytest.mark.parametrize("stop_epoch, interval", [(0, 1), (3, 5), (5, 4)])
def test_interrupted_training_resumes_to_the_uninterrupted_result(tmp_path, stop_epoch, interval):
    validation = {"validation_fraction": 0.2, "patience": 10}
    reference = fit_readout(X, Y, **OPTIONS, **validation)
    path = tmp_path / "run.ckpt"

    def stop(epoch, params):
        if epoch == stop_epoch:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit_readout(X, Y, **OPTIONS, **validation, checkpoint=path, checkpoint_interval=interval, callback=stop)
    saved = pickle.loads(path.read_bytes())
    assert saved["step"] % interval == 0 and saved["step"] <= 6 * (stop_epoch + 1) and not saved["done"]
    resumed = fit_readout(X, Y, **OPTIONS, **validation, checkpoint=path, checkpoint_interval=interval)
    assert same_leaves(resumed.params, reference.params)
    assert resumed.history == reference.history and resumed.best_epoch == reference.best_epoch
    assert not list(tmp_path.glob(".run.ckpt.*")), "a temporary file was left behind"
    calls = []
    again = fit_readout(X, Y, **OPTIONS, **validation, checkpoint=path, callback=lambda *a: calls.append(a))
    assert same_leaves(again.params, reference.params) and calls == []  # finished: nothing runs


def test_a_failing_update_saves_the_state_before_it_and_the_resumable_with_it(tmp_path):
    counter, path, fail = Counter(), tmp_path / "run.ckpt", {"at": None}

    def count(value):
        counter.value += 1
        if counter.value == fail["at"]:
            raise Interrupt(f"device failed at query {counter.value}")
        return np.float32(0.0)

    def loss(params, x, y):
        queried = io_callback(host_function(count), jax.ShapeDtypeStruct((), jnp.float32),
                              jax.lax.stop_gradient(params["w"]))
        return jnp.mean((x @ params["w"] - y) ** 2) + queried

    start = {"w": jnp.zeros((4, 1))}
    reference = train(loss, start, (X, Y), **OPTIONS)
    assert counter.value == 42
    counter.value, fail["at"] = 0, 9
    with pytest.raises(Interrupt, match="device failed at query 9") as caught:  # the host error, as raised
        train(loss, start, (X, Y), **OPTIONS, checkpoint=path, checkpoint_interval=100, resumable=counter)
    assert "training state before update 8 (epoch 1, step 1) saved to" in caught.value.__notes__[0]
    assert pickle.loads(path.read_bytes())["resumable"] == 8
    fail["at"], counter.value = None, 1000
    resumed = train(loss, start, (X, Y), **OPTIONS, checkpoint=path, resumable=counter)
    assert same_leaves(resumed.params, reference.params) and resumed.history == reference.history
    assert counter.value == 42  # restored to 8, then 34 more queries


def test_checkpoints_of_another_training_or_another_format_are_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    fit_readout(X, Y, **OPTIONS, checkpoint=path)
    with pytest.raises(ValueError, match=r"different training \(learning_rate 0.01 there, 0.02 here\)"):
        fit_readout(X, Y, **{**OPTIONS, "learning_rate": 2e-2}, checkpoint=path)
    with pytest.raises(ValueError, match="different training .data"):
        fit_readout(X + 1, Y, **OPTIONS, checkpoint=path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="is not a training checkpoint"):
        fit_readout(X, Y, **OPTIONS, checkpoint=path)
    path.write_bytes(pickle.dumps({"signature": {"format": 0}}))
    with pytest.raises(ValueError, match="not a format-2 training checkpoint"):
        fit_readout(X, Y, **OPTIONS, checkpoint=path)


def test_checkpoint_options_are_checked():
    loss = lambda p, x, y: jnp.mean((x @ p - y) ** 2)
    with pytest.raises(ValueError, match="checkpoint_interval must be"):
        train(loss, jnp.zeros((4, 1)), (X, Y), checkpoint_interval=0)
    with pytest.raises(ValueError, match="resumable needs checkpoint"):
        train(loss, jnp.zeros((4, 1)), (X, Y), resumable=Counter())
    with pytest.raises(TypeError, match="resumable must have snapshot"):
        train(loss, jnp.zeros((4, 1)), (X, Y), checkpoint="x.ckpt", resumable=object())
    with pytest.raises(TypeError, match="checkpoint must be None or a file path"):
        train(loss, jnp.zeros((4, 1)), (X, Y), checkpoint=3)
