"""The project's shared surrogate trainer: mini-batch gradient descent with any Optax optimiser.

Generic over the model (any ``eqx.Module``), the loss (``loss_fn(model, batch) -> scalar``) and the data (a tuple of
arrays sharing their leading "sample" axis). It shuffles every epoch, runs one jitted ``lax.scan`` over the batches of
an epoch, evaluates the validation loss after each epoch, keeps the model with the best validation loss, optionally
shows a Rich progress bar, and optionally writes an atomic checkpoint every few epochs from which ``resume=True``
continues (an interrupted run loses at most one checkpoint interval).

Example:
    >>> result = train(model, mse_loss, (x, y), optax.adam(1e-3), TrainConfig(epochs=100, batch_size=256))
    >>> best = result.model; result.history["val_loss"]
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._io import atomic_write_bytes

__all__ = ["TrainConfig", "TrainResult", "mse_loss", "population_loss", "population_member", "train"]

LossFn = Callable[[Any, tuple], jax.Array]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train`.

    Attributes:
        epochs: passes over the training data.
        batch_size: samples per gradient step (the last incomplete batch of an epoch is dropped; if the training set is
            smaller than one batch, the whole set is one batch).
        val_fraction: fraction of the samples held out for validation (ignored when ``val_data`` is passed).
        seed: seed of the split and of the shuffles.
        eval_batch_size: samples per chunk when evaluating the validation loss.
        progress: show a Rich progress bar.
        checkpoint: file for atomic checkpoints (``None``: no checkpoints).
        checkpoint_every: epochs between checkpoints.
        resume: continue from ``checkpoint`` if it exists.
    """

    epochs: int = 100
    batch_size: int = 256
    val_fraction: float = 0.1
    seed: int = 0
    eval_batch_size: int = 65536
    progress: bool = False
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int = 10
    resume: bool = False

    def __post_init__(self):
        if self.epochs < 0:
            raise ValueError(f"epochs={self.epochs}; pass a non-negative number of epochs")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}; pass a positive batch size")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction={self.val_fraction}; pass a fraction in [0, 1), e.g. 0.1")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every={self.checkpoint_every}; pass a positive number of epochs")


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the model with the lowest validation loss (the last one if there is no validation set).
        last_model: the model after the last epoch.
        history: ``train_loss`` and ``val_loss`` per epoch (NumPy arrays, shape (epochs,)).
        best_epoch: index of the epoch that produced ``model``.
        best_val_loss: its validation loss.
    """

    model: Any
    last_model: Any
    history: dict[str, np.ndarray]
    best_epoch: int
    best_val_loss: float


def mse_loss(model, batch: tuple) -> jax.Array:
    """Mean squared error of ``vmap(model)(x)`` against ``y`` for a batch ``(x, y)``."""
    x, y = batch
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def population_loss(loss_fn: LossFn) -> LossFn:
    """Loss of a population of models trained together by :func:`train`: the sum of the members' ``loss_fn``.

    The population is one model whose array leaves carry a leading member axis (e.g. ``eqx.filter_vmap(init)(keys)``).
    Members share no parameter, so each one's gradient is its own loss's gradient; with an optimiser that treats each
    parameter alone (Adam, AdamW with a shared schedule, no global-norm clipping) every member follows exactly the
    path it would follow trained alone on the same batches (tested). Useful to train several seeds at once, on a GPU
    in particular. The best epoch (``TrainResult.model``) is chosen on the summed loss; ``last_model`` holds each
    member's own final parameters.
    """

    def loss(population, batch) -> jax.Array:
        return jnp.sum(eqx.filter_vmap(loss_fn, in_axes=(0, None))(population, batch))

    return loss


def population_member(population, k: int):
    """Member ``k`` of a population (see :func:`population_loss`) as a plain model."""
    return jax.tree_util.tree_map(lambda x: x[k] if eqx.is_array(x) else x, population)


def _check_data(data: Sequence, name: str) -> tuple:
    if not isinstance(data, (tuple, list)) or not data:
        raise ValueError(
            f"{name} must be a non-empty tuple of arrays sharing their first axis, got {type(data).__name__}"
        )
    arrays = tuple(jnp.asarray(a) for a in data)
    n = arrays[0].shape[0] if arrays[0].ndim else None
    for i, a in enumerate(arrays):
        if a.ndim == 0 or a.shape[0] != n:
            shapes = [tuple(b.shape) for b in arrays]
            raise ValueError(
                f"{name}[{i}] has shape {tuple(a.shape)}; all arrays need the same leading length ({shapes})"
            )
    if n == 0:
        raise ValueError(f"{name} has no samples; pass at least one")
    return arrays


def _save_checkpoint(path: Path, state: tuple, meta: dict) -> None:
    buf = io.BytesIO()
    header = json.dumps(meta).encode()
    buf.write(len(header).to_bytes(8, "little"))
    buf.write(header)
    eqx.tree_serialise_leaves(buf, state)
    atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path: Path, template: tuple) -> tuple[tuple, dict]:
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        try:
            meta = json.loads(fh.read(size).decode())
            state = eqx.tree_deserialise_leaves(fh, template)
        except Exception as exc:  # corrupt or from a different model
            raise ValueError(
                f"checkpoint {path} cannot be read for this model ({type(exc).__name__}: {exc}); delete it or run "
                "without resume"
            ) from exc
    return state, meta


def _batched_eval(loss_fn: LossFn, model, data: tuple, chunk: int) -> float:
    n = data[0].shape[0]
    total = 0.0
    for start in range(0, n, chunk):
        part = tuple(a[start : start + chunk] for a in data)
        total += float(_eval_loss(loss_fn, model, part)) * part[0].shape[0]
    return total / n


@eqx.filter_jit
def _eval_loss(loss_fn, model, batch):
    return loss_fn(model, batch)


def train(
    model,
    loss_fn: LossFn,
    data: Sequence,
    optimiser: optax.GradientTransformation,
    config: TrainConfig = TrainConfig(),
    *,
    val_data: Sequence | None = None,
    callback: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` on mini-batches of ``data`` with ``optimiser``; keep the best-validation model.

    Args:
        model: an ``eqx.Module`` (its inexact-array leaves are trained; other leaves are static).
        loss_fn: ``loss_fn(model, batch) -> scalar``; ``batch`` is a tuple of arrays like ``data`` with a leading
            batch axis (e.g. :func:`mse_loss`).
        data: tuple of arrays sharing their leading sample axis, e.g. ``(x, y)``.
        optimiser: any Optax gradient transformation (e.g. ``optax.adam(1e-3)`` or a chain with clipping/schedules).
        config: epochs, batch size, validation split, seed, progress bar, checkpointing.
        val_data: an explicit validation set (same structure as ``data``); if None, ``config.val_fraction`` of
            ``data`` is held out at random.
        callback: called as ``callback(epoch, train_loss, val_loss)`` after each epoch.

    Returns:
        A :class:`TrainResult` with the best model and the loss history.
    """
    data = _check_data(data, "data")
    n = data[0].shape[0]
    key = jax.random.PRNGKey(config.seed)
    key, split_key = jax.random.split(key)
    if val_data is not None:
        val = _check_data(val_data, "val_data")
        if len(val) != len(data):
            raise ValueError(
                f"val_data has {len(val)} arrays but data has {len(data)}; pass the same structure"
            )
        tr = data
    elif config.val_fraction > 0:
        n_val = max(1, int(round(n * config.val_fraction)))
        if n_val >= n:
            raise ValueError(f"val_fraction={config.val_fraction} leaves no training samples out of {n}")
        perm = jax.random.permutation(split_key, n)
        val = tuple(a[perm[:n_val]] for a in data)
        tr = tuple(a[perm[n_val:]] for a in data)
    else:
        val, tr = None, data
    n_tr = tr[0].shape[0]
    batch = min(config.batch_size, n_tr)
    n_batches = n_tr // batch

    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimiser.init(params)

    def batch_loss(p, b):
        return loss_fn(eqx.combine(p, static), b)

    @eqx.filter_jit
    def epoch_fn(params, opt_state, ekey, tr):
        perm = jax.random.permutation(ekey, n_tr)[: n_batches * batch].reshape(n_batches, batch)

        def step(carry, idx):
            p, s = carry
            b = tuple(a[idx] for a in tr)
            loss, grads = jax.value_and_grad(batch_loss)(p, b)
            updates, s = optimiser.update(grads, s, p)
            p = optax.apply_updates(p, updates)
            return (p, s), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), perm)
        return params, opt_state, jnp.mean(losses)

    train_hist: list[float] = []
    val_hist: list[float] = []
    best_params, best_val, best_epoch = params, np.inf, -1
    start_epoch = 0
    ckpt = Path(config.checkpoint) if config.checkpoint is not None else None
    if ckpt is not None and config.resume and ckpt.exists():
        (params, opt_state, best_params, key), meta = _load_checkpoint(
            ckpt, (params, opt_state, best_params, key)
        )
        start_epoch = int(meta["epoch"])
        train_hist, val_hist = list(meta["train_loss"]), list(meta["val_loss"])
        best_val, best_epoch = float(meta["best_val_loss"]), int(meta["best_epoch"])

    progress = None
    if config.progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[msg]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        progress.start()
        task = progress.add_task("train", total=config.epochs, completed=start_epoch, msg="")
    try:
        for epoch in range(start_epoch, config.epochs):
            key, ekey = jax.random.split(key)
            params, opt_state, tl = epoch_fn(params, opt_state, ekey, tr)
            tl = float(tl)
            current = eqx.combine(params, static)
            vl = _batched_eval(loss_fn, current, val, config.eval_batch_size) if val is not None else tl
            train_hist.append(tl)
            val_hist.append(vl)
            if np.isfinite(vl) and vl < best_val:
                best_params, best_val, best_epoch = params, vl, epoch
            if callback is not None:
                callback(epoch, tl, vl)
            if progress is not None:
                progress.update(task, advance=1, msg=f"train {tl:.3e}  val {vl:.3e}  best {best_val:.3e}")
            if ckpt is not None and (
                (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs
            ):
                meta = {
                    "epoch": epoch + 1,
                    "train_loss": train_hist,
                    "val_loss": val_hist,
                    "best_val_loss": best_val if np.isfinite(best_val) else None,
                    "best_epoch": best_epoch,
                }
                if meta["best_val_loss"] is None:
                    meta["best_val_loss"] = float("inf")
                _save_checkpoint(ckpt, (params, opt_state, best_params, key), meta)
    finally:
        if progress is not None:
            progress.stop()
    if best_epoch < 0:  # no epochs run or all non-finite
        best_params = params
    return TrainResult(
        model=eqx.combine(best_params, static),
        last_model=eqx.combine(params, static),
        history={"train_loss": np.asarray(train_hist), "val_loss": np.asarray(val_hist)},
        best_epoch=best_epoch,
        best_val_loss=float(best_val),
    )
