"""Dense self-supervised pretraining on CamVid train+val images (labels unread), then probes and fine-tuning.

For each method (and random initialisation): linear-probe mIoU, kNN mIoU (frozen features, all train
labels), and mIoU after fine-tuning with 1/8 of the train labels (the supervised benchmark's config,
budget and split). Usage: python benchmarks/pretrain_camvid.py [--methods pixpro_unet,densecl,...]
[--steps N] [--finetune-parts all,all@0.1,encoder,encoder@0.1] [--seed N] [--pool train] [--pretrain-seed N]
Writes benchmarks/runs/pretrain_camvid/<method>/{pretrain,linear,knn,finetune_1-8}/ and the
`pretrain-camvid` table in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    finish,
    fmt,
    header,
    load_json,
    located,
    ran,
    run_segssl,
    seed_mious,
    seeded,
    seeds_cell,
    sets,
    write_section,
)

METHODS = ["pixpro_unet", "densecl", "pass_align", "pixpro_allpairs", "pixpro_unet_region"]
FINETUNE = "configs/benchmarks/camvid_supervised.yaml"
DEFAULT_STEPS = 300
RUNS = ROOT / "benchmarks" / "runs" / "pretrain_camvid"  # the default budget's runs (random init lives here)
SUPERVISED = ROOT / "benchmarks" / "runs" / "supervised_camvid"  # the 1/8 baseline and its split file
# the fine-tuning columns of the table: what transfers (and the encoder's lr multiplier), by --finetune-parts spec
COLUMNS = {
    "all": "fine-tuned 1/8 mIoU (final)",
    "all@0.1": "fine-tuned 1/8 at 0.1x encoder lr (final)",
    "encoder": "fine-tuned 1/8, encoder only (final)",
    "encoder@0.1": "fine-tuned 1/8, encoder only at 0.1x encoder lr (final)",
}
# the fine-tuning config's UNet (decoder 128-64-32-32-32), so every pretrained weight transfers
DECODER = "model.decoder_channels=[128,64,32,32,32]"
# one fixed pretraining budget for every method: steps x batch at one view size
PRETRAIN_SET = [
    "data.crop=[96,128]",
    "data.batch_size=8",
    "data.unlabeled_extra=[val]",
    "train.progress=false",
    DECODER,
]
# the unlabeled pool pretraining reads (`--pool`): the train+val, or train alone, which holds val out of
# pretraining as test is, to check whether a gain seen on val but not on test comes from pretraining on val
POOLS = {"trainval": [], "train": ["data.unlabeled_extra=[]"]}
POOL_TEXT = {"trainval": "the 468 CamVid train+val images", "train": "the 367 CamVid train images, val held out"}
PROBE_SET = ["train.progress=false", DECODER]  # DECODER only shapes the random-init row


def pretrain_command(method: str, data: str, steps: int, extra: list[str] = ()) -> list[str]:
    """`segssl pretrain` arguments of one method at the fixed pretraining budget (`extra`: e.g. a seed)."""
    return [
        "pretrain",
        "--config",
        f"configs/pretrain/{method}.yaml",
        "--data",
        data,
        *sets([*PRETRAIN_SET, f"train.max_steps={steps}", *extra]),
    ]


def probe_command(proto: str, ckpt: str, data: str, overrides: list[str]) -> list[str]:
    """`segssl probe` arguments of one protocol (linear | knn) on a checkpoint (or 'random')."""
    return [
        "probe",
        "--config",
        f"configs/probe/{proto}.yaml",
        "--protocol",
        proto,
        "--checkpoint",
        ckpt,
        "--data",
        data,
        *sets(overrides),
    ]


def stage(rd: Path, args: list[str], log: Path, need_checkpoint: bool = False) -> dict | None:
    """Run one stage unless finished; returns its bench info. A finished pretraining whose checkpoint
    a later stage still needs (but a fresh checkout lacks) is run again from scratch; its bench.json then describes
    the new run (whose weights the later stages use) and keeps the earlier runs' (`finish`)."""
    done = load_json(rd / "bench.json")
    if done and not (need_checkpoint and not (rd / "checkpoints" / "last.ckpt").is_file()):
        return done
    info = run_segssl(args, rd, log)
    finish(info, rd)
    return info


