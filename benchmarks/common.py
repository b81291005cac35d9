"""Shared benchmark plumbing: resumable runs, machine description, BENCHMARKS.md sections.

Each benchmark run lives in its own run directory under benchmarks/runs/ (not committed: it holds
checkpoints); an interrupted run resumes from its last checkpoint. A finished run's small result
files (metrics*.json, bench.json, its split file) are archived under benchmarks/results/ (committed),
mirroring the runs/ layout, so a finished run is skipped and its table row regenerated in a later
session on a fresh checkout: a table fills in over several sessions.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_MD = ROOT / "BENCHMARKS.md"
RUNS = ROOT / "benchmarks" / "runs"
RESULTS = ROOT / "benchmarks" / "results"
ARCHIVED = ("metrics.json", "metrics_best.json", "bench.json", "splits/labeled.txt")
SEGSSL = [sys.executable, "-m", "segssl.cli"]


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (seeded CPU runs are not bit-identical across models, so every run records it)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine() -> str:
    cpu = cpu_model()
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores{gpu}, Python {platform.python_version()}"


def run_segssl(args: list[str], run_dir: Path, log: Path) -> dict:
    """Run one `segssl` command as a child; resume if interrupted. Returns wall time and peak RSS."""
    resume = (run_dir / "checkpoints" / "last.ckpt").exists()
    cmd = [*SEGSSL, *args, "--out", str(run_dir)] + (["--resume"] if resume else [])
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        # wait4 gives THIS child's rusage; RUSAGE_CHILDREN would be the max over every child so far
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    peak_kb = usage.ru_maxrss  # KiB on Linux
    if rc != 0:
        raise SystemExit(f"benchmark run failed (rc {rc}); see {log}")
    # the CPU model and thread cap too: a seeded run reproduces only on the same model at the same thread count
    threads = os.environ.get("SEGSSL_THREADS")
    return {
        "wall_s": wall,
        "peak_rss_mb": peak_kb / 1024,
        "resumed": resume,
        "cpu": cpu_model(),
        "threads": int(threads) if threads else None,
    }


def budget_suffix(steps: int, default: int, sep: str) -> str:
    """Runs, sections and plots of a non-default budget get their own names, so budgets never mix."""
    return "" if steps == default else f"{sep}{steps}"


def archived(p: Path) -> Path:
    """Where the committed archive keeps `p` (a file under benchmarks/runs/); `p` itself elsewhere."""
    try:
        return RESULTS / Path(p).resolve().relative_to(RUNS.resolve())
    except ValueError:
        return Path(p)


def load_json(p: Path) -> dict | None:
    """A run's JSON file, from its run directory or else from the committed archive."""
    q = located(p)
    return json.loads(q.read_text()) if q else None


def located(p: Path) -> Path | None:
    """A run's file in its run directory, or else in the committed archive; None if in neither."""
    return next((q for q in (Path(p), archived(p)) if q.is_file()), None)


def ran(run_dir: Path) -> bool:
    """Whether a run folder exists here or, on a fresh checkout, in the committed archive (`located` for folders)."""
    return Path(run_dir).exists() or archived(run_dir).exists()


def seeded(name: str, seed: int) -> str:
    """Run folder of a training-seed replicate: `name` for seed 0, `name-seedN` for seed N."""
    return name + (f"-seed{seed}" if seed else "")


def seeds_of(parent: Path, name: str) -> list[int]:
    """Training seeds of one cell: 0 (the cell itself) and every `name-seedN` folder, here or archived, so a
    table shows as many replicates as were run, not a fixed number of them."""
    found = {0}
    for root in {Path(parent), archived(parent)}:
        for d in root.glob(f"{glob.escape(name)}-seed*"):
            tail = d.name[len(name) + len("-seed") :]
            if tail.isdigit() and d.is_dir():
                found.add(int(tail))
    return sorted(found)


def seed_metrics(parent: Path, name: str) -> dict[int, dict]:
    """metrics.json of every training seed run of one cell (seed 0 = the cell itself), here or archived."""
    found = ((sd, load_json(Path(parent) / seeded(name, sd) / "metrics.json")) for sd in seeds_of(parent, name))
    return {sd: met for sd, met in found if met}


