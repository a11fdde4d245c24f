"""The one optax training loop the whole project shares, its optimisers, early stopping and checkpoints.

``train(loss_fn, params, data)`` minimises any scalar ``loss_fn(params, *batch)`` over any pytree ``params``
with mini-batches and an optax optimiser.  The same loop trains a readout on stored states
(``readout.gradient.fit_readout``), the input side of a reservoir by backpropagation through time
(``reservoir.trainable.bptt_loss``), the input side with the readout solved inside the loss
(``readout.projection``) and, through a ``jax.custom_vjp`` loss, a device in the loop (``hardware_sim.training``
supplies the gradient sources): only ``loss_fn`` changes.

Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> x = np.linspace(-1, 1, 64)[:, None]; y = 3 * x
    >>> loss_fn = lambda w, x, y: jnp.mean((x * w - y) ** 2)  # least squares for the slope w
    >>> result = train(loss_fn, jnp.zeros(()), (x, y), optimizer="sgd", learning_rate=0.5, n_epochs=20,
    ...                progress=False)
    >>> round(float(result.params), 4)
    3.0
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import pickle
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from reservoir.core import DivergenceError, compute_dtype
from reservoir.validation import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Interval,
    check_array,
    check_choice,
    check_scalar,
)

FRACTION = Interval(0, 1, "left")  # [0, 1)
# The numeric options of ``train``, declared once (``fit_readout`` checks them before building its readout).
TRAIN_OPTIONS = {
    "learning_rate": POSITIVE,
    "n_epochs": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "l2": NON_NEGATIVE,
    "validation_fraction": FRACTION,
    "patience": POSITIVE_INT,  # or None
    "seed": SEED,
}


# ------------------------------------------------------------------------------------------- optimisers

OPTIMIZERS = ("adam", "sgd", "nesterov")


def learning_rate_schedule(optimizer: str, learning_rate: float, total_steps: int) -> optax.Schedule:
    """The learning rate at each update: constant, except for ``"nesterov"``, which decays linearly from
    ``learning_rate`` at step 0 to 0 at step ``total_steps`` (Hermans, Soriano, Dambre, Bienstman, Fischer,
    "Photonic delay systems as machine learning implementations", JMLR 16, 2081 (2015))."""
    check_choice("optimizer", optimizer, OPTIMIZERS)
    learning_rate = check_scalar("learning_rate", learning_rate, POSITIVE)
    total_steps = check_scalar("total_steps", total_steps, POSITIVE_INT)
    if optimizer == "nesterov":
        return optax.linear_schedule(learning_rate, 0.0, total_steps)
    return optax.constant_schedule(learning_rate)


def make_optimizer(optimizer: str | optax.GradientTransformation, learning_rate: float,
                   total_steps: int) -> optax.GradientTransformation:
    """``"adam"``, ``"sgd"`` (plain), ``"nesterov"`` (SGD, Nesterov momentum 0.9, linear decay to 0 over
    ``total_steps``), or an optax transformation returned unchanged (``learning_rate`` is then unused)."""
    if isinstance(_check_optimizer(optimizer), optax.GradientTransformation):
        return optimizer
    return _named_optimizer(optimizer, learning_rate, total_steps)


def _check_optimizer(optimizer: Any) -> str | optax.GradientTransformation:
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be one of {list(OPTIMIZERS)} or an optax.GradientTransformation, "
                        f"got {optimizer!r}")
    return check_choice("optimizer", optimizer, OPTIMIZERS)


@functools.lru_cache(maxsize=64)  # one object per configuration: train's compiled step is then reused
def _named_optimizer(optimizer: str, learning_rate: float, total_steps: int) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(optimizer, learning_rate, total_steps)
    if optimizer == "adam":
        return optax.adam(schedule)
    if optimizer == "sgd":
        return optax.sgd(schedule)
    return optax.sgd(schedule, momentum=0.9, nesterov=True)



# --------------------------------------------------------------------------------------- training loop


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """``params``: the best validation epoch's parameters (the last epoch's without validation);
    ``history``: ``{"train": [...], "validation": [...]}`` one float per epoch run (``validation`` empty
    without validation data), plus ``"initial_validation"``: [the starting parameters' validation loss];
    ``best_epoch``: 0-based index into the history of the returned parameters, −1 when the starting
    parameters were never beaten on the validation data."""

    params: Any
    history: dict[str, list[float]]
    best_epoch: int


def train(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    data: Sequence[Any],
    *,
    optimizer: str | optax.GradientTransformation = "adam",
    learning_rate: float = 1e-3,
    n_epochs: int = 100,
    batch_size: int = 32,
    l2: float = 0.0,
    validation: Sequence[Any] | None = None,
    validation_fraction: float = 0.0,
    patience: int | None = None,
    seed: int = 0,
    progress: bool = True,
    context: Any = None,
    callback: Callable[[int, Any], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_interval: int = 1,
    resumable: Resumable | None = None,
) -> TrainResult:
    """Minimise ``loss_fn(params, *batch)`` (or ``loss_fn(params, *batch, context)``) by mini-batch gradient
    descent with optax.

    Each epoch visits every sample once in the order of a permutation drawn from ``seed``.  When the number of
    samples ``S`` is not a multiple of ``batch_size``, the last batch is topped up with the first samples of the
    same permutation, so no sample is dropped and every batch has one shape (the jitted step compiles once);
    an epoch is ``ceil(S / batch_size)`` steps.

    Args:
        loss_fn: ``(params, *batch) -> scalar``, a mean over the batch's samples (validation losses are
            averaged over chunks of ``batch_size`` samples, weighted by their sizes).
        params: any pytree of float arrays: a ``LinearReadout``, a ``Readout``, a dict of reservoir input-side
            fields and a readout...
        data: a tuple of arrays sharing their leading (sample) axis, e.g. ``(features, targets)``.
        optimizer: ``"adam"``, ``"sgd"``, ``"nesterov"`` (see ``make_optimizer``) or an optax transformation.
        learning_rate: > 0 (ignored for a user-given optax transformation).
        n_epochs: maximum number of passes through ``data``.
        batch_size: samples per update, 1 ≤ batch_size ≤ S.
        l2: weight of the penalty ``0.5 · l2 · Σ w²`` added to the training loss, summed over every leaf of
            ``params`` with two or more dimensions (weight matrices, input masks; not biases or scalar gains).
            For a linear readout with the ``"mse"`` loss this is ridge regression with
            ``alpha = 0.5 · l2 · S · O`` (O outputs).  Histories report the loss without the penalty.
        validation: a tuple like ``data`` to monitor; or ``validation_fraction`` in [0, 1) holds out that
            fraction of ``data`` (its *last* samples, so a time-ordered split stays time-ordered).
        patience: stop after this many epochs without a lower validation loss (needs validation data).
        seed: seeds the batch permutations; same seed and inputs -> identical results.
        progress: show a tqdm bar over epochs with the current losses.
        context: a pytree of fixed arrays passed to ``loss_fn`` as its last argument, never trained.  The
            compiled step depends on ``loss_fn``'s identity and the shapes only, so a module-level ``loss_fn``
            with its constants (say, a twin's parameters) in ``context`` compiles once for many runs.
        callback: called as ``callback(epoch, params)`` after every epoch (e.g. to score the parameters on
            held-out data or a device); returning ``True`` ends training after that epoch (a budget), any other
            return value is ignored.
        checkpoint: a file path: the training state (parameters, optimiser state, step, the data-order RNG
            state at the start of the epoch, this epoch's losses, history, best parameters and ``resumable``'s
            snapshot) is written there atomically before every ``checkpoint_interval``-th update, before an
            update that raises (a device that gave up, Ctrl-C: the state before that update, then the error
            is re-raised) and when training ends.  When the file exists, the same call resumes from it; the
            result is bit-identical to an uninterrupted run when ``resumable`` replays (a simulated device).
            A checkpoint written by a different training (data, options) is refused.  Checkpoints are pickles:
            load only your own.
        checkpoint_interval: K, updates between periodic checkpoints (a crash repeats at most K updates).
        resumable: an object with ``snapshot()`` and ``restore(snapshot)`` whose state is saved with every
            checkpoint and restored on resume (a device's key stream and counters); needs ``checkpoint``.
        params may also be a zero-argument function returning them, called only when no checkpoint is resumed
        (an initial readout fitted on device measurements is then not measured again).

    Returns:
        ``TrainResult``; with validation data its ``params`` are those of the epoch with the lowest
        validation loss.

    Raises:
        DivergenceError: the training loss (or the validation loss, or a parameter) became NaN or infinite;
            the message names the epoch and step.
    """
    learning_rate, n_epochs, batch_size, l2, validation_fraction, patience, seed = check_train_options(
        optimizer, learning_rate=learning_rate, n_epochs=n_epochs, batch_size=batch_size, l2=l2,
        validation_fraction=validation_fraction, patience=patience, seed=seed).values()
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be None or a callable (epoch, params), got {callback!r}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable (params, *batch) -> scalar, got {loss_fn!r}")
    checkpoint_interval = check_scalar("checkpoint_interval", checkpoint_interval, POSITIVE_INT)
    if checkpoint is not None and not isinstance(checkpoint, str | os.PathLike):
        raise TypeError(f"checkpoint must be None or a file path, got {type(checkpoint).__name__}")
    if resumable is not None:
        if checkpoint is None:
            raise ValueError("resumable needs checkpoint: give the file path its snapshots are saved to")
        if not all(callable(getattr(resumable, name, None)) for name in ("snapshot", "restore")):
            raise TypeError(f"resumable must have snapshot() and restore(snapshot) methods, "
                            f"got {type(resumable).__name__}")
    saved = _read_checkpoint(checkpoint) if checkpoint is not None else None
    if saved is None:
        # A function is a pytree leaf; a callable pytree of arrays (a LinearReadout) is the parameters themselves.
        lazy = callable(params) and jax.tree_util.all_leaves([params])
        params = params() if lazy else params
        _check_params(params)
    data = _check_data("data", data)
    if validation is not None:
        if validation_fraction:
            raise ValueError(f"give validation or validation_fraction, not both "
                             f"(got validation_fraction={validation_fraction})")
        validation = _check_data("validation", validation)
        if len(validation) != len(data):
            raise ValueError(f"validation must hold {len(data)} arrays like data, got {len(validation)}")
    elif validation_fraction:
        n_held = max(1, round(validation_fraction * len(data[0])))
        if n_held >= len(data[0]):
            raise ValueError(f"validation_fraction={validation_fraction} leaves no training samples "
                             f"out of {len(data[0])}")
        validation = tuple(array[-n_held:] for array in data)
        data = tuple(array[:-n_held] for array in data)
    if patience is not None and validation is None:
        raise ValueError(f"patience={patience} needs validation data: give validation or validation_fraction")
    n_samples = len(data[0])
    if batch_size > n_samples:
        raise ValueError(f"batch_size must be at most the {n_samples} training samples, got {batch_size}")
    steps_per_epoch = math.ceil(n_samples / batch_size)
    transform = make_optimizer(optimizer, learning_rate, n_epochs * steps_per_epoch)

    step = partial(_train_step, loss_fn=loss_fn, transform=transform, l2=l2)
    evaluate = partial(_evaluate, loss_fn=loss_fn)  # static arguments: one compilation, kept across runs
    rng = np.random.default_rng(seed)
    signature = _signature(data, validation, optimizer, learning_rate, n_epochs, batch_size, l2, patience, seed)
    if saved is not None:
        if saved["signature"] != signature:
            raise ValueError(f"checkpoint {os.fspath(checkpoint)!r} was written by a different training "
                             f"({_signature_difference(saved['signature'], signature)}); delete it or pass "
                             f"another path")
        state = _device_tree(saved["state"])
        params, opt_state, history = state["params"], state["opt_state"], saved["history"]
        best_params, best_epoch, best_loss = state["best_params"], saved["best_epoch"], saved["best_loss"]
        first_epoch, first_index, losses = saved["epoch"], saved["index"], list(saved["losses"])
        rng.bit_generator.state = saved["epoch_rng"]
        if resumable is not None:
            resumable.restore(saved["resumable"])
        if saved["done"]:
            return TrainResult(best_params, history, best_epoch)
    else:
        opt_state = transform.init(params)
        history: dict[str, list[float]] = {"train": [], "validation": []}
        best_params, best_epoch, best_loss = params, 0, math.inf
        first_epoch, first_index, losses = 0, 0, []
        if validation is not None:
            # The starting point competes too: training that never beats it (e.g. a ridge readout) returns it.
            best_loss = _mean_loss(evaluate, params, validation, batch_size, context)
            history["initial_validation"] = [best_loss]
            best_epoch = -1

    def training_state(epoch: int, index: int, epoch_rng: dict, done: bool = False) -> dict[str, Any]:
        """What resumes training before update ``index`` of ``epoch`` (the data order redrawn from
        ``epoch_rng``)."""
        return {"signature": signature, "done": done, "epoch": epoch, "index": index, "epoch_rng": epoch_rng,
                "step": epoch * steps_per_epoch + index, "losses": list(losses),
                "history": {name: list(values) for name, values in history.items()},
                "best_epoch": best_epoch, "best_loss": best_loss,
                "state": {"params": params, "opt_state": opt_state, "best_params": best_params},
                "resumable": None if resumable is None else resumable.snapshot()}

    bar = tqdm(range(first_epoch, n_epochs), desc="train", unit="epoch", disable=not progress)
    epoch_rng, before = rng.bit_generator.state, None
    for epoch in bar:
        epoch_rng = rng.bit_generator.state
        order = rng.permutation(n_samples)
        order = np.concatenate([order, order[: steps_per_epoch * batch_size - n_samples]])
        if epoch > first_epoch:
            first_index, losses = 0, []
        for index, batch_indices in enumerate(order.reshape(steps_per_epoch, batch_size)):
            if index < first_index:
                continue  # done before the checkpoint this run resumed from
            try:
                if checkpoint is not None:
                    before = training_state(epoch, index, epoch_rng)  # (a device snapshot may fail too)
                    if (epoch * steps_per_epoch + index) % checkpoint_interval == 0:
                        _write_checkpoint(checkpoint, before)
                params, opt_state, batch_loss = step(params, opt_state, tuple(a[batch_indices] for a in data),
                                                     context)
                losses.append(float(batch_loss))
            except BaseException as error:
                error = host_error(error)
                if before is not None:  # this update's starting state, or (if taking it failed) the last one's
                    _write_checkpoint(checkpoint, before)
                    error.add_note(f"training state before update {before['step']} (epoch {before['epoch']}, "
                                   f"step {before['index']}) saved to {os.fspath(checkpoint)!r}: the same call "
                                   f"resumes from it")
                raise error
            if not math.isfinite(losses[-1]):
                raise DivergenceError(
                    f"training loss became {losses[-1]} at epoch {epoch}, step {index} (update "
                    f"{epoch * steps_per_epoch + index}); lower learning_rate (={learning_rate}) or check the data"
                )
        history["train"].append(float(np.mean(losses)))
        stop = callback is not None and callback(epoch, params) is True
        postfix = {"loss": f"{history['train'][-1]:.4g}"}
        if validation is None:
            if not _all_finite(params):
                raise DivergenceError(f"parameters became NaN or infinite at epoch {epoch}, "
                                      f"step {steps_per_epoch - 1}; lower learning_rate (={learning_rate})")
            best_params, best_epoch = params, epoch
        else:
            val_loss = _mean_loss(evaluate, params, validation, batch_size, context)
            history["validation"].append(val_loss)
            postfix["val"] = f"{val_loss:.4g}"
            if not math.isfinite(val_loss):
                raise DivergenceError(f"validation loss became {val_loss} after epoch {epoch}, "
                                      f"step {steps_per_epoch - 1}; lower learning_rate (={learning_rate})")
            if val_loss < best_loss:
                best_params, best_epoch, best_loss = params, epoch, val_loss
        bar.set_postfix(postfix)
        if stop or (patience is not None and epoch - best_epoch >= patience):
            break
    bar.close()
    if checkpoint is not None:  # the same call again returns this result without running a step
        _write_checkpoint(checkpoint, training_state(epoch, steps_per_epoch, epoch_rng, done=True))
    return TrainResult(best_params, history, best_epoch)



# ------------------------------------------------------------------------------------ checkpoints

CHECKPOINT_FORMAT = 2  # 2: linear readouts are LinearReadout pytrees (were Dense layers and {"W", "b"} dicts)


class Resumable(Protocol):
    """State outside the optimiser that a resumed training must restore (a device's key stream, counters)."""

    def snapshot(self) -> Any:
        """That state, saved with each checkpoint."""

    def restore(self, snapshot: Any) -> None:
        """Put back a state ``snapshot`` returned, when a training resumes from its checkpoint."""


# Exceptions raised by host code that compiled steps call (``io_callback``: a device query) reach the caller
# as a generic ``JaxRuntimeError``; ``host_function`` records the original so ``train`` re-raises it whole
# (its type and message naming the device and the failure).
_HOST_ERRORS: list[BaseException] = []


def host_function(function: Callable) -> Callable:
    """``function`` for ``io_callback`` whose exceptions ``train`` re-raises as they were raised."""

    @functools.wraps(function)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except BaseException as error:
            _HOST_ERRORS.append(error)
            raise

    return recorded


def host_error(error: BaseException) -> BaseException:
    """The host exception behind ``error`` (a JAX runtime error from a failed callback), else ``error``."""
    original = _HOST_ERRORS[-1] if _HOST_ERRORS and isinstance(error, jax.errors.JaxRuntimeError) else error
    _HOST_ERRORS.clear()
    return original


def _host_tree(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.array, tree)


def _device_tree(tree: Any) -> Any:
    return jax.tree_util.tree_map(jnp.asarray, tree)


def _signature(data: tuple[np.ndarray, ...], validation: Any, optimizer: Any, *options: Any) -> dict[str, Any]:
    """What a checkpoint must match to be resumed by this call: the data (SHA-256 of every array), the
    options, the optimiser (its name, or its type for a custom optax transformation)."""
    digest = hashlib.sha256()
    for array in (*data, *(validation or ())):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    names = ("learning_rate", "n_epochs", "batch_size", "l2", "patience", "seed")
    return {"format": CHECKPOINT_FORMAT, "data": digest.hexdigest(),
            "optimizer": optimizer if isinstance(optimizer, str) else type(optimizer).__name__,
            **dict(zip(names, options, strict=True))}


def _signature_difference(saved: dict[str, Any], current: dict[str, Any]) -> str:
    return ", ".join(f"{name} {saved.get(name)!r} there, {current.get(name)!r} here"
                     for name in current if saved.get(name) != current.get(name))


def _write_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same directory, flushed and fsynced,
    then renamed over ``path`` (a crash leaves the old checkpoint or the new one, never half of one)."""
    path, state = Path(path), dict(state, state=_host_tree(state["state"]))  # NumPy: no device buffers
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            pickle.dump(state, file, protocol=pickle.HIGHEST_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def _read_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none yet."""
    try:
        with open(path, "rb") as file:
            state = pickle.load(file)
    except FileNotFoundError:
        return None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as error:
        raise ValueError(f"checkpoint {os.fspath(path)!r} is not a training checkpoint: {error}") from error
    if not isinstance(state, dict) or state.get("signature", {}).get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {os.fspath(path)!r} is not a format-{CHECKPOINT_FORMAT} training checkpoint")
    return state


@partial(jax.jit, static_argnames=("loss_fn", "transform", "l2"))
def _train_step(params: Any, opt_state: Any, batch: tuple[jax.Array, ...], context: Any, *, loss_fn: Callable,
                transform: optax.GradientTransformation, l2: float) -> tuple[Any, Any, jax.Array]:
    """One optax update; compiled once per (loss_fn, transform, l2) and batch shape, reused across runs."""

    def objective(p):
        data_loss = _loss(loss_fn, p, batch, context)
        if not l2:
            return data_loss, data_loss
        penalty = sum(jnp.sum(w**2) for w in jax.tree_util.tree_leaves(p) if jnp.ndim(w) >= 2)
        return data_loss + 0.5 * l2 * penalty, data_loss

    (_, data_loss), grads = jax.value_and_grad(objective, has_aux=True)(params)
    updates, opt_state = transform.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, data_loss


@partial(jax.jit, static_argnames=("loss_fn",))
def _evaluate(params: Any, batch: tuple[jax.Array, ...], context: Any, *, loss_fn: Callable) -> jax.Array:
    return _loss(loss_fn, params, batch, context)


def _loss(loss_fn: Callable, params: Any, batch: tuple[jax.Array, ...], context: Any) -> jax.Array:
    loss = loss_fn(params, *batch) if context is None else loss_fn(params, *batch, context)
    # Checked while tracing (shape and dtype are static): no cost per step.
    if jnp.ndim(loss) != 0 or not jnp.issubdtype(jnp.result_type(loss), jnp.floating):
        raise TypeError(f"loss_fn must return a real scalar, got shape {jnp.shape(loss)} and dtype "
                        f"{jnp.result_type(loss)}")
    return loss



def check_train_options(optimizer: Any = "adam", **options: Any) -> dict[str, Any]:
    """``optimizer`` and the numeric options of ``TRAIN_OPTIONS`` given, checked (returned in the order given;
    other options are passed through)."""
    _check_optimizer(optimizer)
    return {name: value if name not in TRAIN_OPTIONS or (name == "patience" and value is None)
            else check_scalar(name, value, TRAIN_OPTIONS[name]) for name, value in options.items()}


def _check_params(params: Any) -> None:
    """Every leaf of the trained pytree a finite floating-point array (what ``jax.grad`` differentiates)."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if not leaves:
        raise ValueError(f"params must hold at least one array to train, got {params!r}")
    for path, leaf in leaves:
        name = f"params{jax.tree_util.keystr(path)}"
        leaf = check_array(name, leaf, tuple(range(33)))
        if not np.issubdtype(leaf.dtype, np.floating):
            raise TypeError(f"{name} must be a floating-point array (jax.grad differentiates it), "
                            f"got dtype {leaf.dtype}")


def _check_data(name: str, data: Any) -> tuple[np.ndarray, ...]:
    """A non-empty tuple of finite numeric arrays with one shared leading length, as NumPy (host) arrays;
    floating-point arrays cast to the dtype JAX computes in (float32 unless x64 is enabled)."""
    if not isinstance(data, tuple | list) or not data:
        raise TypeError(f"{name} must be a non-empty tuple of arrays, got {type(data).__name__}")
    arrays = tuple(as_jax_ready(f"{name}[{i}]", array) for i, array in enumerate(data))
    lengths = [len(array) for array in arrays]
    if len(set(lengths)) > 1:
        raise ValueError(f"{name} arrays must share their leading (sample) length, got lengths {lengths}")
    if lengths[0] == 0:
        raise ValueError(f"{name} must hold at least one sample, got 0")
    return arrays


def as_jax_ready(name: str, array: Any, ndims: tuple[int, ...] = tuple(range(1, 33))) -> np.ndarray:
    """A finite, non-empty numeric array; floating point cast to the dtype JAX computes in (float32 unless x64
    is enabled), refusing values that would overflow it."""
    array = check_array(name, array, ndims, nonempty=True)
    if np.issubdtype(array.dtype, np.floating) and compute_dtype(array.dtype) != array.dtype:
        array = check_array(name, array, array.ndim, dtype=compute_dtype(array.dtype))
    return array


def _mean_loss(evaluate: Callable, params: Any, data: tuple[np.ndarray, ...], batch_size: int,
               context: Any) -> float:
    n_samples = len(data[0])
    total = sum(float(evaluate(params, tuple(a[start:start + batch_size] for a in data), context))
                * min(batch_size, n_samples - start) for start in range(0, n_samples, batch_size))
    return total / n_samples


def _all_finite(params: Any) -> bool:
    return all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(params))