def parser() -> argparse.ArgumentParser:
    """The command line (also how other benchmarks name this one's run folders, through `run_folder`)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str((ROOT / ".." / "shared" / "data" / "camvid").resolve()))
    ap.add_argument("--methods", default=",".join(["random", *METHODS]))
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="pretraining steps (same for every method)")
    ap.add_argument("--no-finetune", action="store_true")
    ap.add_argument("--stages", default="pretrain,linear,knn,finetune", help="stages to run (the rest are skipped)")
    ap.add_argument(
        "--finetune-parts",
        default="all",
        help="comma list of what fine-tuning transfers: all (encoder + decoder, the default) and/or encoder "
        "(the pretrained encoder with a fresh decoder and head: the image-level papers' protocol); PART@M also "
        "sets train.encoder_lr_mult=M (e.g. encoder@0.1: the pretrained encoder fine-tuned at a tenth of the lr)",
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="training seed of a fine-tuning replicate (folder finetune..._1-8-seedN; the supervised baseline's "
        "seed-0 split file is kept, so only the training seed differs)",
    )
    ap.add_argument(
        "--pool",
        choices=list(POOLS),
        default="trainval",
        help="images pretraining reads: train+val (the issue's protocol) or train alone (val held out like test)",
    )
    ap.add_argument(
        "--pretrain-seed",
        type=int,
        default=0,
        help="seed of the pretraining itself (crops, pairs, initial weights): a replicate of the pretraining, in "
        "its own run folder (_pseedN) and section, fine-tuned with the same --seed training seeds",
    )
    ap.add_argument("--out", help="run folder (default benchmarks/runs/pretrain_camvid[_STEPS][_train][_pseedN])")
    ap.add_argument("--table-only", action="store_true")
    return ap


def run_folder(args) -> Path:
    """Where one invocation's runs go: `--out`, or the default folder named by its budget and pool."""
    return Path(args.out) if args.out else Path(f"{RUNS}{variant(args, '_')}")


def main() -> None:
    args = parser().parse_args()
    out = run_folder(args)
    log = out / "log.txt"
    if not args.table_only:
        stages = set(args.stages.split(","))
        for m in args.methods.split(","):
            base = RUNS / m if m == "random" else out / m  # random init has no pretraining budget or pool
            parts = args.finetune_parts.split(",")
            todo = [s for s in ("linear", "knn") if s in stages] + (
                [finetune_dir(p, args.seed) for p in parts] if "finetune" in stages and not args.no_finetune else []
            )
            if m == "random":
                ckpt = "random"
            elif "pretrain" in stages:
                stage(
                    base / "pretrain",
                    pretrain_command(m, args.data, args.steps, pretrain_extra(args)),
                    log,
                    need_checkpoint=any(not load_json(base / s / "bench.json") for s in todo),
                )
            if m != "random":
                ckpt = str(base / "pretrain" / "checkpoints" / "last.ckpt")
            for proto in [p for p in ("linear", "knn") if p in stages]:
                stage(
                    base / proto,
                    probe_command(proto, ckpt, args.data, PROBE_SET),
                    log,
                )
            # random init fine-tunes only as the control of a slower encoder (`all@0.1`): at 1x it is the baseline
            controls = [p for p in parts if m != "random" or _part(p) == ("all", 0.1)]
            for part in controls if not args.no_finetune and "finetune" in stages else []:
                stage(
                    base / finetune_dir(part, args.seed),
                    [
                        "train",
                        "--config",
                        FINETUNE,
                        "--data",
                        args.data,
                        "--labeled",
                        split_of(args.seed),
                        *sets([*finetune_sets(ckpt, part), *([f"seed={args.seed}"] if args.seed else [])]),
                    ],
                    log,
                )
            write_table(out, args)
    write_table(out, args)


