"""Memory and speed of one PixPro training step at full resolution: sampled pairs + local PPM
(method `pixpro`) vs the paper's all-pairs mask + global PPM (`pixpro_allpairs`, feature_stride 1).

Why: the all-pairs formulation builds (HW)^2 matrices, affordable on the paper's 7x7 stride-32 map
but quadratic on a full-resolution UNet map; the sampled variant is O(anchors x window). This
script measures the difference for square crops and writes a table into BENCHMARKS.md between
`<!-- pixpro-memory:start -->` and `<!-- pixpro-memory:end -->` (the rest of the file is kept).

Each case runs in its own subprocess so peak memory is that case's alone: on CPU the increase of
`ru_maxrss` over the process's peak after setup (model, optimiser, inputs built), on CUDA
`torch.cuda.max_memory_allocated` over the memory allocated after setup. Speed is images/s of one
forward + backward step (median of the timed steps after one warm-up step). Every case is really run:
on CPU each child's address space is capped (RLIMIT_AS) at --cap-gib above what its imports use, so a
case that needs more fails with an allocation error, recorded as "OOM (> cap)", instead of waking the
kernel's OOM killer on a shared machine; on CUDA the device's own out-of-memory error is recorded.

    python benchmarks/pixpro_memory.py                       # sizes 64 128 256 512 -> BENCHMARKS.md
    python benchmarks/pixpro_memory.py --sizes 64 --out /tmp/bm.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine as common_machine  # noqa: E402
from common import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "sampled": ("pixpro", "sampled pairs + local PPM"),
    "allpairs": ("pixpro_allpairs", "all-pairs + global PPM"),
}


def matrix_gib(size: int) -> float:
    """One fp32 (HW)^2 matrix: the all-pairs variant's smallest big tensor, per image."""
    n = size * size
    return n * n * 4 / 2**30


