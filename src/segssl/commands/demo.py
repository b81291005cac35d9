"""`segssl demo [--out runs/demo] [--fast]`: the whole pipeline on the built-in generated dataset.

Supervised with all labels and with 1/8, PixPro pretraining + 1/8 fine-tuning, and the strongest
registered semi-supervised method at 1/8, then the HTML report. Every stage is an ordinary run
directory, so the demo resumes after an interruption and its runs can be inspected, evaluated or
reported on with the other commands. The configs live here in code (not in configs/), so the demo
works from an installed package.

Budget (default mode): sized for under 10 minutes on 2 CPU cores. Measured single-thread CPU cost
per optimiser step at batch 8 (ResNet-18 UNet): supervised 96 px 0.42-0.49 s, PixPro 64 px views
~1.0-1.2 s, UniMatch 96 px ~2.3-2.7 s (four forward passes, two with gradients); a whole 250-step
supervised stage with its validations and test evaluation took 134 CPU-seconds. The steps below
add up to ~8 single-thread minutes; `make demo` on 2 cores is timed in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# stage budgets (optimiser steps), see the module docstring for how they were sized
SUPERVISED_STEPS = 150
PRETRAIN_STEPS = 80
SEMI_STEPS = 40
FAST_STEPS = 4

COMMON = [
    "data.path=generated",
    "model.arch=unet",
    "model.encoder=resnet18",
    "data.crop=[96, 96]",
    "data.batch_size=8",
    "train.epoch_steps=50",
    "train.val_every_steps=75",
    "train.progress=true",
]
FAST = [  # seconds-long stages for tests and CI: tiny data, tiny UNet, a few steps
    "data.path=generated:16",
    "data.crop=[32, 32]",
    "data.batch_size=4",
    "model.encoder_depth=3",
    "model.decoder_channels=[32, 16, 16]",
    f"train.max_steps={FAST_STEPS}",
    "train.epoch_steps=2",
    "train.val_every_steps=4",
    "train.log_every_steps=1",
    "train.progress=false",
]
PIXPRO_VIEWS = {"scale": [0.3, 1.0], "color_jitter": 0.4, "min_overlap": 0.3}


@dataclass
class Stage:
    """One demo run: a run directory under OUT, trained with `overrides` on top of the common ones."""

    name: str
    title: str
    overrides: list[str]
    extra: dict = field(default_factory=dict)  # config sections --set cannot reach (views:)
    pretrain: bool = False
    init_from: str | None = None  # stage whose last checkpoint seeds this one

    def method(self) -> str:
        return next(o.split("=", 1)[1] for o in self.overrides if o.startswith("method="))


def plan_stages(fast: bool) -> list[Stage]:
    """The stages that apply with the methods registered in this installation."""
    from segssl.methods.base import METHODS, build_method_class

    build_method_class({"method": "supervised"})  # imports every method package (registers them)
    sup = [f"train.max_steps={SUPERVISED_STEPS}"]
    stages = [
        Stage("supervised_all", "supervised, all labels", ["method=supervised", "data.labeled=all", *sup]),
        Stage(
            "supervised_1of8",
            "supervised, 1/8 of the labels",
            ["method=supervised", "data.labeled=1/8", *sup],
        ),
    ]
    if "pixpro" in METHODS:
        stages.append(
            Stage(
                "pixpro_pretrain",
                "PixPro pretraining on all train images (labels unread)",
                [
                    "method=pixpro",
                    "data.labeled=none",
                    f"train.max_steps={PRETRAIN_STEPS}",
                    "data.crop=[64, 64]",
                    "train.lr=1e-3",
                    "train.weight_decay=1e-5",
                    "train.schedule=cosine",
                    "train.warmup_steps=10",
                ],
                extra={"views": dict(PIXPRO_VIEWS)},
                pretrain=True,
            )
        )
        stages.append(
            Stage(
                "pixpro_finetune_1of8",
                "fine-tune the PixPro encoder with 1/8 of the labels",
                ["method=supervised", "data.labeled=1/8", *sup],
                init_from="pixpro_pretrain",
            )
        )
    # UniMatch, not AEL: AEL beats supervised on CamVid only after 600+ continuation steps, and at this
    # stage's 40 (or 150) steps on the generated data it lost to supervised_1of8 (BENCHMARKS.md, sessions 14-15)
    semi = next((m for m in ("unimatch", "fixmatch") if m in METHODS), None)
    if semi:
        # started from the supervised 1/8 run (self-training on top of it): within the demo's minutes,
        # a semi-supervised run from scratch would get a quarter of the supervised steps
        stages.append(
            Stage(
                f"{semi}_1of8",
                f"{semi}, 1/8 labels + the rest unlabeled, from supervised_1of8",
                [
                    f"method={semi}",
                    "data.labeled=1/8",
                    f"train.max_steps={SEMI_STEPS}",
                    "train.lr=1e-3",
                    "train.val_every_steps=30",
                ],
                init_from="supervised_1of8",
            )
        )
    if fast:
        for s in stages:
            s.overrides = [
                o for o in s.overrides if not o.startswith(("train.max_steps=", "data.crop=", "train.val_every_steps="))
            ]
    return stages


def stage_config(stage: Stage, out: Path, fast: bool) -> dict:
    from segssl.config import load_config

    over = [*COMMON, *(FAST if fast else []), *stage.overrides]
    if stage.init_from:
        over.append(f"model.init={out / stage.init_from / 'checkpoints' / 'last.ckpt'}")
    cfg = load_config(None, over)
    labeled = next(o.split("=", 1)[1] for o in stage.overrides if o.startswith("data.labeled="))
    cfg["data"]["labeled"] = labeled  # verbatim, as `--labeled` keeps it
    for k, v in stage.extra.items():
        cfg[k] = v
    return cfg


def stage_state(stage: Stage, cfg: dict, run_dir: Path) -> str:
    """'done' (skip), 'resume' (a checkpoint exists) or 'new'; refuses a folder holding another config."""
    from segssl.errors import SegsslError
    from segssl.models.checkpoint import read_checkpoint

    saved_path = run_dir / "config.yaml"
    last = run_dir / "checkpoints" / "last.ckpt"
    if saved_path.is_file() and last.is_file():
        saved = yaml.safe_load(saved_path.read_text()) or {}
        mine = yaml.safe_load(yaml.safe_dump(cfg))
        for d in (saved, mine):  # where and how verbosely a stage runs does not change what it computes
            for k in ("progress", "accelerator", "devices", "strategy"):
                d.get("train", {}).pop(k, None)
        if saved != mine:
            key = _first_diff(saved, mine)
            raise SegsslError(
                f"{run_dir}: holds a run made with another config ({key}: --fast vs. default, "
                "or another segssl version?); use another --out or delete it"
            )
    if (run_dir / "metrics.json").is_file():
        return "done"
    if last.is_file():
        step = int(read_checkpoint(last).get("global_step") or 0)
        if stage.pretrain and step >= int(cfg["train"]["max_steps"]):
            return "done"
        return "resume"
    return "new"


def _first_diff(a, b, path: str = "") -> str:
    """Dotted key of the first difference between two nested dicts (for the error message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return _first_diff(a.get(k), b.get(k), f"{path}{k}.")
    return path.rstrip(".") or "config"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="whole pipeline on the built-in generated dataset, with a report")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder of the demo's runs and report")
    p.add_argument("--fast", action="store_true", help="tiny budgets (seconds; for tests and CI)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto", help="where to train")