def _part(spec: str) -> tuple[str, float]:
    part, _, mult = spec.partition("@")
    if part not in ("all", "encoder"):
        raise SystemExit(f"--finetune-parts {spec}: expected all or encoder, optionally @LR_MULT")
    return part, float(mult or 1.0)


def finetune_dir(spec: str, seed: int = 0) -> str:
    """Run folder of one fine-tuning cell (`seed` > 0: a training-seed replicate of it)."""
    part, mult = _part(spec)
    name = "" if part == "all" else f"_{part}"
    return seeded(f"finetune{name}{'' if mult == 1.0 else f'_lr{mult:g}'}_1-8", seed)


def split_of(seed: int) -> str:
    """`--labeled` of a fine-tune: 1/8 drawn with seed 0 (the supervised baseline's draw), or for a replicate
    the baseline's split file itself, since `seed=N` would draw another 1/8."""
    if not seed:
        return "1/8"
    found = located(SUPERVISED / "1-8" / "splits" / "labeled.txt")
    if not found:
        raise SystemExit(f"--seed {seed}: no 1/8 split file under {SUPERVISED} (run benchmarks/supervised_camvid.py)")
    return str(found)


def finetune_sets(ckpt: str, spec: str) -> list[str]:
    """Overrides of one fine-tune; from random init only the encoder's lr multiplier (nothing to transfer)."""
    part, mult = _part(spec)
    lr = [f"train.encoder_lr_mult={mult:g}"]
    return lr if ckpt == "random" else [f"model.init={ckpt}", f"model.init_parts={part}", *lr]


def variant_options(args) -> list[tuple[str, str, object]]:
    """(flag, name prefix, value) of each non-default pretraining option (budget, pool, seed): the one list that
    names an invocation's runs and section (`variant`) and writes its command line (`command_line`)."""
    defaults = parser()  # the defaults the command line declares, so they are written down once
    options = [("--steps", "steps", ""), ("--pool", "pool", ""), ("--pretrain-seed", "pretrain_seed", "pseed")]
    return [
        (flag, prefix, getattr(args, dest))
        for flag, dest, prefix in options
        if getattr(args, dest) != defaults.get_default(dest)
    ]


def variant(args, sep: str) -> str:
    """Name suffix of a non-default pretraining (budget, pool, seed), so runs and sections never mix."""
    return "".join(f"{sep}{prefix}{value}" for _, prefix, value in variant_options(args))


def command_line(args) -> str:
    """The command that regenerates this invocation's table (its non-default pretraining options)."""
    return "python benchmarks/pretrain_camvid.py" + "".join(f" {f} {v}" for f, _, v in variant_options(args))


def pretrain_extra(args) -> list[str]:
    """Config overrides of this invocation's pretraining beyond the budget: its image pool and seed."""
    return [*POOLS[args.pool], *([f"seed={args.pretrain_seed}"] if args.pretrain_seed else [])]


def finetune_mious(base: Path, spec: str) -> dict[int, float]:
    """Final test mIoU of every training seed of one fine-tuning cell."""
    return seed_mious(base, finetune_dir(spec))


def random_cell(base: Path, spec: str, sup: dict[int, float]) -> dict[int, float]:
    """Random init's fine-tuning cells: the supervised baseline wherever the encoder lr is unchanged (random
    weights have no encoder or decoder to transfer); at 0.1x the control run of a slower random encoder, which
    tells whether a pretrained `all@0.1` gain comes from the weights or from the slower encoder alone."""
    if "@" not in spec:
        return sup
    return finetune_mious(base, spec) if _part(spec) == ("all", 0.1) else {}


