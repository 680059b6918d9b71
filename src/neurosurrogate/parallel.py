"""Executors: run independent tasks in worker processes on this machine, or fan them out over a Ray cluster.

Both executors run a module-level function on picklable tasks and yield ``(index, result_or_exception)`` as
tasks finish. :func:`run_tasks` adds the policy shared by every caller: a failed task is retried (once by
default), then reported; every finished result is handed to ``on_result`` immediately, so callers can persist
it before later tasks run (a later failure never loses finished work).

Worker processes are long-lived: a worker may keep expensive state (a loaded NEURON network) in a module
global between tasks. Local workers use the ``spawn`` start method, so the parent process never forks a loaded
simulator.

Example::

    with make_executor("process", workers=2) as ex:
        report = run_tasks(ex, simulate, tasks, on_result=lambda i, r: save(r))
    report.failed        # {index: "error message"} for tasks that failed twice
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

EXECUTORS = ("process", "ray")


class Executor(abc.ABC):
    """Runs ``fn(task)`` for many tasks; subclasses choose where."""

    workers: int

    @abc.abstractmethod
    def map_unordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, result)`` or ``(index, exception)`` in completion order."""

    def close(self) -> None:  # noqa: B027  (optional hook; default: nothing to release)
        """Release the workers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ProcessExecutor(Executor):
    """Worker processes on this machine (``spawn``), kept alive across calls until :meth:`close`.

    Args:
        workers: number of processes (default 1; each NEURON worker uses one core).
    """

    def __init__(self, workers: int = 1):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"invalid workers: got {workers!r}; pass a positive integer (e.g. --workers 2)")
        self.workers = workers
        self._pool: cf.ProcessPoolExecutor | None = None

    def _get_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"))
        return self._pool

    def map_unordered(self, fn, tasks):
        pool = self._get_pool()
        futures = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
        broken = False
        for fut in cf.as_completed(futures):
            i = futures[fut]
            try:
                yield i, fut.result()
            except cf.process.BrokenProcessPool as exc:
                broken = True
                yield i, RuntimeError(f"worker process died ({exc}); the task was lost with it")
            except Exception as exc:
                yield i, exc
        if broken:  # a crashed worker breaks the whole pool: start a fresh one for the retries
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class _RayWorker:
    """A Ray actor: one long-lived process that runs tasks (keeps module globals such as a loaded network)."""

    def call(self, fn, task):
        return fn(task)


class RayExecutor(Executor):
    """Fan tasks out over a Ray cluster: one actor (process, 1 CPU) per worker.

    Args:
        workers: number of actors (default: the cluster's CPU count).
        address: Ray cluster address (``"auto"`` to join a running cluster; None: the running/local instance).
        num_cpus: CPUs for a local instance started here (None: all).

    The package must be importable on every node (same environment).
    """

    def __init__(
        self, workers: int | None = None, *, address: str | None = None, num_cpus: int | None = None
    ):
        try:
            import ray
        except ImportError as exc:
            raise ImportError("--executor ray needs Ray: pip install 'neurosurrogate[distributed]'") from exc
        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
            self._owns = True
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"invalid workers: got {workers!r}; pass a positive integer")
        self.workers = workers
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)
        self._actors: list = []

    def _actor(self, k: int):
        while len(self._actors) <= k:
            self._actors.append(self._actor_cls.remote())
        return self._actors[k]

    def map_unordered(self, fn, tasks):
        ray = self._ray
        queue = list(enumerate(tasks))[::-1]
        pending: dict[Any, tuple[int, int]] = {}
        idle = list(range(self.workers))
        while queue or pending:
            while queue and idle:
                k = idle.pop()
                i, task = queue.pop()
                pending[self._actor(k).call.remote(fn, task)] = (i, k)
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i, k = pending.pop(ref)
            try:
                yield i, ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # the actor died: replace it
                self._actors[k] = self._actor_cls.remote()
                yield i, RuntimeError(f"Ray worker died: {exc}")
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                yield i, cause if isinstance(cause, BaseException) else exc
            except Exception as exc:
                yield i, exc
            idle.append(k)

    def close(self):
        for actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception:
                pass
        self._actors = []
        if self._owns:
            self._ray.shutdown()
            self._owns = False


def make_executor(
    kind: str = "process", workers: int | None = None, *, address: str | None = None
) -> Executor:
    """An executor by name: ``"process"`` (default, this machine) or ``"ray"`` (extra ``[distributed]``).

    Args:
        kind: ``"process"`` or ``"ray"``.
        workers: worker count (process default 1; Ray default: cluster CPUs).
        address: Ray cluster address (Ray only; None starts or reuses a local instance).
    """
    if kind == "process":
        return ProcessExecutor(1 if workers is None else workers)
    if kind == "ray":
        return RayExecutor(workers, address=address, num_cpus=None if address else os.cpu_count())
    raise ValueError(f"invalid executor: got {kind!r}; choose one of {list(EXECUTORS)}")


@dataclasses.dataclass
class RunReport:
    """Outcome of :func:`run_tasks`: indices that succeeded, and an error message per index that failed."""

    succeeded: list[int] = dataclasses.field(default_factory=list)
    failed: dict[int, str] = dataclasses.field(default_factory=dict)
    retried: list[int] = dataclasses.field(default_factory=list)


def run_tasks(
    executor: Executor,
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    *,
    retries: int = 1,
    on_result: Callable[[int, Any], None] = lambda i, r: None,
    on_failure: Callable[[int, BaseException, bool], None] = lambda i, e, final: None,
) -> RunReport:
    """Run all tasks, retry failures ``retries`` times, hand results to ``on_result`` as they arrive.

    Args:
        executor: where to run.
        fn: a module-level function (picklable by reference).
        tasks: picklable task objects.
        retries: extra attempts for a failed task.
        on_result: ``on_result(index, result)``, called in this process as soon as a task finishes.
        on_failure: ``on_failure(index, exception, final)``; ``final`` is True when no retry is left.

    Returns:
        A :class:`RunReport`; failed tasks are listed, not raised.
    """
    report = RunReport()
    todo = list(range(len(tasks)))
    for attempt in range(retries + 1):
        again = []
        for j, outcome in executor.map_unordered(fn, [tasks[i] for i in todo]):
            i = todo[j]
            if isinstance(outcome, BaseException):
                final = attempt == retries
                on_failure(i, outcome, final)
                if final:
                    report.failed[i] = "".join(
                        traceback.format_exception_only(type(outcome), outcome)
                    ).strip()
                else:
                    again.append(i)
                    report.retried.append(i)
            else:
                on_result(i, outcome)
                report.succeeded.append(i)
        todo = sorted(again)
        if not todo:
            break
    return report
