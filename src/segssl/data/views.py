"""Two augmented views of one image that remember *where* they came from.

Each view carries its crop box in coordinates normalised to the original image and its flip
(encoded by swapping x0 and x1), so the original-image position of every view pixel is exact:
x = x0 + (j + 0.5) / W * (x1 - x0), y = y0 + (i + 0.5) / H * (y1 - y0). Dense SSL methods
(PixPro, PASS alignment) need this to find positive pixel pairs without guessing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from segssl.data.transforms import normalize


@dataclass
class ViewParams:
    top: int
    left: int
    height: int
    width: int
    flip: bool

    def box(self, img_h: int, img_w: int) -> torch.Tensor:
        """(x0, y0, x1, y1) normalised to [0, 1]; x0 > x1 means the view is horizontally flipped."""
        x0, x1 = self.left / img_w, (self.left + self.width) / img_w
        y0, y1 = self.top / img_h, (self.top + self.height) / img_h
        if self.flip:
            x0, x1 = x1, x0
        return torch.tensor([x0, y0, x1, y1], dtype=torch.float32)


def sample_crop(
    img_h: int, img_w: int, scale: Sequence[float], ratio: Sequence[float], gen: torch.Generator
) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box sampling (Szegedy et al. 2015), with an explicit generator."""
    area = img_h * img_w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1], generator=gen))
        ar = math.exp(float(torch.empty(1).uniform_(log_r[0], log_r[1], generator=gen)))
        w = int(round(math.sqrt(target * ar)))
        h = int(round(math.sqrt(target / ar)))
        if 0 < w <= img_w and 0 < h <= img_h:
            top = int(torch.randint(0, img_h - h + 1, (1,), generator=gen))
            left = int(torch.randint(0, img_w - w + 1, (1,), generator=gen))
            return top, left, h, w
    # fallback: central crop at the clamped ratio
    in_ratio = img_w / img_h
    if in_ratio < ratio[0]:
        w, h = img_w, int(round(img_w / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = img_h, int(round(img_h * ratio[1]))
    else:
        w, h = img_w, img_h
    return (img_h - h) // 2, (img_w - w) // 2, h, w


class TwoViews:
    """Produce two views (tensor, box) of a uint8 CHW image for dense self-supervised learning."""

    def __init__(
        self,
        size: Sequence[int],
        scale: Sequence[float] = (0.3, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        color_jitter: float = 0.4,
        grayscale_p: float = 0.2,
        blur_p: float = 0.5,
        min_overlap: float = 0.0,
        max_tries: int = 10,
    ):
        self.size = (int(size[0]), int(size[1]))
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.min_overlap, self.max_tries = min_overlap, max_tries
        cj = color_jitter
        photometric: list[v2.Transform] = []
        if cj > 0:
            photometric.append(v2.RandomApply([v2.ColorJitter(cj, cj, cj / 2, min(cj / 4, 0.1))], p=0.8))
        if grayscale_p > 0:
            photometric.append(v2.RandomGrayscale(grayscale_p))
        if blur_p > 0:
            k = max(3, (min(self.size) // 10) | 1)
            photometric.append(v2.RandomApply([v2.GaussianBlur(k, (0.1, 2.0))], p=blur_p))
        photometric.append(normalize())
        self.photometric = v2.Compose(photometric)

    def params(self, img_h: int, img_w: int, gen: torch.Generator) -> ViewParams:
        top, left, h, w = sample_crop(img_h, img_w, self.scale, self.ratio, gen)
        return ViewParams(top, left, h, w, bool(torch.rand(1, generator=gen) < 0.5))

    def view(self, image: torch.Tensor, p: ViewParams) -> torch.Tensor:
        v = F.resized_crop(image, p.top, p.left, p.height, p.width, list(self.size), antialias=True)
        if p.flip:
            v = F.horizontal_flip(v)
        return self.photometric(v)

    def __call__(self, image: torch.Tensor, gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        gen = gen if gen is not None else torch.default_generator
        img_h, img_w = image.shape[-2:]
        p1 = self.params(img_h, img_w, gen)
        p2 = self.params(img_h, img_w, gen)
        # Resample the second crop when the views barely overlap: dense losses need shared pixels,
        # and resampling keeps every image in the batch useful (no batch shrinking).
        for _ in range(self.max_tries):
            if overlap_fraction(p1.box(img_h, img_w), p2.box(img_h, img_w)) >= self.min_overlap:
                break
            p2 = self.params(img_h, img_w, gen)
        return {
            "view1": self.view(image, p1),
            "view2": self.view(image, p2),
            "box1": p1.box(img_h, img_w),
            "box2": p2.box(img_h, img_w),
        }


def overlap_fraction(b1: torch.Tensor, b2: torch.Tensor) -> float:
    """Intersection area over the smaller box's area, for boxes in (x0, y0, x1, y1) with flips."""
    ax0, ax1 = sorted((float(b1[0]), float(b1[2])))
    bx0, bx1 = sorted((float(b2[0]), float(b2[2])))
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(float(b1[3]), float(b2[3])) - max(float(b1[1]), float(b2[1])))
    smaller = min((ax1 - ax0) * (float(b1[3]) - float(b1[1])), (bx1 - bx0) * (float(b2[3]) - float(b2[1])))
    return iw * ih / max(smaller, 1e-12)


def pixel_coords(box: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Original-image (x, y) of every pixel centre of an HxW view with `box` (B,4) -> (B, H, W, 2)."""
    box = box.view(-1, 4)
    jj = (torch.arange(w, dtype=box.dtype, device=box.device) + 0.5) / w
    ii = (torch.arange(h, dtype=box.dtype, device=box.device) + 0.5) / h
    x = box[:, 0, None] + jj[None] * (box[:, 2] - box[:, 0])[:, None]  # (B, W)
    y = box[:, 1, None] + ii[None] * (box[:, 3] - box[:, 1])[:, None]  # (B, H)
    return torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), dim=-1)