def cap_address_space(cap_gib: float) -> None:
    """Let this process map at most `cap_gib` GiB more than it has mapped now (imports included)."""
    import resource

    vm_kib = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0])
    limit = vm_kib * 1024 + int(cap_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_case(variant: str, size: int, batch: int, steps: int, device: str, cap_gib: float) -> dict:
    """Child process: build the method, run warm-up + timed steps, print one JSON line."""
    import resource

    import torch

    from segssl.config import load_config
    from segssl.data.source import ClassInfo, default_palette
    from segssl.methods.base import build_method

    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if not use_cuda and cap_gib > 0:
        cap_address_space(cap_gib)
    dev = torch.device("cuda" if use_cuda else "cpu")
    torch.set_flush_denormal(True)
    method_name = VARIANTS[variant][0]
    over = [f"method={method_name}", f"data.batch_size={batch}", f"data.crop=[{size}, {size}]"]
    cfg = load_config(None, over)
    cfg["method_args"] = {"feature_stride": 1} if variant == "allpairs" else {}
    info = ClassInfo(tuple(f"c{i}" for i in range(6)), default_palette(6))
    method = build_method(cfg, info).to(dev).train()
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator().manual_seed(0)
    views = {
        "view1": torch.randn(batch, 3, size, size, generator=g).to(dev),
        "view2": torch.randn(batch, 3, size, size, generator=g).to(dev),
        "box1": torch.tensor([[0.0, 0.0, 0.8, 0.8]]).repeat(batch, 1).to(dev),
        "box2": torch.tensor([[1.0, 0.2, 0.2, 1.0]]).repeat(batch, 1).to(dev),  # flipped, overlapping
        "index": torch.arange(batch),
    }

    def step() -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = method.ssl_step(views, 0)
        out.loss.backward()
        if use_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    if use_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    try:
        step()  # warm-up (also the step whose allocations set the peak)
        times = sorted(step() for _ in range(max(1, steps)))
    except (torch.cuda.OutOfMemoryError, RuntimeError, MemoryError) as e:
        msg = str(e)
        if isinstance(e, (torch.cuda.OutOfMemoryError, MemoryError)) or re.search(
            r"out of memory|can't allocate|not enough memory", msg, re.I
        ):
            return {"oom": True, "error": msg.splitlines()[0][:120], "device": str(dev)}
        raise
    if use_cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    med = times[len(times) // 2]
    return {
        "oom": False,
        "peak_mib": peak / 2**20,
        "sec_per_step": med,
        "images_per_s": batch / med,
        "device": str(dev),
    }


def machine() -> str:
    out = common_machine()
    try:
        import torch

        out += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        pass
    return out


def cell(res: dict) -> tuple[str, str]:
    if res.get("oom"):
        return res.get("label", "OOM"), "-"
    return f"{res['peak_mib']:.0f}", f"{res['images_per_s']:.2f}"


def render(results: dict, args: argparse.Namespace, command: str) -> str:
    mem_kind = "CUDA max_memory_allocated" if results.get("_cuda") else "CPU ru_maxrss"
    sampled, allpairs = VARIANTS["sampled"][1], VARIANTS["allpairs"][1]
    lines = [
        "## PixPro memory scaling: sampled pairs + local PPM vs all-pairs + global PPM",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- one training step (forward + backward) of PixPro on a UNet-resnet18's full-resolution features, "
        f"batch {args.batch}, square crops; peak memory is the step's increase over the process after setup "
        f"({mem_kind}); images/s is the median of {args.steps} timed step(s) after a warm-up step.",
        "- sampled: method `pixpro` defaults (64 anchors, 256 pairs/image, 7x7 local PPM window); "
        "all-pairs: `pixpro_allpairs` with `feature_stride: 1` ((HW)^2 positive mask and global PPM).",
        f"- every case was run; on CPU each ran under an address-space cap of {args.cap_gib:g} GiB above its "
        'imports (RLIMIT_AS): "OOM (> cap)" means the step failed to allocate within it. The size of one fp32 '
        "(HW)^2 matrix per image is given for scale.",
        *([f"- note: {args.note}"] if args.note else []),
        "",
        f"| crop | {sampled}: peak MiB | images/s | {allpairs}: peak MiB | images/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size in args.sizes:
        s_mem, s_ips = cell(results[(size, "sampled")])
        a_mem, a_ips = cell(results[(size, "allpairs")])
        lines.append(f"| {size}x{size} | {s_mem} | {s_ips} | {a_mem} | {a_ips} |")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512], help="square crop sizes")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=2, help="timed steps per case (after one warm-up step)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads per case (default: torch's own)")
    p.add_argument(
        "--cap-gib",
        type=float,
        default=12.0,
        help="CPU: memory a case may allocate beyond its imports (0 = no cap); more fails as OOM",
    )
    p.add_argument("--note", default="", help="a sentence added to the section (e.g. what else ran)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per case")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="markdown file to update")
    p.add_argument("--case", nargs=2, metavar=("VARIANT", "SIZE"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.case:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        res = run_case(args.case[0], int(args.case[1]), args.batch, args.steps, args.device, args.cap_gib)
        print(json.dumps(res))
        return 0
    command = "python benchmarks/pixpro_memory.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    results: dict = {}
    for size in args.sizes:
        for variant in VARIANTS:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--case",
                variant,
                str(size),
                "--batch",
                str(args.batch),
                "--steps",
                str(args.steps),
                "--device",
                args.device,
                "--cap-gib",
                str(args.cap_gib),
            ]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
            except subprocess.TimeoutExpired:
                res = {"oom": True, "label": f"timeout (> {args.timeout} s)"}
            else:
                last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
                if proc.returncode == 0 and last.startswith("{"):
                    res = json.loads(last)
                    if res.get("oom"):
                        cap = f"> {args.cap_gib:g} GiB cap; " if not res.get("device", "").startswith("cuda") else ""
                        res["label"] = f"OOM ({cap}(HW)^2 = {matrix_gib(size):.3g} GiB/image)"
                elif proc.returncode in (-9, 137):  # SIGKILL: the kernel's OOM killer
                    res = {"oom": True, "label": "OOM (killed)"}
                else:
                    sys.stderr.write(proc.stderr[-3000:])
                    raise SystemExit(f"case {variant} {size} failed (exit {proc.returncode})")
            results[(size, variant)] = res
            results["_cuda"] = results.get("_cuda") or res.get("device", "").startswith("cuda")
            print(f"{size:4d} {variant:8s} {json.dumps(res)}", flush=True)
    write_section("pixpro-memory", render(results, args, command), Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
