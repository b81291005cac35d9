"""DenseCL losses (Wang et al., "Dense Contrastive Learning for Self-Supervised Visual Pre-Training",
CVPR 2021): a MoCo-v2 global InfoNCE term plus a dense, per-location InfoNCE term whose positive key
is found by feature similarity, mixed as (1 - lambda) L_q + lambda L_r.

Pure functions of tensors; the method (segssl.methods.ssl.densecl) owns encoders and queues.
Every similarity is computed in float32, so bf16/fp16 autocast never rounds the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, tau: float) -> torch.Tensor:
    """MoCo InfoNCE (He et al. 2020; DenseCL Eq. 1): mean of -log e^{q.k+/t} / (e^{q.k+/t} + sum e^{q.k-/t}).

    q, k: (N, D) queries and their positive keys; queue: (K, D) negative keys. All vectors are
    L2-normalised here, so callers may pass raw projections.
    """
    q = F.normalize(q.float(), dim=-1)
    k = F.normalize(k.float(), dim=-1)
    neg = F.normalize(queue.float(), dim=-1)
    l_pos = (q * k).sum(-1, keepdim=True)  # (N, 1)
    l_neg = q @ neg.t()  # (N, K)
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    # the positive is column 0 of every row
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def match_by_similarity(q_feat: torch.Tensor, k_feat: torch.Tensor) -> torch.Tensor:
    """DenseCL's correspondence (Sec. 3.3): for each query location, the key location of highest cosine.

    q_feat: (B, Sq, C), k_feat: (B, Sk, C) *backbone* features (before the dense projector) ->
    (B, Sq) indices into the key locations. Ties go to the first location (torch.max).
    """
    sim = F.normalize(q_feat.float(), dim=-1) @ F.normalize(k_feat.float(), dim=-1).transpose(1, 2)
    return sim.argmax(dim=2)


def dense_info_nce(
    q_grid: torch.Tensor,
    k_grid: torch.Tensor,
    q_feat: torch.Tensor,
    k_feat: torch.Tensor,
    queue: torch.Tensor,
    tau: float,
) -> torch.Tensor:
    """DenseCL Eq. 2: per-location InfoNCE, positive = key vector at the best-matching key location.

    q_grid, k_grid: (B, S, D) dense projections of the query / key view; q_feat, k_feat: (B, S, C)
    backbone features used only to find correspondences; queue: (K, D) dense negative keys.
    The loss is averaged over all B*S query locations (the paper's 1/S^2 sum, then batch mean).
    """
    idx = match_by_similarity(q_feat, k_feat)  # (B, S)
    k_pos = torch.gather(k_grid, 1, idx[..., None].expand(-1, -1, k_grid.shape[-1]))
    d = q_grid.shape[-1]
    return info_nce(q_grid.reshape(-1, d), k_pos.reshape(-1, d), queue, tau)


def densecl_loss(loss_global: torch.Tensor, loss_dense: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """DenseCL Eq. 3: L = (1 - lambda) L_q + lambda L_r (lambda = 0.5 in the paper)."""
    return (1 - lam) * loss_global + lam * loss_dense