def _fmt_s(s: float) -> str:
    return f"{int(s) // 60}m{int(s) % 60:02d}s" if s >= 60 else f"{s:.0f}s"


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from segssl.commands.common import console
    from segssl.errors import SegsslError
    from segssl.reporting.html import fmt_labeled, fmt_pct, fmt_time
    from segssl.reporting.report import collect_runs, write_report
    from segssl.training.run import run_training

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise SegsslError(f"{out}: exists and is not a directory")
    stages = plan_stages(args.fast)
    configs = {}
    for s in stages:
        cfg = stage_config(s, out, args.fast)
        if args.device != "auto":
            cfg["train"]["accelerator"] = {"cuda": "gpu", "cpu": "cpu"}[args.device]
        configs[s.name] = cfg
    states = {s.name: stage_state(s, configs[s.name], out / s.name) for s in stages}

    plan = Table(
        title=f"segssl demo{' (--fast)' if args.fast else ''}: generated dataset → {out}",
        title_justify="left",
    )
    for col in ("#", "run", "what", "steps", "status"):
        plan.add_column(col, justify="right" if col in ("#", "steps") else "left")
    status_txt = {
        "done": "[green]done, skipped[/green]",
        "resume": "[yellow]resume[/yellow]",
        "new": "to run",
    }
    for i, s in enumerate(stages, 1):
        plan.add_row(str(i), s.name, s.title, str(configs[s.name]["train"]["max_steps"]), status_txt[states[s.name]])
    console.print(plan)
    if not args.fast:
        console.print(
            "[dim]Budgeted for under 10 minutes on 2 CPU cores (much less on a GPU). "
            "Interrupt any time: running the demo again resumes.[/dim]"
        )

    t_all = time.time()
    for i, s in enumerate(stages, 1):
        run_dir = out / s.name
        if states[s.name] == "done":
            continue
        console.rule(f"[bold][{i}/{len(stages)}] {s.title}[/bold]")
        t0 = time.time()
        metrics = run_training(configs[s.name], run_dir, resume=states[s.name] == "resume")
        took = _fmt_s(time.time() - t0)
        if metrics:
            console.print(f"{s.name}: test mIoU {metrics['miou']:.2f} (pixel acc {metrics['pixel_acc']:.2f}) in {took}")
        else:
            console.print(f"{s.name}: pretrained in {took}")

    console.rule("[bold]report[/bold]")
    run_dirs = [out / s.name for s in stages]
    page = write_report(
        run_dirs,
        out / "report",
        num_images=6,
        title="segssl demo report",
        device={"auto": None, "cuda": "cuda", "cpu": "cpu"}[args.device],
        log=lambda m: console.print(f"[dim]{m}[/dim]"),
    )
    table = Table(title="Results (generated dataset, test split, last checkpoint)", title_justify="left")
    table.add_column("run", no_wrap=True)
    for col in ("labeled", "mIoU", "best-val", "pix acc", "time"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in collect_runs(run_dirs):
        m, mb = r.metrics or {}, r.metrics_best or {}
        table.add_row(
            r.name,
            fmt_labeled(r),
            fmt_pct(m.get("miou")),
            fmt_pct(mb.get("miou")),
            fmt_pct(m.get("pixel_acc")),
            fmt_time(r.train_time_s, r.train_time_exact),
        )
    console.print(table)
    console.print(f"demo finished in {_fmt_s(time.time() - t_all)}; report: [bold]{page}[/bold]")
    return 0
