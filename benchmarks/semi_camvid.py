"""Label-efficiency table on CamVid: every semi-supervised method at 1/16, 1/8, 1/4 labels + the ceiling.

Every row uses its `configs/semi/<method>.yaml` with ONE shared CPU budget applied on top (same
architecture, steps, crop, batch and seed-0 split files), and is scored on the test split with the
final checkpoint (the honest headline; best-on-val is shown beside it).
With `--warmstart W`, every row (the supervised one included) starts from ONE shared supervised
checkpoint per fraction, trained W steps on that fraction's labeled images (the teacher semi-supervised
methods need: the papers start from ImageNet weights, which segssl never downloads); each row then
trains its own `--steps` more, so every row has the same W + steps budget.
With `--seed N` (N > 0) the cells are training-seed replicates: the seed-0 split file, `seed=N`, run
folder `<fraction>-seedN`; the table lists them under the main rows and the plot draws their mean with a
min-max bar, so a margin of one seed can be checked against a second.
Usage: python benchmarks/semi_camvid.py [--methods supervised,unimatch,...] [--fractions 1/8] [--steps N]
       [--warmstart W] [--seed N] [--crop H,W] [--scale LO,HI] [--warmup N]
Writes benchmarks/runs/semi_camvid[_STEPS][_wsW]/<method>/<fraction>/, the matching `semi-camvid...`
table in BENCHMARKS.md and benchmarks/label_efficiency_camvid[...].png.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    budget_suffix,
    finish,
    fmt,
    header,
    load_json,
    located,
    run_segssl,
    seed_mious,
    seeded,
    sets,
    write_section,
)
from pretrain_camvid import DEFAULT_STEPS as PRETRAIN_STEPS  # noqa: E402
from pretrain_camvid import METHODS as PRETRAIN_METHODS  # noqa: E402

METHODS = [
    "supervised",
    "pseudo_label",
    "pi_model",
    "temporal_ensembling",
    "mean_teacher",
    "cutmix",
    "classmix",
    "cct",
    "cps",
    "ael",
    "gct",
    "zhao_contrastive",
    "fixmatch",
    "unimatch",
    "self_correcting",
]
# with a warm start: the same continuation on ALL train labels from the fraction's warm start, i.e. a
# method whose pseudo-labels were the true labels: the most that unlabeled data can add at this budget
ORACLE = "oracle_all_labels"
NO_PHOTO = [f"method_args.strong_{k}_p=0" for k in ("jitter", "gray", "blur")]
# rows that are a method with one option changed: name -> (config, --set overrides); shown once run
VARIANTS = {
    "fixmatch_cbst": ("fixmatch", ["method_args.class_balanced_portion=0.5"]),
    "unimatch_cbst": ("unimatch", ["method_args.class_balanced_portion=0.5"]),
    "fixmatch_cw": ("fixmatch", ["method_args.unlabeled_class_weights=true"]),
    "unimatch_cw": ("unimatch", ["method_args.unlabeled_class_weights=true"]),
    # strong view without colour jitter, grayscale and blur: CutMix is its only perturbation
    "fixmatch_nophoto": ("fixmatch", NO_PHOTO),
    "unimatch_nophoto": ("unimatch", NO_PHOTO),
    # both remedies together: class-weighted pseudo-label CE (helped both rows) and a CutMix-only strong view
    # (kept FixMatch's sidewalk)
    "unimatch_cw_nophoto": ("unimatch", ["method_args.unlabeled_class_weights=true", *NO_PHOTO]),
    # AEL's pseudo-label terms ramped up over the first quarter (from random init its road drifts to sign)
    "ael_rampup": ("ael", ["method_args.rampup=0.25"]),
    # fine-tuning a pretrained start with its encoder at a tenth of the lr (the backbone / head ratio of the
    # DeepLab, CPS and UniMatch code): keeps what pretraining learnt while the fresh head settles
    "supervised_enclr0.1": ("supervised", ["train.encoder_lr_mult=0.1"]),
}
FRACTIONS = ["1/16", "1/8", "1/4"]
DEFAULT_STEPS = 300


DEFAULT_LR = 2e-3
# crop, scale range and warm-up of the CPU budget; `--crop/--scale/--warmup` change them (the GPU protocol uses
# 160,224 / 0.5,2.0 / 100), so that a margin seen on one protocol can be traced to what differs on the other
DEFAULT_CROP, DEFAULT_SCALE, DEFAULT_WARMUP = "96,128", "0.5,1.5", 20


def budget(
    steps: int,
    lr: float = DEFAULT_LR,
    crop: str = DEFAULT_CROP,
    scale: str = DEFAULT_SCALE,
    warmup: int = DEFAULT_WARMUP,
) -> list[str]:
    """The shared budget: CamVid-native scale range, 96x128 crops (by default), batch 8 (+8 unlabeled), poly AdamW.

    Sized so that 45 runs fit a CPU: UniMatch, the most expensive row, costs ~3.4 s/step on one core.
    """
    return [
        f"data.crop=[{crop}]",
        "model.decoder_channels=[128,64,32,32,32]",
        "data.base_size=[180,240]",
        f"data.scale=[{scale}]",
        "data.batch_size=8",
        "data.unlabeled_extra=[val]",
        f"train.max_steps={steps}",
        f"train.val_every_steps={max(steps // 4, 1)}",
        "train.epoch_steps=100",
        f"train.warmup_steps={warmup}",
        f"train.lr={lr:g}",
        "train.class_weights=sqrt_median_freq",
        "train.progress=false",
        "eval.batch_size=1",
    ]


def slug(frac: str) -> str:
    return frac.replace("/", "-")


def cell(frac: str, seed: int) -> str:
    """Run folder name of one cell: the fraction, plus `-seedN` for a training-seed replicate."""
    return seeded(slug(frac), seed)


def split_file(out: Path, frac: str, seed: int, method: str = "supervised") -> str:
    """`--labeled` of a cell: the fraction itself (seed-0 split), or for a replicate the split file of a seed-0
    cell of the same table (the supervised row's, else the method's own: every seed-0 cell draws the same
    split), so that a replicate differs from its seed-0 cell only in the training seed."""
    if not seed:
        return frac
    rows = dict.fromkeys(["supervised", method])
    for row in rows:
        if found := located(out / row / slug(frac) / "splits" / "labeled.txt"):
            return str(found)
    raise SystemExit(
        f"--seed {seed}: no seed-0 split file of {frac} under {out} (run the seed-0 cell of {' or '.join(rows)} first)"
    )


def variant(args, sep: str) -> str:
    """Name suffix of a non-default budget / warm-start, so runs, sections and plots never mix."""
    ws = "" if args.warmstart == "0" else f"{sep}ws{warm_name(args.warmstart)}"
    if pretrained(args.warmstart):
        ws += pretraining_suffix(args, "-p", "-pseed")
    lr = "" if args.lr == DEFAULT_LR else f"{sep}lr{args.lr:g}"
    tag = f"{sep}{args.tag}" if args.tag else ""
    return budget_suffix(args.steps, DEFAULT_STEPS, sep) + ws + lr + shape(args, sep) + tag


def supervised_start(args) -> bool:
    """Whether rows continue a supervised warm start (the oracle row exists only then)."""
    return args.warmstart != "0" and not pretrained(args.warmstart)


def random_init_line(args) -> str:
    """The same budget's random-init supervised cells (every seed run), the reference a pretraining must beat;
    a supervised variant run from random init too (e.g. `supervised_enclr0.1`) is its control, listed after it."""
    ref = argparse.Namespace(**{**vars(args), "warmstart": "0", "tag": "", "out": None})
    runs = run_folder(ref)
    # every supervised variant: one with no cell (here or in the archive of a fresh checkout) lists nothing
    controls = [v for v, (base, _) in VARIANTS.items() if base == "supervised"]
    found = []
    for row in ["supervised", *controls]:
        cells = []
        for frac in [*FRACTIONS, "all"]:
            if seeds := seed_mious(runs / row, slug(frac)):
                cells.append(f"{frac} {' / '.join(f'{v:.1f}' for v in seeds.values())}")
        if cells:
            found.append(("" if row == "supervised" else f"`{row}` ") + "; ".join(cells))
    return (
        f"\nSupervised from random init at the same budget (section `semi-camvid{variant(ref, '-')}`, "
        f"final test mIoU, one value per training seed): {' — '.join(found) if found else 'not run yet'}.\n"
    )


def pretraining_suffix(args, steps_prefix: str | None, seed_prefix: str) -> str:
    """How a non-default pretraining (`--pretrain-steps`, `--pretrain-seed`) is named: in the run folder, the
    pretraining's own folder and the title, each with its prefixes (None: leave the steps out)."""
    steps = "" if steps_prefix is None else budget_suffix(args.pretrain_steps, PRETRAIN_STEPS, steps_prefix)
    return steps + (f"{seed_prefix}{args.pretrain_seed}" if args.pretrain_seed else "")


