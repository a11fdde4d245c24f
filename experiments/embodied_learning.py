"""Hermans et al. (PRL 117, 128301, 2016) in simulation: "Full" (input mask and readout trained by backprop
through time) against "Reservoir" (random mask, ridge readout), on the same opto-electronic delay reservoir.

Tasks: NARMA10, the variable-delay memory task (``tasks.variable_delay``, our definition of a VARDEL5-like task)
and the scikit-learn 8×8 digits read row by row.  Protocol, per task and seed:

* **Reservoir** — a sine delay reservoir (Paquot 2012) with a random mask.  Its input and feedback gains and the
  ridge alpha are chosen on a validation split carved from the training data (the baseline gets its best shot);
  the readout is ridge regression on the states.
* **Full** — starts from that same reservoir and readout; the mask, bias mask, input gain, feedback gain, phase
  and the readout are trained jointly by BPTT (``reservoir.bptt_loss`` / ``jax.grad`` through ``lax.scan``) with
  Adam, early-stopped on the validation split.  ``full`` is the jointly trained system as it stands;
  ``full+ridge`` re-solves its readout in closed form on the training data (the JMLR 2015 practice).
* **Full, projected** (``full_projected``) — the same input side trained by BPTT with Adam, but the readout is
  solved in closed form on every batch *inside* the loss (variable projection; ``train_on_device(...,
  readout="ridge")`` on a device without non-idealities, the very code of the hardware experiment), so the
  gradient moves only the input side; the final readout is ridge on the training data.

The device ("physical backprop") half of the reproduction arrives with ``hardware_sim``.  Also measured here:
a gradient-trained linear readout against the ridge solution on the same states (NARMA10).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import metrics, tasks
from experiments.results import open_run, pyplot, read_rows, save_figure, write_rows
from experiments.search import grid_search, ridge_validation_score
from experiments.sweep import run_sweep
from hardware_sim import wrap_device
from hardware_sim.training import train_on_device
from readout import Ridge, RidgeCV, apply_readout, fit_readout, one_hot, pool_states, train
from reservoir import bptt_loss, delay_reservoir, run, run_states, split_trainable
from reservoir.trainable import merge_trainable

DESCRIPTION = "Full (mask + readout by BPTT) vs Reservoir (random mask, ridge) on NARMA10, variable delay, digits"
COLUMNS = ("task", "method", "platform", "n_units", "seed", "metric", "value", "device_queries")
TRAINED = ("mask", "bias_mask", "input_gain", "feedback_gain", "phase")
GAIN_GRID = {"input_gain": [0.2, 0.5, 1.0], "feedback_gain": [0.5, 0.8, 0.95]}
ALPHAS = tuple(10.0 ** np.arange(-8, 1))
N_UNITS = 50
# Adam settings of the "Full" training runs (early stopping on the validation split in both).
SEQUENCE_TRAINING = dict(learning_rate=1e-3, n_epochs=300, batch_size=4, patience=50, l2=0.0)
DIGITS_POOLING = "mean"  # features: the time average of the 8 row steps' states ("last": the final state)
DIGITS_TRAINING = dict(learning_rate=3e-3, n_epochs=200, batch_size=64, patience=40, l2=0.0)
# full_projected: Adam on the input side, readout in closed form in the loss (alpha PROJECTED_ALPHA)
PROJECTED_TRAINING = {"sequences": dict(learning_rate=1e-2, n_epochs=60, batch_size=4, validation_fraction=0.2),
                      "digits": dict(learning_rate=1e-2, n_epochs=60, batch_size=100, validation_fraction=0.2)}
PROJECTED_ALPHA = 1e-4
QUICK_PROJECTED_EPOCHS = 8
QUICK_DEVICE_EPOCHS = 2


def _projected_options(kind: str, n_epochs: int | None) -> dict[str, Any]:
    """``PROJECTED_TRAINING[kind]``, with ``n_epochs`` overridden when given (quick runs)."""
    return dict(PROJECTED_TRAINING[kind], **({} if n_epochs is None else {"n_epochs": n_epochs}))


def projected_full(params, inputs, targets, *, washout: int, pool: bool, kind: str, seed: int, quick: bool):
    """The input side trained with the readout solved in closed form inside the loss: the trained reservoir
    and the per-epoch training losses.  Runs ``hardware_sim``'s trainer on a perfect device (no mismatch,
    noise or quantisation), so simulation and hardware experiments share one implementation."""
    options = _projected_options(kind, QUICK_PROJECTED_EPOCHS if quick else None)
    result = train_on_device(wrap_device(params, seed=seed), inputs, targets, mode="digital", names=TRAINED,
                             washout=washout, alpha=PROJECTED_ALPHA, pool=pool, readout="ridge", seed=seed,
                             **options)
    return merge_trainable(params, result.params["input_side"]), result.history["train"]


# The device half: the same reservoir as an opto-electronic device 10 % off its model, with 30 dB detection noise.
DEVICE = dict(mismatch=0.1, snr_db=30.0)
MASKS = ("trained", "time-shuffled", "random")


def device_half(params, projected, score, train_data, *, washout: int, pool: bool, kind: str, seed: int,
                quick: bool) -> list[dict]:
    """JMLR 2015 Table 1 and the device column of Hermans 2016, rows of (method, platform, value).

    ``score(states_of)`` is the task's test error given ``states_of(inputs) -> states``, with the readout re-fit
    by ridge on the training part.  Masks: ``trained`` (``projected``'s input side, trained in simulation),
    ``time-shuffled`` (the same values, the virtual nodes permuted: the distribution kept, the order lost),
    ``random`` (the baseline's); each scored in simulation and written onto the device (readout re-fit on
    measured states).  ``physical_backprop``: the input side trained on the device itself (forward and
    backward through it, readout projected out of the loss), scored on the device.
    """
    trained = split_trainable(projected, TRAINED)[0]
    order = np.random.default_rng(seed).permutation(N_UNITS)
    sides = {"trained": trained, "random": split_trainable(params, TRAINED)[0],
             "time-shuffled": dict(trained, mask=trained["mask"][order], bias_mask=trained["bias_mask"][order])}
    device = wrap_device(params, seed=seed, **DEVICE)
    rows = []
    for mask, side in sides.items():
        simulated = merge_trainable(params, side)
        rows.append(dict(method=f"{mask}_mask", platform="simulation",
                         value=score(lambda x, p=simulated: np.asarray(run(p, x), np.float64))))
        rows.append(dict(method=f"{mask}_mask", platform="device",
                         value=score(lambda x, s=side: np.asarray(device.measure(x, s), np.float64))))
    options = _projected_options(kind, QUICK_DEVICE_EPOCHS if quick else None)
    result = train_on_device(device, *train_data, mode="physical_backprop", names=TRAINED, washout=washout,
                             alpha=PROJECTED_ALPHA, pool=pool, readout="ridge", seed=seed, **options)
    side = result.params["input_side"]
    rows.append(dict(method="physical_backprop", platform="device", device_queries=result.n_calls,
                     value=score(lambda x: np.asarray(device.measure(x, side), np.float64))))
    return rows


def linear(readout: dict, state: jax.Array) -> jax.Array:
    return state @ readout["W"] + readout["b"]


def regression(task: str, seed: int, quick: bool) -> list[dict]:
    # The task's split (tasks.TaskData): 200 washout + 3000 train + 1000 validation steps, then 2000 test steps.
    split = tasks.load_task(task, seed)
    fit = split.fit_part()
    u_train, y_train, u_test, y_test = fit.inputs, fit.targets, split.test.inputs, split.test.targets
    washout, n_inputs, n_train = split.washout, u_train.shape[1], len(u_train)

    def baseline_score(**gains):
        params = delay_reservoir(N_UNITS, n_inputs, model="sine", seed=seed, **gains)
        return ridge_validation_score(params, u_train, y_train, washout=washout,
                                      n_validation=len(split.validation.inputs), alphas=ALPHAS,
                                      readout_sees_input=False)

    search = grid_search(baseline_score, GAIN_GRID)
    params = delay_reservoir(N_UNITS, n_inputs, model="sine", seed=seed, **search.config)
    u_all = np.concatenate([u_train, u_test])

    def all_states(params) -> np.ndarray:
        return np.asarray(run(params, u_all), np.float64)

    def test_nmse(states, readout=None) -> float:
        readout = readout or Ridge(search.alpha).fit(states[:n_train], y_train, washout=washout)
        return metrics.nmse(y_test, readout.predict(states[n_train:]))

    states = all_states(params)  # the Reservoir baseline's states, also used by the gradient readout below
    reservoir_nmse = test_nmse(states)
    # Full: BPTT on chunks of the training sequence (each restarts from rest, the first steps left out).
    chunk, chunk_washout = 200, 30
    n_chunks = n_train // chunk
    u_chunks = u_train[: n_chunks * chunk].reshape(n_chunks, chunk, n_inputs)
    y_chunks = y_train[: n_chunks * chunk].reshape(n_chunks, chunk, 1)
    # Start from the baseline's best readout *for the chunked setting the loss sees* (ridge on the chunks'
    # post-washout states of the training part), so any gain comes from what training changes.
    n_fit = int(0.8 * n_chunks)  # train's validation_fraction=0.2 holds out the last chunks
    chunk_states = np.asarray(run(params, u_chunks[:n_fit]), np.float64)
    ridge = Ridge(search.alpha).fit(chunk_states, y_chunks[:n_fit], washout=chunk_washout)
    trainable, combine = split_trainable(params, TRAINED)
    start = {"reservoir": trainable, "readout": {"W": jnp.asarray(ridge.coef_, params.dtype),
                                                 "b": jnp.asarray(ridge.intercept_, params.dtype)}}
    loss = lambda p, u, y: bptt_loss(p["reservoir"], combine, linear, p["readout"], u, y, washout=chunk_washout)
    options = dict(SEQUENCE_TRAINING, n_epochs=60) if quick else SEQUENCE_TRAINING
    result = train(loss, start, (u_chunks, y_chunks), validation_fraction=0.2, seed=seed, progress=False,
                   **options)
    trained = combine(result.params["reservoir"])
    joint = _FixedLinear(result.params["readout"])
    trained_states = all_states(trained)
    full_nmse, refit_nmse = test_nmse(trained_states, joint), test_nmse(trained_states)
    # Readout only, by gradient descent on the Reservoir baseline's states: how close to the ridge optimum?
    mean, std = states[washout:n_train].mean(0), states[washout:n_train].std(0) + 1e-12  # condition the problem
    # Nesterov momentum with the learning rate decayed linearly to zero (JMLR 2015) settles on the optimum;
    # Adam at a fixed rate keeps hopping around it (measured: 5-10% above ridge after 600 epochs).
    gradient = fit_readout((states[washout:n_train] - mean) / std, y_train[washout:], optimizer="nesterov",
                           learning_rate=0.02, n_epochs=100 if quick else 600, batch_size=256, seed=seed,
                           progress=False,
                           dtype=jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32)
    test_states = (states[n_train:] - mean) / std
    gradient_nmse = metrics.nmse(y_test, np.asarray(apply_readout(gradient.params, test_states)))
    projected, projected_losses = projected_full(params, u_chunks, y_chunks, washout=chunk_washout, pool=False,
                                                 kind="sequences", seed=seed, quick=quick)
    projected_nmse = test_nmse(all_states(projected))
    base = dict(task=task, n_units=N_UNITS, seed=seed, metric="nmse")
    device_rows = device_half(params, projected, lambda states_of: test_nmse(states_of(u_all)),
                              (u_chunks, y_chunks), washout=chunk_washout, pool=False, kind="sequences",
                              seed=seed, quick=quick)
    return [dict(base, method="reservoir", value=reservoir_nmse, **search.config),
            dict(base, method="full", value=full_nmse, epochs=len(result.history["train"])),
            dict(base, method="full+ridge", value=refit_nmse),
            dict(base, method="gradient_readout", value=gradient_nmse),
            dict(base, method="full_projected", value=projected_nmse),
            *[dict(base, **row) for row in device_rows],
            *[dict(base, method="full_projected", metric="train_loss", epoch=e, value=v)
              for e, v in enumerate(projected_losses)],
            *[dict(base, method="full", metric="train_loss", epoch=e, value=v)
              for e, v in enumerate(result.history["train"])],
            *[dict(base, method="full", metric="validation_loss", epoch=e, value=v)
              for e, v in enumerate(result.history["validation"])]]


class _FixedLinear:
    """A jointly trained linear readout, used like a fitted Ridge."""

    def __init__(self, readout: dict) -> None:
        self.W, self.b = np.asarray(readout["W"], np.float64), np.asarray(readout["b"], np.float64)

    def predict(self, states: np.ndarray) -> np.ndarray:
        return states @ self.W + self.b


def digits(seed: int, quick: bool) -> list[dict]:
    """Sequence classification: mean-pooled states of the 8 row steps, softmax/argmax readout."""
    split = tasks.digits_task(seed)  # stratified test quarter; stratified validation fifth of the rest
    # quick: a smaller problem, for a run that only checks the pipeline
    sizes = (320, 80, 200) if quick else (None, None, None)
    parts = (split.train, split.validation, split.test)
    fitted, held_out, tested = (tasks.Part(*(field[:size] for field in part))
                                for part, size in zip(parts, sizes, strict=True))
    n_fit = len(fitted.targets)  # the gains and alpha are chosen on the validation part, which follows
    x_train = np.concatenate([fitted.inputs, held_out.inputs])
    y_train = np.concatenate([fitted.targets, held_out.targets])
    x_test, y_test = tested.inputs, tested.targets

    def features(params, x):
        return pool_states(np.asarray(run(params, x), np.float64), DIGITS_POOLING)

    def baseline_score(**gains):
        params = delay_reservoir(N_UNITS, 8, model="sine", seed=seed, **gains)
        ridge = RidgeCV(alphas=ALPHAS).fit(features(params, x_train[:n_fit]), one_hot(y_train[:n_fit], 10))
        error = 1 - metrics.accuracy(y_train[n_fit:], ridge.predict(features(params, x_train[n_fit:])).argmax(-1))
        return error, ridge.alpha_

    search = grid_search(baseline_score, GAIN_GRID)
    params = delay_reservoir(N_UNITS, 8, model="sine", seed=seed, **search.config)
    ridge = Ridge(search.alpha).fit(features(params, x_train), one_hot(y_train, 10))
    reservoir_error = 1 - metrics.accuracy(y_test, ridge.predict(features(params, x_test)).argmax(-1))

    trainable, combine = split_trainable(params, TRAINED)
    start = {"reservoir": trainable, "readout": {"W": jnp.asarray(ridge.coef_, params.dtype),
                                                 "b": jnp.asarray(ridge.intercept_, params.dtype)}}

    def loss(p, x, y):
        states = run_states(combine(p["reservoir"]), x)
        pooled = states.mean(axis=1) if DIGITS_POOLING == "mean" else states[:, -1]
        return optax.softmax_cross_entropy_with_integer_labels(linear(p["readout"], pooled), y).mean()

    options = dict(DIGITS_TRAINING, n_epochs=40) if quick else DIGITS_TRAINING
    result = train(loss, start, (x_train, y_train), validation_fraction=0.2, seed=seed, progress=False, **options)
    trained = combine(result.params["reservoir"])
    scores = linear({k: np.asarray(v) for k, v in result.params["readout"].items()}, features(trained, x_test))
    full_error = 1 - metrics.accuracy(y_test, np.asarray(scores).argmax(-1))
    refit = RidgeCV(alphas=ALPHAS).fit(features(trained, x_train), one_hot(y_train, 10))
    refit_error = 1 - metrics.accuracy(y_test, refit.predict(features(trained, x_test)).argmax(-1))
    assert DIGITS_POOLING == "mean", "full_projected pools by the mean (train_on_device(pool=True))"
    projected, projected_losses = projected_full(params, x_train, one_hot(y_train, 10), washout=0, pool=True,
                                                 kind="digits", seed=seed, quick=quick)
    ridge = RidgeCV(alphas=ALPHAS).fit(features(projected, x_train), one_hot(y_train, 10))
    projected_error = 1 - metrics.accuracy(y_test, ridge.predict(features(projected, x_test)).argmax(-1))
    base = dict(task="digits", n_units=N_UNITS, seed=seed, metric="test_error")

    def score(states_of) -> float:
        train_features, test_features = (pool_states(states_of(x), DIGITS_POOLING) for x in (x_train, x_test))
        refit = RidgeCV(alphas=ALPHAS).fit(train_features, one_hot(y_train, 10))
        return 1 - metrics.accuracy(y_test, refit.predict(test_features).argmax(-1))

    device_rows = device_half(params, projected, score, (x_train, one_hot(y_train, 10)), washout=0, pool=True,
                              kind="digits", seed=seed, quick=quick)
    return [dict(base, method="reservoir", value=reservoir_error, **search.config),
            dict(base, method="full", value=full_error, epochs=len(result.history["train"])),
            dict(base, method="full+ridge", value=refit_error),
            dict(base, method="full_projected", value=projected_error),
            *[dict(base, **row) for row in device_rows],
            *[dict(base, method="full_projected", metric="train_loss", epoch=e, value=v)
              for e, v in enumerate(projected_losses)],
            *[dict(base, method="full", metric="train_loss", epoch=e, value=v)
              for e, v in enumerate(result.history["train"])],
            *[dict(base, method="full", metric="validation_loss", epoch=e, value=v)
              for e, v in enumerate(result.history["validation"])]]


def run_unit(unit: dict[str, Any]) -> list[dict]:
    """One task × seed (a sweep unit, run in this process or on a Dask worker).

    ``unit["x64"]`` carries the caller's JAX precision, so a worker process computes what this one would.
    """
    jax.config.update("jax_enable_x64", unit["x64"])
    if unit["task"] == "digits":
        return digits(unit["seed"], unit["quick"])
    return regression(unit["task"], unit["seed"], unit["quick"])


def run_experiment(out: Path | str = "results", quick: bool = False, seeds: int | None = None,
                   scheduler: str | None = None, fresh: bool = False) -> Path:
    seed_list = list(range(seeds or (1 if quick else 3)))
    x64 = bool(jax.config.read("jax_enable_x64"))
    directory = open_run(out, "embodied_learning",
                         {"experiment": "embodied_learning", "quick": quick, "seeds": seed_list, "x64": x64,
                          "n_units": N_UNITS, "trained": TRAINED, "gain_grid": GAIN_GRID, "alphas": ALPHAS,
                          "sequence_training": SEQUENCE_TRAINING, "digits_training": DIGITS_TRAINING,
                          "projected_training": PROJECTED_TRAINING, "projected_alpha": PROJECTED_ALPHA,
                          "device": DEVICE},
                         fresh=fresh)
    units = [dict(task=task, seed=seed, quick=quick, x64=x64)
             for task in ("narma10", "variable_delay", "digits") for seed in seed_list]
    results = run_sweep(run_unit, units, directory, scheduler=scheduler, desc="embodied learning")
    rows = [row for unit_rows in results for row in unit_rows]
    write_rows(directory / "results.csv", rows, COLUMNS)
    print(summary(rows))
    plot(directory)
    return directory


def summary(rows: list[dict]) -> str:
    methods = ("reservoir", "full", "full+ridge", "full_projected", "gradient_readout")
    lines = [f"{'task':16s} {'metric':11s} " + " ".join(f"{m:>18s}" for m in methods)
             + "  reservoir/full  reservoir/full_projected"]
    for task in ("narma10", "variable_delay", "digits"):
        cells, means = [], {}
        metric = "test_error" if task == "digits" else "nmse"
        for method in methods:
            values = [r["value"] for r in rows if (r["task"], r["method"], r["metric"]) == (task, method, metric)]
            means[method] = np.mean(values) if values else np.nan
            cells.append(f"{np.mean(values):9.4f} ± {np.std(values):<6.4f}" if values else f"{'—':>18s}")
        if np.isnan(means["reservoir"]):
            continue
        lines.append(f"{task:16s} {metric:11s} {' '.join(cells)}  {means['reservoir'] / means['full']:13.2f}×"
                     f"  {means['reservoir'] / means['full_projected']:23.2f}×")
    lines += ["", f"Device half (mismatch {DEVICE['mismatch']:g}, {DEVICE['snr_db']:g} dB; readout re-fit on each "
                  f"platform):", f"{'task':16s} {'mask':14s} {'simulation':>18s} {'device':>18s}"]
    for task in ("narma10", "variable_delay", "digits"):
        metric = "test_error" if task == "digits" else "nmse"
        for method in [f"{m}_mask" for m in MASKS] + ["physical_backprop"]:
            cells = []
            for platform in ("simulation", "device"):
                values = [r["value"] for r in rows if (r["task"], r["method"], r["metric"], r.get("platform"))
                          == (task, method, metric, platform)]
                cells.append(f"{np.mean(values):9.4f} ± {np.std(values):<6.4f}" if values else f"{'—':>18s}")
            if any(cell.strip() != "—" for cell in cells):
                lines.append(f"{task:16s} {method.removesuffix('_mask'):14s} {' '.join(cells)}")
    return "\n".join(lines)


def plot(directory: Path | str) -> list[Path]:
    plt = pyplot()
    directory = Path(directory)
    rows = read_rows(directory / "results.csv")
    task_list = [t for t in ("narma10", "variable_delay", "digits") if any(r["task"] == t for r in rows)]
    fig, axes = plt.subplots(1, len(task_list), figsize=(3.6 * len(task_list), 3.4), squeeze=False)
    for ax, task in zip(axes[0], task_list, strict=True):
        metric = "test_error" if task == "digits" else "nmse"
        methods = ["reservoir", "full", "full+ridge", "full_projected"]
        values = [[r["value"] for r in rows if (r["task"], r["method"], r["metric"]) == (task, m, metric)]
                  for m in methods]
        ax.bar(range(4), [np.mean(v) for v in values], yerr=[np.std(v) for v in values], capsize=4,
               color=["0.6", "C3", "C1", "C4"])
        for i, v in enumerate(values):
            ax.plot([i] * len(v), v, "k.", ms=4)
        ax.set_xticks(range(4), ["Reservoir", "Full", "Full +\nridge", "Full,\nprojected"])
        ax.set(title=task.replace("_", " "), ylabel="test error rate" if task == "digits" else "test NMSE")
    fig.suptitle(f"Sine delay reservoir, N = {N_UNITS}: trained vs random input mask (simulation)", fontsize=10)
    fig.tight_layout()
    return [save_figure(fig, directory, "full_vs_reservoir"), _plot_device_half(directory, rows, task_list)]


def _plot_device_half(directory: Path, rows: list[dict], task_list: list[str]) -> Path:
    """JMLR 2015 Table 1 as bars: each mask in simulation and on the device, and physical backprop."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(task_list), figsize=(4.2 * len(task_list), 3.6), squeeze=False)
    bars = [(f"{m}_mask", platform) for m in MASKS for platform in ("simulation", "device")]
    bars.append(("physical_backprop", "device"))
    for ax, task in zip(axes[0], task_list, strict=True):
        metric = "test_error" if task == "digits" else "nmse"
        values = [[r["value"] for r in rows if (r["task"], r["method"], r["metric"], r.get("platform"))
                   == (task, method, metric, platform)] for method, platform in bars]
        colors = ["C0" if platform == "simulation" else "C3" for _, platform in bars[:-1]] + ["C4"]
        ax.bar(range(len(bars)), [np.mean(v) if v else np.nan for v in values],
               yerr=[np.std(v) if v else 0 for v in values], capsize=3, color=colors)
        for i, v in enumerate(values):
            ax.plot([i] * len(v), v, "k.", ms=3)
        labels = [f"{method.removesuffix('_mask').removeprefix('time-')}\n{platform.removesuffix('ulation')}"
                  for method, platform in bars[:-1]] + ["physical\nbackprop"]
        ax.set_xticks(range(len(bars)), labels, fontsize=7)
        ax.set(title=task.replace("_", " "), ylabel="test error rate" if task == "digits" else "test NMSE")
    fig.suptitle(f"Masks in simulation and on a device ({DEVICE['mismatch']:g} mismatch, "
                 f"{DEVICE['snr_db']:g} dB), readout re-fit on each; and training on the device", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, directory, "masks_simulation_vs_device")
