"""Flags and helpers shared by the commands (DESIGN.md: --config, --set, --data, --labeled, ...)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

console = Console(stderr=False, highlight=False)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config file (see configs/)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.max_steps=100 (repeatable)",
    )


def add_training_flags(p: argparse.ArgumentParser, labeled: bool = True) -> None:
    add_config_flags(p)
    p.add_argument(
        "--data",
        help="dataset: PATH | voc:PATH | cityscapes:PATH | ade20k:PATH | camvid:PATH | imagenet-s:PATH | generated[:N]",
    )
    if labeled:
        p.add_argument("--labeled", help="labeled part of train: 1/8 | 0.125 | N | FILE (split file)")
    p.add_argument("--out", type=Path, help="run directory (default runs/<method>)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], help="where to train (default: cuda if present)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.ckpt")


def config_from_args(args: argparse.Namespace, defaults: dict | None = None) -> dict:
    from segssl.config import load_config

    over = list(args.overrides)
    if getattr(args, "data", None):
        over.append(f"data.path={args.data}")
    if getattr(args, "labeled", None):
        over.append(f"data.labeled={args.labeled}")
    if getattr(args, "seed", None) is not None:
        over.append(f"seed={args.seed}")
    if getattr(args, "device", None):
        over.append(f"train.accelerator={ {'cuda': 'gpu', 'cpu': 'cpu', 'auto': 'auto'}[args.device] }")
    cfg = load_config(args.config, over, defaults)
    if getattr(args, "data", None):  # keep strings like '1/8' and paths verbatim, not YAML-parsed
        cfg["data"]["path"] = args.data
    if getattr(args, "labeled", None):
        cfg["data"]["labeled"] = args.labeled
    return cfg


def run_dir_for(args: argparse.Namespace, cfg: dict) -> Path:
    if getattr(args, "out", None):
        return Path(args.out)
    if getattr(args, "resume", False) and getattr(args, "config", None) and Path(args.config).name == "config.yaml":
        return Path(args.config).parent
    return Path("runs") / str(cfg.get("method", "run"))


def print_metrics(metrics: dict, title: str | None = None) -> None:
    from segssl.evaluation.evaluate import format_table

    if metrics:
        t = format_table(metrics)
        if title:
            t.title = title
        console.print(t)
