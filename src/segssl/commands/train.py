"""`segssl train`: supervised or semi-supervised training (method from the config)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a segmenter (supervised or semi-supervised)")
    from segssl.commands.common import add_training_flags

    add_training_flags(p)


def run(args: argparse.Namespace) -> int:
    from segssl.commands.common import config_from_args, console, print_metrics, run_dir_for
    from segssl.training.run import run_training

    cfg = config_from_args(args)
    run_dir = run_dir_for(args, cfg)
    metrics = run_training(cfg, run_dir, resume=args.resume)
    print_metrics(metrics, f"{cfg['method']}: final checkpoint on {metrics.get('split', 'test')}")
    console.print(f"run directory: {run_dir}")
    return 0
