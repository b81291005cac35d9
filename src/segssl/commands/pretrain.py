"""`segssl pretrain`: self-supervised pretraining of a dense encoder (labels are never read for the loss)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("pretrain", help="self-supervised pretraining (PixPro, DenseCL, PASS alignment, ...)")
    from segssl.commands.common import add_training_flags

    add_training_flags(p, labeled=True)


def run(args: argparse.Namespace) -> int:
    from segssl.commands.common import config_from_args, console, run_dir_for
    from segssl.methods.base import build_method_class
    from segssl.training.run import run_training

    cfg = config_from_args(args)
    if not args.labeled and cfg["data"]["labeled"] == "all":
        cfg["data"]["labeled"] = "none"  # no online probe unless labels are asked for
    if build_method_class(cfg).kind != "pretrained":
        from segssl.errors import SegsslError

        raise SegsslError(f"method={cfg['method']}: not a pretraining method (use `segssl train` for it)")
    run_dir = run_dir_for(args, cfg)
    run_training(cfg, run_dir, resume=args.resume)
    console.print(
        f"pretrained checkpoint: {run_dir / 'checkpoints' / 'last.ckpt'} (fine-tune with --set model.init=...)"
    )
    return 0
