"""Test mIoU per CamVid sequence of the 1/8 fine-tunes: is a pretraining gain confined to seen scenes?

CamVid's test split mixes two sequences: 62 frames of 0001TP, a sequence with 62 frames in train,
and 171 frames of Seq05VD, which no train or val frame shows. The pretraining pool (train + val) is
0016E5 for 305 of its 468 frames, val is all 0016E5. So a pretraining that learns the pool's scenes
can lead on val and on 0001TP while the split-level test number, 73% Seq05VD, does not move. This
re-scores the final checkpoint of every finished fine-tune of the comparison rows with
`segssl evaluate --group-by '^[^_]+'` (one dataset-level confusion matrix per sequence) and tabulates
the per-sequence means over training seeds.

Usage: python benchmarks/by_sequence_camvid.py [--data ../shared/data/camvid] [--table-only]
Writes RUN_DIR/eval/test-by-sequence/metrics.json per fine-tune (archived under benchmarks/results/)
and the `by-sequence-camvid` section of BENCHMARKS.md. Runs without a checkpoint here (an archived
run from another machine) are listed as missing, never guessed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pretrain_camvid  # noqa: E402
import semi_camvid  # noqa: E402
from common import (  # noqa: E402
    ROOT,
    RUNS,
    archive,
    header,
    load_json,
    run_segssl,
    seeded,
    seeds_of,
    write_section,
)

GROUP_BY = "^[^_]+"
EVAL = Path("eval") / "test-by-sequence"
SEQUENCES = {  # test frames and how the sequence appears in the train split (counted from the file names)
    "0001TP": "62 test frames; 62 train frames of the same sequence",
    "Seq05VD": "171 test frames; no train or val frame",
}


# (budget, row label, parent of the cell's run folders, cell name): the rows of the session-18/19/20 comparison.
# Each parent is named by the arguments of the benchmark command that made it, as that benchmark names it.
def pretrain_runs(argv: str) -> Path:
    """Run folder of a `benchmarks/pretrain_camvid.py ARGV` invocation."""
    return pretrain_camvid.run_folder(pretrain_camvid.parser().parse_args(argv.split()))


def semi_runs(argv: str) -> Path:
    """Run folder of a `benchmarks/semi_camvid.py ARGV` invocation."""
    return semi_camvid.run_folder(semi_camvid.parser().parse_args(argv.split()))


REGION, LR01, ENCLR = "pixpro_unet_region", "finetune_lr0.1_1-8", "supervised_enclr0.1"
CONTROL = "random init, 0.1x encoder (control)"
ROWS = [
    ("800", "random init, 1x (supervised baseline)", RUNS / "supervised_camvid", "1-8"),
    ("800", CONTROL, pretrain_runs("") / "random", LR01),
    ("800", "region 300 steps, 0.1x", pretrain_runs("") / REGION, LR01),
    ("800", "region 300 steps, 1x", pretrain_runs("") / REGION, "finetune_1-8"),
    ("800", "region 300 steps train only, 0.1x", pretrain_runs("--pool train") / REGION, LR01),
    ("800", "region 1500 steps, 0.1x", pretrain_runs("--steps 1500") / REGION, LR01),
    ("800", "region 1500 steps, 1x", pretrain_runs("--steps 1500") / REGION, "finetune_1-8"),
    ("800", "region 1500 steps train only, 0.1x", pretrain_runs("--steps 1500 --pool train") / REGION, LR01),
    *(
        (
            "800",
            f"region 1500 steps train only, pretraining seed {pseed}, 0.1x",
            pretrain_runs(f"--steps 1500 --pool train --pretrain-seed {pseed}") / REGION,
            LR01,
        )
        for pseed in (1, 2)
    ),
    ("1000", "random init, 1x", semi_runs("--steps 1000") / "supervised", "1-8"),
    ("1000", CONTROL, semi_runs("--steps 1000") / ENCLR, "1-8"),
    ("1000", "region 300 steps, 0.1x", semi_runs(f"--steps 1000 --warmstart {REGION}") / ENCLR, "1-8"),
    ("3000", "random init, 1x", semi_runs("--steps 3000 --tag s16") / "supervised", "1-8"),
    ("3000", CONTROL, semi_runs("--steps 3000 --tag s16") / ENCLR, "1-8"),
    ("3000", "region 300 steps, 0.1x", semi_runs(f"--steps 3000 --warmstart {REGION}") / ENCLR, "1-8"),
    (
        "3000",
        "region 1500 steps, 0.1x",
        semi_runs(f"--steps 3000 --warmstart {REGION} --pretrain-steps 1500") / ENCLR,
        "1-8",
    ),
]


def score(run_dir: Path, data: str) -> dict | None:
    """The run's per-sequence test metrics: measured once from its final checkpoint, then read back."""
    out = run_dir / EVAL / "metrics.json"
    if (met := load_json(out)) is not None:
        return met
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not (ckpt.is_file() and load_json(run_dir / "bench.json")):  # only finished runs
        return None
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", data, "--split", "test", "--group-by", GROUP_BY]
    run_segssl(args + ["--device", "cpu"], out.parent, RUNS / "by_sequence_camvid.log")
    archive(out)
    return load_json(out)


