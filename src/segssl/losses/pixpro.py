"""PixPro / PixContrast losses and their geometry (Xie et al., CVPR 2021, "Propagate Yourself", Eqs. 1-4).

Everything here is a pure function of tensors, so each piece (positive pairs, propagation, losses)
is testable on tiny hand-made inputs.

Geometry. A view's crop box (x0, y0, x1, y1) is normalised to the original image, a flip being
x0 > x1 (see `segssl.data.views`). Two pixels of two views are a positive pair when their
original-image distance, divided by the larger of the two views' cell diagonals, is below a
threshold (paper Sec. 3.1, 0.7 by default): the division makes the threshold mean "within about
one feature cell" whatever the crop scales.

Why sampling. The paper's all-pairs distance matrix and its global propagation are (HW)^2 in memory:
fine on a 7x7 stride-32 map, impossible on a full-resolution UNet map (a 256x256 crop is 2^16
pixels, 16 GiB per fp32 matrix). `sample_positive_pairs` finds the positives of a few anchors by a
closed-form nearest-pixel lookup plus a small window, and `local_ppm` propagates only at those
pixels over a local window, so both are O(anchors x window) instead of O((HW)^2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from segssl.data.views import pixel_coords


def cell_diagonal(box: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Diagonal of one pixel (feature cell) of an HxW view in normalised original coordinates -> (B,)."""
    box = box.view(-1, 4)
    return torch.sqrt(((box[:, 2] - box[:, 0]) / w) ** 2 + ((box[:, 3] - box[:, 1]) / h) ** 2)


def box_intersection(box1: torch.Tensor, box2: torch.Tensor) -> torch.Tensor:
    """(xmin, ymin, xmax, ymax) of two boxes' overlap in original coordinates (flips undone) -> (B, 4).

    An empty overlap has xmin > xmax or ymin > ymax, so every "inside" test on it is false.
    """
    box1, box2 = box1.view(-1, 4), box2.view(-1, 4)
    lo1, hi1 = torch.minimum(box1[:, 0], box1[:, 2]), torch.maximum(box1[:, 0], box1[:, 2])
    lo2, hi2 = torch.minimum(box2[:, 0], box2[:, 2]), torch.maximum(box2[:, 0], box2[:, 2])
    return torch.stack(
        [
            torch.maximum(lo1, lo2),
            torch.maximum(box1[:, 1], box2[:, 1]),
            torch.minimum(hi1, hi2),
            torch.minimum(box1[:, 3], box2[:, 3]),
        ],
        dim=1,
    )


def _inside(xy: torch.Tensor, rect: torch.Tensor) -> torch.Tensor:
    """xy (B, ..., 2) inside rect (B, 4), borders included -> bool (B, ...)."""
    shape = (rect.shape[0],) + (1,) * (xy.dim() - 2)
    x, y = xy[..., 0], xy[..., 1]
    return (
        (x >= rect[:, 0].view(shape))
        & (x <= rect[:, 2].view(shape))
        & (y >= rect[:, 1].view(shape))
        & (y <= rect[:, 3].view(shape))
    )


def positive_mask(
    box1: torch.Tensor, box2: torch.Tensor, size1: Sequence[int], size2: Sequence[int], threshold: float = 0.7
) -> torch.Tensor:
    """All-pairs positives (PixPro Sec. 3.1): dist(i, j) / max cell diagonal < threshold -> bool (B, N1, N2).

    This is the paper's (HW)^2 matrix; use it only on strided maps (`sample_positive_pairs` otherwise).
    """
    (h1, w1), (h2, w2) = size1, size2
    box1, box2 = box1.view(-1, 4).float(), box2.view(-1, 4).float()
    c1 = pixel_coords(box1, h1, w1).flatten(1, 2)  # (B, N1, 2)
    c2 = pixel_coords(box2, h2, w2).flatten(1, 2)  # (B, N2, 2)
    d = torch.maximum(cell_diagonal(box1, h1, w1), cell_diagonal(box2, h2, w2))
    # x and y terms separately: no (B, N1, N2, 2) temporary on top of the (B, N1, N2) ones
    dist2 = (c1[:, :, None, 0] - c2[:, None, :, 0]) ** 2
    dist2 += (c1[:, :, None, 1] - c2[:, None, :, 1]) ** 2
    return dist2.sqrt_() < threshold * d[:, None, None]


