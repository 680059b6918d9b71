"""Variant sweep of the beta-cell recurrent map: several seeds per variant, scored by the fixed-point targets.

    PYTHONPATH=src python benchmarks/betacell_map_sweep.py \
        --data orig_t100=original:100 --data orig_t2w=original:2:0.25 \
        --variant orig_t100/tanh/tanh/0 --variant orig_t2w/tanh/identity/0.03 ... \
        --seeds 8 --epochs 1000 --cache runs/sweep-data --out benchmarks/results/betacell_map_sweep.json

A data set ``NAME=SYSTEM:TRANSIENT[:S_MAX]`` is the reproduction's pairs (100 chunks of 20 s, dt 0.005, 200 000 pairs,
seed 0) after a transient of TRANSIENT seconds, from random starts whose S is drawn in [0.17, S_MAX] (default 0.2, the
paper's cube); it is built once and cached as Zarr under ``--cache``. A variant ``DATA/F/G/WEIGHT_DECAY`` trains
``--seeds`` maps of eq. 8 (activations F and G, one name or one per variable joined by commas) on that data with the
reproduction's optimiser (``map_optimiser``: Adam or AdamW, cosine decay 3e-3 -> 3e-6, batch 512, 10 % validation).

The seeds of a variant train together as one population through the project's shared trainer (``population_loss``:
the sum of the members' losses; members share no weight and Adam's step is per weight, so each member trains exactly
as it would alone on the same batches); the model kept is the epoch with the lowest summed validation loss. Each
member is then scored as in ``reproduce betacell-map`` (41 values of V_S): the largest and median distance between the
map's and the ODE's fixed point, the largest over V_S <= -35, and the eigenvalue errors over V_S <= -35; the mean map
of the members (an ensemble) is scored too. Results go to ``--out`` (JSON, rewritten after each variant) with the
device and the training time of each variant (all seeds together), so a GPU run also records GPU timings.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from neurosurrogate.analysis.fixed_points import map_fixed_point
from neurosurrogate.data.betacell import (
    START_CUBE,
    MapDataConfig,
    load_map_dataset,
    make_map_dataset,
    pairs_arrays,
    save_map_dataset,
    start_cube_with_s,
)
from neurosurrogate.experiments.betacell_map import (
    BetaCellMapConfig,
    compare_fixed_points,
    eigenvalue_errors,
    map_optimiser,
    ode_fixed_points,
    validation_split,
)
from neurosurrogate.models.betacell import BetaCell
from neurosurrogate.surrogates.recurrent_map import RecurrentMap, standardised_mse
from neurosurrogate.surrogates.training import TrainConfig, population_loss, population_member, train


def _dataset(spec: str, cache: Path):
    name, _, rest = spec.partition("=")
    parts = rest.split(":")
    if not name or len(parts) not in (2, 3):
        raise SystemExit(f"--data {spec!r}: use NAME=SYSTEM:TRANSIENT[:S_MAX], e.g. orig_t100=original:100")
    system, transient = parts[0], float(parts[1])
    s_max = float(parts[2]) if len(parts) == 3 else START_CUBE[2][1]
    path = cache / f"{name}.zarr"
    if path.exists():
        return name, load_map_dataset(path)
    cube = start_cube_with_s((START_CUBE[2][0], s_max))
    cfg = MapDataConfig(system=system, transient=transient, start_cube=cube, max_pairs=200_000)
    ds = make_map_dataset(cfg, progress=True)
    save_map_dataset(ds, path)
    return name, ds


def _stacked_maps(seeds, cfg: BetaCellMapConfig, ds):
    stats = tuple(ds[k].values for k in ("m_u", "s_u", "m_p", "s_p"))
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    init = lambda k: RecurrentMap.init(k, n_hidden=cfg.n_hidden, f=cfg.f, g=cfg.g).with_standardisation(*stats)
    return eqx.filter_vmap(init)(keys)


def _score(model: BetaCell, ode, nets: list, v_grid: np.ndarray, dt: float) -> dict:
    out = {"dmax": [], "dmed": [], "dmax_left": [], "eig_left": [], "converged": [], "distance": []}
    left = v_grid <= -35.0
    for net in nets:
        fps = compare_fixed_points(model, {dt: net}, v_grid, ode=ode)
        m = fps["maps"][dt]
        d = np.linalg.norm(m["u"] - fps["u_ode"], axis=1)
        out["dmax"].append(float(d.max()))
        out["dmed"].append(float(np.median(d)))
        out["dmax_left"].append(float(d[left].max()))
        out["eig_left"].append(eigenvalue_errors(v_grid, fps["mu_ode"], m["mu"], -35.0).tolist())
        out["converged"].append(bool(m["converged"].all()))
        out["distance"].append(d.tolist())
    return out


def _score_ensemble(u_ode: np.ndarray, stacked, v_grid: np.ndarray) -> dict:
    """Fixed points of the mean map (1/K sum of the members' steps), Newton with autodiff from the ODE's point."""
    mean_map = lambda u, p: jnp.mean(eqx.filter_vmap(lambda m: m(u, p))(stacked), axis=0)
    solve = eqx.filter_jit(
        jax.vmap(lambda v, u0: map_fixed_point(mean_map, v, u0, jacobian="autodiff"), in_axes=(0, 0))
    )
    u, _ = solve(jnp.asarray(v_grid, jnp.float32), jnp.asarray(u_ode, jnp.float32))
    d = np.linalg.norm(np.asarray(u, np.float64) - u_ode, axis=1)
    return {"dmax": float(d.max()), "dmed": float(np.median(d)), "dmax_left": float(d[v_grid <= -35.0].max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True, help="NAME=SYSTEM:TRANSIENT[:S_MAX]")
    ap.add_argument("--variant", action="append", required=True, help="DATA/F/G/WEIGHT_DECAY")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--n-fp", type=int, default=41, help="values of V_S for the fixed points")
    ap.add_argument("--cache", type=Path, default=Path("runs/betacell-sweep-data"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    data = dict(_dataset(spec, args.cache) for spec in args.data)
    v_grid = np.linspace(-40.0, -30.0, args.n_fp)
    device = jax.devices()[0]
    report = {
        "device": f"{device.platform}: {getattr(device, 'device_kind', '')}",
        "host": platform.node(),
        "jax": jax.__version__,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "variants": [],
    }
    for variant in args.variant:
        try:
            name, f, g, wd = variant.split("/")
            ds = data[name]
        except (ValueError, KeyError):
            raise SystemExit(
                f"--variant {variant!r}: use DATA/F/G/WEIGHT_DECAY with DATA one of {sorted(data)}"
            ) from None
        cfg = BetaCellMapConfig(
            system=ds.attrs["system"],
            dts=(float(ds.attrs["dt"]),),
            epochs=args.epochs,
            f=f,
            g=g,
            weight_decay=float(wd),
        )
        p, u, v = pairs_arrays(ds)
        iv, it = validation_split(p.shape[0], cfg.val_fraction, 0)
        stacked = _stacked_maps(range(args.seeds), cfg, ds)
        steps = cfg.epochs * (len(it) // cfg.batch_size)
        t0 = time.perf_counter()
        res = train(
            stacked,
            population_loss(standardised_mse),
            (p[it], u[it], v[it]),
            map_optimiser(cfg.lr, steps, cfg.lr_final_fraction, cfg.weight_decay),
            TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, val_fraction=0.0, progress=True),
            val_data=(p[iv], u[iv], v[iv]),
        )
        jax.block_until_ready(res.model)
        seconds = time.perf_counter() - t0
        cpu = jax.devices("cpu")[0]
        with jax.default_device(cpu):
            stacked_cpu = jax.device_put(res.model, cpu)
            members = [population_member(stacked_cpu, k) for k in range(args.seeds)]
            val = [float(standardised_mse(m, (p[iv], u[iv], v[iv]))) for m in members]
            model = BetaCell.from_name(cfg.system)
            ode = ode_fixed_points(model, v_grid)
            scores = _score(model, ode, members, v_grid, cfg.dts[0])
            ensemble = _score_ensemble(ode[0], stacked_cpu, v_grid)
        entry = {
            "variant": variant,
            "system": cfg.system,
            "transient": float(ds.attrs["transient"]),
            "start_cube": ds.attrs.get("start_cube"),
            "train_seconds_all_seeds": seconds,
            "val_mse": val,
            **scores,
            "ensemble": ensemble,
        }
        report["variants"].append(entry)
        print(
            f"{variant:45s} {seconds:6.1f} s  dmax median {np.median(scores['dmax']):.3g} "
            f"(best {min(scores['dmax']):.3g})  dmed median {np.median(scores['dmed']):.3g}  "
            f"ensemble dmax {ensemble['dmax']:.3g}",
            flush=True,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**report, "v_s": v_grid.tolist()}, indent=1))


if __name__ == "__main__":
    main()
