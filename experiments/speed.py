"""Speed, side by side with ReservoirPy 0.4.2 and against this machine's own limits.

Every number is measured in one run, on the same machine, at the same time: medians of ``REPEATS`` timed
calls after a warm-up call, JIT compile time reported separately (first call minus the warm median).
"First call" numbers come from a fresh ``python`` subprocess (imports and JAX backend start-up excluded, the
latter reported on its own row); peak memory comes from a fresh subprocess's ``ru_maxrss``.

Cases (full sizes; ``--quick`` shrinks every one of them, so its numbers are *not* the targets' sizes):

a. ESN fit + run, N = 500, one Mackey–Glass sequence of 20,000 steps (fit on 15,000, predict 5,000):
   ours vs ReservoirPy NumPy backend (``reservoirpy.ESN``) vs its JAX backend (``reservoirpy.jax.ESN``),
   with each one's test NRMSE so that nobody wins by computing something else.
b. The same for 64 sequences × 2,000 steps (fit on 48, predict 16): ReservoirPy NumPy with default settings
   and with ``workers=2`` (``fit(..., workers=2)``, ``run(..., workers=2)``, joblib).
c. Batched state generation N = 1000, B = 32, float32, as a fraction of the float32 GEMM throughput
   (numpy ``@`` on 2048 × 2048) measured in the same run: rounds of one GEMM then one run, the median of the
   rounds' ratios.
d. Delay reservoirs (sine, sin² low-pass), N = 400, 20,000 samples: input samples/s vs a dense ESN N = 400.
e. One BPTT gradient (mask + readout) on the sine delay reservoir N = 400, T = 2,000, B = 32 relative to
   one forward ``run``; peak memory of one gradient over T = 10,000 with ``checkpoint_every=100``.
f. ``StreamingRidge.update`` chunk by chunk over 10⁶ time steps × N = 1000: peak memory and time relative
   to generating the states.
g. One BPTT training step (gradient of the softmax cross-entropy through the sine delay reservoir N = 200 with
   respect to mask, bias mask, gains, phase and a linear readout on the states at 5 evenly spaced valid steps
   of each sequence, then the Adam update; one jitted function) on a batch of 32 Japanese-vowel sequences
   (29 frames × 12 channels, zero-padded) and on 32 MNIST-1D sequences (40 steps × 1), next to the forward
   ``run`` of the same batch: the ratio, and each one's compile time.

Results: ``DIR/speed/results.csv`` (one row per case × implementation × metric, with the target where there
is one), ``config.json`` and ``speed.png``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from experiments.results import open_run, pyplot, read_rows, save_figure, write_rows
from experiments.sweep import require_inprocess, run_sweep

DESCRIPTION = "speed vs ReservoirPy 0.4.2 (NumPy/JAX backends) and vs this machine's GEMM throughput"
COLUMNS = ("case", "implementation", "metric", "value", "target", "kind")
ROOT = Path(__file__).resolve().parents[1]

# Pause before every timed call: OpenBLAS's threads busy-wait ~0.1 s after a call, and on 2 cores whatever
# runs next (XLA's threads, or another library's BLAS) would be timed against them.
IDLE_SECONDS = 0.3

# Shared ESN hyperparameters of cases a and b (ours and ReservoirPy's).
LEAK, RADIUS, CONNECTIVITY, RIDGE, WARMUP = 0.3, 0.9, 0.1, 1e-6, 100

SIZES = {
    False: dict(repeats=5, fresh_repeats=5,
                a=dict(n_units=500, n_steps=20_000, n_train=15_000),
                b=dict(n_units=500, n_sequences=64, n_steps=2_000, n_train=48),
                c=dict(n_units=1000, batch=32, n_steps=1000, gemm=2048),
                d=dict(n_units=400, n_steps=20_000),
                e=dict(n_units=400, n_steps=2_000, batch=32, memory_steps=10_000, checkpoint_every=100),
                f=dict(n_units=1000, total_steps=1_000_000, batch=32, chunk_steps=625),
               g=dict(n_units=200, batch=32)),
    True: dict(repeats=3, fresh_repeats=1,
               a=dict(n_units=100, n_steps=2_000, n_train=1_500),
               b=dict(n_units=100, n_sequences=8, n_steps=300, n_train=6),
               c=dict(n_units=256, batch=8, n_steps=200, gemm=512),
               d=dict(n_units=100, n_steps=2_000),
               e=dict(n_units=50, n_steps=200, batch=4, memory_steps=1_000, checkpoint_every=100),
               f=dict(n_units=200, total_steps=20_000, batch=8, chunk_steps=250),
               g=dict(n_units=50, batch=8)),
}

# (case, implementation, metric, kind, target): kind "min" means value >= target, "max" value <= target.
TARGETS = [
    ("a_esn_one_sequence", "ours_first_call", "speedup_vs_reservoirpy_numpy", "min", 3.0),
    ("a_esn_one_sequence", "ours_first_call", "speedup_vs_reservoirpy_jax", "min", 3.0),
    ("b_esn_64_sequences", "ours_first_call", "speedup_vs_reservoirpy_numpy", "min", 10.0),
    ("b_esn_64_sequences", "ours_first_call", "speedup_vs_reservoirpy_numpy_workers2", "min", 5.0),
    ("c_batched_states", "ours", "fraction_of_gemm", "min", 0.7),
    ("d_delay", "sin2_lowpass", "samples_per_second_vs_esn", "min", 1.0),
    ("d_delay", "sine", "samples_per_second_vs_esn", "min", 5.0),
    ("e_bptt", "ours", "gradient_over_forward", "max", 4.0),
    ("e_bptt_memory", "ours", "peak_gib", "max", 2.0),
    ("f_streaming_ridge", "ours", "peak_gib", "max", 1.5),
    ("f_streaming_ridge", "ours", "update_over_generate", "max", 1.5),
]


# ----------------------------------------------------------------------------------------------------------
# Timing helpers
# ----------------------------------------------------------------------------------------------------------

def block(value: Any) -> Any:
    """Wait for JAX's asynchronous dispatch (numpy values pass through)."""
    import jax

    return jax.block_until_ready(value)