@dataclass
class PixelPairs:
    """Sampled positive pairs: flat pixel indices into view 1 (idx1) and view 2 (idx2), (B, P) each.

    `weight` (B, P) is 1 for real pairs and 0 for the padding of images that have none; `found` (B,)
    counts the distinct positive pairs of the sampled anchors before resampling to P; `anchors`
    (B, A) and `anchor_valid` (B, A) are the view-1 anchors the pairs were drawn from.
    """

    idx1: torch.Tensor
    idx2: torch.Tensor
    weight: torch.Tensor
    found: torch.Tensor
    anchors: torch.Tensor
    anchor_valid: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        return self.found > 0


def _random_subset(mask: torch.Tensor, k: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """k uniformly random True positions per row without replacement (B, k) and whether each is True.

    Random scores with the False positions pushed below every True one, then top-k: uniform over
    the True positions, vectorised over the batch, and rows with fewer than k True just return
    some False positions, flagged by the second output.
    """
    scores = torch.rand(mask.shape, device=mask.device, generator=generator)
    scores = scores.masked_fill(~mask, -1.0)
    k = min(k, mask.shape[1])
    idx = scores.topk(k, dim=1).indices
    return idx, mask.gather(1, idx)


@torch.no_grad()
def sample_positive_pairs(
    box1: torch.Tensor,
    box2: torch.Tensor,
    size1: Sequence[int],
    size2: Sequence[int],
    num_anchors: int = 64,
    pairs_per_image: int = 256,
    threshold: float = 0.7,
    max_radius: int = 8,
    generator: torch.Generator | None = None,
) -> PixelPairs:
    """Positive pixel pairs by sampling (PixPro Sec. 3.1 positives, without the (HW)^2 matrix).

    1. Sample `num_anchors` view-1 pixels whose original-image centre lies in the views' overlap.
    2. For each anchor, the view-2 pixel nearest to its original position is found in closed form
       (invert view 2's pixel->original map and round); every view-2 pixel within `threshold`
       lies in a window around it whose radius follows from the threshold and view 2's pixel
       spacing (capped at `max_radius`), so only anchors x window distances are computed.
    3. Keep the candidates that are inside the overlap and below the threshold, and draw
       `pairs_per_image` of them per image (without replacement when enough exist, else with).
    """
    (h1, w1), (h2, w2) = (int(size1[0]), int(size1[1])), (int(size2[0]), int(size2[1]))
    box1, box2 = box1.view(-1, 4).float(), box2.view(-1, 4).float()
    dev = box1.device
    b = box1.shape[0]
    inter = box_intersection(box1, box2)
    diag = torch.maximum(cell_diagonal(box1, h1, w1), cell_diagonal(box2, h2, w2))  # (B,)
    limit = threshold * diag

    # 1. anchors: view-1 pixels inside the overlap
    c1 = pixel_coords(box1, h1, w1).flatten(1, 2)  # (B, N1, 2)
    anchors, anchor_valid = _random_subset(_inside(c1, inter), num_anchors, generator)
    a_xy = c1.gather(1, anchors[..., None].expand(-1, -1, 2))  # (B, A, 2)

    # 2. nearest view-2 pixel of each anchor, in closed form: x = x0 + (j + 0.5) / W (x1 - x0)
    span_x, span_y = box2[:, 2] - box2[:, 0], box2[:, 3] - box2[:, 1]
    safe_x = torch.where(span_x.abs() > 1e-12, span_x, torch.full_like(span_x, 1e-12))
    safe_y = torch.where(span_y.abs() > 1e-12, span_y, torch.full_like(span_y, 1e-12))
    ju = ((a_xy[..., 0] - box2[:, 0, None]) / safe_x[:, None] * w2 - 0.5).round().long().clamp(0, w2 - 1)
    iv = ((a_xy[..., 1] - box2[:, 1, None]) / safe_y[:, None] * h2 - 0.5).round().long().clamp(0, h2 - 1)
    # pixels within `limit` are at most limit / spacing (+ 0.5 for the rounding) pixels away
    step_x, step_y = (span_x.abs() / w2).clamp_min(1e-12), (span_y.abs() / h2).clamp_min(1e-12)
    rx = min(max_radius, int(math.ceil(float((limit / step_x).max()) + 0.5))) if b else 0
    ry = min(max_radius, int(math.ceil(float((limit / step_y).max()) + 0.5))) if b else 0
    dx = torch.arange(-rx, rx + 1, device=dev)
    dy = torch.arange(-ry, ry + 1, device=dev)
    cj = ju[..., None, None] + dx[None, None, None, :]  # (B, A, 1, kw)
    ci = iv[..., None, None] + dy[None, None, :, None]  # (B, A, kh, 1)
    in_view = (cj >= 0) & (cj < w2) & (ci >= 0) & (ci < h2)
    cand = (ci.clamp(0, h2 - 1) * w2 + cj.clamp(0, w2 - 1)).flatten(2)  # (B, A, K)
    in_view = in_view.flatten(2)

    # 3. exact distances of the candidates, in original coordinates
    c2 = pixel_coords(box2, h2, w2).flatten(1, 2)  # (B, N2, 2)
    cand_xy = c2.gather(1, cand.flatten(1)[..., None].expand(-1, -1, 2)).view(*cand.shape, 2)
    dist = torch.sqrt(((cand_xy - a_xy[:, :, None, :]) ** 2).sum(-1))
    ok = in_view & anchor_valid[..., None] & (dist < limit[:, None, None]) & _inside(cand_xy, inter)
    ok = ok.flatten(1)  # (B, A*K)
    found = ok.sum(1)

    # draw P pairs per image: without replacement when there are enough, with replacement otherwise
    p = int(pairs_per_image)
    pick, _ = _random_subset(ok, p, generator)
    if pick.shape[1] < p:  # fewer candidates than P at all (tiny maps): pad, replaced below
        pick = torch.cat([pick, pick[:, :1].expand(-1, p - pick.shape[1])], dim=1)
    weights = ok.float() + (found == 0).float()[:, None]  # an empty image draws anything, weight 0
    repl = torch.multinomial(weights, p, replacement=True, generator=generator)
    pick = torch.where((found >= p)[:, None], pick, repl)
    a_of = pick // cand.shape[2]
    idx1 = anchors.gather(1, a_of)
    idx2 = cand.flatten(1).gather(1, pick)
    weight = (found > 0).float()[:, None].expand(-1, p).contiguous()
    return PixelPairs(idx1, idx2, weight, found, anchors, anchor_valid)


def gather_pixels(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) at flat pixel indices idx (B, P) -> (B, C, P)."""
    flat = x.flatten(2)
    return flat.gather(2, idx[:, None, :].expand(-1, flat.shape[1], -1))


def window_offsets(
    window: int | Sequence[int], device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row/column offsets of a kh x kw window: -(k // 2) .. (k - 1) // 2 (centred for odd k)."""
    kh, kw = (int(window), int(window)) if isinstance(window, int) else (int(window[0]), int(window[1]))
    if kh < 1 or kw < 1:
        raise ValueError(f"PPM window must be positive, got {window}")
    return (torch.arange(kh, device=device) - kh // 2, torch.arange(kw, device=device) - kw // 2)


def local_ppm(
    x: torch.Tensor, v: torch.Tensor, idx: torch.Tensor, window: int | Sequence[int] = 7, gamma: float = 2.0
) -> torch.Tensor:
    """Pixel propagation (PixPro Eq. 3) at pixels idx over a local window: y_i = sum_j s(x_i, x_j) g(x_j).

    s = max(cos(x_i, x_j), 0)^gamma; x (B, C, H, W) are the projected features that decide the
    similarity, v = g(x) (B, C', H, W) the transformed values propagated. Only the pixels idx (B, P)
    are evaluated and only their kh x kw neighbours are gathered, so memory is O(P x window);
    neighbours falling outside the image (any window size, any map size) are masked out.
    Returns (B, C', P).
    """
    b, c, h, w = x.shape
    dy, dx = window_offsets(window, x.device)
    iy, ix = idx // w, idx % w
    ny = iy[..., None, None] + dy[None, None, :, None]  # (B, P, kh, 1)
    nx = ix[..., None, None] + dx[None, None, None, :]  # (B, P, 1, kw)
    inside = ((ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)).flatten(2)  # (B, P, K)
    nidx = (ny.clamp(0, h - 1) * w + nx.clamp(0, w - 1)).flatten(2)  # (B, P, K)
    p, k = nidx.shape[1:]
    xf = x.reshape(b, c, h * w)  # one copy at most (channels_last inputs), shared by both gathers
    centre = F.normalize(xf.gather(2, idx[:, None, :].expand(-1, c, -1)), dim=1)  # (B, C, P)
    neigh = xf.gather(2, nidx.flatten(1)[:, None, :].expand(-1, c, -1)).view(b, c, p, k)
    s = (centre[..., None] * F.normalize(neigh, dim=1)).sum(1).clamp_min(0).pow(gamma) * inside  # (B, P, K)
    vals = gather_pixels(v, nidx.flatten(1)).view(b, v.shape[1], p, k)
    return (vals * s[:, None]).sum(-1)


def global_ppm(x: torch.Tensor, v: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Pixel propagation (PixPro Eq. 3) over all pixels of the map, as in the paper -> (B, C', H, W).

    Builds the (HW)^2 similarity matrix: the reference for `local_ppm`, affordable on strided maps.
    """
    b, _, h, w = x.shape
    xn = F.normalize(x.flatten(2), dim=1)  # (B, C, N)
    s = torch.bmm(xn.transpose(1, 2), xn).clamp_min(0).pow(gamma)  # (B, N, N), symmetric
    return torch.bmm(v.flatten(2), s).view(b, v.shape[1], h, w)


def pixpro_loss(
    p1: torch.Tensor, k2: torch.Tensor, p2: torch.Tensor, k1: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric PixPro loss (Eq. 4) on sampled pairs: -cos(y_i, x'_j) - cos(y'_j, x_i), mean over pairs.

    p1, p2: propagated online features of view 1 / view 2 at the pairs (B, C, P); k1, k2: momentum
    features of view 1 / view 2 at the same pairs. `weight` (B, P) is 0 for padding pairs of images
    without positives: the mean runs over real pairs only, and is 0 (not NaN) when there are none.
    """
    p1, k2, p2, k1 = p1.float(), k2.float(), p2.float(), k1.float()  # few pairs: fp32 costs nothing
    cos = F.cosine_similarity(p1, k2, dim=1) + F.cosine_similarity(p2, k1, dim=1)  # (B, P)
    if weight is None:
        return -cos.mean()
    weight = weight.to(cos.dtype)
    return -(cos * weight).sum() / weight.sum().clamp_min(1e-12)


def pixpro_loss_dense(
    p1: torch.Tensor, k2: torch.Tensor, p2: torch.Tensor, k1: torch.Tensor, pos: torch.Tensor
) -> torch.Tensor:
    """Symmetric PixPro loss (Eq. 4) over all positive pairs of an all-pairs mask pos (B, N1, N2).

    p1 (B, C, N1) with k2 (B, C, N2), p2 (B, C, N2) with k1 (B, C, N1). Averaged over the positive
    pairs of each image, then over the images that have any (same convention as `pixpro_loss`,
    where every valid image contributes the same number of pairs).
    """
    posf = pos.to(p1.dtype)
    c12 = torch.bmm(F.normalize(p1, dim=1).transpose(1, 2), F.normalize(k2, dim=1))  # (B, N1, N2)
    c21 = torch.bmm(F.normalize(k1, dim=1).transpose(1, 2), F.normalize(p2, dim=1))  # (B, N1, N2)
    n = pos.sum((1, 2), dtype=torch.float32)
    # the (HW)^2 matrices stay in the input precision; the reductions accumulate in fp32
    per_image = ((c12 + c21) * posf).sum((1, 2), dtype=torch.float32) / n.clamp_min(1)
    valid = (n > 0).float()
    return -(per_image * valid).sum() / valid.sum().clamp_min(1)


def pixcontrast_loss(q: torch.Tensor, k: torch.Tensor, pos: torch.Tensor, tau: float = 0.3) -> torch.Tensor:
    """PixContrast (PixPro Eqs. 1-2): -log sum_pos e^{cos/tau} / sum_all e^{cos/tau}, mean over queries.

    q (..., N, C) online queries, k (..., M, C) momentum keys of the other view, pos (..., N, M)
    marks each query's positives; every other key is a negative. Queries without a positive
    are left out of the mean (0 when no query has one).
    """
    with torch.autocast(q.device.type, enabled=False):  # softmax over few keys: fp32 is cheap and exact
        qn, kn = F.normalize(q.float(), dim=-1), F.normalize(k.float(), dim=-1)
        logits = torch.matmul(qn, kn.transpose(-1, -2)) / tau
    rows = pos.any(-1)
    # rows without positives get a harmless all-zero numerator (masked out below), avoiding NaN grads
    num = logits.masked_fill(~pos, float("-inf")).masked_fill(~rows[..., None], 0.0)
    per_query = torch.logsumexp(logits, -1) - torch.logsumexp(num, -1)
    rowsf = rows.to(per_query.dtype)
    return (per_query * rowsf).sum() / rowsf.sum().clamp_min(1)


def instance_loss(p1: torch.Tensor, z2: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """BYOL-style instance branch (PixPro Sec. 3.4): -cos(q(p1), z'2) - cos(q(p2), z'1), mean over images."""
    p1, z2, p2, z1 = p1.float(), z2.float(), p2.float(), z1.float()
    return -(F.cosine_similarity(p1, z2, dim=-1) + F.cosine_similarity(p2, z1, dim=-1)).mean()