def write_table(out: Path, args) -> None:
    sup = seed_mious(SUPERVISED, "1-8")  # same budget, random init
    rows = [
        "| init | pretrain min | pretrain images/s | peak RSS MiB | linear probe mIoU | kNN mIoU | "
        + " | ".join(COLUMNS.values())
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(COLUMNS),
    ]
    replicates = []
    for m in ["random", *METHODS]:
        base = out / m
        if m == "random" and not ran(base):  # random init has no pretraining budget: share its row
            base = RUNS / m
        if variant(args, "_") and not ran(base):
            continue  # a longer-budget (or train-pool) table lists only the methods run there
        pre = load_json(base / "pretrain" / "bench.json")
        lin, knn = load_json(base / "linear" / "metrics.json"), load_json(base / "knn" / "metrics.json")
        fts = {c: random_cell(base, c, sup) if m == "random" else finetune_mious(base, c) for c in COLUMNS}
        if not (pre or lin or knn or any(fts.values())):
            rows.append(f"| {m} | not run yet |" + " |" * (4 + len(COLUMNS)))
            continue
        ips = pre and pre["wall_s"] and args.steps * 8 / pre["wall_s"]
        cells = [
            seeds_cell(v) + (" (supervised 1/8 baseline)" if m == "random" and c == "all" else "")
            for c, v in fts.items()
        ]
        rows.append(
            f"| {m} | {fmt(pre and pre['wall_s'] / 60)} | {fmt(ips)} | {fmt(pre and pre['peak_rss_mb'], 0)} | "
            f"{fmt(lin and lin['miou'])} | {fmt(knn and knn['miou'])} | " + " | ".join(cells) + " |"
        )
        replicates += [
            f"| {m} | {COLUMNS[c]} | {' / '.join(f'{v:.1f}' for v in seeds.values())} | {'/'.join(map(str, seeds))} |"
            for c, seeds in fts.items()
            if len(seeds) > 1 and not (m == "random" and c != "all" and seeds is sup)  # the baseline once
        ]
    if replicates:
        rows += [
            "",
            "Training-seed replicates of the fine-tunes (`--seed N`, the baseline's `supervised_camvid.py --seed N`: "
            "the seed-0 split file, only the training seed differs; the cells above give their mean):",
            "",
            "| init | fine-tune | final mIoU per seed | seeds |",
            "|---|---|---|---|",
            *replicates,
        ]
    body = (
        "## Dense self-supervised pretraining, CamVid (test split)\n\n"
        + header(command_line(args))
        + f"\nPretraining: {args.steps} steps of batch 8 two-view 96x128 crops on {POOL_TEXT[args.pool]} "
        "(labels never read), UNet / ResNet-18, each method's config in `configs/pretrain/`. "
        "Probes on frozen full-resolution pixel features with all 367 train masks: linear = multinomial logistic "
        "regression (1x1 conv), median-frequency class-balanced, solved by L-BFGS on 4000 cached pixels per "
        "image; kNN = k 20, T 0.07, 300 pixels per train image, "
        "votes on a 4x4-pooled query grid. Fine-tuning: the supervised "
        "benchmark's config (800 steps) with the same 1/8 split file, starting from the pretrained encoder + "
        "decoder (`--finetune-parts all`, the default; `all@0.1`: with the encoder at 0.1x the lr) or from the "
        "pretrained encoder only, with a fresh decoder and head (`encoder`, `encoder@0.1`). "
        "images/s = pretraining images (two views each) per wall-clock second, including validation-free "
        "overheads; runs shared the 2 cores with one to three other benchmark processes (1 thread each), so "
        "minutes and images/s are pessimistic. — = not run at this budget yet.\n\n" + "\n".join(rows) + "\n"
    )
    if args.steps != DEFAULT_STEPS:
        body = body.replace("pretraining, CamVid", f"pretraining for {args.steps} steps, CamVid", 1)
    if args.pool != "trainval":
        body = body.replace(", CamVid (test split)", f", CamVid, pretrained on {args.pool} only (test split)", 1)
    if args.pretrain_seed:
        body = body.replace(" (test split)", f", pretraining seed {args.pretrain_seed} (test split)", 1)
    write_section(f"pretrain-camvid{variant(args, '-')}", body)


if __name__ == "__main__":
    main()