def warm_name(warmstart: str) -> str:
    """A warm start's name in folders and sections: its steps, `sup`, or the pretraining method (+ `-encoder`)."""
    if warmstart.isdigit():
        return warmstart
    if pre := pretrained(warmstart):
        return pre[0] + ("-encoder" if pre[1] == "encoder" else "")
    return "sup"


def shape(args, sep: str) -> str:
    """Name suffix of a non-default crop / scale / warm-up (empty for the CPU budget's own)."""
    crop = "" if args.crop == DEFAULT_CROP else f"{sep}crop{args.crop.replace(',', 'x')}"
    scale = "" if args.scale == DEFAULT_SCALE else f"{sep}scale{args.scale.replace(',', '-')}"
    warm = "" if args.warmup == DEFAULT_WARMUP else f"{sep}wu{args.warmup}"
    return crop + scale + warm


def budget_of(args, steps: int | None = None, lr: float | None = None) -> list[str]:
    """This invocation's shared budget (steps, lr, crop, scale, warm-up); a warm start overrides steps and lr."""
    return budget(steps or args.steps, lr or args.lr, args.crop, args.scale, args.warmup)


def command(args) -> str:
    steps = budget_suffix(args.steps, DEFAULT_STEPS, " --steps ")
    return (
        f"python benchmarks/semi_camvid.py{steps}"
        + ("" if args.warmstart == "0" else f" --warmstart {args.warmstart}")
        + ("" if args.lr == DEFAULT_LR else f" --lr {args.lr:g}")
        + ("" if args.crop == DEFAULT_CROP else f" --crop {args.crop}")
        + ("" if args.scale == DEFAULT_SCALE else f" --scale {args.scale}")
        + ("" if args.warmup == DEFAULT_WARMUP else f" --warmup {args.warmup}")
        + budget_suffix(args.pretrain_steps, PRETRAIN_STEPS, " --pretrain-steps ")
        + (f" --pretrain-seed {args.pretrain_seed}" if args.pretrain_seed else "")
        + (f" --tag {args.tag}" if args.tag else "")
    )