def timed_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall time, result) of one call, waiting for its (JAX) result."""
    start = time.perf_counter()
    result = block(fn())
    return time.perf_counter() - start, result


def seconds(fn: Callable[[], Any]) -> float:
    """Wall time of one call, waiting for its (JAX) result."""
    return timed_call(fn)[0]


def timings(fn: Callable[[], Any], repeats: int, warmup: Callable[[], Any] | None = None) -> dict[str, float]:
    """``first_seconds`` of the warm-up call (``warmup`` or ``fn`` itself) and the median of ``repeats`` more."""
    first = seconds(warmup or fn)
    times = [seconds(fn) for _ in range(repeats)]
    return {"first_seconds": first, "seconds_median": float(np.median(times)),
            "seconds_min": float(np.min(times)), "seconds_max": float(np.max(times))}


def compile_seconds(timed: dict[str, float]) -> float:
    """First call minus the warm median (0 when the function was already compiled for these shapes)."""
    return max(0.0, timed["first_seconds"] - timed["seconds_median"])


def rows_of(case: str, implementation: str, values: dict[str, float]) -> list[dict]:
    """One tidy row per metric of ``values``, for ``case`` and ``implementation``."""
    return [dict(case=case, implementation=implementation, metric=m, value=float(v)) for m, v in values.items()]


def in_subprocess(function: str, **kwargs: Any) -> dict[str, float]:
    """Run ``experiments.speed.<function>(**kwargs)`` in a fresh interpreter; it prints its result (JSON) last."""
    call = f"s.{function}(**json.loads({json.dumps(kwargs)!r}))"
    code = f"import json, experiments.speed as s; print(json.dumps({call}))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"subprocess {function} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_gib() -> float:
    """This process's peak resident memory in GiB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this program's own memory.  ``ru_maxrss``
    (see ``ru_maxrss_gib``) is not usable in a child started by ``subprocess``: Linux carries the parent's
    resident size at fork time over into the child's ``ru_maxrss``, exec or not, so it reads at least as
    much as the parent holds.  Elsewhere ``ru_maxrss`` is the only measure available.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return ru_maxrss_gib()


def ru_maxrss_gib() -> float:
    """``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in GiB (KiB on Linux, bytes on macOS)."""
    scale = 2**30 if sys.platform == "darwin" else 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def start_jax_backend() -> float:
    """Seconds to start JAX's CPU backend (the first array op): a per-process cost like an import."""
    import jax.numpy as jnp

    return seconds(lambda: jnp.zeros(1) + 1)


# ----------------------------------------------------------------------------------------------------------
# a, b: ESN fit + run, ours and ReservoirPy's
# ----------------------------------------------------------------------------------------------------------

