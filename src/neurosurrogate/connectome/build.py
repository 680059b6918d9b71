"""Build a c302 network once (c302 -> NeuroML -> jNeuroML NEURON export -> nrnivmodl) into a cache folder.

The main process never imports NEURON: c302 generation, ``jnml`` and ``nrnivmodl`` run as subprocesses, and
the result is a folder (``build_dir``) that worker processes load (see
:mod:`neurosurrogate.connectome.worker`). The folder is keyed by the configuration and the tool versions,
built in a temporary folder and renamed into place when complete, so an interrupted build is never reused and
concurrent builds of the same key do not collide (a file lock serialises them).

Example::

    cfg = C302Config(parameter_set="D1")                 # the full 302-neuron network
    build = build_network(cfg)                            # ~100 s the first time, instant afterwards
    build.cells                                           # ('ADAL', 'ADAR', ...)
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .._io import atomic_folder, atomic_write_json

PARAMETER_SETS = ("D1", "D", "C1")
"""c302 parameter sets this backend supports (D1/D multi-compartment, C1 single-compartment)."""

_BUILD_FORMAT = 1


class NeuronUnavailableError(RuntimeError):
    """NEURON, c302 or jNeuroML is not installed or cannot run."""


def versions() -> dict[str, str]:
    """Versions of the simulation stack (without importing NEURON)."""
    out = {}
    for dist in ("neuron", "c302", "pyNeuroML", "cect", "libNeuroML"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def require_neuron() -> None:
    """Raise :class:`NeuronUnavailableError` with the fix if NEURON or c302 cannot be found."""
    missing = [m for m in ("neuron", "c302", "pyneuroml") if importlib.util.find_spec(m) is None]
    if missing:
        raise NeuronUnavailableError(
            f"the C. elegans backend needs {missing} which are not installed in {sys.prefix}; "
            "install them with `pip install 'neurosurrogate[celegans]'` "
            "(NEURON, c302, pyNeuroML, cect; Java 17 for jnml)"
        )


@dataclasses.dataclass(frozen=True)
class C302Config:
    """Which c302 network to build.

    Attributes:
        parameter_set: c302 parameter set, one of ``PARAMETER_SETS`` (D1 default: multi-compartment, graded
            synapses).
        cells: neuron names to include (None: all 302). A subset keeps only the connections among these cells
            (useful for small test networks).
    """

    parameter_set: str = "D1"
    cells: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.parameter_set not in PARAMETER_SETS:
            raise ValueError(
                f"invalid parameter_set: got {self.parameter_set!r}; choose one of {list(PARAMETER_SETS)}"
            )
        if self.cells is not None:
            cells = tuple(self.cells)
            if not cells or not all(isinstance(c, str) and re.fullmatch(r"[A-Za-z0-9]+", c) for c in cells):
                raise ValueError(
                    f"invalid cells: got {self.cells!r}; pass neuron names such as ('AVBL', 'DB1') or None"
                )
            object.__setattr__(self, "cells", tuple(sorted(set(cells))))

    @property
    def net_id(self) -> str:
        return f"c302_{self.parameter_set}_{'full' if self.cells is None else f'{len(self.cells)}cells'}"

    def key(self) -> str:
        """Hash of the configuration and tool versions (the cache folder name)."""
        payload = {"format": _BUILD_FORMAT, "config": dataclasses.asdict(self), "versions": versions()}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.net_id}-{digest}"

    def to_dict(self) -> dict:
        return {
            "parameter_set": self.parameter_set,
            "cells": None if self.cells is None else list(self.cells),
        }


@dataclasses.dataclass(frozen=True)
class Build:
    """A compiled network on disk.

    Attributes:
        path: the build folder (holds ``LEMS_<net>_nrn.py``, hoc cells, mod files and ``x86_64/`` mechanisms).
        config: the configuration it was built from.
        cells: names of the neurons in the network.
        module: file name of the generated NEURON Python module.
        info: ``build.json`` contents (versions, timings).
    """

    path: Path
    config: C302Config
    cells: tuple[str, ...]
    module: str
    info: dict


def default_cache_dir() -> Path:
    """``$NEUROSURROGATE_CACHE/c302`` or ``~/.cache/neurosurrogate/c302``."""
    root = os.environ.get("NEUROSURROGATE_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "neurosurrogate") / "c302"


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise NeuronUnavailableError(
            f"`{name}` was not found next to {sys.executable} or on PATH; "
            "install `neurosurrogate[celegans]` in this environment"
        )
    return found


def _run(cmd: Sequence[str], cwd: Path, log: Path, env: dict | None = None) -> None:
    with open(log, "w") as fh:
        proc = subprocess.run(list(cmd), cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(
            f"`{' '.join(cmd)}` failed with exit code {proc.returncode} in {cwd}; log tail:\n{tail}"
        )


_GENERATE = textwrap.dedent(
    """
    import importlib, json, sys
    import c302
    cfg = json.loads(sys.argv[1])
    params = importlib.import_module("c302.parameters_" + cfg["parameter_set"]).ParameterisedModel()
    c302.generate(cfg["net_id"], params, cells=cfg["cells"], cells_to_stimulate=[], cells_to_plot=[],
                  muscles_to_include=[], duration=100, dt=0.1, target_directory=".", verbose=False)
    """
)


def build_network(
    config: C302Config = C302Config(),
    *,
    cache_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> Build:
    """Return the compiled network for ``config``, building it the first time.

    Args:
        config: which network (parameter set, cell subset).
        cache_dir: cache root (default :func:`default_cache_dir`).
        log: called with progress messages (e.g. ``print``).

    Returns:
        The :class:`Build`.

    Raises:
        NeuronUnavailableError: NEURON/c302/jnml missing.
        RuntimeError: a build step failed (the message holds the tool's log tail).
    """
    require_neuron()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    key = config.key()
    final = root / key
    with open(root / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / "build.json").exists():
            _build_into(config, root, final, log)
        else:
            log(f"reusing cached c302 build {final}")
    info = json.loads((final / "build.json").read_text())
    return Build(path=final, config=config, cells=tuple(info["cells"]), module=info["module"], info=info)


def _build_into(config: C302Config, root: Path, final: Path, log: Callable[[str], None]) -> None:
    timings = {}
    env = {**os.environ, "NEURON_HOME": str(Path(sys.executable).parent.parent)}
    with atomic_folder(final, overwrite=True) as tmp:
        (tmp / "cells").mkdir()
        t0 = time.perf_counter()
        log(f"generating c302 network {config.net_id} (parameter set {config.parameter_set})")
        cfg = {**config.to_dict(), "net_id": config.net_id}
        _run([sys.executable, "-c", _GENERATE, json.dumps(cfg)], tmp, tmp / "c302.log", env)
        timings["c302_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        log("exporting to NEURON with jNeuroML (about 80 s for the full network)")
        _run([_bin("jnml"), f"LEMS_{config.net_id}.xml", "-neuron", "-nogui"], tmp, tmp / "jnml.log", env)
        timings["jnml_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        log("compiling mechanisms with nrnivmodl")
        _run([_bin("nrnivmodl")], tmp, tmp / "nrnivmodl.log", env)
        timings["nrnivmodl_s"] = time.perf_counter() - t0
        module = f"LEMS_{config.net_id}_nrn.py"
        source = (tmp / module).read_text()
        cells = re.findall(r'print\("Population (\w+) contains', source)
        if not cells:
            raise RuntimeError(f"no populations found in the generated {module}; see {tmp}/jnml.log")
        atomic_write_json(
            tmp / "build.json",
            {
                "config": config.to_dict(),
                "key": final.name,
                "module": module,
                "cells": cells,
                "versions": versions(),
                "timings_s": timings,
                "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
    log(f"built {final} in {sum(timings.values()):.0f} s")
