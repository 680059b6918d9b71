"""Hybrid optimisation (thesis algorithm 3.1): a random population trained by per-member Adam in one vmapped step.

Every member has its own Adam state, its own global-norm gradient clipping and the thesis' staircase learning rate
lr0 * rate^floor(step / 9). Members whose simulation or update turns non-finite are re-drawn from the initialisation
distribution (and counted) inside the same jitted step, so the others never stop. Checkpoints are written atomically
and a resumed run continues bit for bit.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._config import default_float
from .._io import atomic_write_bytes
from ..models.solvers import AbstractSolver, SemiImplicit
from ..simulate import _default_inputs, _resolve, _run, model_names
from .losses import weighted_mse
from .space import ParameterSpace


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Optimiser settings (thesis defaults for single neurons and tap withdrawal).

    Attributes:
        population: number of members P trained in parallel.
        iterations: number of Adam steps.
        lr: initial learning rate lr0 (on unconstrained parameters).
        decay: staircase decay rate (learning rate lr0 * decay^floor(step / decay_every)).
        decay_every: steps between two decays (9 in the thesis).
        clip_norm: per-member global-norm gradient clipping threshold (5 in the thesis).
        seed: random seed (population draw and re-draws).
        checkpoint_every: iterations between two checkpoints (0: never).
        relative_steps: scale each parameter's Adam step by the width of its initialisation range
            (:meth:`ParameterSpace.step_scales`), so ``lr`` is the fraction of the range moved per step; False: steps
            of size ``lr`` on the unconstrained values, as in the thesis.
        screen: random search before the descent (thesis 3.3.1): draw this many candidates, keep the ``population``
            with the lowest train loss (forward simulations only); 0: start from a plain draw of ``population``.
        restart_above: re-draw a member that stalls above this train loss (None: never): its loss fell by less than
            10 % over the last ``restart_window`` iterations of its current draw. Only in the first 70 % of the
            iterations, so a restarted member has time to converge; counted in ``FitResult.restarts``. Every member
            is still a random draw trained by Adam (multi-start descent, thesis 3.3.1).
        restart_window: iterations over which a stall is judged.
        shard: split the population over the available devices (several CPU devices after
            :func:`~neurosurrogate.use_host_devices`, or GPUs); worth it where one member's step is small
            (forward locomotion: 10 members, 1.5x on 2 cores). Results do not depend on it.
    """

    population: int = 100
    iterations: int = 400
    lr: float = 1.0
    decay: float = 0.92
    decay_every: int = 9
    clip_norm: float = 5.0
    seed: int = 0
    checkpoint_every: int = 50
    relative_steps: bool = False
    screen: int = 0
    restart_above: float | None = None
    restart_window: int = 100
    shard: bool = False

    def __post_init__(self):
        for name in ("population", "iterations", "decay_every", "restart_window"):
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"invalid {name}: got {getattr(self, name)!r}. It must be a positive integer"
                )
        if self.restart_above is not None and not self.restart_above > 0:
            raise ValueError(
                f"invalid restart_above: got {self.restart_above!r}. Use a positive train loss, or None for no restarts"
            )
        if not self.lr > 0:
            raise ValueError(f"invalid lr: got {self.lr!r}. The learning rate must be > 0")
        if not 0 < self.decay <= 1:
            raise ValueError(f"invalid decay: got {self.decay!r}. Choose a rate in (0, 1]")
        if not self.clip_norm > 0:
            raise ValueError(f"invalid clip_norm: got {self.clip_norm!r}. Choose a positive norm")
        if self.screen and self.screen < self.population:
            raise ValueError(
                f"invalid screen: got {self.screen!r} candidates for a population of {self.population}. Use 0 (no "
                "random search) or at least the population size"
            )
        if self.checkpoint_every < 0:
            raise ValueError(
                f"invalid checkpoint_every: got {self.checkpoint_every!r}. Use 0 (never) or more"
            )

    def optimizer(self, step_scales: Sequence[jax.Array] | None = None) -> optax.GradientTransformation:
        """Global-norm clipping followed by Adam with the staircase schedule (thesis 3.3.5).

        Args:
            step_scales: with ``relative_steps``, one array per free leaf multiplying Adam's steps (see
                :meth:`ParameterSpace.step_scales`); required then, ignored otherwise.
        """
        schedule = optax.exponential_decay(self.lr, self.decay_every, self.decay, staircase=True)
        chain = [optax.clip_by_global_norm(self.clip_norm), optax.adam(schedule)]
        if self.relative_steps:
            if step_scales is None:
                raise ValueError("relative_steps needs the parameter space's step_scales()")
            scales = tuple(step_scales)
            chain.append(
                optax.stateless(lambda updates, params=None: jax.tree.map(jnp.multiply, updates, scales))
            )
        return optax.chain(*chain)