def mackey_glass_data(n_steps: int, n_sequences: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """z-scored Mackey–Glass one-step prediction: (T, 1) inputs/targets, or (B, T, 1) when ``n_sequences``."""
    from experiments.tasks import mackey_glass

    x = mackey_glass(max(n_sequences, 1) * n_steps + 1, seed=0)
    x = (x - x.mean()) / x.std()
    u, y = x[:-1], x[1:]
    if n_sequences:
        u, y = u.reshape(n_sequences, n_steps, 1), y.reshape(n_sequences, n_steps, 1)
    return u, y


def ours_fit_predict(u: np.ndarray, y: np.ndarray, n_train: int, n_units: int) -> np.ndarray:
    """Build our ESN, run it, fit the ridge readout after the warm-up, predict the test part.

    One sequence (T, 1): train on the first ``n_train`` steps, test on the rest (states continue).
    A batch (B, T, 1): train on the first ``n_train`` sequences, test on the others.
    """
    from readout import Ridge
    from reservoir import esn, run

    params = esn(n_units, seed=0, spectral_radius=RADIUS, density=CONNECTIVITY, leak_rate=LEAK)
    states = np.asarray(run(params, u))
    readout = Ridge(RIDGE).fit(states[:n_train], y[:n_train], washout=WARMUP)
    return readout.predict(states[n_train:])


def reservoirpy_fit_predict(backend: str, u: np.ndarray, y: np.ndarray, n_train: int, n_units: int,
                            workers: int = 1) -> np.ndarray:
    """ReservoirPy's ``ESN`` with the same hyperparameters (its other settings at their defaults)."""
    if backend == "jax":
        from reservoirpy.jax import ESN
    else:
        from reservoirpy import ESN
    model = ESN(units=n_units, lr=LEAK, sr=RADIUS, rc_connectivity=CONNECTIVITY, ridge=RIDGE, seed=0)
    model.fit(u[:n_train], y[:n_train], warmup=WARMUP, workers=workers)
    return np.asarray(model.run(u[n_train:], workers=workers))


def short_problem(u: np.ndarray, y: np.ndarray, n_sequences: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A small slice of the same problem (inputs, targets, n_train) for warm-up calls."""
    if n_sequences:
        return u[:2], y[:2], 1
    length = max(4 * WARMUP, len(u) // 10)
    return u[:length], y[:length], 3 * length // 4


def held_out_nrmse(y: np.ndarray, prediction: np.ndarray, n_train: int) -> float:
    """NRMSE on the test part; for a batch, each test sequence's first ``WARMUP`` steps are left out."""
    from experiments.metrics import nrmse

    target = y[n_train:]
    if target.ndim == 3:
        target, prediction = target[:, WARMUP:], np.asarray(prediction)[:, WARMUP:]
    return nrmse(target.reshape(-1, 1), np.asarray(prediction, np.float64).reshape(-1, 1))


def fresh_esn_first_call(n_units: int, n_steps: int, n_train: int, n_sequences: int = 0) -> dict[str, float]:
    """(Run in a fresh process.) Our first fit + predict, compile included, imports and data excluded."""
    import readout  # noqa: F401  (imports are excluded from the timing)
    import reservoir  # noqa: F401

    u, y = mackey_glass_data(n_steps, n_sequences)
    backend = start_jax_backend()
    start = time.perf_counter()
    prediction = ours_fit_predict(u, y, n_train, n_units)
    first = time.perf_counter() - start
    return {"first_call_seconds": first, "jax_backend_start_seconds": backend,
            "nrmse": held_out_nrmse(y, prediction, n_train)}


def esn_case(case: str, sizes: dict, repeats: int, fresh_repeats: int, peers: list[tuple[str, str, int]],
             n_sequences: int = 0) -> list[dict]:
    """Ours (fresh-process first call and warm) vs each ReservoirPy configuration ``(name, backend, workers)``.

    Side by side: after the warm-ups, every round times each contender once (ours in a fresh process in the
    first ``fresh_repeats`` rounds, ours warm, then each peer), so a load change on the shared machine hits
    all of them alike rather than whichever happened to be running.
    """
    n_units, n_steps, n_train = sizes["n_units"], sizes["n_steps"], sizes["n_train"]
    u, y = mackey_glass_data(n_steps, n_sequences)
    u_short, y_short, n_train_short = short_problem(u, y, n_sequences)
    ours = lambda: ours_fit_predict(u, y, n_train, n_units)
    contenders = {"ours_warm": ours}
    for name, backend, workers in peers:
        contenders[name] = partial(reservoirpy_fit_predict, backend, u, y, n_train, n_units, workers)
    # Warm-ups: ours at full size (compiles); ReservoirPy on a short problem (its NumPy backend compiles
    # nothing and its JAX nodes recompile for every new model anyway, so a full-size warm-up only costs time).
    first = {"ours_warm": seconds(ours)}
    for _, backend, workers in peers:
        seconds(partial(reservoirpy_fit_predict, backend, u_short, y_short, n_train_short, n_units, workers))
    times, fresh, last = {name: [] for name in contenders}, [], {}
    for round_ in tqdm(range(repeats), desc=f"{case}: rounds (ours fresh, ours warm, ReservoirPy)", leave=False):
        if round_ < fresh_repeats:
            fresh.append(in_subprocess("fresh_esn_first_call", n_units=n_units, n_steps=n_steps, n_train=n_train,
                                       n_sequences=n_sequences))
        for name, fn in contenders.items():
            time.sleep(IDLE_SECONDS)  # the previous contender's BLAS threads go idle (see batched_states_case)
            took, last[name] = timed_call(fn)
            times[name].append(took)
    median = {name: float(np.median(t)) for name, t in times.items()}
    median["ours_first_call"] = float(np.median([f["first_call_seconds"] for f in fresh]))
    rows = rows_of(case, "ours_first_call", {
        "seconds_median": median["ours_first_call"],
        "jax_backend_start_seconds": float(np.median([f["jax_backend_start_seconds"] for f in fresh])),
        "nrmse": fresh[0]["nrmse"], "repeats": len(fresh)})
    for name in contenders:
        extra = {"first_seconds": first[name], "compile_seconds": max(0.0, first[name] - median[name])} \
            if name in first else {}
        rows += rows_of(case, name, {"seconds_median": median[name], "seconds_min": min(times[name]),
                                     "seconds_max": max(times[name]), **extra,
                                     "nrmse": held_out_nrmse(y, last[name], n_train), "repeats": repeats})
    for ours_name in ("ours_first_call", "ours_warm"):
        rows += rows_of(case, ours_name, {f"speedup_vs_{name}": median[name] / median[ours_name]
                                          for name, _, _ in peers})
    return rows


# ----------------------------------------------------------------------------------------------------------
# c: batched state generation vs GEMM
# ----------------------------------------------------------------------------------------------------------

def batched_states_case(sizes: dict, repeats: int) -> list[dict]:
    """Rounds of (numpy float32 GEMM, our batched run) timed back to back; the fraction is the median over
    rounds of each round's ratio, so a load change on the shared machine hits both sides of a ratio alike."""
    from reservoir import esn, run

    n, batch, n_steps, size = sizes["n_units"], sizes["batch"], sizes["n_steps"], sizes["gemm"]
    params = esn(n, seed=0, spectral_radius=RADIUS, leak_rate=LEAK, dtype="float32")
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, (batch, n_steps, 1)).astype(np.float32)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))

    def ours() -> float:
        return seconds(lambda: run(params, u, check_finite=False))

    def gemm() -> float:  # strict: the best of three back-to-back GEMMs (the first one wakes BLAS's threads)
        return min(seconds(lambda: a @ b) for _ in range(3))

    first = {"ours": ours(), "gemm": gemm()}
    times = {"ours": [], "gemm": []}
    for _ in range(repeats):
        for name, fn in (("gemm", gemm), ("ours", ours)):
            # OpenBLAS's threads spin ~0.1 s after a call; let them (and XLA's) go idle first, so that
            # neither side is timed against the other library's busy-waiting threads on 2 cores.
            time.sleep(IDLE_SECONDS)
            times[name].append(fn())
    flops = n_steps * batch * (2.0 * n * n + 2.0 * n * params.n_inputs)
    gemm_flops = 2.0 * size**3
    fractions = [(flops / t_ours) / (gemm_flops / t_gemm) for t_ours, t_gemm in zip(times["ours"], times["gemm"],
                                                                                    strict=True)]
    median = {name: float(np.median(t)) for name, t in times.items()}
    timed = {"first_seconds": first["ours"], "seconds_median": median["ours"],
             "seconds_min": min(times["ours"]), "seconds_max": max(times["ours"])}
    return (rows_of("c_batched_states", "numpy_gemm_float32", {"gflops": gemm_flops / median["gemm"] / 1e9,
                                                               "seconds_median": median["gemm"]})
            + rows_of("c_batched_states", "ours", {
                **timed, "compile_seconds": compile_seconds(timed),
                "gflops": flops / median["ours"] / 1e9, "fraction_of_gemm": float(np.median(fractions)),
                "fraction_of_gemm_min": min(fractions), "fraction_of_gemm_max": max(fractions),
                "samples_per_second": batch * n_steps / median["ours"], "repeats": repeats}))