def parser() -> argparse.ArgumentParser:
    """The command line (also how other benchmarks name this one's run folders, through `run_folder`)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str((ROOT / ".." / "shared" / "data" / "camvid").resolve()))
    ap.add_argument("--methods", default=",".join(METHODS), help=f"also {ORACLE} and {', '.join(VARIANTS)}")
    ap.add_argument("--fractions", default=",".join([*FRACTIONS, "all"]))
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument(
        "--warmstart",
        default="0",
        help="shared supervised warm start: N steps at this budget, or 'supervised_camvid' (the supervised "
        "benchmark's run of the fraction: 800 steps, 128x160 crops); 0 = random init",
    )
    ap.add_argument(
        "--lr",
        type=float,
        default=DEFAULT_LR,
        help="peak learning rate of every row (a warm-started continuation may want less than the 2e-3 "
        "a run from random init needs)",
    )
    ap.add_argument(
        "--tag",
        default="",
        help="extra name of a table whose rows must not mix with an earlier one of the same budget (e.g. a "
        "re-trained warm start on a fresh checkout: seeded, but not bit-identical across thread counts or CPU "
        "models: the 3000-step 1/8 one gave 41.01 on AMD EPYC and 41.30 on Intel Xeon)",
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="training seed of a replicate (the seed-0 split files are kept, so only the training seed differs)",
    )
    ap.add_argument(
        "--pretrain-steps",
        type=int,
        default=PRETRAIN_STEPS,
        help="steps of the self-supervised warm start's pretraining (pretrain_camvid's budget otherwise)",
    )
    ap.add_argument(
        "--pretrain-seed",
        type=int,
        default=0,
        help="seed of the self-supervised warm start's pretraining (a replicate of the pretraining itself)",
    )
    ap.add_argument("--crop", default=DEFAULT_CROP, help="training crop H,W of every row (GPU protocol: 160,224)")
    ap.add_argument("--scale", default=DEFAULT_SCALE, help="random-scale range LO,HI (GPU protocol: 0.5,2.0)")
    ap.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="lr warm-up steps (GPU protocol: 100)")
    ap.add_argument("--out", help="run folder (default benchmarks/runs/semi_camvid[_STEPS])")
    ap.add_argument("--table-only", action="store_true")
    return ap


def run_folder(args) -> Path:
    """Where one invocation's runs go: `--out`, or the default folder named by its budget variant."""
    return Path(args.out) if args.out else ROOT / "benchmarks" / "runs" / f"semi_camvid{variant(args, '_')}"


