"""Mask-based mixing of images and targets (CutMix, CutOut, ClassMix) as pure tensor functions.

Semi-supervised segmentation methods perturb unlabeled images by pasting regions of one image
onto another and asking the prediction on the mix to equal the same mix of the predictions.
Every function here returns boolean masks of shape (B, H, W) where True means "take the pasted
image", so one `mix` serves images (B, C, H, W), probabilities and label maps (B, H, W) alike.
Randomness comes from an optional `torch.Generator` (CPU) so tests and runs are reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=gen, dtype=torch.float64) * (hi - lo) + lo


def rectangles_to_mask(rects: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, N, 4) integer rectangles (y0, x0, y1, x1), ends exclusive -> (B, H, W) mask.

    Overlapping boxes toggle each other (XOR), as French et al.'s mask generator does when it
    draws several boxes: the mask is the symmetric difference of the boxes.
    """
    b = rects.shape[0]
    mask = torch.zeros(b, h, w, dtype=torch.bool)
    for i in range(b):
        for y0, x0, y1, x1 in rects[i].tolist():
            y0, x0 = max(int(y0), 0), max(int(x0), 0)
            y1, x1 = min(int(y1), h), min(int(x1), w)
            if y1 > y0 and x1 > x0:
                mask[i, y0:y1, x0:x1] ^= True
    return mask


def box_masks(
    n: int,
    h: int,
    w: int,
    prop_range: Sequence[float] = (0.5, 0.5),
    n_boxes: int = 1,
    random_aspect: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """French et al. (BMVC 2020, code `BoxMaskGenerator`) boxes covering a share ~ U(prop_range) of the area.

    With a random aspect ratio the box height fraction is prop^u, u ~ U(0, 1), and the width
    fraction prop / height, so both stay within the image; with `n_boxes` > 1 each box is shrunk
    by sqrt(1 / n_boxes) (CPS's CutMix uses 3 boxes of total area U(0.25, 0.5)). Boxes lie within
    the image. True inside the box(es): the region taken from the second image.
    """
    lo, hi = float(prop_range[0]), float(prop_range[1])
    props = _uniform(n * n_boxes, lo, hi, generator).view(n, n_boxes)
    if random_aspect:
        u = torch.rand(n, n_boxes, generator=generator, dtype=torch.float64)
        y_props = torch.exp(u * torch.log(props.clamp_min(1e-12)))
        x_props = props / y_props
    else:
        y_props = x_props = props.sqrt()
    fac = math.sqrt(1.0 / n_boxes)
    zero = props == 0
    y_props = torch.where(zero, 0.0, y_props * fac)
    x_props = torch.where(zero, 0.0, x_props * fac)
    sizes = torch.round(torch.stack([y_props * h, x_props * w], dim=2))  # (n, boxes, 2)
    shape = torch.tensor([h, w], dtype=torch.float64)
    pos = torch.round((shape - sizes) * torch.rand(sizes.shape, generator=generator, dtype=torch.float64))
    rects = torch.cat([pos, pos + sizes], dim=2).long()  # (y0, x0, y1, x1)
    return rectangles_to_mask(rects, h, w)


def cutmix_boxes(
    n: int,
    h: int,
    w: int,
    p: float = 0.5,
    area_range: Sequence[float] = (0.02, 0.4),
    ratio_range: Sequence[float] = (0.3, 1 / 0.3),
    generator: torch.Generator | None = None,
    max_tries: int = 100,
) -> torch.Tensor:
    """UniMatch's CutMix box (Yang et al. CVPR 2023, code `obtain_cutmix_box`): with probability p one box.

    The box area is U(area_range) of the image and its aspect ratio U(ratio_range); the top-left
    corner is drawn uniformly and redrawn until the box fits (after `max_tries` the box is
    clamped to the image instead of looping forever on degenerate sizes).
    """
    mask = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        if float(torch.rand(1, generator=generator)) > p:
            continue
        size = float(_uniform(1, area_range[0], area_range[1], generator)) * h * w
        for _ in range(max_tries):
            ratio = float(_uniform(1, ratio_range[0], ratio_range[1], generator))
            cw, ch = int(math.sqrt(size / ratio)), int(math.sqrt(size * ratio))
            x = int(torch.randint(0, w, (1,), generator=generator))
            y = int(torch.randint(0, h, (1,), generator=generator))
            if x + cw <= w and y + ch <= h:
                break
        else:
            cw, ch, x, y = min(cw, w), min(ch, h), 0, 0
        mask[i, y : y + ch, x : x + cw] = True
    return mask


def class_mix_masks(
    pred: torch.Tensor, ignore_index: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """ClassMix (Olsson et al. WACV 2021, Alg. 1): per image, the pixels of half of its predicted classes.

    For an argmax map with C distinct classes, floor(C / 2) of them are drawn without
    replacement (the official code's (C - C % 2) / 2); the mask is True on their pixels.
    """
    masks = torch.zeros(pred.shape, dtype=torch.bool, device=pred.device)
    for i in range(pred.shape[0]):
        classes = torch.unique(pred[i])
        if ignore_index is not None:
            classes = classes[classes != ignore_index]
        k = int(classes.numel()) // 2
        if k == 0:
            continue
        pick = torch.randperm(int(classes.numel()), generator=generator)[:k].to(classes.device)
        masks[i] = torch.isin(pred[i], classes[pick])
    return masks


def mix(base: torch.Tensor, paste: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`paste` where mask is True, `base` elsewhere; mask (B, H, W) broadcasts over (B, C, H, W)."""
    m = mask.to(device=base.device, dtype=torch.bool)
    if base.dim() == m.dim() + 1:
        m = m.unsqueeze(1)
    return torch.where(m, paste, base)


def partner(x: torch.Tensor) -> torch.Tensor:
    """The image each sample is mixed with: the previous one in the batch (a derangement for B > 1)."""
    return torch.roll(x, shifts=1, dims=0)