@dataclasses.dataclass(frozen=True)
class Measurements:
    """Input currents and target traces of one split (train or test).

    Attributes:
        currents: shape (stimulus, time, inputs), uA/cm2.
        V: target voltages, shape (stimulus, samples, neuron), mV (samples = ceil(time / stride)).
        Ca: target calcium, same shape, or None.
    """

    currents: np.ndarray
    V: np.ndarray
    Ca: np.ndarray | None = None

    def __post_init__(self):
        cur, v = np.asarray(self.currents), np.asarray(self.V)
        if cur.ndim != 3:
            raise ValueError(f"invalid currents shape: got {cur.shape}. Expected (stimulus, time, inputs)")
        if v.ndim != 3 or v.shape[0] != cur.shape[0]:
            raise ValueError(
                f"invalid V shape: got {v.shape} for currents {cur.shape}. Expected (stimulus, samples, neuron) "
                "with one target per stimulus"
            )
        if self.Ca is not None and np.shape(self.Ca) != v.shape:
            raise ValueError(f"invalid Ca shape: got {np.shape(self.Ca)}. It must match V's shape {v.shape}")


@dataclasses.dataclass(frozen=True)
class FitProblem:
    """What to fit: a parameter space, the data and how to simulate and score it.

    Attributes:
        space: free parameters, bounds and initialisation ranges.
        train: training measurements.
        test: held-out measurements (or None).
        dt: integration step, ms.
        inputs: neurons receiving the input columns (default as in :func:`~neurosurrogate.simulate`).
        record: the neurons whose traces are fitted (default: a circuit's outputs, else every neuron).
        stride: steps between two target samples.
        w_v, w_ca: measurement weights (thesis eq. 3.20).
        neuron_weights: per fitted neuron weight w_n (default ones).
        solver: time stepping scheme.
    """

    space: ParameterSpace
    train: Measurements
    test: Measurements | None = None
    dt: float = 1.0
    inputs: tuple[str, ...] | None = None
    record: tuple[str, ...] | None = None
    stride: int = 1
    w_v: float = 1.0
    w_ca: float = 0.0
    neuron_weights: tuple[float, ...] | None = None
    solver: AbstractSolver = SemiImplicit()

    def indices(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(input indices, recorded indices) resolved against the template model."""
        model = _template(self.space)
        k = np.shape(self.train.currents)[-1]
        inputs = self.inputs
        input_index = _resolve(model, inputs, _default_inputs(model, k) if inputs is None else (), "inputs")
        outputs = getattr(model, "outputs", ()) or model_names(model)
        record_index = _resolve(model, self.record, outputs, "record")
        return input_index, record_index

    def check(self) -> None:
        """Raise a ValueError when the data do not fit the model."""
        input_index, record_index = self.indices()
        for split, m in (("train", self.train), ("test", self.test)):
            if m is None:
                continue
            steps = np.shape(m.currents)[1]
            samples = -(-steps // self.stride)
            if np.shape(m.currents)[-1] != len(input_index):
                raise ValueError(
                    f"invalid {split} currents: {np.shape(m.currents)[-1]} inputs for "
                    f"{len(input_index)} input neurons. Give one column per input neuron"
                )
            if np.shape(m.V)[1:] != (samples, len(record_index)):
                raise ValueError(
                    f"invalid {split} targets: V shape {np.shape(m.V)}, expected (stimulus, {samples}, "
                    f"{len(record_index)}). Record one trace per fitted neuron every `stride` steps"
                )
        if self.w_ca and self.train.Ca is None:
            raise ValueError("invalid w_ca: calcium is weighted but the training data have no Ca; set w_ca=0")


def _template(space: ParameterSpace):
    return eqx.combine(jax.tree.unflatten(space.treedef, list(space.template_leaves)), space.static)


def _arrays(data: Measurements) -> tuple:
    dtype = default_float()
    ca = None if data.Ca is None else jnp.asarray(data.Ca, dtype)
    return jnp.asarray(data.currents, dtype), jnp.asarray(data.V, dtype), ca


def make_loss(problem: FitProblem) -> Callable:
    """loss(u, data) for one member's unconstrained free leaves ``u`` and ``data = (currents, V, Ca)``.

    A pure, differentiable function; ``data`` is an argument (not a constant) so train and test splits of equal
    shapes share one compilation.
    """
    input_index, record_index = problem.indices()
    dt = jnp.asarray(problem.dt, default_float())

    def loss(u, data):
        currents, v_t, ca_t = data
        model = problem.space.model(u)

        def one(cur):
            v, ca, _, _ = _run(
                model, cur, dt, None, input_index, record_index, problem.stride, problem.solver
            )
            return v, ca

        v, ca = jax.vmap(one)(currents)
        w_ca = problem.w_ca if ca_t is not None else 0.0
        return weighted_mse(
            v, v_t, ca, ca_t, w_v=problem.w_v, w_ca=w_ca, neuron_weights=problem.neuron_weights
        )

    return loss


class FitState(eqx.Module):
    """Everything that changes during a fit (saved in checkpoints)."""

    u: tuple  #: unconstrained free leaves, each (P, ...)
    opt_state: optax.OptState
    redraws: jax.Array  #: (P,) number of re-draws per member after a non-finite loss or update
    restarts: jax.Array  #: (P,) number of re-draws per member after a stall (``restart_above``)
    drawn_at: jax.Array  #: (P,) iteration of each member's latest draw
    iteration: int = eqx.field(static=True)


@dataclasses.dataclass
class FitResult:
    """Outcome of :func:`fit_population`.

    Attributes:
        problem, settings: what was run.
        u: final unconstrained free leaves (P, ...).
        train_history: train loss per iteration and member, shape (iterations, P) (NaN where a member was re-drawn).
        train_loss, test_loss: final losses per member (test None without test data).
        redraws: re-draws per member after a non-finite loss or update.
        restarts: re-draws per member after a stall (``FitSettings.restart_above``).
        wall_time: seconds spent in this process (a resumed run counts only its own part).
    """

    problem: FitProblem
    settings: FitSettings
    u: tuple
    train_history: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray | None
    redraws: np.ndarray
    wall_time: float
    resumed_from: int | None = None
    restarts: np.ndarray | None = None

    @property
    def selection_loss(self) -> np.ndarray:
        """The loss used to rank members: test when available, else train (non-finite -> inf)."""
        loss = self.test_loss if self.test_loss is not None else self.train_loss
        return np.where(np.isfinite(loss), loss, np.inf)

    @property
    def best(self) -> int:
        """Index of the best member."""
        return int(np.argmin(self.selection_loss))

    @property
    def models(self):
        """The final population as one stacked model."""
        return self.problem.space.model(self.u)

    def member(self, i: int):
        """Model of member ``i``."""
        return self.problem.space.model(tuple(x[i] for x in self.u))

    def best_parameters(self) -> dict[str, list]:
        """The best member's parameters keyed by path (JSON-ready lists)."""
        return {
            k: np.asarray(v).tolist()
            for k, v in self.problem.space.named_values(self.member(self.best)).items()
        }


# ------------------------------------------------------------------------------------------------ checkpoints
def _fingerprint(problem: FitProblem, settings: FitSettings) -> str:
    info = {
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "shard"},  # layout only
        "free": list(problem.space.free_names),
        "train": [list(np.shape(problem.train.currents)), float(np.sum(np.asarray(problem.train.V, float)))],
        "dt": problem.dt,
    }
    return json.dumps(info, sort_keys=True)


