"""The command line as a user runs it: `simulate` and the quick-start `run`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from neurosurrogate.cli import app
from neurosurrogate.data import load_dataset

runner = CliRunner()


def test_simulate_circuit_with_cli_stimulus(tmp_path):
    out = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", "tap_withdrawal", "-s", "PLM=step(amplitude=20,start=20,stop=80)",
                                 "--dt", "0.5", "--duration", "100", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "AVA" in result.output and "wrote" in result.output
    ds = load_dataset(out / "traces.zarr", kind="trajectories")
    assert ds.sizes["time"] == 200 and list(ds.input.values) == ["PLM"]
    assert (out / "traces.png").stat().st_size > 10_000
    config = json.loads((out / "config.json").read_text())
    assert config["dt"] == 0.5 and config["stimuli"][0]["drive"]["PLM"]["kind"] == "step"
    # PLM is depolarised by the step
    v = ds["V"].sel(channel="PLM").values[0]
    assert v[150] > v[10] + 10


def test_simulate_single_neuron_default_stimuli_float64(tmp_path):
    import jax

    out = tmp_path / "chh"
    try:
        result = runner.invoke(app, ["simulate", "CHH", "--dt", "1", "--duration", "300", "--out", str(out),
                                     "--float64"])
    finally:
        jax.config.update("jax_enable_x64", False)  # --float64 switches the whole process
    assert result.exit_code == 0, result.output
    ds = load_dataset(out / "traces.zarr")
    assert ds.sizes["sample"] == 3 and ds["V"].dtype == "float64"


@pytest.mark.parametrize(
    "args,message",
    [
        (["simulate", "tap"], "unknown model"),
        (["simulate", "tap_withdrawal", "-s", "XYZ=step(amplitude=1)"], "unknown neuron 'XYZ'"),
        (["simulate", "tap_withdrawal", "--dt", "-1"], "positive"),
        (["simulate", "CHH", "-s", "n0=step(amplitude=nan)"], "NaN"),
        (["simulate", "CHH", "-s", "n0=wave(x=1)"], "unknown waveform kind"),
    ],
)
def test_simulate_bad_input_writes_nothing(tmp_path, args, message):
    out = tmp_path / "never"
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2
    assert message in result.output.replace("\n", " ")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_simulate_refuses_to_overwrite_and_malformed_stimulus_file(tmp_path):
    out = tmp_path / "sim"
    args = ["simulate", "LI", "--dt", "1", "--duration", "50", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    bad = tmp_path / "stim.json"
    bad.write_text("{not json")
    result = runner.invoke(app, [*args[:-2], "--out", str(tmp_path / "x"), "--stimulus-file", str(bad)])
    assert result.exit_code == 2 and "malformed stimulus file" in result.output
    assert not (tmp_path / "x").exists()


def test_quickstart_run_writes_report(tmp_path):
    out = tmp_path / "qs"
    result = runner.invoke(app, ["run", "--out", str(out), "--duration", "300", "--quick"])
    assert result.exit_code == 0, result.output
    for name in ("report.html", "metrics.json", "config.json", "run.log", "traces.zarr", "figures/traces.png",
                 "figures/solver_stability.png", "fit_li/report.html", "fit_li/best_params.json",
                 "betacell_map/report.html", "betacell_map/metrics.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["simulate.stimuli"] == 3 and metrics["simulate.steps_per_stimulus"] == 1000
    assert metrics["stability.semi_implicit.dt340"].startswith("bounded")
    assert metrics["stability.explicit.dt340"].startswith("diverged")
    assert metrics["fit.population"] == 8 and 0.5 < metrics["fit.best_C_m"] < 40
    assert 0 < metrics["surrogate.val_mse"] < 1.0  # standardised units; 4 epochs only in the smoke run
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") == 6