def cell_scores(parent: Path, name: str, data: str | None) -> dict[int, dict]:
    """Per training seed of one cell: {"all", "0001TP", "Seq05VD", "drift"} test mIoU; `data=None` only reads."""
    found = {}
    for sd in seeds_of(parent, name):
        rd = parent / seeded(name, sd)
        met = score(rd, data) if data else load_json(rd / EVAL / "metrics.json")
        if met is None:
            continue
        final = load_json(rd / "metrics.json")
        row = {"all": met["miou"], **{g: met["groups"][g]["miou"] for g in SEQUENCES}}
        # the re-scored split against the run's own final metrics.json (same weights; thread count may differ)
        row["drift"] = abs(met["miou"] - final["miou"]) if final else None
        found[sd] = row
    return found


def table(data: str | None) -> str:
    lines = [
        "| fine-tuning steps | start | seeds | test, all 233 | 0001TP (62) | Seq05VD (171) | "
        "Δ 0001TP vs random 1x | Δ Seq05VD vs random 1x |",
        "|---|---|---|---|---|---|---|---|",
    ]
    missing, per_seed, ref, drift = [], [], {}, []
    for budget, label, parent, name in ROWS:
        cells = cell_scores(parent, name, data)
        if not cells:
            missing.append(f"{budget} steps, {label}")
            continue
        means = {k: mean(c[k] for c in cells.values()) for k in ("all", *SEQUENCES)}
        ref.setdefault(budget, means)  # each budget's first row is its random-init 1x reference
        delta = [f"{means[g] - ref[budget][g]:+.2f}" for g in SEQUENCES]
        seeds = "/".join(str(s) for s in cells)
        lines.append(
            f"| {budget} | {label} | {seeds} | {means['all']:.2f} | {means['0001TP']:.2f} | "
            f"{means['Seq05VD']:.2f} | {delta[0]} | {delta[1]} |"
        )
        for sd, c in cells.items():
            per_seed.append(f"| {budget} | {label} | {sd} | {c['all']:.2f} | {c['0001TP']:.2f} | {c['Seq05VD']:.2f} |")
            drift += [c["drift"]] if c["drift"] is not None else []
    body = "\n".join(lines)
    if missing:
        body += "\n\nNot scored (no finished run with a checkpoint here): " + "; ".join(missing) + "."
    if drift:
        body += (
            "\n\nCheck: re-scoring a final checkpoint gives the run's own final test mIoU (its metrics.json) to "
            f"within {max(drift):.2f} points, over {len(drift)} runs."
        )
    body += (
        "\n\nPer training seed:\n\n| fine-tuning steps | start | seed | test, all | 0001TP | Seq05VD |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(per_seed)
    )
    return body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str((ROOT / ".." / "shared" / "data" / "camvid").resolve()))
    ap.add_argument("--table-only", action="store_true", help="tabulate the scored runs, score nothing new")
    args = ap.parse_args()
    body = table(None if args.table_only else args.data)
    seqs = "; ".join(f"{k}: {v}" for k, v in SEQUENCES.items())
    intro = (
        "## Test mIoU per CamVid sequence of the 1/8 fine-tunes\n\n"
        + header("python benchmarks/by_sequence_camvid.py")
        + "\nEvery finished 1/8 fine-tune of the pretraining comparison re-scored from its final checkpoint with "
        f"`segssl evaluate --split test --group-by '{GROUP_BY}'`: one dataset-level confusion matrix per "
        f"sequence. {seqs}. The pretraining pool (train + val) is 305 frames of 0016E5, 101 of 0006R0 and 62 "
        "of 0001TP; val is all 0016E5; the 46 labeled frames of the 1/8 split are 28 of 0016E5, 12 of 0006R0 "
        "and 6 of 0001TP. Means over the training seeds listed; Δ against the same budget's "
        "random-init 1x row.\n\n"
    )
    write_section("by-sequence-camvid", intro + body)
    print(body)


if __name__ == "__main__":
    main()