def main() -> None:
    args = parser().parse_args()
    out = run_folder(args)
    if not args.table_only:
        for frac in args.fractions.split(","):
            for m in args.methods.split(","):
                if frac == "all" and m != "supervised":
                    continue  # the all-labels ceiling is the supervised row
                if m == ORACLE and not supervised_start(args):
                    raise SystemExit(f"--methods {ORACLE}: needs a supervised --warmstart (it continues a fraction's)")
                rd = out / m / cell(frac, args.seed)
                if load_json(rd / "bench.json"):
                    continue
                labeled = [] if frac == "all" else ["--labeled", split_file(out, frac, args.seed, m)]
                init = [] if args.warmstart == "0" else warm_start(out, frac, labeled, args)
                base, extra = VARIANTS.get(m, ("supervised" if m == ORACLE else m, []))
                seed = [f"seed={args.seed}"] if args.seed else []
                overrides = sets([*budget_of(args), *init, *extra, *seed])
                config = f"configs/semi/{base}.yaml"
                info = run_segssl(
                    ["train", "--config", config, "--data", args.data, *([] if m == ORACLE else labeled), *overrides],
                    rd,
                    out / "log.txt",
                )
                finish(info, rd)
                write_table(out, args)
    write_table(out, args)


def pretrained(warmstart: str) -> tuple[str, str] | None:
    """(method, transferred part) of a self-supervised warm start `METHOD[:encoder]`; None for any other."""
    method, _, part = warmstart.partition(":")
    return (method, part or "all") if method in PRETRAIN_METHODS and part in ("", "encoder") else None


def warm_start(out: Path, frac: str, labeled: list[str], args) -> list[str]:
    """The shared warm start of one fraction, trained once (again on a fresh checkout, where only its archived
    results are left: seeded, so the same weights on the same CPU model and thread count, but not across CPU
    models; compare its metrics.json with the archived one, or use a new --tag); returns the `model.init*`
    overrides.
    A self-supervised one (`METHOD[:encoder]`) is ONE pretraining on the unlabeled train+val images for every
    fraction and table."""
    parts: list[str] = []  # what a self-supervised checkpoint transfers
    if args.warmstart.isdigit():
        rd, log = out / "warmup" / slug(frac), out / "log.txt"
        cmd = ["train", "--config", "configs/semi/supervised.yaml", "--data", args.data, *labeled]
        cmd += sets(budget_of(args, int(args.warmstart), DEFAULT_LR))
    elif pretrained(args.warmstart):
        from pretrain_camvid import pretrain_command

        method, part = pretrained(args.warmstart)
        # one pretraining for every table and part that starts from it
        pseed = args.pretrain_seed
        rd = ROOT / "benchmarks" / "runs" / "semi_camvid_pretrain" / (method + pretraining_suffix(args, "-", "-seed"))
        log = rd.parent / "log.txt"
        cmd = pretrain_command(method, args.data, args.pretrain_steps, [f"seed={pseed}"] if pseed else [])
        parts = [f"model.init_parts={part}"]
    elif args.warmstart == "supervised_camvid":
        from supervised_camvid import CONFIG

        rd = ROOT / "benchmarks" / "runs" / "supervised_camvid" / slug(frac)
        log = rd.parent / "log.txt"
        cmd = ["train", "--config", CONFIG, "--data", args.data, *labeled]
    else:
        raise SystemExit(
            f"--warmstart {args.warmstart}: expected a number of steps, supervised_camvid or a pretraining "
            f"method of benchmarks/pretrain_camvid.py ({', '.join(PRETRAIN_METHODS)}), optionally METHOD:encoder"
        )
    ckpt = rd / "checkpoints" / "last.ckpt"
    if not ((rd / "bench.json").is_file() and ckpt.is_file()):
        before = load_json(rd / "metrics.json")  # the archived result of the warm start the table was made from
        info = run_segssl(cmd, rd, log)
        check_same_warm_start(before, load_json(rd / "metrics.json"), rd)
        finish(info, rd)
    return [f"model.init={ckpt}", *parts]


