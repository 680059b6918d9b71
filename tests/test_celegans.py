"""C. elegans high-fidelity backend (c302 in real NEURON) on a small 10-cell D1 network, plus the stimulus
design.

The network build (c302 -> jnml -> nrnivmodl, ~15 s) is cached under ``$NEUROSURROGATE_CACHE`` or
``~/.cache/neurosurrogate/c302`` and reused by later runs. NEURON tests skip only if NEURON cannot be
imported.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from neurosurrogate.connectome.fcm import FAMILIES, FCM_INPUTS, choose_split, design_stimuli

AMPS = {"PLML": 0.015, "PLMR": 0.015, "AVBL": 0.1, "AVBR": 0.1}
CELLS = ("PLML", "PLMR", "AVBL", "AVBR", "DB1", "LUAL", "PVR", "VB1", "AVAL", "AVAR")
SMALL = ["--cells", ",".join(CELLS), "--duration", "100", "--warmup", "100"]

needs_neuron = pytest.mark.skipif(
    importlib.util.find_spec("neuron") is None or importlib.util.find_spec("c302") is None,
    reason="NEURON/c302 not importable: install neurosurrogate[celegans]",
)


# ---------------------------------------------------------------- stimulus design and split (no NEURON)
def test_design_is_reproducible_diverse_and_bounded():
    a = design_stimuli(40, seed=3, amplitudes=AMPS)
    b = design_stimuli(40, seed=3, amplitudes=AMPS)
    c = design_stimuli(40, seed=4, amplitudes=AMPS)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    assert [s.to_dict() for s in a] != [s.to_dict() for s in c]
    assert {s.family for s in a} == set(FAMILIES)
    cur = np.stack([s.render(FCM_INPUTS, 500.0, 0.1) for s in a])
    assert cur.shape == (40, 5001, 4)
    assert cur.min() >= 0.0
    assert (cur.max(axis=(0, 1)) <= np.array([AMPS[n] for n in FCM_INPUTS]) + 1e-12).all()
    assert (cur.max(axis=1) > 0).any(axis=1).all()  # every stimulus drives something
    from neurosurrogate.connectome.fcm import Stimulus

    assert Stimulus.from_dict(a[5].to_dict()).to_dict() == a[5].to_dict()


@pytest.mark.parametrize("seed", range(20))
def test_split_is_50_25_25_with_every_family_held_out(seed):
    rng = np.random.default_rng(seed)
    fams = [FAMILIES[i % 6] for i in range(40)]
    score = rng.uniform(size=40)
    labels = choose_split(fams, score)
    assert [labels.count(s) for s in ("train", "validation", "test")] == [20, 10, 10]
    for split in ("validation", "test"):
        assert {f for f, s in zip(fams, labels, strict=True) if s == split} == set(FAMILIES)
    hardest = [max((i for i in range(40) if fams[i] == f), key=lambda i: score[i]) for f in FAMILIES]
    assert all(labels[i] != "train" for i in hardest)


def test_design_rejects_bad_amplitudes():
    with pytest.raises(ValueError, match="amplitudes"):
        design_stimuli(4, amplitudes={"PLML": 0.01})
    with pytest.raises(ValueError, match="amplitudes"):
        design_stimuli(4, amplitudes={**AMPS, "AVBL": float("nan")})


# ---------------------------------------------------------------- NEURON
@pytest.fixture(scope="module")
def build():
    if importlib.util.find_spec("neuron") is None:
        pytest.skip("NEURON not importable")
    from neurosurrogate.connectome.build import C302Config, build_network

    return build_network(C302Config("D1", CELLS))


@pytest.fixture(scope="module")
def executor():
    from neurosurrogate.parallel import ProcessExecutor

    with ProcessExecutor(1) as ex:
        yield ex


def _run(executor, tasks):
    from neurosurrogate.connectome.worker import run_task
    from neurosurrogate.parallel import run_tasks

    out = {}
    rep = run_tasks(executor, run_task, tasks, on_result=lambda i, r: out.__setitem__(r.key, r))
    assert not rep.failed, rep.failed
    return out


@needs_neuron
def test_dt_0p1_matches_dt_0p025_within_1mV(build, executor):
    from neurosurrogate.connectome.dataset import FCMConfig, make_task
    from neurosurrogate.connectome.fcm import Stimulus
    from neurosurrogate.stimuli import Pulses, Step

    cfg = FCMConfig(samples=1, sample_dt=0.5, duration=200.0, warmup=200.0, cells=CELLS, amplitudes=AMPS)
    stim = Stimulus(
        "x",
        {
            "PLML": Step(0.015, 20.0, 150.0),
            "AVBL": Pulses(0.1, 30.0, 20.0, 50.0, 3),
            "AVBR": Step(0.08, 60.0, 180.0),
        },
    )
    res = _run(
        executor,
        [
            make_task(f"dt{dt}", build, cfg, stim.render(cfg.inputs, cfg.duration, dt), dt)
            for dt in (0.1, 0.025)
        ],
    )
    a, b = res["dt0.1"].outputs, res["dt0.025"].outputs
    assert a.shape == b.shape == (401, 4)
    err = np.abs(a - b).max()
    print(f"max |V(dt 0.1) - V(dt 0.025)| = {err:.3f} mV")
    assert err < 1.0
    assert np.ptp(a, axis=0).max() > 1.0  # the stimulus moved the outputs


@needs_neuron
def test_ablation_removes_the_AVB_drive(build, executor):
    from neurosurrogate.connectome.dataset import FCMConfig, make_task
    from neurosurrogate.connectome.fcm import Stimulus
    from neurosurrogate.stimuli import Step

    cfg = FCMConfig(samples=1, sample_dt=0.5, duration=100.0, warmup=100.0, cells=CELLS, amplitudes=AMPS)
    cur = Stimulus("s", {"AVBL": Step(0.1, 10.0, 90.0), "AVBR": Step(0.1, 10.0, 90.0)}).render(
        cfg.inputs, 100.0, 0.1
    )
    tasks = []
    for abl in ((), ("AVBL", "AVBR")):
        tasks += [
            make_task(f"{abl}z", build, cfg, np.zeros_like(cur), 0.1, abl),
            make_task(f"{abl}s", build, cfg, cur, 0.1, abl),
        ]
    res = _run(executor, tasks)
    vb1 = cfg.outputs.index("VB1")
    intact = np.abs(res["()s"].outputs - res["()z"].outputs)[:, vb1].max()
    ablated = np.abs(res["('AVBL', 'AVBR')s"].outputs - res["('AVBL', 'AVBR')z"].outputs)[:, vb1].max()
    assert intact > 1.0 and ablated < 0.1 * intact


@needs_neuron
def test_bad_input_is_refused(build):
    from neurosurrogate.connectome.dataset import FCMConfig, make_task, validate_names

    cfg = FCMConfig(samples=1, duration=100.0, warmup=100.0, cells=CELLS, amplitudes=AMPS)
    good = np.zeros((1001, 4))
    with pytest.raises(ValueError, match="unknown neuron.*XYZ"):
        validate_names(("AVBL", "XYZ"), build, "inputs")
    with pytest.raises(ValueError, match=r"shape \(1000, 4\), expected \(1001, 4\)"):
        make_task("s", build, cfg, good[:-1], 0.1)
    bad = good.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="NaN.*step 7.*AVBL"):
        make_task("s", build, cfg, bad, 0.1)
    with pytest.raises(ValueError, match="dt <= 0.1"):
        FCMConfig(dt=0.5)


def test_missing_neuron_is_a_clear_error(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from neurosurrogate.cli import app
    from neurosurrogate.connectome import build as build_mod

    real = importlib.util.find_spec
    monkeypatch.setattr(
        build_mod.importlib.util, "find_spec", lambda n, *a: None if n == "neuron" else real(n, *a)
    )
    with pytest.raises(build_mod.NeuronUnavailableError, match=r"neurosurrogate\[celegans\]"):
        build_mod.require_neuron()
    res = CliRunner().invoke(app, ["dataset", "celegans-fcm", "--out", str(tmp_path / "x.zarr"), *SMALL])
    assert res.exit_code == 2 and "celegans" in res.output
    assert not (tmp_path / "x.zarr").exists()


@needs_neuron
def test_dataset_command_end_to_end(build, tmp_path):
    from typer.testing import CliRunner

    from neurosurrogate.cli import app
    from neurosurrogate.data.store import attr_json, load_dataset

    out = tmp_path / "fcm.zarr"
    res = CliRunner().invoke(app, ["dataset", "celegans-fcm", "--out", str(out), "--samples", "4", *SMALL])
    assert res.exit_code == 0, res.output
    assert "per simulation" in res.output and "signal SD" in res.output
    ds = load_dataset(
        out, kind="celegans_fcm", variables=["inputs", "outputs", "split"], dims=["sample", "time"]
    )
    assert ds.outputs.shape == (4, 201, 4) and ds.inputs.shape == (4, 201, 4)
    assert list(ds.input.values) == list(FCM_INPUTS)
    assert sorted(ds.split.values.tolist()) == ["test", "train", "train", "validation"]
    assert ds.attrs["integration_dt_ms"] == 0.1 and ds.attrs["parameter_set"] == "D1"
    assert attr_json(ds, "versions")["neuron"] != "missing"
    summary = attr_json(ds, "summary")
    assert set(summary["signal_sd_mV"]) == {"DB1", "LUAL", "PVR", "VB1"}
    assert len(attr_json(ds, "stimuli")) == 4
    assert not out.with_name(out.name + ".partial").exists()
    again = CliRunner().invoke(app, ["dataset", "celegans-fcm", "--out", str(out), "--samples", "4", *SMALL])
    assert again.exit_code == 2 and "already exists" in again.output


@needs_neuron
def test_interrupted_generation_resumes(build, tmp_path):
    from neurosurrogate.connectome.dataset import FCMConfig, generate_fcm_dataset
    from neurosurrogate.parallel import Executor, ProcessExecutor

    class Interrupting(Executor):
        """Stops (like Ctrl-C) after two finished simulations."""

        def __init__(self):
            self.inner, self.workers = ProcessExecutor(1), 1

        def map_unordered(self, fn, tasks):
            for k, item in enumerate(self.inner.map_unordered(fn, tasks)):
                yield item
                if k == 1:
                    raise KeyboardInterrupt

        def close(self):
            self.inner.close()

    cfg = FCMConfig(samples=3, duration=50.0, warmup=50.0, cells=CELLS, amplitudes=AMPS)
    out = tmp_path / "r.zarr"
    ex = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        generate_fcm_dataset(cfg, out, executor=ex)
    ex.close()
    partial = tmp_path / "r.zarr.partial"
    assert len(list(partial.glob("*.npz"))) == 2 and not out.exists()
    messages = []
    ds, summary = generate_fcm_dataset(cfg, out, log=messages.append)
    assert summary["simulations_this_run"] == 3  # 5 in all (zero, 3 samples, reference), 2 kept
    assert any("resuming: 2 of 5" in m for m in messages)
    assert out.exists() and not partial.exists() and ds.outputs.shape == (3, 101, 4)


@needs_neuron
def test_dataset_over_local_ray(build, tmp_path):
    ray = pytest.importorskip("ray", reason="the [distributed] extra (ray) is not installed")
    from typer.testing import CliRunner

    from neurosurrogate.cli import app

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray.zarr"
        res = CliRunner().invoke(
            app,
            [
                "dataset",
                "celegans-fcm",
                "--out",
                str(out),
                "--samples",
                "2",
                "--executor",
                "ray",
                "--workers",
                "2",
                *SMALL,
            ],
        )
        assert res.exit_code == 0, res.output
        assert "executor ray (2 worker(s))" in res.output.replace("\n", " ")
        assert out.exists()
    finally:
        ray.shutdown()


@needs_neuron
def test_scenario_check(build, tmp_path):
    import json

    from neurosurrogate.connectome.scenario import run_scenario_check

    m = run_scenario_check(tmp_path / "run", cells=CELLS, amplitudes=AMPS, warmup=100.0)
    assert set(m["response_mV"]) == {"intact", "AVB ablated", "AVA ablated"}
    assert abs(m["response_mV"]["AVB ablated"]["VB1"]) < abs(m["response_mV"]["intact"]["VB1"])
    assert (tmp_path / "run" / "report.html").exists() and (
        tmp_path / "run" / "figures" / "fcm_ablation.png"
    ).exists()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["response_mV"]


@needs_neuron
def test_restored_warmup_equals_one_continuous_run(build, executor):
    """Every stimulus restores the saved warm-up state; that must equal warming up and running in one go."""
    from neurosurrogate.connectome.dataset import FCMConfig, make_task

    cfg = FCMConfig(samples=1, sample_dt=0.1, duration=60.0, warmup=40.0, cells=CELLS, amplitudes=AMPS)
    long = FCMConfig(samples=1, sample_dt=0.1, duration=100.0, warmup=0.0, cells=CELLS, amplitudes=AMPS)
    cur = np.zeros((601, 4))
    cur[100:300, 2] = 0.1
    cont = np.zeros((1001, 4))
    cont[400:] = cur
    tasks = [
        make_task("continuous", build, long, cont, 0.1),
        make_task("first", build, cfg, cur, 0.1),
        make_task("other", build, cfg, np.full((601, 4), 0.01), 0.1),
        make_task("again", build, cfg, cur, 0.1),
    ]
    res = _run(executor, tasks)
    ref = res["continuous"].outputs[400:]
    assert np.abs(res["first"].outputs - ref).max() < 1e-9
    assert np.abs(res["again"].outputs - ref).max() < 1e-9


@needs_neuron
def test_simulate_c302_api(build, executor):
    from neurosurrogate.connectome import simulate_c302

    t = np.arange(501) * 0.1
    run = simulate_c302(
        build,
        [{"AVBL": 0.1 * (t > 10)}, {"PLML": 0.015 * (t > 20)}],
        ["VB1", "LUAL"],
        duration=50.0,
        sample_dt=0.5,
        warmup=50.0,
        executor=executor,
    )
    assert run.outputs.shape == (2, 101, 2) and run.inputs == ("AVBL", "PLML") and run.time[-1] == 50.0
    assert np.isfinite(run.outputs).all()
    with pytest.raises(ValueError, match="unknown neuron.*NOPE"):
        simulate_c302(build, {"NOPE": t}, ["VB1"], duration=50.0)
    with pytest.raises(ValueError, match=r"shape \(500,\), expected \(501,\)"):
        simulate_c302(build, {"AVBL": t[:-1]}, ["VB1"], duration=50.0)
    with pytest.raises(ValueError, match="NaN"):
        simulate_c302(build, {"AVBL": np.where(t > 3, np.nan, 0.0)}, ["VB1"], duration=50.0)