def save_checkpoint(path: str | os.PathLike, state: FitState, history: np.ndarray, fingerprint: str) -> Path:
    """Write a checkpoint atomically (temporary file + rename)."""
    leaves = jax.tree.leaves(_saved(state))
    buf = io.BytesIO()
    np.savez(
        buf,
        iteration=np.asarray(state.iteration),
        history=history[: state.iteration],
        fingerprint=np.asarray(fingerprint),
        **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)},
    )
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, like: FitState, fingerprint: str) -> tuple[FitState, np.ndarray]:
    """Read a checkpoint written by :func:`save_checkpoint` for the same problem and settings."""
    with np.load(path) as z:
        if str(z["fingerprint"]) != fingerprint:
            raise ValueError(
                f"invalid checkpoint {path}: it was written for other settings or data. Start a new run (another "
                "--out) or drop --resume"
            )
        treedef = jax.tree.structure(_saved(like))
        n = treedef.num_leaves
        leaves = [jnp.asarray(z[f"leaf{i}"]) for i in range(n)]
        return FitState(*jax.tree.unflatten(treedef, leaves), int(z["iteration"])), np.asarray(z["history"])


def _saved(state: FitState) -> tuple:
    return state.u, state.opt_state, state.redraws, state.restarts, state.drawn_at


