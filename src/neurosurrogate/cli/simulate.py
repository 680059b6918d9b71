"""`neurosurrogate simulate`: simulate a circuit or a neuron and write traces, a figure and a summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from ._common import atomic_folder, console, fail, trace_summary


@app.command("simulate")
def simulate_command(
    model: Annotated[str, typer.Argument(help="circuit (tap_withdrawal, forward_locomotion) or neuron (LI, SHH, CHH)")],
    stimulus: Annotated[list[str] | None, typer.Option(
        "--stimulus", "-s",
        help="NEURON=waveform, e.g. 'PLM=step(amplitude=20,start=200,stop=700)'; repeat for more neurons; "
             "default: the model's demonstration stimuli")] = None,
    stimulus_file: Annotated[Path | None, typer.Option(
        help="JSON list of {label, drive: {NEURON: waveform dict}} (one sample each)")] = None,
    dt: Annotated[float, typer.Option(help="integration step, ms")] = 0.3,
    duration: Annotated[float, typer.Option(help="simulated time, ms")] = 1200.0,
    stride: Annotated[int, typer.Option(help="record every STRIDE steps")] = 1,
    neuron: Annotated[str, typer.Option(help="neuron model of the circuit's cells (LI, SHH, CHH)")] = "CHH",
    grouped: Annotated[bool, typer.Option(help="one parameter set shared by all neurons")] = False,
    float64: Annotated[bool, typer.Option("--float64", help="simulate in float64")] = False,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/simulate"),
    overwrite: Annotated[bool, typer.Option(help="replace an existing output folder")] = False,
) -> None:
    """Simulate MODEL and write traces.zarr, traces.png and config.json into OUT."""
    from .._config import enable_float64
    from .._io import atomic_write_json
    from ..data.store import save_dataset
    from ..experiments.simulation import default_drives, resolve_model, simulate_drives
    from ..report.plots import plot_traces
    from ..stimuli import Drive

    if float64:
        enable_float64()
    try:
        net = resolve_model(model, neuron=neuron, grouped=grouped)
        if stimulus_file is not None:
            if not stimulus_file.exists():
                raise ValueError(f"stimulus file {stimulus_file} does not exist")
            try:
                items = json.loads(stimulus_file.read_text())
                drives = [(str(it.get("label", f"stimulus {i}")), Drive.from_dict(it["drive"]))
                          for i, it in enumerate(items)]
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"malformed stimulus file {stimulus_file}: {exc}; expected a JSON list of "
                                 "{\"label\": ..., \"drive\": {\"NEURON\": {\"kind\": \"step\", ...}}}") from exc
        elif stimulus:
            drives = [("cli stimulus", Drive.parse(stimulus))]
        else:
            drives = default_drives(net)
        config = {"model": model, "neuron": neuron, "grouped": grouped, "dt": dt, "duration": duration,
                  "stride": stride, "float64": float64}
        with console.status(f"simulating {model}: {len(drives)} stimulus/stimuli x {duration:g} ms at dt {dt:g} ms"):
            ds = simulate_drives(net, drives, duration=duration, dt=dt, stride=stride, model_config=config)
        if not all(bool(x) for x in ds["V"].notnull().all(dim=("time", "channel")).values):
            raise ValueError("the simulation produced NaN values (numerical blow-up); reduce --dt")
        with atomic_folder(out, overwrite=overwrite) as tmp:
            save_dataset(ds, tmp / "traces.zarr", kind="trajectories")
            plot_traces(ds, tmp / "traces.png", title=f"{model} (dt {dt:g} ms)")
            atomic_write_json(tmp / "config.json", {**config, "stimuli": ds.attrs["stimuli"]})
    except (ValueError, FileExistsError) as exc:
        raise fail(str(exc)) from None
    console.print(trace_summary(ds, f"{model}: {ds.sizes['sample']} sample(s), {ds.sizes['time']} time points"))
    console.print(f"wrote [bold]{out}[/] (traces.zarr, traces.png, config.json)")
