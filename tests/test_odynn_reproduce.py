"""Quick versions of the ODYNN reproductions through the CLI (`neurosurrogate fit`, `reproduce odynn-*`)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from neurosurrogate.cli import app

runner = CliRunner()
RUN_FILES = {"config.json", "metrics.json", "report.html", "best_params.json", "run.log", "checkpoint.npz"}
FIGURES = {"losses.png", "parameters.png", "best_train.png", "best_test.png"}


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _check_run(path):
    assert RUN_FILES <= {p.name for p in path.iterdir()}
    assert FIGURES <= {p.name for p in (path / "figures").iterdir()}
    metrics = json.loads((path / "metrics.json").read_text())
    assert np.isfinite(metrics["best_train_loss"])
    return metrics


@pytest.mark.parametrize("name", ["li", "chh", "tap-withdrawal"])
def test_reproduce_quick(tmp_path, name):
    extra = ("--screen", "12", "--lr", "0.05", "--absolute-steps", "--restart-above", "0", "--restart-window", "3") \
        if name == "tap-withdrawal" else ()
    _invoke("reproduce", f"odynn-{name}", "--quick", "--out", tmp_path / name, *extra)
    metrics = _check_run(tmp_path / name)
    if name == "tap-withdrawal":
        assert metrics["free_parameters"] == 350 and "members_below_threshold" in metrics
        config = json.loads((tmp_path / name / "config.json").read_text())["experiment"]
        assert (config["screen"], config["lr"], config["relative_steps"]) == (12, 0.05, False)
        assert (config["restart_above"], config["restart_window"]) == (None, 3) and "restarts_total" in metrics
        bad = runner.invoke(app, ["reproduce", "odynn-tap-withdrawal", "--screen", "3", "--out", str(tmp_path / "b")])
        assert bad.exit_code == 2 and "invalid screen" in bad.output and not (tmp_path / "b").exists()
    if name == "li":
        assert set(metrics["relative_errors"]) == {"C_m", "g_L", "E_L"}


def test_fit_command_resume_and_errors(tmp_path):
    args = [
        "fit",
        "--model",
        "LI",
        "--population",
        "4",
        "--iterations",
        "6",
        "--duration",
        "200",
        "--n-train",
        "1",
        "--n-test",
        "1",
        "--checkpoint-every",
        "3",
        "--fixed",
        "E_L",
        "--out",
        tmp_path / "a",
    ]
    _invoke(*args)
    first = json.loads((tmp_path / "a" / "best_params.json").read_text())
    assert first["E_L"] == [-60.0]
    _invoke(*args, "--resume")  # the finished checkpoint is reused: same result
    assert json.loads((tmp_path / "a" / "best_params.json").read_text()) == first
    bad = runner.invoke(app, ["fit", "--model", "XYZ", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "unknown neuron model" in bad.output
    bad = runner.invoke(app, ["fit", "--model", "LI", "--population", "0", "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "invalid population" in bad.output
    bad = runner.invoke(app, ["fit", "--population", "8", "--screen", "3", "--out", str(tmp_path / "d")])
    assert bad.exit_code == 2 and "invalid screen" in bad.output and not (tmp_path / "d").exists()
    _invoke(*args[:-1], tmp_path / "e", "--relative-steps", "--lr", "0.05", "--screen", "12")
    config = json.loads((tmp_path / "e" / "config.json").read_text())["experiment"]
    assert config["relative_steps"] is True and config["screen"] == 12


def test_lstm_neuron_quick_and_simulates(tmp_path):
    from neurosurrogate import simulate
    from neurosurrogate.surrogates.lstm_neuron import LSTMNeuron

    _invoke("reproduce", "odynn-lstm", "--quick", "--out", tmp_path / "lstm")
    metrics = json.loads((tmp_path / "lstm" / "metrics.json").read_text())
    assert np.isfinite(metrics["test_loss"])
    import equinox as eqx
    import jax

    like = LSTMNeuron.create(jax.random.PRNGKey(0), hidden=8)
    model = eqx.tree_deserialise_leaves(tmp_path / "lstm" / "lstm_neuron.eqx", like)
    traj = simulate(model, np.full(50, 5.0), dt=1.0)
    assert traj.V.shape == (50, 1) and traj.Ca.shape == (50, 1) and bool(traj.finite())


def test_calcium_quick_from_nwb(tmp_path):
    pytest.importorskip("pynwb")
    from neurosurrogate.data.nwb import hill_calcium, hill_fluorescence, read_fluorescence_nwb
    from neurosurrogate.experiments.odynn import synthetic_recording

    ca = np.linspace(0, 2, 11)
    np.testing.assert_allclose(hill_calcium(hill_fluorescence(ca)), ca, atol=1e-6)
    path = synthetic_recording(tmp_path / "rec.nwb", minutes=1.0)
    trace, interval = read_fluorescence_nwb(path)
    assert interval == pytest.approx(340.0) and trace.shape == (176,)
    _invoke("reproduce", "odynn-calcium", "--quick", "--nwb", path, "--out", tmp_path / "ca")
    _check_run(tmp_path / "ca")
    bad = runner.invoke(
        app,
        ["reproduce", "odynn-calcium", "--nwb", str(path), "--series", "XYZ", "--out", str(tmp_path / "bad")],
    )
    assert bad.exit_code == 2 and "invalid series" in bad.output


@pytest.mark.slow
@pytest.mark.parametrize("name", ["forward-locomotion-grouped"])
def test_forward_locomotion_quick(tmp_path, name):
    # compiling the gradient of the 39-neuron circuit dominates (about a minute on 2 cores)
    _invoke("reproduce", f"odynn-{name}", "--quick", "--out", tmp_path / name)
    metrics = json.loads((tmp_path / name / "metrics.json").read_text())
    assert metrics["free_parameters"] == 566 and np.isfinite(metrics["best_train_loss"])


def test_forward_locomotion_sizes():
    from neurosurrogate.experiments.odynn import build_problem, experiment, travelling_wave

    problem, _, _ = build_problem(experiment("forward-locomotion", quick=True))
    assert problem.space.size == 1630 and problem.train.V.shape[-1] == 39
    wave = travelling_wave(200.0, 1.0, 3)
    np.testing.assert_allclose(wave[100:, 1], wave[36:136, 0], atol=1e-9)  # 64 ms later


def test_fit_command_from_dataset(tmp_path):
    from neurosurrogate import LeakyIntegrate, simulate_population, stack_models
    from neurosurrogate.data.store import save_dataset
    from neurosurrogate.data.trajectories import trajectory_to_dataset

    t = np.arange(200.0)
    cur = np.stack([10 * ((t > 20) & (t < 120)), 15 * ((t > 50) & (t < 150))])[..., None]
    traj = simulate_population(stack_models([LeakyIntegrate.default()]), cur, dt=1.0)
    traj = type(traj)(traj.V[0], None, cur, traj.dt, traj.stride, traj.channels, traj.inputs)
    save_dataset(trajectory_to_dataset(traj), tmp_path / "d.zarr", kind="trajectories")
    _invoke("fit", "--model", "LI", "--data", tmp_path / "d.zarr", "--n-train", "1", "--n-test", "1",
            "--population", "3", "--iterations", "2", "--out", tmp_path / "run")
    assert (tmp_path / "run" / "report.html").exists()
    bad = runner.invoke(app, ["fit", "--model", "LI", "--data", str(tmp_path / "d.zarr"), "--n-train", "5",
                              "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "Ask for fewer stimuli" in bad.output


def test_tap_currents_family():
    from neurosurrogate.experiments.odynn import tap_currents

    sensors = ("PVD", "PLM", "AVM", "ALM")
    groups = (("AVM", "ALM"), ("PVD", "PLM"))
    cur = tap_currents(40, 1200.0, 0.5, 20.0, sensors, groups, seed=3)
    assert cur.shape == (40, 2400, 4)
    np.testing.assert_array_equal(cur, tap_currents(40, 1200.0, 0.5, 20.0, sensors, groups, seed=3))
    # a group's sensors are tapped together; taps never overlap (values are 0 or the amplitude)
    np.testing.assert_array_equal(cur[..., 0], cur[..., 1])
    np.testing.assert_array_equal(cur[..., 2], cur[..., 3])
    assert set(np.unique(cur)) == {0.0, 20.0}
    posterior, anterior = cur[..., 0] > 0, cur[..., 2] > 0
    for stim_p, stim_a in zip(posterior, anterior, strict=True):
        # one posterior-only, one anterior-only and one whole-body tap of 150 ms (300 steps) each
        for mask in (stim_p & ~stim_a, stim_a & ~stim_p, stim_a & stim_p):
            assert mask.sum() == 300 and (np.diff(mask.astype(int)) == 1).sum() == 1
    # the order of the three kinds varies between stimuli
    first = [int(np.argmax(p)) < int(np.argmax(a)) for p, a in zip(posterior, anterior, strict=True)]
    assert 0 < sum(first) < len(first)


def test_fit_command_circuit_with_touch_sensors_uses_taps(tmp_path):
    from neurosurrogate.experiments.odynn_table import EXPERIMENTS
    from neurosurrogate.models import circuit_tap_groups

    assert circuit_tap_groups("tap_withdrawal") == EXPERIMENTS["tap-withdrawal"].tap_groups == (
        ("AVM", "ALM"), ("PVD", "PLM"))
    assert circuit_tap_groups("forward_locomotion") == ()
    _invoke("fit", "--circuit", "tap_withdrawal", "--population", "2", "--iterations", "2", "--duration", "300",
            "--dt", "0.5", "--n-train", "1", "--n-test", "1", "--noise", "0", "--shard", "--out", tmp_path / "tw")
    config = json.loads((tmp_path / "tw" / "config.json").read_text())["experiment"]
    assert config["tap_groups"] == [["AVM", "ALM"], ["PVD", "PLM"]] and config["shard"] is True
    bad = runner.invoke(app, ["fit", "--circuit", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown circuit" in bad.output and not (tmp_path / "x").exists()
