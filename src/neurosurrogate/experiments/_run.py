"""Run folders: every experiment writes config.json, metrics.json, figures/, report.html and run.log into one folder."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._io import atomic_write_json


class RunFolder:
    """A folder for one run, with a logger writing to ``run.log`` (and the console at WARNING and above).

    Args:
        path: the folder (created).
        config: the resolved configuration, written to ``config.json``.
        overwrite: allow an existing non-empty folder (files are replaced one by one).
    """

    def __init__(self, path: str | os.PathLike, config: Mapping[str, Any], *, overwrite: bool = True):
        self.path = Path(path)
        if self.path.exists() and any(self.path.iterdir()) and not overwrite:
            raise FileExistsError(f"{self.path} is not empty; choose another --out or pass --overwrite")
        self.path.mkdir(parents=True, exist_ok=True)
        self.figures = self.path / "figures"
        self.figures.mkdir(exist_ok=True)
        atomic_write_json(self.path / "config.json", {**dict(config), "command": " ".join(sys.argv),
                                                       "started": _dt.datetime.now().isoformat(timespec="seconds")})
        self.log = logging.getLogger(f"neurosurrogate.run.{self.path.resolve()}")
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        if not self.log.handlers:
            handler = logging.FileHandler(self.path / "run.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            self.log.addHandler(handler)

    def figure(self, name: str) -> Path:
        """Path for a PNG figure inside ``figures/``."""
        return self.figures / (name if name.endswith(".png") else f"{name}.png")

    def write_metrics(self, metrics: Mapping[str, Any]) -> Path:
        """Write ``metrics.json`` atomically."""
        self.log.info("metrics: %s", dict(metrics))
        return atomic_write_json(self.path / "metrics.json", dict(metrics))

    def write_json(self, name: str, obj: Any) -> Path:
        """Write any JSON file in the run folder atomically."""
        return atomic_write_json(self.path / name, obj)
