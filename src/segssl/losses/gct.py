"""Guided Collaborative Training (Ke et al. ECCV 2020): flaw targets, flaw-map handling, constraints.

Notation of the paper: T1, T2 task models, F the flaw detector trained towards C(|T(x) - y|)
(C: the flaw-target pipeline), L_dc the dynamic consistency constraint, L_fc the flaw correction
constraint (equation numbers are not quoted here: they differ between the paper's versions).
Kernel sizes follow the reference code, relative to the crop size: blur size/8, re-blur size/4
(target pipeline), size/16 (handling of predicted flaw maps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def odd_kernel(size: int, div: int) -> int:
    """int(size / div), made odd (the reference adds 1 to even sizes); at least 1 (no blur)."""
    k = max(int(size / div), 1)
    return k + 1 if k % 2 == 0 else k


def gaussian_kernel(ksize: int) -> torch.Tensor:
    """Normalised (ksize, ksize) Gaussian with OpenCV's default sigma = 0.3((k - 1) / 2 - 1) + 0.8."""
    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    r = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    k2 = torch.outer(g, g)
    return (k2 / k2.sum()).float()


def gaussian_blur(x: torch.Tensor, ksize: int) -> torch.Tensor:
    """Per-channel Gaussian blur with reflection padding (size kept); ksize clamped to the map."""
    h, w = x.shape[-2:]
    ksize = min(ksize, 2 * min(h, w) - 1)
    if ksize % 2 == 0:
        ksize -= 1
    if ksize <= 1:
        return x
    c = x.shape[1]
    k = gaussian_kernel(ksize).to(x.device, x.dtype).expand(c, 1, ksize, ksize)
    p = ksize // 2
    return F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), k, groups=c)


def dilate(x: torch.Tensor) -> torch.Tensor:
    """3x3 grey dilation (max filter) with reflection padding."""
    return F.max_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo = x.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = x.flatten(1).amax(1).view(-1, 1, 1, 1)
    return (x - lo) / (hi - lo + 1e-9)


def flaw_target(
    prob: torch.Tensor, label: torch.Tensor, ignore_index: int, mu: float = 0.5, nu: int = 1
) -> torch.Tensor:
    """GCT pipeline C: flaw target of a prediction on labeled pixels, (B, 1, H, W) in [0, 1].

    diff = mu * sum_k |onehot(y) - p|, blurred (size/8), then nu x (3x3 dilation, blur size/4),
    then min-max normalised per image. Ignored pixels carry no known flaw (diff = 0).
    """
    k = prob.shape[1]
    valid = (label != ignore_index).unsqueeze(1)
    onehot = F.one_hot(label.clamp(0, k - 1), k).permute(0, 3, 1, 2).to(prob.dtype)
    diff = ((onehot - prob.detach()).abs().sum(1, keepdim=True) * mu) * valid
    size = min(prob.shape[-2:])
    diff = gaussian_blur(diff, odd_kernel(size, 8))
    for _ in range(int(nu)):
        diff = gaussian_blur(dilate(diff), odd_kernel(size, 4))
    return _minmax(diff)


def process_flawmap(flawmap: torch.Tensor, clip: float = 0.1) -> torch.Tensor:
    """The reference's handling of a predicted flaw map before building L_dc targets: clamp at 0,
    blur (size/16), treat an image whose whole map stays <= clip as flawless (all zero), else
    min-max normalise it to [0, 1]."""
    f = gaussian_blur(flawmap.detach().clamp_min(0), odd_kernel(min(flawmap.shape[-2:]), 16))
    flawless = f.flatten(1).amax(1).view(-1, 1, 1, 1) <= clip
    return torch.where(flawless, torch.zeros_like(f), _minmax(f))


def dynamic_consistency_targets(
    p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, threshold: float = 0.6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GCT L_dc targets: per pixel, the model with the smaller (handled) flaw value is the teacher.

    Flaw values above `threshold` count as fully flawed (1). Each model's target is its own
    prediction where it is at least as good as the other, else the other's detached prediction.
    Also returns the L_fc mask: pixels where both models are flawed (> threshold).
    """
    bad1, bad2 = f1 > threshold, f2 > threshold
    g1 = torch.where(bad1, torch.ones_like(f1), f1)
    g2 = torch.where(bad2, torch.ones_like(f2), f2)
    own1 = (g2 >= g1).to(p1.dtype)
    own2 = (g1 >= g2).to(p2.dtype)
    t1 = own1 * p1.detach() + (1 - own1) * p2.detach()
    t2 = own2 * p2.detach() + (1 - own2) * p1.detach()
    return t1, t2, (bad1 & bad2).to(p1.dtype)


def flaw_correction_loss(
    flawmap: torch.Tensor, mask: torch.Tensor | None = None, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """GCT L_fc: push the (frozen) flaw detector's map of a prediction to zero, counted only where
    `mask` is set (pixels where both models are flawed, the reference's "gct" mode) and averaged
    over all (`valid`) pixels, as the reference's mean of the masked map."""
    sq = flawmap.float() ** 2
    if mask is not None:
        sq = sq * mask
    if valid is None:
        return sq.mean()
    v = valid.to(sq.dtype).view_as(sq)
    return (sq * v).sum() / v.sum().clamp_min(1.0)


def flaw_detector_loss(flawmap: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """GCT flaw-detector loss: MSE between the predicted flaw map and the target C(.), on valid pixels."""
    sq = (flawmap.float() - target.detach().float()) ** 2
    if valid is None:
        return sq.mean()
    v = valid.to(sq.dtype).view_as(sq)
    return (sq * v).sum() / v.sum().clamp_min(1.0)
