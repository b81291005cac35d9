"""Self-correcting networks (Ibrahim et al. CVPR 2020): label distributions for the box-labeled set.

Linear self-correction: for a weak (box-labeled) image, the label distribution q solves
    min_q  KL(q || p) + alpha KL(q || p_anc)
with p the primary model and p_anc the box-conditioned ancillary model. Setting the derivative of
the Lagrangian to zero gives (1 + alpha) log q = log p + alpha log p_anc + const, i.e.
    q  ∝  p^{1/(1+alpha)} p_anc^{alpha/(1+alpha)},
a geometric interpolation: large alpha trusts the ancillary model (early, when the primary model is
poor), alpha -> 0 trusts the primary model. The primary model is trained on q with a soft CE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_self_correction(primary_logits: torch.Tensor, ancillary_logits: torch.Tensor, alpha: float) -> torch.Tensor:
    """q ∝ p^{1/(1+alpha)} p_anc^{alpha/(1+alpha)} over the class axis (dim 1), detached."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    lp = F.log_softmax(primary_logits.detach().float(), dim=1)
    la = F.log_softmax(ancillary_logits.detach().float(), dim=1)
    return F.softmax((lp + alpha * la) / (1 + alpha), dim=1)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """-sum_k q_k log p_k per pixel, averaged over (valid) pixels; q detached."""
    per_pixel = -(target.detach().float() * F.log_softmax(logits.float(), dim=1)).sum(1)
    if valid is None:
        return per_pixel.mean()
    v = valid.to(per_pixel.dtype)
    return (per_pixel * v).sum() / v.sum().clamp_min(1.0)


def alpha_schedule(step: int, start: int, end: int, alpha_start: float, alpha_end: float) -> float:
    """alpha annealed linearly from `alpha_start` at step `start` to `alpha_end` at step `end`."""
    if end <= start:
        return alpha_end
    t = min(max((step - start) / (end - start), 0.0), 1.0)
    return alpha_start + t * (alpha_end - alpha_start)
