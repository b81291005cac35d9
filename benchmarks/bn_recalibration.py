"""Diagnostic: does a run lose test mIoU through its BatchNorm statistics rather than its weights?

Semi-supervised rows forward strong views (colour jitter, grayscale, blur, CutMix) in train mode,
so their BN running statistics are estimated partly on images unlike the test images; the
supervised row's are estimated on weak views only. This re-estimates every BN layer's statistics
(cumulative average, no gradient, weights untouched) on the run's train images at evaluation
resolution and scores the test split before and after: a gain says the statistics, not the
weights, cost the mIoU.
Usage: python benchmarks/bn_recalibration.py RUN_DIR [RUN_DIR ...] [--data PATH] [--images N]
Writes RUN_DIR/eval/bn_recalibration.json and prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT  # noqa: E402, F401  (puts src/ on the path)

from segssl.data.dataset import SegmentationDataset  # noqa: E402
from segssl.data.registry import load_source  # noqa: E402
from segssl.data.transforms import eval_transform  # noqa: E402
from segssl.evaluation.evaluate import evaluate_model  # noqa: E402
from segssl.models.checkpoint import read_checkpoint, segmenter_from_entry  # noqa: E402


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: list[torch.Tensor]) -> None:
    """Replace every BN layer's running mean/var by their cumulative average over `images`."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every image counts equally
    model.train()
    for x in images:
        model(x[None])
    model.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "camvid"))
    ap.add_argument("--images", type=int, default=200, help="train images used for the statistics")
    args = ap.parse_args()
    torch.manual_seed(0)
    src = load_source(args.data)
    train = src.samples("train")[: args.images]
    ds = SegmentationDataset(src, "train", train, eval_transform())
    images = [ds[i]["image"] for i in range(len(ds))]
    for rd in args.runs:
        entry = read_checkpoint(rd / "checkpoints" / "last.ckpt")
        cfg = entry["config"]
        model = segmenter_from_entry(entry, src.info.num_classes)
        ev = dict(cfg.get("eval", {}))
        before = evaluate_model(model, src, "test", ev)
        recalibrate_bn(model, images)
        after = evaluate_model(model, src, "test", ev)
        res = {
            "run": str(rd),
            "images": len(images),
            "miou_before": before["miou"],
            "miou_after": after["miou"],
            "per_class_before": before["per_class_iou"],
            "per_class_after": after["per_class_iou"],
        }
        (rd / "eval").mkdir(parents=True, exist_ok=True)
        (rd / "eval" / "bn_recalibration.json").write_text(json.dumps(res, indent=1))
        n = len(images)
        print(f"{rd}: test mIoU {before['miou']:.1f} -> {after['miou']:.1f} with BN statistics of {n} train images")


if __name__ == "__main__":
    main()
