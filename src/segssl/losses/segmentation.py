"""Supervised segmentation losses with an ignore index."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Pixel-wise CE averaged over non-ignored pixels (0 when a batch has none, not NaN)."""
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int, eps: float = 1.0) -> torch.Tensor:
    """Soft multi-class Dice (Milletari et al. 2016, Eq. 1), 1 - mean over classes present in the batch."""
    k = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1).float()
    prob = logits.float().softmax(1) * valid
    onehot = F.one_hot(target.clamp(0, k - 1), k).permute(0, 3, 1, 2).float() * valid
    inter = (prob * onehot).sum((0, 2, 3))
    denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    if not present.any():
        return logits.sum() * 0.0
    dice = (2 * inter + eps) / (denom + eps)
    return 1 - dice[present].mean()


def supervised_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int,
    kind: str = "ce",
    dice_weight: float = 0.5,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    loss = cross_entropy(logits, target, ignore_index, weight=weight)
    if kind == "ce+dice":
        loss = loss + dice_weight * dice_loss(logits, target, ignore_index)
    elif kind != "ce":
        raise ValueError(f"train.loss must be 'ce' or 'ce+dice', got {kind}")
    return loss
