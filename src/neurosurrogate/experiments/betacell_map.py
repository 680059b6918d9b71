"""Reproduction of seed 003: a neural-network recurrent map of the stiff beta-cell model.

Steps (each written into one run folder): build the training pairs for every requested dt (Zarr), train the map of
eq. 8 with the shared trainer, then compare map and ODE: time series (Fig. 1/7), 3-D attractors (Fig. 2), bifurcation
diagrams with inheritance and alignment (Fig. 3/5/9), fixed-point distance (Fig. 10), eigenvalues vs V_S for each dt
(Fig. 11/12), and for the modified system the fraction of random starts that reach the stable fixed point (Fig. 5c).

Entry point: :func:`run_betacell_map` (CLI: ``neurosurrogate reproduce betacell-map``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..analysis.bifurcation import (
    BifurcationDiagram,
    bifurcation_diagram,
    fraction_to_fixed_point,
    random_starts,
    stable_interval,
    transition_point,
    two_branch_diagram,
)
from ..analysis.fixed_points import iterate_map, map_fixed_point, ode_eigenvalues_from_map
from ..data.betacell import (
    ALLOWED_DT,
    MapDataConfig,
    fixed_point_pairs,
    fixed_point_separation,
    flow_derivatives,
    load_map_dataset,
    make_map_dataset,
    pairs_arrays,
    save_map_dataset,
    start_cube_with_s,
)
from ..models.betacell import V_S_RANGE, BetaCell, eigenvalues, fixed_point, solve
from ..report.html import write_report
from ..surrogates.levenberg_marquardt import LMConfig
from ..surrogates.recurrent_map import (
    MAP_LOSSES,
    RecurrentMap,
    activation_names,
    load_map,
    map_loss,
    refine_map,
    refine_steps_per_subnetwork,
    save_map,
)
from ..surrogates.training import TrainConfig, train
from ._run import RunFolder

__all__ = [
    "BetaCellMapConfig",
    "compare_fixed_points",
    "distance_misses",
    "distance_target",
    "eigenvalue_errors",
    "fit_map",
    "load_map",
    "map_optimiser",
    "ode_fixed_points",
    "run_betacell_map",
    "validation_split",
]


@dataclasses.dataclass(frozen=True)
class BetaCellMapConfig:
    """Settings of the reproduction (defaults: full size; :meth:`quick` for a smoke run).

    Attributes:
        system: ``"original"`` or ``"modified"``.
        dts: map time steps, s; the first is the main one (figures), all are used for the eigenvalue figure.
        n_chunks, chunk_time, transient, max_pairs: training data (see ``MapDataConfig``).
        fast_chunks, fast_chunk_time: a second part of the data (0 chunks = none): chunks of ``fast_chunk_time`` s
            recorded from the random start without a transient (the fast transients from the start cube toward the
            attractor, which pass close to the fixed point where the attractor does not), with their own seed
            (``seed + 1``) and up to ``max_pairs`` pairs of their own; both parts are standardised together.
        fp_chunks, fp_chunk_time, fp_radius: a third part (0 chunks = none, not in the paper): chunks of
            ``fp_chunk_time`` s from random starts within the scaled distance ``fp_radius`` of the ODE's fixed point
            u*(V_S) (``MapDataConfig.start = "fixed_point"``; the other parts leave out the ball of radius 1), seed
            ``seed + 2``, standardised with the other parts' constants: data next to u*, where the fixed-point
            distance and eigenvalues are read. Short chunks keep the data next to u* where it is unstable too. These
            pairs are held out of Adam, of the validation split and of the first refinement stage.
        fp_refine_steps, fp_refine_pairs, fp_refine_weight, fp_refine_jacobian_weight: the fixed-point stage of the
            refinement (0 steps = none; needs ``fp_chunks``): Levenberg-Marquardt steps per subnetwork (one count or
            one per variable) after the first stage, on its ``refine_pairs`` pairs plus ``fp_refine_pairs`` random
            pairs of the fixed-point part weighted ``fp_refine_weight``, with the Jacobian weight
            ``fp_refine_jacobian_weight`` (c_1 of the "sobolev" loss; smaller than the first stage's, so the values
            next to u*, which set the fixed point, count more). It removes most of S's error at u* on the modified
            system's near-fold stretch (docs/betacell.md).
        start_s: (lo, hi), the range of S of the random initial states (None: the paper's cube, [0.17, 0.2]). With a
            short ``transient`` (e.g. 2 s: V and n are on their fast oscillation after 100 time constants, S is not)
            the chunks keep S's slow relaxation from its start, and a wider range here widens the S range of the data
            toward the fixed point's S (docs/betacell.md).
        n_hidden, f, g: network size and activations (eq. 8); f and g take one name for every subnetwork or one per
            variable, comma-separated in the order V, n, S (e.g. ``f="tanh,tanh,identity"``: S affine in itself).
        epochs, batch_size, lr, val_fraction: training (Adam with a cosine decay from lr to lr * lr_final_fraction).
        weight_decay: decoupled weight decay of the input weights (see :func:`map_optimiser`); 0 (default) = plain
            Adam. 0.03 prunes input weights the data do not need, which improves the map's extrapolation to its fixed
            point (outside the data in S): it passes the modified system's stable-interval target and brings mu_1
            and mu_3 near 5 %, but moved the map's bursting -> spiking transition 0.25 away from the ODE's
            (docs/betacell.md).
        loss: ``"state"`` (default): the paper's MSE of the standardised u(t + dt) (eq. 16); ``"increment"``: squared
            error of each variable's standardised increment u_i(t + dt) - u_i(t) weighted by 1 / var(increment_i),
            so that the slow S counts as much as V and n. The subnetworks have separate weights and Adam normalises
            each weight's step, so the two train almost identically (measured: docs/betacell.md); ``"sobolev"``: the
            increment loss plus the errors of the increment's derivatives with respect to (u, V_S) against those of
            the exact flow at the same training points (``sobolev_mse``; not in the paper).
        jacobian_weight, hessian_weight: weights c_1, c_2 of the first and second derivatives in the ``"sobolev"``
            loss (c_2 = 0: Jacobians only; c_2 > 0 also computes the flow's Hessians, about 3x the training cost).
        refine_steps: Levenberg-Marquardt steps per subnetwork after Adam (:func:`refine_map`, on the same loss; 0 =
            none, the paper's training), one count for all or one per variable (V, n, S). Damped Gauss-Newton
            reaches errors Adam stalls above: the slow variable's increment error, which sets the fixed-point
            distance, falls several-fold in a few hundred steps.
        refine_pairs: training pairs used by the refinement (a random subset; J^T J costs pairs x parameters^2).
        seed: seed of data and weights.
        n_bif: V_S values of the bifurcation diagrams.
        bif_transient, bif_window: transient and window length of the diagrams, s (a window of 2x is searched).
        n_fp: V_S values for fixed points and eigenvalues.
        n_starts, n_basin, basin_time: random starts per V_S, number of V_S values, and time iterated, s, for the
            fraction of starts reaching the stable fixed point (modified system).
        series_time: length of the time series figure, s.
    """

    system: Literal["original", "modified"] = "original"
    dts: tuple[float, ...] = (0.005, 0.0025, 0.001)
    n_chunks: int = 100
    chunk_time: float = 20.0
    transient: float = 100.0
    fast_chunks: int = 0
    fast_chunk_time: float = 0.4
    fp_chunks: int = 0
    fp_chunk_time: float = 0.05
    fp_radius: float = 0.3
    fp_refine_steps: int | tuple[int, ...] = 0
    fp_refine_pairs: int = 2000
    fp_refine_weight: float = 100.0
    fp_refine_jacobian_weight: float = 1.0
    start_s: tuple[float, float] | None = None
    max_pairs: int = 200_000
    n_hidden: int = 100
    f: str = "tanh"
    g: str = "tanh"
    epochs: int = 1000
    batch_size: int = 512
    lr: float = 3e-3
    lr_final_fraction: float = 1e-3
    loss: Literal["state", "increment", "sobolev"] = "state"
    jacobian_weight: float = 10.0
    hessian_weight: float = 0.0
    weight_decay: float = 0.0
    refine_steps: int | tuple[int, ...] = 0
    refine_pairs: int = 20_000
    val_fraction: float = 0.1
    seed: int = 0
    n_bif: int = 201
    bif_transient: float = 100.0
    bif_window: float = 15.0
    n_fp: int = 101
    n_starts: int = 500
    n_basin: int = 21
    basin_time: float = 100.0
    series_time: float = 60.0

    def __post_init__(self):
        if self.system not in ("original", "modified"):
            raise ValueError(f"system={self.system!r}; use 'original' or 'modified'")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay}; pass a non-negative value (0 = plain Adam)")
        for name, spec in (("f", self.f), ("g", self.g)):
            activation_names(spec, 3, name)
        if self.loss not in MAP_LOSSES:
            raise ValueError(f"loss={self.loss!r}; choose one of {list(MAP_LOSSES)}")
        if self.jacobian_weight < 0 or self.hessian_weight < 0:
            raise ValueError(
                f"jacobian_weight={self.jacobian_weight}, hessian_weight={self.hessian_weight}; pass values >= 0"
            )
        refine_steps_per_subnetwork(self.refine_steps, 3)  # raises on a bad count
        fp_steps = refine_steps_per_subnetwork(self.fp_refine_steps, 3)
        if self.refine_pairs < 1 or self.fp_refine_pairs < 1:
            raise ValueError(
                f"refine_pairs={self.refine_pairs}, fp_refine_pairs={self.fp_refine_pairs}; pass counts >= 1"
            )
        if self.fp_refine_weight < 0 or self.fp_refine_jacobian_weight < 0 or not self.fp_radius > 0:
            raise ValueError(
                f"fp_refine_weight={self.fp_refine_weight}, fp_refine_jacobian_weight="
                f"{self.fp_refine_jacobian_weight}, fp_radius={self.fp_radius}; pass weights >= 0 and a radius > 0"
            )
        if any(fp_steps) and not self.fp_chunks:
            raise ValueError(
                f"fp_refine_steps={self.fp_refine_steps} needs pairs near the fixed point; pass fp_chunks > 0 "
                "(e.g. 10000)"
            )
        s_ok = self.start_s is None or (len(self.start_s) == 2 and 0.0 <= self.start_s[0] < self.start_s[1] <= 1.0)
        if not s_ok:
            raise ValueError(f"start_s={self.start_s}; pass (lo, hi) with 0 <= lo < hi <= 1 (S is a fraction)")
        if not self.dts:
            raise ValueError("dts is empty; pass at least one time step, e.g. (0.005,)")
        if self.fast_chunks < 0 or self.fp_chunks < 0:
            raise ValueError(
                f"fast_chunks={self.fast_chunks}, fp_chunks={self.fp_chunks}; pass 0 (none) or more chunks"
            )
        for dt in self.dts:
            if not any(abs(dt - d) < 1e-12 for d in ALLOWED_DT):
                raise ValueError(f"dt={dt} is not supported; choose from {list(ALLOWED_DT)} s")
            map_data_config(self, dt)  # raises on bad data settings (chunks, chunk length, transient)

    @classmethod
    def quick(cls, **overrides) -> BetaCellMapConfig:
        """A small configuration (about a minute on 2 CPU cores) for tests and smoke runs."""
        base = dict(
            dts=(0.005,),
            n_chunks=12,
            chunk_time=8.0,
            transient=40.0,
            max_pairs=12_000,
            n_hidden=32,
            epochs=40,
            batch_size=256,
            n_bif=5,
            bif_transient=4.0,
            bif_window=3.0,
            n_fp=11,
            n_starts=50,
            n_basin=3,
            basin_time=5.0,
            series_time=10.0,
        )
        base.update(overrides)
        return cls(**base)


# --- helpers ---------------------------------------------------------------------------------------------------
def _ode_runner(model: BetaCell, dt: float):
    """run(u0, V_S, n) -> (n + 1, 3) with Diffrax Tsit5 at rtol 1e-8 in float64."""

    def run(u0, vs, n):
        with jax.enable_x64(True):
            ts = jnp.arange(n + 1) * dt
            return np.asarray(
                solve(
                    model,
                    jnp.asarray(u0, dtype=jnp.float64),
                    vs,
                    ts,
                    solver=diffrax.Tsit5(),
                    rtol=1e-8,
                    atol=1e-10,
                )
            )

    return run


def _map_runner(net: RecurrentMap):
    def run(u0, vs, n):
        return np.asarray(iterate_map(net, jnp.asarray(u0, dtype=jnp.float32), jnp.float32(vs), n))

    return run


def map_data_config(cfg: BetaCellMapConfig, dt: float) -> tuple[MapDataConfig, ...]:
    """The training-data settings of the reproduction at time step ``dt``: the attractor part, then the fast
    transients (``fast_chunks``) and the fixed-point neighbourhood (``fp_chunks``) where asked for."""
    main = MapDataConfig(
        system=cfg.system,
        dt=dt,
        n_chunks=cfg.n_chunks,
        chunk_time=cfg.chunk_time,
        transient=cfg.transient,
        seed=cfg.seed,
        max_pairs=cfg.max_pairs,
        start_cube=start_cube_with_s(cfg.start_s),
    )
    parts = [main]
    if cfg.fast_chunks:
        parts.append(
            dataclasses.replace(
                main, n_chunks=cfg.fast_chunks, chunk_time=cfg.fast_chunk_time, transient=0.0, seed=cfg.seed + 1
            )
        )
    if cfg.fp_chunks:
        parts.append(
            dataclasses.replace(
                main,
                n_chunks=cfg.fp_chunks,
                chunk_time=cfg.fp_chunk_time,
                transient=0.0,
                seed=cfg.seed + 2,
                start="fixed_point",
                min_distance=cfg.fp_radius,
            )
        )
    return tuple(parts)


def _train_map(
    cfg: BetaCellMapConfig, dt: float, run: RunFolder, progress: bool, resume: bool = False
) -> tuple[RecurrentMap, dict]:
    t0 = time.perf_counter()
    map_path = run.path / f"map_dt{dt:g}.eqx"
    if resume and map_path.exists():
        # a finished map from an earlier run of this folder: reuse it (and its training metrics)
        old = json.loads((run.path / "metrics.json").read_text()) if (run.path / "metrics.json").exists() else {}
        run.log.info("dt=%g: reusing %s", dt, map_path)
        return load_map(map_path), old.get(f"train_dt{dt:g}", {"val_mse": None, "reused": True})
    ds = make_map_dataset(map_data_config(cfg, dt), progress=progress)
    save_map_dataset(ds, run.path / f"pairs_dt{dt:g}.zarr", overwrite=True)
    t_data = time.perf_counter() - t0
    n_pairs, n_chunks = ds.sizes["sample"], ds.sizes["chunk_index"]
    run.log.info("dt=%g: %d pairs from %d chunks in %.1f s", dt, n_pairs, n_chunks, t_data)
    t1 = time.perf_counter()
    res, fit_info = fit_map(cfg, ds, progress=progress, checkpoint=run.path / f"checkpoint_dt{dt:g}.eqx", resume=resume)
    t_train = time.perf_counter() - t1
    save_map(run.path / f"map_dt{dt:g}.eqx", res.model)
    run.log.info(
        "dt=%g: loss %s, best val loss %.3e at epoch %d, val MSE (state) %.3e (%.1f s)",
        dt,
        cfg.loss,
        res.best_val_loss,
        res.best_epoch,
        fit_info["val_mse"],
        t_train,
    )
    for stage, label in (("refine", ""), ("fp_refine", " (fixed-point stage)")):
        if fit_info[stage]:
            r = fit_info[stage]
            run.log.info(
                "dt=%g: Levenberg-Marquardt%s on %d pairs (%.1f s): loss per subnetwork %s -> %s, accepted steps %s",
                dt,
                label,
                r["pairs"],
                r["seconds"],
                ", ".join(f"{x:.3e}" for x in r["loss_before"]),
                ", ".join(f"{x:.3e}" for x in r["loss_after"]),
                r["accepted_steps"],
            )
    info = {
        **fit_info,
        "best_epoch": res.best_epoch,
        "n_pairs": int(ds.sizes["sample"]),
        "data_seconds": t_data,
        "train_seconds": t_train,
        "train_loss_final": float(res.history["train_loss"][-1]) if len(res.history["train_loss"]) else None,
    }
    return res.model, info


def map_optimiser(lr: float, steps: int, final_fraction: float = 1e-3, weight_decay: float = 0.0):
    """Adam with a cosine decay from ``lr`` to ``lr * final_fraction`` over ``steps``; with ``weight_decay`` > 0,
    decoupled weight decay (AdamW) on the input weights a, A', B of eq. 8 only (not on b, the biases or the
    standardisation constants)."""
    sched = optax.cosine_decay_schedule(lr, max(steps, 1), alpha=final_fraction)
    if weight_decay <= 0:
        return optax.adam(sched)

    def mask(params):
        off = jax.tree_util.tree_map(lambda _: False, params)
        return eqx.tree_at(lambda m: (m.a, m.A, m.B), off, (True, True, True))

    return optax.adamw(sched, weight_decay=weight_decay, mask=mask)


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (validation, training) of ``n`` pairs: a random ``fraction`` (at least one pair if > 0) drawn with
    ``seed``, the same whatever the loss."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * fraction))) if fraction > 0 else 0
    return perm[:n_val], perm[n_val:]


def fit_map(
    cfg: BetaCellMapConfig,
    ds,
    *,
    progress: bool = False,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
):
    """Train the eq. 8 map on the pairs ``ds`` (from ``make_map_dataset``) with the settings of ``cfg``.

    The validation split (``cfg.val_fraction``, drawn with ``cfg.seed``) is the same for both losses; whatever the
    training loss, the validation MSE of the standardised u(t + dt) (eq. 16, the paper's figure of merit) is reported.
    Pairs of the fixed-point part (``fp_chunks``) are held out of the split, Adam and the first refinement stage;
    only the fixed-point stage (``fp_refine_steps``) uses them.

    Returns:
        ``(TrainResult, info)`` with ``info = {"loss", "val_mse", "val_loss", "val_mse_per_variable",
        "val_increment_rel_rmse", "refine", "fp_refine"}``: the state MSE (all / per variable) and the rms increment
        error relative to the increment's standard deviation, per variable, on the validation split; ``refine`` and
        ``fp_refine``: the Levenberg-Marquardt losses per subnetwork before and after each stage, or None.
    """
    p, u, v = pairs_arrays(ds, target="state")
    du = pairs_arrays(ds, target="increment")[2]
    near = fixed_point_pairs(ds)  # the fixed-point part: held out of Adam and the first refinement stage
    cube = np.flatnonzero(~near)
    iv, it = (cube[k] for k in validation_split(len(cube), cfg.val_fraction, cfg.seed))
    n_val = len(iv)
    target = v if cfg.loss == "state" else du
    data = (p, u, target)
    if cfg.loss == "sobolev":  # the exact flow's derivatives at the same pairs (targets of sobolev_mse)
        data = data + flow_derivatives(ds, order=2 if cfg.hessian_weight > 0 else 1)
    loss_fn = map_loss(cfg.loss, du[it], jacobian_weight=cfg.jacobian_weight, hessian_weight=cfg.hessian_weight)
    net = RecurrentMap.init(jax.random.PRNGKey(cfg.seed), n_hidden=cfg.n_hidden, f=cfg.f, g=cfg.g)
    net = net.with_standardisation(ds["m_u"].values, ds["s_u"].values, ds["m_p"].values, ds["s_p"].values)
    steps = cfg.epochs * max(1, len(it) // cfg.batch_size)
    opt = map_optimiser(cfg.lr, steps, cfg.lr_final_fraction, cfg.weight_decay)
    res = train(
        net,
        loss_fn,
        tuple(x[it] for x in data),
        opt,
        TrainConfig(
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            val_fraction=0.0,  # the split is made above (val_data), the same for both losses
            seed=cfg.seed,
            progress=progress,
            checkpoint=checkpoint,
            checkpoint_every=50,
            resume=resume,
        ),
        val_data=tuple(x[iv] for x in data) if n_val else None,
    )
    def stage_file(suffix):  # each refinement stage checkpoints beside the training checkpoint
        return None if checkpoint is None else Path(checkpoint).with_suffix(suffix)

    refine = fp_refine = None
    sub = np.sort(np.random.default_rng(cfg.seed + 1).permutation(it)[: cfg.refine_pairs])
    if any(refine_steps_per_subnetwork(cfg.refine_steps, 3)):  # Levenberg-Marquardt on a subset of the pairs, same loss
        model, refine = _refine_stage(
            res.model, cfg, data, du[it], sub, steps=cfg.refine_steps, jacobian_weight=cfg.jacobian_weight,
            checkpoint=stage_file(".refine.eqx"), resume=resume, progress=progress,
        )
        res = dataclasses.replace(res, model=model)
    if any(refine_steps_per_subnetwork(cfg.fp_refine_steps, 3)):  # the fixed-point stage: + weighted near-u* pairs
        if not near.any():
            raise ValueError("fp_refine_steps: the data have no pairs near the fixed point; build them with fp_chunks")
        extra = np.sort(np.random.default_rng(cfg.seed + 2).permutation(np.flatnonzero(near))[: cfg.fp_refine_pairs])
        weight = np.concatenate([np.ones(len(sub)), np.full(len(extra), cfg.fp_refine_weight)])
        model, fp_refine = _refine_stage(
            res.model, cfg, data, du[it], np.concatenate([sub, extra]), steps=cfg.fp_refine_steps,
            jacobian_weight=cfg.fp_refine_jacobian_weight, sample_weight=weight,
            checkpoint=stage_file(".fp-refine.eqx"), resume=resume, progress=progress,
        )
        res = dataclasses.replace(res, model=model)
    sel = iv if n_val else it
    inc = np.asarray(jax.jit(jax.vmap(res.model.increment_standardised))(u[sel], p[sel]))
    state_err = (np.asarray(u[sel]) + inc) - np.asarray(v[sel])
    inc_err = inc - np.asarray(du[sel])
    info = {
        "loss": cfg.loss,
        "val_loss": res.best_val_loss,
        "val_mse": float(np.mean(state_err**2)),
        "val_mse_per_variable": np.mean(state_err**2, axis=0).tolist(),
        "val_increment_rel_rmse": (np.sqrt(np.mean(inc_err**2, axis=0)) / np.std(np.asarray(du[sel]), axis=0)).tolist(),
        "refine": refine,
        "fp_refine": fp_refine,
    }
    return res, info


def _refine_stage(
    net, cfg, data, du_train, idx, *, steps, jacobian_weight, checkpoint, resume, progress, sample_weight=None
):
    """One Levenberg-Marquardt stage (:func:`refine_map`) on the pairs ``idx`` (weighted by ``sample_weight``) with
    its own ``checkpoint`` file (or None); returns the map and a summary of the stage."""
    t_lm = time.perf_counter()
    model, lm = refine_map(
        net,
        cfg.loss,
        tuple(np.asarray(x)[idx] for x in data),
        du_train,
        jacobian_weight=jacobian_weight,
        hessian_weight=cfg.hessian_weight,
        config=LMConfig(progress=progress),
        steps=steps,
        checkpoint=checkpoint,
        resume=resume,
        sample_weight=sample_weight,
    )
    return model, {
        "pairs": len(idx),
        "loss_before": [r.history[0] for r in lm],
        "loss_after": [r.history[-1] for r in lm],
        "accepted_steps": [len(r.history) - 1 for r in lm],
        "seconds": time.perf_counter() - t_lm,
    }


@eqx.filter_jit
def _map_linearisation(net, us, vs, dt: float):
    """ODE eigenvalues from the map (mu = ln(lambda)/dt) and max |eq. 18 Jacobian - autodiff Jacobian| at ``us``."""
    p = jnp.reshape(vs, (1,))
    mu = ode_eigenvalues_from_map(net, us, vs, dt=dt)
    return mu, jnp.max(jnp.abs(net.jacobian(us, p) - jax.jacfwd(net)(us, p)))


def ode_fixed_points(model: BetaCell, v_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ODE's fixed points (len(v_grid), 3) and their eigenvalues (len(v_grid), 3), in float64."""
    with jax.enable_x64(True):
        u_ode = np.asarray(jax.jit(jax.vmap(lambda p: fixed_point(model, p)))(jnp.asarray(v_grid)))
        mu_ode = np.asarray(
            jax.jit(jax.vmap(lambda p, u: eigenvalues(model, p, u=u)))(jnp.asarray(v_grid), jnp.asarray(u_ode))
        )
    return u_ode, mu_ode


def compare_fixed_points(
    model: BetaCell,
    nets: dict[float, RecurrentMap],
    v_grid: np.ndarray,
    *,
    ode: tuple[np.ndarray, np.ndarray] | None = None,
):
    """The ODE's fixed points and eigenvalues on ``v_grid`` and, for each map (keyed by its dt), the map's fixed point
    nearest the ODE's (Newton with eq. 18 from the ODE's point and by continuation), convergence flags, the ODE
    eigenvalues mu = ln(lambda)/dt of the map and the largest |eq. 18 - autodiff| Jacobian difference.

    ``ode``: the result of :func:`ode_fixed_points` for ``model`` and ``v_grid``, when the caller already has it."""
    u_ode, mu_ode = ode if ode is not None else ode_fixed_points(model, v_grid)
    out = {"u_ode": u_ode, "mu_ode": mu_ode, "maps": {}}
    for dt, net in nets.items():
        u_map, ok, mu_map, jac_err = [], [], [], []
        guess = jnp.asarray(u_ode[0], dtype=jnp.float32)
        for k, vs in enumerate(v_grid):
            # Newton from the ODE's fixed point and from the previous map solution (continuation); of the converged
            # solutions keep the one closest to the ODE's fixed point (the map may have other, spurious ones)
            cands = [map_fixed_point(net, float(vs), jnp.asarray(u_ode[k], dtype=jnp.float32))]
            if k > 0:
                cands.append(map_fixed_point(net, float(vs), guess))
            good = [c for c in cands if bool(c[1]) and bool(jnp.all(jnp.isfinite(c[0])))] or cands[:1]
            us, conv = min(good, key=lambda c: float(np.linalg.norm(np.asarray(c[0]) - u_ode[k])))
            if bool(conv):
                guess = us
            u_map.append(np.asarray(us))
            ok.append(bool(conv))
            mu, err = _map_linearisation(net, us, jnp.float32(vs), dt)
            mu_map.append(np.asarray(mu))
            jac_err.append(float(err))
        out["maps"][dt] = {
            "u": np.stack(u_map),
            "converged": np.array(ok),
            "mu": np.stack(mu_map),
            "jac_err": float(np.max(jac_err)),
        }
    return out


def eigenvalue_errors(v_grid, mu_ode, mu_map, v_max):
    """max over V_S <= v_max of |Re mu_map - Re mu_ODE| / |Re mu_ODE|, per eigenvalue (sorted by real part)."""
    sel = v_grid <= v_max
    rel = np.abs(mu_map[sel].real - mu_ode[sel].real) / np.maximum(np.abs(mu_ode[sel].real), 1e-12)
    return rel.max(axis=0)  # per eigenvalue (sorted by decreasing real part)


def distance_misses(v_grid, distance, target: float = 1e-2) -> list[dict]:
    """The stretches of consecutive V_S where the fixed-point distance exceeds ``target``, in ``v_grid`` order:
    ``[{"v_s": [first, last], "distance": [min, max]}, ...]`` (empty: within ``target`` everywhere). A NaN distance
    (no fixed point found) is a miss; such V_S are counted in the stretch's ``"no_fixed_point"`` and left out of its
    distance range (None when the stretch has no finite distance)."""
    v_grid, distance = np.asarray(v_grid, dtype=float), np.asarray(distance, dtype=float)
    if v_grid.shape != distance.shape or v_grid.ndim != 1:
        raise ValueError(f"v_grid {v_grid.shape} and distance {distance.shape}: pass two 1-D arrays of one length")
    over = ~(distance <= target)  # NaN (no fixed point found) counts as a miss
    edges = np.flatnonzero(np.diff(np.concatenate([[0], over.astype(np.int8), [0]])))
    stretches = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):  # the misses' runs [start, stop)
        d = distance[start:stop]
        finite = d[np.isfinite(d)]
        entry = {
            "v_s": [round(float(v_grid[start]), 9), round(float(v_grid[stop - 1]), 9)],  # no -31.799999999999997
            "distance": [float(finite.min()), float(finite.max())] if finite.size else None,
        }
        if finite.size < d.size:
            entry["no_fixed_point"] = int(d.size - finite.size)
        stretches.append(entry)
    return stretches


def distance_target(v_grid, distance, target: float = 1e-2) -> dict:
    """The fixed-point distance target (every V_S within ``target``): ``{"target", "within", "of", "misses"}`` with
    the number of V_S within it, their total and :func:`distance_misses`."""
    misses = distance_misses(v_grid, distance, target)
    within = int(np.sum(np.asarray(distance, dtype=float) <= target))
    return {"target": target, "within": within, "of": len(np.asarray(v_grid)), "misses": misses}


def distance_misses_from_run(folder, dt: float = 0.005, target: float = 1e-2) -> dict:
    """:func:`distance_target` of the map for ``dt`` in a finished run folder (from its ``fixed_points.json``)."""
    path = Path(folder) / "fixed_points.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; pass the folder of a finished `reproduce betacell-map` run")
    fp = json.loads(path.read_text())
    key = f"u_map_dt{dt:g}"
    if key not in fp:
        have = [k.removeprefix("u_map_dt") for k in fp if k.startswith("u_map_dt")]
        raise KeyError(f"no map for dt={dt:g} in {path}; it holds dt {', '.join(have)}")
    dist = np.linalg.norm(np.asarray(fp[key], dtype=float) - np.asarray(fp["u_ode"], dtype=float), axis=1)
    return distance_target(fp["v_s"], dist, target)


# --- figures ---------------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fig_series(path, t, series: dict[str, np.ndarray], titles):
    plt = _plt()
    fig, axes = plt.subplots(3, len(series), figsize=(5 * len(series), 7), sharex=True, squeeze=False)
    labels = ["V (mV)", "n", "S"]
    for c, (ode, net) in enumerate(series.values()):
        for r in range(3):
            ax = axes[r, c]
            ax.plot(t, ode[:, r], "k-", lw=1.2, label="ODE")
            ax.plot(t, net[:, r], "r--", lw=0.9, label="map")
            ax.set_ylabel(labels[r])
        axes[0, c].set_title(titles[c])
        axes[-1, c].set_xlabel("t (s)")
    axes[0, 0].legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fig_attractor(path, ode, net, vs):
    plt = _plt()
    fig = plt.figure(figsize=(11, 5))
    for k, (traj, name) in enumerate([(ode, "ODE"), (net, "map")]):
        ax = fig.add_subplot(1, 2, k + 1, projection="3d")
        ax.plot(traj[:, 2], traj[:, 1], traj[:, 0], lw=0.5, color="k" if k == 0 else "r")
        ax.set_xlabel("S")
        ax.set_ylabel("n")
        ax.set_zlabel("V (mV)")
        ax.set_title(f"{name}, V_S = {vs:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fig_bifurcation(path, diagrams: dict[str, BifurcationDiagram], transitions: dict[str, Any]):
    plt = _plt()
    n = len(diagrams)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4.5), squeeze=False)
    for ax, (name, d) in zip(axes[0], diagrams.items(), strict=True):
        t = np.arange(d.windows.shape[1]) * d.dt
        im = ax.pcolormesh(d.v_s, t, d.windows[:, :, 0].T, cmap="Greys", shading="nearest", vmin=-70, vmax=-20)
        if transitions.get(name) is not None:
            ax.axvline(transitions[name], color="tab:blue", ls=":", lw=1)
        ax.set_title(name)
        ax.set_xlabel("V_S (mV)")
        ax.set_ylabel("t (s)")
    fig.colorbar(im, ax=axes[0].tolist(), label="V (mV)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fig_fp_distance(path, v_grid, dist: dict[float, np.ndarray]):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for dt, d in dist.items():
        ax.semilogy(v_grid, d, label=f"dt = {dt:g}")
    ax.axhline(1e-2, color="grey", ls=":", label="target 1e-2")
    ax.set_xlabel("V_S (mV)")
    ax.set_ylabel("|u*_map - u*_ODE|")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fig_data_separation(path, sep: dict[str, np.ndarray]):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    axes[0].semilogy(sep["V_S"], sep["min_distance"], "ko", ms=3)
    axes[0].axhline(1e-2, color="grey", ls=":", label="1e-2")
    axes[0].set_xlabel("V_S (mV) of the chunk")
    axes[0].set_ylabel("min |u_data - u*_ODE|")
    axes[0].set_title("distance from the fixed point to the training data (Fig. 6b/c)")
    axes[0].legend()
    axes[1].vlines(sep["V_S"], sep["S_min"], sep["S_max"], color="k", lw=1.5, label="S range of the chunk")
    axes[1].plot(sep["V_S"], sep["S_star"], "r.-", label="S of the ODE's fixed point")
    axes[1].set_xlabel("V_S (mV)")
    axes[1].set_ylabel("S")
    axes[1].set_title("the fixed point's S against the data's")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fig_eigs(path, v_grid, mu_ode, maps: dict[float, dict]):
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for k in range(3):
        ax = axes[k]
        ax.plot(v_grid, mu_ode[:, k].real, "k-", lw=2, label="ODE")
        for dt, m in maps.items():
            ax.plot(v_grid, m["mu"][:, k].real, "--", label=f"map dt={dt:g}")
        ax.set_title(f"Re mu_{k + 1}")
        ax.set_xlabel("V_S (mV)")
    axes[0].set_ylabel("1/s")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fig_basin(path, v_grid, max_re_ode, max_re_map, v_basin, frac):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    tr = lambda x: np.where(x > 0, np.log10(np.maximum(x, 0) + 1), x)  # Fig. 5c scale
    ax.plot(v_grid, tr(max_re_ode), "k-", label="ODE: Re mu_1 (log10(x+1) if > 0)")
    ax.plot(v_grid, tr(max_re_map), "b--", label="map: Re mu_1")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("V_S (mV)")
    ax2 = ax.twinx()
    ax2.plot(v_basin, frac, "ro-", ms=3, label="P_fxp (map)")
    ax2.set_ylabel("fraction of random starts at the fixed point", color="r")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the experiment --------------------------------------------------------------------------------------------------
def run_betacell_map(
    cfg: BetaCellMapConfig, out: str | os.PathLike, *, progress: bool = True, resume: bool = False
) -> dict[str, Any]:
    """Run the full reproduction into the run folder ``out``; return the metrics (also in ``metrics.json``).

    Args:
        cfg: the configuration.
        out: run folder (created; files are replaced).
        progress: Rich progress bars.
        resume: reuse the trained maps in ``out`` and continue unfinished trainings from their checkpoints (an
            interrupted run loses at most 50 epochs).
    """
    t_start = time.perf_counter()
    run = RunFolder(out, dataclasses.asdict(cfg))
    model = BetaCell.from_name(cfg.system)
    metrics: dict[str, Any] = {"system": cfg.system, "g_K2": model.g_K2}
    nets: dict[float, RecurrentMap] = {}
    for dt in cfg.dts:
        net, info = _train_map(cfg, dt, run, progress, resume)
        nets[dt] = net
        metrics[f"train_dt{dt:g}"] = info
    dt = cfg.dts[0]
    net = nets[dt]
    metrics["val_mse"] = metrics[f"train_dt{dt:g}"]["val_mse"]
    ode_run, map_run = _ode_runner(model, dt), _map_runner(net)
    figures: list[tuple[str, Path]] = []

    # time series at V_S = -36 (bursting) and -33 (spiking), both from the same point on the attractor (Fig. 1/7)
    n_series = int(round(cfg.series_time / dt))
    series = {}
    for vs in (-36.0, -33.0):
        u_att = ode_run(np.array([-60.0, 0.0, 0.18]), vs, int(round(cfg.bif_transient / dt)))[-1]
        series[vs] = (ode_run(u_att, vs, n_series), map_run(u_att, vs, n_series))
    t = np.arange(n_series + 1) * dt
    _fig_series(run.figure("time_series"), t, series, ["V_S = -36 (bursting)", "V_S = -33 (spiking)"])
    figures.append(("Time series, ODE (black) vs map (red dashed), cf. Fig. 1 and 7", run.figure("time_series")))
    _fig_attractor(run.figure("attractor_3d"), *series[-36.0], -36.0)
    figures.append(("3-D bursting attractor at V_S = -36: ODE and map (Fig. 2)", run.figure("attractor_3d")))

    # bifurcation diagrams with inheritance + alignment
    v_bif = np.linspace(*V_S_RANGE, cfg.n_bif)
    kw = dict(
        dt=dt,
        transient_steps=int(round(cfg.bif_transient / dt)),
        window_steps=int(round(cfg.bif_window / dt)),
        align_stride=max(1, int(round(0.05 / dt))),
        progress=progress,
    )
    far = np.array([-20.0, 0.05, 0.2])  # far from the fixed point: lands on the oscillating attractor
    diagrams: dict[str, BifurcationDiagram] = {}
    if cfg.system == "original":
        diagrams["ODE"] = bifurcation_diagram(ode_run, v_bif, far, label="ODE diagram", **kw)
        diagrams["map"] = bifurcation_diagram(map_run, v_bif, far, label="map diagram", **kw)
    else:
        with jax.enable_x64(True):
            u_fp36 = np.asarray(fixed_point(model, -36.0))
        near = u_fp36 + np.array([0.05, 0.0, 0.0])
        for name, r in (("ODE", ode_run), ("map", map_run)):
            diagrams[f"{name}, far start"] = two_branch_diagram(r, v_bif, far, -36.0, label=f"{name} far", **kw)
            diagrams[f"{name}, near fixed point"] = two_branch_diagram(
                r, v_bif, near, -36.0, label=f"{name} near", **kw
            )
    transitions = {k: transition_point(d.v_s, d.regimes) for k, d in diagrams.items()}
    metrics["regimes"] = {
        k: dict(zip([f"{v:.3f}" for v in d.v_s], d.regimes, strict=True)) for k, d in diagrams.items()
    }
    metrics["transition_v_s"] = transitions
    k_ode = "ODE" if cfg.system == "original" else "ODE, far start"
    k_map = "map" if cfg.system == "original" else "map, far start"
    if transitions[k_ode] is not None and transitions[k_map] is not None:
        metrics["transition_error"] = abs(transitions[k_ode] - transitions[k_map])
    else:
        metrics["transition_error"] = None
    _fig_bifurcation(run.figure("bifurcation"), diagrams, transitions)
    figures.append(
        (
            "Bifurcation diagrams (V, darker = higher), inheritance + window alignment (Fig. 3/5/9)",
            run.figure("bifurcation"),
        )
    )

    # where the fixed point lies relative to the training data (Fig. 6b/c): never in it, and beyond its S range
    pairs_path = run.path / f"pairs_dt{dt:g}.zarr"
    if pairs_path.exists():
        sep = fixed_point_separation(load_map_dataset(pairs_path))
        metrics["data_separation"] = {
            "min_distance_to_fixed_point": float(sep["min_distance"].min()),
            "max_fixed_point_S_standardised": float(sep["S_star_standardised"].max()),
            "data_S_range": [float(sep["S_min"].min()), float(sep["S_max"].max())],
            # chunks whose S reaches the fixed point's: where none near a V_S do, the map extrapolates in S to u*
            "chunks_reaching_fixed_point_S": float(np.mean(sep["S_headroom"] >= 0)),
        }
        _fig_data_separation(run.figure("data_separation"), sep)
        figures.append(
            (
                "Training data vs the ODE's fixed point: smallest distance per chunk (Fig. 6b/c) and S ranges",
                run.figure("data_separation"),
            )
        )

    # fixed points and eigenvalues (Fig. 10-12)
    v_grid = np.linspace(*V_S_RANGE, cfg.n_fp)
    fps = compare_fixed_points(model, nets, v_grid)
    dist = {d: np.linalg.norm(m["u"] - fps["u_ode"], axis=1) for d, m in fps["maps"].items()}
    _fig_fp_distance(run.figure("fixed_point_distance"), v_grid, dist)
    figures.append(("Distance between map and ODE fixed points (Fig. 10)", run.figure("fixed_point_distance")))
    _fig_eigs(run.figure("eigenvalues"), v_grid, fps["mu_ode"], fps["maps"])
    figures.append(("Fixed-point eigenvalues vs V_S: ODE and maps for each dt (Fig. 11/12)", run.figure("eigenvalues")))
    left = 0.5 * (V_S_RANGE[0] + V_S_RANGE[1])
    metrics["fixed_point"] = {
        f"dt{d:g}": {
            "max_distance": float(dist[d].max()),
            "median_distance": float(np.median(dist[d])),
            "distance_target": distance_target(v_grid, dist[d], 1e-2),  # the target: every V_S within 1e-2
            "all_converged": bool(fps["maps"][d]["converged"].all()),
            "eq18_vs_autodiff_max_abs": fps["maps"][d]["jac_err"],
            "eig_rel_err_left_half": eigenvalue_errors(v_grid, fps["mu_ode"], fps["maps"][d]["mu"], left).tolist(),
        }
        for d in nets
    }
    metrics["fp_max_distance"] = metrics["fixed_point"][f"dt{dt:g}"]["max_distance"]
    metrics["eig_max_rel_err_left_half"] = float(max(metrics["fixed_point"][f"dt{dt:g}"]["eig_rel_err_left_half"]))
    run.write_json(
        "fixed_points.json",
        {
            "v_s": v_grid,
            "u_ode": fps["u_ode"],
            "mu_ode_real": fps["mu_ode"].real,
            "mu_ode_imag": fps["mu_ode"].imag,
            **{f"u_map_dt{d:g}": m["u"] for d, m in fps["maps"].items()},
            **{f"mu_map_real_dt{d:g}": m["mu"].real for d, m in fps["maps"].items()},
            **{f"mu_map_imag_dt{d:g}": m["mu"].imag for d, m in fps["maps"].items()},
        },
    )

    if cfg.system == "modified":
        max_ode = fps["mu_ode"][:, 0].real
        max_map = fps["maps"][dt]["mu"][:, 0].real
        si_ode, si_map = stable_interval(v_grid, max_ode), stable_interval(v_grid, max_map)
        metrics["stable_interval_ode"] = si_ode
        metrics["stable_interval_map"] = si_map
        if si_ode is not None and si_map is not None:
            metrics["stable_interval_error"] = float(max(abs(si_ode[0] - si_map[0]), abs(si_ode[1] - si_map[1])))
        # fraction of random starts reaching the stable fixed point (map, n_starts per V_S), Fig. 5c
        v_basin = np.linspace(*V_S_RANGE, cfg.n_basin)
        n_b = int(round(cfg.basin_time / dt))
        starts = random_starts(cfg.n_starts, seed=cfg.seed)
        fracs = []
        for k, vs in enumerate(v_basin):
            kk = int(np.argmin(np.abs(v_grid - vs)))
            finals = np.asarray(
                iterate_map(
                    net,
                    jnp.asarray(starts, dtype=jnp.float32),
                    jnp.full((cfg.n_starts,), vs, dtype=jnp.float32),
                    n_b,
                    record_every=n_b,
                )
            )[:, -1]
            stable = max_map[kk] < 0
            fracs.append(fraction_to_fixed_point(finals, fps["maps"][dt]["u"][kk]) if stable else 0.0)
            del k
        metrics["fraction_to_fixed_point_map"] = dict(zip([f"{v:.2f}" for v in v_basin], fracs, strict=True))
        _fig_basin(run.figure("fixed_point_stability"), v_grid, max_ode, max_map, v_basin, fracs)
        figures.append(
            (
                "Largest Re mu of the fixed point (ODE, map) and fraction of random starts reaching it (Fig. 5c/9c)",
                run.figure("fixed_point_stability"),
            )
        )

    metrics["seconds_total"] = time.perf_counter() - t_start
    run.write_metrics(metrics)
    summary = {
        "system": cfg.system,
        "dt (main)": dt,
        "validation MSE (standardised)": metrics["val_mse"],
        "max fixed-point distance": metrics["fp_max_distance"],
        "V_S with fixed-point distance <= 1e-2": "{within} of {of}".format(
            **metrics["fixed_point"][f"dt{dt:g}"]["distance_target"]
        ),
        "max eigenvalue rel. error, V_S <= -35": metrics["eig_max_rel_err_left_half"],
        "bursting->spiking transition (ODE)": transitions[k_ode],
        "transition (map)": transitions[k_map],
    }
    for stage, label in (("refine", ""), ("fp_refine", ", fixed-point stage")):
        refine = (metrics.get(f"train_dt{dt:g}") or {}).get(stage)
        if refine:
            summary[f"Levenberg-Marquardt{label}, loss per subnetwork V, n, S"] = "; ".join(
                f"{a:.2e} -> {b:.2e}" for a, b in zip(refine["loss_before"], refine["loss_after"], strict=True)
            )
    if cfg.system == "modified":
        summary["stable interval ODE"] = metrics.get("stable_interval_ode")
        summary["stable interval map"] = metrics.get("stable_interval_map")
    write_report(
        run.path / "report.html",
        f"Beta-cell recurrent map ({cfg.system} system)",
        [
            ("Summary", summary),
            ("Figures", figures),
            ("All metrics", {k: v for k, v in metrics.items() if k != "regimes"}),
        ],
        footer="neurosurrogate reproduce betacell-map (seed 003, Kuptsov, Stankevich & Bagautdinova)",
    )
    return metrics
