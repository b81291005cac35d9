"""The CamVid tables at a GPU budget, in one timed run: many `segssl` jobs share one GPU.

A GPU session is short (minutes), so this script is a scheduler: it runs the jobs of two tables
(the semi-supervised label-efficiency table and the dense-pretraining table) `--parallel` at a time,
highest priority first, starts a job only when its estimated duration (the longest finished job of
its kind, else a guess) still fits before `--budget` seconds, and kills what is left at the budget.
Every job is a plain `segssl` command with one shared GPU protocol on top of its own config, so each
row is reproducible on its own; finished jobs are archived under benchmarks/results/gpu_camvid/ and
skipped on a rerun (resumable like every benchmark here).

Protocol (every train row): UNet / ResNet-18 (decoder 128-64-32-32-32) from random init, `--steps`
steps of batch 8 labeled (+ 8 unlabeled) 160x224 crops at scale 0.5-2.0 of 240x180, AdamW 2e-3 poly,
sqrt median-frequency class weights, seed-0 split files; the test split scored with the final
checkpoint. Pretraining: `--pretrain-steps` steps of batch 16 two-view 128x160 crops on train+val
images (labels unread); probes on frozen features with all train labels; fine-tuning = the
supervised 1/8 row started from the pretrained weights.

Usage: python benchmarks/gpu_camvid.py [--budget 480] [--parallel 6] [--steps 3000] [--only a,b]
       python benchmarks/gpu_camvid.py --table-only    # (re)write the BENCHMARKS.md sections
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SEGSSL, fmt, load_json, machine, save_json, sets, write_section  # noqa: E402
from common import finish as archive  # noqa: E402
from pretrain_camvid import probe_command  # noqa: E402
from semi_camvid import METHODS, VARIANTS, cell  # noqa: E402

NAME = "gpu_camvid"
RUNS = ROOT / "benchmarks" / "runs" / NAME
RESULTS = ROOT / "benchmarks" / "results" / NAME  # what `common.finish` archives of RUNS (committed)
RESULTS_META = RESULTS / "run.json"
# every method of the CPU table, the ones run first (the acceptance rows) first
SEMI = ["supervised", "unimatch", "ael", "fixmatch", "cps", "mean_teacher", "cutmix", "classmix", "cct"]
SEMI += [m for m in METHODS if m not in SEMI]
# training-seed replicates at 1/8 (same split file, seed 1): how far one seed's margin can be trusted
REPLICATES = ["supervised", "unimatch"]
# rows that are a method with one option changed (semi_camvid.VARIANTS), run after the methods' 1/8 column
GPU_VARIANTS = ["ael_rampup"]
FRACTIONS = ["1/16", "1/8", "1/4"]
PRETRAIN = ["pixpro_unet", "densecl", "pass_align"]
DECODER = "model.decoder_channels=[128,64,32,32,32]"
# first guesses of a job's seconds on the GPU with 6 jobs sharing it, replaced by measured ones
GUESS = {"supervised": 120, "semi": 300, "pretrain": 250, "probe": 60, "finetune": 120, "memory": 90}


def train_sets(steps: int) -> list[str]:
    """The GPU protocol every train row shares (the CPU tables' budget, scaled up)."""
    return [
        "data.crop=[160,224]",
        DECODER,
        "data.base_size=[180,240]",
        "data.scale=[0.5,2.0]",
        "data.batch_size=8",
        "data.unlabeled_extra=[val]",
        "data.num_workers=3",
        f"train.max_steps={steps}",
        f"train.val_every_steps={max(steps // 4, 1)}",
        "train.epoch_steps=500",
        "train.warmup_steps=100",
        "train.lr=0.002",
        "train.class_weights=sqrt_median_freq",
        "train.progress=false",
        "eval.batch_size=1",
    ]


def pretrain_sets(steps: int) -> list[str]:
    return [
        "data.crop=[128,160]",
        "data.batch_size=16",
        "data.unlabeled_extra=[val]",
        "data.num_workers=3",
        f"train.max_steps={steps}",
        "train.epoch_steps=500",
        "train.progress=false",
        DECODER,
    ]


def slug(frac: str) -> str:
    return frac.replace("/", "-")


@dataclass
class Job:
    name: str  # also its run folder under RUNS
    argv: list[str]  # segssl arguments (without --out), or a python script's when `script` is set
    kind: str  # jobs of one kind share a duration estimate
    after: tuple[str, ...] = ()
    script: bool = False  # argv is `python benchmarks/<argv>` (not a segssl command)


def jobs(args) -> list[Job]:
    """Every job, highest priority first: the 1/8 column and PixPro first (the acceptance rows)."""
    data, s = args.data, args.steps
    tr = train_sets(s) + args.set
    out: list[Job] = []

    def seed0_split(frac: str) -> str:
        """The split file of the seed-0 supervised row: a seed replicate differs only in the training seed."""
        return str(RESULTS / "semi" / "supervised" / slug(frac) / "splits" / "labeled.txt")

    def semi(m: str, frac: str, seed: int = 0) -> Job:
        labeled = [] if frac == "all" else ["--labeled", frac]
        name = f"semi/{m}/{cell(frac, seed)}"
        if seed:  # the seed-0 split file, so that only the training seed differs
            labeled = ["--labeled", seed0_split(frac)]
        kind = "supervised" if m == "supervised" else "semi"
        base, extra = VARIANTS.get(m, (m, []))
        cfg = f"configs/semi/{base}.yaml"
        argv = ["train", "--config", cfg, "--data", data, *labeled, *sets([*tr, *extra, f"seed={seed}"])]
        return Job(name, argv, kind, ("semi/supervised/1-8",) if seed else ())

    def pretrain(m: str) -> list[Job]:
        ck = str(RUNS / "pretrain" / m / "pretrain" / "checkpoints" / "last.ckpt")
        pre = Job(
            f"pretrain/{m}/pretrain",
            [
                "pretrain",
                "--config",
                f"configs/pretrain/{m}.yaml",
                "--data",
                data,
                *sets(pretrain_sets(args.pretrain_steps) + args.set),
            ],
            "pretrain",
        )
        dep = (pre.name,)
        return [pre, finetune(m), *[probe(m, p, ck, dep) for p in ("linear", "knn")]]

    def finetune(m: str, seed: int = 0) -> Job:
        """The supervised 1/8 row started from `m`'s pretrained checkpoint; a `seed` replicate keeps the
        seed-0 split file (the pretraining itself is re-run when its checkpoint is gone, a replicate of that too)."""
        ck = str(RUNS / "pretrain" / m / "pretrain" / "checkpoints" / "last.ckpt")
        labeled = seed0_split("1/8") if seed else "1/8"
        return Job(
            f"pretrain/{m}/finetune_{cell('1/8', seed)}",
            [
                "train",
                "--config",
                "configs/semi/supervised.yaml",
                "--data",
                data,
                "--labeled",
                labeled,
                *sets([*tr, f"model.init={ck}", f"seed={seed}"]),
            ],
            "finetune",
            (f"pretrain/{m}/pretrain", *(("semi/supervised/1-8",) if seed else ())),
        )

    def probe(m: str, proto: str, ck: str, after: tuple[str, ...] = ()) -> Job:
        overrides = ["train.progress=false", DECODER, *args.probe_set]
        return Job(f"pretrain/{m}/{proto}", probe_command(proto, ck, data, overrides), "probe", after)

    out += [semi("supervised", "1/8"), semi("unimatch", "1/8"), semi("ael", "1/8"), semi("supervised", "all")]
    out += pretrain("pixpro_unet")
    out += [probe("random", p, "random") for p in ("linear", "knn")]
    out += [semi(m, "1/8", seed=1) for m in REPLICATES]
    out.append(finetune("pixpro_unet", seed=1))  # issue 3's acceptance cell: its -0.0 is one seed too
    out += [semi(m, "1/8") for m in SEMI[3:9]]
    out += [semi(m, "1/8") for m in SEMI[9:] + GPU_VARIANTS]
    out += [semi(m, f) for f in ("1/16", "1/4") for m in ("supervised", "unimatch", "ael")]
    retrieve_ck = str(RUNS / "pretrain" / "pixpro_unet" / "pretrain" / "checkpoints" / "last.ckpt")
    out.append(
        Job(
            "pretrain/pixpro_unet/retrieve",
            [
                "retrieve",
                "--checkpoint",
                retrieve_ck,
                "--data",
                data,
                "--out",
                str(RUNS / "pretrain" / "pixpro_unet" / "retrieve" / "retrieval.png"),
            ],
            "probe",
            ("pretrain/pixpro_unet/pretrain",),
        )
    )
    out.append(
        Job(
            "memory",
            [
                "pixpro_memory.py",
                "--device",
                "cuda",
                "--out",
                str(RUNS / "memory" / "pixpro_memory.md"),
                "--note",
                "measured on the GPU while training jobs of benchmarks/gpu_camvid.py shared it",
            ],
            "memory",
            script=True,
        )
    )
    for m in PRETRAIN[1:]:
        out += pretrain(m)
    out += [semi(m, f) for f in ("1/16", "1/4") for m in SEMI[3:]]
    if args.only:
        keep = set(args.only.split(","))
        out = [j for j in out if j.name in keep or any(p in keep for p in j.name.split("/")[1:2])]
    return out


def find(name: str) -> tuple[Path, str]:
    """Where job `name`'s results are: this run's folder, else a later GPU call's (`--name NAME_rN`, same
    protocol), which fills what an earlier call missed; the second item marks such a cell in the tables."""
    if load_json(RUNS / name / "bench.json"):  # the run folder, or its archive under RESULTS
        return RUNS / name, ""
    for d in sorted(RESULTS.parent.glob(f"{RESULTS.name}_r*")):
        if (d / name / "bench.json").is_file():
            return d / name, f" † ({d.name})"
    return RUNS / name, ""


def done(job: Job) -> bool:
    return bool(load_json(find(job.name)[0] / "bench.json"))


def needs_rerun(job: Job, todo: list[Job]) -> bool:
    """A finished pretraining whose checkpoint a pending job still needs (a GPU machine starts bare)."""
    ckpt = RUNS / job.name / "checkpoints" / "last.ckpt"
    return job.kind == "pretrain" and not ckpt.is_file() and any(job.name in j.after and not done(j) for j in todo)


def launch(job: Job) -> tuple[subprocess.Popen, float]:
    rd = RUNS / job.name
    rd.mkdir(parents=True, exist_ok=True)
    if job.script:
        cmd = [sys.executable, str(ROOT / "benchmarks" / job.argv[0]), *job.argv[1:]]
    else:
        # the retrieve command writes a picture, not a run folder: it takes its --out in argv
        out = [] if job.argv[0] == "retrieve" else ["--out", str(rd)]
        resume = ["--resume"] if (rd / "checkpoints" / "last.ckpt").is_file() else []
        cmd = [*SEGSSL, *job.argv, *out, *resume]
    with open(rd / "job.log", "a") as log:  # the child keeps its own handle
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), time.time()


