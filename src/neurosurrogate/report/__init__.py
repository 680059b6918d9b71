"""Figures and self-contained HTML reports."""

from .html import write_report as write_report
