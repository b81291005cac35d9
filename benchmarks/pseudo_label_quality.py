"""Quality of a warm-start model's confident pseudo-labels on CamVid's unlabeled pool (masks held back).

The semi-supervised rows start from the supervised 1/8 model and train on its confident pixels. This
measures, on the pool those methods label (the 321 unlabeled train images + the 101 val images, whose
masks the methods never read), how many pixels pass each threshold, how many of those are right, and
which classes they cover. Whole-image predictions (eval mode), i.e. the labels an offline
self-training round would use. Usage: python benchmarks/pseudo_label_quality.py [--checkpoint CKPT]
Writes the `pseudo-label-quality` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, fmt, header, load_json, save_json, write_section  # noqa: E402

THRESHOLDS = [0.5, 0.7, 0.9, 0.95]
CBST = [(0.2, 0.95), (0.5, 0.95)]  # class-balanced rules (portion, cap): `class_balanced_portion` of FixMatch/UniMatch
BATCH = 8  # CBST ranks within a batch: the unlabeled batch of one semi step
DEFAULT_CKPT = ROOT / "benchmarks" / "runs" / "supervised_camvid" / "1-8" / "checkpoints" / "last.ckpt"
RESULT = ROOT / "benchmarks" / "results" / "pseudo_label_quality.json"


def measure(ckpt: Path, data: str) -> dict:
    from segssl.data.dataset import SegmentationDataset
    from segssl.data.registry import load_source
    from segssl.data.splits import read_split_file
    from segssl.data.transforms import eval_transform
    from segssl.evaluation.inference import predict_logits
    from segssl.evaluation.pseudo_labels import PseudoLabelStats
    from segssl.models.checkpoint import read_checkpoint, segmenter_from_entry

    entry = read_checkpoint(ckpt)
    source = load_source(data)
    model = segmenter_from_entry(entry, source.info.num_classes)
    model.eval()
    labeled = set(read_split_file(ckpt.parent.parent / "splits" / "labeled.txt"))
    pool = [("train", s) for s in source.samples("train") if s.stem not in labeled]
    pool += [("val", s) for s in source.samples("val")]
    stats = PseudoLabelStats(source.info.num_classes, [*THRESHOLDS, *CBST], source.info.ignore_index)
    for split in ("train", "val"):
        ds = SegmentationDataset(source, split, [s for sp, s in pool if sp == split], eval_transform())
        with torch.no_grad():
            for start in range(0, len(ds), BATCH):
                items = [ds[i] for i in range(start, min(start + BATCH, len(ds)))]
                logits = [predict_logits(model, it["image"][None], "whole", (512, 512), (341, 341)) for it in items]
                stats.update(torch.cat(logits), torch.stack([it["label"] for it in items]))
    gt = stats.gt.double()
    return {
        "checkpoint": str(ckpt.relative_to(ROOT)) if ckpt.is_relative_to(ROOT) else str(ckpt),
        "images": len(pool),
        "true_share": {c: float(100 * gt[i] / gt.sum()) for i, c in enumerate(source.info.classes)},
        "rows": stats.summary(list(source.info.classes)),
    }


def write_table(res: dict, command: str) -> None:
    classes = list(res["true_share"])
    rows = ["| rule | pixels kept % | accuracy of kept % |", "|---|---|---|"]
    rows += [f"| {r['rule']} | {r['coverage']:.1f} | {fmt(r['accuracy'])} |" for r in res["rows"]]
    picks = [r for r in res["rows"] if r["threshold"] in (0.9, 0.95) or r["rule"].startswith("cbst p=0.5")]
    head = "| class | true share % | " + " | ".join(
        f"share of kept @{r['rule']} % | recall @{r['rule']} %" for r in picks
    )
    cls = [head + " |", "|---|---|" + "---|---|" * len(picks)]
    for c in classes:
        cells = [f"{fmt(r['classes'][c]['share'])} | {fmt(r['classes'][c]['recall'])}" for r in picks]
        cls.append(f"| {c} | {res['true_share'][c]:.1f} | " + " | ".join(cells) + " |")
    body = (
        "## Pseudo-label quality of the supervised 1/8 warm start, CamVid unlabeled pool\n\n"
        + header(command)
        + f"\nModel: `{res['checkpoint']}` (the warm start of the semi tables). Pool: the {res['images']} images the "
        "semi-supervised rows use unlabeled (train images outside the 1/8 split + val), scored against their "
        "held-back masks (void ignored); whole-image eval-mode predictions. A pixel is kept when its max softmax "
        "is above the threshold (FixMatch / UniMatch use 0.95, pseudo_label 0.9). `cbst p=P cap=0.95`: CBST's "
        "class-balanced rule (`class_balanced_portion: P`), each predicted class keeps its top P most confident "
        f"pixels (and all above 0.95), ranked within batches of {BATCH} images. recall = correct kept pixels "
        "of the class / all its pixels.\n\n" + "\n".join(rows) + "\n\n" + "\n".join(cls) + "\n"
    )
    write_section("pseudo-label-quality", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str((ROOT / ".." / "shared" / "data" / "camvid").resolve()))
    ap.add_argument("--checkpoint", default=str(DEFAULT_CKPT))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    command = "python benchmarks/pseudo_label_quality.py" + (
        "" if Path(args.checkpoint) == DEFAULT_CKPT else f" --checkpoint {args.checkpoint}"
    )
    res = load_json(RESULT) if args.table_only else None
    if res is not None and "rule" not in res["rows"][0]:
        raise SystemExit(f"{RESULT}: archived before the CBST rows; run without --table-only to measure again")
    if res is None:
        torch.set_num_threads(1)
        res = measure(Path(args.checkpoint), args.data)
        save_json(res, RESULT)
    write_table(res, command)


if __name__ == "__main__":
    main()