def schedule(todo: list[Job], parallel: int, budget: float) -> dict:
    """Run `todo` up to `parallel` at a time before `budget` seconds; returns {name: outcome}."""
    t_start = time.time()
    measured: dict[str, list[float]] = {}
    running: dict[str, tuple[Job, subprocess.Popen, float]] = {}
    outcome: dict[str, str] = {j.name: "done earlier" for j in todo if done(j) and not needs_rerun(j, todo)}
    pending = [j for j in todo if j.name not in outcome]

    def estimate(j: Job) -> float:
        return max(measured.get(j.kind, [GUESS[j.kind]]))

    while pending or running:
        now = time.time()
        for name, (j, proc, t0) in list(running.items()):
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == 0:
                if now - t_start > budget:
                    proc.kill()
                    os.wait4(proc.pid, 0)
                    outcome[name] = f"killed at the budget after {now - t0:.0f} s"
                    del running[name]
                continue
            del running[name]
            rc = os.waitstatus_to_exitcode(status)
            wall = now - t0
            if rc == 0:
                measured.setdefault(j.kind, []).append(wall)
                info = {
                    "wall_s": wall,
                    "peak_rss_mb": usage.ru_maxrss / 1024,
                    "resumed": False,
                    "concurrent_jobs": len(running) + 1,
                    "machine": machine(),
                }
                archive(info, RUNS / name)
                outcome[name] = f"ok in {wall:.0f} s"
            else:
                outcome[name] = f"failed (rc {rc}) after {wall:.0f} s; see {RUNS / name / 'job.log'}"
            print(f"[{now - t_start:5.0f} s] {name}: {outcome[name]}", flush=True)
        failed = {n for n, o in outcome.items() if o.startswith(("failed", "killed", "skipped"))}
        for j in list(pending):
            if any(d in failed for d in j.after):
                pending.remove(j)
                outcome[j.name] = "skipped: a job it needs did not finish"
        while len(running) < parallel:
            ready = [j for j in pending if all(d in outcome and d not in failed for d in j.after)]
            fits = [j for j in ready if time.time() - t_start + estimate(j) < budget]
            if not fits:
                break
            j = fits[0]
            pending.remove(j)
            proc, t0 = launch(j)
            running[j.name] = (j, proc, t0)
            print(f"[{time.time() - t_start:5.0f} s] start {j.name} (est. {estimate(j):.0f} s)", flush=True)
        waiting_on = any(any(d in running for d in j.after) for j in pending)
        if not running and not waiting_on:
            for j in pending:
                outcome[j.name] = "not run: it did not fit in the budget"
            break
        time.sleep(1.0)
    return outcome