# ----------------------------------------------------------------------------------------------------------
# d: delay reservoirs vs a dense ESN
# ----------------------------------------------------------------------------------------------------------

def delay_case(sizes: dict, repeats: int) -> list[dict]:
    """Case d: input samples per second of the sine and sin² low-pass delay reservoirs and of a dense ESN of
    the same size, and each delay reservoir's rate relative to the ESN's."""
    from reservoir import delay_reservoir, esn, run

    n, n_steps = sizes["n_units"], sizes["n_steps"]
    u = np.random.default_rng(0).uniform(-1, 1, (n_steps, 1)).astype(np.float32)
    models = {"esn_dense": esn(n, seed=0, density=1.0, spectral_radius=RADIUS, leak_rate=LEAK),
              "sine": delay_reservoir(n, model="sine", seed=0),
              "sin2_lowpass": delay_reservoir(n, model="sin2_lowpass", seed=0)}
    rate, rows = {}, []
    for name, params in tqdm(models.items(), desc="d: delay reservoirs", leave=False):
        t = timings(lambda params=params: run(params, u, check_finite=False), repeats)
        rate[name] = n_steps / t["seconds_median"]
        rows += rows_of("d_delay", name, {**t, "compile_seconds": compile_seconds(t),
                                          "samples_per_second": rate[name]})
    for name in ("sine", "sin2_lowpass"):
        rows += rows_of("d_delay", name, {"samples_per_second_vs_esn": rate[name] / rate["esn_dense"]})
    return rows


