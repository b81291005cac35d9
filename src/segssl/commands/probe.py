"""`segssl probe`: frozen-feature protocols (`--protocol linear` / `knn`) of a checkpoint's pixel features.

    segssl probe --checkpoint runs/densecl/checkpoints/last.ckpt --protocol knn --data voc:PATH --labeled 1/8

The backbone comes from any segssl checkpoint (pretrained or trained), or `--checkpoint random`
for the random-init baseline row. Writes RUN_DIR/metrics.json (dataset-level metrics on the test
split, plus "protocol") and RUN_DIR/config.yaml. Settings live in the `probe:` config section
(configs/probe/linear.yaml, configs/probe/knn.yaml; `--set probe.max_iter=...`).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

PROBE_DEFAULTS: dict = {
    "protocol": "linear",  # linear | knn
    # linear probe: logistic regression solved on cached pixel features (pixels_per_image per image)
    # a list in class_weights / l2 is a grid: one probe per combination, the best on data.val_split kept
    "max_iter": 300,  # L-BFGS iterations (stops earlier once converged)
    "l2": 1e-4,  # L2 penalty on the standardised-feature weights
    "class_weights": "median_freq",  # none | median_freq (balanced) | sqrt_median_freq
    # kNN (PASS distance matching, DINO vote)
    "k": 20,
    "temperature": 0.07,
    "bank": "pixel",  # pixel | region (one mean embedding per (image, class), as PASS)
    "pixels_per_image": 1000,  # pixel bank: random labeled pixels kept per train image
    "max_bank": 2_000_000,  # pixel bank: at most this many entries (fewer pixels per image if needed)
    "query_stride": 1,  # vote on an s x s pooled grid of test pixels, upsample the votes (speed)
    "q_chunk": 2048,  # query pixels per similarity block
    "b_chunk": 32768,  # bank entries per similarity block (memory: q_chunk x b_chunk floats)
}


def probe_defaults() -> dict:
    from segssl.config import DEFAULTS

    return {**copy.deepcopy(DEFAULTS), "probe": dict(PROBE_DEFAULTS)}


def add_parser(sub) -> None:
    p = sub.add_parser("probe", help="frozen-feature probes of a checkpoint: --protocol linear | knn")
    from segssl.commands.common import add_config_flags

    add_config_flags(p)
    p.add_argument("--checkpoint", required=True, help="segssl checkpoint (pretrained or trained), or 'random'")
    p.add_argument("--protocol", choices=["linear", "knn"], help="probe protocol (default: probe.protocol)")
    add_data_flags(p)
    p.add_argument("--labeled", help="labeled train images used: 1/8 | 0.125 | N | FILE (default all)")
    p.add_argument("--out", type=Path, help="run directory (default runs/probe-<protocol>)")


def add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], help="where to run (default: cuda if present)")


def setup(args: argparse.Namespace, defaults: dict):
    """(config, data source, frozen backbone, device) shared by `probe` and `retrieve`."""

    import torch

    from segssl.commands.common import config_from_args
    from segssl.config import DEFAULTS
    from segssl.data.registry import load_source
    from segssl.evaluation.probes import load_backbone
    from segssl.models.checkpoint import read_checkpoint

    cfg = config_from_args(args, defaults)
    ckpt = str(args.checkpoint)
    if ckpt != "random" and not args.data and cfg["data"]["path"] == DEFAULTS["data"]["path"]:
        trained_on = ((read_checkpoint(ckpt).get("config") or {}).get("data") or {}).get("path")
        if trained_on:
            cfg["data"]["path"] = trained_on
    source = load_source(cfg["data"]["path"], generated_seed=int(cfg["data"].get("generated_seed", 0)))
    backbone, model_cfg = load_backbone(ckpt, source.info.num_classes, cfg["model"], seed=int(cfg["seed"]))
    cfg["model"] = model_cfg
    acc = cfg["train"].get("accelerator", "auto")
    device = "cuda" if acc in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"
    return cfg, source, backbone, device


def progress_fn(cfg: dict):
    if not cfg["train"].get("progress", True):
        return None
    from rich.progress import track

    return lambda it, desc: track(it, description=desc)


def run(args: argparse.Namespace) -> int:
    import torch

    from segssl.commands.common import console, print_metrics
    from segssl.config import save_config
    from segssl.data.splits import split_labeled, write_split_files
    from segssl.data.validate import ensure_valid
    from segssl.errors import SegsslError
    from segssl.evaluation.evaluate import evaluate_model, write_metrics
    from segssl.evaluation.probes import (
        KNNSegmenter,
        LinearProbeSegmenter,
        build_bank,
    )

    cfg, source, backbone, device = setup(args, probe_defaults())
    pc = cfg["probe"]
    if args.protocol:
        pc["protocol"] = args.protocol
    protocol = pc["protocol"]
    if protocol not in ("linear", "knn"):
        raise SegsslError(f"probe.protocol={protocol}: expected linear or knn")
    d = cfg["data"]
    test_split = d.get("test_split", "test")
    ensure_valid(source, ["train", test_split], need_labels=["train", test_split])
    run_dir = Path(args.out) if args.out else Path("runs") / f"probe-{protocol}"

    train = source.samples("train")
    by_stem = {s.stem: s for s in train}
    spec = d.get("labeled", "all")
    if spec in (None, "none", "all", "1", 1, "1/1"):
        labeled = sorted(by_stem)
    else:
        labeled, unlabeled = split_labeled(sorted(by_stem), spec, seed=int(cfg["seed"]))
        write_split_files(run_dir, labeled, unlabeled)
    samples = [by_stem[s] for s in labeled]
    info = source.info
    progress = progress_fn(cfg)
    torch.manual_seed(int(cfg["seed"]))

    if protocol == "linear":
        feats, labels = build_bank(
            backbone,
            source,
            "train",
            samples,
            bank="pixel",
            pixels_per_image=int(pc["pixels_per_image"]),
            max_bank=int(pc["max_bank"]),
            seed=int(cfg["seed"]),
            device=device,
            progress=progress,
            normalize=False,
        )
        head, extra = fit_probe(backbone, source, feats, labels, pc, d, device, progress)
        segmenter = LinearProbeSegmenter(backbone, head)
        extra["probe_pixels"] = int(labels.numel())
    else:
        bank, bank_labels = build_bank(
            backbone,
            source,
            "train",
            samples,
            bank=pc["bank"],
            pixels_per_image=int(pc["pixels_per_image"]),
            max_bank=int(pc["max_bank"]),
            seed=int(cfg["seed"]),
            device=device,
            progress=progress,
        )
        segmenter = KNNSegmenter(
            backbone,
            bank,
            bank_labels,
            info.num_classes,
            k=int(pc["k"]),
            temperature=float(pc["temperature"]),
            q_chunk=int(pc["q_chunk"]),
            b_chunk=int(pc["b_chunk"]),
            query_stride=int(pc.get("query_stride", 1)),
        )
        extra = {"bank_size": int(segmenter.bank.shape[0])}
    metrics = evaluate_model(
        segmenter,
        source,
        test_split,
        cfg["eval"],
        device=device,
        checkpoint=str(args.checkpoint),
        progress=progress,
    )
    metrics["protocol"] = protocol
    metrics["labeled_images"] = len(samples)
    metrics["probe"] = {k: v for k, v in pc.items() if k != "protocol"}
    metrics.update(extra)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    write_metrics(metrics, run_dir / "metrics.json")
    print_metrics(metrics, f"{protocol} probe of {args.checkpoint}")
    console.print(f"metrics: {run_dir / 'metrics.json'}")
    return 0


def fit_probe(backbone, source, feats, labels, pc: dict, d: dict, device, progress):
    """The linear probe's head: one fit, or, when `class_weights` / `l2` are lists, the grid's best on val.

    Returns (head, extra metrics: the chosen candidate and every candidate's val mIoU)."""
    import torch

    from segssl.data.validate import ensure_valid
    from segssl.errors import SegsslError
    from segssl.evaluation.probes import build_bank, fit_linear_probe, select_linear_probe
    from segssl.training.class_weights import class_weights

    info = source.info
    counts = torch.bincount(labels, minlength=info.num_classes)[: info.num_classes].cpu().numpy()
    kinds = pc["class_weights"] if isinstance(pc["class_weights"], list) else [pc["class_weights"]]
    l2s = pc["l2"] if isinstance(pc["l2"], list) else [pc["l2"]]
    cands = []
    for kind in kinds:
        try:
            w = class_weights(counts, kind)
        except ValueError as e:
            raise SegsslError(f"probe.class_weights: {e}") from None
        cands += [{"name": f"class_weights={kind}, l2={l2}", "class_weight": w, "l2": float(l2)} for l2 in l2s]
    if len(cands) == 1:
        c = cands[0]
        head = fit_linear_probe(
            feats, labels, info.num_classes, class_weight=c["class_weight"], l2=c["l2"], max_iter=int(pc["max_iter"])
        )
        return head, {"probe_choice": c["name"]}
    val = d.get("val_split", "val")
    if not source.has_labels(val):
        raise SegsslError(f"{source.root or source.name}/{val}: a probe grid is chosen on val, but it has no labels")
    ensure_valid(source, [val], need_labels=[val])
    vf, vl = build_bank(
        backbone,
        source,
        val,
        source.samples(val),
        pixels_per_image=0,
        max_bank=0,
        device=device,
        progress=progress,
        normalize=False,
    )
    head, table = select_linear_probe(feats, labels, vf, vl, info.classes, cands, max_iter=int(pc["max_iter"]))
    best = max(table, key=lambda r: r["val_miou"])
    return head, {"probe_choice": best["name"], "probe_val_miou": table}
