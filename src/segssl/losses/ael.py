"""Adaptive Equalization Learning (Hu et al. NeurIPS 2021): confidence bank and the adaptive parts.

The confidence bank Conf_c is a per-class EMA of the mean predicted probability of the
true class on labeled pixels; 1 - Conf_c marks under-performing classes. Everything adaptive is
a function of it:
- class sampling for adaptive CutMix / Copy-Paste: softmax over (1 - Conf)^power (the reference code
  uses power 1 for CutMix and 0.5 for Copy-Paste),
- adaptive equalization sampling: class-c pixels enter the unsupervised loss with probability
  s_c = ((1 - Conf_c) / max_j (1 - Conf_j))^beta,
- dynamic re-weighting: a pixel's pseudo-label CE weighted by its confidence^gamma, normalised
  by the sum of weights.
Section/equation numbers are not quoted: they differ between the paper's arXiv and NeurIPS versions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def category_confidence(
    prob: torch.Tensor, label: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class c: mean of p_c over labeled pixels of class c; and which classes are present."""
    k = prob.shape[1]
    valid = label != ignore_index
    y = label[valid]
    p = prob.detach().float().permute(0, 2, 3, 1)[valid]  # (N, K)
    p_true = p.gather(1, y.view(-1, 1)).squeeze(1) if y.numel() else p.new_zeros(0)
    sums = torch.zeros(k, device=prob.device).index_add_(0, y, p_true)
    counts = torch.bincount(y, minlength=k).float()
    present = counts > 0
    return torch.where(present, sums / counts.clamp_min(1), torch.zeros_like(sums)), present


def update_confidence(
    bank: torch.Tensor, seen: torch.Tensor, conf: torch.Tensor, present: torch.Tensor, momentum: float = 0.999
) -> tuple[torch.Tensor, torch.Tensor]:
    """Conf_c <- m Conf_c + (1 - m) conf_c for classes present in the batch (AEL confidence bank).

    A class seen for the first time is set to its observed value instead of being averaged with
    an arbitrary initial value (the reference starts from random numbers; with m = 0.999 a short
    run would otherwise never move away from them). Absent classes keep their value.
    """
    ema = momentum * bank + (1 - momentum) * conf
    new = torch.where(present & seen, ema, torch.where(present, conf, bank))
    return new, seen | present


def class_sampling_probs(conf: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Probability of picking class c for adaptive CutMix / Copy-Paste: softmax((1 - Conf)^power)."""
    return F.softmax((1 - conf.float()).clamp_min(0) ** power, dim=0)


def equalization_rates(conf: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Adaptive equalization sampling rate per class: ((1 - Conf_c) / max_j (1 - Conf_j))^beta."""
    u = (1 - conf.float()).clamp_min(0)
    return (u / (u.max() + 1e-12)) ** beta


def equalization_mask(
    pseudo: torch.Tensor, rates: torch.Tensor, ignore_index: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Keep each pixel whose pseudo-label is c with probability rates[c] (ignored pixels never)."""
    valid = pseudo != ignore_index
    r = rates.to(pseudo.device)[pseudo.clamp(0, rates.numel() - 1)]
    u = torch.rand(pseudo.shape, generator=generator, device="cpu").to(pseudo.device)
    return valid & (u < r)


def reweighted_ce(
    logits: torch.Tensor,
    pseudo: torch.Tensor,
    confidence: torch.Tensor,
    gamma: float,
    keep: torch.Tensor | None,
    ignore_index: int,
) -> torch.Tensor:
    """Dynamic re-weighting: sum_i w_i CE_i / sum_i w_i with w_i = conf_i^gamma on kept pixels.

    The normalisation is over kept, non-ignored pixels (the reference also counts ignored ones
    in the denominator, which only rescales the loss). No kept pixel gives 0, not NaN.
    """
    valid = pseudo != ignore_index
    if keep is not None:
        valid = valid & keep
    ce = F.cross_entropy(logits.float(), pseudo.clamp(0, logits.shape[1] - 1), reduction="none")
    w = confidence.detach().float() ** gamma * valid
    if w.sum() <= 0:
        return logits.sum() * 0.0
    return (w * ce).sum() / w.sum()


def copy_paste(
    image: torch.Tensor,
    label: torch.Tensor,
    src_image: torch.Tensor,
    src_label: torch.Tensor,
    classes: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive Copy-Paste: paste the pixels of `classes` from (src_image, src_label) onto one image.

    image (C, H, W), label (H, W); labels of the pasted pixels come from src_label.
    """
    alpha = torch.isin(src_label, classes.to(src_label.device))
    return torch.where(alpha.unsqueeze(0), src_image, image), torch.where(alpha, src_label, label)


def component_box(
    mask: torch.Tensor, min_area: int = 1, generator: torch.Generator | None = None
) -> tuple[int, int, int, int] | None:
    """Bounding box (y0, x0, y1, x1) of a random connected component of `mask` (H, W) with at least
    `min_area` pixels, or None: the region adaptive CutMix cuts so that the sampled class is in it."""
    comp, n = ndimage.label(mask.cpu().numpy().astype(bool), structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return None
    areas = np.bincount(comp.ravel(), minlength=n + 1)
    big = [i for i in range(1, n + 1) if areas[i] >= min_area]
    if not big:
        return None
    pick = big[int(torch.randint(0, len(big), (1,), generator=generator))]
    ys, xs = ndimage.find_objects(comp)[pick - 1]
    return int(ys.start), int(xs.start), int(ys.stop), int(xs.stop)