# ----------------------------------------------------------------------------------------------------------
# e: BPTT gradient vs forward; its peak memory
# ----------------------------------------------------------------------------------------------------------

def bptt_problem(n_units: int, n_steps: int, batch: int, checkpoint_every: int | None = None):
    """(gradient function, trainable, readout, inputs, targets, params) for the sine delay reservoir."""
    import jax
    import jax.numpy as jnp

    from readout.linear import LinearReadout
    from reservoir import delay_reservoir
    from reservoir.trainable import bptt_loss, split_trainable

    params = delay_reservoir(n_units, model="sine", seed=0)
    trainable, combine = split_trainable(params, "mask")
    rng = np.random.default_rng(0)
    readout = LinearReadout(jnp.asarray(rng.standard_normal((n_units, 1)) * 0.1, jnp.float32),
                            jnp.zeros(1, jnp.float32))
    u = rng.uniform(-1, 1, (batch, n_steps, 1)).astype(np.float32)
    y = np.roll(u, 1, axis=1)

    def loss(trainable, readout, u, y):
        return bptt_loss(trainable, combine, LinearReadout.__call__, readout, u, y,
                         washout=min(WARMUP, n_steps // 2), checkpoint_every=checkpoint_every)

    return jax.jit(jax.grad(loss, argnums=(0, 1))), trainable, readout, u, y, params


def bptt_case(sizes: dict, repeats: int) -> list[dict]:
    """Case e: one BPTT gradient against one forward ``run`` (seconds and their ratio), and the peak memory of
    a long checkpointed gradient in a fresh process."""
    from reservoir import run

    grad, trainable, readout, u, y, params = bptt_problem(sizes["n_units"], sizes["n_steps"], sizes["batch"])
    forward = timings(lambda: run(params, u, check_finite=False), repeats)
    gradient = timings(lambda: grad(trainable, readout, u, y), repeats)
    rows = rows_of("e_bptt", "forward_run", {**forward, "compile_seconds": compile_seconds(forward)})
    rows += rows_of("e_bptt", "ours", {**gradient, "compile_seconds": compile_seconds(gradient),
                                       "gradient_over_forward": gradient["seconds_median"]
                                       / forward["seconds_median"]})
    memory = in_subprocess("fresh_bptt_memory", n_units=sizes["n_units"], n_steps=sizes["memory_steps"],
                           batch=sizes["batch"], checkpoint_every=sizes["checkpoint_every"])
    return rows + rows_of("e_bptt_memory", "ours", memory)


def fresh_bptt_memory(n_units: int, n_steps: int, batch: int, checkpoint_every: int) -> dict[str, float]:
    """(Run in a fresh process.) Peak memory of one checkpointed BPTT gradient, compile included."""
    baseline = peak_gib()
    grad, trainable, readout, u, y, _ = bptt_problem(n_units, n_steps, batch, checkpoint_every)
    took = seconds(lambda: grad(trainable, readout, u, y))
    return {"peak_gib": peak_gib(), "ru_maxrss_gib": ru_maxrss_gib(), "baseline_peak_gib": baseline,
            "first_call_seconds": took,
            "checkpoint_every": checkpoint_every, "n_steps": n_steps}


# ----------------------------------------------------------------------------------------------------------
# g: one BPTT training step on sequence classification batches
# ----------------------------------------------------------------------------------------------------------

def classification_step(n_units: int, batch: int, task: str):
    """(jitted training step, its state, forward call) of the sine delay reservoir on one batch of ``task``."""
    import jax
    import jax.numpy as jnp
    import optax

    from experiments import tasks
    from experiments.benchmarks import N_POINTS
    from readout.linear import LinearReadout
    from reservoir import delay_reservoir, run
    from reservoir.trainable import run_states, split_trainable

    part = tasks.load_task(task, 0).train
    inputs = part.inputs[:batch].astype(np.float32)
    labels = jnp.asarray(part.targets[:batch])
    positions = np.rint(np.linspace(0, 1, N_POINTS)[None] * (part.lengths[:batch, None] - 1)).astype(int)
    params = delay_reservoir(n_units, inputs.shape[2], model="sine", seed=0)
    trainable, combine = split_trainable(params, ("mask", "bias_mask", "input_gain", "feedback_gain", "phase"))
    n_classes = int(part.targets.max()) + 1
    readout = LinearReadout(jnp.zeros((N_POINTS * n_units, n_classes), jnp.float32),
                            jnp.zeros(n_classes, jnp.float32))
    weights = {"input": trainable, "readout": readout}
    optimizer = optax.adam(1e-3)

    def loss(weights, inputs, labels):
        states = run_states(combine(weights["input"]), inputs)
        features = states[jnp.arange(len(positions))[:, None], positions].reshape(len(positions), -1)
        logits = weights["readout"](features)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @jax.jit
    def step(weights, opt_state, inputs, labels):
        grads = jax.grad(loss)(weights, inputs, labels)
        updates, opt_state = optimizer.update(grads, opt_state, weights)
        return optax.apply_updates(weights, updates), opt_state

    state = (weights, optimizer.init(weights), jnp.asarray(inputs), labels)
    return step, state, lambda: run(params, inputs, check_finite=False)


def classification_bptt_case(sizes: dict, repeats: int) -> list[dict]:
    """Case g: one jitted BPTT training step on Japanese vowels and on MNIST-1D against the forward ``run`` of
    the same batch (seconds, their ratio, compile times)."""
    rows = []
    for task in ("japanese_vowels", "mnist1d"):
        step, state, forward_call = classification_step(sizes["n_units"], sizes["batch"], task)
        forward = timings(forward_call, repeats)
        training = timings(lambda step=step, state=state: step(*state), repeats)
        case = f"g_bptt_{task}"
        rows += rows_of(case, "forward_run", {**forward, "compile_seconds": compile_seconds(forward)})
        ratio = training["seconds_median"] / forward["seconds_median"]
        rows += rows_of(case, "ours", {**training, "compile_seconds": compile_seconds(training),
                                       "step_over_forward": ratio})
    return rows


# ----------------------------------------------------------------------------------------------------------
# f: streamed ridge
# ----------------------------------------------------------------------------------------------------------

def fresh_streaming_ridge(n_units: int, total_steps: int, batch: int, chunk_steps: int,
                          progress: bool = False) -> dict[str, float]:
    """(Run in a fresh process.) Generate ``total_steps`` states (B sequences in chunks, state carried over)
    and stream them into ``StreamingRidge``; time both parts separately; peak memory."""
    from readout import StreamingRidge
    from reservoir import esn, run

    params = esn(n_units, seed=0, spectral_radius=RADIUS, leak_rate=LEAK)
    n_chunks = total_steps // (batch * chunk_steps)
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, (batch, n_chunks * chunk_steps + 1, 1)).astype(np.float32)
    block(run(params, u[:, :chunk_steps], check_finite=False))  # compile outside the timing
    accumulator, state, generate, update = StreamingRidge(RIDGE), None, 0.0, 0.0
    for k in tqdm(range(n_chunks), desc="f: streamed ridge", disable=not progress, leave=False):
        window = slice(1 + k * chunk_steps, 1 + (k + 1) * chunk_steps)
        start = time.perf_counter()
        states = block(run(params, u[:, window], state, check_finite=False))
        middle = time.perf_counter()
        accumulator.update(np.asarray(states), u[:, window.start - 1:window.stop - 1])  # recall u(t − 1)
        update += time.perf_counter() - middle
        generate += middle - start
        state = states[:, -1]
    nmse = accumulator.to_ridge().score(np.asarray(states), u[:, window.start - 1:window.stop - 1])
    return {"peak_gib": peak_gib(), "ru_maxrss_gib": ru_maxrss_gib(), "generate_seconds": generate,
            "update_seconds": update,
            "update_over_generate": update / generate, "n_time_steps": n_chunks * chunk_steps * batch,
            "last_chunk_nmse": nmse}


# ----------------------------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------------------------

def with_targets(rows: list[dict]) -> list[dict]:
    """Attach ``target`` and ``kind`` (min: value ≥ target, max: value ≤ target) to the rows that have one."""
    lookup = {(case, impl, metric): (kind, target) for case, impl, metric, kind, target in TARGETS}
    for row in rows:
        kind, target = lookup.get((row["case"], row["implementation"], row["metric"]), ("", ""))
        row["target"], row["kind"] = target, kind
    return rows


def met(row: dict) -> bool:
    """Whether a row reaches its target: value ≥ target for a ``"min"`` target, ≤ for a ``"max"`` one."""
    return row["value"] >= row["target"] if row["kind"] == "min" else row["value"] <= row["target"]


def summary_table(rows: list[dict]) -> str:
    """The rows that have a target, one line each: value, target and whether it is met."""
    lines = [f"{'case':22s} {'implementation':18s} {'metric':38s} {'value':>10s} {'target':>9s}  met"]
    for row in rows:
        if row.get("kind") in ("min", "max"):
            sign = "≥" if row["kind"] == "min" else "≤"
            lines.append(f"{row['case']:22s} {row['implementation']:18s} {row['metric']:38s} "
                         f"{row['value']:10.3g} {sign}{row['target']:<8.3g}  {'yes' if met(row) else 'NO'}")
    return "\n".join(lines)


def measure(unit: dict[str, Any]) -> list[dict]:
    """Every case at the sizes of ``unit["quick"]``, with each case's and the whole run's wall time."""
    started = time.perf_counter()
    sizes = SIZES[unit["quick"]]
    repeats = sizes["repeats"]
    peers_a = [("reservoirpy_numpy", "numpy", 1), ("reservoirpy_jax", "jax", 1)]
    peers_b = [("reservoirpy_numpy", "numpy", 1), ("reservoirpy_numpy_workers2", "numpy", 2)]
    steps = [
        ("a", lambda: esn_case("a_esn_one_sequence", sizes["a"], repeats, sizes["fresh_repeats"], peers_a)),
        ("b", lambda: esn_case("b_esn_64_sequences", sizes["b"], repeats, sizes["fresh_repeats"], peers_b,
                               n_sequences=sizes["b"]["n_sequences"])),
        ("c", lambda: batched_states_case(sizes["c"], repeats)),
        ("d", lambda: delay_case(sizes["d"], repeats)),
        ("e", lambda: bptt_case(sizes["e"], repeats)),
        ("f", lambda: rows_of("f_streaming_ridge", "ours", in_subprocess("fresh_streaming_ridge", **sizes["f"]))),
        ("g", lambda: classification_bptt_case(sizes["g"], repeats)),
    ]
    rows = []
    for name, step in tqdm(steps, desc="speed: cases"):
        start = time.perf_counter()
        rows += step()
        rows += rows_of(f"{name}_wall", "experiment", {"wall_seconds": time.perf_counter() - start})
    return rows + rows_of("total", "experiment", {"wall_seconds": time.perf_counter() - started})


def run_experiment(out: Path | str = "results", quick: bool = False, seeds: int | None = None,
                   scheduler: str | None = None, fresh: bool = False) -> Path:
    """Measure every case, write results.csv, config.json and the figure; print targets met / not met.

    ``seeds`` is accepted for the common interface and ignored (timings use one fixed seed).  The
    measurements are one sweep unit run in this process (never on Dask workers: they are timings), so a
    finished run is not measured again unless ``fresh``.
    """
    del seeds
    require_inprocess(scheduler, "speed", "its timings must run in this process, alone")
    sizes = SIZES[quick]
    directory = open_run(out, "speed",
                         {"quick": quick, "sizes": sizes, "targets": TARGETS,
                          "hyperparameters": dict(leak=LEAK, spectral_radius=RADIUS, connectivity=CONNECTIVITY,
                                                  ridge=RIDGE, warmup=WARMUP),
                          "note": ("quick: every size is reduced, so these numbers are NOT at the targets' "
                                   "sizes" if quick else "full sizes (the targets' sizes)"),
                          "reservoirpy_jax_backend": "reservoirpy.jax.ESN (float32 by default)",
                          "reservoirpy_workers": "ESN.fit(..., workers=2) and ESN.run(..., workers=2)",
                          "cpu_count": os.cpu_count()}, fresh=fresh)
    (rows,) = run_sweep(measure, [{"quick": quick}], directory, desc="speed")
    rows = with_targets(rows)
    write_rows(directory / "results.csv", rows, COLUMNS)
    plot(directory)
    print(summary_table(rows))
    return directory


def plot(directory: Path | str) -> list[Path]:
    """Redraw ``speed.png`` from results.csv.

    Left: seconds of one fit + predict, case a and case b, each implementation side by side (ours on a
    first call in a fresh process, compile included, and warm).  Right: every target's measured value over
    its target (≥ 1: met).
    """
    plt = pyplot()
    directory = Path(directory)
    rows = read_rows(directory / "results.csv")
    targeted = [r for r in rows if r.get("kind") in ("min", "max")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.35 * len(targeted) + 2.2), layout="constrained",
                                      gridspec_kw={"width_ratios": [1, 1.3]})
    _plot_esn_seconds(left, rows)
    margin = [r["value"] / r["target"] if r["kind"] == "min" else r["target"] / r["value"] for r in targeted]
    right.barh(range(len(targeted)), margin, color=["tab:green" if m >= 1 else "tab:red" for m in margin])
    for i, (r, m) in enumerate(zip(targeted, margin, strict=True)):
        sign = "≥" if r["kind"] == "min" else "≤"
        right.text(m, i, f" {r['value']:.3g} ({sign}{r['target']:g})", va="center", fontsize=7)
    right.axvline(1.0, color="k", lw=1, ls="--")
    right.set_yticks(range(len(targeted)), [_target_label(r) for r in targeted], fontsize=7)
    right.invert_yaxis()
    right.set_xscale("log")
    ticks = [t for t in (0.1, 0.3, 1, 3, 10) if min(margin) / 2 <= t <= max(margin) * 2]
    right.set_xticks(ticks, [f"{t:g}" for t in ticks])
    right.minorticks_off()
    right.set(xlim=(min(min(margin), 1) / 1.5, max(margin) * 2.5),
              xlabel="measured / target (≥ targets) or target / measured (≤ targets): ≥ 1 is met",
              title="Speed targets")
    return [save_figure(fig, directory, "speed")]


