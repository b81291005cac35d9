"""Reports of runs: plots, prediction pictures and a self-contained HTML page (matplotlib is imported
only when a plot is drawn, so `colorize` / `overlay` stay cheap for `segssl predict`)."""

from segssl.reporting.pictures import colorize, overlay
from segssl.reporting.report import collect_runs, write_report

__all__ = ["colorize", "collect_runs", "overlay", "write_report"]
