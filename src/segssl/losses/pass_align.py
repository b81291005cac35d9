"""PASS pixel-to-pixel alignment (Gao et al., "Large-scale Unsupervised Semantic Segmentation", TPAMI 2022,
Sec. 4.2): SimSiam's symmetric negative cosine (Chen & He 2021, Eqs. 1-2) applied to pixel features
sampled at the *same original-image points* in two augmented views.

The geometry is exact rather than learned: each view remembers its crop box in original-image
coordinates (x0 > x1 for a flipped view, see segssl.data.views), so a common G x G grid of
points inside the two crops' intersection can be mapped into each view and read there with
bilinear `grid_sample`. Pure functions of tensors; the method owns the networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def intersection_points(box1: torch.Tensor, box2: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """G x G cell centres of the two boxes' intersection, in normalised original-image (x, y).

    box1, box2: (B, 4) as (x0, y0, x1, y1), x0 > x1 meaning a flipped view. Returns points
    (B, G, G, 2) (row = y, column = x) and valid (B,) — False when the crops do not overlap, whose
    points are then meaningless and must be masked out of the loss.
    """
    box1, box2 = box1.view(-1, 4).float(), box2.view(-1, 4).float()
    ix0 = torch.maximum(torch.minimum(box1[:, 0], box1[:, 2]), torch.minimum(box2[:, 0], box2[:, 2]))
    ix1 = torch.minimum(torch.maximum(box1[:, 0], box1[:, 2]), torch.maximum(box2[:, 0], box2[:, 2]))
    iy0 = torch.maximum(box1[:, 1], box2[:, 1])
    iy1 = torch.minimum(box1[:, 3], box2[:, 3])
    valid = (ix1 > ix0) & (iy1 > iy0)
    t = (torch.arange(grid, dtype=box1.dtype, device=box1.device) + 0.5) / grid
    x = ix0[:, None] + t[None] * (ix1 - ix0)[:, None]  # (B, G)
    y = iy0[:, None] + t[None] * (iy1 - iy0)[:, None]  # (B, G)
    pts = torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), dim=-1)
    return pts, valid


def to_view_fraction(points: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Original-image points (B, ..., 2) -> position inside the view as a fraction of its width/height.

    Inverse of `segssl.data.views.pixel_coords` (x = x0 + u (x1 - x0)); a flipped view (x0 > x1)
    gets u measured from its left edge, i.e. the mirrored position, automatically.
    """
    box = box.view(-1, 4).float()
    shape = (-1,) + (1,) * (points.dim() - 2)
    u = (points[..., 0] - box[:, 0].view(shape)) / (box[:, 2] - box[:, 0]).view(shape)
    v = (points[..., 1] - box[:, 1].view(shape)) / (box[:, 3] - box[:, 1]).view(shape)
    return torch.stack([u, v], dim=-1)


def sample_at(feat: torch.Tensor, frac: torch.Tensor, extent: Sequence[float] = (1.0, 1.0)) -> torch.Tensor:
    """Bilinear features (B, C, G, G) at view fractions `frac` (B, G, G, 2) of a map (B, C, h, w).

    `extent` (fy, fx) is the part of the map the view covers: a model that pads its input to its
    stride returns maps of the padded size, of which only the top-left h/hp x w/wp is the view.
    """
    fy, fx = float(extent[0]), float(extent[1])
    scale = torch.tensor([fx, fy], dtype=frac.dtype, device=frac.device)
    grid = (2 * frac * scale - 1).to(feat.dtype)  # align_corners=False: -1/+1 are the outer pixel edges
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="border", align_corners=False)


def negative_cosine(p: torch.Tensor, z: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """SimSiam's D(p, z) = -cos(p, stopgrad(z)) (Chen & He 2021, Eq. 1), averaged over points.

    p, z: (B, D, ...) with channels on dim 1; valid (B,) masks images whose views do not overlap.
    """
    cos = (F.normalize(p.float(), dim=1) * F.normalize(z.detach().float(), dim=1)).sum(1)
    per_image = cos.flatten(1).mean(1)
    if valid is None:
        return -per_image.mean()
    w = valid.to(per_image.dtype)
    return -(per_image * w).sum() / w.sum().clamp(min=1)


def simsiam_pixel_loss(
    p1: torch.Tensor, z1: torch.Tensor, p2: torch.Tensor, z2: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric SimSiam loss (Chen & He 2021, Eq. 2) on aligned points: D(p1, z2)/2 + D(p2, z1)/2."""
    return 0.5 * negative_cosine(p1, z2, valid) + 0.5 * negative_cosine(p2, z1, valid)
