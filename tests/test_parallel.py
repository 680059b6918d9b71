"""Executors: retries, failure reports, no lost results, worker crashes, and the Ray fan-out on a local
instance."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neurosurrogate.parallel import ProcessExecutor, make_executor, run_tasks


def _flaky(task):
    """Fails the first time it sees a task whose marker file does not exist yet; ``"bad"`` always fails."""
    value, marker = task
    if value == "bad":
        raise ValueError("always fails")
    if marker is not None and not Path(marker).exists():
        Path(marker).write_text("seen")
        raise RuntimeError("transient failure")
    return value


def _crash_once(task):
    value, marker = task
    if marker is not None and not Path(marker).exists():
        Path(marker).write_text("seen")
        os._exit(3)  # kill the worker process
    return value


def test_retry_once_then_report_and_keep_finished(tmp_path):
    tasks = [(1, None), (2, str(tmp_path / "m2")), ("bad", None), (4, None)]
    got, failures = {}, []
    with ProcessExecutor(2) as ex:
        rep = run_tasks(
            ex,
            _flaky,
            tasks,
            on_result=lambda i, r: got.__setitem__(i, r),
            on_failure=lambda i, e, final: failures.append((i, final)),
        )
    assert got == {0: 1, 1: 2, 3: 4}
    assert list(rep.failed) == [2] and "always fails" in rep.failed[2]
    assert sorted(rep.retried) == [1, 2]
    assert (2, True) in failures and (1, False) in failures


def test_crashed_worker_is_replaced(tmp_path):
    tasks = [(i, str(tmp_path / "crash") if i == 1 else None) for i in range(3)]
    got = {}
    with ProcessExecutor(1) as ex:
        rep = run_tasks(ex, _crash_once, tasks, on_result=lambda i, r: got.__setitem__(i, r))
    assert not rep.failed and got == {0: 0, 1: 1, 2: 2}


def test_bad_executor_arguments():
    with pytest.raises(ValueError, match="executor"):
        make_executor("threads")
    with pytest.raises(ValueError, match="workers"):
        ProcessExecutor(0)


def test_ray_executor_local_instance():
    ray = pytest.importorskip("ray", reason="the [distributed] extra (ray) is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ex = make_executor("ray", workers=2)
        got = {}
        # a function importable on the Ray workers (they do not see the tests folder)
        rep = run_tasks(ex, abs, [-i for i in range(5)], on_result=lambda i, r: got.__setitem__(i, r))
        assert not rep.failed and got == {i: i for i in range(5)}
        ex.close()
    finally:
        ray.shutdown()