def check_same_warm_start(before: dict | None, now: dict | None, rd: Path) -> None:
    """A re-trained warm start must be the one the archived rows started from, or its rows would silently mix
    with theirs (seeded runs differ across CPU models); the archive is left as it was."""
    if before and now and before["miou"] != now["miou"]:
        raise SystemExit(
            f"{rd}: the re-trained warm start scores {now['miou']} mIoU, the archived one {before['miou']} (another "
            f"CPU model or thread count?); its rows would mix with the archived ones: rerun with a new --tag, after "
            f"moving {rd} to that tag's folder to keep it"
        )


RESUMED_NOTE = " `*` = resumed after an interruption: the minutes of its last part only."


def minutes(bench: dict) -> str:
    """Wall-clock minutes of a cell, starred when the run was resumed (bench.json times only the last part)."""
    return f"{bench['wall_s'] / 60:.0f}" + ("*" if bench.get("resumed") else "")


def write_table(out: Path, args) -> None:
    from segssl.reporting.plots import label_efficiency_plot

    def result(m: str, frac: str, seed: int = 0) -> tuple[dict | None, dict | None, dict | None]:
        rd = out / m / cell(frac, seed)
        return load_json(rd / "metrics.json"), load_json(rd / "metrics_best.json"), load_json(rd / "bench.json")

    head = "| method | " + " | ".join(f"{f} final (best) | Δ sup. | min" for f in FRACTIONS) + " |"
    rows = [head, "|---|" + "---|---|---|" * len(FRACTIONS)]
    points = []
    baseline = {f: result("supervised", f)[0] for f in FRACTIONS}
    ran = [v for v in VARIANTS if any(result(v, f)[0] for f in FRACTIONS)]
    for m in METHODS + ran + ([ORACLE] if supervised_start(args) else []):
        cells = []
        for frac in FRACTIONS:
            met, best, b = result(m, frac)
            if met and b:
                base = baseline[frac]
                delta = f"{met['miou'] - base['miou']:+.1f}" if base and m != "supervised" else ""
                cells.append(f"{met['miou']:.1f} ({fmt(best and best['miou'])}) | {delta} | {minutes(b)}")
                if m != ORACLE:
                    points.append({"method": m, "fraction": float(Fraction(frac)), "miou": met["miou"]})
            else:
                cells.append("— | | —")
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    ceiling, ceiling_best, ceiling_b = result("supervised", "all")
    shown = [*(result(m, f)[2] for m in METHODS + ran for f in FRACTIONS), ceiling_b]
    resumed = any(b and b.get("resumed") for b in shown)
    if ceiling and ceiling_b:
        points += [{"method": "supervised", "fraction": 1.0, "miou": ceiling["miou"]}]
        ceiling_line = (
            f"All 367 labels, supervised (the ceiling at this budget): {ceiling['miou']:.1f} "
            f"({fmt(ceiling_best and ceiling_best['miou'])}), {minutes(ceiling_b)} min.\n"
        )
    else:
        ceiling_line = "All 367 labels, supervised (the ceiling at this budget): not run yet.\n"
    reps = []
    for m in METHODS + ran:
        for frac in FRACTIONS:
            seeds = seed_mious(out / m, slug(frac))
            if len(seeds) < 2 or 0 not in seeds:
                continue
            points += [{"method": m, "fraction": float(Fraction(frac)), "miou": v} for sd, v in seeds.items() if sd]
            vals = list(seeds.values())
            reps.append(
                f"| {m} | {frac} | {' / '.join(f'{v:.1f}' for v in vals)} | {'/'.join(map(str, seeds))} | "
                f"**{sum(vals) / len(vals):.1f}** | {max(vals) - min(vals):.1f} |"
            )
    if reps:
        ceiling_line += (
            "\nTraining-seed replicates (`--seed N`: the seed-0 split file, only the training seed differs; the "
            "table above shows seed 0, the plot the mean of the seeds with a min-max bar):\n\n"
            "| method | fraction | final mIoU per seed | seeds | mean | max - min |\n|---|---|---|---|---|---|\n"
            + "\n".join(reps)
            + "\n"
        )
    ws = args.warmstart
    if ws == "0":
        start, title = "from random init", f"{args.steps} steps"
    elif ws.isdigit():
        start = (
            f"from one shared supervised checkpoint per fraction ({ws} steps of this budget, at lr {DEFAULT_LR:g}, "
            f"on that fraction's labeled images; {ws} + {args.steps} steps in all for every row)"
        )
        title = f"{args.steps} steps after a shared {ws}-step supervised warm start"
    elif pre := pretrained(ws):
        what = "encoder transferred, fresh decoder and head" if pre[1] == "encoder" else "the whole UNet transferred"
        pseed = pretraining_suffix(args, None, ", pretraining seed ")
        start = (
            f"from ONE self-supervised `{pre[0]}` checkpoint ({args.pretrain_steps} steps{pseed} of "
            f"`configs/pretrain/{pre[0]}.yaml` at the `pretrain-camvid` budget on the train+val images, labels "
            f"unread; {what}; pretraining never trains the 1x1 class head)"
        )
        title = f"{args.steps} steps from `{pre[0]}` pretraining" + (", encoder only" if pre[1] == "encoder" else "")
        title += pretraining_suffix(args, ", pretraining steps ", ", pretraining seed ")
    else:
        start = (
            "from one shared supervised checkpoint per fraction: the supervised benchmark's run of that fraction "
            f"(`configs/benchmarks/camvid_supervised.yaml`: 800 steps, 128x160 crops; 800 + {args.steps} steps in "
            "all for every row)"
        )
        title = f"{args.steps} steps after the 800-step supervised baseline"
    if args.tag:
        title += f", table `{args.tag}`"
    plot = ROOT / "benchmarks" / f"label_efficiency_camvid{variant(args, '_')}.png"
    if points:
        label_efficiency_plot(points, plot, title=f"CamVid test mIoU vs labeled fraction ({title}, final checkpoint)")
    body = (
        f"## Semi-supervised label-efficiency table, CamVid, {title} (test split, final checkpoint)\n\n"
        + header(command(args))
        + f"\nShared budget for every row: {args.steps} steps, batch 8 labeled (+ 8 unlabeled for semi methods), "
        f"{args.crop.replace(',', 'x')} crops at scale {args.scale.replace(',', '-')} of 240x180, AdamW {args.lr:g} "
        f"poly ({args.warmup} warm-up steps), "
        "sqrt median-frequency class weights, "
        f"UNet / ResNet-18 (decoder 128-64-32-32-32) {start}; unlabeled = the rest of train + val images; "
        "split files from seed 0 (identical to the supervised baselines'); each method's own hyper-parameters "
        "from `configs/semi/<method>.yaml`. Cells: final-checkpoint test mIoU (best-on-val checkpoint in "
        "brackets), Δ = final minus the supervised row at the same fraction, wall-clock minutes (1 thread, two "
        "to four runs sharing the 2 cores, so an upper bound). — = not run yet."
        + (
            f" `{ORACLE}`: the supervised continuation from the same warm start, but with all 367 train labels "
            "(a method whose pseudo-labels were the true labels): what unlabeled data can add at most here."
            if supervised_start(args)
            else ""
        )
        + (RESUMED_NOTE if resumed else "")
        + "".join(f" `{v}`: `{VARIANTS[v][0]}` with `{'`, `'.join(VARIANTS[v][1])}`." for v in ran)
        + "\n\n"
        + "\n".join(rows)
        + "\n\n"
        + ceiling_line
        + (random_init_line(args) if pretrained(ws) else "")
        + (f"\n![label efficiency](benchmarks/{plot.name})\n" if points else "")
    )
    write_section(f"semi-camvid{variant(args, '-')}", body)


if __name__ == "__main__":
    main()
