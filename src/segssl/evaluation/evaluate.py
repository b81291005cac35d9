"""Evaluate a model (or a folder of predicted masks) on a split -> metrics.json content."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segssl.data.dataset import SegmentationDataset
from segssl.data.source import DataSource, Sample, read_index
from segssl.data.transforms import eval_transform
from segssl.errors import DataError
from segssl.evaluation.inference import predict_logits
from segssl.evaluation.metrics import confusion_matrix, scores


class GroupedConfusion:
    """One confusion matrix per group of images (sequence, patient, site) beside the split's own.

    A split-level mIoU can hide domain shift: on CamVid's test split 171 of 233 frames come from a
    sequence no train image shows, and a gain on the seen sequence averages away. The group of an
    image is the first capture group of `pattern` searched in its stem (the whole match if the
    pattern has no group), so `^[^_]+` groups CamVid frames by their sequence prefix.
    """

    def __init__(self, pattern: str | re.Pattern, num_classes: int) -> None:
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.k = num_classes
        self.cms: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def key(self, sample: Sample) -> str:
        m = self.pattern.search(sample.stem)
        if m is None:
            where = sample.image if isinstance(sample.image, Path) else sample.stem
            raise DataError(f"{where}: --group-by pattern {self.pattern.pattern!r} does not match its name")
        # an optional group that took no part in the match falls back to the whole match (never a None key)
        return m.group(1) if self.pattern.groups and m.group(1) is not None else m.group(0)

    def add(self, sample: Sample, cm: torch.Tensor) -> None:
        g = self.key(sample)
        self.cms[g] = self.cms.get(g, torch.zeros(self.k, self.k, dtype=torch.long)) + cm
        self.counts[g] = self.counts.get(g, 0) + 1

    def metrics(self, classes: list[str]) -> dict:
        """Per group (sorted): the same dataset-level scores as the split's, from that group's images only."""
        return {g: headline_scores(self.cms[g], classes, self.counts[g]) for g in sorted(self.cms)}


def headline_scores(cm: torch.Tensor, classes: list[str], num_images: int) -> dict:
    """The scores a split and each of its groups report alike, so the two never drift apart."""
    res = scores(cm, classes)
    return {
        "miou": res["miou"],
        "pixel_acc": res["pixel_acc"],
        "per_class_iou": res["per_class_iou"],
        "num_images": num_images,
    }


def metrics_dict(
    cm: torch.Tensor,
    source: DataSource,
    split: str,
    num_images: int,
    checkpoint: str,
    groups: GroupedConfusion | None = None,
) -> dict:
    out = {
        "split": split,
        "checkpoint": checkpoint,
        **headline_scores(cm, list(source.info.classes), num_images),
        "classes": list(source.info.classes),
        "ignore_index": source.info.ignore_index,
        "confusion_matrix": cm.tolist(),
    }
    if groups is not None:
        out["group_by"] = groups.pattern.pattern
        out["groups"] = groups.metrics(list(source.info.classes))
    return out


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    source: DataSource,
    split: str,
    eval_cfg: dict,
    *,
    device: str = "cpu",
    checkpoint: str = "last",
    progress=None,
    group_by: str | None = None,
) -> dict:
    """Dataset-level metrics of `model` on every labeled image of `split` (whole image or sliding window);
    with `group_by` (a regex on image stems) also per group of images, see `GroupedConfusion`."""
    samples = source.samples(split)
    if not source.has_labels(split):
        raise DataError(f"{source.root or source.name}/{split}: no labels to evaluate against")
    ds = SegmentationDataset(source, split, samples, eval_transform())
    k = source.info.num_classes
    cm = torch.zeros(k, k, dtype=torch.long)
    groups = GroupedConfusion(group_by, k) if group_by else None
    if groups is not None:  # a name the pattern misses fails before any inference is spent
        for s in samples:
            groups.key(s)
    model.eval().to(device)
    it = range(len(ds)) if progress is None else progress(range(len(ds)), f"evaluating {split}")
    for i in it:
        item = ds[i]
        x = item["image"][None].to(device)
        logits = predict_logits(
            model,
            x,
            eval_cfg.get("mode", "whole"),
            eval_cfg.get("window", (512, 512)),
            eval_cfg.get("stride", (341, 341)),
        )
        one = confusion_matrix(logits.argmax(1).cpu(), item["label"][None], k, source.info.ignore_index)
        cm += one
        if groups is not None:
            groups.add(samples[i], one)
    return metrics_dict(cm, source, split, len(ds), checkpoint, groups)


def evaluate_predictions(pred_dir: Path, source: DataSource, split: str, group_by: str | None = None) -> dict:
    """Metrics of index-PNG masks in `pred_dir` (named by image stem) against the split's labels."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"{pred_dir}: predictions folder does not exist")
    k = source.info.num_classes
    cm = torch.zeros(k, k, dtype=torch.long)
    samples = source.samples(split)
    groups = GroupedConfusion(group_by, k) if group_by else None
    for s in samples:
        p = pred_dir / f"{s.stem}.png"
        if not p.is_file():
            raise DataError(f"{p}: missing prediction for image '{s.stem}'")
        pred = read_index(p)
        gt = source.read_label(s)
        if pred.shape != gt.shape:
            raise DataError(f"{p}: size {pred.shape[1]}x{pred.shape[0]} differs from label {gt.shape[1]}x{gt.shape[0]}")
        if pred.max(initial=0) >= k:
            raise DataError(f"{p}: predicted values up to {int(pred.max())} outside classes 0..{k - 1}")
        one = confusion_matrix(
            torch.from_numpy(pred.astype(np.int64)),
            torch.from_numpy(gt.astype(np.int64)),
            k,
            source.info.ignore_index,
        )
        cm += one
        if groups is not None:
            groups.add(s, one)
    return metrics_dict(cm, source, split, len(samples), f"predictions:{pred_dir}", groups)


def write_metrics(metrics: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(metrics, indent=1))
    os.replace(tmp, path)


def format_table(metrics: dict):
    """A rich table of per-class IoU with the headline numbers."""
    from rich.table import Table

    t = Table(title=f"{metrics['split']} ({metrics['num_images']} images, checkpoint {metrics['checkpoint']})")
    t.add_column("class")
    t.add_column("IoU %", justify="right")
    for c, v in metrics["per_class_iou"].items():
        t.add_row(c, "—" if v is None else f"{v:.1f}")
    t.add_section()
    t.add_row("[bold]mIoU[/bold]", f"[bold]{metrics['miou']:.2f}[/bold]")
    t.add_row("pixel acc", f"{metrics['pixel_acc']:.2f}")
    return t


def format_groups(metrics: dict):
    """A rich table of the per-group headline numbers (`--group-by`), or None without groups."""
    from rich.table import Table

    if not metrics.get("groups"):
        return None
    t = Table(title=f"{metrics['split']} by group ({metrics['group_by']})")
    for col in ("group", "images", "mIoU %", "pixel acc %"):
        t.add_column(col, justify="left" if col == "group" else "right")
    for g, m in metrics["groups"].items():
        t.add_row(g, str(m["num_images"]), f"{m['miou']:.2f}", f"{m['pixel_acc']:.2f}")
    return t
