"""Pixel-wise label-based contrastive loss (Zhao et al. ICCV 2021, "Contrastive learning for label
efficient semantic segmentation", within-image loss).

For an image I and its photometrically distorted copy I~ (same geometry, so pixel p of I is
pixel p of I~), with unit embeddings f_p (from I) and f~_q (from I~) and labels y:

    l(p) = -1/|P(p)| sum_{q in P(p)} log( e^{s_pq} / (e^{s_pq} + sum_{n in N(p)} e^{s_pn}) ),
    s_pq = f_p . f~_q / tau

P(p): pixels of I~ with label y_p (p itself included), N(p): pixels of I~ with another label.
Every positive is contrasted against the negatives only, not against the other positives.
Pixels are subsampled per class (a few per class and image) because the loss is quadratic in the
number of pixels and large classes would otherwise drown small ones.
"""

from __future__ import annotations

import torch


def sample_pixels_per_class(
    labels: torch.Tensor, per_class: int, ignore_index: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Flat indices of up to `per_class` random pixels of every class present in `labels` (any shape)."""
    flat = labels.reshape(-1)
    picked = []
    for c in torch.unique(flat):
        if int(c) == ignore_index:
            continue
        idx = torch.nonzero(flat == c, as_tuple=False).squeeze(1)
        if idx.numel() > per_class:
            perm = torch.randperm(idx.numel(), generator=generator, device="cpu")[:per_class].to(idx.device)
            idx = idx[perm]
        picked.append(idx)
    if not picked:
        return torch.zeros(0, dtype=torch.long, device=labels.device)
    return torch.cat(picked)


def label_contrastive_loss(
    anchor: torch.Tensor, contrast: torch.Tensor, labels: torch.Tensor, tau: float = 0.07
) -> torch.Tensor:
    """Zhao et al.'s l(p) averaged over anchors: anchor (M, D), contrast (M, D) unit vectors, labels (M,).

    Row i of `contrast` is the same pixel as row i of `anchor` in the other image. An anchor with no
    negative contributes 0 (log 1), as the formula gives.
    """
    s = anchor.float() @ contrast.float().t() / tau
    same = labels.view(-1, 1) == labels.view(1, -1)
    neg = s.masked_fill(same, float("-inf")).logsumexp(1, keepdim=True)  # log sum_n e^{s_pn}
    per_pair = torch.logaddexp(s, neg) - s  # -log(e^{s_pq} / (e^{s_pq} + sum_n e^{s_pn}))
    per_anchor = (per_pair * same).sum(1) / same.sum(1)
    return per_anchor.mean()


def within_image_contrast(
    f1: torch.Tensor,
    f2: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int,
    per_class: int = 50,
    tau: float = 0.07,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Within-image loss over a batch: f1, f2 (B, D, H, W) unit embeddings of the images and their
    distorted copies, labels (B, H, W). Symmetrised (I -> I~ and I~ -> I), averaged over the images
    that have a labeled pixel; 0 (with a graph) when none has."""
    losses = []
    for b in range(f1.shape[0]):
        idx = sample_pixels_per_class(labels[b], per_class, ignore_index, generator)
        if idx.numel() == 0:
            continue
        a = f1[b].flatten(1)[:, idx].t()
        c = f2[b].flatten(1)[:, idx].t()
        y = labels[b].reshape(-1)[idx]
        losses.append(0.5 * (label_contrastive_loss(a, c, y, tau) + label_contrastive_loss(c, a, y, tau)))
    if not losses:
        return (f1.sum() + f2.sum()) * 0.0
    return torch.stack(losses).mean()
