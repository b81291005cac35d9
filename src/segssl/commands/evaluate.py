"""`segssl evaluate`: metrics of a checkpoint, or of a folder of predicted masks, on a split."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="mIoU / per-class IoU / pixel accuracy of a checkpoint or predictions")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="segssl checkpoint (last.ckpt, best.ckpt)")
    src.add_argument("--predictions", type=Path, help="folder of index-PNG masks named by image stem")
    p.add_argument("--data", help="dataset (default: the checkpoint's training data)")
    p.add_argument("--split", default="test")
    p.add_argument("--mode", choices=["whole", "slide"], help="inference mode (default from config)")
    p.add_argument("--out", type=Path, help="folder for metrics.json (default: RUN_DIR/eval/<split>-<ckpt>)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    p.add_argument(
        "--group-by",
        metavar="REGEX",
        help="also score each group of images whose stems share this regex's match (its first capture group if "
        "it has one), e.g. '^[^_]+' for CamVid sequences or '^(patient\\d+)' for scans; written under "
        "`groups` in metrics.json",
    )


def run(args: argparse.Namespace) -> int:
    import re

    import torch

    from segssl.commands.common import console, print_metrics
    from segssl.data.registry import load_source
    from segssl.errors import SegsslError
    from segssl.evaluation.evaluate import evaluate_model, evaluate_predictions, format_groups, write_metrics
    from segssl.models.checkpoint import read_checkpoint, segmenter_from_entry

    if args.group_by is not None:
        try:
            re.compile(args.group_by)
        except re.error as e:
            raise SegsslError(f"--group-by {args.group_by!r}: not a regular expression ({e})") from None
    if args.predictions is not None:
        if not args.data:
            raise SegsslError("--predictions needs --data (the dataset holding the ground truth)")
        src = load_source(args.data)
        metrics = evaluate_predictions(args.predictions, src, args.split, group_by=args.group_by)
        out = args.out or args.predictions.parent / f"eval-{args.split}"
    else:
        entry = read_checkpoint(args.checkpoint)
        cfg = entry["config"]
        if entry.get("kind") != "segmenter":
            raise SegsslError(
                f"{args.checkpoint}: a pretrained backbone, not a segmenter "
                "(use `segssl probe` or fine-tune it with `segssl train`)"
            )
        src = load_source(args.data or cfg["data"]["path"])
        if len(src.info.classes) != len(entry.get("classes", src.info.classes)):
            raise SegsslError(
                f"{args.checkpoint}: trained for {len(entry['classes'])} classes, "
                f"the dataset has {src.info.num_classes}"
            )
        model = segmenter_from_entry(entry, src.info.num_classes)
        ev = dict(cfg.get("eval", {}))
        if args.mode:
            ev["mode"] = args.mode
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        metrics = evaluate_model(
            model, src, args.split, ev, device=device, checkpoint=args.checkpoint.stem, group_by=args.group_by
        )
        out = args.out or args.checkpoint.resolve().parent.parent / "eval" / f"{args.split}-{args.checkpoint.stem}"
    write_metrics(metrics, Path(out) / "metrics.json")
    from segssl.reporting.plots import confusion_matrix_plot

    confusion_matrix_plot(
        metrics["confusion_matrix"],
        metrics["classes"],
        Path(out) / "confusion_matrix.png",
        title=f"{metrics['split']}: mIoU {metrics['miou']:.1f}",
    )
    print_metrics(metrics)
    if (by_group := format_groups(metrics)) is not None:
        console.print(by_group)
    console.print(f"metrics: {Path(out) / 'metrics.json'}")
    return 0
