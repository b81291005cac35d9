"""Supervised baselines on CamVid: mIoU (test, final checkpoint) for all labels and 1/16, 1/8, 1/4.

Usage: python benchmarks/supervised_camvid.py [--data ../shared/data/camvid] [--steps N]
Writes benchmarks/runs/supervised_camvid/<fraction>/ and the `supervised-camvid` table in BENCHMARKS.md.
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
    save_json,
    seed_mious,
    seeded,
    throughput,
    write_section,
)

CONFIG = "configs/benchmarks/camvid_supervised.yaml"
FRACTIONS = ["1/16", "1/8", "1/4", "all"]


def slug(frac: str) -> str:
    return frac.replace("/", "-")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str((ROOT / ".." / "shared" / "data" / "camvid").resolve()))
    ap.add_argument("--steps", type=int, default=None, help="override train.max_steps")
    ap.add_argument("--fractions", default=",".join(FRACTIONS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "runs" / "supervised_camvid"))
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="training seed of a replicate (folder <fraction>-seedN, the seed-0 split file kept)",
    )
    ap.add_argument("--table-only", action="store_true", help="rewrite the table from finished runs")
    ap.add_argument("--throughput", action="store_true", help="(re)measure images/s in this process")
    args = ap.parse_args()
    out = Path(args.out)
    extra = ["--set", f"train.max_steps={args.steps}"] if args.steps else []
    extra += ["--set", f"seed={args.seed}"] if args.seed else []
    for frac in args.fractions.split(","):
        rd = out / seeded(slug(frac), args.seed)
        if args.table_only or load_json(rd / "bench.json"):
            continue
        labeled = [] if frac == "all" else ["--labeled", split_of(out, frac, args.seed)]
        info = run_segssl(["train", "--config", CONFIG, "--data", args.data, *labeled, *extra], rd, out / "log.txt")
        finish(info, rd)
        if not args.seed:
            write_table(out, args)
    if args.throughput:
        from segssl.config import load_config

        save_json(throughput(load_config(ROOT / CONFIG), 11, (180, 240)), out / "throughput.json")
    if args.seed and not args.table_only:
        # a replicate leaves the baselines' table as it is (rewriting it here would also re-read every other
        # fraction); the tables that compare against it list it, and `--table-only` adds it here
        print(f"replicate(s) done in {out}; `--table-only` lists them in the supervised-camvid table")
        return
    write_table(out, args)


def split_of(out: Path, frac: str, seed: int) -> str:
    """`--labeled` of a run: the fraction (drawn with seed 0), or for a training-seed replicate the seed-0
    run's split file, since `seed=N` would draw other images and the replicate must differ only in its seed."""
    if not seed:
        return frac
    found = located(out / slug(frac) / "splits" / "labeled.txt")
    if not found:
        raise SystemExit(f"--seed {seed}: no split file of {frac} under {out} (run its seed-0 cell first)")
    return str(found)


def replicates_line(out: Path) -> str:
    """Every fraction with training-seed replicates: its final test mIoU per seed (seed 0 = the table's row)."""
    found = []
    for frac in FRACTIONS:
        seeds = seed_mious(out, slug(frac))
        if len(seeds) > 1:
            mean = sum(seeds.values()) / len(seeds)
            found.append(
                f"{frac}: {' / '.join(f'{v:.1f}' for v in seeds.values())} "
                f"(seeds {'/'.join(map(str, seeds))}, mean {mean:.1f})"
            )
    if not found:
        return ""
    return (
        "Training-seed replicates (`--seed N`: the seed-0 split file, only the training seed differs), final test "
        "mIoU: " + "; ".join(found) + ".\n"
    )


def write_table(out: Path, args) -> None:
    rows = [
        "| labeled train images | mIoU (test, final) | mIoU (test, best-on-val) | pixel acc | "
        "steps | wall-clock min | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for frac in [f for f in FRACTIONS if ran(out / slug(f)) or not args.steps]:
        rd = out / slug(frac)
        m, b, mb = (
            load_json(rd / "metrics.json"),
            load_json(rd / "bench.json"),
            load_json(rd / "metrics_best.json"),
        )
        split_file = located(rd / "splits" / "labeled.txt")
        n = len(split_file.read_text().split()) if split_file else 367
        if not (m and b):
            rows.append(f"| {frac} ({n if frac == 'all' else '…'}) | not run yet | | | | | |")
            continue
        rows.append(
            f"| {frac} ({n}) | **{m['miou']:.1f}** | {fmt(mb and mb['miou'])} | {m['pixel_acc']:.1f} | "
            f"{m.get('global_step')} | {b['wall_s'] / 60:.1f} | {b['peak_rss_mb']:.0f} |"
        )
    tp = load_json(out / "throughput.json")
    tp_line = (
        f"Throughput (same model, measured alone): training {tp['train_img_s']:.1f} images/s "
        f"(batch 8, 128x160 crops), inference {tp['infer_img_s']:.1f} images/s (240x180, batch 1)."
        if tp
        else "Throughput: not measured yet (`--throughput`)."
    )
    cls = ""
    m = load_json(out / "all" / "metrics.json")
    if m:
        cls = "Per-class IoU, all labels: " + ", ".join(f"{c} {fmt(v)}" for c, v in m["per_class_iou"].items()) + ".\n"
    body = (
        "## Supervised baselines, CamVid (test split, 233 images, 11 classes, void ignored)\n\n"
        + header(f"python benchmarks/supervised_camvid.py{' --steps ' + str(args.steps) if args.steps else ''}")
        + "\nUNet / ResNet-18 encoder (random init, no downloaded weights), AdamW 2e-3 poly, batch 8, "
        f"128x160 crops, scale 0.5-1.5, sqrt median-frequency class weights, {args.steps or 800} steps, CPU. "
        "Split files from seed 0 (`RUN_DIR/splits/labeled.txt`), reused by every later method. "
        "mIoU = mean over classes present (prediction or ground truth) of one dataset-level confusion matrix.\n\n"
        + "\n".join(rows)
        + "\n\n"
        + replicates_line(out)
        + cls
        + tp_line
        + "\n"
        "Wall-clock includes validation every 200 steps and the final test evaluation of last and best "
        "checkpoints; runs shared the 2 cores with other work, so wall-clock is an upper bound.\n"
    )
    if args.steps:
        body = body.replace("## Supervised baselines,", f"## Supervised baselines at {args.steps} steps,", 1)
    write_section("supervised-camvid" + (f"-{args.steps}" if args.steps else ""), body)


if __name__ == "__main__":
    main()
