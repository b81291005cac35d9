"""`segssl predict`: index-PNG masks and colour overlays for a folder of images."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict masks (index PNG) and colour overlays for a folder of images")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True, help="folder of images (png/jpg)")
    p.add_argument("--out", type=Path, required=True, help="writes OUT/masks/*.png and OUT/overlays/*.png")
    p.add_argument("--mode", choices=["whole", "slide"])
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image
    from rich.progress import track

    from segssl.commands.common import console
    from segssl.data.source import list_images, read_rgb
    from segssl.data.transforms import eval_transform, to_tv
    from segssl.errors import SegsslError
    from segssl.evaluation.inference import predict_logits
    from segssl.models.checkpoint import read_checkpoint, segmenter_from_entry
    from segssl.reporting import overlay

    entry = read_checkpoint(args.checkpoint)
    if entry.get("kind") != "segmenter":
        raise SegsslError(f"{args.checkpoint}: a pretrained backbone, not a segmenter (fine-tune it first)")
    if not args.images.is_dir():
        raise SegsslError(f"{args.images}: image folder does not exist")
    paths = list_images(args.images)
    if not paths:
        raise SegsslError(f"{args.images}: no images (png/jpg) found")
    cfg, classes, palette = entry["config"], entry["classes"], entry["palette"]
    model = segmenter_from_entry(entry, len(classes))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.eval().to(device)
    ev = dict(cfg.get("eval", {}))
    mode = args.mode or ev.get("mode", "whole")
    tf = eval_transform()
    (args.out / "masks").mkdir(parents=True, exist_ok=True)
    (args.out / "overlays").mkdir(parents=True, exist_ok=True)
    flat_palette = [v for c in palette for v in c] + [0] * (768 - 3 * len(palette))
    for p in track(paths, description="predicting", console=console):
        rgb = read_rgb(p)
        x = tf(to_tv(rgb)[0]).as_subclass(torch.Tensor)[None].to(device)
        logits = predict_logits(model, x, mode, ev.get("window", (512, 512)), ev.get("stride", (341, 341)))
        mask = logits.argmax(1)[0].cpu().numpy().astype(np.uint8)
        im = Image.fromarray(mask, mode="P")
        im.putpalette(flat_palette)
        im.save(args.out / "masks" / f"{p.stem}.png")
        over = overlay(rgb, mask, palette, args.alpha)
        Image.fromarray(over).save(args.out / "overlays" / f"{p.stem}.png")
    console.print(f"{len(paths)} masks in {args.out / 'masks'}, overlays in {args.out / 'overlays'}")
    return 0
