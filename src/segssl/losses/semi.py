"""Semi-supervised segmentation losses: consistency MSE, pseudo-label CE, cross pseudo supervision.

All losses are per-pixel terms reduced as sum(term * weight * valid) / sum(valid): `valid`
marks real image pixels (not crop padding), `weight` carries confidence masks, box masks or a
ramp-up, so pixels a method distrusts count as zero without changing the normaliser. This is
UniMatch's and French et al.'s reduction (their confidence masks do not renormalise the mean).
Computation is in float32 whatever the autocast dtype of the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _reduce(per_pixel: torch.Tensor, weight: torch.Tensor | float | None, valid: torch.Tensor | None) -> torch.Tensor:
    if weight is not None:
        per_pixel = per_pixel * (weight.float() if isinstance(weight, torch.Tensor) else float(weight))
    if valid is None:
        return per_pixel.mean()
    v = valid.to(per_pixel.dtype)
    # clamp: a batch without valid pixels gives 0 (graph intact), and no host sync is needed
    return (per_pixel * v).sum() / v.sum().clamp_min(1.0)


def softmax_mse(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | float | None = None,
    valid: torch.Tensor | None = None,
    class_reduction: str = "mean",
) -> torch.Tensor:
    """Squared distance between softmax(logits) and target probabilities (B, K, H, W).

    Laine & Aila (ICLR 2017, Alg. 1) and Tarvainen & Valpola (NeurIPS 2017) average over the K
    classes (`class_reduction="mean"`, the 1/C of ||z - z~||^2 / C); French et al. (BMVC 2020,
    code `cons_loss_fn='var'`) sum over classes (`"sum"`). Gradients reach `target` too when it
    requires them (the Pi-model trains both passes); detach it for a teacher target.
    """
    p = logits.float().softmax(dim=1)
    d = (p - target.float()).pow(2)
    if class_reduction == "mean":
        d = d.mean(dim=1)
    elif class_reduction == "sum":
        d = d.sum(dim=1)
    else:
        raise ValueError(f"class_reduction must be 'mean' or 'sum', got {class_reduction}")
    return _reduce(d, weight, valid)


def pseudo_label_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | float | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pixel-wise CE with hard pseudo-labels (B, H, W), weighted, averaged over valid pixels.

    FixMatch/UniMatch (Yang et al. CVPR 2023, L_u) use weight = 1[conf >= tau]; ClassMix (Olsson
    et al. WACV 2021, "threshold_uniform") uses one weight for the batch: the share of confident pixels.
    """
    ce = F.cross_entropy(logits.float(), target.long(), reduction="none")
    return _reduce(ce, weight, valid)


def cps_loss(
    logits_a: torch.Tensor,
    logits_b: torch.Tensor,
    valid: torch.Tensor | None = None,
    target_a: torch.Tensor | None = None,
    target_b: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross pseudo supervision (Chen et al. CVPR 2021, Eq. 3-4): CE(p_a, argmax p_b) + CE(p_b, argmax p_a).

    The hard labels carry no gradient. `target_a`/`target_b` override the argmax of a/b (the
    CutMix variant takes them from the models' predictions on the unmixed images, then mixes).
    """
    ya = (logits_a.detach().argmax(dim=1) if target_a is None else target_a).long()
    yb = (logits_b.detach().argmax(dim=1) if target_b is None else target_b).long()
    return pseudo_label_ce(logits_a, yb, valid=valid) + pseudo_label_ce(logits_b, ya, valid=valid)