# ------------------------------------------------------------------------------------------------ the fit
def _make_step(problem: FitProblem, settings: FitSettings, key_redraw: jax.Array):
    opt = settings.optimizer(problem.space.step_scales() if settings.relative_steps else None)
    loss = make_loss(problem)
    grad_fn = jax.vmap(jax.value_and_grad(loss), in_axes=(0, None))

    @jax.jit
    def step(u, opt_state, counts, it, data, stalled):
        """One Adam step of every member; ``counts`` = (redraws, restarts, drawn_at); ``stalled`` (P,) members to
        re-draw although finite."""
        redraws, restarts, drawn_at = counts
        losses, grads = grad_fn(u, data)
        updates, new_opt = jax.vmap(opt.update)(grads, opt_state, u)
        new_u = optax.apply_updates(u, updates)

        def member_finite(tree):
            flags = [jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1) for x in jax.tree.leaves(tree)]
            return jnp.stack(flags).all(axis=0)

        finite = jnp.isfinite(losses) & member_finite(new_u)
        ok = finite & ~stalled
        # re-draw the failed members from the initialisation distribution, with a fresh optimiser state
        fresh_u = problem.space.sample(jax.random.fold_in(key_redraw, it), settings.population)
        fresh_opt = jax.vmap(opt.init)(fresh_u)

        def pick(new, fresh):
            mask = ok.reshape((-1,) + (1,) * (new.ndim - 1))
            return jnp.where(mask, new, fresh)

        new_u = jax.tree.map(pick, new_u, fresh_u)
        new_opt = jax.tree.map(pick, new_opt, fresh_opt)
        counts = (
            redraws + (~finite).astype(redraws.dtype),
            restarts + (finite & stalled).astype(restarts.dtype),
            jnp.where(ok, drawn_at, it + 1),
        )
        return new_u, new_opt, counts, jnp.where(finite, losses, jnp.nan)

    return opt, step


def stalled_members(history: np.ndarray, it: int, drawn_at: np.ndarray, settings: FitSettings) -> np.ndarray:
    """Members to re-draw before step ``it`` (see ``FitSettings.restart_above``): above the loss level, drawn at
    least ``restart_window`` iterations ago, and less than 10 % lower than ``restart_window`` iterations ago."""
    w = settings.restart_window
    if settings.restart_above is None or it < w + 1 or it > _RESTART_UNTIL * settings.iterations:
        return np.zeros(history.shape[1], bool)
    now, before = history[it - 1], history[it - 1 - w]
    with np.errstate(invalid="ignore"):
        return (
            (np.asarray(drawn_at) <= it - 1 - w)
            & (now > settings.restart_above)
            & (now > (1.0 - _RESTART_GAIN) * before)
        )


_RESTART_GAIN, _RESTART_UNTIL = 0.1, 0.7


def evaluate(problem: FitProblem, u, split: str | Measurements = "train") -> np.ndarray:
    """Loss of every member (u with a leading population axis) on one split ("train", "test" or measurements)."""
    data = split if isinstance(split, Measurements) else getattr(problem, split)
    if data is None:
        raise ValueError(f"invalid split: got {split!r} but the problem has no such data. Use 'train'")
    fn = _EVAL_CACHE.get(id(problem))
    if fn is None or fn[0] is not problem:
        fn = (problem, jax.jit(jax.vmap(make_loss(problem), in_axes=(0, None))))
        _EVAL_CACHE.clear()
        _EVAL_CACHE[id(problem)] = fn
    return np.asarray(fn[1](tuple(u), _arrays(data)))


_EVAL_CACHE: dict[int, tuple] = {}


