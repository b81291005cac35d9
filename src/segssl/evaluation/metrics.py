"""Dataset-level segmentation metrics from one confusion matrix.

Averaging mIoU per batch (as some thesis code does) over-weights small batches and classes that
appear in few images; accumulating one confusion matrix over the whole split does not.
"""

from __future__ import annotations

import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """(K, K) int64 counts, rows = ground truth, cols = prediction; ignore pixels are dropped."""
    valid = target != ignore_index
    t = target[valid].long()
    p = pred[valid].long()
    if t.numel() and (int(t.max()) >= num_classes or int(t.min()) < 0):
        raise ValueError(f"ground-truth values outside 0..{num_classes - 1} (ignore {ignore_index})")
    p = p.clamp(0, num_classes - 1)
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).view(num_classes, num_classes)


def scores(cm: torch.Tensor, classes: list[str]) -> dict:
    """mIoU over classes present in prediction or ground truth, per-class IoU, pixel accuracy (all in %).

    A class whose union is empty on the split has no defined IoU: it is reported as null and left
    out of the mean, so a split without bicyclists does not get a free 0 or 100 for them.
    """
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.zeros_like(tp))
    total = cm.sum()
    return {
        "miou": round(float(iou[present].mean() * 100), 4) if present.any() else 0.0,
        "pixel_acc": round(float(tp.sum() / total * 100), 4) if total > 0 else 0.0,
        "per_class_iou": {c: (round(float(iou[i] * 100), 4) if present[i] else None) for i, c in enumerate(classes)},
        "num_pixels": int(total),
    }