def seed_mious(parent: Path, name: str) -> dict[int, float]:
    """Final test mIoU of every training seed run of one cell (`seed_metrics`, the number the tables show)."""
    return {sd: met["miou"] for sd, met in seed_metrics(parent, name).items()}


def seeds_cell(mious: dict[int, float]) -> str:
    """A table cell of several training seeds: the one value, or the mean with how many seeds made it."""
    if len(mious) < 2:
        return fmt(next(iter(mious.values()), None))
    return f"{sum(mious.values()) / len(mious):.1f} (mean of {len(mious)})"


def finish(info: dict, run_dir: Path) -> None:
    """Mark a run finished (bench.json) and archive its small result files under benchmarks/results/. A run
    finished before (here or archived) is a rerun, e.g. of a pretraining whose checkpoint a fresh checkout lacks:
    `info` then describes the new run and keeps the earlier runs' info under `earlier_runs`, so no measurement is
    lost."""
    before = load_json(run_dir / "bench.json")
    if before:
        info["earlier_runs"] = [*before.pop("earlier_runs", []), before]
    save_json(info, run_dir / "bench.json")
    for name in ARCHIVED:
        archive(run_dir / name)


def archive(src: Path) -> None:
    """Copy one small result file of a run into the committed archive (a no-op outside benchmarks/runs/)."""
    if src.is_file() and archived(src) != src:
        archived(src).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, archived(src))


def sets(items: list[str]) -> list[str]:
    """`--set` arguments of a `segssl` command, one per `key=value` override."""
    return [a for s in items for a in ("--set", s)]


def save_json(obj: dict, p: Path) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(p)


STAMP_LINES = re.compile(r"^(Date|Machine): .*$", re.M)


def unstamped(block: str) -> str:
    """A section without its `Machine:` and `Date:` lines: what decides whether a regenerated table changed."""
    return STAMP_LINES.sub("", block)


def write_section(name: str, body: str, path: Path = BENCH_MD) -> None:
    """Replace (or append) the block between `<!-- name:start -->` and `<!-- name:end -->`, atomically."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# segssl benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pat = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    found = pat.search(text)
    if found and unstamped(found.group(0)) == unstamped(block):
        return  # nothing changed: keep the machine and date of the runs, not of this regeneration (`--table-only`)
    text = pat.sub(lambda _: block, text) if found else text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def header(command: str) -> str:
    return f"Command: `{command}`  \nMachine: {machine()}  \nDate: {date.today().isoformat()}\n"


def fmt(v, nd: int = 1) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def throughput(cfg: dict, num_classes: int, infer_size: tuple[int, int], steps: int = 6) -> dict:
    """Training images/s (forward+backward+step on crop-sized batches) and inference images/s
    (whole images, batch 1, as evaluation runs), in this process, after 2 warm-up steps."""
    import torch

    from segssl.data.source import ClassInfo, default_palette
    from segssl.methods.base import build_method

    torch.set_flush_denormal(True)
    info = ClassInfo(tuple(f"c{i}" for i in range(num_classes)), default_palette(num_classes), 255)
    method = build_method({**cfg, "model": {**cfg["model"], "init": None}}, info)
    cl = torch.cuda.is_available()
    dev = "cuda" if cl else "cpu"
    method = method.to(dev)
    if cl:
        method = method.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-4)
    bs = int(cfg["data"]["batch_size"])
    h, w = cfg["data"]["crop"]
    x = torch.randn(bs, 3, h, w, device=dev)
    y = torch.randint(0, num_classes, (bs, h, w), device=dev)
    batch = {
        "labeled": {"image": x, "label": y, "index": torch.arange(bs)},
        "unlabeled": {"image": x.clone(), "index": torch.arange(bs)},
    }
    for i in range(steps + 2):
        if i == 2:
            t0 = time.time()
        out = method.training_step(batch, i)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        method.after_step(i, 1000)
    train_ips = bs * steps / (time.time() - t0)
    model = method.segmenter().eval()
    xi = torch.randn(1, 3, *infer_size, device=dev)
    with torch.no_grad():
        for i in range(steps + 2):
            if i == 2:
                t0 = time.time()
            model(xi)
    return {"train_img_s": train_ips, "infer_img_s": steps / (time.time() - t0)}