def shard_population(tree, population: int):
    """Every leaf (leading population axis) split over the most devices that divide ``population``: the jitted
    step then runs each device's members on its own core (XLA SPMD). Unchanged with one device."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    n = max(k for k in range(1, len(devices) + 1) if population % k == 0)
    if n == 1:
        return tree
    mesh = Mesh(np.asarray(devices[:n]), ("member",))
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("member")))


def initial_population(problem: FitProblem, settings: FitSettings, key: jax.Array) -> tuple[jax.Array, ...]:
    """The starting population: a uniform draw in the initialisation ranges (thesis 3.3.3) or, with
    ``settings.screen``, the ``population`` best of that many candidates on the train loss (random search, 3.3.1)."""
    n = max(settings.screen, settings.population)
    u = problem.space.sample(key, n)
    if n == settings.population:
        return u
    size = settings.population
    losses = np.concatenate([evaluate(problem, tuple(x[i : i + size] for x in u), "train") for i in range(0, n, size)])
    keep = np.sort(np.argsort(np.where(np.isfinite(losses), losses, np.inf), kind="stable")[:size])
    return tuple(x[keep] for x in u)


def fit_population(
    problem: FitProblem,
    settings: FitSettings,
    *,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, np.ndarray], None] | None = None,
    init_u: Sequence[jax.Array] | None = None,
) -> FitResult:
    """Train a random population of parameter sets by gradient descent (thesis algorithm 3.1).

    Args:
        problem: the parameter space, data and loss.
        settings: population size, iterations, learning-rate schedule, clipping, seed, checkpoint interval.
        checkpoint: checkpoint file (``.npz``); written every ``settings.checkpoint_every`` iterations and at the end.
        resume: continue from ``checkpoint`` when it exists (same problem and settings required).
        progress: show a Rich progress bar.
        callback: called as ``callback(iteration, losses)`` after every step (raise to interrupt).
        init_u: explicit initial unconstrained leaves instead of a random draw.

    Returns:
        A :class:`FitResult`.

    Example:
        >>> space = ParameterSpace(LeakyIntegrate.default())
        >>> result = fit_population(FitProblem(space, train), FitSettings(population=10, iterations=50))
        >>> result.best_parameters()["C_m"]
    """
    problem.check()
    key = jax.random.PRNGKey(settings.seed)
    key_init, key_redraw = jax.random.split(key)
    opt, step = _make_step(problem, settings, key_redraw)
    will_resume = resume and checkpoint is not None and Path(checkpoint).exists()
    if init_u is not None:
        u0 = tuple(init_u)
    elif will_resume:  # the checkpoint holds the population; a plain draw only gives the structure
        u0 = problem.space.sample(key_init, settings.population)
    else:
        u0 = initial_population(problem, settings, key_init)
    zeros = jnp.zeros((settings.population,), jnp.int32)
    state = FitState(u0, jax.vmap(opt.init)(u0), zeros, zeros, zeros, 0)
    history = np.full((settings.iterations, settings.population), np.nan)
    fingerprint = _fingerprint(problem, settings)
    resumed_from = None
    if will_resume:
        state, done = load_checkpoint(checkpoint, state, fingerprint)
        history[: len(done)] = done
        resumed_from = state.iteration
    u, opt_state, counts = state.u, state.opt_state, (state.redraws, state.restarts, state.drawn_at)
    if settings.shard:
        u, opt_state, counts = shard_population((u, opt_state, counts), settings.population)
    start = time.perf_counter()

    def save(it):
        if checkpoint is not None:
            save_checkpoint(checkpoint, FitState(u, opt_state, *counts, it), history, fingerprint)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("fit", total=settings.iterations, completed=state.iteration, info="")
        data = _arrays(problem.train)
        for it in range(state.iteration, settings.iterations):
            stalled = stalled_members(history, it, np.asarray(counts[2]), settings)
            u, opt_state, counts, losses = step(u, opt_state, counts, jnp.asarray(it), data, jnp.asarray(stalled))
            losses = np.asarray(losses)
            history[it] = losses
            if callback is not None:
                callback(it, losses)
            if settings.checkpoint_every and (it + 1) % settings.checkpoint_every == 0:
                save(it + 1)
            finite = losses[np.isfinite(losses)]
            bar.update(task, advance=1, info=f"best {finite.min():.4g}" if finite.size else "")
    save(settings.iterations)
    train_loss = evaluate(problem, u, "train")
    test_loss = evaluate(problem, u, "test") if problem.test is not None else None
    return FitResult(
        problem,
        settings,
        u,
        history,
        train_loss,
        test_loss,
        np.asarray(counts[0]),
        time.perf_counter() - start,
        resumed_from,
        np.asarray(counts[1]),
    )