def _target_label(row: dict) -> str:
    metric = (row["metric"].replace("speedup_vs_reservoirpy_", "speed-up vs ReservoirPy ")
              .replace("samples_per_second_vs_esn", "samples/s vs dense ESN").replace("_", " "))
    return f"{row['case'][0]}: {row['implementation'].replace('_', ' ')}, {metric}"


def _plot_esn_seconds(ax, rows: list[dict]) -> None:
    """Grouped bars: median seconds per implementation for cases a and b, labelled with the test NRMSE."""
    cases = {"a_esn_one_sequence": "a: one sequence\nN = 500, 20,000 steps",
             "b_esn_64_sequences": "b: 64 sequences\nN = 500, 2,000 steps each"}
    value = {(r["case"], r["implementation"], r["metric"]): r["value"] for r in rows if r["case"] in cases}
    names = sorted({impl for case, impl, metric in value if metric == "seconds_median"},
                   key=lambda name: (not name.startswith("ours"), name))
    colors = {name: f"C{k}" for k, name in enumerate(names)}
    labelled = set()
    for c, case in enumerate(cases):
        present = [name for name in names if (case, name, "seconds_median") in value]
        width = 0.8 / len(present)
        for k, name in enumerate(present):
            x, seconds = c + (k - (len(present) - 1) / 2) * width, value[(case, name, "seconds_median")]
            ax.bar(x, seconds, width * 0.95, color=colors[name], label=None if name in labelled else name)
            labelled.add(name)
            ax.text(x, seconds, f"{seconds:.2f} s\n{value[(case, name, 'nrmse')]:.1e}", ha="center",
                    va="bottom", fontsize=6)
    ax.set_xticks(range(len(cases)), list(cases.values()))
    ax.margins(y=0.15)
    ax.set(ylabel="fit + predict: median seconds (bar labels: seconds, test NRMSE)",
           title="ESN fit + predict, side by side with ReservoirPy 0.4.2")
    ax.legend(fontsize=7, loc="upper left")


if __name__ == "__main__":
    run_experiment(quick="--quick" in sys.argv)
