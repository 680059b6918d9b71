"""A self-contained HTML report (figures embedded as base64 PNG) for a run folder."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #3a6ea5;padding-bottom:.2em} h2{color:#3a6ea5;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#eef3f8} figure{margin:1em 0} figcaption{color:#555;font-size:.9em} img{max-width:100%}
code,pre{background:#f4f4f4;padding:.1em .3em} .muted{color:#777;font-size:.85em}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)) and len(value) > 12:
        return f"[{len(value)} values]"
    return str(value)


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """An HTML table of (name, value) rows."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in metrics.items()
    )
    return f"<table>{rows}</table>"


def figure_html(path: str | os.PathLike, caption: str = "") -> str:
    """An embedded PNG figure."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">{cap}</figure>'


def write_report(
    path: str | os.PathLike,
    title: str,
    sections: Sequence[tuple[str, str | Mapping[str, Any] | Sequence[tuple[str, str | os.PathLike]]]],
    *,
    footer: str = "",
) -> Path:
    """Write a report.

    Args:
        path: output file (``report.html``).
        title: page title.
        sections: (heading, content) pairs; content is HTML text (a ``str``), a metrics mapping (rendered as a table),
            or a list of (caption, png path) figures.
        footer: small print at the bottom (e.g. the command that produced the run).
    """
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, content in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(content, str):
            body.append(content)
        elif isinstance(content, Mapping):
            body.append(metrics_table(content))
        else:
            body.extend(figure_html(p, cap) for cap, p in content)
    if footer:
        body.append(f'<p class="muted">{html.escape(footer)}</p>')
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    return atomic_write_bytes(path, page.encode())