def write_tables(args) -> None:
    from segssl.reporting.plots import label_efficiency_plot

    def res(name: str) -> tuple[dict | None, dict | None, dict | None]:
        rd = find(name)[0]
        return load_json(rd / "metrics.json"), load_json(rd / "metrics_best.json"), load_json(rd / "bench.json")

    def mark(name: str) -> str:
        return find(name)[1]

    mach = next((b["machine"] for b in (res(f"semi/supervised/{slug(f)}")[2] for f in ["1/8", *FRACTIONS]) if b), None)
    date = load_json(RESULTS_META) or {}
    args.steps, args.pretrain_steps = date.get("steps", args.steps), date.get("pretrain_steps", args.pretrain_steps)
    head = "| method | " + " | ".join(f"{f} final (best) | Δ sup. | min" for f in FRACTIONS) + " |"
    rows = [head, "|---|" + "---|---|---|" * len(FRACTIONS)]
    points = []
    base = {f: res(f"semi/supervised/{slug(f)}")[0] for f in FRACTIONS}
    for m in SEMI + GPU_VARIANTS:
        cells = []
        for f in FRACTIONS:
            met, best, b = res(f"semi/{m}/{slug(f)}")
            if met and b:
                d = f"{met['miou'] - base[f]['miou']:+.1f}" if base[f] and m != "supervised" else ""
                cells.append(
                    f"{met['miou']:.1f} ({fmt(best and best['miou'])}){mark(f'semi/{m}/{slug(f)}')} | {d} | "
                    f"{b['wall_s'] / 60:.1f}"
                )
                points.append({"method": m, "fraction": float(Fraction(f)), "miou": met["miou"]})
            else:
                cells.append("— | | —")
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    ceil, ceil_best, ceil_b = res("semi/supervised/all")
    if ceil and ceil_b:
        points.append({"method": "supervised", "fraction": 1.0, "miou": ceil["miou"]})
        ceiling = (
            f"All 367 labels, supervised (the ceiling at this budget): **{ceil['miou']:.1f}** "
            f"({fmt(ceil_best and ceil_best['miou'])}), {ceil_b['wall_s'] / 60:.1f} min."
        )
    else:
        ceiling = "All 367 labels, supervised (the ceiling at this budget): not run yet."
    reps = []
    for m in REPLICATES:
        one, zero = res(f"semi/{m}/1-8-seed1")[0], res(f"semi/{m}/1-8")[0]
        if one:
            points.append({"method": m, "fraction": 0.125, "miou": one["miou"]})
        reps.append(
            f"{m} {fmt(one and one['miou'])}{mark(f'semi/{m}/1-8-seed1')} (seed 0: {fmt(zero and zero['miou'])})"
        )
    ceiling += (
        "\n\nTraining-seed replicates at 1/8 (the same split file, `seed=1`; — = not run yet): "
        + ", ".join(reps)
        + ". The plot draws the mean of the seeds with a min-max bar."
    )
    plot = ROOT / "benchmarks" / "label_efficiency_camvid_gpu.png"
    if points:
        label_efficiency_plot(points, plot, title=f"CamVid test mIoU vs labeled fraction (GPU, {args.steps} steps)")
    common_text = (
        f"Command: `python benchmarks/gpu_camvid.py --budget {date.get('budget', args.budget):g} --parallel "
        f"{date.get('parallel', args.parallel)}` (jobs sharing one GPU; finished jobs are skipped on a rerun)  \n"
        f"Machine: {mach or 'not run yet'}  \nDate: {date.get('date', 'not run yet')}\n"
    )
    body = (
        f"## Semi-supervised label-efficiency table, CamVid, GPU budget: {args.steps} steps from random init "
        "(test split, final checkpoint)\n\n"
        + common_text
        + f"\nShared budget for every row: {args.steps} steps, batch 8 labeled (+ 8 unlabeled for semi methods), "
        "160x224 crops at scale 0.5-2.0 of 240x180, AdamW 2e-3 poly (100 warm-up steps), sqrt median-frequency "
        "class weights, bf16 autocast + channels_last, UNet / ResNet-18 (decoder 128-64-32-32-32) from random "
        "init; unlabeled = the rest of train + val images; split files from seed 0 (the CPU tables' files); each "
        "method's own hyper-parameters from `configs/semi/<method>.yaml`. Cells: final-checkpoint test mIoU "
        "(best-on-val in brackets), Δ = final minus the supervised row at the same fraction, wall-clock minutes "
        "with up to "
        f"{date.get('parallel', args.parallel)} jobs sharing the GPU and its 16 CPU cores (an upper bound). "
        "— = not run in the GPU time this task had. † = measured in a later GPU call of the same protocol."
        + "".join(f" `{v}`: `{VARIANTS[v][0]}` with `{'`, `'.join(VARIANTS[v][1])}`." for v in GPU_VARIANTS)
        + "\n\n"
        + "\n".join(rows)
        + "\n\n"
        + ceiling
        + "\n"
        + (f"\n![label efficiency, GPU](benchmarks/{plot.name})\n" if points else "")
    )
    write_section("semi-camvid-gpu", body)
    sup = base["1/8"]
    prow = [
        "| init | pretrain min | pretrain images/s | peak RSS MiB | linear probe mIoU | kNN mIoU | "
        "fine-tuned 1/8 mIoU (final) | Δ supervised 1/8 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in ["random", *PRETRAIN]:
        pre = res(f"pretrain/{m}/pretrain")[2]
        lin, knn = res(f"pretrain/{m}/linear")[0], res(f"pretrain/{m}/knn")[0]
        ft = sup if m == "random" else res(f"pretrain/{m}/finetune_1-8")[0]
        if not (pre or lin or knn or ft):
            prow.append(f"| {m} | not run yet | | | | | | |")
            continue
        ips = pre and args.pretrain_steps * 16 / pre["wall_s"]
        delta = "" if m == "random" or not (ft and sup) else f"{ft['miou'] - sup['miou']:+.1f}"
        prow.append(
            f"| {m} | {fmt(pre and pre['wall_s'] / 60)} | {fmt(ips)} | {fmt(pre and pre['peak_rss_mb'], 0)} | "
            f"{fmt(lin and lin['miou'])}{mark(f'pretrain/{m}/linear')} | {fmt(knn and knn['miou'])}"
            f"{mark(f'pretrain/{m}/knn')} | {fmt(ft and ft['miou'])}"
            f"{' (supervised 1/8 row)' if m == 'random' else ''} | {delta} |"
        )
    ft1, ft0 = res("pretrain/pixpro_unet/finetune_1-8-seed1")[0], res("pretrain/pixpro_unet/finetune_1-8")[0]
    sup1 = res("semi/supervised/1-8-seed1")[0]
    prow.append(
        "\nTraining-seed replicates of the 1/8 fine-tuning (the same split file, `seed=1`; the pretraining re-run "
        f"in that call; — = not run yet): pixpro_unet {fmt(ft1 and ft1['miou'])}"
        f"{mark('pretrain/pixpro_unet/finetune_1-8-seed1')} (seed 0: {fmt(ft0 and ft0['miou'])}), "
        f"random init (the supervised replicate) {fmt(sup1 and sup1['miou'])}"
        f"{mark('semi/supervised/1-8-seed1')} (seed 0: {fmt(sup and sup['miou'])})."
    )
    pic = RESULTS / "pretrain" / "pixpro_unet" / "retrieve" / "retrieval.png"
    body = (
        f"## Dense self-supervised pretraining, CamVid, GPU budget: {args.pretrain_steps} pretraining steps "
        "(test split)\n\n"
        + common_text
        + f"\nPretraining: {args.pretrain_steps} steps of batch 16 two-view 128x160 crops on the 468 CamVid "
        "train+val images (labels never read), bf16 autocast, each method's config in `configs/pretrain/`. Probes "
        "as in the CPU table (frozen full-resolution features, all 367 train masks; linear = class-balanced "
        "L-BFGS logistic regression, kNN = k 20, T 0.07). Fine-tuning: the supervised 1/8 row of the GPU "
        "label-efficiency table above (same steps, crops, split file), started from the pretrained encoder + "
        "decoder. images/s = pretraining images (two views each) per wall-clock second with other jobs sharing "
        "the GPU; peak RSS is host memory. — = not run in the GPU time this task had. † = measured in a later "
        "GPU call of the same protocol (`--name NAME_rN`, same configs and seed; a pretrained row's probe there "
        "used that call's own pretraining, since checkpoints do not outlive a GPU call).\n\n"
        + "\n".join(prow)
        + "\n"
        + (f"\n![PixPro pixel retrieval, GPU]({pic.relative_to(ROOT)})\n" if pic.is_file() else "")
    )
    write_section("pretrain-camvid-gpu", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str((ROOT / ".." / "shared" / "data" / "camvid").resolve()))
    ap.add_argument("--budget", type=float, default=480, help="seconds: no job starts that would not end by then")
    ap.add_argument("--parallel", type=int, default=6, help="jobs sharing the GPU at once")
    ap.add_argument("--steps", type=int, default=3000, help="steps of every train row")
    ap.add_argument("--pretrain-steps", type=int, default=1500)
    ap.add_argument("--only", help="comma list of job names or methods to run (default: all, by priority)")
    ap.add_argument("--set", action="append", default=[], help="extra override of every train/pretrain job")
    ap.add_argument("--probe-set", action="append", default=[], help="extra override of every probe job")
    ap.add_argument("--guess", action="append", default=[], help="KIND=SECONDS: first duration guess of a job kind")
    ap.add_argument("--name", default=NAME, help="run/result folder name (another name for a trial run)")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    global RUNS, RESULTS, RESULTS_META
    GUESS.update({k: float(v) for k, v in (g.split("=", 1) for g in args.guess)})
    RUNS = ROOT / "benchmarks" / "runs" / args.name
    RESULTS = ROOT / "benchmarks" / "results" / args.name
    RESULTS_META = RESULTS / "run.json"
    if not args.table_only:
        import datetime as dt

        save_json(
            {
                "date": dt.date.today().isoformat(),
                "budget": args.budget,
                "parallel": args.parallel,
                "steps": args.steps,
                "pretrain_steps": args.pretrain_steps,
            },
            RESULTS_META,
        )
        outcome = schedule(jobs(args), args.parallel, args.budget)
        save_json(outcome, RESULTS / "outcome.json")
        for k in ("memory/pixpro_memory.md", "pretrain/pixpro_unet/retrieve/retrieval.png"):
            src = RUNS / k
            if src.is_file():
                (RESULTS / k).parent.mkdir(parents=True, exist_ok=True)
                (RESULTS / k).write_bytes(src.read_bytes())
        print(json.dumps(outcome, indent=1))
    write_tables(args)


if __name__ == "__main__":
    main()
