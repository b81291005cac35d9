"""`segssl report RUN_DIR [RUN_DIR ...] --out REPORT_DIR`: HTML + PNG report of one or more runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="HTML + PNG report (tables, plots, prediction pictures) of runs")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (train/pretrain)")
    p.add_argument("--out", type=Path, default=Path("report"), help="report folder (default: report/)")
    p.add_argument("--data", help="dataset for the prediction pictures (default: the first run's data.path)")
    p.add_argument("--num-images", type=int, default=6, help="images in the prediction grid (0: none)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="where to predict (default: cuda if present)")
    p.add_argument("--title", default="segssl report")


def run(args: argparse.Namespace) -> int:
    from segssl.commands.common import console
    from segssl.reporting.report import write_report

    page = write_report(
        args.runs,
        args.out,
        data=args.data,
        num_images=args.num_images,
        device=args.device,
        title=args.title,
        log=lambda s: console.print(f"[dim]{s}[/dim]"),
    )
    console.print(f"report: {page}")
    return 0
