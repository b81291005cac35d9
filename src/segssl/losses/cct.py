"""Cross-consistency training losses (Ouali et al. CVPR 2020)."""

from __future__ import annotations

import torch

from segssl.losses.semi import softmax_mse


def cct_unsupervised_loss(
    aux_logits: list[torch.Tensor],
    target_prob: torch.Tensor,
    confidence: float | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """CCT Eq. 2: L_u = 1/K sum_k d(g_a^k(z~_k), g(z)), d = MSE between softmax(aux logits) and the
    main decoder's detached probabilities averaged over all (B, K, H, W) elements (reference code).

    With `confidence`, only pixels whose target's max probability exceeds it count (the paper's
    supplementary "confidence masking"), averaged over those pixels; none gives 0, not NaN.
    `valid` (B, H, W) excludes pixels that are not image (crop padding) the same way.
    """
    if not aux_logits:
        return target_prob.sum() * 0.0
    t = target_prob.detach().float()
    if confidence is not None:
        keep = t.amax(1) > confidence
        valid = keep if valid is None else keep & valid
    return sum(softmax_mse(a, t, valid=valid) for a in aux_logits) / len(aux_logits)
